"""One process of the two that ``test_distributed.py`` launches to check batch placement on
meshes whose ``data`` axis splits the processes, straddles them, or leaves the batch
replicated over them.

For each mesh it prints one JSON line: how often this process called ``get_batch``, the rows
it asked for, and whether each of its devices holds its block of the batch that one process
builds, examples and per-example dropout keys alike.
"""

from __future__ import annotations

import json
import sys

import jax
import numpy as np

from spectrax.train import Config, LoopConfig, MeshConfig, batch_indices
from spectrax.train._loop import _global_batch
from spectrax.train._mesh import (
    batch_rows,
    batch_sharding,
    make_mesh,
    maybe_initialize_distributed,
    shard_model,
)

# Step 6 draws examples 60..71 of the data order: all in epoch 1, so no index repeats and each
# example the task is asked for names one row of the batch.
BATCH, NUM_TRAIN, SEED, STEP = 12, 40, 3, 6


class RecordingTask:
    """Examples ``(idx, 3)`` that spell their own index; records what it is asked for."""

    needs_key = True

    def __init__(self) -> None:
        self.asked: list[list[int]] = []

    def get_batch(self, indices: np.ndarray) -> dict[str, np.ndarray]:
        self.asked.append(np.asarray(indices).tolist())
        x = (10 * np.asarray(indices)[:, None] + np.arange(3)).astype(np.float32)
        return {"x": x, "i": np.asarray(indices, dtype=np.int32)}


def main(meshes: list[tuple[int, int]]) -> None:
    maybe_initialize_distributed()
    idx = batch_indices(SEED, STEP - 1, NUM_TRAIN, BATCH)
    key = jax.random.key(SEED)
    want = RecordingTask().get_batch(idx)
    keys = jax.random.split(jax.random.fold_in(key, STEP), BATCH)
    want["key"] = np.asarray(jax.random.key_data(keys))
    for data, model in meshes:
        config = Config(
            name="probe",
            task=None,
            loop=LoopConfig(batch_size=BATCH),
            mesh=MeshConfig(data=data, model=model),
        )
        mesh = make_mesh(config)
        sharding = batch_sharding(mesh)
        rng = shard_model(jax.random.key_data(key), mesh, "replicated")
        task = RecordingTask()
        rows = batch_rows(sharding, BATCH)
        batch = _global_batch(task, idx, sharding, rows, rng, STEP)
        # every device of this process holds exactly its block of the one-process batch
        equal = all(
            np.array_equal(np.asarray(shard.data), want[k][shard.index])
            for k in want
            for shard in batch[k].addressable_shards
        )
        rows_asked = [int(np.flatnonzero(idx == i)[0]) for i in task.asked[0]]
        record = {"mesh": [data, model], "calls": len(task.asked), "rows": rows_asked}
        print(json.dumps({**record, "equal": equal}))
    sys.stdout.flush()


if __name__ == "__main__":
    main([tuple(int(n) for n in m.split("x")) for m in sys.argv[1:]])
