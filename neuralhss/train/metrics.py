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

from collections.abc import Sequence

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


def band_errors(pred: torch.Tensor, target: torch.Tensor, bands: Sequence[float],
                ndim: int | None = None) -> list[dict[str, float]]:
    """Where in wavenumber an error sits: the relative error of each radial band.

    ``pred``, ``target``: ``(batch, channels, n_1, ..., n_d)`` in the data's units (``ndim``
    grid axes, default all after the first two; the leading axes are pooled). With ``E(k)``
    and ``Y(k)`` the squared moduli of the DFTs of the error and the target over the last
    ``d`` axes and ``|k|`` the radial wavenumber in cycles per domain (integers on each axis,
    periodic reading of the grid), band ``[a, b)`` gets

    * ``"rel_l2"``: ``sqrt(sum_band E / sum_band Y)``, the error relative to what the target
      holds in that band;
    * ``"share"``: ``sum_band E / sum_all E``, the band's part of the squared error (Parseval:
      over bands that cover every ``|k|`` the shares sum to 1).

    ``bands``: increasing edges ``[k_0, k_1, ..., k_m]`` giving ``m`` bands; the last one is
    closed above so that ``k_m`` at least the largest ``|k|`` covers the whole spectrum.
    Returns one ``{"low", "high", "rel_l2", "share"}`` per band.
    """
    if pred.shape != target.shape:
        raise ValueError(f"pred {tuple(pred.shape)} and target {tuple(target.shape)} differ in shape")
    edges = [float(b) for b in bands]
    if len(edges) < 2 or any(b <= a for a, b in zip(edges[:-1], edges[1:], strict=True)):
        raise ValueError(f"bands={bands!r}: give at least two increasing edges")
    d = pred.ndim - 2 if ndim is None else int(ndim)
    if not 1 <= d <= pred.ndim:
        raise ValueError(f"ndim={ndim!r} grid axes for an array of shape {tuple(pred.shape)}; "
                         "give (batch, channels, *grid) arrays or the number of grid axes")
    dims = tuple(range(-d, 0))
    err = torch.fft.fftn((pred - target).double(), dim=dims).abs().square()
    ref = torch.fft.fftn(target.double(), dim=dims).abs().square()
    err, ref = err.reshape(-1, *err.shape[-d:]).sum(0), ref.reshape(-1, *ref.shape[-d:]).sum(0)
    axes = torch.meshgrid(*[torch.fft.fftfreq(n, 1.0 / n, dtype=torch.float64)
                            for n in pred.shape[-d:]], indexing="ij")
    k = torch.stack(axes).square().sum(0).sqrt()
    total = err.sum().clamp_min(1e-300)
    out = []
    for i, (a, b) in enumerate(zip(edges[:-1], edges[1:], strict=True)):
        inside = (k >= a) & ((k <= b) if i == len(edges) - 2 else (k < b))
        out.append({"low": a, "high": b,
                    "rel_l2": float((err[inside].sum() / ref[inside].sum().clamp_min(1e-300)).sqrt()),
                    "share": float(err[inside].sum() / total)})
    return out
