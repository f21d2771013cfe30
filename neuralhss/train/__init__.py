"""Training neural operators: the trainer and its step strategies, evaluation, checkpoints and
torch.distributed support."""

from .config import LowRankConfig
from .distributed import DistInfo, init_from_env
from .loop import (
    InMemory,
    TrainConfig,
    evaluate,
    fit,
    model_from_checkpoint,
    prepare_lowrank,
    relative_l2,
    to_memory,
)
from .state import TrainState, load_checkpoint
from .strategies import DLRTStep, GeoLoRAStep, PlainStep, StepStrategy, make_strategy
from .trainer import Callback, ProgressBar, Trainer

__all__ = ["Callback", "DLRTStep", "DistInfo", "GeoLoRAStep", "InMemory", "LowRankConfig", "PlainStep",
           "ProgressBar", "StepStrategy", "TrainConfig", "TrainState", "Trainer", "evaluate", "fit",
           "init_from_env", "load_checkpoint", "make_strategy", "model_from_checkpoint",
           "prepare_lowrank", "relative_l2", "to_memory"]
