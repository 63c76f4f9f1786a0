import astropy.units as u
import numpy as np
import pytest
from astropy.io import fits
from astropy.nddata import InverseVariance
from specutils import SpectralRegion, Spectrum

from stellarlatent.preprocessing import ContinuumNormalizer

CCD_GAP = (5303.6 * u.AA, 5338.0 * u.AA)


def absorption_spectrum(n_spectra=3, n_pixels=3000, noise=0.0, seed=0):
    """Smooth, curved continua times a forest of absorption lines."""
    rng = np.random.default_rng(seed)
    wave = np.linspace(4500, 6500, n_pixels)
    x = (wave - 5500) / 1000
    continua = np.stack(
        [(1 + k) * (2.0 + 0.5 * x - 0.8 * x**2 + 0.3 * x**3) for k in range(n_spectra)]
    )
    lines = np.ones(n_pixels)
    for centre, depth in zip(rng.uniform(4550, 6450, 60), rng.uniform(0.1, 0.7, 60)):
        lines *= 1 - depth * np.exp(-0.5 * ((wave - centre) / 1.5) ** 2)
    flux = continua * lines
    flux = flux + noise * continua * rng.standard_normal(flux.shape)
    ivar = np.full(flux.shape, 1.0)
    spectrum = Spectrum(flux=flux * u.Jy, spectral_axis=wave * u.AA,
                        uncertainty=InverseVariance(ivar / u.Jy**2), spectral_axis_index=1)
    return spectrum, continua, lines


def test_median_is_one_over_unmasked_pixels_outside_excluded_regions():
    spectrum, _, _ = absorption_spectrum()
    wave = spectrum.spectral_axis.value
    mask = np.zeros(spectrum.flux.shape, dtype=bool)
    mask[:, 100:400] = True
    flux = spectrum.flux.value.copy()
    flux[:, (wave > 5303.6) & (wave < 5338.0)] = 1e6  # would dominate if not excluded
    flux[:, 100:400] = -1e6
    spectrum = Spectrum(flux=flux * u.Jy, spectral_axis=spectrum.spectral_axis, mask=mask,
                        uncertainty=spectrum.uncertainty, spectral_axis_index=1)
    for exclude in ([CCD_GAP], SpectralRegion(*CCD_GAP)):
        out = ContinuumNormalizer(exclude=exclude).transform(spectrum)
        outside = (wave < 5303.6) | (wave > 5338.0)
        for row in range(3):
            good = outside & ~mask[row]
            assert np.median(out.flux.value[row, good]) == pytest.approx(1.0, rel=1e-12)
        np.testing.assert_array_equal(out.mask, mask)
        assert out.flux.unit == u.one
    # ivar scales with continuum**2
    level = np.median(flux[1, outside & ~mask[1]])
    assert out.uncertainty.array[1, 0] == pytest.approx(level**2)


@pytest.mark.parametrize(
    ("method", "kwargs", "tol_median", "tol_max"),
    [
        ("polynomial", {"degree": 3}, 0.003, 0.01),
        ("spline", {"knot_spacing": 400 * u.AA}, 0.003, 0.01),
        ("spline", {"knot_spacing": 20000 * u.km / u.s}, 0.003, 0.01),
        # a running quantile follows the continuum less closely where it is steep
        ("running_quantile", {"window": 20 * u.AA, "quantile": 0.9}, 0.01, 0.06),
    ],
)
def test_fitted_continuum_recovers_the_true_one(method, kwargs, tol_median, tol_max):
    spectrum, continua, lines = absorption_spectrum(noise=0.005)
    out = ContinuumNormalizer(method=method, store_continuum=True, **kwargs).transform(spectrum)
    fitted = out.meta["continuum"]
    assert fitted.unit == u.Jy
    interior = slice(100, -100)
    error = np.abs(fitted.value[:, interior] / continua[:, interior] - 1)
    assert np.median(error) < tol_median and error.max() < tol_max
    # the lines survive normalisation on a continuum of ~1
    expected = np.broadcast_to(lines[interior], error.shape)
    assert np.median(np.abs(out.flux.value[:, interior] - expected)) < 0.01


def test_clipping_is_asymmetric():
    # without clipping of the lines a least-squares fit sits well below the continuum
    spectrum, continua, _ = absorption_spectrum()
    clipped = ContinuumNormalizer(method="polynomial", store_continuum=True).transform(spectrum)
    plain = ContinuumNormalizer(method="polynomial", max_iter=0, store_continuum=True)
    plain = plain.transform(spectrum)
    err_clipped = np.abs(clipped.meta["continuum"].value / continua - 1).mean()
    err_plain = np.abs(plain.meta["continuum"].value / continua - 1).mean()
    assert err_clipped < 0.2 * err_plain


def test_spline_bridges_masked_gap():
    spectrum, continua, _ = absorption_spectrum(n_spectra=1)
    mask = np.zeros(spectrum.flux.shape, dtype=bool)
    mask[:, 1200:1700] = True
    masked = Spectrum(flux=spectrum.flux, spectral_axis=spectrum.spectral_axis, mask=mask,
                      spectral_axis_index=1)
    out = ContinuumNormalizer(method="spline", knot_spacing=100, store_continuum=True)
    fitted = out.transform(masked).meta["continuum"].value
    assert np.all(np.isfinite(fitted)) and np.all(fitted > 0)
    np.testing.assert_allclose(fitted[0, 1200:1700], continua[0, 1200:1700], rtol=0.05)


def test_non_positive_continuum():
    wave = np.linspace(5000, 6000, 50) * u.AA
    flux = np.ones((2, 50))
    flux[1] = -1.0
    spectrum = Spectrum(flux=flux * u.Jy, spectral_axis=wave, spectral_axis_index=1)
    with pytest.raises(ValueError, match=r"spectra\[1\].*no positive continuum"):
        ContinuumNormalizer().transform(spectrum)
    out = ContinuumNormalizer(invalid="mask").transform(spectrum)
    assert out.mask[1].all() and not out.mask[0].any()
    np.testing.assert_allclose(out.flux.value[0], 1.0)


def test_bad_arguments():
    spectrum, _, _ = absorption_spectrum(n_spectra=1)
    with pytest.raises(ValueError, match="method"):
        ContinuumNormalizer(method="mean").transform(spectrum)
    with pytest.raises(ValueError, match="quantile"):
        ContinuumNormalizer(method="running_quantile", quantile=2).transform(spectrum)
    with pytest.raises(u.UnitsError, match="window"):
        ContinuumNormalizer(method="running_quantile", window=3 * u.s).transform(spectrum)
    with pytest.raises(TypeError, match="knot_spacing"):
        ContinuumNormalizer(method="spline", knot_spacing=2.5).transform(spectrum)
    with pytest.raises(ValueError, match="sigma_lower"):
        ContinuumNormalizer(method="polynomial", sigma_lower=0).transform(spectrum)
    with pytest.raises(TypeError, match="exclude"):
        ContinuumNormalizer(exclude=[(1, 2)]).transform(spectrum)


def read_miles(path):
    header = fits.getheader(path)
    flux = fits.getdata(path).astype(float)
    wave = header["CRVAL1"] + header["CDELT1"] * (
        np.arange(header["NAXIS1"]) + 1 - header["CRPIX1"]
    )
    return wave, flux


def test_miles_spectra_normalise_to_continuum_one(miles_dir):
    files = sorted(miles_dir.glob("MILES_res2.50_star_m*V.fits"))[:6]
    waves, fluxes = zip(*(read_miles(f) for f in files))
    wave = waves[0]
    assert np.allclose(waves, wave)
    flux = np.stack(fluxes)
    mask = flux <= 0  # zero-valued end pixels
    spectrum = Spectrum(flux=flux * u.one, spectral_axis=wave * u.AA, mask=mask,
                        spectral_axis_index=1)
    median = ContinuumNormalizer().transform(spectrum)
    good = ~median.mask
    for row in range(len(files)):
        assert np.median(median.flux.value[row, good[row]]) == pytest.approx(1.0)
    spline = ContinuumNormalizer(method="spline", knot_spacing=300 * u.AA).transform(spectrum)
    values = np.where(spline.mask, np.nan, spline.flux.value)
    # the continuum sits at 1: an upper quantile of the pixels in the red is close to it,
    # and strong lines stay below it
    red = (wave > 6000) & (wave < 7000)
    top = np.nanquantile(values[:, red], 0.9, axis=1)
    np.testing.assert_allclose(top, 1.0, atol=0.05)
    halpha = np.abs(wave - 6562.8) < 1.0
    assert np.all(np.nanmin(values[:, halpha], axis=1) < 0.95)


def test_keep_shape_interpolates_between_flat_and_median_in_log_flux():
    spectrum, continua, lines = absorption_spectrum()
    flat = ContinuumNormalizer(method="polynomial", store_continuum=True).transform(spectrum)
    median = ContinuumNormalizer(method="median").transform(spectrum).flux.value
    continuum = flat.meta["continuum"].value
    level = np.median(spectrum.flux.value, axis=1, keepdims=True)
    for w in (0.0, 0.2, 1.0):
        kept = ContinuumNormalizer(method="polynomial", keep_shape=w).transform(spectrum)
        expected = spectrum.flux.value / (continuum ** (1 - w) * level**w)
        np.testing.assert_allclose(kept.flux.value, expected, rtol=1e-10)
        # the lines keep their full depth relative to the (compressed) continuum
        np.testing.assert_allclose(kept.flux.value / (continuum / level) ** w,
                                   flat.flux.value, rtol=1e-10)
    np.testing.assert_allclose(expected, median, rtol=1e-10)
    inverse_variance = kept.uncertainty.array
    np.testing.assert_allclose(inverse_variance, np.broadcast_to(level**2, expected.shape),
                               rtol=1e-10)


@pytest.mark.parametrize("value", [-0.1, 1.5, True, "half"])
def test_keep_shape_outside_zero_one_is_refused(value):
    spectrum, _, _ = absorption_spectrum()
    with pytest.raises((ValueError, TypeError), match="keep_shape"):
        ContinuumNormalizer(method="spline", keep_shape=value).transform(spectrum)


@pytest.mark.parametrize("method", ["running_quantile", "spline", "polynomial"])
def test_smoothing_makes_the_continuum_of_noisy_spectra_follow_the_clean_one(method):
    """An upper quantile of noisy flux rides on the noise peaks; smoothed flux does not."""
    clean, continua, _ = absorption_spectrum(n_spectra=40)
    noisy, _, _ = absorption_spectrum(n_spectra=40, noise=0.03)
    kwargs = {"knot_spacing": 200 * u.AA, "degree": 5}

    def continuum(spectrum, smoothing):
        step = ContinuumNormalizer(method=method, smoothing=smoothing, store_continuum=True,
                                   **kwargs)
        return step.transform(spectrum).meta["continuum"].value

    for smoothing in (7, 2.0 * u.AA, 100 * u.km / u.s):
        raw = continuum(noisy, None) / continuum(clean, None) - 1
        smoothed = continuum(noisy, smoothing) / continuum(clean, smoothing) - 1
        # the bias and the wiggles that the noise gives the continuum both shrink
        assert abs(np.mean(smoothed)) < 0.6 * abs(np.mean(raw))
        assert np.mean(np.std(smoothed, axis=1)) < 0.8 * np.mean(np.std(raw, axis=1))
    # the flux that is divided keeps its resolution: a narrow line keeps its depth
    out = ContinuumNormalizer(method=method, smoothing=7, **kwargs).transform(clean)
    reference = ContinuumNormalizer(method=method, **kwargs).transform(clean)
    assert np.nanmin(out.flux.value) == pytest.approx(np.nanmin(reference.flux.value), rel=0.1)


def test_smoothing_skips_masked_pixels_and_is_refused_when_malformed():
    spectrum, _, _ = absorption_spectrum(n_spectra=2)
    flux = spectrum.flux.value.copy()
    mask = np.zeros(flux.shape, bool)
    mask[:, 1000:1100] = True
    flux[mask] = 1e6  # a masked cosmic ray must not enter the running mean
    flux[0, 2000] = np.nan
    bad = Spectrum(flux=flux * u.Jy, spectral_axis=spectrum.spectral_axis, mask=mask,
                   spectral_axis_index=1)
    step = ContinuumNormalizer(method="running_quantile", smoothing=9, store_continuum=True,
                               window=300 * u.AA)
    continuum = step.transform(bad).meta["continuum"].value
    assert np.all(np.isfinite(continuum))
    reference = step.transform(spectrum).meta["continuum"].value
    # (a hundred pixels fewer in the window move the quantile a little; 1e6 would not)
    np.testing.assert_allclose(continuum, reference, rtol=0.05)
    for value, error in ((1, ValueError), (2.5, TypeError), (3 * u.s, u.UnitsError),
                         (-2 * u.AA, ValueError)):
        with pytest.raises(error, match="smoothing"):
            ContinuumNormalizer(method="spline", smoothing=value).transform(spectrum)
