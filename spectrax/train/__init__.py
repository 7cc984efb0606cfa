"""spectrax.train"""

from spectrax.train._checkpoint import Checkpointer, CheckpointError, tree_digest
from spectrax.train._config import (
    CheckpointConfig,
    Config,
    ConfigError,
    LoopConfig,
    MeshConfig,
    OptimConfig,
    OutputConfig,
    apply_overrides,
    config_to_dict,
    load_config,
    validate_config,
)
from spectrax.train._loop import (
    TrainResult,
    evaluate_run,
    load_model,
    params_digest,
    run_config,
    train,
)
from spectrax.train._losses import h1_loss, relative_lp_loss, sobolev_loss
from spectrax.train._mesh import batch_sharding, make_mesh, shard_model
from spectrax.train._metrics import MetricWriter, read_metrics
from spectrax.train._optim import make_optimizer, make_schedule, param_labels
from spectrax.train._step import GuardState, TrainState, init_opt_state, make_train_step
from spectrax.train._task import Task, batch_indices
from spectrax.train._tasks import (
    FieldRegressionTask,
    SequenceClassificationTask,
    grid_coordinates,
)

__all__: list[str] = [
    "CheckpointConfig",
    "CheckpointError",
    "Checkpointer",
    "Config",
    "ConfigError",
    "FieldRegressionTask",
    "GuardState",
    "LoopConfig",
    "MeshConfig",
    "MetricWriter",
    "OptimConfig",
    "OutputConfig",
    "SequenceClassificationTask",
    "Task",
    "TrainResult",
    "TrainState",
    "apply_overrides",
    "batch_indices",
    "batch_sharding",
    "config_to_dict",
    "evaluate_run",
    "grid_coordinates",
    "h1_loss",
    "init_opt_state",
    "load_config",
    "load_model",
    "make_mesh",
    "make_optimizer",
    "make_schedule",
    "make_train_step",
    "param_labels",
    "params_digest",
    "read_metrics",
    "relative_lp_loss",
    "run_config",
    "shard_model",
    "sobolev_loss",
    "train",
    "tree_digest",
    "validate_config",
]
