"""open_xarray reads on demand: same values as the eager path, selections read only what they
touch, reductions over dask chunks stay out of core, and the file is released on close."""

import json
import subprocess
import sys

import h5py
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from neuralhss.datasets import generate, open_xarray


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    root = tmp_path_factory.mktemp("xr")
    flat, traj = root / "poisson.h5", root / "ns.h5"
    generate("poisson", flat, n_samples=12, seed=2, params={"resolution": 16}, progress=False)
    generate("navier_stokes", traj, n_samples=5, seed=1, params={"resolution": 16},
             progress=False)
    return flat, traj


def test_lazy_is_the_eager_dataset(files):
    for path in files:
        with open_xarray(path) as lazy:
            assert lazy.load().identical(open_xarray(path, lazy=False))


def test_fields_are_not_read_at_open(files, monkeypatch):
    reads = []
    original = h5py.Dataset.__getitem__

    def spy(self, key):
        reads.append((self.name, key))
        return original(self, key)

    monkeypatch.setattr(h5py.Dataset, "__getitem__", spy)
    ds = open_xarray(files[0])
    assert not [r for r in reads if r[0].startswith(("/inputs", "/outputs"))]
    reads.clear()
    one = ds["u"].isel(sample=7).values  # one chunk: one sample of one field
    assert [(name, key) for name, key in reads] == [("/outputs/u", (7, slice(None), slice(None)))]
    np.testing.assert_array_equal(one, open_xarray(files[0], lazy=False)["u"][7].values)
    ds.close()


@settings(max_examples=40, deadline=None)
@given(data=st.data())
def test_any_outer_selection_matches_numpy(files, data):
    eager = open_xarray(files[1], lazy=False)["w"]  # (sample, t, x, y)
    lazy = open_xarray(files[1])["w"]
    sel = {}
    for dim, size in eager.sizes.items():
        kind = data.draw(st.sampled_from(["all", "int", "slice", "list", "mask"]), label=dim)
        if kind == "int":
            sel[dim] = data.draw(st.integers(-size, size - 1))
        elif kind == "slice":
            sel[dim] = slice(data.draw(st.integers(-size, size)), data.draw(st.integers(-size, size)),
                             data.draw(st.integers(1, 3)))
        elif kind == "list":
            sel[dim] = data.draw(st.lists(st.integers(-size, size - 1), max_size=5))
        elif kind == "mask":
            sel[dim] = np.array(data.draw(st.lists(st.booleans(), min_size=size, max_size=size)))
    np.testing.assert_array_equal(lazy.isel(sel).values, eager.isel(sel).values)


def test_close_releases_the_file_and_reading_again_reopens(files):
    ds = open_xarray(files[0], chunks=4)
    before = float(ds["u"].sum())
    ds.close()
    with h5py.File(files[0], "r+"):  # HDF5 refuses read-write while a read-only handle lives
        pass
    assert float(ds["u"].sum()) == before
    ds.close()


def test_pickled_dataset_reads_in_another_process(files):
    import pickle

    ds = open_xarray(files[0])
    clone = pickle.loads(pickle.dumps(ds))
    np.testing.assert_array_equal(clone["f"].values, ds["f"].values)
    ds.close()
    clone.close()


def test_chunks_without_dask_is_one_clear_error(files, monkeypatch):
    monkeypatch.setitem(sys.modules, "dask.array", None)
    with pytest.raises(ImportError, match="needs dask"):
        open_xarray(files[0], chunks=4)


# peak memory of a reduction over one field, measured in a fresh process
PROBE = """
import json, sys
import numpy as np, dask.array, xarray
from neuralhss.datasets import open_xarray
def status_mib(key):  # resident now (VmRSS) and its peak (VmHWM), Linux
    line = next(l for l in open("/proc/self/status") if l.startswith(key))
    return int(line.split()[1]) / 1024
base = status_mib("VmRSS")
ds = open_xarray(sys.argv[1], **eval(sys.argv[2]))
mean = float(ds["u"].mean().compute(scheduler="synchronous"))
print(json.dumps({"growth_mib": status_mib("VmHWM") - base, "mean": mean}))
"""


def test_reduction_over_chunks_stays_out_of_core(tmp_path):
    path = tmp_path / "big.h5"
    generate("poisson", path, n_samples=384, params={"resolution": 128}, progress=False)
    field_mib = 384 * 128 * 128 * 4 / 2**20  # 24 MiB per field
    probe = {}
    for name, kwargs in (("chunked", "{'chunks': 8}"), ("eager", "{'lazy': False}")):
        out = subprocess.run([sys.executable, "-c", PROBE, str(path), kwargs],
                             capture_output=True, text=True, check=True)
        probe[name] = json.loads(out.stdout)
    with h5py.File(path, "r") as f:
        exact = float(np.mean(f["outputs/u"][...], dtype=np.float64))
    assert probe["chunked"]["mean"] == pytest.approx(exact, rel=1e-5)
    assert probe["eager"]["growth_mib"] > 1.5 * field_mib, probe  # the probe sees memory
    assert probe["chunked"]["growth_mib"] < 0.4 * field_mib, probe
