import astropy.units as u
import numpy as np
import pytest
from specutils import Spectrum

from stellarlatent.preprocessing import SpectralGrid
from stellarlatent.preprocessing.grid import bin_edges


def test_log_uniform_has_constant_log_step():
    grid = SpectralGrid.log_uniform(4000 * u.AA, 7000 * u.AA, 1000)
    ratios = np.diff(np.log(grid.spectral_axis.value))
    assert np.allclose(ratios, ratios[0], rtol=1e-9)
    assert grid.spectral_axis[0] == 4000 * u.AA
    assert u.isclose(grid.spectral_axis[-1], 7000 * u.AA)


def test_linear_grid_and_units():
    grid = SpectralGrid.linear(400 * u.nm, 500 * u.nm, 101)
    assert grid.unit == u.nm
    assert np.allclose(np.diff(grid.spectral_axis.value), 1.0)
    assert grid.velocity_step is None


def test_velocity_step_grid():
    step = 2.5 * u.km / u.s
    grid = SpectralGrid.from_velocity_step(5000 * u.AA, 5100 * u.AA, step)
    measured = grid.velocity_step.to(u.km / u.s)
    assert u.isclose(measured, step, rtol=1e-9)
    assert grid.spectral_axis[-1] <= 5100 * u.AA
    # the next pixel would lie beyond the stop
    next_pixel = grid.spectral_axis[-1] * np.exp((step / (299792.458 * u.km / u.s)).decompose())
    assert next_pixel > 5100 * u.AA


def test_bin_edges_match_specutils():
    centers = np.geomspace(4000, 5000, 37)
    spec = Spectrum(flux=np.ones(37) * u.Jy, spectral_axis=centers * u.AA)
    assert np.array_equal(bin_edges(centers), spec.spectral_axis.bin_edges.value)


def test_decreasing_axis_is_reversed():
    grid = SpectralGrid(np.array([3.0, 2.0, 1.0]) * u.um)
    assert np.array_equal(grid.spectral_axis.value, [1.0, 2.0, 3.0])


def test_round_trip_through_dict():
    grid = SpectralGrid.log_uniform(4000 * u.AA, 7000 * u.AA, 64)
    again = SpectralGrid.from_dict(grid.to_dict())
    assert again == grid
    assert again.kind == "log_uniform"


@pytest.mark.parametrize(
    ("call", "match"),
    [
        (lambda: SpectralGrid.log_uniform(4000, 7000, 10), "Quantity"),
        (lambda: SpectralGrid.log_uniform(7000 * u.AA, 4000 * u.AA, 10), "stop must be greater"),
        (lambda: SpectralGrid.linear(4000 * u.AA, 7000 * u.AA, 1), "n must be an integer"),
        (lambda: SpectralGrid.linear(4000 * u.s, 7000 * u.s, 10), "spectral units"),
        (lambda: SpectralGrid(np.array([1.0, 2.0, 2.0]) * u.AA), "duplicated"),
        (lambda: SpectralGrid(np.array([1.0, 3.0, 2.0]) * u.AA), "not monotonic"),
        (lambda: SpectralGrid.from_velocity_step(5000 * u.AA, 5100 * u.AA, 2 * u.AA), "velocity"),
        (lambda: SpectralGrid.coerce([1, 2, 3]), "grid must be a SpectralGrid"),
    ],
)
def test_bad_grids_raise_clear_errors(call, match):
    with pytest.raises((ValueError, TypeError, u.UnitsError), match=match):
        call()
