"""Low-rank training, fine-tuning, stress tests and diagnostics of neural operators.

* :mod:`~neuralhss.lowrank.layers` — :class:`LowRankLinear`, :class:`LowRankPointwise`,
  :class:`LowRankConv`: W = U S Vᵀ with orthonormal factors; the forward never forms W.
* :mod:`~neuralhss.lowrank.tucker` — :class:`TuckerSpectralConv` (FNO spectral weights in
  Tucker format, a drop-in for neuraloperator's ``SpectralConv``) and :class:`TuckerConv`.
* :mod:`~neuralhss.lowrank.integrator` — :class:`DLRT`, the rank-adaptive (robust) integrator
  wrapping an ordinary optimizer.
* :mod:`~neuralhss.lowrank.compress` — :func:`compress`, dense → low-rank by truncated SVD/HOSVD.
* :mod:`~neuralhss.lowrank.geolora` — :func:`add_adapters`, :class:`GeoLoRA`,
  :func:`merge_adapters`: rank-adaptive low-rank fine-tuning adapters trained by the
  one-backward parallel BUG step.
* :mod:`~neuralhss.lowrank.attacks` — :func:`pgd`, :func:`lowrank_pgd`, :func:`random_noise`:
  worst-case input perturbations and the operator's amplification of them.
* :mod:`~neuralhss.lowrank.kinds` — the one registry of layer kinds (``nn.Linear``, convolutions,
  ``SpectralConv``, ``Pointwise``, HSS operators, …) that :func:`compress`, :func:`add_adapters`
  and :func:`inspect_model` dispatch on; :func:`~neuralhss.lowrank.kinds.register_kind` adds one.
* :mod:`~neuralhss.lowrank.spectrum` — singular spectra of every weight, numerical/stable/
  effective ranks, condition numbers, neural-collapse metrics and the low-rank-bias check.
"""

from . import kinds
from .attacks import InDataUnits, amplification, lowrank_pgd, pgd, random_noise
from .compress import Compressed, compress
from .geolora import GeoLoRA, add_adapters, merge_adapters
from .integrator import DLRT, augment_basis
from .layers import (
    LowRankConv,
    LowRankLinear,
    LowRankModule,
    LowRankPointwise,
    hosvd,
    truncation_rank,
)
from .spectrum import (
    WeightSpectrum,
    inspect_model,
    lowrank_bias,
    neural_collapse,
    numerical_rank,
    plot_spectra,
    spectral_table,
)
from .tucker import TuckerConv, TuckerSpectralConv

__all__ = ["DLRT", "Compressed", "GeoLoRA", "InDataUnits", "LowRankConv", "LowRankLinear",
           "LowRankModule", "LowRankPointwise", "TuckerConv", "TuckerSpectralConv", "WeightSpectrum",
           "add_adapters", "amplification", "augment_basis", "compress", "hosvd", "inspect_model", "kinds",
           "lowrank_bias", "lowrank_pgd", "merge_adapters", "neural_collapse", "numerical_rank", "pgd",
           "plot_spectra", "random_noise", "spectral_table", "truncation_rank"]
