import hashlib
import json
import os
import signal
import subprocess
import time

import h5py
import numpy as np
import pytest

from neuralhss.datasets import (
    PDEDataset,
    check_file,
    generate,
    get_problem,
    load_recipe,
    merge,
    open_xarray,
)
from neuralhss.datasets.generation import blocks_of, sample_rng
from neuralhss.solvers import darcy, poisson

SMALL = {"resolution": 16}


def sha(path):
    return hashlib.sha256(open(path, "rb").read()).hexdigest()


@pytest.fixture(scope="module")
def poisson_file(tmp_path_factory):
    path = tmp_path_factory.mktemp("data") / "poisson.h5"
    generate("poisson", path, n_samples=40, seed=3, params=SMALL, progress=False, block_size=8)
    return path


def test_file_follows_schema_and_matches_the_solver(poisson_file):
    with h5py.File(poisson_file, "r") as f:
        assert f.attrs["format"] == "neuralhss" and f.attrs["schema_version"] == 1
        assert f.attrs["problem"] == "poisson" and f.attrs["seed"] == 3
        assert f.attrs["n_samples"] == 40
        params = json.loads(f.attrs["params"])
        assert params["resolution"] == [16, 16]
        f_ds, u_ds = f["inputs/f"], f["outputs/u"]
        assert f_ds.shape == u_ds.shape == (40, 16, 16) and f_ds.dtype == np.float32
        assert f_ds.chunks == (1, 16, 16) and f_ds.compression == "gzip"
        assert [d.label for d in u_ds.dims] == ["sample", "x", "y"]
        assert u_ds.dims[1][0].name == "/coords/x"
        assert f["done"][...].all()
        # Sample 7 is reproducible from its own seed, and u solves the discrete problem.
        sample = get_problem("poisson").sample(params, sample_rng(3, 7))
        np.testing.assert_array_equal(f_ds[7], sample["f"].astype(np.float32))
        u = poisson.solve(f_ds[7].astype(np.float64))
        np.testing.assert_allclose(u_ds[7], u, rtol=1e-4, atol=1e-6 * np.abs(u).max())
    assert check_file(poisson_file).ok


def test_bit_identical_for_any_workers_and_for_merged_shards(tmp_path, poisson_file):
    one = tmp_path / "w2.h5"
    generate("poisson", one, n_samples=40, seed=3, params=SMALL, workers=2, progress=False,
             block_size=8)
    shards = []
    for i in range(3):  # 3 shards of 40 do not align with the blocks of 8
        shards.append(tmp_path / f"s{i}.h5")
        r = generate("poisson", shards[-1], n_samples=40, seed=3, params=SMALL,
                     shard=f"{i}/3", progress=False, block_size=8)
        assert r.n_owned in (13, 14)
        rep = check_file(shards[-1])
        assert rep.ok and rep.n_done == r.n_owned and rep.meta.shard == (i, 3)
    merged = merge(shards, tmp_path / "merged.h5", progress=False)
    assert sha(one) == sha(poisson_file) == sha(merged)


def test_merge_refuses_missing_or_foreign_shards(tmp_path):
    a = tmp_path / "a.h5"
    b = tmp_path / "b.h5"
    generate("poisson", a, n_samples=6, seed=0, params=SMALL, shard="0/2", progress=False)
    generate("poisson", b, n_samples=6, seed=1, params=SMALL, shard="1/2", progress=False)
    with pytest.raises(ValueError, match="lack 3 sample"):
        merge([a], tmp_path / "m.h5", progress=False)
    with pytest.raises(ValueError, match="does not belong"):
        merge([a, b], tmp_path / "m.h5", progress=False)
    with pytest.raises(FileExistsError):
        merge([a], a, progress=False)


def test_rerun_is_a_no_op_and_other_parameters_are_refused(tmp_path):
    path = tmp_path / "p.h5"
    generate("poisson", path, n_samples=5, seed=0, params=SMALL, progress=False)
    digest = sha(path)
    r = generate("poisson", path, n_samples=5, seed=0, params=SMALL, progress=False)
    assert r.already_complete and r.n_computed == 0
    with pytest.raises(FileExistsError, match="params.resolution"):
        generate("poisson", path, n_samples=5, seed=0, params={"resolution": 8}, progress=False)
    with pytest.raises(FileExistsError, match="seed"):
        generate("poisson", path, n_samples=5, seed=1, params=SMALL, progress=False)
    # The filter is part of what was asked for: another one is refused, not silently kept.
    with pytest.raises(FileExistsError, match="compressed with gzip level 1 rather than lzf"):
        generate("poisson", path, n_samples=5, seed=0, params=SMALL, progress=False,
                 compression="lzf")
    with pytest.raises(FileExistsError, match="rather than gzip level 4.*compression_level=1"):
        generate("poisson", path, n_samples=5, seed=0, params=SMALL, progress=False,
                 compression_level=4)
    assert sha(path) == digest  # nothing written
    other = tmp_path / "other.h5"
    other.write_bytes(b"not hdf5")
    with pytest.raises(FileExistsError, match="not a neuralhss dataset"):
        generate("poisson", other, n_samples=5, params=SMALL, progress=False)
    assert other.read_bytes() == b"not hdf5"


def test_resume_computes_only_missing_blocks(tmp_path, monkeypatch):
    path = tmp_path / "p.h5"
    from neuralhss.datasets import generation as gen_mod

    calls = []
    real = gen_mod._compute_raw  # one worker: blocks computed here, stored by a writer thread

    def flaky(problem, params, seed, a, b):
        if len(calls) == 2:
            raise KeyboardInterrupt  # an interruption after two finished blocks
        calls.append((a, b))
        return real(problem, params, seed, a, b)

    monkeypatch.setattr(gen_mod, "_compute_raw", flaky)
    with pytest.raises(KeyboardInterrupt):
        generate("poisson", path, n_samples=20, seed=0, params=SMALL, progress=False, block_size=4)
    assert not path.exists()
    assert len(list((tmp_path / "p.h5.parts").glob("*.npz"))) == 2
    monkeypatch.setattr(gen_mod, "_compute_raw", real)
    # Garbage from a write cut short is ignored or replaced.
    (tmp_path / "p.h5.partial").write_bytes(b"junk")
    (tmp_path / "p.h5.parts" / ".0000000008-0000000012.npz.99.tmp").write_bytes(b"junk")
    # A block cut short (power failure after the rename) is detected and recomputed.
    first = tmp_path / "p.h5.parts" / "0000000000-0000000004.npz"
    first.write_bytes(first.read_bytes()[:100])
    r = generate("poisson", path, n_samples=20, seed=0, params=SMALL, progress=False, block_size=4)
    assert (r.n_resumed, r.n_computed) == (4, 16)
    assert not (tmp_path / "p.h5.parts").exists() and not (tmp_path / "p.h5.partial").exists()
    fresh = tmp_path / "fresh.h5"
    generate("poisson", fresh, n_samples=20, seed=0, params=SMALL, progress=False, block_size=4)
    assert sha(fresh) == sha(path)
    # An interrupted run with other parameters is not silently mixed in.
    (tmp_path / "q.h5.parts").mkdir()
    (tmp_path / "q.h5.parts" / "manifest.json").write_text(json.dumps({"seed": 9}))
    with pytest.raises(FileExistsError, match="interrupted run with other parameters"):
        generate("poisson", tmp_path / "q.h5", n_samples=20, params=SMALL, progress=False)


def test_kill_9_then_resume(tmp_path, cli_env, python):
    path = tmp_path / "d.h5"
    cmd = [python, "-m", "neuralhss.cli", "generate", "darcy", "--resolution", "24",
           "--samples", "60", "--block-size", "1", "--no-progress", "-o", str(path)]
    proc = subprocess.Popen(cmd, env=cli_env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    parts = tmp_path / "d.h5.parts"
    deadline = time.time() + 60
    while time.time() < deadline and len(list(parts.glob("*.npz"))) < 5:
        time.sleep(0.02)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    n_before = len(list(parts.glob("*.npz")))
    assert 5 <= n_before < 60 and not path.exists()
    out = subprocess.run(cmd, env=cli_env, capture_output=True, text=True, check=True)
    assert "resumed" in out.stdout
    assert check_file(path).ok
    ref = tmp_path / "ref.h5"
    generate("darcy", ref, n_samples=60, params={"resolution": 24}, progress=False, block_size=1)
    assert sha(ref) == sha(path)


def test_check_reports_nan_and_incomplete(tmp_path):
    path = tmp_path / "p.h5"
    generate("poisson", path, n_samples=4, params=SMALL, progress=False)
    with h5py.File(path, "r+") as f:
        f["outputs/u"][2, 3, 3] = np.nan
    rep = check_file(path)
    assert not rep.ok and "non-finite values in outputs/u at sample 2" in rep.summary()
    with h5py.File(path, "r+") as f:
        f["done"][1] = False
    assert "1 sample(s) not done" in check_file(path).summary()
    with pytest.raises(FileNotFoundError):
        check_file(tmp_path / "missing.h5")
    (tmp_path / "x.h5").write_bytes(b"nope")
    with pytest.raises(ValueError, match="not a readable HDF5"):
        check_file(tmp_path / "x.h5")
    with h5py.File(tmp_path / "y.h5", "w") as f:
        f["a"] = 1
    with pytest.raises(ValueError, match="not a neuralhss dataset"):
        check_file(tmp_path / "y.h5")


@pytest.mark.parametrize("kwargs, exc, match", [
    ({"problem": "heat"}, ValueError, "unknown problem"),
    ({"params": {"resolutoin": 8}}, ValueError, "unknown parameter"),
    ({"params": {"dim": 4}}, ValueError, "dim=4"),
    ({"params": {"length_scale": -1}}, ValueError, "length_scale"),
    ({"n_samples": 0}, ValueError, "n_samples"),
    ({"seed": -1}, ValueError, "seed"),
    ({"workers": 0}, ValueError, "workers"),
    ({"shard": "3/2"}, ValueError, "out of range"),
    ({"shard": "a/b"}, ValueError, "I/N"),
])
def test_generate_bad_input(tmp_path, kwargs, exc, match):
    args = {"problem": "poisson", "n_samples": 4, "params": SMALL, **kwargs}
    with pytest.raises(exc, match=match):
        generate(args.pop("problem"), tmp_path / "p.h5", progress=False, **args)
    assert not (tmp_path / "p.h5").exists()


def test_darcy_problem_is_the_two_phase_benchmark(tmp_path):
    path = tmp_path / "d.h5"
    generate("darcy", path, n_samples=3, params={"resolution": 20}, progress=False)
    with h5py.File(path, "r") as f:
        a, u = f["inputs/a"][...], f["outputs/u"][...]
    assert set(np.unique(a)) <= {3.0, 12.0}
    assert np.all(u > 0)  # f = 1 > 0 with zero boundary values: maximum principle
    np.testing.assert_allclose(u[1], darcy.solve(a[1].astype(float), 1.0), rtol=1e-4)


def test_pdedataset_split_normalisation_and_loader(poisson_file):
    import torch

    train = PDEDataset(poisson_file, split="train", n=10, n_test=8, normalize="gaussian")
    test = PDEDataset(poisson_file, split="test", n_test=8, normalize=train.normalizer)
    assert len(train) == 10 and len(test) == 8
    assert train.indices.tolist() == list(range(10))
    assert test.indices.tolist() == list(range(32, 40))
    item = train[0]
    assert item["x"].shape == (1, 16, 16) and item["y"].dtype == torch.float32
    X, Y = train.arrays()
    assert abs(X.mean()) < 1e-5 and X.std() == pytest.approx(1.0, rel=1e-4)
    raw_x, raw_y = test.read(0)
    np.testing.assert_allclose(test.normalizer.decode_y(test[0]["y"].numpy(), dim=2), raw_y,
                               rtol=1e-5, atol=1e-6)
    loader = torch.utils.data.DataLoader(train, batch_size=4, num_workers=2)
    batches = list(loader)
    assert batches[0]["x"].shape == (4, 1, 16, 16)
    torch.testing.assert_close(torch.cat([b["y"] for b in batches]), torch.from_numpy(Y))
    scaled = PDEDataset(poisson_file, split="train", n=10, n_test=8, normalize="scale")
    Xs, _ = scaled.arrays()
    assert np.sqrt(np.mean(Xs.astype(np.float64) ** 2)) == pytest.approx(1.0, rel=1e-4)
    np.testing.assert_allclose(Xs * scaled.normalizer.x_std[0], X * train.normalizer.x_std[0]
                               + train.normalizer.x_mean[0], rtol=1e-4, atol=1e-5)
    with pytest.raises(ValueError, match="n=50"):
        PDEDataset(poisson_file, n=50)
    with pytest.raises(ValueError, match="split"):
        PDEDataset(poisson_file, split="val")
    with pytest.raises(FileNotFoundError):
        PDEDataset(poisson_file.with_name("nope.h5"))


def test_pdedataset_subset_is_a_disjoint_view(poisson_file):
    train = PDEDataset(poisson_file, n_test=8, normalize="gaussian")
    val = train.subset(slice(-5, None))
    assert len(val) == 5 and val.normalizer is train.normalizer
    assert set(val.indices) == set(range(27, 32))
    np.testing.assert_array_equal(val[0]["x"].numpy(), train[27]["x"].numpy())
    assert len(train) == 32  # the original is untouched
    with pytest.raises(ValueError, match="empty"):
        train.subset([])


def test_pdedataset_honours_a_split_dataset(tmp_path):
    path = tmp_path / "p.h5"
    generate("poisson", path, n_samples=6, params=SMALL, progress=False)
    with h5py.File(path, "r+") as f:
        f["split"] = np.array([1, 0, 0, 1, 0, 0], dtype=np.uint8)
    assert PDEDataset(path, split="test").indices.tolist() == [0, 3]
    assert PDEDataset(path, split="train").indices.tolist() == [1, 2, 4, 5]


def test_open_xarray(poisson_file):
    ds = open_xarray(poisson_file)
    assert ds["u"].dims == ("sample", "x", "y")
    assert ds.sizes == {"sample": 40, "x": 16, "y": 16}
    np.testing.assert_allclose(ds["x"].values, np.arange(1, 17) / 17)
    assert ds.attrs["problem"] == "poisson"
    assert ds["f"].attrs["role"] == "input"
    assert float(ds["u"].isel(sample=0).max()) > 0


def test_recipes_in_the_repository_are_valid():
    from pathlib import Path

    recipes = sorted((Path(__file__).resolve().parents[1] / "datasets").glob("*.yaml"))
    assert recipes
    for path in recipes:
        recipe = load_recipe(path)
        assert recipe.samples > 0


def test_blocks_align_to_multiples():
    assert blocks_of(range(5, 23), 8) == [(5, 8), (8, 16), (16, 23)]
    assert blocks_of(range(0, 0), 8) == []


@pytest.mark.parametrize("compression", ["gzip", "lzf", "none"])
def test_chunks_encoded_by_workers_decode_like_hdf5s_own(tmp_path, compression):
    from neuralhss.datasets.generation import ChunkCodec
    from neuralhss.datasets.schema import filter_options

    rng = np.random.default_rng(0)
    chunks = [rng.standard_normal((16, 16)).astype(np.float32), np.zeros((16, 16), np.float32),
              np.full((16, 16), np.nan, np.float32),
              rng.integers(0, 2**32, (16, 16), dtype=np.uint32).view(np.float32),  # incompressible
              np.cumsum(rng.standard_normal((16, 16)), 0).astype(np.float32)]
    path = tmp_path / "plain.h5"
    with h5py.File(path, "w") as f:  # written by HDF5's own filter pipeline
        ds = f.create_dataset("x", shape=(len(chunks), 16, 16), dtype=np.float32,
                              chunks=(1, 16, 16), **filter_options(compression))
        for i, c in enumerate(chunks):
            ds[i] = c
    codec = ChunkCodec(compression)
    with h5py.File(path, "r") as f:
        for i, c in enumerate(chunks):
            mask, stored = f["x"].id.read_direct_chunk((i, 0, 0))
            if compression == "gzip":  # ISA-L's deflate stream: other bytes, same chunk, same size
                mask_ours, ours = codec.encode(c)
                assert mask_ours == 0 and len(ours) <= 1.1 * len(stored) + 64
                np.testing.assert_array_equal(codec.decode(mask_ours, ours, (16, 16)), c)
            else:
                assert codec.encode(c) == (mask, bytes(stored))
            if compression != "lzf":
                np.testing.assert_array_equal(codec.decode(mask, stored, (16, 16)), c)


@pytest.mark.parametrize("level", [1, 3, 6])
def test_gzip_chunks_are_read_back_by_hdf5s_own_deflate_filter(tmp_path, level):
    from neuralhss.datasets.generation import ChunkCodec
    from neuralhss.datasets.schema import filter_options

    rng = np.random.default_rng(1)
    chunks = [np.cumsum(rng.standard_normal((32, 32)), 1).astype(np.float32),
              rng.integers(0, 2**32, (32, 32), dtype=np.uint32).view(np.float32),
              np.zeros((32, 32), np.float32)]
    codec = ChunkCodec("gzip", level)
    path = tmp_path / "direct.h5"
    with h5py.File(path, "w") as f:
        ds = f.create_dataset("x", shape=(len(chunks), 32, 32), dtype=np.float32,
                              chunks=(1, 32, 32), **filter_options("gzip", level))
        for i, c in enumerate(chunks):
            ds.id.write_direct_chunk((i, 0, 0), *reversed(codec.encode(c)))
    with h5py.File(path, "r") as f:  # decoded by HDF5's filter pipeline, not by our codec
        np.testing.assert_array_equal(f["x"][...], np.stack(chunks))


@pytest.mark.parametrize("compression", ["lzf", "none"])
def test_other_filters_are_deterministic_and_read_by_plain_h5py(tmp_path, poisson_file,
                                                                compression):
    files = []
    for workers, block in ((1, 8), (2, 3)):
        files.append(tmp_path / f"{compression}{workers}.h5")
        generate("poisson", files[-1], n_samples=40, seed=3, params=SMALL, workers=workers,
                 progress=False, block_size=block, compression=compression)
    assert sha(files[0]) == sha(files[1]) != sha(poisson_file)
    with h5py.File(files[0], "r") as f, h5py.File(poisson_file, "r") as ref:
        assert f["outputs/u"].compression == (None if compression == "none" else compression)
        for p in ("inputs/f", "outputs/u"):
            np.testing.assert_array_equal(f[p][...], ref[p][...])
    assert check_file(files[0]).ok
    shards = [tmp_path / f"{compression}s{i}.h5" for i in range(2)]
    for i, s in enumerate(shards):
        generate("poisson", s, n_samples=40, seed=3, params=SMALL, shard=f"{i}/2",
                 progress=False, compression=compression)
    assert sha(merge(shards, tmp_path / "m.h5", progress=False)) == sha(files[0])
    with pytest.raises(ValueError, match="compression='zip' is not one of gzip, lzf, none"):
        generate("poisson", tmp_path / "z.h5", n_samples=4, params=SMALL, progress=False,
                 compression="zip")


def test_blocks_are_written_in_sample_order_whatever_order_they_finish_in(tmp_path):
    from neuralhss.datasets import generation as gen_mod

    meta = gen_mod._meta_for(get_problem("poisson"), get_problem("poisson").resolve(SMALL), 0,
                             20, None)
    codec = gen_mod.ChunkCodec()

    def block(a, b):
        return gen_mod.compute_block(get_problem("poisson"), meta.params, 0, a, b, meta, codec)

    parts = tmp_path / "p.h5.parts"
    parts.mkdir()
    gen_mod.save_block(gen_mod.block_path(parts, 4, 8), block(4, 8))  # resumed from disk
    gen_mod.save_block(gen_mod.block_path(parts, 16, 20), block(16, 20))

    class Writer:
        written: list = []

        def write_block(self, a, b, blk):
            self.written.append((a, b, blk[0].shape[0]))

    sink = gen_mod._InOrder(Writer(), parts, meta, range(20), 4)
    for a in (0, 8, 12):
        sink.submitted(a)
    sink.add(12, 16, block(12, 16))  # finishes first: waits in memory
    gen_mod.save_block(gen_mod.block_path(parts, 8, 12), block(8, 12))
    sink.add(8, 12, None)  # a pool worker's block: read from its file when its turn comes
    assert Writer.written == [] and sink.backlog() == 2
    sink.add(0, 4, block(0, 4))
    sink.finish()
    assert Writer.written == [(0, 4, 8), (4, 8, 8), (8, 12, 8), (12, 16, 8), (16, 20, 8)]
    assert sink.backlog() == 0
