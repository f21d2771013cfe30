"""Regression tests for the faults of issue 14: bad input, huge requests, killed processes,
reused run folders, lossy conversions. Each refusal must be one line and create nothing."""


import time

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


# --- case 1: a run that cannot fit on the disk or in memory is refused up front --------------

def test_generate_refuses_what_does_not_fit_on_the_disk(tmp_path, capsys):
    out = tmp_path / "sub" / "g.h5"
    argv = ["generate", "poisson", "--resolution", "16", "--samples", "10000000000000",
            "--no-progress", "-o", str(out)]
    t0 = time.perf_counter()
    assert main(argv) == 2
    assert time.perf_counter() - t0 < 5  # no O(samples) bookkeeping before the refusal
    _one_line_error(capsys, "PB of disk", "are free")
    assert not (tmp_path / "sub").exists()


def test_generate_refuses_what_does_not_fit_in_memory(tmp_path, capsys, monkeypatch):
    from neuralhss.datasets import generation

    monkeypatch.setattr(generation, "available_memory", lambda: 10**4)  # 10 kB available
    out = tmp_path / "g.h5"
    argv = ["generate", "poisson", "--resolution", "64", "--samples", "4", "--workers", "2",
            "--no-progress", "-o", str(out)]
    assert main(argv) == 2
    _one_line_error(capsys, "of memory", "2 worker(s)")
    assert list(tmp_path.iterdir()) == []


def test_estimate_and_lazy_bookkeeping():
    from neuralhss.datasets.generation import (
        _block_of,
        _meta_for,
        blocks_of,
        estimate,
        get_problem,
        iter_blocks,
        n_blocks,
    )

    prob = get_problem("poisson")
    params = prob.resolve({"resolution": 16})
    meta = _meta_for(prob, params, 0, 10**13, None)
    est = estimate(meta, 256, 4)
    assert est.bytes_per_sample == 2 * 16 * 16 * 4
    assert est.output_bytes > 10**13 * est.bytes_per_sample
    assert est.peak_disk_bytes > 2 * 10**13 * est.bytes_per_sample
    assert est.memory_bytes < 10**8  # independent of the number of samples
    for r, b in [(range(5, 23), 8), (range(0, 0), 8), (range(0, 7), 7), (range(3, 4), 5)]:
        assert list(iter_blocks(r, b)) == blocks_of(r, b)
        assert n_blocks(r, b) == len(blocks_of(r, b))
        assert all(_block_of(a, r, b) == (a, z) for a, z in blocks_of(r, b))
    assert n_blocks(range(10**13), 256) == -(-10**13 // 256)
    assert _block_of(6, range(5, 23), 8) is None


def test_workers_never_exceed_blocks(tmp_path, monkeypatch):
    from neuralhss.datasets import generate, generation

    seen = []
    real = generation._run_blocks
    monkeypatch.setattr(generation, "_run_blocks",
                        lambda *a: seen.append(a[5]) or real(*a))
    generate("poisson", tmp_path / "g.h5", n_samples=4, params={"resolution": 8},
             workers=1000, progress=False)
    assert seen == [1] or seen[0] <= 4
