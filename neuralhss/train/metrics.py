"""The error metric of training and testing, one definition for both.

**Relative L2 error of a sample**: ``‖pred − y‖ / ‖y‖``, the Euclidean norms taken over all
output channels and all grid points of the sample together (no quadrature weights, no
per-channel normalisation), with ``pred`` and ``y`` decoded to the data's own units when the
data are normalised. A set's error is the **mean over its samples** (``evaluate`` also reports
the median). :func:`neuralhss.train.fit` reports it on the test set (``test_rel_l2``) and on the
training set (``train_rel_l2``); the loss the optimiser minimises may differ (by default
neuraloperator's relative ``LpLoss`` on normalised data, reported as ``train_loss``).
"""

from __future__ import annotations

import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset


def relative_l2(pred: torch.Tensor, target: torch.Tensor, dim: int) -> torch.Tensor:
    """Per-sample relative L2 error ``||pred - y|| / ||y||`` over channels and the last ``dim``
    axes, shape ``(B,)`` (the metric of this module's docstring, before any decoding)."""
    diff = (pred - target).flatten(start_dim=1).norm(dim=1)
    return diff / target.flatten(start_dim=1).norm(dim=1).clamp_min(1e-30)


def sample_errors(pred: torch.Tensor, y: torch.Tensor, normalizer=None) -> torch.Tensor:
    """Per-sample relative L2 errors in data units (outputs decoded by ``normalizer``), float64
    on the CPU, shape ``(B,)``."""
    dim = y.ndim - 2
    if normalizer is not None:
        pred, y = normalizer.decode_y(pred, dim), normalizer.decode_y(y, dim)
    return relative_l2(pred, y, dim).double().cpu()


@torch.no_grad()
def evaluate(model: nn.Module, dataset: Dataset, normalizer=None, batch_size: int = 16,
             device: torch.device | str = "cpu") -> dict[str, float]:
    """Relative L2 error of ``model`` on ``dataset`` in the data's own units.

    The error of a sample is ``‖pred − y‖ / ‖y‖`` over all output channels and grid points of
    the sample together, after decoding ``pred`` and ``y`` with ``normalizer`` (when given);
    the result is the mean (and median) over the samples. Training reports the same definition
    (``train_rel_l2``).

    Returns ``{"test_rel_l2": mean, "test_rel_l2_median": median, "n_test": n}``.
    """
    model.eval()
    errs = []
    loader = DataLoader(dataset, batch_size=batch_size, shuffle=False)
    for batch in loader:
        x, y = batch["x"].to(device), batch["y"].to(device)
        pred = model(x)
        if pred.shape != y.shape:
            raise ValueError(f"model output {tuple(pred.shape)} does not match the data "
                             f"{tuple(y.shape)}: wrong out_channels or grid for this dataset")
        errs.append(sample_errors(pred, y, normalizer))
    e = torch.cat(errs)
    return {"test_rel_l2": float(e.mean()), "test_rel_l2_median": float(e.median()),
            "n_test": len(e)}
