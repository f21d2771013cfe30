"""Using a trained checkpoint: rebuild its model, and check that it fits a dataset.

``neuralhss evaluate`` and ``neuralhss attack`` open a dataset's test split with the split,
snapshot selection and normalisation recorded at training time (:func:`split_settings`),
then :func:`trained_model` refuses data of another problem, other channels or another grid
and applies the model to one sample (:func:`dry_run`), so that a mismatch is one clear error.
The dataset object is only read through its attributes (``meta.problem``, ``in_channels``,
``out_channels``, ``grid_shape``) and items, as everywhere in :mod:`neuralhss.train`.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from .strategies import compress_in_place

#: The test-split size of checkpoints that do not record theirs (``neuralhss train``'s
#: default before it recorded the split).
LEGACY_N_TEST = 100


def model_from_checkpoint(ckpt: dict[str, Any]) -> nn.Module:
    """Rebuild the trained model of a checkpoint from :func:`~neuralhss.train.fit` (spec,
    low-rank form, weights).

    A low-rank run is rebuilt as its dense spec converted by ``compress`` with the recorded
    arguments (full rank when none were recorded); the stored weights then resize every low-rank
    layer to its trained ranks.
    """
    from ..models.registry import from_spec

    model = from_spec(ckpt["run"]["spec"])
    lowrank = ckpt["run"]["config"].get("lowrank")
    if lowrank is not None:
        from ..lowrank import LowRankModule, compress

        if lowrank.get("compress") is not None:
            compress_in_place(model, lowrank["compress"])
        elif not any(isinstance(m, LowRankModule) for m in model.modules()):
            compress(model, inplace=True)
    model.load_state_dict(ckpt["model"])
    return model


def split_settings(ckpt: dict[str, Any], n_test: int | float | None = None) -> dict[str, Any]:
    """How to open a dataset's test split as the checkpoint's run did: ``{"n_test",
    "time_index", "normalizer"}`` (the normaliser's statistics as a dict, or ``None``).

    ``n_test`` overrides the recorded split size (``LEGACY_N_TEST`` when none is recorded).
    """
    extra = ckpt.get("extra", {})
    if n_test is None:
        n_test = extra.get("split_n_test", extra.get("n_test", LEGACY_N_TEST))
    return {"n_test": n_test, "time_index": extra.get("time_index"),
            "normalizer": ckpt.get("normalizer")}


def check_fits(ckpt: dict[str, Any], test_set: Any, data: str, force: bool = False) -> None:
    """Refuse a dataset the checkpoint's model was not trained for.

    Raises
    ------
    ValueError
        Data of another problem (unless ``force``: same shapes, other operator, the error would
        be meaningless), other input/output channels, or another grid for a grid-bound model.
    """
    trained_on = ckpt.get("data", {}).get("dataset", {}).get("problem")
    if not force and trained_on is not None and trained_on != test_set.meta.problem:
        raise ValueError(f"the checkpoint was trained on {trained_on!r} data but {data} holds "
                         f"{test_set.meta.problem!r} ({', '.join(test_set.meta.input_fields)} -> "
                         f"{', '.join(test_set.meta.output_fields)}); pass --force to evaluate "
                         "it anyway")
    cfg = ckpt["run"]["spec"]["config"]
    if "in_channels" in cfg and (cfg["in_channels"], cfg.get("out_channels")) != (
            test_set.in_channels, test_set.out_channels):
        raise ValueError(f"the checkpoint's model takes {cfg['in_channels']} -> "
                         f"{cfg.get('out_channels')} channels but {data} has "
                         f"{test_set.in_channels} -> {test_set.out_channels}")
    if "grid_shape" in cfg and tuple(cfg["grid_shape"]) != tuple(test_set.grid_shape):
        raise ValueError(f"the checkpoint's model is built for grid {tuple(cfg['grid_shape'])} "
                         f"but {data} has {tuple(test_set.grid_shape)}")


def dry_run(model: nn.Module, test_set: Any, data: str) -> None:
    """Apply ``model`` to one test sample; a mismatch becomes one clear ValueError."""
    item = test_set[0]
    was = model.training
    model.eval()
    try:
        with torch.no_grad():
            out = model(item["x"][None])
    except (AssertionError, RuntimeError, ValueError, IndexError) as exc:
        raise ValueError(f"the checkpoint's model cannot be applied to {data} (grid "
                         f"{tuple(test_set.grid_shape)}, {test_set.in_channels} input channels): "
                         f"{str(exc).splitlines()[0] if str(exc) else type(exc).__name__}") from None
    finally:
        model.train(was)
    if tuple(out.shape[1:]) != tuple(item["y"].shape):
        raise ValueError(f"the checkpoint's model gives outputs {tuple(out.shape[1:])} but {data} has "
                         f"{tuple(item['y'].shape)}")


def trained_model(ckpt: dict[str, Any], test_set: Any, data: str, force: bool = False) -> nn.Module:
    """The checkpoint's model, checked against ``test_set`` (:func:`check_fits`) and applied to
    one of its samples (:func:`dry_run`)."""
    check_fits(ckpt, test_set, data, force)
    model = model_from_checkpoint(ckpt)
    dry_run(model, test_set, data)
    return model
