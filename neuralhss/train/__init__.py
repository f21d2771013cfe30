"""Training neural operators: the loop, evaluation, checkpoints and torch.distributed support."""

from .distributed import DistInfo, init_from_env
from .loop import (
    InMemory,
    TrainConfig,
    evaluate,
    fit,
    load_checkpoint,
    model_from_checkpoint,
    prepare_lowrank,
    relative_l2,
    to_memory,
)

__all__ = ["DistInfo", "InMemory", "TrainConfig", "evaluate", "fit", "init_from_env",
           "load_checkpoint", "model_from_checkpoint", "prepare_lowrank", "relative_l2", "to_memory"]
