"""PDE datasets: problems, crash-safe HDF5 generation, validation, and loaders.

>>> from neuralhss.datasets import generate, PDEDataset, open_xarray
>>> generate("poisson", "data/poisson.h5", n_samples=64, params={"resolution": 32})  # doctest: +SKIP
>>> train = PDEDataset("data/poisson.h5", split="train", n=16)                    # doctest: +SKIP
"""

from .convert import ConvertResult, convert
from .export import export
from .generation import GenerateResult, generate, merge
from .loaders import Normalizer, PDEDataset
from .problems import FieldSpec, Problem, get_problem, problem_names, register
from .recipes import Recipe, load_recipe
from .schema import SCHEMA_VERSION, CheckReport, check_file, read_meta

__all__ = [
    "SCHEMA_VERSION", "CheckReport", "ConvertResult", "FieldSpec", "GenerateResult", "Normalizer",
    "PDEDataset", "Problem", "Recipe", "check_file", "convert", "export", "generate", "get_problem",
    "load_recipe", "merge", "open_xarray", "problem_names", "read_meta", "register",
]


def __getattr__(name: str):
    # xarray costs a third of a second to import: only its users pay for it
    if name == "open_xarray":
        from .xarray_view import open_xarray

        return open_xarray
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
