"""Low-rank toolbox: low-rank and Tucker layers, dynamical low-rank training, compression.

* :mod:`~neuralhss.lowrank.layers` — :class:`LowRankLinear`, :class:`LowRankPointwise`,
  :class:`LowRankConv` (``W = U S Vᵀ``, orthonormal ``U``, ``V``; ``W`` never formed).
* :mod:`~neuralhss.lowrank.tucker` — :class:`TuckerSpectralConv` (drop-in for
  neuraloperator's ``SpectralConv``) and :class:`TuckerConv`.
* :mod:`~neuralhss.lowrank.integrator` — :class:`DLRT`, the rank-adaptive (robust) integrator
  wrapping an ordinary optimizer.
* :mod:`~neuralhss.lowrank.compress` — :func:`compress`, dense → low-rank by truncated SVD/HOSVD.
"""

from .compress import Compressed, compress
from .integrator import DLRT, augment_basis
from .layers import (
    LowRankConv,
    LowRankLinear,
    LowRankModule,
    LowRankPointwise,
    hosvd,
    truncation_rank,
)
from .tucker import TuckerConv, TuckerSpectralConv

__all__ = ["DLRT", "Compressed", "LowRankConv", "LowRankLinear", "LowRankModule", "LowRankPointwise",
           "TuckerConv", "TuckerSpectralConv", "augment_basis", "compress", "hosvd", "truncation_rank"]
