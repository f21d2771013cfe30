"""The methods of the low-data comparisons, by name, each fitted the way it is meant to be.

``fit_method(name, train, test, ...)`` returns the fitted model (``(B, C, *grid) -> (B, C,
*grid)``) and its metrics. Names:

- ``least_squares``: minimum-norm dense least squares, closed form (the linear baseline);
- ``affine_least_squares``: the same around the sample means (an affine map: the baseline for
  problems whose outputs share a non-zero mean pattern, e.g. forced flows);
- ``hss_poly``: linear Neural-HSS with fixed polynomial far-field bases, leaf blocks and
  couplings fitted by convex least squares (:func:`neuralhss.hss.polynomial.fit_polynomial_hss`);
- ``h2_linear``: the linear strong-admissibility operator alone
  (:class:`neuralhss.hss.h2.H2Operator`, the linear path of ``neural_h2``), fitted by convex
  least squares (L-BFGS; the iteration count, at most ``lbfgs_iter``, chosen by early stopping
  on half the training pairs, see :func:`start_neural_h2`);
- ``neural_hss_linear``: linear Neural-HSS (width 1, rank 16, top 5 levels untied) by Adam;
- ``neural_hss``: nonlinear Neural-HSS (width 8, 2 blocks, rank 4) by Adam;
- ``neural_h2``: Neural-HSS v2 (:class:`neuralhss.models.neural_h2.NeuralH2`: strong
  admissibility, width 16, 4 blocks, a linear H² path fitted by convex least squares first when
  the data has one input and one output channel and none otherwise, then everything by Adam);
  the layers continue fields past the boundary as the data's boundary condition says;
- ``uno``: neuraloperator's UNO (:func:`neuralhss.models.fno.uno`: a U of five Fourier blocks,
  full grid -> half grid -> full grid, with the modes and width of ``fno``);
- ``fno``, ``tfno``: neuraloperator's FNO and TFNO, 4 layers; in 2-D 16 modes per axis and
  width 32, in 3-D 8 modes per axis and width 16 (0.66 M parameters; the 2-D size in 3-D has
  18.9 M and takes 4.2× the time and 4.0× the memory per step at 32³,
  ``benchmarks/bench_train_step.py --n 32 --candidates fno fno_w32m16``);
- ``fno_dlrt``, ``neural_hss_dlrt``: the ``fno`` / ``neural_hss`` models with their convertible
  layers compressed to rank 8 / 2 at initialisation (:func:`neuralhss.lowrank.compress`) and
  trained by rank-adaptive DLRT (``τ = 0.05``, ranks capped at the initial ones;
  ``TrainConfig.lowrank``); ``n_params`` is the count after training.
"""

from __future__ import annotations

import copy
import time
from collections.abc import Callable, Sequence
from typing import Any

import torch
from torch import nn
from torch.utils.data import Dataset

from ..models import build, count_parameters, default_config
from ..models.linear import fit_least_squares
from ..models.neural_h2 import default_size
from .loop import InMemory, TrainConfig, evaluate, fit, relative_l2, to_memory
from .symmetry import AUGMENTATIONS, PeriodicShifts, SymmetryAverage, square_images


def _leaf(grid: tuple[int, ...]) -> int:
    return 64 if len(grid) == 3 else 16


def _registry(name: str, **overrides: Any) -> Callable[[tuple[int, ...]], tuple[str, dict[str, Any]]]:
    """The registry's default configuration of ``name`` for a grid (channels set by the
    caller), with ``overrides``: ``fit_method`` and ``neuralhss train`` build the same models."""

    def config(grid: tuple[int, ...]) -> tuple[str, dict[str, Any]]:
        cfg = default_config(name, 1, 1, grid)
        del cfg["in_channels"], cfg["out_channels"]
        return name, {**cfg, **overrides}

    return config


GRADIENT_METHODS: dict[str, Callable[[tuple[int, ...]], tuple[str, dict[str, Any]]]] = {
    "neural_hss_linear": lambda grid: ("neural_hss", dict(
        grid_shape=list(grid), hidden_channels=1, n_layers=1, activation="identity", positional=False,
        rank=16, share="level", untie_top=5, leaf_size=_leaf(grid))),
    "neural_hss": lambda grid: ("neural_hss", dict(
        grid_shape=list(grid), hidden_channels=8, n_layers=2, rank=4, share="level", untie_top=3,
        leaf_size=_leaf(grid))),
    "neural_h2": _registry("neural_h2"),
    "fno": _registry("fno"),
    "tfno": _registry("tfno", rank=0.05),
    "uno": _registry("uno"),
}
# name -> (base method, TrainConfig.lowrank)
LOWRANK_METHODS: dict[str, tuple[str, dict[str, Any]]] = {
    "fno_dlrt": ("fno", {"tau": 0.05, "max_rank": 8, "compress": {"rank": 8}}),
    "neural_hss_dlrt": ("neural_hss", {"tau": 0.05, "max_rank": 2, "compress": {"rank": 2}}),
}
GRADIENT_METHODS.update({name: GRADIENT_METHODS[base] for name, (base, _) in LOWRANK_METHODS.items()})
CLOSED_FORM = ("least_squares", "affine_least_squares", "hss_poly", "h2_linear")
METHODS = CLOSED_FORM + tuple(GRADIENT_METHODS)


#: Largest ratio, on held-out samples, of the linear fit's relative error to that of the
#: training mean, for which ``linear_fit="auto"`` keeps the convex start (both made from half
#: the training samples, scored on the other half). Measured ratios (``examples/results/
#: linear_start_rule/``): near-linear maps 0.03-0.12 (Poisson 16² and 32², n = 4-64, including
#: 16² with eight samples, where the plain error was 0.33 with the CLI's normalisation);
#: coefficient -> solution maps 0.78-2.37 (Darcy 32², n = 4-64; neuraloperator's 16×16 set,
#: n = 4-1000), vorticity at a later time 5.1 (Navier-Stokes 32², n = 16). A Darcy start kept
#: and frozen hurts: on neuraloperator's set at n = 1000 (plain error 0.38, ratio 0.78) the test
#: error was 0.19 against 0.095 without it. Comparing against the mean makes the rule
#: independent of how much of the output a constant field already explains (Darcy's solutions
#: share one bump: the mean alone has error 0.28-0.50 there, Poisson's mean 1.0-2.0).
LINEAR_START_MAX_RATIO = 0.4
LINEAR_FIT_RULES = ("auto", "affine", "always", "never")
#: How the convex start solves its least squares: L-BFGS with early stopping, the exact
#: minimiser (``H2Operator.fit_linear(solver="lstsq")``), or both probed and the one with the
#: lower held-out error kept.
LINEAR_START_SOLVERS = ("lbfgs", "lstsq", "auto")
#: With no solver named, the convex start offers the exact solve beside L-BFGS ("auto") to a
#: linear path of at most this many values, and L-BFGS alone to a larger one: the exact solve
#: forms the least-squares Jacobian, one column per value (the 2-D default's stationary far
#: field has 508 values on 32², 589 on 64²; the 3-D default's box far field 66,575 on 32³).
EXACT_FIT_MAX_VALUES = 4096


def default_linear_solver(linear: nn.Module) -> str:
    """The convex start's solver when none is named: ``"auto"`` for a linear path of at most
    :data:`EXACT_FIT_MAX_VALUES` values, else ``"lbfgs"``."""
    return "auto" if count_parameters(linear, trainable_only=False) <= EXACT_FIT_MAX_VALUES \
        else "lbfgs"

#: Most L-BFGS iterations of the H² linear path's convex fit; the count used is chosen below it
#: on held-out pairs. Stopping early regularises, and the best count differs between problems
#: (``examples/linear_fit_iterations.py``): on 2-D Poisson 64² the held-out error still falls
#: at 1000 iterations (0.072 -> 0.057 from 300 to 1000 at n = 8), on 3-D Poisson 32³ (n = 32)
#: it is lowest near 50 and rises to 0.067 by 1000.
H2_FIT_MAX_ITER = 1000
#: Legendre degrees the linear path's convex fit chooses among, per grid dimension, on the
#: held-out half of the training pairs (with its iteration count), unless the degree is given.
#: On 2-D Poisson 32² (``examples/neural_h2_variants.py --method h2_linear``) the held-out
#: error favours degree 1 at n = 4 and degree 2 at n = 16 and 64, where the test errors are
#: lowest too (degree 3, the constructor's default, was worst at every n); in 3-D every extra
#: probe costs minutes, so the default (2) is kept.
LINEAR_DEGREES: dict[int, tuple[int, ...]] = {1: (1, 2, 3), 2: (1, 2, 3)}
#: L-BFGS iterations of ``hss_poly``'s fit (a fixed count: its tables were measured with it).
HSS_POLY_ITER = 300


def _split(x: torch.Tensor, y: torch.Tensor, validation: tuple[torch.Tensor, torch.Tensor] | None
           ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """The pairs a start probe fits and those it is scored on: all training pairs and the
    validation pairs where those are given, else the two halves of the training pairs."""
    if validation is not None:
        return x, y, *validation
    half = len(x) // 2
    return x[:half], y[:half], x[half:], y[half:]


def _probe_error(model: nn.Module, x: torch.Tensor, y: torch.Tensor, lbfgs_iter: int,
                 center: bool, validation: tuple[torch.Tensor, torch.Tensor] | None = None,
                 solver: str = "lbfgs") -> tuple[float, int]:
    """Error of the linear path fitted and scored on the pairs of :func:`_split`, with its
    iteration count chosen on the scored pairs by early stopping (at most ``lbfgs_iter``; the
    exact ``"lstsq"`` solve has none): ``(error, iterations)``."""
    xf, yf, xv, yv = _split(x, y, validation)
    fit = model.double().fit_linear_path(xf.double(), yf.double(), max_iter=lbfgs_iter,
                                         center=center, validation=(xv, yv), solver=solver)
    return fit.validation, fit.iterations


def _mean_error(y: torch.Tensor, validation: tuple[torch.Tensor, torch.Tensor] | None = None
                ) -> float:
    """Error of the mean of the fitted outputs of :func:`_split` as the prediction for the
    scored ones."""
    _, yf, _, yv = _split(y, y, validation)
    yf, yv = yf.double(), yv.double()
    mean = yf.mean(0, keepdim=True).expand_as(yv)
    return float(relative_l2(mean, yv, yv.ndim - 2).mean())


def _linear_probe(model: nn.Module, config: dict[str, Any] | None, degree: int) -> nn.Module:
    """A linear-path-only copy of ``model`` (built from ``config``) with Legendre degree
    ``degree``, to be fitted on half the training pairs."""
    if config is None or degree == model.linear.degree:
        return copy.deepcopy(model)
    return build("neural_h2", **{**config, "linear_degree": degree, "n_layers": 0,
                                 "linear_path": True}).to(model.x_center.device)


def _choose_linear_start(model: nn.Module, mem, dev: torch.device, lbfgs_iter: int,
                         rule: str, degrees: Sequence[int] | None = None,
                         config: dict[str, Any] | None = None, validation: InMemory | None = None,
                         solver: str = "lbfgs") -> dict[str, Any]:
    """Decide whether (and how) ``neural_h2`` starts from the convex fit of its linear path.

    ``rule``: ``"never"``; ``"always"`` (linear, or affine where that validates better);
    ``"auto"``: the linear path ``y = A x`` fitted on the first half of the training samples must
    have, on the other half, relative error below ``LINEAR_START_MAX_RATIO`` times that of the
    first half's mean output; ``"affine"``: the same for the affine path ``y = y0 + A (x - x0)``
    about the pointwise means (from four samples). Each probe's L-BFGS iteration count (at most
    ``lbfgs_iter``) is chosen on the held-out half by early stopping. ``validation``
    (``InMemory``, pairs that are not training pairs): fit the probes on all training samples
    and score them, and the training mean, on these instead of the held-out half (the affine
    probe then needs two training samples). ``degrees``: Legendre
    degrees of the linear path to probe (with ``config``, the model's configuration, to build
    them; default: the model's own); ``solver`` (``LINEAR_START_SOLVERS``; ``"auto"`` probes
    both); the probe with the lowest held-out error decides. Returns
    ``{"fitted", "centered", "linear_degree", "solver", "validation_rel_l2", "iterations",
    "validation_rel_l2_mean", "validation_rel_l2_by_degree", "scored_on", ...}``.
    """
    if rule not in LINEAR_FIT_RULES:
        raise ValueError(f"linear_fit={rule!r}; use one of {LINEAR_FIT_RULES}")
    if solver not in LINEAR_START_SOLVERS:
        raise ValueError(f"linear_solver={solver!r}; use one of {LINEAR_START_SOLVERS}")
    solvers = ("lbfgs", "lstsq") if solver == "auto" else (solver,)
    own = model.linear.degree
    if rule == "never" or (len(mem) < 2 and validation is None):
        return {"fitted": rule != "never", "centered": False, "linear_degree": own,
                "validation_rel_l2": None}
    if degrees is not None and any(d != own for d in degrees) and config is None:
        raise ValueError("probing other linear degrees needs the model's config to build them")
    if model.linear.far != "boxes":  # the degree probes are the box far field's
        degrees = None
    x, y = mem.x.to(dev), mem.y.to(dev)
    held = None if validation is None else (validation.x.to(dev), validation.y.to(dev))
    centers = ([False] if rule != "affine" else []) + (
        [True] if rule in ("affine", "always") and len(mem) >= (4 if held is None else 2)
        else [])
    if not centers:  # affine with too few samples: nothing to centre or validate it on
        return {"fitted": False, "centered": True, "linear_degree": own, "validation_rel_l2": None}
    probes = {}
    for d in degrees or (own,):
        for c in centers:
            for s in solvers:
                try:
                    probes[d, c, s] = _probe_error(_linear_probe(model, config, d), x, y,
                                                   lbfgs_iter, center=c, validation=held, solver=s)
                except ValueError:
                    if solver != "auto" or s != "lstsq":
                        raise
                    # "auto": the exact solve's Jacobian is too large here; L-BFGS alone
    degree, center, chosen = min(probes, key=lambda k: probes[k][0])
    error, iterations = probes[degree, center, chosen]

    def best(**fixed: Any) -> float | None:
        # the lowest held-out error among the probes with the given degree/centre/solver
        keys = ("degree", "center", "solver")
        found = [e for k, (e, _) in probes.items()
                 if all(k[keys.index(name)] == v for name, v in fixed.items())]
        return min(found) if found else None

    mean = _mean_error(y, held)
    fitted = rule == "always" or error < LINEAR_START_MAX_RATIO * mean
    return {"fitted": fitted, "centered": center, "linear_degree": degree, "solver": chosen,
            "scored_on": "held-out half" if held is None else "validation",
            "validation_rel_l2": error, "iterations": iterations,
            "validation_rel_l2_mean": mean,
            "validation_rel_l2_linear": best(degree=degree, center=False, solver=chosen),
            "validation_rel_l2_affine": best(degree=degree, center=True, solver=chosen),
            "validation_rel_l2_by_degree": {d: best(degree=d)
                                            for d in dict.fromkeys(k[0] for k in probes)},
            **({"validation_rel_l2_by_solver": {s: best(solver=s) for s in solvers}}
               if len(solvers) > 1 else {})}


def _without_linear_path(config: dict[str, Any], device: torch.device, seed: int) -> nn.Module:
    """``neural_h2`` rebuilt from ``config`` (updated in place) without a linear path, its
    blocks started by ``seed`` as they were."""
    config["linear_path"] = False
    torch.manual_seed(seed)
    return build("neural_h2", **config).to(device)


def start_neural_h2(model: nn.Module, config: dict[str, Any], mem, device: torch.device,
                    lbfgs_iter: int = H2_FIT_MAX_ITER, rule: str = "auto", freeze: bool = True,
                    seed: int = 0, degrees: Sequence[int] | None = None, validation: InMemory | None = None,
                    solver: str | None = None) -> tuple[nn.Module, dict[str, Any] | None]:
    """Give a freshly built ``neural_h2`` model its convex start before gradient training.

    With one input and one output channel, the linear path is fitted by convex least squares
    on the training pairs ``mem`` (``InMemory``) where :func:`_choose_linear_start` says so
    (``rule``: ``"auto"``, ``"affine"``, ``"always"``, ``"never"``), and kept fixed during the
    gradient steps if ``freeze`` (Adam's steps have the size of the learning rate however small
    the gradient, so they would walk the path off its least-squares optimum). Where the
    validated fit fails, the model is rebuilt from ``config`` without a linear path (with
    ``seed``). With several input or output channels no convex fit exists: ``"auto"`` rebuilds
    the model without the linear path (``config["linear_path"]`` becomes False; the record
    says ``"dropped"``), the other rules leave it to be trained from zero. Returns
    ``(model, record)``; ``record`` is None when the model keeps no linear path to fit.

    The number of L-BFGS iterations is chosen by early stopping: the count ``k`` with the
    lowest error on the held-out half of the probe, scaled by the ratio of the sample counts
    (``k n / (n // 2)``, at most ``lbfgs_iter``), because the best count grows with the number
    of samples (3-D Poisson 32³: about 25 at n = 16, 50 at n = 32; in 2-D it lies beyond 1000
    at every n measured, ``examples/linear_fit_iterations.py``). With one sample nothing is
    held out and the whole budget is used. ``degrees``: the Legendre degrees of the linear path
    to choose among on the same held-out half (e.g. ``LINEAR_DEGREES[2]``; default: the model's
    own); a chosen degree other than the model's rebuilds it (with ``seed``, so its other
    layers start as they did) and is written to ``config["linear_degree"]``. ``validation``
    (``InMemory``): pairs that are not training pairs, on which every decision above (keep,
    linear or affine, degree, iteration count) is made instead of on the held-out half; the
    probes are then fitted on all ``n`` training pairs, so the count is used unscaled.
    ``solver`` (``LINEAR_START_SOLVERS``): how the least squares are solved, L-BFGS with that
    early stopping, the exact minimiser, or (``"auto"``) whichever validates lower; None
    (default): :func:`default_linear_solver`, by the linear path's size.
    """
    if rule not in LINEAR_FIT_RULES:  # here too: several channels return before the probe
        raise ValueError(f"linear_fit={rule!r}; use one of {LINEAR_FIT_RULES}")
    if getattr(model, "linear", None) is None:
        return model, None
    if model.linear_in is not None:
        # Several input or output channels: no convex fit of the linear path exists, so nothing
        # can validate it; Adam trains it from zero beside the blocks, which on the multi-channel
        # problems (Helmholtz, Maxwell, Gray-Scott 32²) validated as well or worse than no
        # linear path at all (Maxwell at n = 4: 0.44 against 0.60). "auto" drops it; the
        # other rules keep it, trained from zero (what every rule did before).
        if rule != "auto" or not model.blocks:
            return model, None
        return _without_linear_path(config, device, seed), {
            "fitted": False, "validation_rel_l2": None,
            "dropped": "no convex fit with several channels"}
    if solver is None:
        solver = default_linear_solver(model.linear)
    start = _choose_linear_start(model, mem, device, lbfgs_iter, rule, degrees, config,
                                 validation, solver)
    if not start["fitted"] and (start["validation_rel_l2"] is not None or rule == "affine"):
        # The linear map does not generalise (e.g. coefficient -> solution): no linear path.
        return _without_linear_path(config, device, seed), start
    if start["fitted"] and start["linear_degree"] != model.linear.degree:
        config["linear_degree"] = start["linear_degree"]
        dtype = model.x_center.dtype
        torch.manual_seed(seed)
        model = build("neural_h2", **config).to(device=device, dtype=dtype)
    if start["fitted"]:
        iterations = start.get("iterations")
        if iterations is None:  # one sample: nothing was held out, the whole budget
            iterations = lbfgs_iter
        elif validation is None:  # validated on half the pairs; the best count grows with them
            iterations = min(lbfgs_iter, iterations * len(mem) // (len(mem) // 2))
        final = start.get("solver") or ("lstsq" if solver == "lstsq" else "lbfgs")
        start["fit_iterations"] = iterations if final == "lbfgs" else 0
        model.fit_linear_path(mem.x.to(device), mem.y.to(device), max_iter=iterations,
                              center=start["centered"], solver=final)
        if freeze:
            model.linear.requires_grad_(False)
    return model, start


def keep_start_if_better(model: nn.Module, h2: nn.Module, pairs: InMemory, normalizer,
                         device: torch.device, judged_on: str = "training pairs") -> dict[str, Any]:
    """After training ``neural_h2`` on a frozen convex start: silence its hidden blocks (zero
    the last projection, so that the model is its start again) where the start alone has the
    lower error on ``pairs``.

    ``model`` is what was trained (``h2``, the :class:`~neuralhss.models.neural_h2.NeuralH2`
    inside it, possibly wrapped, e.g. by :class:`MeanOffset`). On a linear problem the start is
    the least-squares optimum of the linear path, and the blocks' Adam steps, whose size does
    not shrink with the gradient, can only add to its error; on a problem the start does not
    solve the blocks lower the error of every pair they were trained on and stay. Returns
    ``{"kept_blocks", "rel_l2_trained", "rel_l2_start", "judged_on"}`` (relative L2 in data
    units on ``pairs``, the :func:`evaluate` metric; ``judged_on`` names the pairs).
    """
    last = h2.project[-1]
    saved = copy.deepcopy(last.state_dict())
    with torch.random.fork_rng(devices=[]):  # evaluate's DataLoader draws from the global RNG
        trained = evaluate(model, pairs, normalizer, device=device)["test_rel_l2"]
        with torch.no_grad():
            for p in last.parameters():
                p.zero_()
        start = evaluate(model, pairs, normalizer, device=device)["test_rel_l2"]
    kept = trained < start  # ties, and a NaN from the trained blocks, fall back to the start
    if kept:
        last.load_state_dict(saved)
    return {"kept_blocks": kept, "rel_l2_trained": trained, "rel_l2_start": start,
            "judged_on": judged_on}


def linear_degrees(grid: Sequence[int], model_args: dict[str, Any] | None = None
                   ) -> tuple[int, ...] | None:
    """The linear path's degrees for the convex start to choose among on a grid
    (:data:`LINEAR_DEGREES`), or None (keep the model's) when ``model_args`` sets
    ``linear_degree``."""
    if "linear_degree" in (model_args or {}):
        return None
    return LINEAR_DEGREES.get(len(grid))


def _boundary_of(dataset) -> str:
    """The H² continuation matching the dataset's boundary condition (all axes alike)."""
    bcs = set(dataset.meta.grid.bc)
    if len(bcs) == 1 and (bc := bcs.pop()) in ("dirichlet", "neumann", "periodic"):
        return bc
    return "zeros"


def data_model_args(model_name: str, dataset) -> dict[str, Any]:
    """Model arguments that follow from the data rather than from the model's defaults.

    For ``neural_h2``: the linear path continues fields past the boundary as the data's
    boundary condition says, and on periodic data the hidden blocks wrap around too. Other
    models take nothing from the data here. ``fit_method`` and ``neuralhss train`` both use this,
    so a model built either way is the same model.
    """
    if model_name != "neural_h2":
        return {}
    boundary = _boundary_of(dataset)
    return {"boundary": boundary, **({"hidden_boundary": "periodic"} if boundary == "periodic"
                                     else {})}


class Float64Channel(nn.Module):
    """Apply a one-channel operator fitted in float64 to float32 ``(B, 1, *grid)`` data."""

    def __init__(self, op: nn.Module) -> None:
        super().__init__()
        self.op = op

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.op(x.double()).to(x.dtype)


class MeanOffset(nn.Module):
    """``model(x) + mean``: a model that learns the departure of its outputs from a fixed field
    ``mean`` (``(C, *grid)``, e.g. the mean of the training outputs).

    ``feature=True``: the model also sees ``mean`` as extra input channels,
    ``model([x, mean]) + mean`` (so ``model`` takes ``in_channels + C`` channels). For a
    scattering problem with a fixed source the mean field is close to the incident wave, and a
    model with product terms can then form the first Born source ``(eps - 1) * u_inc`` directly
    instead of building an oscillating field from coordinates.
    """

    def __init__(self, model: nn.Module, mean: torch.Tensor, feature: bool = False) -> None:
        super().__init__()
        self.model = model
        self.feature = bool(feature)
        self.register_buffer("mean", mean.detach().clone())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.feature:
            return self.model(torch.cat([x, self.mean.expand(x.shape[0], *self.mean.shape)], 1)) \
                + self.mean
        return self.model(x) + self.mean


OFFSETS = (None, "mean", "mean_feature")


def fit_method(name: str, train, test, steps: int = 1000, seed: int = 0, lr: float = 1e-3,
               degree: int = 3, untie_top: int = 5, lbfgs_iter: int | None = None,
               leaf_size: int | None = None, progress: bool = False,
               model_args: dict[str, Any] | None = None, device: str = "auto",
               linear_fit: str = "auto", freeze_linear: bool = True,
               weight_decay: float = 0.0, augment: str | None = None,
               validation: Dataset | None = None, offset: str | None = None,
               symmetrize: bool = False, linear_solver: str | None = None,
               fallback_to_start: bool = True,
               ) -> tuple[nn.Module, dict[str, Any]]:
    """Fit method ``name`` on ``train`` and evaluate it on ``test`` (both ``PDEDataset``).

    Gradient-trained methods take ``steps`` AdamW steps (batch ``min(n, 8)``, cosine schedule,
    learning rate ``lr``, decoupled weight decay ``weight_decay``); closed-form ones ignore
    ``steps``. ``leaf_size`` (points per leaf) sets the HSS leaf of ``hss_poly`` (default 16 in
    2-D, 64 in 3-D). ``lbfgs_iter``: L-BFGS iterations of the convex fits, for ``hss_poly`` the
    count (default ``HSS_POLY_ITER``), for the H² linear path of ``h2_linear`` and ``neural_h2``
    the most, the count being chosen by early stopping on held-out training pairs (default
    ``H2_FIT_MAX_ITER``); ``linear_solver`` (``LINEAR_START_SOLVERS``): ``"lstsq"`` solves
    those H² fits exactly instead (no iteration count), ``"auto"`` probes both and keeps the
    one with the lower held-out error; None (default): ``"auto"`` for a linear path of at most
    ``EXACT_FIT_MAX_VALUES`` values (the 2-D default's), else ``"lbfgs"``. ``model_args``
    override the gradient-trained model's configuration (e.g. ``{"hidden_channels": 8}``)
    and, for ``h2_linear``, the linear path's (e.g. ``{"leaf_side": 4, "linear_degree": 2}``);
    ``device`` is where they
    train (``TrainConfig.device``; ``h2_linear`` is fitted there too, the other closed-form fits
    on the CPU). ``linear_fit`` decides
    whether ``neural_h2`` starts from the convex fit of its linear path: ``"always"``,
    ``"never"`` (the linear path starts from zero), ``"auto"``: fit it on the first half of
    the training samples, and keep the convex start only if its relative error on the other
    half is below ``LINEAR_START_MAX_RATIO`` times that of the first half's mean; otherwise,
    and wherever the data has several input or output channels (no convex fit exists), the
    model is built without a linear path
    (a linear map that does not generalise, e.g. coefficient -> solution for Darcy, would
    interpolate the training set and leave the nonlinear blocks nothing to learn from; trained
    from zero beside them it made the Darcy runs worse); ``"affine"``: the same test for the
    affine path about the training means (on Darcy 32² it helps at
    n = 4, but at n = 16 it interpolates the training set as the linear map would, and the
    model without it generalises better: choose it on a validation split). ``h2_linear`` uses
    whichever of linear and affine validates better. ``freeze_linear`` (default) keeps a
    fitted linear path fixed during the gradient steps, so that they only add the nonlinear
    correction. ``fallback_to_start`` (default; with a fitted, frozen start): after training,
    the hidden blocks are silenced, and the model is its convex start again, where the start
    alone has the lower error on the validation pairs (where given) or else the training pairs
    (:func:`keep_start_if_better`; the metrics' ``fallback`` records both errors): on 2-D
    Poisson 64² the trained blocks had added about 1e-6 to an exact start's 3.8e-7.
    ``validation`` (a dataset like ``train``, disjoint from it and from ``test``):
    where given, the convex start of ``neural_h2`` and ``h2_linear`` (keep or drop, linear or
    affine, Legendre degree, L-BFGS iteration count) is decided on it, with the probes fitted
    on all training pairs, instead of on the held-out half of the training pairs (two pairs at
    n = 4); the gradient steps never see it. ``augment="d4"`` trains the gradient-trained
    methods on the training samples and their images under the eight symmetries of the square
    (rotations by 90° and reflections, :func:`square_images`), with the same number of steps;
    valid only for scalar
    fields on a square grid whose operator commutes with those symmetries (Poisson or Darcy
    with one boundary condition on all sides and a symmetric source). ``augment="transpose"``:
    the samples and their transposes only (x and y exchanged), for an isotropic operator on a
    grid that is not mirror-symmetric. ``augment="shifts"`` rolls every
    training pair by a random offset per axis each time it is drawn (:class:`PeriodicShifts`);
    valid for a translation-invariant operator on periodic data (Gray–Scott; not Navier–Stokes
    with a fixed forcing that is not an input). ``"d4+shifts"``: both, for operators that
    commute with the square's symmetries and the grid's translations (Gray–Scott on a periodic
    square, checked to 1e-13 on the solver). ``offset="mean"``: a gradient-trained model
    predicts the pointwise mean of the training outputs (of their images under ``augment``;
    under shifts its average over the grid) plus what it learns (:class:`MeanOffset`), the
    affine start's degenerate case offered to every model; ``offset="mean_feature"``: the same,
    and the model also takes that mean as extra input channels (:class:`MeanOffset`'s
    ``feature``). ``symmetrize=True`` (with
    ``augment``): the returned model is the trained one averaged over the augmentation's group
    (:class:`~neuralhss.train.symmetry.SymmetryAverage`, 8 evaluations per prediction for
    ``"d4"``), exactly equivariant where the training taught the symmetry approximately; the
    metrics then also hold the unaveraged model's ``train_rel_l2_plain`` and
    ``test_rel_l2_plain``, so one run measures both. Returns ``(model, metrics)`` with
    ``test_rel_l2`` (data units), ``n_params`` (real scalars that were fitted) and
    ``train_seconds``.
    """
    if name not in METHODS:
        raise ValueError(f"unknown method {name!r}; available: {list(METHODS)}")
    if augment not in AUGMENTATIONS:
        raise ValueError(f"augment={augment!r}; use one of {AUGMENTATIONS}")
    if offset not in OFFSETS:
        raise ValueError(f"offset={offset!r}; use one of {OFFSETS}")
    if linear_solver is not None and linear_solver not in LINEAR_START_SOLVERS:
        raise ValueError(f"linear_solver={linear_solver!r}; use one of {LINEAR_START_SOLVERS} "
                         "(or None: by the linear path's size)")
    if offset is not None and name in CLOSED_FORM:
        raise ValueError(f"offset={offset!r} is for gradient-trained methods; {name} is a closed-form "
                         "fit (affine_least_squares and h2_linear centre themselves)")
    if symmetrize and (augment is None or name in CLOSED_FORM):
        raise ValueError("symmetrize=True averages a gradient-trained model over the group of "
                         f"its augmentation; got method {name!r} with augment={augment!r}: give "
                         "augment='d4' (or another group) or drop symmetrize")
    if augment in ("shifts", "d4+shifts") and _boundary_of(train) != "periodic":
        raise ValueError(f"augment={augment!r} needs periodic data (every axis periodic); the "
                         f"training set's boundary conditions are {tuple(train.meta.grid.bc)}")
    mem, tmem = to_memory(train), to_memory(test)
    vmem = None if validation is None else to_memory(validation)
    if vmem is not None and (vmem.x.shape[1:] != mem.x.shape[1:] or vmem.y.shape[1:] != mem.y.shape[1:]):
        raise ValueError(f"validation samples {tuple(vmem.x.shape[1:])} -> {tuple(vmem.y.shape[1:])} "
                         f"differ from the training samples' {tuple(mem.x.shape[1:])} -> "
                         f"{tuple(mem.y.shape[1:])}; split both from one dataset")
    grid = tuple(train.grid_shape)
    t0 = time.perf_counter()
    extra: dict[str, Any] = {}
    if name in ("least_squares", "affine_least_squares"):
        model: nn.Module = fit_least_squares(mem.x, mem.y, center=name == "affine_least_squares")
        n_params = int(mem.x[0].numel() * mem.y[0].numel())  # the dense matrix it represents
    elif name == "h2_linear":
        if train.in_channels != 1 or train.out_channels != 1:
            raise ValueError("h2_linear fits one input and one output channel")
        size = default_size(len(grid))
        config = {"grid_shape": list(grid), "n_layers": 0, "leaf_side": size["linear_leaf_side"],
                  "expansion": size["expansion"], "linear_degree": size["linear_degree"],
                  "linear_far": size["linear_far"], "boundary": _boundary_of(train),
                  **(model_args or {})}
        dev = TrainConfig(device=device).resolved_device()
        model = build("neural_h2", **config)
        model, start = start_neural_h2(model.double().to(dev), config, mem, dev,
                                       lbfgs_iter or H2_FIT_MAX_ITER, "always",
                                       degrees=linear_degrees(grid, model_args),
                                       validation=vmem, solver=linear_solver)
        extra["linear_start"] = start
        model = Float64Channel(model)
        n_params = count_parameters(model.op.linear, trainable_only=False)
    elif name == "hss_poly":
        from ..hss.polynomial import fit_polynomial_hss

        if train.in_channels != 1 or train.out_channels != 1:
            raise ValueError("hss_poly fits one input and one output channel")
        op = fit_polynomial_hss(mem.x[:, 0], mem.y[:, 0], leaf_size or _leaf(grid), degree=degree,
                                share="level", untie_top=untie_top,
                                max_iter=lbfgs_iter or HSS_POLY_ITER)
        model = Float64Channel(op)
        n_params = int(sum(p.numel() for p in (op.D, *op.B)))
    else:
        model_name, cfg = GRADIENT_METHODS[name](grid)
        cfg.update(in_channels=train.in_channels + (train.out_channels if offset == "mean_feature"
                                                    else 0),
                   out_channels=train.out_channels)
        cfg.update(data_model_args(model_name, train))
        cfg.update(model_args or {})
        torch.manual_seed(seed)
        dev = TrainConfig(device=device).resolved_device()
        model = build(model_name, **cfg).to(dev)
        start = None
        if model_name == "neural_h2":
            model, start = start_neural_h2(model, cfg, mem, dev, lbfgs_iter or H2_FIT_MAX_ITER,
                                           linear_fit, freeze_linear, seed,
                                           degrees=linear_degrees(grid, model_args),
                                           validation=vmem, solver=linear_solver)
            if start is not None:
                extra["linear_start"] = start
                if start["fitted"]:
                    # the convex start alone, for the record (the model is its linear path
                    # until trained)
                    extra["linear_test_rel_l2"] = evaluate(model, tmem, train.normalizer,
                                                           device=dev)["test_rel_l2"]
        h2 = model  # the NeuralH2 (where it is one) inside whatever wraps it below
        data = (square_images(mem, augment.split("+")[0])
                if augment in ("d4", "transpose", "d4+shifts") else mem)
        if offset is not None:
            mean = data.y.mean(0)
            if augment in ("shifts", "d4+shifts"):  # the mean over every translation
                mean = mean.mean(tuple(range(1, mean.ndim)), keepdim=True).expand_as(mean)
            model = MeanOffset(model, mean.to(dev), feature=offset == "mean_feature")
        if augment in ("shifts", "d4+shifts"):
            data = PeriodicShifts(data, seed)
        bs = min(len(data), 8)
        epochs = max(1, steps // -(-len(data) // bs))
        lowrank = LOWRANK_METHODS[name][1] if name in LOWRANK_METHODS else None
        res = fit(model, data, TrainConfig(epochs=epochs, batch_size=bs, lr=lr,
                                          weight_decay=weight_decay,
                                          seed=seed, progress=progress, lowrank=lowrank,
                                          device=str(dev)))
        if (fallback_to_start and model_name == "neural_h2" and start is not None
                and start["fitted"] and freeze_linear and h2.blocks):
            extra["fallback"] = keep_start_if_better(
                model, h2, mem if vmem is None else vmem, train.normalizer, dev,
                "training pairs" if vmem is None else "validation")
        # a frozen linear path still counts
        n_params = count_parameters(model, trainable_only=False) if model_name == "neural_h2" \
            else res["n_params"]
        extra.update({"train_rel_l2": res["train_rel_l2"], "steps": steps})
        if "lowrank" in res:
            extra["ranks"] = res["lowrank"]["ranks"]
    seconds = time.perf_counter() - t0
    # Train and test error by one definition, in data units (not the normalised running loss).
    where = next(iter(model.state_dict().values())).device
    if symmetrize:
        for split, data in (("train", mem), ("test", tmem)):
            extra[f"{split}_rel_l2_plain"] = evaluate(model, data, train.normalizer,
                                                      device=where)["test_rel_l2"]
        model = SymmetryAverage(model, augment, seed=seed)
    extra["train_rel_l2"] = evaluate(model, mem, train.normalizer, device=where)["test_rel_l2"]
    metrics = evaluate(model, tmem, train.normalizer, device=where)
    metrics.update({"n_params": n_params, "train_seconds": seconds, **extra})
    return model, metrics
