"""2D incompressible Navier–Stokes in vorticity form on the unit torus: pseudo-spectral ETDRK4
solver and the FNO benchmark data (initial vorticity -> trajectory)."""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, Float, PRNGKeyArray

from spectrax._checks import (
    check_finite,
    check_key,
    check_positive_float,
    check_positive_int,
    check_real_float,
    complex_dtype,
    compute_dtype,
    raise_if_not_finite,
    result_dtype,
)
from spectrax.data._burgers import dealias_mask
from spectrax.data._etdrk4 import etdrk4_coefficients, etdrk4_integrate, num_steps_for
from spectrax.data._grf import _check_params, grf_periodic

__all__ = ["fno_forcing", "navier_stokes_dataset", "navier_stokes_solve"]


def fno_forcing(n: int) -> np.ndarray:
    """The forcing of Li et al. (2021, FNO), ``0.1 (sin 2 pi (x + y) + cos 2 pi (x + y))``, at
    the grid points ``(i, j) / n`` (float64 NumPy, shape ``(n, n)``); ``n`` an integer >= 1,
    else a ValueError naming it."""
    n = check_positive_int("n", n)
    x = np.arange(n) / n
    z = x[:, None] + x[None, :]
    return 0.1 * (np.sin(2 * np.pi * z) + np.cos(2 * np.pi * z))


def _no_forcing(n: int) -> np.ndarray:
    return np.zeros((n, n))


_FORCINGS = {"fno": fno_forcing, "none": _no_forcing}


def _wavenumbers(n: int) -> tuple[np.ndarray, np.ndarray]:
    """Angular wavenumbers on the (n, n // 2 + 1) rfft2 grid: (k_x, k_y), each (n, n//2+1)."""
    kx = 2 * np.pi * np.fft.fftfreq(n, 1.0 / n)
    ky = 2 * np.pi * np.fft.rfftfreq(n, 1.0 / n)
    return np.meshgrid(kx, ky, indexing="ij")


def _advection(n: int, cdtype):
    """``v -> -rfft2(u . grad w)`` for ``v = rfft2(w)`` (rfft2 layout), with the 2/3 rule per
    axis on input and output: exactly the kept modes of the product of the kept modes."""
    kx, ky = _wavenumbers(n)
    k2 = kx**2 + ky**2
    mask1 = dealias_mask(n)
    mask = np.logical_and(
        np.abs(np.fft.fftfreq(n, 1.0 / n))[:, None] <= (n - 1) // 3, mask1[None, :]
    )
    inv_lap = np.divide(1.0, k2, out=np.zeros_like(k2), where=k2 > 0)
    # Rows give (u, v, w_x, w_y) from w_hat: u = psi_y, v = -psi_x with -Δ psi = w.
    ops = np.stack([1j * ky * inv_lap, -1j * kx * inv_lap, 1j * kx, 1j * ky]) * mask
    ops = jnp.asarray(ops, cdtype)
    mask = jnp.asarray(mask, cdtype)

    def advection(v):
        u, vel_y, wx, wy = jnp.fft.irfft2(ops * v[None], s=(n, n))
        return -mask * jnp.fft.rfft2(u * wx + vel_y * wy)

    return advection


def _solve_one(w0, f, nu: float, t_final: float, num_snapshots: int, dt: float):
    """Trajectory (num_snapshots, n, n) of one vorticity field w0 (n, n) with forcing f (n, n)."""
    n = w0.shape[-1]
    interval = t_final / num_snapshots
    steps, h = num_steps_for(interval, dt)
    kx, ky = _wavenumbers(n)
    cdtype = complex_dtype(w0.dtype)
    coeffs = etdrk4_coefficients(-nu * (kx**2 + ky**2), h, cdtype)
    advection = _advection(n, cdtype)
    f_hat = jnp.fft.rfft2(f)

    def nonlinear(v):
        return f_hat + advection(v)

    def record(v, _):
        v = etdrk4_integrate(v, coeffs, nonlinear, steps)
        return v, jnp.fft.irfft2(v, s=(n, n))

    _, traj = jax.lax.scan(record, jnp.fft.rfft2(w0), None, length=num_snapshots)
    return traj


@functools.partial(jax.jit, static_argnames=("nu", "t_final", "num_snapshots", "dt"))
def _solve(w0, f, nu, t_final, num_snapshots, dt):
    flat = w0.reshape((-1,) + w0.shape[-2:])
    traj = jax.vmap(lambda w: _solve_one(w, f, nu, t_final, num_snapshots, dt))(flat)
    return traj.reshape(w0.shape[:-2] + traj.shape[1:])


def _check_forcing(forcing, n: int):
    """A named forcing as a float64 NumPy array, or the validated (n, n) array as a JAX array
    (a NumPy float64 one becomes float32 outside 64-bit mode, as any JAX input)."""
    if isinstance(forcing, str):
        if forcing not in _FORCINGS:
            raise ValueError(
                f"`forcing` must be one of {sorted(_FORCINGS)} or an (n, n) array; got {forcing!r}."
            )
        return _FORCINGS[forcing](n)
    check_real_float("forcing", forcing)
    if tuple(forcing.shape) != (n, n):
        raise ValueError(f"`forcing` must have the grid shape {(n, n)}; got {forcing.shape=}.")
    return jnp.asarray(forcing)


def navier_stokes_solve(
    w0: Float[Array, "*B X Y"],
    *,
    nu: float = 1e-3,
    t_final: float = 1.0,
    num_snapshots: int = 1,
    dt: float = 1e-2,
    forcing: str | Float[Array, "X Y"] = "fno",
) -> Float[Array, "*B T X Y"]:
    """Solve ``w_t + u . grad w = nu Δw + f``, ``u = (psi_y, -psi_x)``, ``-Δ psi = w`` on the torus.

    Fourier pseudo-spectral on the ``n x n`` grid ``(i, j) / n`` of the unit torus with the
    2/3 dealiasing rule on the advection term, ETDRK4 in time (Cox & Matthews, 2002, with the
    contour-integral coefficients of Kassam & Trefethen, 2005): viscosity is integrated
    exactly, so ``dt`` is limited by advection (CFL ``dt max|u| k_max`` of order one).

    Args:
        w0: initial vorticity, shape ``(*batch, n, n)``, float32 or float64, mean zero (the mean
            of ``w`` is conserved up to the forcing's mean).
        nu: viscosity > 0 (the FNO data use 1e-3, 1e-4 and 1e-5).
        t_final: final time.
        num_snapshots: the trajectory is recorded at ``t_final * j / num_snapshots``,
            ``j = 1 .. num_snapshots``.
        dt: largest time step; each interval between snapshots takes equal steps.
        forcing: ``"fno"`` (``0.1 (sin 2 pi (x + y) + cos 2 pi (x + y))``, Li et al., 2021),
            ``"none"``, or a time-independent ``(n, n)`` array on the grid.

    Returns:
        Shape ``(*batch, num_snapshots, n, n)``, dtype of ``w0`` (with an array ``forcing``,
        the promotion of both: computed and returned in float64 if either is float64).

    Raises:
        RuntimeError: (outside a trace) a trajectory holds NaN or inf: ``dt`` unstable.
    """
    check_real_float("w0", w0)
    w0 = jnp.asarray(w0)  # a NumPy float64 w0 is float32 outside 64-bit mode, as any input
    if w0.ndim < 2 or w0.shape[-1] != w0.shape[-2] or w0.shape[-1] < 4:
        raise ValueError(f"`w0` must have shape (*batch, n, n) with n >= 4; got {w0.shape=}.")
    check_finite("w0", w0)
    nu = check_positive_float("nu", nu)
    t_final = check_positive_float("t_final", t_final)
    dt = check_positive_float("dt", dt)
    num_snapshots = check_positive_int("num_snapshots", num_snapshots)
    f = _check_forcing(forcing, w0.shape[-1])
    if isinstance(forcing, str):  # a named forcing follows w0's precision
        dtype, out_dtype = compute_dtype(w0.dtype), w0.dtype
    else:  # an array forcing counts as an input: a float64 one is not narrowed
        dtype = compute_dtype(w0.dtype, f.dtype)
        out_dtype = result_dtype(w0.dtype, f.dtype)
    f = jnp.asarray(f, dtype)
    w = _solve(w0.astype(dtype), f, nu, t_final, num_snapshots, dt)
    # rows: the batch flattened, one row per trajectory
    raise_if_not_finite(
        "navier_stokes_solve: the trajectories",
        w.reshape((-1, *w.shape[-3:])),
        _fix(nu, dt, f"the grid of {w.shape[-1]} x {w.shape[-1]} points"),
    )
    return w.astype(out_dtype)


def _fix(nu: float, dt: float, grid: str) -> str:
    return (
        f"`dt`={dt} is unstable for `nu`={nu} on {grid}; expected a smaller `dt` (largest "
        "stable steps seen for the FNO initial conditions: 0.05 for nu = 1e-3 at 64 and 128 "
        "points, 0.02 for nu = 1e-4 at 64, 0.01 at 128)."
    )


@functools.partial(
    jax.jit,
    static_argnames=(
        "num_samples",
        "n_fine",
        "stride",
        "nu",
        "t_final",
        "num_snapshots",
        "dt",
        "grf",
        "batch_size",
    ),
)
def _generate(key, f, num_samples, n_fine, stride, nu, t_final, num_snapshots, dt, grf, batch_size):
    alpha, tau, sigma = grf

    def one(k):
        w0 = grf_periodic(k, (n_fine, n_fine), alpha=alpha, tau=tau, sigma=sigma)
        traj = _solve_one(w0, f, nu, t_final, num_snapshots, dt)
        return w0[::stride, ::stride], traj[:, ::stride, ::stride]

    keys = jax.random.split(key, num_samples)
    return jax.lax.map(one, keys, batch_size=batch_size)


def navier_stokes_dataset(
    key: PRNGKeyArray,
    num_samples: int,
    resolution: int,
    *,
    nu: float = 1e-3,
    t_final: float = 50.0,
    num_snapshots: int = 50,
    dt: float = 1e-2,
    solver_resolution: int | None = None,
    alpha: float = 2.5,
    tau: float = 7.0,
    sigma: float = 7.0**1.5,
    batch_size: int = 64,
) -> tuple[Float[Array, "B X Y"], Float[Array, "B T X Y"]]:
    """The FNO Navier–Stokes benchmark: initial vorticity and its trajectory.

    Li et al. (2021), "Fourier Neural Operator for Parametric Partial Differential Equations":
    vorticity form on the unit torus, forcing ``0.1 (sin 2 pi (x + y) + cos 2 pi (x + y))``,
    ``w0 ~ N(0, sigma^2 (-Δ + 49 I)^(-2.5))`` with the amplitude ``sigma = 7^1.5`` of their
    generator, snapshots at ``t = 1, ..., 50`` for ``nu = 1e-3`` (their 1e-4 data use
    ``t_final = 30``, 1e-5 ``t_final = 20``). Solved by :func:`navier_stokes_solve` on
    ``solver_resolution`` points per side and subsampled to ``resolution``.

    Cost and step size: ``4 t_final / dt`` evaluations of the advection term (5 FFTs of the
    solver grid each). Measured on 2 CPU cores, float32, ``t_final=50``: about 1.1 s per
    sample at 64 x 64 with ``dt=1e-2`` (0.35 s with ``dt=5e-2``), 4.5 s at 128 x 128.
    Largest stable steps seen for these initial conditions: ``nu=1e-3``: 0.05 at 64 and
    128 points (0.1 blows up); ``nu=1e-4``: 0.02 at 64, 0.01 at 128. Trajectories with
    ``dt`` from 5e-3 to 5e-2 agree to 1e-4 relative (float32 round-off). An unstable step
    raises a RuntimeError naming ``dt`` (outside a trace; under one it shows as NaN).

    Args:
        key: a PRNG key; sample ``i`` uses ``jax.random.split(key, num_samples)[i]``, which
            does not depend on ``num_samples``: the first samples of a larger set are a
            smaller set's, so draw a test set from a key other than its training set's (or
            slice one draw, as the configs do).
        num_samples: number of trajectories.
        resolution: output points per side; must divide ``solver_resolution``.
        nu, t_final, num_snapshots, dt: passed to :func:`navier_stokes_solve`.
        solver_resolution: internal grid (default ``resolution``).
        alpha, tau, sigma: the initial-vorticity covariance (see :func:`grf_periodic`).
        batch_size: samples solved at once (memory bound; results do not depend on it).

    Returns:
        ``(w0, w)``: float32, shapes ``(num_samples, resolution, resolution)`` and
        ``(num_samples, num_snapshots, resolution, resolution)``.
    """
    check_key("key", key)
    num_samples = check_positive_int("num_samples", num_samples)
    resolution = check_positive_int("resolution", resolution, minimum=4)
    solver_resolution = resolution if solver_resolution is None else solver_resolution
    solver_resolution = check_positive_int("solver_resolution", solver_resolution, minimum=4)
    if solver_resolution % resolution:
        raise ValueError(
            f"`solver_resolution`={solver_resolution} must be a multiple of `resolution`="
            f"{resolution} (the output is the solver grid subsampled)."
        )
    nu = check_positive_float("nu", nu)
    t_final = check_positive_float("t_final", t_final)
    dt = check_positive_float("dt", dt)
    num_snapshots = check_positive_int("num_snapshots", num_snapshots)
    batch_size = check_positive_int("batch_size", batch_size)
    _check_params(alpha, tau, sigma, zero_mean=True)  # before float(): "3" and True pass it
    f = jnp.asarray(fno_forcing(solver_resolution), jnp.float32)
    w0, w = _generate(
        key,
        f,
        num_samples,
        solver_resolution,
        solver_resolution // resolution,
        nu,
        t_final,
        num_snapshots,
        dt,
        (float(alpha), float(tau), float(sigma)),
        min(batch_size, num_samples),
    )
    raise_if_not_finite(
        "navier_stokes_dataset: the trajectories",
        w,
        _fix(nu, dt, f"the solver grid of {solver_resolution} x {solver_resolution} points"),
    )
    return w0.astype(jnp.float32), w.astype(jnp.float32)
