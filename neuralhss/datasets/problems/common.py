"""Parameter checks shared by the problem modules."""

from __future__ import annotations

from ..._checks import check_number


def grf_kwargs(params: dict, prefix: str = "") -> dict:
    """``length_scale``/``smoothness``/``amplitude`` (optionally prefixed) for :func:`fields.grf`."""
    return {"length_scale": params[prefix + "length_scale"], "smoothness": params[prefix + "smoothness"],
            "amplitude": params[prefix + "amplitude"]}


def check_grf(params: dict, prefix: str = "") -> None:
    """Refuse non-positive GRF length scales/amplitudes and negative smoothness."""
    for key in (prefix + "length_scale", prefix + "amplitude"):
        check_positive(params, key)
    check_number(params[prefix + "smoothness"], prefix + "smoothness", strict=False)


def check_positive(params: dict, *keys: str) -> None:
    """Each ``params[key]`` must be a finite number > 0."""
    for key in keys:
        check_number(params[key], key)


def check_choice(params: dict, key: str, choices: tuple[str, ...]) -> None:
    """``params[key]`` must be one of ``choices``."""
    if params[key] not in choices:
        raise ValueError(f"{key}={params[key]!r}; use one of {list(choices)}")


def check_int(params: dict, key: str, low: int) -> None:
    """``params[key]`` must be an integer >= ``low``."""
    value = params[key]
    if isinstance(value, bool) or not isinstance(value, int) or value < low:
        raise ValueError(f"{key}={value!r} must be an integer >= {low}")


def check_dim2(params: dict, name: str) -> None:
    if params["dim"] != 2:
        raise ValueError(f"the {name} problem is 2-D; use dim=2")
