import subprocess

import h5py
import pytest
import torch

from neuralhss.cli import main


def test_generate_check_merge_from_the_command_line(tmp_path, capsys):
    out = tmp_path / "p.h5"
    assert main(["generate", "poisson", "--dim", "1", "--resolution", "32", "--samples", "12",
                 "--seed", "4", "--param", "length_scale=0.2", "--no-progress", "-o", str(out)]) == 0
    assert "12 samples computed" in capsys.readouterr().out
    assert main(["generate", "poisson", "--dim", "1", "--resolution", "32", "--samples", "12",
                 "--seed", "4", "--param", "length_scale=0.2", "--no-progress", "-o", str(out)]) == 0
    assert "already complete" in capsys.readouterr().out
    assert main(["check", str(out)]) == 0
    with h5py.File(out, "r") as f:
        assert f["inputs/f"].shape == (12, 32)
    shards = [str(tmp_path / f"s{i}.h5") for i in range(2)]
    for i, s in enumerate(shards):
        assert main(["generate", "poisson", "--dim", "1", "--resolution", "32", "--samples", "12",
                     "--seed", "4", "--param", "length_scale=0.2", "--shard", f"{i}/2",
                     "--no-progress", "-o", s]) == 0
    merged = tmp_path / "m.h5"
    assert main(["merge", *shards, "-o", str(merged), "--no-progress"]) == 0
    assert merged.read_bytes() == out.read_bytes()


def test_generate_from_recipe_with_overrides(tmp_path):
    recipe = tmp_path / "r.yaml"
    recipe.write_text("problem: darcy\nsamples: 100\nseed: 2\nparams:\n  resolution: 12\n")
    out = tmp_path / "d.h5"
    assert main(["generate", str(recipe), "--samples", "3", "--no-progress", "-o", str(out)]) == 0
    with h5py.File(out, "r") as f:
        assert f.attrs["n_samples"] == 3 and f.attrs["seed"] == 2
        assert f["inputs/a"].shape == (3, 12, 12)


@pytest.mark.parametrize("argv, message", [
    (["generate", "heat", "--samples", "2", "-o", "{tmp}/x.h5"], "unknown problem 'heat'"),
    (["generate", "poisson", "-o", "{tmp}/x.h5"], "--samples is required"),
    (["generate", "poisson", "--samples", "2", "--param", "bc=neumann", "-o", "{tmp}/x.h5"],
     "unknown boundary condition"),
    (["generate", "{tmp}/missing.yaml", "-o", "{tmp}/x.h5"], "does not exist"),
    (["check", "{tmp}/missing.h5"], "does not exist"),
])
def test_errors_are_one_line_with_exit_2(tmp_path, capsys, argv, message):
    argv = [a.replace("{tmp}", str(tmp_path)) for a in argv]
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert message in err and len(err.splitlines()) == 1


def test_check_fails_with_status_1_on_a_bad_file(tmp_path, capsys):
    out = tmp_path / "p.h5"
    main(["generate", "poisson", "--resolution", "8", "--samples", "2", "--no-progress",
          "-o", str(out)])
    with h5py.File(out, "r+") as f:
        f["inputs/f"][0, 0, 0] = float("inf")
    assert main(["check", str(out)]) == 1
    assert "non-finite" in capsys.readouterr().err


def test_console_script_runs(tmp_path, cli_env, python):
    res = subprocess.run([python, "-m", "neuralhss.cli", "problems"], env=cli_env,
                         capture_output=True, text=True, check=True)
    assert "poisson" in res.stdout and "darcy" in res.stdout


def test_train_and_evaluate_from_the_command_line(tmp_path, capsys):
    import json

    data = tmp_path / "p.h5"
    assert main(["generate", "poisson", "--resolution", "12", "--samples", "14", "--no-progress",
                 "-o", str(data)]) == 0
    run = tmp_path / "run"
    argv = ["train", "--data", str(data), "--model", "fno", "--n-train", "4", "--n-test", "6",
            "--epochs", "2", "--batch-size", "2", "--model-arg", "hidden_channels=4",
            "--model-arg", "n_layers=1", "--out", str(run), "--no-progress"]
    assert main(argv) == 0
    metrics = json.loads((run / "metrics.json").read_text())
    assert metrics["n_train"] == 4 and metrics["n_test"] == 6
    assert {"test_rel_l2", "n_params", "train_seconds"} <= set(metrics)
    capsys.readouterr()
    assert main(["evaluate", str(run / "checkpoint.pt"), "--data", str(data)]) == 0
    printed = json.loads(capsys.readouterr().out)
    assert abs(printed["test_rel_l2"] - metrics["test_rel_l2"]) < 1e-6
    # FNO is discretisation-agnostic: it evaluates on another grid.
    other = tmp_path / "q.h5"
    main(["generate", "poisson", "--resolution", "10", "--samples", "8", "--no-progress",
          "-o", str(other)])
    capsys.readouterr()
    assert main(["evaluate", str(run / "checkpoint.pt"), "--data", str(other), "--n-test", "2"]) == 0
    capsys.readouterr()
    # A model for other channels is refused with a clear message.
    import torch

    ckpt = torch.load(run / "checkpoint.pt", weights_only=True)
    ckpt["run"]["spec"]["config"]["in_channels"] = 2
    torch.save(ckpt, run / "two.pt")
    assert main(["evaluate", str(run / "two.pt"), "--data", str(data)]) == 2
    assert "takes 2 -> 1 channels" in capsys.readouterr().err
    (run / "bad.pt").write_bytes(b"\x00" * 10)
    assert main(["evaluate", str(run / "bad.pt"), "--data", str(data)]) == 2
    assert "corrupted" in capsys.readouterr().err


def test_train_neural_h2_starts_from_its_convex_fit(tmp_path, capsys):
    import json

    data = tmp_path / "p.h5"
    assert main(["generate", "poisson", "--resolution", "16", "--samples", "40", "--no-progress",
                 "-o", str(data)]) == 0
    capsys.readouterr()

    def train(out, *extra):
        # eight samples: the linear fit's held-out error is 0.095 with the default --normalize
        # scale (the training mean's: 1.35); 0.33 with gaussian, which makes the map affine
        argv = ["train", "--data", str(data), "--model", "neural_h2", "--n-train", "8",
                "--n-test", "8", "--epochs", "1", "--batch-size", "8", "--model-arg", "hidden_channels=4",
                "--model-arg", "n_layers=1", "--out", str(tmp_path / out), "--no-progress", *extra]
        assert main(argv) == 0
        return capsys.readouterr().out, json.loads((tmp_path / out / "metrics.json").read_text())

    said, started = train("start")
    assert "starts from the convex fit" in said
    said, cold = train("cold", "--linear-fit", "never")
    assert "starts from zero" in said
    # one Adam step after the convex start is far better than one from scratch on linear data
    assert started["test_rel_l2"] < 0.5 * cold["test_rel_l2"]
    # standardised data make the linear map affine: the linear start is worse
    said, standardised = train("gaussian", "--normalize", "gaussian")
    assert started["test_rel_l2"] < 0.5 * standardised["test_rel_l2"]


def test_train_neural_h2_falls_back_to_its_convex_start_in_the_checkpoint(tmp_path, capsys):
    """Steps far too large for the blocks make the trained model worse than its convex start
    on the training pairs: the CLI silences them, as fit_method does, and the checkpoint holds
    that model (evaluate gives the metrics' test error; a resumed run keeps it)."""
    import json

    data = tmp_path / "p.h5"
    assert main(["generate", "poisson", "--resolution", "16", "--samples", "24", "--no-progress",
                 "-o", str(data)]) == 0
    out = tmp_path / "run"
    argv = ["train", "--data", str(data), "--model", "neural_h2", "--n-train", "8", "--n-test", "8",
            "--epochs", "3", "--batch-size", "8", "--lr", "0.3", "--model-arg", "hidden_channels=4",
            "--model-arg", "n_layers=1", "--out", str(out), "--no-progress"]
    capsys.readouterr()
    assert main(argv) == 0
    assert "blocks are silenced" in capsys.readouterr().out
    metrics = json.loads((out / "metrics.json").read_text())
    record = metrics["fallback"]
    assert not record["kept_blocks"] and record["rel_l2_start"] < record["rel_l2_trained"]
    assert metrics["train_rel_l2"] == record["rel_l2_start"]
    assert main(["evaluate", str(out / "checkpoint.pt"), "--data", str(data)]) == 0
    evaluated = json.loads(capsys.readouterr().out)
    assert evaluated["test_rel_l2"] == pytest.approx(metrics["test_rel_l2"], rel=1e-5)
    from neuralhss.train.state import replace_model_state

    with pytest.raises(FileNotFoundError, match="does not exist"):
        replace_model_state(tmp_path / "none" / "checkpoint.pt", torch.nn.Linear(1, 1))
    assert main(argv) == 0  # resumed: nothing to train, the silenced model stays
    again = json.loads((out / "metrics.json").read_text())
    assert again["test_rel_l2"] == pytest.approx(metrics["test_rel_l2"], rel=1e-5)


def test_train_neural_h2_follows_the_data_boundary_condition(tmp_path, capsys):
    """The CLI builds neural_h2 as fit_method does: periodic data, periodic continuation."""
    data = tmp_path / "periodic.h5"
    assert main(["generate", "poisson", "--resolution", "16", "--samples", "12", "--param",
                 "bc=periodic", "--no-progress", "-o", str(data)]) == 0
    out = tmp_path / "run"
    assert main(["train", "--data", str(data), "--model", "neural_h2", "--n-train", "4",
                 "--n-test", "4", "--epochs", "1", "--model-arg", "hidden_channels=4", "--model-arg",
                 "n_layers=1", "--out", str(out), "--no-progress"]) == 0
    capsys.readouterr()
    (ckpt,) = [p for p in out.glob("*.pt")]
    config = torch.load(ckpt, weights_only=False)["run"]["spec"]["config"]
    assert (config["boundary"], config["hidden_boundary"]) == ("periodic", "periodic")


def test_train_options_are_derived_from_train_config():
    """`neuralhss train` takes its defaults from TrainConfig and PDEDataset (one place each)."""
    import inspect
    from dataclasses import fields

    from neuralhss.cli import build_parser
    from neuralhss.datasets import PDEDataset
    from neuralhss.train import TrainConfig

    args = build_parser().parse_args(["train", "--data", "d.h5", "--out", "run"])
    for f in fields(TrainConfig):
        if f.name not in ("lowrank", "progress"):
            assert getattr(args, f.name) == f.default, f.name
    assert args.n_test == inspect.signature(PDEDataset).parameters["n_test"].default
    args = build_parser().parse_args(["train", "--data", "d.h5", "--out", "run", "--n-test", "7",
                                      "--optimizer", "adam"])
    assert args.n_test == 7 and isinstance(args.n_test, int) and args.optimizer == "adam"


def test_attack_from_the_command_line(tmp_path, capsys):
    import json

    data = tmp_path / "p.h5"
    assert main(["generate", "poisson", "--resolution", "8", "--samples", "8", "--no-progress",
                 "-o", str(data)]) == 0
    run = tmp_path / "run"
    assert main(["train", "--data", str(data), "--n-test", "2", "--epochs", "1", "--model-arg",
                 "hidden_channels=4", "--model-arg", "n_layers=1", "--out", str(run),
                 "--no-progress"]) == 0
    capsys.readouterr()
    out = tmp_path / "attack.json"
    assert main(["attack", str(run / "checkpoint.pt"), "--data", str(data), "--eps", "0.01",
                 "--steps", "2", "--rank", "2", "--json", str(out)]) == 0
    printed = capsys.readouterr().out.splitlines()
    assert "lowrank_r2" in printed[1] and len(printed) == 3
    (row,) = json.loads(out.read_text())["results"]
    assert set(row) == {"eps", "random", "pgd", "lowrank_r2"} and len(row["pgd"]["per_sample"]) == 2
    assert main(["attack", str(run / "checkpoint.pt"), "--data", str(data), "--eps", "0.01",
                 "--rank", "9"]) == 2
    assert "exceeds the smallest grid side" in capsys.readouterr().err


def test_recipe_overrides_are_merged_in_the_library(tmp_path):
    from neuralhss.datasets.recipes import resolve_target

    recipe = tmp_path / "r.yaml"
    recipe.write_text("problem: darcy\nsamples: 100\nseed: 2\nparams:\n  resolution: 12\n")
    assert resolve_target(str(recipe), samples=3) == ("darcy", {"resolution": 12}, 3, 2)
    assert resolve_target(str(recipe), resolution=[8, 16], params=[("dim", 2)], seed=5) == \
        ("darcy", {"resolution": [8, 16], "dim": 2}, 100, 5)
    assert resolve_target("poisson", dim=1, resolution=[32]) == \
        ("poisson", {"dim": 1, "resolution": 32}, None, 0)


def test_generate_compression_option_writes_that_filter(tmp_path, capsys):
    out = tmp_path / "raw.h5"
    assert main(["generate", "poisson", "--resolution", "16", "--samples", "3", "--compression",
                 "none", "--no-progress", "-o", str(out)]) == 0
    with h5py.File(out, "r") as f:
        assert f["outputs/u"].compression is None
    assert main(["check", str(out)]) == 0
    capsys.readouterr()
