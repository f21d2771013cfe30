"""One registry of layer kinds for :mod:`~neuralhss.lowrank`'s compression, adapters and diagnostics.

Three users ask what kind of layer a module is and what to do with it:

* ``"compress"`` — :func:`~neuralhss.lowrank.compress.compress` (dense → low-rank/Tucker),
* ``"geolora"`` — :func:`~neuralhss.lowrank.geolora.add_adapters` (GeoLoRA adapters),
* ``"spectrum"`` — :func:`~neuralhss.lowrank.spectrum.inspect_model` (singular spectra).

The registry is an ordered chain of :class:`Kind` entries ``(name, predicate, family, handlers)``,
in the spirit of peft's LoRA dispatcher chain: a module's kind is the **first** entry whose
predicate accepts it (:func:`kind_of`), so every module has at most one kind, whoever asks. A user
*accepts* a kind when the kind has a handler for that use (:func:`match`, :func:`accepted`); the
users differ only in which kinds they accept, never in how a layer is recognised.

Built-in chain (first match wins)::

    name                 predicate                                          compress geolora spectrum
    lowrank              LowRankModule (low-rank / Tucker layers)                -       -       x
    hss                  neuralhss.hss.HSSOperator                               -       -       x
    spectral             neuraloperator SpectralConv, not separable, dense       x       x       x
                         weight (parameter "weight" or "weight.tensor")
    spectral_factorized  SpectralConv, not separable, factorised (TFNO) weight   x       -       x
    spectral_separable   SpectralConv with separable=True (C, *modes) weight     -       -       x
    linear               exactly nn.Linear                                        x       x       x
    pointwise            Neural-HSS Pointwise channel mixer                       x       x       x
    conv                 exactly nn.Conv1d/2d/3d with groups=1                    x       x       x
    linear_other         other nn.Linear subclasses                               -       -       x
    conv_other           other convolutions (grouped, transposed, subclasses)     -       -       x
    gating               neuraloperator SoftGating                                -       -       x

Why the users accept different kinds: ``compress`` and ``geolora`` replace a layer by another that
reproduces its forward from the weight alone, so they take only the exact classes whose forward
they know (a subclass may override ``forward``) and only ungrouped convolutions (their
matricisation ``(C_out, C_in·∏k)`` has no groups); low-rank layers are already compressed. A
spectral convolution is compressed whatever its factorisation (``compress`` reads
``weight.to_tensor()``), but GeoLoRA's adapter replaces the dense weight parameter in the forward
(``functional_call``) and so needs a dense one; separable spectral weights have no channel pair
for either. ``spectrum`` only reads weights, so it accepts every kind it can describe (any
``nn.Linear`` and convolution, HSS generators, low-rank cores, gating) and describes any other
weight by a generic matricisation.

The ``family`` of a kind is the name the users' public arguments select it by
(``compress(kinds=...)``, ``add_adapters(targets=...)``) and the kind they report: both
``spectral`` and ``spectral_factorized`` are family ``"spectral"``.

Registering a new kind
----------------------
One call makes a layer type known to every user that gets a handler for it::

    from neuralhss.lowrank import kinds

    kinds.register_kind(
        "my_mixer", lambda m: isinstance(m, MyMixer),
        handlers={"compress": my_convert,     # (module, *, rank, tau, conv, spectral_modes)
                                                #   -> LowRankModule
                  "geolora": MyMixerAdapter,  # (module, rank, max_rank, tau) -> Adapter
                  "spectrum": my_entries})    # (module, prefix) -> list[WeightSpectrum]

The new kind goes at the front of the chain (ahead of the built-ins, as peft's custom modules do)
unless ``before=``/``after=`` name another kind; a kind placed ahead of a built-in takes the modules
both accept away from users without a handler for it. Handlers can be added later with
:func:`set_handler`; :func:`unregister_kind` removes a kind.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from torch import nn

from .layers import LowRankModule

USES = ("compress", "geolora", "spectrum")


@dataclass
class Kind:
    """One entry of the registry.

    Attributes
    ----------
    name : str
        Unique name of the kind.
    predicate : callable
        ``predicate(module) -> bool``: whether ``module`` is of this kind (asked only if no earlier
        kind of the chain accepted it).
    family : str
        Public name the users select and report the kind by (defaults to ``name``).
    handlers : dict
        Per use (``"compress"``, ``"geolora"``, ``"spectrum"`` or any other string) what that user
        does with a module of this kind; a user accepts exactly the kinds with a handler for it.
    doc : str
        One line for listings.
    """

    name: str
    predicate: Callable[[nn.Module], bool]
    family: str = ""
    handlers: dict[str, Any] = field(default_factory=dict)
    doc: str = ""

    def __post_init__(self) -> None:
        self.family = self.family or self.name

    def handler(self, use: str) -> Any:
        """The handler for ``use``, or ``None`` when this use does not accept the kind."""
        return self.handlers.get(use)


_CHAIN: list[Kind] = []


def _index(name: str) -> int:
    for i, k in enumerate(_CHAIN):
        if k.name == name:
            return i
    raise KeyError(f"no layer kind {name!r}; registered: {[k.name for k in _CHAIN]}")


def register_kind(name: str, predicate: Callable[[nn.Module], bool], *,
                  handlers: Mapping[str, Any] | None = None, family: str | None = None,
                  before: str | None = None, after: str | None = None, doc: str = "",
                  replace: bool = False) -> Kind:
    """Add a layer kind to the chain (module docstring, "Registering a new kind").

    Parameters
    ----------
    name : str
        Unique name.
    predicate : callable
        ``predicate(module) -> bool``.
    handlers : mapping, optional
        ``{use: handler}``; see the module docstring for each built-in use's signature.
    family : str, optional
        Public name (default ``name``); kinds may share one.
    before, after : str, optional
        Insert just before / after this kind (at most one). Default: at the front of the chain.
    doc : str
    replace : bool, default False
        Replace an existing kind of the same name (in its place unless ``before``/``after``).

    Returns
    -------
    Kind

    Raises
    ------
    ValueError
        ``name`` already registered without ``replace``, both ``before`` and ``after``, or a
        predicate that is not callable.
    KeyError
        ``before``/``after`` names no kind.
    """
    if not isinstance(name, str) or not name:
        raise ValueError(f"kind name must be a non-empty string, got {name!r}")
    if not callable(predicate):
        raise ValueError(f"predicate of kind {name!r} must be callable")
    if before is not None and after is not None:
        raise ValueError("give at most one of before= and after=")
    kind = Kind(name, predicate, family or name, dict(handlers or {}), doc)
    pos = None
    if any(k.name == name for k in _CHAIN):
        if not replace:
            raise ValueError(f"layer kind {name!r} is already registered (replace=True to replace it)")
        pos = _index(name)
        del _CHAIN[pos]
    if before is not None:
        pos = _index(before)
    elif after is not None:
        pos = _index(after) + 1
    elif pos is None:
        pos = 0
    _CHAIN.insert(pos, kind)
    return kind


def unregister_kind(name: str) -> Kind:
    """Remove and return the kind ``name`` (``KeyError`` if none)."""
    return _CHAIN.pop(_index(name))


def get_kind(name: str) -> Kind:
    """The registered kind ``name`` (``KeyError`` if none)."""
    return _CHAIN[_index(name)]


def set_handler(name: str, use: str, handler: Any) -> None:
    """Attach (or with ``handler=None`` remove) the handler of kind ``name`` for ``use``."""
    kind = get_kind(name)
    if handler is None:
        kind.handlers.pop(use, None)
    else:
        kind.handlers[use] = handler


def set_handlers(use: str, handlers: Mapping[str, Any]) -> None:
    """:func:`set_handler` for several kinds of one use: ``{kind name: handler}``."""
    for name, h in handlers.items():
        set_handler(name, use, h)


def registered() -> list[Kind]:
    """The chain, in matching order (a copy of the list; the entries are the registry's)."""
    return list(_CHAIN)


def kind_of(module: nn.Module) -> Kind | None:
    """The first kind of the chain whose predicate accepts ``module`` (``None`` if none)."""
    for k in _CHAIN:
        if k.predicate(module):
            return k
    return None


def match(module: nn.Module, use: str) -> tuple[Kind, Any] | None:
    """``(kind, handler)`` when ``module``'s kind (:func:`kind_of`) has a handler for ``use``."""
    k = kind_of(module)
    if k is None:
        return None
    h = k.handler(use)
    return None if h is None else (k, h)


def accepted(use: str) -> list[Kind]:
    """The kinds with a handler for ``use``, in chain order."""
    return [k for k in _CHAIN if k.handler(use) is not None]


def families(use: str) -> tuple[str, ...]:
    """Distinct families of :func:`accepted` kinds (first appearance in the chain)."""
    return tuple(dict.fromkeys(k.family for k in accepted(use)))


def check_families(names: Iterable[str], use: str, what: str) -> tuple[str, ...]:
    """``names`` as a tuple, after checking each is a family accepted by ``use``.

    Raises
    ------
    ValueError
        Naming ``what`` (the caller's argument) and the unknown entries.
    """
    names = tuple(names)
    known = families(use)
    bad = [n for n in names if n not in known]
    if bad:
        raise ValueError(f"{what}={names!r} contains unknown {bad}; use a subset of {known}")
    return names


# --------------------------------------------------------------------------- built-in predicates


def _spectral_conv_class():
    try:
        from neuralop.layers.spectral_convolution import SpectralConv
    except ImportError:  # pragma: no cover - neuraloperator is a dependency
        return None
    return SpectralConv


def _is_spectral(module: nn.Module) -> bool:
    cls = _spectral_conv_class()
    return cls is not None and isinstance(module, cls)


def _dense_weight(module: nn.Module) -> bool:
    names = [n for n, _ in module.named_parameters() if n.startswith("weight")]
    return names in (["weight"], ["weight.tensor"])


def _is_lowrank(module: nn.Module) -> bool:
    return isinstance(module, LowRankModule)


def _is_hss(module: nn.Module) -> bool:
    from ..hss import HSSOperator

    return isinstance(module, HSSOperator)


def _is_spectral_dense(module: nn.Module) -> bool:
    return _is_spectral(module) and not getattr(module, "separable", False) and _dense_weight(module)


def _is_spectral_factorized(module: nn.Module) -> bool:
    return _is_spectral(module) and not getattr(module, "separable", False)


def _is_spectral_separable(module: nn.Module) -> bool:
    return _is_spectral(module)


def _is_linear(module: nn.Module) -> bool:
    return type(module) is nn.Linear


def _is_pointwise(module: nn.Module) -> bool:
    from ..models.neural_hss import Pointwise

    return isinstance(module, Pointwise)


def _is_conv(module: nn.Module) -> bool:
    return type(module) in (nn.Conv1d, nn.Conv2d, nn.Conv3d) and module.groups == 1


def _is_linear_other(module: nn.Module) -> bool:
    return isinstance(module, nn.Linear)


def _is_conv_other(module: nn.Module) -> bool:
    return isinstance(module, nn.modules.conv._ConvNd)


def _is_gating(module: nn.Module) -> bool:
    try:
        from neuralop.layers.skip_connections import SoftGating
    except ImportError:  # pragma: no cover - neuraloperator is a dependency
        return False
    return isinstance(module, SoftGating)


# Each predicate may assume the earlier ones rejected the module (``spectral_factorized`` follows
# ``spectral``, ``spectral_separable`` both, the ``*_other`` kinds the exact ones).
for _name, _pred, _family, _doc in (
        ("lowrank", _is_lowrank, "lowrank", "low-rank / Tucker layers of neuralhss.lowrank"),
        ("hss", _is_hss, "hss", "neuralhss.hss.HSSOperator"),
        ("spectral", _is_spectral_dense, "spectral", "SpectralConv, dense non-separable weight"),
        ("spectral_factorized", _is_spectral_factorized, "spectral",
         "SpectralConv, factorised (TFNO) non-separable weight"),
        ("spectral_separable", _is_spectral_separable, "spectral", "SpectralConv, separable weight"),
        ("linear", _is_linear, "linear", "nn.Linear (exact class)"),
        ("pointwise", _is_pointwise, "pointwise", "Neural-HSS Pointwise channel mixer"),
        ("conv", _is_conv, "conv", "nn.Conv1d/2d/3d (exact class), groups=1"),
        ("linear_other", _is_linear_other, "linear", "subclasses of nn.Linear"),
        ("conv_other", _is_conv_other, "conv", "other convolutions: grouped, transposed, subclasses"),
        ("gating", _is_gating, "gating", "neuraloperator SoftGating")):
    _CHAIN.append(Kind(_name, _pred, _family, {}, _doc))
del _name, _pred, _family, _doc
