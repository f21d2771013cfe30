"""Argument checks shared across the package, so that one rule reads the same everywhere."""

from __future__ import annotations

import math
import numbers
from typing import Any

import numpy as np

__all__ = ["check_number"]


def check_number(value: Any, name: str, *, minimum: float = 0.0, strict: bool = True,
                 hint: str = "") -> float:
    """Return ``value`` as a float if it is a finite real number above ``minimum``.

    Parameters
    ----------
    value : Any
        The argument; ``bool`` is refused although Python counts it as an integer, so that a
        flag passed in the wrong place is not read as 0 or 1.
    name : str
        How the message names the argument.
    minimum : float, default 0.0
        The bound.
    strict : bool, default True
        ``value > minimum`` when true (the default: a positive number), ``value >= minimum``
        otherwise.
    hint : str, default ""
        Appended to the requirement in the message, e.g. ``" (kinematic viscosity)"``.

    Returns
    -------
    float

    Raises
    ------
    ValueError
        ``"<name> must be a finite number > <minimum><hint>; got <name>=<value>."`` (``>=``
        when not strict): the requirement and the offending assignment, both searchable.
    """
    if not isinstance(value, bool) and isinstance(value, (numbers.Real, np.integer, np.floating)):
        v = float(value)
        if math.isfinite(v) and (v > minimum if strict else v >= minimum):
            return v
    raise ValueError(f"{name} must be a finite number {'>' if strict else '>='} {minimum:g}{hint}; "
                     f"got {name}={value!r}.")
