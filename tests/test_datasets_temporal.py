"""Trajectory fields in the schema: layout, check, loaders, xarray and merge.

A toy problem (an exponentially decaying source, known in closed form) exercises the
machinery independently of any time-dependent solver.
"""

import h5py
import numpy as np
import pytest

from neuralhss import fields
from neuralhss.datasets import PDEDataset, check_file, generate, merge, open_xarray
from neuralhss.datasets.problems import FieldSpec, Problem, register

TIMES = np.array([0.25, 0.5, 1.0])


def _draw(params, grid, rng):
    f = fields.grf(grid, rng, length_scale=0.3)
    return {"f": f, "u": np.exp(-TIMES)[:, None, None] * f}


register(Problem(
    name="_decay_test",
    description="u(t) = exp(-t) f (test problem)",
    defaults={"dim": 2, "resolution": 8, "lengths": 1.0},
    inputs=(FieldSpec("f", "initial state"),),
    outputs=(FieldSpec("u", "state at the snapshot times", temporal=True),),
    draw=_draw,
    snapshot_times=lambda params: TIMES,
))


@pytest.fixture(scope="module")
def decay_file(tmp_path_factory):
    path = tmp_path_factory.mktemp("data") / "decay.h5"
    generate("_decay_test", path, n_samples=10, seed=1, progress=False, block_size=3)
    return path


def test_trajectory_layout_and_check(decay_file):
    with h5py.File(decay_file, "r") as f:
        u = f["outputs/u"]
        assert u.shape == (10, 3, 8, 8) and u.chunks == (1, 1, 8, 8)
        assert [d.label for d in u.dims] == ["sample", "t", "x", "y"]
        np.testing.assert_array_equal(f["coords/t"][...], TIMES)
        np.testing.assert_allclose(u[4], np.exp(-TIMES)[:, None, None] * f["inputs/f"][4], rtol=1e-6)
    report = check_file(decay_file)
    assert report.ok, report.problems
    assert report.meta.temporal_fields == ["u"] and report.meta.times == TIMES.tolist()


def test_loader_selects_snapshots(decay_file):
    full = PDEDataset(decay_file, n_test=2)
    assert full.out_channels == 3 and full[0]["y"].shape == (3, 8, 8)
    last = PDEDataset(decay_file, n_test=2, time_index=-1)
    assert last.out_channels == 1 and last.times == [1.0]
    np.testing.assert_array_equal(last[0]["y"][0].numpy(), full[0]["y"][2].numpy())
    two = PDEDataset(decay_file, n_test=2, time_index=[0, 2], normalize="gaussian")
    assert two.normalizer.y_mean.shape == (2,)
    with pytest.raises(ValueError, match="out of range"):
        PDEDataset(decay_file, time_index=3)


def test_xarray_and_merge_keep_the_time_axis(decay_file, tmp_path):
    ds = open_xarray(decay_file)
    assert ds["u"].dims == ("sample", "t", "x", "y")
    np.testing.assert_array_equal(ds["t"].values, TIMES)
    shards = []
    for i in range(2):
        p = tmp_path / f"s{i}.h5"
        generate("_decay_test", p, n_samples=10, seed=1, shard=(i, 2), progress=False, block_size=3)
        shards.append(p)
    merged = merge(shards, tmp_path / "merged.h5", progress=False)
    assert open(merged, "rb").read() == open(decay_file, "rb").read()


def test_stationary_file_refuses_time_index(tmp_path):
    p = tmp_path / "p.h5"
    generate("poisson", p, n_samples=4, params={"resolution": 8}, progress=False)
    with pytest.raises(ValueError, match="no trajectory fields"):
        PDEDataset(p, n_test=1, time_index=-1)
