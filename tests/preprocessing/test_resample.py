import astropy.units as u
import numpy as np
import pytest
from astropy.io import fits
from astropy.nddata import InverseVariance, StdDevUncertainty
from sklearn.base import clone
from specutils import Spectrum
from specutils.manipulation import (
    FluxConservingResampler,
    LinearInterpolatedResampler,
    SplineInterpolatedResampler,
)

from stellarlatent.preprocessing import Resampler, SpectralGrid


def gaussian_line_spectrum(wave, center=5000.0, sigma=1.5, depth=0.6, ivar=None):
    flux = 1.0 - depth * np.exp(-0.5 * ((wave - center) / sigma) ** 2)
    uncertainty = None if ivar is None else InverseVariance(np.full(wave.size, ivar))
    return Spectrum(flux=flux * u.Jy, spectral_axis=wave * u.AA, uncertainty=uncertainty)


def read_miles_file(path):
    header = fits.getheader(path)
    flux = fits.getdata(path).astype(float)
    wave = header["CRVAL1"] + header["CDELT1"] * (np.arange(header["NAXIS1"]) + 1
                                                  - header["CRPIX1"])
    flux[flux == 0] = np.nan
    return Spectrum(
        flux=flux * u.dimensionless_unscaled,
        spectral_axis=wave * u.AA,
        uncertainty=InverseVariance(np.full(flux.size, 1e4)),
    )


@pytest.fixture
def irregular_spectra():
    rng = np.random.default_rng(1)
    out = []
    for n in (900, 1300, 2000):
        wave = np.sort(rng.uniform(4800, 5200, n))
        flux = 1 + 0.1 * np.sin(wave / 7.0) + 0.05 * rng.standard_normal(n)
        ivar = rng.uniform(50, 200, n)
        out.append(Spectrum(flux=flux * u.Jy, spectral_axis=wave * u.AA,
                            uncertainty=InverseVariance(ivar)))
    return out


def test_flux_conserving_equals_specutils_on_irregular_grids(irregular_spectra):
    grid = SpectralGrid.log_uniform(4850 * u.AA, 5150 * u.AA, 777)
    batch = Resampler(grid).fit_transform(irregular_spectra)
    reference = FluxConservingResampler()
    for i, spec in enumerate(irregular_spectra):
        expected = reference(spec, grid.spectral_axis)
        good = ~batch.mask[i]
        assert good.sum() > 700
        assert np.all(np.isfinite(expected.flux.value[good]))
        np.testing.assert_allclose(batch.flux.value[i, good], expected.flux.value[good], rtol=1e-10)
        np.testing.assert_allclose(
            batch.uncertainty.array[i, good], expected.uncertainty.array[good], rtol=1e-10
        )


def test_flux_conserving_equals_specutils_on_real_miles(miles_dir):
    files = sorted(miles_dir.glob("MILES_res2.50_star_m*V.fits"))[:8]
    spectra = [read_miles_file(f) for f in files]
    grid = SpectralGrid.log_uniform(3550 * u.AA, 7400 * u.AA, 4096)
    batch = Resampler(grid).fit_transform(spectra)
    reference = FluxConservingResampler()
    for i, spec in enumerate(spectra[:3]):
        clean = Spectrum(flux=np.nan_to_num(spec.flux), spectral_axis=spec.spectral_axis,
                         uncertainty=spec.uncertainty)
        expected = reference(clean, grid.spectral_axis).flux.value
        good = ~batch.mask[i]
        np.testing.assert_allclose(batch.flux.value[i, good], expected[good], rtol=1e-10)


def test_constant_and_equivalent_width_are_conserved():
    wave = np.linspace(4900, 5100, 4001)
    spec = gaussian_line_spectrum(wave)
    grid = SpectralGrid.log_uniform(4950 * u.AA, 5050 * u.AA, 300)
    out = Resampler(grid).fit_transform(spec)
    edges = grid.edges.value
    ew_out = np.sum((1 - out.flux.value[0]) * np.diff(edges))
    expected = 0.6 * 1.5 * np.sqrt(2 * np.pi)
    assert ew_out == pytest.approx(expected, rel=1e-4)
    const = Spectrum(flux=np.full(4001, 7.0) * u.Jy, spectral_axis=wave * u.AA)
    np.testing.assert_allclose(Resampler(grid).fit_transform(const).flux.value, 7.0, rtol=1e-12)


def test_batched_input_and_units():
    wave = np.linspace(4000, 5000, 500)
    flux = np.vstack([np.linspace(1, 2, 500), np.linspace(3, 1, 500)])
    batch = Spectrum(flux=flux * u.Jy, spectral_axis=wave * u.AA, spectral_axis_index=1)
    grid = SpectralGrid.linear(410 * u.nm, 490 * u.nm, 100)
    out = Resampler(grid).fit_transform(batch)
    assert out.flux.shape == (2, 100)
    assert out.spectral_axis.unit == u.nm
    np.testing.assert_allclose(out.flux.value[0],
                               np.interp(grid.spectral_axis.to_value(u.AA), wave, flux[0]),
                               rtol=1e-4)
    assert out.uncertainty is None


def test_frequency_axis_converts():
    wave = np.linspace(4000, 5000, 800) * u.AA
    flux = np.linspace(1, 2, 800)
    freq = wave.to(u.THz, equivalencies=u.spectral())
    spec_w = Spectrum(flux=flux * u.Jy, spectral_axis=wave)
    spec_f = Spectrum(flux=flux[::-1] * u.Jy, spectral_axis=freq[::-1])
    grid = SpectralGrid.linear(4100 * u.AA, 4900 * u.AA, 50)
    out = Resampler(grid, method="linear").fit_transform([spec_w, spec_f])
    np.testing.assert_allclose(out.flux.value[0], out.flux.value[1], rtol=1e-9)


@pytest.mark.parametrize(
    ("method", "reference"),
    [("linear", LinearInterpolatedResampler), ("spline", SplineInterpolatedResampler)],
)
def test_interpolating_methods_match_specutils(method, reference):
    wave = np.linspace(4900, 5100, 700)
    spec = gaussian_line_spectrum(wave)
    grid = SpectralGrid.log_uniform(4920 * u.AA, 5080 * u.AA, 333)
    out = Resampler(grid, method=method).fit_transform(spec)
    expected = reference()(spec, grid.spectral_axis)
    np.testing.assert_allclose(out.flux.value[0], expected.flux.value, rtol=1e-9)


@pytest.mark.parametrize("method", ["flux_conserving", "linear", "spline"])
def test_nan_pixels_are_masked_not_spread(method):
    wave = np.linspace(4900, 5100, 2001)
    spec = gaussian_line_spectrum(wave, ivar=100.0)
    flux = spec.flux.value.copy()
    flux[1000] = np.nan
    spec = Spectrum(flux=flux * u.Jy, spectral_axis=spec.spectral_axis,
                    uncertainty=spec.uncertainty)
    grid = SpectralGrid.linear(4950 * u.AA, 5050 * u.AA, 201)
    out = Resampler(grid, method=method).fit_transform(spec)
    assert np.all(np.isfinite(out.flux.value[0, ~out.mask[0]]))
    masked = np.flatnonzero(out.mask[0])
    assert 1 <= masked.size <= 2
    assert np.all(np.abs(grid.spectral_axis.value[masked] - wave[1000]) < 0.6)
    assert np.all(out.uncertainty.array[0, masked] == 0)


def test_extrapolation_fills_and_masks():
    wave = np.linspace(5000, 5100, 101)
    spec = gaussian_line_spectrum(wave, center=5050)
    grid = SpectralGrid.linear(4990 * u.AA, 5110 * u.AA, 121)
    out = Resampler(grid, extrapolation=-1.0).fit_transform(spec)
    outside = (grid.spectral_axis.value < 5000) | (grid.spectral_axis.value > 5100)
    assert np.all(out.flux.value[0, outside] == -1.0)
    assert np.all(out.mask[0, outside])
    out_nan = Resampler(grid).fit_transform(spec)
    assert np.all(np.isnan(out_nan.flux.value[0, outside]))


def test_uncertainty_types_and_ivar_growth():
    wave = np.linspace(5000, 5100, 1001)
    spec = Spectrum(flux=np.ones(1001) * u.Jy, spectral_axis=wave * u.AA,
                    uncertainty=StdDevUncertainty(np.full(1001, 0.1)))
    grid = SpectralGrid.linear(5010 * u.AA, 5090 * u.AA, 81)
    out = Resampler(grid).fit_transform(spec)
    # each 1 A output pixel holds nine whole 0.1 A input pixels and two halves:
    # variance = 0.1**2 * (9 + 2 * 0.5**2) / 10**2
    np.testing.assert_allclose(out.uncertainty.array[0], 1 / (0.01 * 9.5 / 100), rtol=1e-6)


def test_default_grid_is_learned_from_overlap(irregular_spectra):
    resampler = Resampler().fit(irregular_spectra)
    axis = resampler.grid_.spectral_axis.value
    lows = [s.spectral_axis.value.min() for s in irregular_spectra]
    highs = [s.spectral_axis.value.max() for s in irregular_spectra]
    assert axis[0] == pytest.approx(max(lows)) and axis[-1] == pytest.approx(min(highs))
    assert resampler.grid_.kind == "log_uniform"


def test_matrix_is_cached_per_grid(irregular_spectra):
    resampler = Resampler(SpectralGrid.linear(4850 * u.AA, 5150 * u.AA, 100)).fit(irregular_spectra)
    resampler.transform(irregular_spectra + irregular_spectra[:1])
    assert len(resampler._cache) == 3
    resampler.transform(irregular_spectra[0])
    assert len(resampler._cache) == 3
    # a method set after a transform is the one used, not the cached matrices of the old one
    conserving = resampler.transform(irregular_spectra[0]).flux
    resampler.set_params(method="linear")
    linear = resampler.transform(irregular_spectra[0]).flux
    fresh = Resampler(resampler.grid, method="linear").fit(irregular_spectra)
    np.testing.assert_array_equal(linear, fresh.transform(irregular_spectra[0]).flux)
    assert not np.array_equal(linear, conserving)


def test_clone_and_unfitted():
    resampler = Resampler(method="linear")
    assert clone(resampler).get_params()["method"] == "linear"
    from sklearn.exceptions import NotFittedError

    wave = np.linspace(5000, 5100, 11) * u.AA
    with pytest.raises(NotFittedError):
        resampler.transform(Spectrum(flux=np.ones(11) * u.Jy, spectral_axis=wave))


def test_bad_input_raises_named_errors():
    wave = np.linspace(5000, 5100, 11)
    spec = Spectrum(flux=np.ones(11) * u.Jy, spectral_axis=wave * u.AA)
    grid = SpectralGrid.linear(5000 * u.AA, 5100 * u.AA, 11)
    with pytest.raises(ValueError, match="method must be one of"):
        Resampler(grid, method="cubic").fit(spec)
    with pytest.raises(ValueError, match="extrapolation must be"):
        Resampler(grid, extrapolation="zero").fit(spec)
    with pytest.raises(ValueError, match="does not overlap"):
        Resampler(SpectralGrid.linear(6000 * u.AA, 6100 * u.AA, 11)).fit_transform(spec)
    with pytest.raises(ValueError, match="no valid pixel"):
        Resampler(grid).fit_transform(Spectrum(flux=np.full(11, np.nan) * u.Jy,
                                               spectral_axis=wave * u.AA))
    with pytest.raises(ValueError, match="empty"):
        Resampler(grid).fit([])
    with pytest.raises(TypeError, match="specutils.Spectrum"):
        Resampler(grid).fit(np.ones((3, 11)))
    other = Spectrum(flux=np.ones(11) * u.s, spectral_axis=wave * u.AA)
    with pytest.raises(u.UnitsError, match="incompatible flux units"):
        Resampler(grid).fit_transform([spec, Spectrum(flux=np.ones(11) * u.s,
                                                      spectral_axis=(wave + 0.5) * u.AA)])
    del other
