import pytest
import torch

from neuralhss.datasets import PDEDataset, generate
from neuralhss.train.loop import to_memory
from neuralhss.train.methods import LINEAR_DEGREES, LINEAR_START_MAX_RATIO, METHODS, fit_method


@pytest.fixture(scope="module")
def poisson(tmp_path_factory):
    path = tmp_path_factory.mktemp("m") / "p.h5"
    generate("poisson", path, n_samples=24, params={"resolution": 16}, progress=False)
    train = PDEDataset(path, "train", n=8, n_test=8, normalize="scale")
    return train, PDEDataset(path, "test", n_test=8, normalize=train.normalizer)


def test_every_method_fits_and_reports(poisson):
    train, test = poisson
    errors = {}
    for name in METHODS:
        model, m = fit_method(name, train, test, steps=4, lbfgs_iter=30, untie_top=1)
        assert {"test_rel_l2", "n_params", "train_seconds", "n_test"} <= set(m)
        assert m["n_test"] == 8 and m["n_params"] > 0
        errors[name] = m["test_rel_l2"]
    # The closed-form linear fits are far better than 4 Adam steps on a linear problem.
    assert errors["hss_poly"] < 0.5 and errors["least_squares"] < 0.8
    assert errors["h2_linear"] < 0.5
    with pytest.raises(ValueError, match="unknown method"):
        fit_method("unet", train, test)


def test_hss_poly_leaf_size_sets_the_tree(poisson):
    train, test = poisson
    # 16x16 grid: leaves of 16 (4x4) give 4 levels, leaves of 64 (8x8) give 2; one untied level
    # each, so the bigger leaves hold more (untied) leaf-block parameters.
    small, m_small = fit_method("hss_poly", train, test, degree=2, untie_top=1, lbfgs_iter=30)
    big, m_big = fit_method("hss_poly", train, test, degree=2, untie_top=1, lbfgs_iter=30,
                            leaf_size=64)
    assert small.op.tree.leaf_size == 16 and big.op.tree.leaf_size == 64
    assert m_big["n_params"] != m_small["n_params"]
    with pytest.raises(ValueError, match="leaf"):
        fit_method("hss_poly", train, test, degree=5, leaf_size=16)  # rank 21 > 16 points


def test_neural_h2_starts_from_its_linear_fit_only_where_it_generalises(poisson):
    train, test = poisson
    _, m = fit_method("neural_h2", train, test, steps=2, lbfgs_iter=30)
    assert m["linear_start"]["fitted"]
    start = m["linear_start"]
    assert start["validation_rel_l2"] < LINEAR_START_MAX_RATIO * start["validation_rel_l2_mean"]
    assert not m["linear_start"]["centered"]
    # the model starts as its linear path: the recorded start is the closed-form fit
    lin_model, lin = fit_method("h2_linear", train, test, lbfgs_iter=30)
    if not lin["linear_start"]["centered"]:
        assert abs(m["linear_test_rel_l2"] - lin["test_rel_l2"]) < 0.02
    # h2_linear keeps whichever of linear and affine validated better
    v = lin["linear_start"]
    assert v["validation_rel_l2"] == min(v["validation_rel_l2_linear"], v["validation_rel_l2_affine"])
    # the iteration count was chosen on the held-out half (early stopping) and scaled to n = 8
    assert 0 <= v["iterations"] <= 30 and v["fit_iterations"] == min(30, 2 * v["iterations"])
    _, never = fit_method("neural_h2", train, test, steps=2, linear_fit="never")
    assert not never["linear_start"]["fitted"] and never["linear_start"]["validation_rel_l2"] is None
    assert "linear_test_rel_l2" not in never
    with pytest.raises(ValueError, match="linear_fit"):
        fit_method("neural_h2", train, test, steps=2, linear_fit="sometimes")


def test_several_channels_drop_the_linear_path_under_auto_only():
    """With two input channels the linear path has no convex fit: ``"auto"`` rebuilds the model
    without it (as the same seed builds it without one), ``"never"`` keeps it to train."""
    from neuralhss.models import build
    from neuralhss.train.loop import InMemory
    from neuralhss.train.methods import start_neural_h2

    cfg = {"grid_shape": [16, 16], "in_channels": 2, "out_channels": 1, "hidden_channels": 4,
           "n_layers": 1}
    mem = InMemory(torch.randn(4, 2, 16, 16), torch.randn(4, 1, 16, 16))
    torch.manual_seed(5)
    model = build("neural_h2", **cfg)
    config = dict(cfg)
    dropped, record = start_neural_h2(model, config, mem, torch.device("cpu"), rule="auto", seed=5)
    assert dropped.linear is None and config["linear_path"] is False
    assert record["dropped"] and not record["fitted"]
    torch.manual_seed(5)
    twin = build("neural_h2", **cfg, linear_path=False)
    x = torch.randn(2, 2, 16, 16)
    torch.testing.assert_close(dropped(x), twin(x))
    kept, record = start_neural_h2(model, dict(cfg), mem, torch.device("cpu"), rule="never")
    with pytest.raises(ValueError, match="linear_fit='sometimes'"):
        start_neural_h2(model, dict(cfg), mem, torch.device("cpu"), rule="sometimes")
    assert kept is model and kept.linear is not None and record is None
    # with no blocks there is nothing to rebuild it as: the path stays
    bare = build("neural_h2", **{**cfg, "n_layers": 0})
    assert start_neural_h2(bare, {**cfg, "n_layers": 0}, mem, torch.device("cpu"))[0] is bare


def test_linear_start_chooses_its_degree_on_held_out_pairs(poisson):
    """The convex start fits every candidate degree on half the training pairs and keeps the
    one with the lowest error on the other half; a degree the caller gives is kept."""
    train, test = poisson
    boxes = {"linear_far": "boxes"}  # the degree probes are the polynomial box far field's
    model, m = fit_method("h2_linear", train, test, lbfgs_iter=20, model_args=boxes)
    start = m["linear_start"]
    by_degree = start["validation_rel_l2_by_degree"]
    assert set(by_degree) == set(LINEAR_DEGREES[2])
    assert start["linear_degree"] == min(by_degree, key=by_degree.get)
    assert start["validation_rel_l2"] == by_degree[start["linear_degree"]]
    assert model.op.linear.degree == start["linear_degree"]
    model, m = fit_method("h2_linear", train, test, lbfgs_iter=20,
                          model_args={**boxes, "linear_degree": 2})
    assert set(m["linear_start"]["validation_rel_l2_by_degree"]) == {2}
    assert model.op.linear.degree == 2
    # neural_h2 is rebuilt with the chosen degree (its spec too, so a checkpoint rebuilds it),
    # and its hidden layers start as the seed built them
    net, m = fit_method("neural_h2", train, test, steps=1, lbfgs_iter=20, seed=3,
                        model_args={**boxes, "hidden_channels": 4, "n_layers": 1})
    chosen = m["linear_start"]["linear_degree"]
    assert net.linear.degree == chosen and net.spec["config"]["linear_degree"] == chosen
    twin, _ = fit_method("neural_h2", train, test, steps=1, lbfgs_iter=20, seed=3,
                         model_args={**boxes, "hidden_channels": 4, "n_layers": 1,
                                     "linear_degree": chosen})
    torch.testing.assert_close(net(to_memory(test).x), twin(to_memory(test).x))
    # other degrees cannot be built without the model's configuration
    from neuralhss.models import build
    from neuralhss.train.methods import start_neural_h2

    bare = build("neural_h2", grid_shape=list(train.grid_shape), n_layers=0)
    with pytest.raises(ValueError, match="config"):
        start_neural_h2(bare, None, to_memory(train), torch.device("cpu"), 5,
                        degrees=(bare.linear.degree + 1,))


def test_full_width_linear_path_has_no_degree_to_choose_and_fits_poisson(poisson):
    """With a near field as wide as the grid the linear path has no far field, so the convex
    start probes no degrees; on Dirichlet Poisson that one kernel on the image-continued source
    fits far better than the polynomial far field from the same 8 pairs."""
    train, test = poisson
    _, far = fit_method("h2_linear", train, test, lbfgs_iter=800, linear_solver="lbfgs",
                        model_args={"linear_far": "boxes"})
    model, full = fit_method("h2_linear", train, test, lbfgs_iter=800, linear_solver="lbfgs",
                             model_args={"linear_near_radius": "full"})
    assert model.op.linear.n_levels == 0
    assert set(full["linear_start"]["validation_rel_l2_by_degree"]) == {model.op.linear.degree}
    assert full["test_rel_l2"] < 0.1 * far["test_rel_l2"]


def test_exact_linear_start_is_kept_where_it_validates_lower(poisson):
    """``linear_solver="auto"`` fits the stationary linear path both ways on half the pairs
    and keeps the exact solve where it validates lower (on smooth Poisson data, where L-BFGS
    stalls on the weakly excited directions); ``"lstsq"`` alone records no iterations."""
    train, test = poisson
    args = {"linear_far": "stationary", "linear_degree": 4, "linear_symmetric": True}
    _, auto = fit_method("h2_linear", train, test, lbfgs_iter=50, linear_solver="auto",
                         model_args=args)
    start = auto["linear_start"]
    by_solver = start["validation_rel_l2_by_solver"]
    assert start["solver"] == min(by_solver, key=by_solver.get) == "lstsq"
    assert start["validation_rel_l2"] == by_solver["lstsq"] and start["fit_iterations"] == 0
    _, lbfgs = fit_method("h2_linear", train, test, lbfgs_iter=50, model_args=args,
                          linear_solver="lbfgs")
    assert lbfgs["linear_start"]["solver"] == "lbfgs"
    # with no solver named, a path this small (under EXACT_FIT_MAX_VALUES) is offered both
    _, default = fit_method("h2_linear", train, test, lbfgs_iter=50, model_args=args)
    assert default["linear_start"]["validation_rel_l2_by_solver"] == by_solver
    assert auto["test_rel_l2"] < lbfgs["test_rel_l2"]
    with pytest.raises(ValueError, match="linear_solver"):
        fit_method("h2_linear", train, test, linear_solver="exact")


def test_no_linear_start_where_the_training_mean_predicts_as_well(tmp_path):
    """Darcy's coefficient -> solution map: a linear fit from half the samples predicts the other
    half worse than their mean does, so the automatic rule builds the model without a linear
    path; the ratio it decided on is recorded."""
    path = tmp_path / "d.h5"
    generate("darcy", path, n_samples=24, params={"resolution": 16}, progress=False)
    train = PDEDataset(path, "train", n=16, n_test=8, normalize="scale")
    test = PDEDataset(path, "test", n_test=8, normalize=train.normalizer)
    model, m = fit_method("neural_h2", train, test, steps=1, lbfgs_iter=30)
    start = m["linear_start"]
    assert start["validation_rel_l2"] > LINEAR_START_MAX_RATIO * start["validation_rel_l2_mean"]
    assert not start["fitted"] and model.linear is None


def test_affine_start_is_centred_on_the_training_means(poisson):
    train, test = poisson
    model, m = fit_method("neural_h2", train, test, steps=1, lbfgs_iter=20, linear_fit="always")
    start = m["linear_start"]
    assert start["validation_rel_l2_affine"] is not None
    model, m = fit_method("neural_h2", train, test, steps=1, lbfgs_iter=20, linear_fit="affine")
    mem = to_memory(train)
    if m["linear_start"]["fitted"]:
        assert m["linear_start"]["centered"]
        torch.testing.assert_close(model.x_center, mem.x.mean(0))
        torch.testing.assert_close(model.y_center, mem.y.mean(0))
    else:  # the affine path failed validation: no linear path at all
        assert model.linear is None


def test_linear_start_is_decided_on_a_validation_split(poisson, tmp_path):
    """With a validation set the probes are fitted on all training pairs and scored on it: the
    recorded error is the fitted path's error there, and the chosen iteration count is used
    as it is (not scaled from half the pairs)."""
    from torch.utils.data import Subset

    from neuralhss.train.loop import evaluate

    train, test = poisson
    pool = PDEDataset(train.path, "train", n=16, n_test=8, normalize=train.normalizer)
    val = Subset(pool, range(8, 16))
    model, m = fit_method("h2_linear", train, test, lbfgs_iter=30, validation=val)
    start = m["linear_start"]
    assert start["scored_on"] == "validation" and start["fit_iterations"] == start["iterations"]
    on_val = evaluate(model, to_memory(val), train.normalizer)["test_rel_l2"]
    assert on_val == pytest.approx(start["validation_rel_l2"], rel=1e-3)
    # the training mean is scored on the same samples
    mem, vmem = to_memory(train), to_memory(val)
    mean = mem.y.double().mean(0).flatten()
    expected = ((mean - vmem.y.double().flatten(1)).norm(dim=1) / vmem.y.double().flatten(1).norm(dim=1))
    assert start["validation_rel_l2_mean"] == pytest.approx(float(expected.mean()), rel=1e-6)
    # one training sample is enough to decide the linear start on a validation set
    one = PDEDataset(train.path, "train", n=1, n_test=8, normalize=train.normalizer)
    _, m1 = fit_method("neural_h2", one, test, steps=1, lbfgs_iter=10, validation=val)
    assert m1["linear_start"]["validation_rel_l2"] is not None
    # samples of another grid are refused before anything is fitted
    generate("poisson", tmp_path / "q.h5", n_samples=4, params={"resolution": 8}, progress=False)
    other = PDEDataset(tmp_path / "q.h5", "train", n=2, n_test=2, normalize="scale")
    with pytest.raises(ValueError, match="validation samples"):
        fit_method("h2_linear", train, test, lbfgs_iter=5, validation=other)


def test_mean_offset_adds_the_training_outputs_mean(poisson):
    """offset="mean": the model is what it learns plus the training outputs' mean field, which
    is symmetric under the square's symmetries when it is taken over the images."""
    from neuralhss.train.methods import MeanOffset

    train, test = poisson
    mem = to_memory(train)
    model, m = fit_method("fno", train, test, steps=2, offset="mean",
                          model_args={"hidden_channels": 4, "n_modes": (4, 4)})
    assert isinstance(model, MeanOffset) and m["n_params"] > 0
    torch.testing.assert_close(model.mean, mem.y.mean(0))
    x = mem.x[:2]
    torch.testing.assert_close(model(x) - model.model(x), model.mean.expand(2, *model.mean.shape))
    model, _ = fit_method("fno", train, test, steps=2, offset="mean", augment="d4",
                          model_args={"hidden_channels": 4, "n_modes": (4, 4)})
    torch.testing.assert_close(model.mean, model.mean.transpose(-1, -2))
    torch.testing.assert_close(model.mean, model.mean.flip(-1))
    # "mean_feature": the inner model also reads the mean as an extra input channel
    for method in ("fno", "neural_h2"):
        model, _ = fit_method(method, train, test, steps=2, offset="mean_feature",
                              model_args={"hidden_channels": 4})
        assert model.feature and model.model.in_channels == 2
        inner = model.model(torch.cat([x, model.mean.expand(2, *model.mean.shape)], 1))
        torch.testing.assert_close(model(x), inner + model.mean)
    with pytest.raises(ValueError, match="offset"):
        fit_method("fno", train, test, steps=2, offset="median")
    with pytest.raises(ValueError, match="closed-form"):
        fit_method("affine_least_squares", train, test, offset="mean")


@pytest.mark.parametrize("grid", [(32, 32), (16, 16, 16)])
def test_fit_method_builds_the_registry_defaults(grid):
    """One default per model: the examples (fit_method) and the CLI (default_config) agree."""
    from neuralhss.models import default_config
    from neuralhss.train.methods import GRADIENT_METHODS

    for method in ("fno", "tfno", "uno", "neural_h2"):
        name, cfg = GRADIENT_METHODS[method](grid)
        defaults = default_config(name, 1, 1, grid)
        assert {k: v for k, v in cfg.items() if k in defaults} == \
            {k: v for k, v in defaults.items() if k in cfg}
        assert set(defaults) - set(cfg) == {"in_channels", "out_channels"}
    assert default_config("fno", 1, 1, (16, 16, 16))["hidden_channels"] == 16


def test_square_images_are_the_square_symmetries():
    """Each image pair is again a (source, solution) pair of a square-symmetric PDE, the eight
    images differ, the transpose group gives the pairs and their transposes, and a non-square
    grid or an unknown group is refused."""
    import numpy as np

    from neuralhss.solvers import poisson
    from neuralhss.train.loop import InMemory
    from neuralhss.train.symmetry import square_images

    f = np.random.default_rng(0).standard_normal((2, 1, 9, 9))
    u = poisson.solve(f, dim=2)
    mem = InMemory(torch.from_numpy(f), torch.from_numpy(u))
    aug = square_images(mem)
    assert aug.x.shape == (16, 1, 9, 9)
    np.testing.assert_allclose(poisson.solve(aug.x.numpy(), dim=2), aug.y.numpy(), atol=1e-12)
    assert len({tuple(np.round(x.numpy().ravel(), 12)) for x in aug.x[::2]}) == 8
    tr = square_images(mem, "transpose")
    assert tr.x.shape == (4, 1, 9, 9) and torch.equal(tr.x[:2], mem.x)
    assert torch.equal(tr.x[2:], mem.x.transpose(-1, -2))
    np.testing.assert_allclose(poisson.solve(tr.x.numpy(), dim=2), tr.y.numpy(), atol=1e-12)
    with pytest.raises(ValueError, match="square grid"):
        square_images(InMemory(torch.zeros(1, 1, 4, 5), torch.zeros(1, 1, 4, 5)))
    with pytest.raises(ValueError, match="group="):
        square_images(mem, "c4")


def test_periodic_shifts_are_pairs_of_the_periodic_operator(poisson):
    """Every drawn item is a (source, solution) pair of periodic Poisson (translation-invariant),
    rolled alike on both axes by offsets that vary between draws and repeat with the seed;
    on data that is not periodic, fit_method refuses the augmentation."""
    import numpy as np

    from neuralhss.solvers import poisson as solver
    from neuralhss.train.loop import InMemory
    from neuralhss.train.symmetry import PeriodicShifts

    f = np.random.default_rng(1).standard_normal((2, 1, 8, 12))
    f -= f.mean(axis=(-2, -1), keepdims=True)
    u = solver.solve(f, bc="periodic", dim=2)
    mem = InMemory(torch.from_numpy(f), torch.from_numpy(u))
    shifted = PeriodicShifts(mem, seed=3)
    draws = [shifted[i % 2] for i in range(12)]
    for it in draws:
        assert it["x"].shape == (1, 8, 12)
        np.testing.assert_allclose(solver.solve(it["x"].numpy(), bc="periodic", dim=2),
                                   it["y"].numpy(), atol=1e-12)
    assert len({tuple(np.round(it["x"].numpy().ravel(), 12)) for it in draws[::2]}) > 3
    shifted = PeriodicShifts(mem, seed=3)
    again = [shifted[i % 2] for i in range(12)]
    assert all(torch.equal(a["x"], b["x"]) for a, b in zip(draws, again, strict=True))
    train, test = poisson
    for augment in ("shifts", "d4+shifts"):
        with pytest.raises(ValueError, match="periodic"):
            fit_method("fno", train, test, steps=1, augment=augment)
    with pytest.raises(ValueError, match="augment"):
        fit_method("fno", train, test, steps=1, augment="rotate")


def test_symmetrize_returns_the_group_average_and_both_errors(poisson):
    """fit_method(symmetrize=True) returns the trained model averaged over its augmentation's
    group, whose test error is at most the unaveraged model's mean error over the test
    samples' images; both are reported; without a group (or for a closed-form fit) it is
    refused."""
    from neuralhss.train.loop import InMemory, to_memory
    from neuralhss.train.metrics import sample_errors
    from neuralhss.train.symmetry import SymmetryAverage, square_images

    train, test = poisson
    model, m = fit_method("fno", train, test, steps=3, augment="d4", symmetrize=True)
    assert isinstance(model, SymmetryAverage) and model.group == "d4"
    assert {"train_rel_l2_plain", "test_rel_l2_plain"} <= set(m)
    tmem = to_memory(test)
    images = square_images(InMemory(tmem.x, tmem.y))
    with torch.no_grad():
        per_image = sample_errors(model.model(images.x), images.y, train.normalizer)
    assert m["test_rel_l2"] <= float(per_image.reshape(8, -1).mean(0).mean()) + 1e-6
    assert m["test_rel_l2"] != m["test_rel_l2_plain"]
    for name, augment in (("fno", None), ("h2_linear", "d4")):
        with pytest.raises(ValueError, match="symmetrize"):
            fit_method(name, train, test, steps=1, augment=augment, symmetrize=True)


def test_keep_start_if_better_silences_blocks_only_where_the_start_alone_is_closer():
    """Pairs made by the linear path alone: the start wins and the blocks are silenced (the
    model is its path again). Pairs made by the whole model: the blocks stay, unchanged."""
    from neuralhss.models import build
    from neuralhss.train.loop import InMemory
    from neuralhss.train.methods import keep_start_if_better

    torch.manual_seed(0)
    model = build("neural_h2", grid_shape=[16, 16], hidden_channels=4, n_layers=1)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(0.1 * torch.randn_like(p))  # a non-zero path and a non-zero last projection
    x = torch.randn(4, 1, 16, 16)
    with torch.no_grad():
        whole, path = model(x), model.linear_part(x)
    before = [p.detach().clone() for p in model.parameters()]
    kept = keep_start_if_better(model, model, InMemory(x, whole), None, torch.device("cpu"))
    assert kept["kept_blocks"] and kept["rel_l2_trained"] < 1e-6 < kept["rel_l2_start"]
    assert all(torch.equal(a, b) for a, b in zip(before, model.parameters(), strict=True))
    silenced = keep_start_if_better(model, model, InMemory(x, path), None, torch.device("cpu"))
    assert not silenced["kept_blocks"] and silenced["rel_l2_start"] < 1e-6
    with torch.no_grad():
        torch.testing.assert_close(model(x), path)
        model.project[-1].weight.fill_(float("nan"))  # blocks that diverged
    diverged = keep_start_if_better(model, model, InMemory(x, whole), None, torch.device("cpu"))
    assert not diverged["kept_blocks"]
    with torch.no_grad():
        torch.testing.assert_close(model(x), path)


def test_neural_h2_falls_back_to_an_exact_convex_start(poisson):
    """On Poisson the exact least-squares start of the stationary linear path is the solution
    operator to rounding; large Adam steps on the blocks only add error, so fit_method returns
    the start (its test error is the start's), unless fallback_to_start=False."""
    train, test = poisson
    args = {"steps": 10, "lr": 3e-2, "linear_solver": "lstsq",
            "model_args": {"hidden_channels": 4, "n_layers": 1, "linear_far": "stationary",
                           "linear_dtype": "float64"}}
    _, m = fit_method("neural_h2", train, test, **args)
    fb = m["fallback"]
    assert fb["judged_on"] == "training pairs" and not fb["kept_blocks"]
    assert fb["rel_l2_start"] < fb["rel_l2_trained"]
    assert m["test_rel_l2"] == pytest.approx(m["linear_test_rel_l2"], rel=1e-4)
    assert m["train_rel_l2"] == pytest.approx(fb["rel_l2_start"], rel=1e-4)
    _, raw = fit_method("neural_h2", train, test, fallback_to_start=False, **args)
    assert "fallback" not in raw
    assert raw["train_rel_l2"] == pytest.approx(fb["rel_l2_trained"], rel=1e-4)
    # given validation samples, they judge instead of the training pairs
    from torch.utils.data import Subset

    from neuralhss.train.loop import evaluate

    pool = PDEDataset(train.path, "train", n=16, n_test=8, normalize=train.normalizer)
    val = Subset(pool, range(8, 16))
    model, m = fit_method("neural_h2", train, test, validation=val, **args)
    assert m["fallback"]["judged_on"] == "validation" and not m["fallback"]["kept_blocks"]
    on_val = evaluate(model, to_memory(val), train.normalizer)["test_rel_l2"]
    assert on_val == pytest.approx(m["fallback"]["rel_l2_start"], rel=1e-4)


def test_the_2d_default_neural_h2_solves_poisson_from_its_exact_start(poisson):
    """The 2-D default's linear path (one translation-invariant kernel on the source continued
    by odd images) holds the discrete Poisson solution operator; its exact least-squares start
    recovers it from the training pairs, and the trained model keeps that accuracy."""
    train, test = poisson
    model, m = fit_method("neural_h2", train, test, steps=20,
                          model_args={"hidden_channels": 4, "n_layers": 1})
    assert model.linear.far == "stationary" and model.linear.near.dtype == torch.float64
    assert m["linear_start"]["fitted"] and m["linear_start"]["solver"] == "lstsq"
    assert m["test_rel_l2"] < 1e-4 and m["linear_test_rel_l2"] < 1e-4
