import numpy as np
import pytest
import scipy.fft as sfft
from hypothesis import given, settings
from hypothesis import strategies as st

from neuralhss import fields
from neuralhss.grid import Grid


def test_grid_dirichlet_and_periodic_nodes():
    g = Grid((4, 5), lengths=(1.0, 2.0), bc=("dirichlet", "periodic"))
    np.testing.assert_allclose(g.coords(0), [0.2, 0.4, 0.6, 0.8])
    np.testing.assert_allclose(g.coords(1), [0.0, 0.4, 0.8, 1.2, 1.6])
    assert g.spacing == pytest.approx((0.2, 0.4))
    assert g.size == 20 and g.dim == 2 and g.axis_names == ("x", "y")
    X, Y = g.meshgrid()
    assert X.shape == Y.shape == (4, 5)
    assert Grid.from_dict(g.to_dict()) == g


@given(st.lists(st.integers(1, 40), min_size=1, max_size=3),
       st.floats(0.1, 10.0), st.sampled_from(["dirichlet", "periodic"]))
def test_grid_coordinates_are_uniform_and_inside(shape, length, bc):
    g = Grid(tuple(shape), lengths=length, bc=bc)
    for k in range(g.dim):
        x = g.coords(k)
        assert x.shape == (shape[k],)
        assert np.all(x >= 0) and np.all(x < length)
        if shape[k] > 1:
            np.testing.assert_allclose(np.diff(x), g.spacing[k])
        if bc == "dirichlet":  # symmetric interior nodes
            np.testing.assert_allclose(x + x[::-1], length)


@pytest.mark.parametrize("kwargs, match", [
    ({"shape": (0, 4)}, "positive integers"),
    ({"shape": (2, 2, 2, 2)}, "1, 2 or 3"),
    ({"shape": (4, 4), "lengths": (1.0,)}, "lengths has 1 entries"),
    ({"shape": (4,), "lengths": -1.0}, "finite and positive"),
    ({"shape": (4,), "lengths": float("nan")}, "finite and positive"),
    ({"shape": (4,), "bc": "neumann"}, "unknown boundary condition"),
])
def test_grid_bad_input(kwargs, match):
    with pytest.raises(ValueError, match=match):
        Grid(**kwargs)


@pytest.mark.parametrize("bc", ["dirichlet", "periodic", ("periodic", "dirichlet")])
def test_grf_variance_equals_amplitude_squared(bc):
    g = Grid((32, 32), bc=bc)
    u = fields.grf(g, 1, length_scale=0.2, smoothness=1.0, amplitude=1.5, n_samples=3000)
    assert u.shape == (3000, 32, 32)
    assert np.mean(u**2) == pytest.approx(1.5**2, rel=0.05)


def test_grf_sine_coefficients_follow_the_spectrum():
    g = Grid((64,))
    ell, nu = 0.1, 1.5
    u = fields.grf(g, 7, length_scale=ell, smoothness=nu, n_samples=4000)
    coef = sfft.dst(u, type=1, norm="ortho", axis=-1)
    measured = coef.var(axis=0)
    S = fields.matern_spectrum(g, ell, nu)
    expected = S * g.size / S.sum()
    # Each variance is estimated from 4000 samples: about 2.2 % standard error.
    np.testing.assert_allclose(measured[:20], expected[:20], rtol=0.1)


def test_grf_deterministic_and_seed_dependent():
    g = Grid((16, 16, 16))
    a = fields.grf(g, np.random.SeedSequence(5))
    b = fields.grf(g, np.random.SeedSequence(5))
    c = fields.grf(g, 6)
    assert np.array_equal(a, b)
    assert not np.allclose(a, c)


def test_grf_periodic_zero_mean_and_smoothness_orders_roughness():
    g = Grid((64, 64), bc="periodic")
    u = fields.grf(g, 0, zero_mean=True, n_samples=4)
    np.testing.assert_allclose(u.mean(axis=(1, 2)), 0, atol=1e-12)
    rough = fields.grf(g, 0, smoothness=0.0, n_samples=50)
    smooth = fields.grf(g, 0, smoothness=3.0, n_samples=50)
    grad = lambda v: np.mean(np.diff(v, axis=-1) ** 2)  # noqa: E731
    assert grad(smooth) < 0.2 * grad(rough)


def test_threshold_and_lognormal():
    psi = np.array([-1.0, 0.0, 2.0])
    np.testing.assert_array_equal(fields.threshold(psi, low=3, high=12), [3, 12, 12])
    np.testing.assert_allclose(fields.lognormal(psi, scale=0.5), np.exp(0.5 * psi))
    assert np.all(fields.lognormal(fields.grf(Grid(8), 0)) > 0)


@pytest.mark.parametrize("kwargs, match", [
    ({"length_scale": 0.0}, "length_scale"),
    ({"amplitude": -1.0}, "amplitude"),
    ({"smoothness": -0.5}, "smoothness"),
    ({"n_samples": 0}, "n_samples"),
])
def test_grf_bad_input(kwargs, match):
    with pytest.raises(ValueError, match=match):
        fields.grf(Grid(8), 0, **kwargs)


def test_grf_requires_seed():
    with pytest.raises(ValueError, match="seed"):
        fields.grf(Grid(8), None)


@settings(max_examples=20, deadline=None)
@given(st.integers(0, 2**32 - 1))
def test_grf_dirichlet_vanishes_beyond_the_boundary(seed):
    # Sine synthesis: the odd extension through the boundary node is exact, so the field
    # continued by zeros at x=0 and x=L is the sum of sines (checked via DST round trip).
    g = Grid((20,))
    u = fields.grf(g, seed)
    coef = sfft.dst(u, type=1, norm="ortho")
    np.testing.assert_allclose(sfft.idst(coef, type=1, norm="ortho"), u, atol=1e-12)


def test_grid_is_the_one_source_of_nodes_and_per_axis_checks():
    from neuralhss import grid as grid_mod
    from neuralhss.solvers import _stencils, verification

    assert _stencils.normalize_lengths is grid_mod.axis_lengths
    assert _stencils.normalize_bc is grid_mod.axis_bcs
    assert _stencils.spacing is grid_mod.axis_spacing
    g = Grid((5, 4), (2.0, 0.5), ("dirichlet", "periodic"))
    for got, want in zip(verification.nodes(g.shape, g.lengths, g.bc), g.meshgrid(), strict=True):
        np.testing.assert_array_equal(got, want)
    for k in range(g.dim):
        np.testing.assert_array_equal(grid_mod.axis_coords(g.shape[k], g.lengths[k], g.bc[k]), g.coords(k))
    # The same refusal, with the same message, from Grid and from a solver.
    from neuralhss.solvers import poisson

    for kwargs in ({"lengths": (1.0, -2.0)}, {"bc": ("dirichlet", "neumann")}, {"lengths": (1.0,)}):
        with pytest.raises(ValueError) as from_grid:
            Grid((4, 4), **kwargs)
        with pytest.raises(ValueError) as from_solver:
            poisson.solve(np.zeros((4, 4)), **kwargs)
        assert str(from_grid.value) == str(from_solver.value)
