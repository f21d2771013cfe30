"""Convert a trained model's dense layers into low-rank/Tucker layers ready for DLRT.

``compress(model, tau=0.05)`` replaces, by truncated SVD / HOSVD of their weights,

* ``nn.Linear`` → :class:`~neuralhss.lowrank.layers.LowRankLinear`,
* ``nn.Conv1d/2d/3d`` (``groups=1``; FNO's lifting, projection, channel MLPs and linear skips
  are 1-D kernel-1 convolutions) → :class:`~neuralhss.lowrank.layers.LowRankConv` (or
  :class:`~neuralhss.lowrank.tucker.TuckerConv` with ``conv="tucker"``),
* neuraloperator's ``SpectralConv`` (FNO/TFNO, any weight factorisation, not separable) →
  :class:`~neuralhss.lowrank.tucker.TuckerSpectralConv`,
* Neural-HSS's ``Pointwise`` channel mixers (lifting, local ``W v`` terms, projection) →
  :class:`~neuralhss.lowrank.layers.LowRankPointwise`.

Which modules are which kind is decided by the one registry :mod:`~neuralhss.lowrank.kinds`
(shared with GeoLoRA and the spectral diagnostics); a kind registered there with a
``"compress"`` handler is converted too. HSS operators, gating and normalisation layers are left
as they are. At full rank (``tau`` and
``rank`` both ``None``) the converted model computes the same function up to rounding.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field

from torch import nn

from ..models.registry import count_parameters
from . import kinds as _kinds
from .layers import LowRankConv, LowRankLinear, LowRankModule, LowRankPointwise, check_tau
from .tucker import TuckerConv, TuckerSpectralConv

#: Families of the built-in kinds compress() converts (:mod:`neuralhss.lowrank.kinds`; kinds
#: registered later with a ``"compress"`` handler are accepted too).
KINDS = ("linear", "conv", "spectral", "pointwise")


@dataclass
class Compressed:
    """Result of :func:`compress`.

    Attributes
    ----------
    model : nn.Module
        The converted model (the input itself with ``inplace=True``, else a deep copy).
    params_before, params_after : int
        Real scalars in the trainable parameters (complex counts twice), whole model.
    layers : list of dict
        One entry per converted layer: ``name``, ``kind``, ``weight_shape``, ``ranks``,
        ``params_before``, ``params_after``.
    """

    model: nn.Module
    params_before: int
    params_after: int
    layers: list[dict] = field(default_factory=list)

    @property
    def ratio(self) -> float:
        """``params_after / params_before``."""
        return self.params_after / self.params_before if self.params_before else float("nan")

    def summary(self) -> str:
        """Human-readable table of the converted layers and the totals."""
        lines = [f"{'layer':40s} {'kind':9s} {'weight':>22s} {'ranks':>14s} {'params':>17s}"]
        for e in self.layers:
            lines.append(f"{e['name']:40s} {e['kind']:9s} {str(e['weight_shape']):>22s} "
                         f"{str(e['ranks']):>14s} {e['params_before']:>8d}->{e['params_after']:<8d}")
        lines.append(f"total parameters {self.params_before} -> {self.params_after} "
                     f"({100 * self.ratio:.1f} %)")
        return "\n".join(lines)


def _matrix(cls: type[LowRankLinear]):
    def convert(module: nn.Module, *, rank: int | None, tau: float | None, conv: str,
                spectral_modes: tuple[int, ...]) -> LowRankModule:
        n, m = module.weight.shape
        r = None if rank is None else min(rank, n, m)
        return cls.from_dense(module.weight, module.bias, rank=r, tau=tau)
    return convert


def _convert_conv(module: nn.Module, *, rank: int | None, tau: float | None, conv: str,
                  spectral_modes: tuple[int, ...]) -> LowRankModule:
    w = module.weight
    if conv == "tucker":
        rs = None if rank is None else [min(rank, w.shape[0]), min(rank, w.shape[1])]
        return TuckerConv.from_conv(module, rank=rs, tau=tau)
    r = None if rank is None else min(rank, w.shape[0], w[0].numel())
    return LowRankConv.from_conv(module, rank=r, tau=tau)


def _convert_spectral(module: nn.Module, *, rank: int | None, tau: float | None, conv: str,
                      spectral_modes: tuple[int, ...]) -> LowRankModule:
    w_shape = (module.in_channels, module.out_channels, *module.weight.shape[2:])
    rs = None if rank is None else [min(rank, w_shape[m]) for m in spectral_modes]
    return TuckerSpectralConv.from_spectral_conv(module, rank=rs, tau=tau, tucker_modes=spectral_modes)


# The kinds compress() accepts (neuralhss.lowrank.kinds): a handler
# ``(module, *, rank, tau, conv, spectral_modes) -> LowRankModule`` per kind.
_kinds.set_handlers("compress", {"linear": _matrix(LowRankLinear), "pointwise": _matrix(LowRankPointwise),
                                 "conv": _convert_conv, "spectral": _convert_spectral,
                                 "spectral_factorized": _convert_spectral})


def compress(model: nn.Module, tau: float | None = None, rank: int | None = None, *, inplace: bool = False,
             kinds: tuple[str, ...] | None = None, conv: str = "matrix",
             spectral_modes: tuple[int, ...] = (0, 1)) -> Compressed:
    """Replace dense layers of ``model`` by low-rank/Tucker layers (module docstring).

    Parameters
    ----------
    model : nn.Module
    tau : float in [0, 1), optional
        Per layer (per Tucker mode), keep the smallest rank with relative singular-value tail
        ``≤ tau``.
    rank : int >= 1, optional
        Fixed rank per layer (per Tucker mode), clipped to each layer's dimensions; with ``tau``
        it caps the τ rule's result. Both ``None``: full rank (exact conversion).
    inplace : bool, default False
        Convert ``model`` itself; otherwise a deep copy (the input is untouched).
    kinds : tuple of str, optional
        Layer families to convert, a subset of ``("linear", "conv", "spectral", "pointwise")``
        and of any kind registered with a ``"compress"`` handler
        (:mod:`~neuralhss.lowrank.kinds`). Default: all of them.
    conv : {"matrix", "tucker"}
        Format of converted convolutions.
    spectral_modes : tuple of int, default (0, 1)
        Tucker modes of spectral weights (0 = C_in, 1 = C_out, 2… = mode axes).

    Returns
    -------
    Compressed
        ``.model``, ``.params_before``, ``.params_after``, per-layer ``.layers``, ``.summary()``.
        Converted layers may grow back to full rank under DLRT (``max_rank`` = full).
    """
    if tau is not None:
        check_tau(tau)
    if rank is not None and (isinstance(rank, bool) or int(rank) != rank or rank < 1):
        raise ValueError(f"rank={rank!r} must be a positive integer (it is clipped to each layer's size)")
    kinds = (_kinds.families("compress") if kinds is None
             else _kinds.check_families(kinds, "compress", "kinds"))
    if conv not in ("matrix", "tucker"):
        raise ValueError(f"conv={conv!r}; use 'matrix' or 'tucker'")
    before = count_parameters(model)
    out = model if inplace else copy.deepcopy(model)
    targets = [(name, mod, *found) for name, mod in out.named_modules()
               if (found := _kinds.match(mod, "compress")) and found[0].family in kinds]
    report = []
    for name, mod, kind, convert in targets:
        new = convert(mod, rank=rank, tau=tau, conv=conv, spectral_modes=tuple(spectral_modes))
        new.train(mod.training)
        parent_name, _, attr = name.rpartition(".")
        setattr(out.get_submodule(parent_name) if parent_name else out, attr, new)
        report.append({"name": name, "kind": kind.family, "weight_shape": tuple(new.weight_tensor().shape),
                       "ranks": new.ranks, "params_before": count_parameters(mod),
                       "params_after": count_parameters(new)})
    if not targets and not any(isinstance(m, LowRankModule) for m in out.modules()):
        raise ValueError(f"no layer of kinds {tuple(kinds)} found in {type(model).__name__}; "
                         "nothing to compress")
    return Compressed(out, before, count_parameters(out), report)

