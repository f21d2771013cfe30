"""neuralhss: PDE datasets from validated finite-difference solvers, and neural operators
built on hierarchical semi-separable (HSS) matrices that learn them from few samples.

Subpackages: :mod:`neuralhss.solvers` (finite-difference solvers), :mod:`neuralhss.datasets`
(HDF5 generation and loading), :mod:`neuralhss.hss` (the HSS operator).
"""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("neuralhss")
except PackageNotFoundError:  # pragma: no cover - running from a source tree without install
    __version__ = "0.0.0+unknown"

__all__ = ["__version__"]
