"""Import (``neuralhss convert``) and export (``neuralhss export``) of other dataset formats.

Small synthetic files in the neuraloperator, PDEBench and The Well layouts stand in for the real
datasets. The real neuraloperator Darcy files (``darcy_train_16.pt``, ``darcy_test_16.pt``,
``darcy_test_32.pt``) are used when present: in ``neuralop/data/datasets/data`` of the installed
neuraloperator (a source checkout ships them, the wheel does not), else in the folder named by
the environment variable ``NEURALOP_DARCY_DIR``; otherwise those tests are skipped.
"""

import hashlib
import importlib.util
import json
import os
from pathlib import Path

import h5py
import numpy as np
import pytest
import torch

from neuralhss.cli import main
from neuralhss.datasets import PDEDataset, check_file, convert, export, open_xarray, read_meta
from neuralhss.datasets.generation import package_version, write_hdf5
from neuralhss.datasets.schema import Meta
from neuralhss.grid import Grid

DARCY_FILES = ("darcy_train_16.pt", "darcy_test_16.pt", "darcy_test_32.pt")


def _darcy_dir() -> Path | None:
    spec = importlib.util.find_spec("neuralop")
    candidates = [Path(p) / "data" / "datasets" / "data"
                  for p in (spec.submodule_search_locations or [])] if spec else []
    if os.environ.get("NEURALOP_DARCY_DIR"):
        candidates.append(Path(os.environ["NEURALOP_DARCY_DIR"]))
    return next((c for c in candidates if all((c / f).is_file() for f in DARCY_FILES)), None)


DARCY = _darcy_dir()
needs_darcy = pytest.mark.skipif(
    DARCY is None, reason="neuraloperator's Darcy files (darcy_train_16.pt, darcy_test_16.pt, "
    "darcy_test_32.pt) are neither in the installed neuralop/data/datasets/data nor in "
    "$NEURALOP_DARCY_DIR")


def meta_of(path):
    with h5py.File(path, "r") as f:
        return read_meta(f)


def arrays(path):
    """Every field, coordinate and the split of a file, by HDF5 path."""
    with h5py.File(path, "r") as f:
        out = {f"{g}/{n}": f[g][n][...] for g in ("inputs", "outputs", "coords") for n in f[g]}
        if "split" in f:
            out["split"] = f["split"][...]
        return out


# ------------------------------------------------------------------------------ neuraloperator


@needs_darcy
def test_real_neuralop_darcy_train_and_test_files(tmp_path, capsys):
    out = tmp_path / "darcy16.h5"
    assert main(["convert", str(DARCY / "darcy_train_16.pt"), str(DARCY / "darcy_test_16.pt"),
                 "--from", "neuralop", "--input", "a", "--output", "u", "--no-progress",
                 "-o", str(out)]) == 0
    assert "OK, split 1000 train / 50 test" in capsys.readouterr().out
    assert main(["check", str(out)]) == 0
    test = PDEDataset(out, split="test")
    train = PDEDataset(out, split="train", n=5)
    assert len(test) == 50 and len(PDEDataset(out, split="train")) == 1000
    src = torch.load(DARCY / "darcy_test_16.pt", weights_only=True)
    x, y = test.read(7)
    np.testing.assert_array_equal(x[0], src["x"][7].float().numpy())  # mask -> 0.0 / 1.0
    np.testing.assert_array_equal(y[0], src["y"][7].numpy())
    assert train.read(0)[0].shape == (1, 16, 16)
    ds = open_xarray(out)
    assert ds["a"].dims == ("sample", "x", "y") and int(ds["split"].sum()) == 50
    meta = meta_of(out)
    files = meta.params["files"]
    assert [f["file"] for f in files] == ["darcy_train_16.pt", "darcy_test_16.pt"]
    assert files[1]["sha256"] == hashlib.sha256(
        (DARCY / "darcy_test_16.pt").read_bytes()).hexdigest()
    assert meta.params["x"]["dtype"] == "bool" and meta.seed == 0
    assert meta.coords_source is None and meta.grid.bc == ("dirichlet", "dirichlet")
    # Another resolution in the same file is refused with one line.
    assert main(["convert", str(DARCY / "darcy_train_16.pt"), str(DARCY / "darcy_test_32.pt"),
                 "--from", "neuralop", "-o", str(tmp_path / "mixed.h5")]) == 2
    err = capsys.readouterr().err.strip()
    assert "convert them separately" in err and len(err.splitlines()) == 1
    assert not (tmp_path / "mixed.h5").exists()
    # ... and `neuralhss train` runs on the converted file, testing on the source's test set.
    run = tmp_path / "run"
    assert main(["train", "--data", str(out), "--model", "fno", "--n-train", "4", "--epochs", "1",
                 "--batch-size", "2", "--model-arg", "hidden_channels=4", "--model-arg",
                 "n_layers=1", "--out", str(run), "--no-progress"]) == 0
    metrics = json.loads((run / "metrics.json").read_text())
    assert "test_rel_l2" in metrics and metrics["n_test"] == 50  # the split's size, not --n-test
    assert len(PDEDataset(out, split="test", n_test=100)) == 50  # the split wins over n_test
    # Exported back, neuraloperator's own loader reads it as it reads the originals.
    from neuralop.data.datasets.pt_dataset import PTDataset

    assert [p.name for p in export(out, "neuralop", tmp_path / "darcy")] == [
        "darcy_train_16.pt", "darcy_test_16.pt"]
    pt = PTDataset(tmp_path, "darcy", n_train=10, n_tests=[50], batch_size=4,
                   test_batch_sizes=[4], train_resolution=16, test_resolutions=[16])
    np.testing.assert_array_equal(pt.test_dbs[16][7]["y"][0].numpy(), src["y"][7].numpy())
    assert pt.train_db[0]["x"].shape == (1, 16, 16)


def test_neuralop_channel_axes_and_names(tmp_path):
    g = torch.Generator().manual_seed(0)
    x4 = torch.rand(5, 1, 6, 7, generator=g, dtype=torch.float64)
    y4 = torch.rand(5, 2, 6, 7, generator=g)
    torch.save({"x": x4, "y": y4}, tmp_path / "flow_train_6.pt")
    out = convert(tmp_path / "flow_train_6.pt", tmp_path / "flow.h5", "neuralop",
                  inputs=["k"], outputs=["p", "q"]).path
    m = meta_of(out)
    assert (m.input_fields, m.output_fields, m.grid.shape) == (["k"], ["p", "q"], (6, 7))
    assert m.params["x"]["dtype"] == "float64" and m.params["files"][0]["split"] == "train"
    with h5py.File(out, "r") as f:
        assert "split" not in f  # only train data: no split
        np.testing.assert_array_equal(f["inputs/k"][...], x4[:, 0].float().numpy())
        np.testing.assert_array_equal(f["outputs/q"][...], y4[:, 1].numpy())
    # 1-D, squeezed; default names; an HDF5 file in H5pyDataset layout converts too.
    with h5py.File(tmp_path / "b.h5", "w") as f:
        f["x"] = np.arange(12, dtype=np.float32).reshape(3, 4)
        f["y"] = -np.arange(12, dtype=np.float32).reshape(3, 4)
    out = convert(tmp_path / "b.h5", tmp_path / "b_conv.h5", "neuralop", bc="periodic").path
    m = meta_of(out)
    assert (m.input_fields, m.output_fields, m.grid.bc) == (["input"], ["output"], ("periodic",))
    assert check_file(out).ok
    with pytest.raises(ValueError, match="3 names given for the 2 output channels"):
        convert(tmp_path / "flow_train_6.pt", tmp_path / "c.h5", "neuralop",
                outputs=["p", "q", "r"])


def test_neuralop_time_dependent_input_state_output_trajectory(tmp_path, capsys):
    """neuraloperator's time-dependent layout (its 1-D Burgers set): x the initial state
    (n, N), y the trajectory (n, T, N); y becomes a trajectory field over /coords/t."""
    g = torch.Generator().manual_seed(3)
    x, y = torch.rand(6, 16, generator=g), torch.rand(6, 5, 16, generator=g)
    torch.save({"x": x, "y": y}, tmp_path / "burgers_train_16.pt")
    torch.save({"x": x[:2], "y": y[:2]}, tmp_path / "burgers_test_16.pt")
    out = tmp_path / "burgers.h5"
    assert main(["convert", str(tmp_path / "burgers_train_16.pt"),
                 str(tmp_path / "burgers_test_16.pt"), "--from", "neuralop", "--input", "u0",
                 "--output", "u", "--no-progress", "-o", str(out)]) == 0
    assert "split 6 train / 2 test" in capsys.readouterr().out
    assert check_file(out).ok
    ds = open_xarray(out)
    assert ds["u"].dims == ("sample", "t", "x") and ds["u0"].dims == ("sample", "x")
    assert ds["u"].shape == (8, 5, 16)
    m = meta_of(out)
    assert (m.input_fields, m.output_fields, m.temporal_fields) == (["u0"], ["u"], ["u"])
    assert m.times == [1.0, 2.0, 3.0, 4.0, 5.0]  # no times in the file: snapshot numbers
    assert m.params["time_coordinate"].startswith("absent: snapshot numbers 1..5")
    assert "trajectory of 5 snapshots" in json.loads(m.attrs["converted_from"])["output"]
    with h5py.File(out, "r") as f:
        np.testing.assert_array_equal(f["outputs/u"][:6], y.numpy())
        np.testing.assert_array_equal(f["inputs/u0"][6:], x[:2].numpy())
    # The final time, or every snapshot as channels.
    last = PDEDataset(out, split="test", time_index=-1)
    xs, ys = last.read(1)
    assert xs.shape == (1, 16) and ys.shape == (1, 16) and last.times == [5.0]
    np.testing.assert_array_equal(ys[0], y[1, -1].numpy())
    assert PDEDataset(out, split="train").read(0)[1].shape == (5, 16)
    run = tmp_path / "run"
    assert main(["train", "--data", str(out), "--model", "fno", "--time-index", "-1",
                 "--epochs", "1", "--batch-size", "2", "--model-arg", "hidden_channels=4",
                 "--model-arg", "n_layers=1", "--out", str(run), "--no-progress"]) == 0
    metrics = json.loads((run / "metrics.json").read_text())
    assert metrics["n_test"] == 2 and np.isfinite(metrics["test_rel_l2"])
    # Times in the file ('t'), a channel axis on both (the layout neuraloperator's PTDataset
    # makes of it) and a 2-D grid, which needs --channel-axis none (or --grid) to read its
    # axis 1 as time rather than as T channels.
    torch.save({"x": x[:, None], "y": y[:, None], "t": torch.linspace(0.1, 0.5, 5)},
               tmp_path / "c.pt")
    m = meta_of(convert(tmp_path / "c.pt", tmp_path / "c.h5", "neuralop", channel_axis=1).path)
    assert m.grid.shape == (16,) and m.times == pytest.approx([0.1, 0.2, 0.3, 0.4, 0.5])
    assert m.params["time_coordinate"] == "as stored ('t')"
    x2, y2 = torch.rand(4, 6, 7, generator=g), torch.rand(4, 3, 6, 7, generator=g)
    torch.save({"x": x2, "y": y2}, tmp_path / "two.pt")
    m = meta_of(convert(tmp_path / "two.pt", tmp_path / "two_ch.h5", "neuralop").path)
    assert m.output_fields == ["output_0", "output_1", "output_2"] and m.times is None
    for i, kw in enumerate([{"channel_axis": "none"}, {"grid": (6, 7)}]):
        res = convert(tmp_path / "two.pt", tmp_path / f"two_{i}.h5", "neuralop", **kw)
        assert open_xarray(res.path)["output"].dims == ("sample", "t", "x", "y")
        with h5py.File(res.path, "r") as f:
            np.testing.assert_array_equal(f["outputs/output"][...], y2.numpy())
    assert main(["convert", str(tmp_path / "two.pt"), "--from", "neuralop", "--no-progress",
                 "-o", str(tmp_path / "two_cli.h5")]) == 0
    assert "--channel-axis none" in capsys.readouterr().err  # the T-channel reading is noted
    with pytest.raises(ValueError, match=r"'t' \(4,\) should hold the 5"):
        torch.save({"x": x, "y": y, "t": torch.arange(4.0)}, tmp_path / "t4.pt")
        convert(tmp_path / "t4.pt", tmp_path / "t4.h5", "neuralop")


def test_neuralop_1d_channel_axis_grid_and_degenerate_axes(tmp_path, capsys):
    """(n, 1, N) is 1-D data with neuraloperator's channel axis; read as a 1×N grid it would
    fail at training, so conversion refuses it and names --channel-axis / --grid."""
    g = torch.Generator().manual_seed(4)
    x, y = torch.rand(5, 1, 64, generator=g), torch.rand(5, 1, 64, generator=g)
    torch.save({"x": x, "y": y}, tmp_path / "wave.pt")
    for argv in ([], ["--grid", "1", "64"]):
        assert main(["convert", str(tmp_path / "wave.pt"), "--from", "neuralop", *argv,
                     "-o", str(tmp_path / "bad.h5")]) == 2
        err = capsys.readouterr().err.strip()
        assert len(err.splitlines()) == 1 and "spatial axis of size 1" in err
        assert "--grid 64" in err and ("--channel-axis 1" in err or argv)
    assert not list(tmp_path.glob("bad.h5*"))
    for i, argv in enumerate((["--channel-axis", "1"], ["--grid", "64"],
                              ["--grid", "64", "--channel-axis", "1"])):
        out = tmp_path / f"wave_{i}.h5"
        assert main(["convert", str(tmp_path / "wave.pt"), "--from", "neuralop", *argv,
                     "--no-progress", "-o", str(out)]) == 0
        m = meta_of(out)
        assert m.grid.shape == (64,) and (m.input_fields, m.output_fields) == (["input"],
                                                                                ["output"])
        with h5py.File(out, "r") as f:
            np.testing.assert_array_equal(f["outputs/output"][...], y[:, 0].numpy())
    assert m.params["options"]["grid"] == [64] and m.params["options"]["channel_axis"] == 1
    # FNO trains on it: one mode count per spatial axis.
    assert main(["train", "--data", str(out), "--model", "fno", "--epochs", "1", "--batch-size",
                 "2", "--model-arg", "hidden_channels=4", "--model-arg", "n_layers=1",
                 "--out", str(tmp_path / "run"), "--no-progress"]) == 0
    # Options that contradict the tensors, or another format, are one-line refusals.
    for kw, message in [({"grid": 32}, "does not end in the --grid shape 32"),
                        ({"grid": 64, "channel_axis": "none"}, "expected \\(n, \\*grid\\)"),
                        ({"channel_axis": 2}, "use 1"),
                        ({"grid": (2, 3, 4, 5)}, "1 to 3 positive sizes")]:
        with pytest.raises(ValueError, match=message):
            convert(tmp_path / "wave.pt", tmp_path / "o.h5", "neuralop", **kw)
    src = write_pdebench_1d(tmp_path / "burgers.h5")
    with pytest.raises(ValueError, match="--from neuralop only"):
        convert(src, tmp_path / "o.h5", "pdebench", grid=8)
    # A 1-D input with a 1-axis-longer output of one snapshot is ambiguous: refused.
    torch.save({"x": x[:, 0], "y": y}, tmp_path / "amb.pt")
    with pytest.raises(ValueError, match="--channel-axis none"):
        convert(tmp_path / "amb.pt", tmp_path / "o.h5", "neuralop")
    m = meta_of(convert(tmp_path / "amb.pt", tmp_path / "amb.h5", "neuralop",
                        channel_axis="none").path)
    assert m.temporal_fields == ["output"] and m.times == [1.0]


# ---------------------------------------------------------------------------------- PDEBench


def write_pdebench_1d(path, n=4, n_t=5, nx=8, extra_t=True):
    rng = np.random.default_rng(0)
    with h5py.File(path, "w") as f:
        f["tensor"] = rng.standard_normal((n, n_t, nx)).astype(np.float32)
        f["x-coordinate"] = ((np.arange(nx) + 0.5) / nx).astype(np.float32)  # cell centres
        f["t-coordinate"] = np.linspace(0, 0.1 * (n_t - (0 if extra_t else 1)),
                                        n_t + int(extra_t)).astype(np.float32)
    return path


def test_pdebench_tensor_trajectories(tmp_path):
    src = write_pdebench_1d(tmp_path / "1D_Advection_Sols_beta0.1.hdf5")
    out = convert(src, tmp_path / "adv.h5", "pdebench").path
    assert check_file(out).ok
    m = meta_of(out)
    assert (m.input_fields, m.output_fields, m.temporal_fields) == (["u_t0"], ["u"], ["u"])
    assert m.grid.bc == ("periodic",) and m.grid.lengths == pytest.approx((1.0,))
    assert m.coords_source == "pdebench" and m.problem == "pdebench:1D_Advection_Sols_beta0.1"
    assert m.params["time_coordinate"].startswith("one longer")
    with h5py.File(src, "r") as s, h5py.File(out, "r") as f:
        np.testing.assert_array_equal(f["inputs/u_t0"][...], s["tensor"][:, 0])
        np.testing.assert_array_equal(f["outputs/u"][...], s["tensor"][:, 1:])
        np.testing.assert_array_equal(f["coords/x"][...], s["x-coordinate"][...])
        np.testing.assert_allclose(f["coords/t"][...], s["t-coordinate"][1:5])
        assert f["coords/x"].attrs["convention"] == "pdebench"
    assert PDEDataset(out, n_test=1, time_index=-1).read(0)[1].shape == (1, 8)
    assert open_xarray(out)["u"].dims == ("sample", "t", "x")
    # One chosen snapshot as a stationary output; another input step.
    out = convert(src, tmp_path / "adv_t4.h5", "pdebench", input_step=1, output_step=-1,
                  bc="dirichlet").path
    m = meta_of(out)
    assert (m.input_fields, m.output_fields, m.times, m.grid.bc) == (["u_t1"], ["u"], None,
                                                                      ("dirichlet",))
    with h5py.File(src, "r") as s, h5py.File(out, "r") as f:
        np.testing.assert_array_equal(f["outputs/u"][...], s["tensor"][:, 4])
    with pytest.raises(ValueError, match="no snapshot after input step 4"):
        convert(src, tmp_path / "x.h5", "pdebench", input_step=-1)


def test_pdebench_multivariable_darcy_cfd_and_groups(tmp_path):
    rng = np.random.default_rng(1)
    xs, ys = np.linspace(0, 1, 6), np.linspace(0, 2, 5)
    # (a) several variables (N, n_t, X, Y, C), 2-D, not periodic by name
    with h5py.File(tmp_path / "2D_multi.h5", "w") as f:
        f["tensor"] = rng.standard_normal((3, 4, 6, 5, 2)).astype(np.float32)
        f["x-coordinate"], f["y-coordinate"], f["t-coordinate"] = xs, ys, np.arange(4.0)
    out = convert(tmp_path / "2D_multi.h5", tmp_path / "multi.h5", "pdebench",
                  inputs=["u_1"], outputs=["u_0"]).path
    m = meta_of(out)
    assert (m.input_fields, m.output_fields, m.grid.bc) == (["u_1_t0"], ["u_0"],
                                                            ("dirichlet", "dirichlet"))
    with h5py.File(tmp_path / "2D_multi.h5", "r") as s, h5py.File(out, "r") as f:
        np.testing.assert_array_equal(f["inputs/u_1_t0"][...], s["tensor"][:, 0, ..., 1])
        np.testing.assert_array_equal(f["outputs/u_0"][...], s["tensor"][:, 1:, ..., 0])
    m = meta_of(convert(tmp_path / "2D_multi.h5", tmp_path / "multi2.h5", "pdebench",
                        inputs=["u"], output_step=2).path)
    assert (m.input_fields, m.output_fields) == (["u_0_t0", "u_1_t0"], ["u_0", "u_1"])
    # (b) Darcy
    with h5py.File(tmp_path / "2D_DarcyFlow_beta1.0_Train.hdf5", "w") as f:
        f["nu"] = rng.random((4, 6, 5)).astype(np.float32)
        f["tensor"] = rng.random((4, 1, 6, 5)).astype(np.float32)
        f["x-coordinate"], f["y-coordinate"] = np.arange(1, 7) * 0.2, np.arange(1, 6) * 0.5
    out = convert(tmp_path / "2D_DarcyFlow_beta1.0_Train.hdf5", tmp_path / "darcy.h5",
                  "pdebench").path
    m = meta_of(out)
    assert (m.input_fields, m.output_fields, m.params["layout"]) == (["nu"], ["u"], "darcy")
    assert m.params["files"][0]["split"] == "train" and m.coords_source is None
    assert m.grid.lengths == pytest.approx((1.4, 3.0))  # (n + 1) h: these are our nodes
    # (c) compressible Navier-Stokes variables, periodic by name
    with h5py.File(tmp_path / "1D_CFD_Rand_periodic.hdf5", "w") as f:
        for v in ("density", "pressure", "Vx"):
            f[v] = rng.random((2, 3, 6)).astype(np.float32)
        f["x-coordinate"], f["t-coordinate"] = xs, np.arange(3.0)
    m = meta_of(convert(tmp_path / "1D_CFD_Rand_periodic.hdf5", tmp_path / "cfd.h5",
                        "pdebench").path)
    assert m.input_fields == ["density_t0", "pressure_t0", "Vx_t0"]
    assert m.grid.bc == ("periodic",)
    # (d) one group per sample
    with h5py.File(tmp_path / "2D_diff-react_NA_NA.h5", "w") as f:
        for i in range(3):
            g = f.create_group(f"{i:04d}")
            g["data"] = rng.standard_normal((4, 6, 5, 2)).astype(np.float32)
            g["grid/x"], g["grid/y"], g["grid/t"] = xs, ys, np.arange(4.0)
    out = convert(tmp_path / "2D_diff-react_NA_NA.h5", tmp_path / "dr.h5", "pdebench").path
    m = meta_of(out)
    assert (m.input_fields, m.output_fields, m.n_samples) == (["u_0_t0", "u_1_t0"],
                                                             ["u_0", "u_1"], 3)
    with h5py.File(tmp_path / "2D_diff-react_NA_NA.h5", "r") as s, h5py.File(out, "r") as f:
        np.testing.assert_array_equal(f["outputs/u_1"][2], s["0002/data"][1:, ..., 1])
        np.testing.assert_array_equal(f["coords/y"][...], ys)


# --------------------------------------------------------------------------------- The Well


def write_well(path, n=3, n_t=4, nx=8, ny=6, seed=0):
    """A small file in The Well's layout: x periodic, y walls; scalar, vector and constant
    fields and a per-trajectory scalar."""
    rng = np.random.default_rng(seed)
    path.parent.mkdir(parents=True, exist_ok=True)
    strings = h5py.string_dtype()
    with h5py.File(path, "w") as f:
        f.attrs.update(dataset_name="toy_flow", grid_type="cartesian", n_spatial_dims=2,
                       n_trajectories=n, Re=100.0,
                       simulation_parameters=np.array(["Re"], dtype=strings))
        d = f.create_group("dimensions")
        d.attrs["spatial_dims"] = np.array(["x", "y"], dtype=strings)
        d["time"] = np.linspace(0, 0.3, n_t).astype(np.float32)
        d["x"] = (np.arange(nx) / nx * 2 * np.pi).astype(np.float32)
        d["y"] = ((np.arange(ny) + 0.5) / ny).astype(np.float32)
        for k in ("time", "x", "y"):
            d[k].attrs["sample_varying"] = False
        bcs = f.create_group("boundary_conditions")
        for name, dim, kind in (("x_periodic", "x", "PERIODIC"), ("y_wall", "y", "WALL")):
            g = bcs.create_group(name)
            g.attrs.update(bc_type=kind, associated_dims=np.array([dim], dtype=strings))
            g["mask"] = np.zeros(nx if dim == "x" else ny, dtype=bool)
        t0 = f.create_group("t0_fields")
        t0.attrs["field_names"] = np.array(["tracer", "obstacle"], dtype=strings)
        t0["tracer"] = rng.standard_normal((n, n_t, nx, ny)).astype(np.float32)
        t0["obstacle"] = rng.random((n, nx, ny)).astype(np.float32)
        t0["obstacle"].attrs["time_varying"] = False
        t1 = f.create_group("t1_fields")
        t1.attrs["field_names"] = np.array(["velocity"], dtype=strings)
        t1["velocity"] = rng.standard_normal((n, n_t, nx, ny, 2)).astype(np.float32)
        for ds in (t0["tracer"], t0["obstacle"], t1["velocity"]):
            ds.attrs.update(dim_varying=[True, True], sample_varying=True)
        t0["tracer"].attrs["time_varying"] = True
        t1["velocity"].attrs["time_varying"] = True
        f.create_group("t2_fields").attrs["field_names"] = np.array([], dtype=strings)
        s = f.create_group("scalars")
        s.attrs["field_names"] = np.array(["viscosity"], dtype=strings)
        s["viscosity"] = rng.random(n).astype(np.float32)
        s["viscosity"].attrs.update(sample_varying=True, time_varying=False)
    return path


def test_thewell_folder_with_splits_and_component_fields(tmp_path):
    root = tmp_path / "toy_flow"
    write_well(root / "data" / "train" / "toy_a.hdf5", n=3, seed=0)
    write_well(root / "data" / "train" / "toy_b.hdf5", n=2, seed=1)
    write_well(root / "data" / "valid" / "toy_c.hdf5", n=1, seed=2)
    write_well(root / "data" / "test" / "toy_d.hdf5", n=2, seed=3)
    res = convert(root, tmp_path / "well.h5", "thewell")
    assert (res.n_samples, res.n_train, res.n_test) == (8, 6, 2)  # valid goes to train
    out = res.path
    assert check_file(out).ok
    m = meta_of(out)
    assert m.input_fields == ["tracer_t0", "velocity_x_t0", "velocity_y_t0", "obstacle"]
    assert m.output_fields == ["tracer", "velocity_x", "velocity_y"]
    assert m.grid.bc == ("periodic", "dirichlet") and m.coords_source == "thewell"
    assert m.grid.lengths == pytest.approx((2 * np.pi, 7 / 6))
    assert m.times == pytest.approx([0.1, 0.2, 0.3])
    assert m.params["dataset_name"] == "toy_flow" and m.params["root_attrs"]["Re"] == 100.0
    assert [f["split"] for f in m.params["files"]] == ["train", "train", "valid", "test"]
    with h5py.File(root / "data" / "test" / "toy_d.hdf5", "r") as s, h5py.File(out, "r") as f:
        assert f["split"][...].tolist() == [0] * 6 + [1] * 2
        np.testing.assert_array_equal(f["outputs/velocity_y"][7], s["t1_fields/velocity"][1, 1:, ..., 1])
        np.testing.assert_array_equal(f["inputs/obstacle"][6], s["t0_fields/obstacle"][0])
        np.testing.assert_array_equal(f["coords/y"][...], s["dimensions/y"][...])
    assert len(PDEDataset(out, split="test")) == 2
    # Choices: a vector field by its name, a scalar broadcast as an input, valid dropped.
    res = convert(root, tmp_path / "well2.h5", "thewell", inputs=["velocity", "viscosity"],
                  outputs=["tracer"], output_step=2, valid="drop")
    m = meta_of(res.path)
    assert (res.n_samples, m.input_fields, m.output_fields, m.times) == (
        7, ["velocity_x_t0", "velocity_y_t0", "viscosity"], ["tracer"], None)
    with h5py.File(root / "data" / "train" / "toy_b.hdf5", "r") as s, \
            h5py.File(res.path, "r") as f:
        assert np.all(f["inputs/viscosity"][4] == s["scalars/viscosity"][1])
        np.testing.assert_array_equal(f["outputs/tracer"][3], s["t0_fields/tracer"][0, 2])
    with pytest.raises(ValueError, match="do not vary in time"):
        convert(root, tmp_path / "x.h5", "thewell", outputs=["obstacle"])
    with pytest.raises(ValueError, match="no field 'pressure'"):
        convert(root, tmp_path / "x.h5", "thewell", inputs=["pressure"])


# ------------------------------------------------------------------------- export, round trip


def make_dataset(path, temporal=True, split=True):
    """A schema-v1 file with source coordinates, a trajectory output and an interleaved split."""
    rng = np.random.default_rng(5)
    n, grid = 7, Grid((6, 5), (2.0, 1.5), ("periodic", "dirichlet"))
    times = [0.5, 1.0, 2.0] if temporal else None
    meta = Meta(problem="toy", params={"alpha": 0.5, "nested": {"k": [1, 2]}, "name": "t"},
                seed=3, n_samples=n, grid=grid, input_fields=["f", "g"], output_fields=["u"],
                package_version=package_version(),
                field_attrs={"u": {"description": "state", "units": "m"}}, times=times,
                temporal_fields=["u"] if temporal else [],
                coords={"x": (np.arange(6) * 0.3 + 0.1).tolist(), "y": np.linspace(0, 1, 5).tolist()},
                coords_source="somewhere", split=[0, 1, 0, 0, 1, 0, 1] if split else None)
    data = {"f": rng.standard_normal((n, 6, 5)), "g": rng.random((n, 6, 5)),
            "u": rng.standard_normal((n, 3, 6, 5) if temporal else (n, 6, 5))}
    write_hdf5(path, meta, lambda i: {k: v[i] for k, v in data.items()})
    return path


@pytest.mark.parametrize("to, name, temporal, split", [
    ("neuralop", "prefix", True, True),
    ("neuralop", "all.pt", True, False),
    ("neuralop", "all.h5", False, True),
    ("thewell", "wellset", True, True),
    ("thewell", "one.hdf5", False, False),
])
def test_export_then_convert_back_loses_nothing(tmp_path, to, name, temporal, split):
    src = make_dataset(tmp_path / "orig.h5", temporal, split)
    written = export(src, to, tmp_path / name)
    assert all(p.exists() for p in written) and len(written) == (2 if "." not in name and split
                                                                 else 1)
    back = convert(written[::-1], tmp_path / "back.h5", to).path  # order does not matter
    assert check_file(back).ok
    a, b = arrays(src), arrays(back)
    assert a.keys() == b.keys()
    for k in a:
        np.testing.assert_array_equal(a[k], b[k], err_msg=k)
    ma, mb = meta_of(src), meta_of(back)
    for key in ("problem", "params", "seed", "grid", "input_fields", "output_fields", "times",
                "temporal_fields", "coords", "coords_source", "split"):
        assert getattr(ma, key) == getattr(mb, key), key
    record = json.loads(mb.attrs["converted_from"])
    assert record["format"] == to and all(len(f["sha256"]) == 64 for f in record["files"])
    with h5py.File(back, "r") as f:
        assert f["outputs/u"].attrs["units"] == "m"


def test_exported_files_open_in_neuraloperator_and_follow_the_well_layout(tmp_path):
    from neuralop.data.datasets.hdf5_dataset import H5pyDataset
    from neuralop.data.datasets.pt_dataset import PTDataset

    src = make_dataset(tmp_path / "orig.h5", temporal=False, split=True)
    export(src, "neuralop", tmp_path / "toy")
    pt = PTDataset(tmp_path, "toy", n_train=4, n_tests=[3], batch_size=2, test_batch_sizes=[2],
                   train_resolution="6x5", test_resolutions=["6x5"], channels_squeezed=False)
    x, y = arrays(src)["inputs/f"], arrays(src)["outputs/u"]
    np.testing.assert_array_equal(pt.train_db[1]["x"][0].numpy(), x[2])  # 2nd train sample
    np.testing.assert_array_equal(pt.test_dbs["6x5"][0]["y"][0].numpy(), y[1])
    export(src, "neuralop", tmp_path / "toy.h5")
    h5 = H5pyDataset(tmp_path / "toy.h5", resolution=1024)
    assert len(h5) == 7 and h5[3]["x"].shape == (2, 6, 5)
    export(src, "thewell", tmp_path / "well")
    with h5py.File(tmp_path / "well" / "data" / "test" / "toy.hdf5", "r") as f:
        assert f.attrs["n_trajectories"] == 3 and f.attrs["n_spatial_dims"] == 2
        assert list(f["t0_fields"].attrs["field_names"]) == [b"f", b"g", b"u"] or \
            list(f["t0_fields"].attrs["field_names"]) == ["f", "g", "u"]
        assert f["t0_fields/u"].shape == (3, 1, 6, 5) and f["t0_fields/f"].shape == (3, 6, 5)
        assert f["boundary_conditions/x_periodic"].attrs["bc_type"] == "PERIODIC"
        assert f["dimensions/time"].shape == (1,) and f.attrs["alpha"] == 0.5


# ------------------------------------------------------------------------------------ refusals


def test_refusals_are_clear(tmp_path, capsys):
    src = write_pdebench_1d(tmp_path / "burgers.h5")
    (tmp_path / "taken.h5").write_bytes(b"")
    with pytest.raises(FileExistsError, match="exists"):
        convert(src, tmp_path / "taken.h5", "pdebench")
    with h5py.File(tmp_path / "odd.h5", "w") as f:
        f["velocity"] = np.zeros((2, 3, 4))
        f["force"] = np.zeros((2, 4))
    with pytest.raises(ValueError, match=r"unknown PDEBench layout \(found force \(2, 4\), "
                                         r"velocity \(2, 3, 4\)\); supported: tensor"):
        convert(tmp_path / "odd.h5", tmp_path / "o.h5", "pdebench")
    with pytest.raises(ValueError, match="not a The Well file"):
        convert(tmp_path / "odd.h5", tmp_path / "o.h5", "thewell")
    (tmp_path / "junk.pt").write_bytes(b"not a torch file")
    with pytest.raises(ValueError, match="does not load with torch.load"):
        convert(tmp_path / "junk.pt", tmp_path / "o.h5", "neuralop")
    torch.save({"a": torch.zeros(2, 3)}, tmp_path / "keys.pt")
    with pytest.raises(ValueError, match=r"found keys \['a'\]"):
        convert(tmp_path / "keys.pt", tmp_path / "o.h5", "neuralop")
    torch.save({"x": torch.zeros(2, 3, 3), "y": torch.zeros(2, 3, 3)}, tmp_path / "n.pt")
    with pytest.raises(ValueError, match="reserved"):
        convert(tmp_path / "n.pt", tmp_path / "o.h5", "neuralop", inputs=["x"])
    torch.save({"x": torch.full((2, 3, 3), float("nan")), "y": torch.zeros(2, 3, 3)},
               tmp_path / "nan.pt")
    with pytest.raises(ValueError, match="non-finite"):
        convert(tmp_path / "nan.pt", tmp_path / "o.h5", "neuralop")
    assert not list(tmp_path.glob("o.h5*"))
    with pytest.raises(ValueError, match="cannot tell whether"):
        convert([tmp_path / "n.pt", _named(tmp_path)], tmp_path / "o.h5", "neuralop")
    data = make_dataset(tmp_path / "d.h5")
    with pytest.raises(ValueError, match="train/test split"):
        export(data, "neuralop", tmp_path / "d.pt")
    export(data, "thewell", tmp_path / "w")
    with pytest.raises(FileExistsError, match="exist"):
        export(data, "thewell", tmp_path / "w")
    for argv, message in [
        (["convert", str(tmp_path / "odd.h5"), "--from", "pdebench", "-o", "o.h5"],
         "unknown PDEBench layout"),
        (["convert", str(tmp_path / "missing.h5"), "--from", "thewell", "-o", "o.h5"],
         "does not exist"),
        (["export", str(data), "--to", "neuralop", "-o", str(tmp_path / "d.npz")],
         "should end in"),
    ]:
        assert main(argv) == 2
        err = capsys.readouterr().err.strip()
        assert message in err and len(err.splitlines()) == 1


def _named(tmp_path):
    torch.save({"x": torch.zeros(2, 3, 3), "y": torch.zeros(2, 3, 3)}, tmp_path / "n_test_3.pt")
    return tmp_path / "n_test_3.pt"
