"""Neural-HSS v2: nonlinear blocks on strong-admissibility (H²) layers, with a linear path.

``y = y0 + A (x - x0) + project(blocks(lift(x)))`` where

* ``A`` is a linear :class:`~neuralhss.hss.h2.H2Operator` from the input channels to the output
  channels (a pointwise channel map followed by a depthwise H² operator): the linear
  Green's-function learner. For one input and one output channel it is fitted by convex least
  squares before gradient training (:func:`neuralhss.train.methods.fit_method`), so the model
  starts where the best linear answer is. ``x0`` and ``y0`` are zero (a linear path) unless the
  fit is centred on the training means (an affine path: the answer for maps such as Darcy's
  coefficient -> solution, whose outputs share a large mean pattern that no linear map of the
  input carries);
* every block is ``v <- sigma(M H(v) + W v + b [+ (P H(v)) * (Q v)])`` with ``H`` a depthwise H²
  operator (near field convolution + polynomial far field through interaction lists), ``M``,
  ``W``, ``P``, ``Q`` pointwise channel mixing; the bracketed product (``multiplicative``, on in
  the default configuration) lets local features modulate the far field;
* the last layer of ``project`` starts at zero, so at initialisation the model *is* its linear
  path and training adds the nonlinear correction.

Unlike the HSS blocks of :class:`~neuralhss.models.neural_hss.NeuralHSS`, touching boxes never
interact through a low-rank coupling, so predictions carry no box edges, and the channel mixing
is pointwise (parameters grow like ``width**2``, not ``width**2 * rank**2`` per node).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from ..hss._lstsq import LeastSquaresFit
from ..hss.h2 import BOUNDARIES, H2Operator
from .neural_hss import ACTIVATIONS, Pointwise, hidden_width
from .registry import register, register_defaults, register_earlier_defaults


class NeuralH2(nn.Module):
    """Neural-HSS v2 operator ``(B, in_channels, *grid_shape) -> (B, out_channels, *grid_shape)``.

    Parameters
    ----------
    in_channels, out_channels : int
        Data channels.
    grid_shape : sequence of int
        The grid (each side a multiple of ``leaf_side``); the model is tied to it.
    hidden_channels : int, default 16
        Hidden channels (``width=`` is a deprecated alias, removed in 0.2).
    n_layers : int, default 4
        Nonlinear blocks (0: the model is its linear path alone).
    leaf_side : int, default 4
        Side of the finest far-field boxes, in points.
    degree : int, default 0
        Legendre degree per axis of the far-field expansions of the hidden blocks (0: box
        averages; the exact near field carries the local detail, and the linear path keeps
        ``linear_degree``).
    linear_degree : int, default 3
        The same for the linear path.
    linear_leaf_side : int, optional
        Side of the linear path's finest far-field boxes (default ``leaf_side``): in 3-D the
        linear path wants wider leaves than the hidden blocks (a degree-2 far field needs
        leaves of at least 3 points), whose cost grows with the near field's width.
    linear_near_radius : int or "full", optional
        Near-field radius of the linear path (default ``2 * linear_leaf_side - 1``). ``"full"``
        (the grid's side minus one, square or cube grids) makes the linear path one
        translation-invariant kernel over the whole grid on the continued input, with no far
        field (:class:`~neuralhss.hss.h2.H2Operator`'s ``near_radius``): with
        ``boundary="dirichlet"`` the method of images, which the polynomial far field only
        approximates: on 2-D Poisson 32², fitted to 200 pairs, the far-field path levels off at
        a relative error of 0.017–0.020 (Legendre degree 3 and 2), the full kernel falls below
        1e-3 (``examples/linear_path_floor.py``). It costs ``(2 n - 1)**d`` kernel values and an
        FFT of the padded input per apply.
    linear_far, hidden_far : {"boxes", "grids", "stationary"}, default "boxes"
        The far field of the linear path and of the hidden blocks
        (:class:`~neuralhss.hss.h2.H2Operator`'s ``far``): polynomial box expansions through
        interaction lists, kernels on nested coarse grids, translation-invariant on every
        level, or the same levels undecimated (``"stationary"``): one translation-invariant
        kernel over the grid built from as few values, which commutes with every shift (their
        B-spline degree is then ``linear_degree`` and ``degree``). On periodic, translation-
        invariant data (Gray–Scott) ``hidden_far="stationary"`` suits the hidden blocks; where
        boundaries or a fixed source single out positions the box far field did better.
    expansion : {"tensor", "total"}, default "tensor"
        Which polynomial products every far field keeps (:class:`~neuralhss.hss.h2.H2Operator`'s
        ``expansion``): all of degree ``<= degree`` per axis, or of total degree ``<= degree``
        (fewer coupling parameters, most of all in 3-D).
    boundary : {"dirichlet", "neumann", "periodic", "zeros"}, default "dirichlet"
        Continuation of the input past the boundary in the linear path (match the data's
        boundary condition; see :mod:`neuralhss.hss.h2`).
    hidden_boundary : {"dirichlet", "neumann", "periodic", "zeros"}, default "neumann"
        The same for the hidden blocks, whose features (e.g. a positive coefficient) need not
        vanish on the boundary; ``"periodic"`` for periodic data.
    blend, hidden_blend : bool, default True
        Blended (continuous) evaluation of the far field in the linear path and in the hidden
        blocks (:class:`~neuralhss.hss.h2.H2Operator`'s ``blend``).
    hidden_near_radius : int, optional
        Near-field radius of the hidden blocks (default ``2 * leaf_side - 1``, the exact H²
        near field; smaller radii make the blocks more local and cheaper).
    activation : {"gelu", "relu", "tanh", "silu", "identity"}, default "gelu"
    positional : bool, default True
        Append grid coordinates (in [0, 1] per axis) to the hidden blocks' input.
    linear_path : bool, default True
        Add the linear H² path ``A x``. With one input and one output channel it can be fitted
        by convex least squares (:meth:`fit_linear_path`); with several it can only be trained
        with the blocks, and :func:`~neuralhss.train.methods.start_neural_h2` (the training
        entry points' ``linear_fit="auto"``) builds the model without it there.
    coupling_init : float, default 0.1
        ``init_scale`` of the hidden blocks' H² layers (small couplings start the blocks near
        local maps, which generalised better in the low-data runs).
    projection_channels : int, optional
        Hidden channels of the two-layer pointwise projection (default ``2 * hidden_channels``).
    multiplicative : bool, default True
        Add a product term to every block, ``v <- sigma(M H(v) + W v + b + (P H(v)) * (Q v))``
        (``Q`` starts at zero, so the block starts as the plain one): the far field modulated by
        the local features, the shape of a variable-coefficient solution operator
        (``grad u ~ flux / a``). ``False`` gives the plain blocks of version 1 (checkpoints
        written then rebuild with them: :func:`~neuralhss.models.registry.from_spec`).
    symmetric : bool, default False
        Make every H² layer commute with the square's (cube's) symmetries
        (:class:`~neuralhss.hss.h2.H2Operator`'s ``symmetric``); with the pointwise layers
        around them the whole model then does, exactly, for scalar channels, as the solution
        operator of an isotropic PDE with one boundary condition on all sides and a symmetric
        source does (Poisson, Darcy, Helmholtz with a centred source). Needs
        ``positional=False`` (the coordinates single out a corner) and a square (cube) grid.
        The hidden blocks then have isotropic kernels only, which cannot carry a direction: on
        Darcy 32² at n = 16 the error rose tenfold.
    linear_symmetric : bool, default False
        The same for the linear path alone (implied by ``symmetric``): a symmetric linear
        problem's Green's function loses nothing by it, and the fit has fewer free parameters.
    linear_dtype : {"float32", "float64"}, default "float32"
        Precision of the linear path's parameters and arithmetic (its input and output are cast
        to and from it). A linear path fitted exactly (``fit_linear_path(solver="lstsq")``)
        reaches relative errors near 1e-6 on Poisson, where float32 FFTs add errors of the same
        size; ``"float64"`` keeps them out at the cost of one double-precision channel.
    born : bool, default False
        Give the operator of every block a product of local features as its argument,
        ``H(v + (R v) * (S v))`` instead of ``H(v)`` (``S`` starts at zero): the shape of a
        Born series, ``u_{k+1} = u_0 + G (q u_k)``, in which the Green's function acts on the
        product of the contrast and the current field (scattering), where ``multiplicative``
        multiplies after the operator.
    hidden_share_levels : bool, default True
        One far-field coupling kernel for every level of a hidden block, scaled per level
        (:class:`~neuralhss.hss.h2.H2Operator`'s ``share_levels``), which suits scale-free
        Green's functions; ``False`` gives each level its own kernel, for operators with a
        length scale (waves: a wavelength). The linear path always has per-level kernels.
    hidden_coupling_rank : int, optional
        Factor every hidden block's far-field couplings over its channels into this many shared
        kernels mixed per channel (:class:`~neuralhss.hss.h2.H2Operator`'s ``coupling_rank``);
        with a far field of degree 2 the couplings are most of the model's parameters. ``None``
        (default): a coupling kernel per channel.
    hidden_near_units : float, default 1.0
        ``near_units`` of the hidden blocks' H² operators: their near kernels stored this many
        times larger than they act, which scales their gradient steps down by as much (for
        wide near fields, ``hidden_near_radius``).
    hidden_grid_radius : int, default 4
        ``grid_radius`` of the hidden blocks' H² operators with ``hidden_far="grids"`` or
        ``"stationary"``: the radius, in coarse points, of every coarse level's kernel but the
        coarsest. Larger radii leave fewer, finer levels (one level of spacing 2 on a 32² grid
        at radius 16), whose kernels smooth the field less.
    """

    def __init__(self, in_channels: int = 1, out_channels: int = 1,
                 grid_shape: Sequence[int] = (64, 64), hidden_channels: int = 16,
                 n_layers: int = 4,
                 leaf_side: int = 4, degree: int = 0, linear_degree: int = 3,
                 boundary: str = "dirichlet", activation: str = "gelu", positional: bool = True,
                 linear_path: bool = True, coupling_init: float = 0.1,
                 hidden_boundary: str = "neumann", hidden_near_radius: int | None = None,
                 blend: bool = True, hidden_blend: bool = True,
                 projection_channels: int | None = None, multiplicative: bool = True, *,
                 linear_leaf_side: int | None = None, linear_near_radius: int | str | None = None,
                 expansion: str = "tensor", linear_far: str = "boxes", hidden_far: str = "boxes",
                 symmetric: bool = False, linear_symmetric: bool = False,
                 hidden_share_levels: bool = True, born: bool = False,
                 linear_dtype: str = "float32", hidden_coupling_rank: int | None = None,
                 hidden_near_units: float = 1.0, hidden_grid_radius: int = 4,
                 width: int | None = None) -> None:
        super().__init__()
        width = hidden_width(hidden_channels, width, "NeuralH2")
        if activation not in ACTIVATIONS:
            raise ValueError(f"activation={activation!r}; use one of {sorted(ACTIVATIONS)}")
        for name, b in (("boundary", boundary), ("hidden_boundary", hidden_boundary)):
            if b not in BOUNDARIES:
                raise ValueError(f"{name}={b!r}; use one of {BOUNDARIES}")
        for name, v in (("in_channels", in_channels), ("out_channels", out_channels),
                        ("hidden_channels", width)):
            if int(v) != v or v < 1:
                raise ValueError(f"{name}={v!r} must be a positive integer")
        if int(n_layers) != n_layers or n_layers < 0:
            raise ValueError(f"n_layers={n_layers!r} must be a non-negative integer")
        if linear_dtype not in ("float32", "float64"):
            raise ValueError(f"linear_dtype={linear_dtype!r}; use 'float32' or 'float64'")
        if not linear_path and n_layers == 0:
            raise ValueError("n_layers=0 without linear_path leaves no model; set one of them")
        if symmetric and positional and n_layers:
            raise ValueError("symmetric=True needs positional=False: the coordinate channels "
                             "single out a corner of the grid, so no model using them commutes "
                             "with its symmetries")
        self.grid_shape = tuple(int(n) for n in grid_shape)
        self.in_channels, self.out_channels = int(in_channels), int(out_channels)
        d = len(self.grid_shape)
        self.linear_in = (Pointwise(in_channels, out_channels, bias=False)
                          if linear_path and (in_channels, out_channels) != (1, 1) else None)
        if linear_near_radius == "full":
            if len(set(self.grid_shape)) > 1:
                raise ValueError(f"linear_near_radius='full' needs a square (cube) grid; got "
                                 f"{self.grid_shape}: give the radius as an integer")
            linear_near_radius = self.grid_shape[0] - 1
        elif linear_near_radius is not None and (isinstance(linear_near_radius, str)
                                                 or int(linear_near_radius) != linear_near_radius):
            raise ValueError(f"linear_near_radius={linear_near_radius!r}; give an integer radius "
                             "or 'full'")
        self.linear = (H2Operator(self.grid_shape, out_channels,
                                  leaf_side if linear_leaf_side is None else linear_leaf_side,
                                  degree=linear_degree, near_radius=linear_near_radius,
                                  boundary=boundary, share_levels=False, init_scale=0.0,
                                  blend=blend, expansion=expansion, far=linear_far,
                                  symmetric=symmetric or linear_symmetric,
                                  dtype=getattr(torch, linear_dtype))
                       if linear_path else None)
        # Centres of the affine path, (channels, *grid); zero for a linear path.
        self.register_buffer("x_center", torch.zeros(self.in_channels, *self.grid_shape))
        self.register_buffer("y_center", torch.zeros(self.out_channels, *self.grid_shape))
        self.positional = bool(positional)
        if self.positional:
            axes = [torch.linspace(0, 1, n) for n in self.grid_shape]
            self.register_buffer("coords", torch.stack(torch.meshgrid(*axes, indexing="ij")),
                                 persistent=False)
        self.blocks = nn.ModuleList()
        self.project = None
        for name, flag in (("multiplicative", multiplicative),
                           ("hidden_share_levels", hidden_share_levels), ("born", born)):
            if not isinstance(flag, bool):
                raise ValueError(f"{name}={flag!r} must be True or False")
        self.multiplicative = multiplicative
        self.born = born
        if n_layers:
            self.lift = Pointwise(in_channels + (d if self.positional else 0), width)
            for _ in range(n_layers):
                blk = {"h2": H2Operator(self.grid_shape, width, leaf_side, degree=degree,
                                        boundary=hidden_boundary, init_scale=coupling_init,
                                        near_radius=hidden_near_radius, blend=hidden_blend,
                                        expansion=expansion, symmetric=symmetric,
                                        share_levels=hidden_share_levels, far=hidden_far,
                                        coupling_rank=hidden_coupling_rank,
                                        near_units=hidden_near_units,
                                        grid_radius=hidden_grid_radius),
                       "mix": Pointwise(width, width, bias=False),
                       "local": Pointwise(width, width)}
                if self.multiplicative:
                    blk["far_gate"] = Pointwise(width, width, bias=False)
                    blk["local_gate"] = Pointwise(width, width, bias=False)
                    with torch.no_grad():
                        blk["local_gate"].weight.zero_()
                if self.born:
                    blk["born_a"] = Pointwise(width, width, bias=False)
                    blk["born_b"] = Pointwise(width, width, bias=False)
                    with torch.no_grad():
                        blk["born_b"].weight.zero_()
                self.blocks.append(nn.ModuleDict(blk))
            hidden = projection_channels or 2 * width
            self.project = nn.Sequential(Pointwise(width, hidden), ACTIVATIONS[activation](),
                                         Pointwise(hidden, out_channels))
            if linear_path:
                with torch.no_grad():
                    self.project[-1].weight.zero_()
                    self.project[-1].bias.zero_()
        self.act = ACTIVATIONS[activation]()

    def linear_part(self, x: torch.Tensor) -> torch.Tensor:
        """The linear (or affine) path ``y0 + A (x - x0)`` (zeros without one)."""
        if self.linear is None:
            return x.new_zeros(x.shape[0], self.out_channels, *self.grid_shape)
        x = x - self.x_center
        v = x if self.linear_in is None else self.linear_in(x)
        # a float64 linear path (linear_dtype) keeps an exact convex fit's accuracy
        return self.y_center + self.linear(v.to(self.linear.near.dtype)).to(x.dtype)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.ndim != len(self.grid_shape) + 2 or tuple(x.shape[1:]) != (self.in_channels, *self.grid_shape):
            raise ValueError(f"input shape {tuple(x.shape)} does not match this model's "
                             f"(batch, {self.in_channels}, *{self.grid_shape}); Neural-HSS is built "
                             "for one grid (rebuild it with grid_shape= for other data)")
        y = self.linear_part(x)
        if not self.blocks:
            return y
        if self.positional:
            x = torch.cat([x, self.coords.to(x.dtype).expand(x.shape[0], *self.coords.shape)], 1)
        v = self.lift(x)
        last = len(self.blocks) - 1
        for k, blk in enumerate(self.blocks):
            h = blk["h2"](v + blk["born_a"](v) * blk["born_b"](v) if self.born else v)
            v_new = blk["mix"](h) + blk["local"](v)
            if self.multiplicative:
                v_new = v_new + blk["far_gate"](h) * blk["local_gate"](v)
            v = v_new
            if k < last:
                v = self.act(v)
        return y + self.project(v)

    @torch.no_grad()
    def fit_linear_path(self, x: torch.Tensor, y: torch.Tensor, max_iter: int = 300,
                        center: bool = False,
                        validation: tuple[torch.Tensor, torch.Tensor] | None = None,
                        check_every: int = 25, solver: str = "lbfgs") -> LeastSquaresFit:
        """Fit the linear path to pairs ``(x, y)`` (``(n, 1, *grid)`` each) by convex least
        squares (in float64); only for one input and one output channel. ``center=True`` fits
        the affine path ``y0 + A (x - x0)`` with ``x0``, ``y0`` the pointwise means of ``x`` and
        ``y`` (needs at least two samples).

        ``max_iter`` L-BFGS iterations; with ``validation = (x_val, y_val)``, held-out pairs,
        at most that many: the count with the lowest mean relative L2 error of the path on them
        (checked every ``check_every`` iterations) is kept (early stopping). Returns the
        :class:`~neuralhss.hss._lstsq.LeastSquaresFit` (relative squared misfit, iterations,
        validation error and history). ``solver``: ``"lbfgs"`` (as above) or ``"lstsq"``, the
        exact minimiser (:meth:`~neuralhss.hss.h2.H2Operator.fit_linear`; no early stopping,
        the validation error is only reported).
        """
        if self.linear is None or self.linear_in is not None:
            raise ValueError("fit_linear_path needs linear_path=True and one input and output channel")
        if center and len(x) < 2:
            raise ValueError("an affine (centred) fit needs at least two samples; use center=False")
        self.x_center.copy_(x.mean(0) if center else torch.zeros_like(self.x_center))
        self.y_center.copy_(y.mean(0) if center else torch.zeros_like(self.y_center))
        x, y = x - self.x_center, y - self.y_center
        dtype = self.linear.near.dtype
        self.linear.double()
        validate = None
        if validation is not None:
            xv, yv = (v.double() for v in validation)
            if xv.shape[1:] != x.shape[1:] or yv.shape != xv.shape:
                raise ValueError(f"validation pairs {tuple(xv.shape)}, {tuple(yv.shape)} must both "
                                 f"be (n, 1, *{self.grid_shape})")
            if not (torch.isfinite(xv).all() and torch.isfinite(yv).all()):
                raise ValueError("validation pairs hold NaN or inf; clean the data before fitting")
            xv = xv - self.x_center.double()
            yv_norm = yv.flatten(1).norm(dim=1).clamp_min(torch.finfo(torch.float64).tiny)

            def validate() -> float:
                pred = self.y_center.double() + self.linear(xv)
                return float(((pred - yv).flatten(1).norm(dim=1) / yv_norm).mean())

        with torch.enable_grad():
            fit = self.linear.fit_linear(x.double(), y.double(), max_iter=max_iter,
                                         validate=validate, check_every=check_every,
                                         solver=solver)
        self.linear.to(dtype)
        return fit

# Specs written before the multiplicative blocks became the default (spec version 1).
register_earlier_defaults("neural_h2", 1, multiplicative=False)


@register("neural_h2")
def neural_h2(**config) -> NeuralH2:
    """Build :class:`NeuralH2` from keyword arguments."""
    return NeuralH2(**config)


def default_size(ndim: int) -> dict:
    """Default width, depth, boxes, degrees and block kind on a ``ndim``-D grid.

    The hidden blocks keep only box averages in their far field (degree 0): on Darcy 32² that
    generalised better than degree 1 or 2 (which fit the training samples more closely), and it
    makes a training step cheaper than FNO's; on linear problems the linear path carries the
    far field. In 1-D and 2-D that path is one translation-invariant kernel on undecimated
    nested grids (``linear_far="stationary"``, 508 values on 32²) in double precision; its
    B-spline degree is 3, which the box far field (``linear_far="boxes"``, leaves of 4 points)
    also admits. Fitted exactly by least squares, that path (degree 2 or 4) reached relative
    errors of 2e-6 to 3e-6 on 2-D Poisson 32² from 4 pairs, where the polynomial box far
    field (the default until 2026-12-07) stalls near 0.02 however many pairs it gets
    (``examples/linear_path_floor.py``, ``examples/neural_h2_variants.py``). The blocks are
    multiplicative: on Darcy 32² (n = 16) that
    lowered the test error from 0.106 to 0.089 (3 seeds) for 10 % more parameters, and it did
    not hurt on Poisson or Helmholtz (``examples/neural_h2_variants.py``). In 3-D the hidden
    blocks' leaves are 2 points wide, while the linear path has leaves of 4 points and
    expansions of total degree 2 (10 products instead of the 27 of a tensor degree): on 3-D
    Poisson 32³ that lowered its error at every n measured against leaves of 2 with degree 1,
    for about as many parameters (``examples/low_data_poisson.py``), and it keeps the model
    well below FNO's parameter count.
    """
    if ndim < 3:
        return {"hidden_channels": 16, "n_layers": 4, "leaf_side": 4, "degree": 0,
                "linear_degree": 3, "linear_leaf_side": 4, "multiplicative": True,
                "expansion": "tensor", "linear_far": "stationary", "linear_dtype": "float64"}
    return {"hidden_channels": 16, "n_layers": 4, "leaf_side": 2, "degree": 0, "linear_degree": 2,
            "linear_leaf_side": 4, "multiplicative": True, "expansion": "total",
            "linear_far": "boxes", "linear_dtype": "float32"}


@register_defaults("neural_h2")
def _defaults(in_channels: int, out_channels: int, grid_shape: tuple[int, ...]) -> dict:
    return {"in_channels": in_channels, "out_channels": out_channels,
            "grid_shape": list(grid_shape), **default_size(len(grid_shape))}
