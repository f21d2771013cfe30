"""Dataset problems of the wave, fluid and biology solvers: layout, reproducibility, checks."""

import h5py
import numpy as np
import pytest

from neuralhss.datasets import PDEDataset, check_file, generate, get_problem
from neuralhss.datasets.generation import sample_rng

# Small, fast versions of each problem.
SMALL = {
    "helmholtz": {"resolution": 24, "pml": 4, "k0": 2 * np.pi},
    "maxwell": {"resolution": 24, "pml": 4, "t_final": 0.2, "n_snapshots": 2},
    "navier_stokes": {"resolution": 16, "t_final": 1.0, "n_snapshots": 2},
    "gray_scott": {"resolution": 16, "lengths": 0.3125, "patch_size": 0.1, "t_final": 50.0,
                   "n_snapshots": 2},
}


@pytest.mark.parametrize("name", sorted(SMALL))
def test_problem_generates_a_valid_reproducible_file(tmp_path, name):
    prob = get_problem(name)
    path = tmp_path / f"{name}.h5"
    generate(name, path, n_samples=3, seed=5, params=SMALL[name], progress=False)
    report = check_file(path)
    assert report.ok, report.problems
    params = prob.resolve(SMALL[name])
    sample = prob.sample(params, sample_rng(5, 2))
    with h5py.File(path, "r") as f:
        for spec in prob.field_specs:
            group = "inputs" if spec in prob.inputs else "outputs"
            ds = f[f"{group}/{spec.name}"]
            assert ds.shape == (3, *prob.field_shape(spec, params))
            np.testing.assert_array_equal(ds[2], sample[spec.name].astype(np.float32))
        if prob.times(params) is not None:
            np.testing.assert_allclose(f["coords/t"][...], prob.times(params))
    ds = PDEDataset(path, n_test=1, time_index=-1 if prob.times(params) is not None else None)
    assert ds[0]["x"].shape[0] == len(prob.inputs)
    assert ds[0]["y"].shape[0] == len(prob.outputs)


def test_navier_stokes_sample_is_the_solver_trajectory():
    from neuralhss.solvers import navier_stokes

    prob = get_problem("navier_stokes")
    params = prob.resolve(SMALL["navier_stokes"])
    s = prob.sample(params, sample_rng(0, 0))
    assert abs(s["w0"].mean()) < 1e-12
    w = navier_stokes.solve(s["w0"], nu=1e-3, t_final=1.0, forcing="li", n_snapshots=2)
    np.testing.assert_allclose(s["w"], w, rtol=0, atol=1e-12)


def test_gray_scott_outputs_stay_in_the_unit_interval():
    prob = get_problem("gray_scott")
    s = prob.sample(prob.resolve(SMALL["gray_scott"]), sample_rng(0, 1))
    for key in ("u", "v"):
        assert s[key].min() >= -1e-9 and s[key].max() <= 1 + 1e-9


def test_helmholtz_permittivity_is_background_in_the_pml():
    prob = get_problem("helmholtz")
    for medium in ("smooth", "inclusions"):
        params = prob.resolve({**SMALL["helmholtz"], "medium": medium})
        s = prob.sample(params, sample_rng(1, 0))
        eps = s["eps_r"]
        assert eps.min() >= 1.0 - 1e-12 and eps.max() <= 4.0 + 1e-12
        pml = params["pml"]
        np.testing.assert_array_equal(eps[:pml], 1.0)
        np.testing.assert_array_equal(eps[:, -pml:], 1.0)


@pytest.mark.parametrize("name, params, match", [
    ("navier_stokes", {"nu": -1.0}, "nu"),
    ("navier_stokes", {"cfl": 2.0}, "cfl"),
    ("navier_stokes", {"forcing": "kolmogorov"}, "forcing"),
    ("navier_stokes", {"bc": "dirichlet"}, "periodic"),
    ("gray_scott", {"regime": "nope"}, "regime"),
    ("gray_scott", {"scheme": "rk4"}, "scheme='rk4'; use one of"),
    ("gray_scott", {"dim": 3}, "2-D"),
    ("helmholtz", {"pml": 30, "resolution": 32}, "pml"),
    ("helmholtz", {"k0": 0.0}, "k0"),
    ("helmholtz", {"medium": "foam"}, "medium"),
    ("maxwell", {"courant": 1.5}, "courant"),
    ("maxwell", {"boundary": "open"}, "boundary"),
])
def test_bad_parameters_are_refused(name, params, match):
    with pytest.raises(ValueError, match=match):
        get_problem(name).resolve(params)


def test_file_from_before_a_parameter_existed_is_compared_as_made(tmp_path):
    # Gray-Scott files written before the "scheme" parameter were made with SBDF2: a finished
    # one is recognised as that, and refused, naming the difference, against today's default.
    import json

    path = tmp_path / "gs.h5"
    old = {**SMALL["gray_scott"], "scheme": "sbdf2"}
    generate("gray_scott", path, n_samples=2, seed=1, params=old, progress=False)
    with h5py.File(path, "r+") as f:
        params = json.loads(f.attrs["params"])
        del params["scheme"]
        f.attrs["params"] = json.dumps(params, sort_keys=True)
    r = generate("gray_scott", path, n_samples=2, seed=1, params=old, progress=False)
    assert r.already_complete
    with pytest.raises(FileExistsError, match=r"scheme: 'sbdf2' \(file\) vs 'ab2' \(now\)"):
        generate("gray_scott", path, n_samples=2, seed=1, params=SMALL["gray_scott"],
                 progress=False)
    assert get_problem("gray_scott").with_added({"scheme": "ab2"}) == {"scheme": "ab2"}
