"""Hierarchically semi-separable (HSS) operators: cluster tree, module, compression.

>>> from neuralhss.hss import HSSOperator
>>> op = HSSOperator(1, 1, grid_shape=(64, 64), leaf_size=16, rank=8, share="level", untie_top=3)

See :class:`HSSOperator` for the mathematics.
"""

from .operator import HSSOperator, from_dense, from_samples, generator_count, parameter_count
from .tree import ClusterTree, build_tree, leaf_shape_for

__all__ = [
    "ClusterTree",
    "HSSOperator",
    "build_tree",
    "from_dense",
    "from_samples",
    "generator_count",
    "leaf_shape_for",
    "parameter_count",
]
