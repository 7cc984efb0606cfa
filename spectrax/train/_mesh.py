"""Device mesh with ``("data", "model")`` axes, batch and parameter shardings, multi-host start.

Multi-host launch (one process per host, same command everywhere)::

    JAX_COORDINATOR_ADDRESS=host0:1234 JAX_NUM_PROCESSES=4 JAX_PROCESS_ID=<i> \\
        spectrax train configs/burgers_fno.py mesh.model=2

``maybe_initialize_distributed`` calls ``jax.distributed.initialize()`` when
``JAX_COORDINATOR_ADDRESS`` is set, passing it the process count and index from
``JAX_NUM_PROCESSES`` and ``JAX_PROCESS_ID`` (JAX itself reads only the address). On TPU pods
and SLURM, JAX discovers all three itself: set ``SPECTRAX_DISTRIBUTED=1`` instead. On CPU (one
machine, e.g. to try it) add ``XLA_FLAGS=--xla_force_host_platform_device_count=<k>`` for ``k``
devices per process; cross-process collectives use gloo, JAX's default on CPU.
"""

from __future__ import annotations

import logging
import os
from typing import Any

import equinox as eqx
import jax
import numpy as np
from jax.sharding import Mesh, NamedSharding, PartitionSpec

from spectrax._checks import check_choice
from spectrax.train._config import Config, ConfigError, MeshConfig

__all__ = [
    "batch_from_rows",
    "batch_rows",
    "batch_sharding",
    "gather_to_host",
    "make_mesh",
    "maybe_initialize_distributed",
    "shard_model",
]

logger = logging.getLogger(__name__)

# how shard_model places parameters (`mesh.params` of a config)
MODES = ("replicated", "fsdp")


def _env_int(name: str, *, minimum: int) -> int | None:
    """The integer in environment variable ``name`` (``None`` if unset), or a ConfigError."""
    text = os.environ.get(name)
    if text is None or not text.strip():
        return None
    try:
        value = int(text)
    except ValueError:
        value = None
    if value is None or value < minimum:
        raise ConfigError(f"`{name}` must be an integer >= {minimum}; got {text!r}.")
    return value


def maybe_initialize_distributed() -> bool:
    """``jax.distributed.initialize()`` once when launched as one of several processes."""
    wanted = (
        os.environ.get("SPECTRAX_DISTRIBUTED") == "1" or "JAX_COORDINATOR_ADDRESS" in os.environ
    )
    if not wanted or jax.distributed.is_initialized():
        return False
    jax.distributed.initialize(
        num_processes=_env_int("JAX_NUM_PROCESSES", minimum=1),
        process_id=_env_int("JAX_PROCESS_ID", minimum=0),
    )
    logger.info("jax.distributed: process %d of %d", jax.process_index(), jax.process_count())
    return True


def mesh_shape(mesh_config: MeshConfig, num_devices: int) -> tuple[int, int]:
    """``(data, model)`` axis sizes for ``num_devices`` devices, or a ConfigError naming the key."""
    m = mesh_config.model
    if mesh_config.data == 0:
        raise ConfigError(
            "`mesh.data` must be -1 (every device the model axis leaves) or >= 1; got 0."
        )
    if m > num_devices:  # no `mesh.data` helps: the model axis alone needs more devices
        raise ConfigError(
            f"`mesh.model` ({m}) needs {m} devices; {num_devices} available. Use a model axis "
            f"of at most {num_devices}."
        )
    if mesh_config.data == -1 and num_devices % m:
        raise ConfigError(
            f"`mesh.model` ({m}) must divide the number of devices ({num_devices}) when "
            "`mesh.data` is -1 (every device the model axis leaves); or set `mesh.data`."
        )
    d = num_devices // m if mesh_config.data == -1 else mesh_config.data
    if d < 1 or d * m > num_devices:
        raise ConfigError(
            f"`mesh.data` x `mesh.model` = {d} x {m} needs {d * m} devices; "
            f"{num_devices} available."
        )
    return d, m


def make_mesh(config: Config | MeshConfig, devices: list | None = None) -> Mesh:
    """The config's mesh over ``devices`` (default: all): a whole :class:`Config`, checking
    that ``loop.batch_size`` divides evenly over the ``data`` axis, or a :class:`MeshConfig`
    alone (a mesh for your own loop, no batch size to check)."""
    if isinstance(config, Config):
        mesh_config, batch_size = config.mesh, config.loop.batch_size
    elif isinstance(config, MeshConfig):
        mesh_config, batch_size = config, None
    else:
        raise TypeError(
            "`config` must be a Config or a MeshConfig (make_mesh reads the mesh axes); got "
            f"{type(config).__name__}."
        )
    devices = list(jax.devices() if devices is None else devices)
    d, m = mesh_shape(mesh_config, len(devices))
    if batch_size is not None and batch_size % d:
        raise ConfigError(
            f"`loop.batch_size` ({batch_size}) must be divisible by the data axis "
            f"(`mesh.data` = {d}); use a multiple of {d}."
        )
    used = devices[: d * m]
    left_out = sorted({x.process_index for x in devices} - {x.process_index for x in used})
    if left_out:
        # such a process could not take part in the step's collectives: it would fail and
        # leave the others waiting
        raise ConfigError(
            f"`mesh.data` x `mesh.model` = {d} x {m} uses the first {d * m} of {len(devices)} "
            f"devices, none of process(es) {left_out}; every process must hold a device of "
            "the mesh: use `mesh.data=-1` (every device) or a mesh of all devices."
        )
    auto = (jax.sharding.AxisType.Auto,) * 2
    return jax.make_mesh((d, m), ("data", "model"), axis_types=auto, devices=used)


def batch_sharding(mesh: Mesh) -> NamedSharding:
    """Leading (batch) axis over ``data``, the rest replicated."""
    return NamedSharding(mesh, PartitionSpec("data"))


def batch_rows(sharding: jax.sharding.Sharding, batch_size: int) -> np.ndarray:
    """The rows of a global batch of ``batch_size`` examples that this process's devices hold
    under ``sharding``: ascending positions ``0 <= i < batch_size``.

    Read off the sharding, not assumed: with one process, or with the batch axis replicated
    over devices of every process (``mesh.data=1``), all of them; with two processes that
    split the ``data`` axis, half each; with ``data`` positions that straddle processes
    (``mesh.data=3``, ``mesh.model=2`` over 2 processes of 3 devices each), the blocks of this
    process's positions, some held by both processes.
    """
    try:
        index_map = sharding.addressable_devices_indices_map((batch_size,))
    except ValueError as err:  # JAX's IndivisibleError
        raise ValueError(
            f"`batch_size` ({batch_size}) does not split evenly over the batch sharding's "
            f"devices ({sharding}); use a multiple of the `data` axis size."
        ) from err
    spans = {index[0].indices(batch_size)[:2] for index in index_map.values()}
    if not spans:
        return np.empty(0, dtype=np.int64)
    return np.unique(np.concatenate([np.arange(lo, hi) for lo, hi in spans]))


def batch_from_rows(
    local: Any, sharding: jax.sharding.Sharding, rows: np.ndarray, batch_size: int
) -> Any:
    """A global batch of ``batch_size`` examples laid out by ``sharding``, built from this
    process's ``rows`` of it alone.

    Args:
        local: a pytree of arrays whose leading axis holds examples ``rows`` of the batch, in
            that order.
        sharding: the batch sharding (:func:`batch_sharding`).
        rows: :func:`batch_rows` of ``sharding`` and ``batch_size``.
        batch_size: the global batch size.

    Returns:
        ``local``'s tree of global arrays with leading axis ``batch_size``: each addressable
        device receives its block of rows (sliced from ``local`` as a view, not copied on the
        host). Every process calls this with its own rows, as for any global array.

    Raises:
        ValueError: a leaf of ``local`` whose leading axis is not ``len(rows)``.
    """

    def assemble(x):
        if x.shape[:1] != (len(rows),):
            raise ValueError(
                f"`task.get_batch` returned an array of shape {x.shape} for {len(rows)} "
                f"indices; expected a leading batch axis of {len(rows)}."
            )

        def block(index):
            lo, hi, _ = index[0].indices(batch_size)
            at = int(np.searchsorted(rows, lo))
            return x[(slice(at, at + hi - lo), *index[1:])]

        shape = (batch_size, *x.shape[1:])
        return jax.make_array_from_callback(shape, sharding, block, dtype=x.dtype)

    return jax.tree.map(assemble, local)


def _param_spec(
    x: jax.Array | np.ndarray | np.generic, model_size: int, mode: str
) -> PartitionSpec:
    if mode == "replicated" or model_size == 1 or x.ndim == 0 or x.size == 0:
        # an empty array: nothing to save, and its gather in the step would be refused
        return PartitionSpec()
    # Largest axis that splits evenly: the biggest saving per parameter.
    for axis in sorted(range(x.ndim), key=lambda a: -x.shape[a]):
        if x.shape[axis] % model_size == 0:
            spec = [None] * x.ndim
            spec[axis] = "model"
            return PartitionSpec(*spec)
    return PartitionSpec()


def shard_model(tree: Any, mesh: Mesh, mode: str) -> Any:
    """Place every array of ``tree`` on ``mesh``: replicated, or FSDP-style over ``model``.

    Args:
        tree: any pytree (a model, an optimizer state); non-array leaves stay as they are.
        mesh: the device mesh; ``"fsdp"`` needs a ``model`` axis.
        mode: ``"replicated"`` (a copy on every device) or ``"fsdp"`` (each array's largest
            axis divisible by the ``model`` axis size split over it; the others replicated),
            as ``mesh.params`` of the config.
    """
    check_choice("mode", mode, MODES)
    if mode == "fsdp" and "model" not in mesh.shape:
        raise ValueError(
            f"`mesh` must have a 'model' axis for mode='fsdp'; got axes {tuple(mesh.axis_names)}."
        )
    size = mesh.shape.get("model", 1)

    def place(x):
        if not eqx.is_array(x):
            return x
        return jax.device_put(x, NamedSharding(mesh, _param_spec(x, size, mode)))

    return jax.tree.map(place, tree)


def gather_to_host(tree: Any) -> Any:
    """``tree`` with every array whole on this process's first local device.

    Over several processes a parameter may be split across them (FSDP over a ``model`` axis
    that spans hosts), and any computation on it is a collective every process must join: one
    process alone (process 0 drawing the plots) would wait forever. This gathers each array to
    every process, so it is itself a collective: call it on all of them. One process: ``tree``
    unchanged.
    """
    if jax.process_count() == 1:
        return tree
    from jax.experimental import multihost_utils

    local = jax.local_devices()[0]

    def gather(x):
        if not isinstance(x, jax.Array):
            return x
        return jax.device_put(multihost_utils.process_allgather(x, tiled=True), local)

    return jax.tree.map(gather, tree)
