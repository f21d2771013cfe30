"""Spectral diagnostics of trained models: singular spectra, ranks, neural collapse, low-rank bias.

Per weight (:func:`inspect_model`) the singular values of the matrices the weight acts by:

* ``nn.Linear`` and Neural-HSS ``Pointwise``: the weight ``(out, in)``;
* ``nn.Conv1d/2d/3d``: the kernel matricised as ``(C_out, C_in·∏k)`` (per group);
* neuraloperator ``SpectralConv`` (FNO/TFNO, any factorisation): one complex ``C_in × C_out``
  matrix per stored Fourier mode (the layer multiplies the mode-``k`` coefficients by it, so
  these are the layer's singular values per frequency); separable weights are diagonal per
  mode. The τ-ranks of the channel unfoldings ``(C_in, C_out·∏m)`` and ``(C_out, C_in·∏m)``
  (the Tucker ranks TDLRT would keep) are reported as ``unfold_ranks``;
* :class:`~neuralhss.hss.HSSOperator`, per generator and level (``G`` nodes or pairs of the
  level, sibling axis of length 2): leaf blocks ``D`` (``m × m`` per leaf and channel pair),
  leaf bases ``U``, ``V`` (``m × r_L`` per leaf and channel), couplings ``B`` of level ``l``
  (``r_l × r_l`` per node pair, sibling and channel pair: the numerical rank of ``B`` is the
  rank the off-diagonal block ``U B Vᵀ`` actually uses), transfers ``R``, ``W`` of level ``l``
  (the stacked ``[R_α; R_β]``, ``2 r_l × r_{l-1}`` per pair and channel);
* low-rank layers of :mod:`neuralhss.lowrank` (``W = U S Vᵀ``): the singular values of the core
  ``S`` (the non-zero ones of ``W``; ``κ`` is then ``κ(S)``, the quantity robust low-rank
  training controls); Tucker layers: spectral ones per mode from the core expanded on the mode
  axes (orthonormal channel factors leave singular values unchanged), Tucker convolutions from
  the matricised core;
* neuraloperator ``SoftGating``: a diagonal operator, ``σ = |w|``;
* any other weight (a parameter with at least two axes longer than 1): matricised as
  ``(shape[0], -1)``.
Other parameters (biases, normalisation scales) are skipped. Layer kinds are those of the shared
registry :mod:`~neuralhss.lowrank.kinds` with a ``"spectrum"`` handler (``(module, prefix) ->
list[WeightSpectrum]``); registering a kind there with one adds a description.

Scalar diagnostics of a spectrum ``σ₁ ≥ σ₂ ≥ … ≥ 0``:

* numerical rank at τ — the DLRT truncation rule: the smallest ``r`` with
  ``‖σ_{r+1:}‖₂ ≤ τ‖σ‖₂`` (0 for a zero matrix);
* stable rank ``‖W‖_F² / ‖W‖₂² = Σσᵢ² / σ₁²``;
* effective rank ``exp(H(p))``, ``pᵢ = σᵢ / Σσⱼ``, ``H`` the Shannon entropy (Roy & Vetterli);
* condition number ``σ₁ / σ_min`` (``inf`` for a singular matrix);
* tail ``‖σ_{K+1:}‖₂``: the Frobenius distance to the nearest rank-``K`` matrix (Eckart–Young).

:func:`neural_collapse` computes NC1–NC4 and :func:`lowrank_bias` the low-rank-bias check of
Zangrando et al. (2024); :func:`plot_spectra` draws the spectra (matplotlib, Agg backend).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from .._checks import check_number
from . import kinds as _kinds
from .layers import LowRankModule, _MatrixLowRank, check_tau, mode_product, truncation_rank

__all__ = ["WeightSpectrum", "condition_number", "effective_rank", "inspect_model", "lowrank_bias",
           "is_weight", "neural_collapse", "numerical_rank", "plot_spectra", "spectral_table", "stable_rank",
           "tail_norm"]


# --------------------------------------------------------------------------- scalar metrics


def _sigma(s: torch.Tensor | np.ndarray | Sequence[float]) -> torch.Tensor:
    s = torch.as_tensor(np.asarray(s) if not isinstance(s, torch.Tensor) else s).detach().double()
    if s.ndim != 1:
        raise ValueError(f"singular values must be a 1-D sequence, got shape {tuple(s.shape)}")
    if (s < 0).any() or not torch.isfinite(s).all():
        raise ValueError("singular values must be finite and non-negative")
    return torch.sort(s, descending=True).values


def numerical_rank(sigma, tau: float) -> int:
    """Smallest ``r`` with ``‖σ_{r+1:}‖₂ ≤ τ‖σ‖₂`` (the DLRT truncation rule); 0 for ``σ = 0``."""
    s = _sigma(sigma)
    tau = check_tau(tau)
    if len(s) == 0 or s[0] == 0:
        return 0
    return truncation_rank(s, tau, lo=0)


def stable_rank(sigma) -> float:
    """``Σσᵢ² / σ₁² = ‖W‖_F² / ‖W‖₂²`` (0 for a zero matrix)."""
    s = _sigma(sigma)
    return float(s.square().sum() / s[0] ** 2) if len(s) and s[0] > 0 else 0.0


def effective_rank(sigma) -> float:
    """``exp(−Σ pᵢ log pᵢ)`` with ``pᵢ = σᵢ / Σσⱼ`` (0 for a zero matrix)."""
    s = _sigma(sigma)
    total = s.sum()
    if total <= 0:
        return 0.0
    p = s[s > 0] / total
    return float(torch.exp(-(p * p.log()).sum()))


def condition_number(sigma) -> float:
    """``σ₁ / σ_min`` over the given singular values (``inf`` if ``σ_min = 0``)."""
    s = _sigma(sigma)
    if len(s) == 0 or s[0] == 0:
        return float("nan")
    return float(s[0] / s[-1]) if s[-1] > 0 else float("inf")


def tail_norm(sigma, k: int) -> float:
    """``‖σ_{k+1:}‖₂``: the Frobenius distance to the nearest matrix of rank ``≤ k``."""
    s = _sigma(sigma)
    if isinstance(k, bool) or int(k) != k or k < 0:
        raise ValueError(f"k={k!r} must be a non-negative integer")
    return float(s[int(k):].norm())


# --------------------------------------------------------------------------- per-weight spectra


@dataclass
class WeightSpectrum:
    """Singular spectra of one weight, as a stack of equally shaped matrices.

    Attributes
    ----------
    name : str
        Parameter (or module) name in the model.
    kind : str
        ``linear``, ``conv``, ``spectral``, ``hss_D``, ``hss_U``, ``hss_V``, ``hss_B``,
        ``hss_R``, ``hss_W``, ``lowrank``, ``gating`` or ``tensor``.
    shape : tuple
        Shape of the stored weight (for low-rank layers: of the dense ``W`` it represents).
    matrix_shape : tuple
        ``(n, m)`` of each matrix of the stack.
    sigma : Tensor ``(n_blocks, k)``
        Singular values per matrix, descending, float64 (``k = min(n, m)``; for low-rank layers
        the current rank).
    params : tuple of str
        The model parameters this entry describes.
    level : int or None
        HSS level (1 = children of the root, ``L`` = leaves) for HSS generators.
    extra : dict
        E.g. ``unfold_ranks`` for spectral weights (computed at ``extra["tau"]``).
    """

    name: str
    kind: str
    shape: tuple
    matrix_shape: tuple
    sigma: torch.Tensor
    params: tuple[str, ...] = ()
    level: int | None = None
    extra: dict = field(default_factory=dict)

    @property
    def n_blocks(self) -> int:
        return int(self.sigma.shape[0])

    @property
    def full_rank(self) -> int:
        return min(self.matrix_shape)

    def ranks(self, tau: float) -> list[int]:
        """Numerical rank at ``tau`` of every matrix of the stack."""
        return [numerical_rank(s, tau) for s in self.sigma]

    def summary(self, tau: float) -> dict:
        """Aggregates over the stack: ``sigma_max`` (max), ``rank_max``/``rank_mean`` at ``tau``,
        ``stable_rank`` and ``effective_rank`` (means), ``cond`` (max), ``full_rank``."""
        ranks = self.ranks(tau)
        stable = [stable_rank(s) for s in self.sigma]
        eff = [effective_rank(s) for s in self.sigma]
        conds = [condition_number(s) for s in self.sigma]
        conds = [c for c in conds if not math.isnan(c)]
        out = {"name": self.name, "kind": self.kind, "level": self.level, "shape": list(self.shape),
               "matrix_shape": list(self.matrix_shape), "n_blocks": self.n_blocks,
               "full_rank": self.full_rank,
               "sigma_max": float(self.sigma.max()) if self.sigma.numel() else 0.0,
               "rank_max": max(ranks), "rank_mean": float(np.mean(ranks)),
               "stable_rank": float(np.mean(stable)), "effective_rank": float(np.mean(eff)),
               "cond": max(conds) if conds else float("nan")}
        if "unfold" in self.extra:
            out["unfold_ranks"] = [numerical_rank(s, tau) for s in self.extra["unfold"]]
        return out


def _svals(mats: torch.Tensor) -> torch.Tensor:
    """Singular values of a stack ``(..., n, m)`` as ``(n_blocks, min(n, m))`` float64."""
    work = mats.detach().to(torch.complex128 if mats.is_complex() else torch.float64)
    n, m = work.shape[-2:]
    return torch.linalg.svdvals(work.reshape(-1, n, m)).cpu()


def _entry(name, kind, shape, mats, params, level=None, extra=None) -> WeightSpectrum:
    return WeightSpectrum(name, kind, tuple(int(s) for s in shape), tuple(int(s) for s in mats.shape[-2:]),
                          _svals(mats), tuple(params), level, extra or {})


def _pnames(module: nn.Module, prefix: str) -> list[str]:
    return [f"{prefix}.{n}" if prefix else n for n, _ in module.named_parameters()]


def _hss_entries(op, prefix: str) -> list[WeightSpectrum]:
    out = []
    L = op.n_levels
    pre = f"{prefix}." if prefix else ""
    out.append(_entry(pre + "D", "hss_D", op.D.shape, op.D, [pre + "D"], L))
    if L:
        out.append(_entry(pre + "U", "hss_U", op.U.shape, op.U, [pre + "U"], L))
        out.append(_entry(pre + "V", "hss_V", op.V.shape, op.V, [pre + "V"], L))
    for lev in range(1, L + 1):
        b = op.B[lev - 1]
        out.append(_entry(f"{pre}B.{lev - 1}", "hss_B", b.shape, b, [f"{pre}B.{lev - 1}"], lev))
        if lev >= 2:
            for gen_name, plist in (("R", op.R), ("W", op.W)):
                t = plist[lev - 2]                                  # (G, 2, C, r_l, r_{l-1})
                g, _, c, r, rp = t.shape
                stacked = t.permute(0, 2, 1, 3, 4).reshape(g, c, 2 * r, rp)
                nm = f"{pre}{gen_name}.{lev - 2}"
                out.append(_entry(nm, f"hss_{gen_name}", t.shape, stacked, [nm], lev))
    return out


def _spectral_dense(w: torch.Tensor, name: str, shape, params, separable: bool) -> WeightSpectrum:
    w = w.detach()
    if separable:                                                   # (C, m_1, ..., m_d): diagonal
        mags = w.abs().reshape(w.shape[0], -1).T                    # (modes, C)
        sig = torch.sort(mags.double(), dim=1, descending=True).values.cpu()
        return WeightSpectrum(name, "spectral", tuple(shape), (w.shape[0], w.shape[0]), sig, tuple(params))
    modes = w.movedim(0, -1).movedim(0, -1)                         # (m..., C_in, C_out)
    unfold = [torch.linalg.svdvals(w.movedim(a, 0).reshape(w.shape[a], -1).to(torch.complex128)).cpu()
              for a in (0, 1)]
    return _entry(name, "spectral", shape, modes, params, extra={"unfold": unfold})


def _lowrank_entries(mod: LowRankModule, prefix: str) -> list[WeightSpectrum]:
    from .tucker import TuckerConv, TuckerSpectralConv

    params = _pnames(mod, prefix)
    shape = tuple(int(s) for s in _dense_shape(mod))
    if isinstance(mod, _MatrixLowRank):
        n, m = mod.U.shape[0], mod.V.shape[0]
        sig = _svals(mod.S)
        return [WeightSpectrum(prefix, "lowrank", shape, (n, m), sig, tuple(params))]
    core = mod.core.detach()
    for u, md in zip(mod.lowrank_factors(), mod.factor_modes, strict=True):
        if md >= 2:                                                 # spatial / Fourier-mode factors
            core = mode_product(core, u.detach(), md)
    if isinstance(mod, TuckerSpectralConv):
        mats = core.movedim(0, -1).movedim(0, -1)                   # (m..., r_in, r_out)
        unfold = [torch.linalg.svdvals(core.movedim(a, 0).reshape(core.shape[a], -1)
                                       .to(torch.complex128)).cpu() for a in (0, 1)]
        e = _entry(prefix, "spectral", shape, mats, params, extra={"unfold": unfold})
        e.matrix_shape = (mod.in_channels, mod.out_channels)
        return [e]
    if isinstance(mod, TuckerConv):
        e = _entry(prefix, "conv", shape, core.reshape(core.shape[0], -1), params)
        e.matrix_shape = (mod.out_channels, mod.in_channels * math.prod(mod.kernel_size))
        return [e]
    w = mod.weight_tensor().detach()                                # unknown Tucker layer: dense
    return [_entry(prefix, "lowrank", shape, w.reshape(w.shape[0], -1), params)]


def _dense_shape(mod: LowRankModule) -> tuple[int, ...]:
    if isinstance(mod, _MatrixLowRank):
        if hasattr(mod, "kernel_size"):
            return (mod.out_channels, mod.in_channels, *mod.kernel_size)
        return (mod.U.shape[0], mod.V.shape[0])
    return tuple(getattr(mod, "weight_shape", mod.weight_tensor().shape))


def is_weight(p: torch.Tensor) -> bool:
    """A parameter with at least two axes longer than 1 (biases ``(C, 1, 1)`` are not)."""
    return sum(int(s) > 1 for s in p.shape) >= 2


def _spectral_conv_entries(mod: nn.Module, prefix: str) -> list[WeightSpectrum]:
    w = mod.weight if torch.is_tensor(mod.weight) else mod.weight.to_tensor()
    return [_spectral_dense(w, f"{prefix}.weight", tuple(w.shape), _pnames(mod.weight, f"{prefix}.weight"),
                            bool(getattr(mod, "separable", False)))]


def _linear_entries(mod: nn.Module, prefix: str) -> list[WeightSpectrum]:
    return [_entry(f"{prefix}.weight", "linear", mod.weight.shape, mod.weight, [f"{prefix}.weight"])]


def _conv_entries(mod: nn.Module, prefix: str) -> list[WeightSpectrum]:
    w = mod.weight.detach()
    if isinstance(mod, nn.modules.conv._ConvTransposeNd):
        w = w.transpose(0, 1)                                       # (C_out/g·g.., C_in/g, *k)
    g = mod.groups
    mats = w.reshape(g, w.shape[0] // g, -1)
    return [_entry(f"{prefix}.weight", "conv", mod.weight.shape, mats, [f"{prefix}.weight"])]


def _gating_entries(mod: nn.Module, prefix: str) -> list[WeightSpectrum]:
    w = mod.weight.detach().reshape(-1)
    sig = torch.sort(w.abs().double(), descending=True).values[None].cpu()
    return [WeightSpectrum(f"{prefix}.weight", "gating", tuple(mod.weight.shape), (len(w), len(w)), sig,
                           (f"{prefix}.weight",))]


# The kinds inspect_model() describes (neuralhss.lowrank.kinds): a handler
# ``(module, prefix) -> list[WeightSpectrum]`` per kind; modules of other kinds (or none) fall back
# to the generic matricisation of their own weights.
_kinds.set_handlers("spectrum", {
    "lowrank": _lowrank_entries, "hss": _hss_entries,
    "spectral": _spectral_conv_entries, "spectral_factorized": _spectral_conv_entries,
    "spectral_separable": _spectral_conv_entries,
    "linear": _linear_entries, "pointwise": _linear_entries, "linear_other": _linear_entries,
    "conv": _conv_entries, "conv_other": _conv_entries, "gating": _gating_entries})


def inspect_model(model: nn.Module) -> list[WeightSpectrum]:
    """Singular spectra of every weight of ``model`` (module docstring), in module order.

    Every weight (:func:`is_weight`) is described by exactly one entry (its ``params``). A
    module's kind comes from :mod:`~neuralhss.lowrank.kinds`; a kind registered there with a
    ``"spectrum"`` handler is described by it.
    """
    if not isinstance(model, nn.Module):
        raise ValueError(f"model must be an nn.Module, got {type(model).__name__}")
    entries: list[WeightSpectrum] = []
    covered: set[int] = set()
    for prefix, mod in model.named_modules():
        own = list(mod.parameters())
        if not own or all(id(p) in covered for p in own):
            continue
        found = _kinds.match(mod, "spectrum")
        if found is not None:
            entries.extend(found[1](mod, prefix))
            covered.update(id(p) for p in own)
            continue
        for n, p in mod.named_parameters(recurse=False):
            if is_weight(p) and id(p) not in covered:
                nm = f"{prefix}.{n}" if prefix else n
                entries.append(_entry(nm, "tensor", p.shape, p.reshape(p.shape[0], -1), [nm]))
                covered.add(id(p))
    return entries


def spectral_table(spectra: Sequence[WeightSpectrum], tau: float = 0.01) -> str:
    """One header line and one line per entry: blocks × matrix shape, ``σ_max``, numerical rank
    at ``tau`` (max and mean over the stack, and the full rank), mean stable and effective rank,
    max ``κ``, and for spectral weights the τ-ranks of the two channel unfoldings."""
    tau = check_tau(tau)
    lines = [f"{'weight':44s} {'kind':8s} {'lev':>3s} {'blocks x n x m':>16s} {'sigma_max':>9s} "
             f"{'rank':>4s} {'mean':>6s} {'full':>4s} {'stable':>7s} {'eff':>7s} {'cond':>9s}  unfold"]
    for e in spectra:
        s = e.summary(tau)
        lev = "" if e.level is None else str(e.level)
        blk = f"{e.n_blocks}x{e.matrix_shape[0]}x{e.matrix_shape[1]}"
        unf = str(tuple(s["unfold_ranks"])) if "unfold_ranks" in s else ""
        lines.append(f"{e.name:44s} {e.kind:8s} {lev:>3s} {blk:>16s} {s['sigma_max']:9.3g} "
                     f"{s['rank_max']:4d} {s['rank_mean']:6.1f} {s['full_rank']:4d} "
                     f"{s['stable_rank']:7.2f} {s['effective_rank']:7.2f} {s['cond']:9.3g}  {unf}".rstrip())
    return "\n".join(lines)


def plot_spectra(spectra: Sequence[WeightSpectrum], path: str | Path, tau: float = 0.01,
                 title: str | None = None) -> Path:
    """PNG of the spectra, one colour per weight (a stack of matrices: the mean over the stack).

    Left: ``σᵢ/σ₁`` against ``i``. Middle: the relative tail ``‖σ_{i+1:}‖/‖σ‖`` against ``i`` with
    the level ``τ`` (the first ``i`` below it is the numerical rank). Right: mean numerical rank
    at ``τ`` as a fraction of the full rank, per weight.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    tau = check_tau(tau)
    if not spectra:
        raise ValueError("no spectra to plot")
    path = Path(path)
    fig, (ax, tx, bx) = plt.subplots(1, 3, figsize=(18, 5.5), gridspec_kw={"width_ratios": [3, 3, 2]})
    cmap = plt.get_cmap("viridis")
    colour = [cmap(i / max(1, len(spectra) - 1)) for i in range(len(spectra))]
    for e, c in zip(spectra, colour, strict=True):
        s = e.sigma[e.sigma[:, 0] > 0] if e.sigma.numel() else e.sigma
        if s.numel() == 0:
            continue
        curve = (s / s[:, :1]).mean(0).clamp_min(1e-16).numpy()
        ax.semilogy(np.arange(1, len(curve) + 1), curve, color=c, lw=1, alpha=0.8, label=e.name)
        s2 = s.square()
        tail = (s2.flip(1).cumsum(1).flip(1) / s2.sum(1, keepdim=True)).sqrt()
        tail = torch.cat([tail, torch.zeros(len(tail), 1, dtype=tail.dtype)], 1).mean(0)
        tx.semilogy(np.arange(len(tail)), tail.clamp_min(1e-16).numpy(), color=c, lw=1, alpha=0.8)
    ax.set_xlabel("index i")
    ax.set_ylabel("sigma_i / sigma_1")
    ax.grid(True, which="both", alpha=0.3)
    if len(spectra) <= 12:
        ax.legend(fontsize=7)
    tx.axhline(tau, color="k", ls="--", lw=0.8, label=f"tau = {tau:g}")
    tx.set_ylim(bottom=max(1e-16, min(1e-6, tau * 1e-3)))
    tx.set_xlabel("i")
    tx.set_ylabel("relative tail ||sigma_{i+1:}|| / ||sigma||")
    tx.legend(fontsize=8)
    tx.grid(True, which="both", alpha=0.3)
    fracs = [e.summary(tau)["rank_mean"] / max(1, e.full_rank) for e in spectra]
    y = np.arange(len(spectra))
    bx.barh(y, fracs, color=colour)
    bx.set_yticks(y, [e.name for e in spectra], fontsize=max(4, min(8, 400 // max(1, len(spectra)))))
    bx.invert_yaxis()
    bx.set_xlim(0, 1)
    bx.set_xlabel(f"mean numerical rank at tau={tau:g} / full rank")
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


# --------------------------------------------------------------------------- neural collapse


def _class_stats(features: torch.Tensor, labels: torch.Tensor, n_classes: int | None):
    if not isinstance(features, torch.Tensor) or features.ndim != 2:
        raise ValueError(f"features must be a (N, d) tensor, got shape "
                         f"{tuple(getattr(features, 'shape', ()))}")
    labels = torch.as_tensor(labels)
    if labels.ndim != 1 or len(labels) != len(features) or labels.dtype.is_floating_point:
        raise ValueError(f"labels must be N={len(features)} integer class indices, got shape "
                         f"{tuple(labels.shape)} {labels.dtype}")
    h = features.detach().double()
    labels = labels.long().to(h.device)
    C = int(labels.max()) + 1 if n_classes is None else int(n_classes)
    if labels.min() < 0 or labels.max() >= C:
        raise ValueError(f"labels must lie in [0, {C - 1}]")
    counts = torch.bincount(labels, minlength=C)
    if C < 2 or (counts == 0).any():
        raise ValueError(f"need >= 2 classes, each with a sample; class counts {counts.tolist()}")
    means = torch.zeros(C, h.shape[1], dtype=h.dtype, device=h.device).index_add_(0, labels, h)
    means = means / counts[:, None]
    return h, labels, C, means


def neural_collapse(features: torch.Tensor, labels: torch.Tensor, weight: torch.Tensor | None = None,
                    bias: torch.Tensor | None = None) -> dict[str, float]:
    """Neural-collapse metrics (Papyan, Han & Donoho 2020) of last-layer features.

    Notation: features ``hᵢ ∈ ℝᵈ`` (the input of the last linear layer), labels ``yᵢ`` in ``C``
    classes, global mean ``μ_G``, class means ``μ_c``, centred means ``M̃ = [μ_c − μ_G]`` (rows),
    ``Σ_W = 1/N Σᵢ (hᵢ − μ_{yᵢ})(hᵢ − μ_{yᵢ})ᵀ`` (within-class covariance),
    ``Σ_B = 1/C Σ_c (μ_c − μ_G)(μ_c − μ_G)ᵀ`` (between-class covariance), classifier ``W (C, d)``,
    ``b``. All tend to 0 under full collapse.

    * ``nc1 = tr(Σ_W Σ_B⁺) / C`` — within-class variability relative to between-class.
    * ``nc2_equinorm = std_c ‖M̃_c‖ / mean_c ‖M̃_c‖``; ``nc2_equiangular = mean_{c≠c'}
      |cos(M̃_c, M̃_c') + 1/(C−1)|``; ``nc2_etf = ‖M̃M̃ᵀ/‖M̃M̃ᵀ‖_F − (I − 11ᵀ/C)/‖I − 11ᵀ/C‖_F‖_F``
      (distance of the means' Gram matrix to a simplex ETF). With ``weight``:
      ``nc2_w_equinorm``, ``nc2_w_equiangular``, the same for the rows of ``W``.
    * ``nc3 = ‖W/‖W‖_F − M̃/‖M̃‖_F‖_F²`` — self-duality of classifier and class means.
    * ``nc4`` — fraction of samples where the classifier ``argmax_c (W h + b)_c`` disagrees with
      the nearest class mean ``argmin_c ‖h − μ_c‖``.

    Also returned: ``within_var = tr Σ_W``, ``between_var = tr Σ_B``, ``n_classes``.
    ``nc3``/``nc4`` need ``weight``.
    """
    C = weight.shape[0] if weight is not None else None
    h, labels, C, means = _class_stats(features, labels, C)
    mu_g = h.mean(0)
    e = h - means[labels]
    sw = e.T @ e / len(h)
    mc = means - mu_g
    sb = mc.T @ mc / C
    nc1 = float(torch.trace(sw @ torch.linalg.pinv(sb, rtol=1e-10, hermitian=True)) / C)

    def equi(rows: torch.Tensor) -> tuple[float, float]:
        norms = rows.norm(dim=1)
        eqn = float(norms.std(unbiased=False) / norms.mean()) if norms.mean() > 0 else float("nan")
        u = rows / norms.clamp_min(1e-300)[:, None]
        cos = u @ u.T
        off = ~torch.eye(C, dtype=torch.bool, device=rows.device)
        return eqn, float((cos[off] + 1.0 / (C - 1)).abs().mean())

    out: dict[str, float] = {"n_classes": C, "nc1": nc1, "within_var": float(torch.trace(sw)),
                             "between_var": float(torch.trace(sb))}
    out["nc2_equinorm"], out["nc2_equiangular"] = equi(mc)
    gram = mc @ mc.T
    etf = torch.eye(C, dtype=h.dtype, device=h.device) - 1.0 / C
    out["nc2_etf"] = float((gram / gram.norm().clamp_min(1e-300) - etf / etf.norm()).norm())
    if weight is not None:
        w = weight.detach().double().to(h.device)
        if w.ndim != 2 or w.shape[1] != h.shape[1]:
            raise ValueError(f"weight must be (C, d) = (C, {h.shape[1]}), got {tuple(w.shape)}")
        out["nc2_w_equinorm"], out["nc2_w_equiangular"] = equi(w)
        out["nc3"] = float((w / w.norm() - mc / mc.norm().clamp_min(1e-300)).norm() ** 2)
        logits = h @ w.T
        if bias is not None:
            logits = logits + bias.detach().double().to(h.device)
        ncc = torch.cdist(h, means).argmin(1)
        out["nc4"] = float((logits.argmax(1) != ncc).double().mean())
    return out


# --------------------------------------------------------------------------- low-rank bias


def lowrank_bias(model: nn.Module, x: torch.Tensor, y: torch.Tensor, weight_decay: float,
                 n_classes: int | None = None, layers: Sequence[str] | None = None,
                 loss_fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor] | None = None,
                 ) -> list[dict]:
    """Low-rank-bias check of the linear layers of a classifier (Zangrando et al., 2024).

    For a layer ``z = W h + b`` of a network trained on ``L(θ) + (λ/2)‖W‖_F²`` with ``L`` the mean
    loss over the ``N`` samples, split the gradient ``∇_W L = 1/N Σᵢ gᵢ hᵢᵀ`` (``gᵢ = ∂ℓᵢ/∂zᵢ``)
    with ``hᵢ = μ_{yᵢ} + eᵢ`` into ``A = 1/N Σ_c (Σ_{i∈c} gᵢ) μ_cᵀ`` (rank ``≤ K``, the number of
    classes) and ``E = 1/N Σᵢ gᵢ eᵢᵀ``. With the stationarity residual ``ρ = λW + ∇_W L``,
    ``W = (ρ − A − E)/λ``, so the Eckart–Young distance of ``W`` to rank ``K`` obeys

        ``tail_K(W) = ‖σ_{K+1:}(W)‖ ≤ (‖E‖_F + ‖ρ‖_F) / λ ≤ (rms(g)·rms(e) + ‖ρ‖_F) / λ``

    at any point, and at a critical point (``ρ = 0``) the tail is bounded by the within-class
    variation ``rms(e) = (tr Σ_W)^{1/2}`` of the layer's input features divided by ``λ``.

    Parameters
    ----------
    model : nn.Module
        Classifier producing logits ``(N, K)`` from ``x``; evaluated in ``eval()`` mode.
    x, y : Tensor
        The training inputs and integer labels (the whole set over which ``L`` is the mean).
    weight_decay : float > 0
        ``λ`` of the L2 term ``(λ/2)‖W‖²``, i.e. the gradient ``λW`` (``torch.optim.SGD`` /
        ``Adam`` ``weight_decay``; AdamW's decoupled decay has other fixed points).
    n_classes : int, optional
        ``K`` (default: the number of logits).
    layers : sequence of str, optional
        Names of ``nn.Linear`` modules (default: all of them), each applied once per forward.
    loss_fn : callable, optional
        ``loss_fn(logits, y)`` as a mean over samples (default cross-entropy).

    Returns
    -------
    list of dict, one per layer: ``name``, ``shape``, ``K``, ``fro`` (``‖W‖_F``), ``tail``
    (``‖σ_{K+1:}(W)‖``), ``rel_tail`` (``tail/‖W‖_F``), ``within_rms`` (``rms(e)``),
    ``within_rel`` (``rms(e)`` over the rms distance to the global mean), ``grad_rms``
    (``rms(g)``), ``E_fro``, ``residual`` (``‖ρ‖_F``), ``bound`` and ``bound_cs`` (the two
    bounds above), ``weight_decay``.
    """
    check_number(weight_decay, "weight_decay", hint=" (the bound is ~1/λ)")
    named = dict(model.named_modules())
    if layers is None:
        layers = [n for n, m in named.items() if isinstance(m, nn.Linear)]
    bad = [n for n in layers if not isinstance(named.get(n), nn.Linear)]
    if bad or not layers:
        raise ValueError(f"layers {bad or layers} are not nn.Linear modules of the model")
    y = torch.as_tensor(y).long()
    loss_fn = loss_fn or F.cross_entropy
    store: dict[str, tuple[torch.Tensor, torch.Tensor]] = {}

    def hook(name):
        def fn(mod, inp, out):
            if name in store:
                raise ValueError(f"layer {name} is applied more than once per forward; "
                                 "lowrank_bias needs one application per layer")
            store[name] = (inp[0], out)
        return fn

    handles = [named[n].register_forward_hook(hook(n)) for n in layers]
    was = model.training
    model.eval()
    try:
        with torch.enable_grad():
            logits = model(x)
            K = int(n_classes) if n_classes is not None else int(logits.shape[-1])
            loss = loss_fn(logits, y)
            outs = [store[n][1] for n in layers]
            grads = torch.autograd.grad(loss, outs)
    finally:
        for h in handles:
            h.remove()
        model.train(was)
    results = []
    lam = float(weight_decay)
    for name, g in zip(layers, grads, strict=True):
        h = store[name][0].detach().double().reshape(-1, store[name][0].shape[-1])
        g = g.detach().double().reshape(-1, g.shape[-1])
        if len(h) != len(y):
            raise ValueError(f"layer {name} sees {len(h)} feature rows for {len(y)} labels; "
                             "lowrank_bias needs one feature vector per sample")
        n = len(h)
        _, labels, _, means = _class_stats(h, y, None)
        e = h - means[labels]
        gi = g * n                                                  # per-sample gradients ∂ℓᵢ/∂zᵢ
        W = named[name].weight.detach().double()
        grad_w = g.T @ h                                            # = ∇_W L (L a mean)
        E = g.T @ e
        resid = lam * W + grad_w
        sig = torch.linalg.svdvals(W)
        tail = float(sig[K:].norm())
        fro = float(sig.norm())
        within = float(e.square().sum(1).mean().sqrt())
        spread = float((h - h.mean(0)).square().sum(1).mean().sqrt())
        grad_rms = float(gi.square().sum(1).mean().sqrt())
        results.append({
            "name": name, "shape": list(W.shape), "K": K, "fro": fro, "tail": tail,
            "rel_tail": tail / fro if fro > 0 else 0.0, "within_rms": within,
            "within_rel": within / spread if spread > 0 else 0.0, "grad_rms": grad_rms,
            "E_fro": float(E.norm()), "residual": float(resid.norm()),
            "bound": (float(E.norm()) + float(resid.norm())) / lam,
            "bound_cs": (grad_rms * within + float(resid.norm())) / lam, "weight_decay": lam})
    return results
