"""Dataset problems, one module per PDE family; importing this package registers them all.

A problem owns its parameters (with defaults and validation), its grid, and a ``draw``
function that draws one sample from a ``numpy.random.Generator``; see :class:`Problem`.
"""

from . import biology, elliptic, fluids, waves
from .base import FieldSpec, Problem, get_problem, problem_names, register

__all__ = ["FieldSpec", "Problem", "biology", "elliptic", "fluids", "waves", "get_problem", "problem_names",
           "register"]
