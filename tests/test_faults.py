"""Regression tests for the faults of issue 14: bad input, huge requests, killed processes,
reused run folders, lossy conversions. Each refusal must be one line and create nothing."""


import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from neuralhss.cli import main

SMALL = ["poisson", "--resolution", "8", "--no-progress"]


def _one_line_error(capsys, *needles: str) -> str:
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1, err
    for needle in needles:
        assert needle in err, err
    return err


# --- case 2: every numeric option of generate is validated before any file is created -------

@pytest.mark.parametrize("option, value", [
    ("--block-size", "-3"), ("--block-size", "0"), ("--samples", "0"), ("--samples", "-1"),
    ("--workers", "0"), ("--workers", "-2"), ("--seed", "-1"), ("--seed", str(2**70)),
    ("--dim", "0"), ("--dim", "4"), ("--resolution", "0"), ("--samples", str(2**64)),
])
def test_generate_refuses_bad_numbers_before_creating_anything(tmp_path, capsys, option, value):
    out = tmp_path / "sub" / "g.h5"
    argv = ["generate", *SMALL, "--samples", "4", option, value, "-o", str(out)]
    assert main(argv) == 2
    _one_line_error(capsys, option, value)
    assert not (tmp_path / "sub").exists()


@settings(max_examples=25, deadline=None)
@given(block_size=st.integers(max_value=0), seed=st.integers(min_value=-(2**80), max_value=-1))
def test_generate_api_refuses_bad_numbers(tmp_path_factory, block_size, seed):
    from neuralhss.datasets import generate

    tmp = tmp_path_factory.mktemp("g")
    for kwargs in ({"block_size": block_size}, {"seed": seed}, {"seed": 2**63 + abs(seed)},
                   {"n_samples": block_size}, {"workers": block_size}):
        args = {"n_samples": 4, **kwargs}
        with pytest.raises(ValueError, match="|".join(kwargs)):
            generate("poisson", tmp / "o" / "g.h5", params={"resolution": 8}, progress=False,
                     **args)
    assert not (tmp / "o").exists()
