"""QuadraticSpectrumModel: The Cannon's per-pixel quadratic model, fitted by least squares."""

import astropy.units as u
import numpy as np
import pytest
from astropy.io import fits
from astropy.nddata import InverseVariance
from specutils import Spectrum

from stellarlatent.datasets import make_synthetic_spectra, read_miles
from stellarlatent.estimators import QuadraticSpectrumModel
from stellarlatent.preprocessing import (Broadener, ContinuumNormalizer, Resampler,
                                         SpectralGrid)

LABELS = ("teff", "logg", "feh")
FGK = dict(teff=(5000.0, 6500.0), logg=(3.8, 4.6), feh=(-0.8, 0.3), rv=0 * u.km / u.s,
           vsini=2 * u.km / u.s, snr=None, resolution=3000.0)


def _labels(table, suffix=""):
    return np.column_stack([np.asarray(table[name + suffix].value, dtype=float)
                            for name in LABELS])


def _with(spectra, flux, mask=None, ivar=None):
    uncertainty = None if ivar is None else InverseVariance(ivar / spectra.flux.unit ** 2)
    return Spectrum(flux=flux * spectra.flux.unit, spectral_axis=spectra.spectral_axis,
                    mask=mask, uncertainty=uncertainty, spectral_axis_index=1)


@pytest.fixture(scope="module")
def fitted():
    train, y_train = make_synthetic_spectra(300, random_state=0, **FGK)
    test, y_test = make_synthetic_spectra(40, random_state=1, **FGK)
    return QuadraticSpectrumModel().fit(train, y_train), test, _labels(y_test)


def test_labels_of_new_spectra_with_uncertainties_that_describe_their_errors(fitted):
    model, test, truth = fitted
    table = model.predict(test)
    assert table.colnames == ["teff", "teff_err", "logg", "logg_err", "feh", "feh_err",
                              "chi2", "noise"]
    assert table["teff"].unit == u.K and table["logg"].unit == u.dex
    error = _labels(table) - truth
    typical = np.median(np.abs(error), axis=0)
    assert np.all(typical < [40, 0.08, 0.04]), typical
    z = error / _labels(table, "_err")
    spread = 1.4826 * np.median(np.abs(z), axis=0)
    assert np.all((spread > 0.3) & (spread < 3)), spread
    # as clean as the training spectra: no noise found for most (a star the model fits
    # worse than its training stars shows its mismatch as a little noise)
    assert np.median(table["noise"]) == 0.0 and np.max(table["noise"]) < 0.015


def test_noise_is_found_or_taken_from_the_uncertainty_and_costs_little(fitted):
    model, test, truth = fitted
    flux = test.flux.value
    noisy = flux + 0.02 * np.random.default_rng(2).standard_normal(flux.shape)
    found = model.predict(_with(test, noisy))
    assert np.median(found["noise"]) == pytest.approx(0.02, rel=0.25)
    given = model.predict(_with(test, noisy, ivar=np.full(flux.shape, 1 / 0.02 ** 2)))
    np.testing.assert_allclose(given["noise"], 0.02, rtol=1e-6)
    clean = _labels(model.predict(test))
    for table in (found, given):
        moved = 1.4826 * np.median(np.abs(_labels(table) - clean), axis=0)
        assert np.all(moved < [60, 0.12, 0.06]), moved


def test_masked_and_nan_pixels_take_no_part(fitted):
    model, test, _ = fitted
    flux = test.flux.value.copy()
    mask = np.zeros(flux.shape, dtype=bool)
    mask[:, 1000:1200] = True
    flux[mask] = 50.0  # garbage under the mask
    flux[3, 50] = np.nan
    mask[7, :-3] = True  # three valid pixels: too few for three labels
    table = model.predict(_with(test, flux, mask))
    reference = _labels(model.predict(test))
    rows = np.arange(len(flux)) != 7
    assert np.all(np.abs(_labels(table)[rows] - reference[rows]) < [60, 0.15, 0.06])
    assert np.all(np.isnan(_labels(table)[7]))


def test_a_pixel_masked_in_every_training_spectrum_is_left_out():
    train, y_train = make_synthetic_spectra(60, random_state=0, **FGK)
    mask = np.zeros(train.flux.shape, dtype=bool)
    mask[:, 10] = True
    model = QuadraticSpectrumModel().fit(_with(train, train.flux.value, mask), y_train)
    assert np.isinf(model.model_variance_[10]) and np.all(model.coefficients_[:, 10] == 0)
    assert np.all(np.isfinite(_labels(model.predict(train[:3]))))


def test_a_start_converges_to_the_same_labels(fitted):
    model, test, truth = fitted
    own = _labels(model.predict(test))
    started = _labels(model.predict(test, start=truth + [150.0, 0.2, 0.1]))
    assert np.all(np.abs(started - own) < [5.0, 0.01, 0.005])


def test_coarser_spectra_are_fitted_by_the_broadened_model():
    train, y_train = make_synthetic_spectra(300, random_state=0, **FGK)
    test, y_test = make_synthetic_spectra(30, random_state=1, **FGK)
    model = QuadraticSpectrumModel().fit(train, y_train)
    centre = float(np.median(test.spectral_axis.value))
    fwhm = centre / 3000.0 * u.AA
    coarse = Broadener(fwhm=3 * fwhm, input_fwhm=fwhm).transform(test)
    truth = _labels(y_test)
    plain = np.median(np.abs(_labels(model.predict(coarse)) - truth), axis=0)
    matched = model.predict(coarse, input_fwhm=3 * fwhm, model_fwhm=fwhm)
    better = np.median(np.abs(_labels(matched) - truth), axis=0)
    assert better[0] < 0.5 * plain[0] and better[2] < plain[2]
    # spectra as sharp as the model's (or unknown: NaN) are fitted as they are
    same = model.predict(test, input_fwhm=np.full(30, np.nan) * u.AA, model_fwhm=fwhm)
    np.testing.assert_array_equal(_labels(same), _labels(model.predict(test)))


def test_written_and_read_back_it_labels_identically(fitted, tmp_path):
    train, y_train = make_synthetic_spectra(100, random_state=0, **FGK)
    smooth = ContinuumNormalizer(method="running_quantile", smoothing=500 * u.km / u.s)
    model = QuadraticSpectrumModel(continuum=smooth, n_iter=5).fit(train, y_train)
    model.write(tmp_path / "model.fits")
    again = QuadraticSpectrumModel.read(tmp_path / "model.fits")
    assert again.continuum.smoothing == 500 * u.km / u.s and again.n_iter == 5
    _, test, _ = fitted
    first, second = model.predict(test), again.predict(test)
    for name in first.colnames:
        np.testing.assert_array_equal(first[name], second[name])
    np.testing.assert_allclose(again.model_spectra(y_train[:3]), model.model_spectra(
        y_train[:3]))
    assert again.model_spectra(y_train[:3]).shape == (3, train.flux.shape[1])


def test_bad_input_is_refused_with_its_name(fitted, tmp_path):
    model, test, truth = fitted
    train, y_train = make_synthetic_spectra(30, random_state=0, **FGK)
    with pytest.raises(ValueError, match="labels"):
        QuadraticSpectrumModel(labels=("teff", "teff")).fit(train, y_train)
    with pytest.raises(ValueError, match="n_iter"):
        QuadraticSpectrumModel(n_iter=0).fit(train, y_train)
    with pytest.raises(ValueError, match="continuum"):
        QuadraticSpectrumModel(continuum="running_quantile").fit(train, y_train)
    with pytest.raises(TypeError, match="X must be a specutils.Spectrum .* when continuum"):
        QuadraticSpectrumModel(continuum=ContinuumNormalizer()).fit(train.flux.value, y_train)
    with pytest.raises(ValueError, match="at least 22"):
        QuadraticSpectrumModel().fit(train[:10], y_train[:10])
    with pytest.raises(ValueError, match="start"):
        model.predict(test, start=truth[:3])
    with pytest.raises(ValueError, match="go together"):
        model.predict(test, input_fwhm=2 * u.AA)
    with pytest.raises(u.UnitsError, match="input_fwhm"):
        model.predict(test, input_fwhm=2.0, model_fwhm=1 * u.AA)
    with pytest.raises(ValueError, match="one per spectrum"):
        model.predict(test, input_fwhm=[2, 3] * u.AA, model_fwhm=1 * u.AA)
    with pytest.raises(ValueError, match="model_fwhm"):
        model.predict(test, input_fwhm=2 * u.AA, model_fwhm=-1 * u.AA)
    grid = SpectralGrid.log_uniform(4000 * u.AA, 5000 * u.AA, 500)
    with pytest.raises(ValueError, match="Resampler"):
        model.predict(Resampler(grid).fit_transform(test))
    fits.PrimaryHDU(np.ones(5)).writeto(tmp_path / "other.fits")
    with pytest.raises(ValueError, match="not a QuadraticSpectrumModel"):
        QuadraticSpectrumModel.read(tmp_path / "other.fits")


def test_real_miles_fgk_stars(miles_dir):
    """Fitted on 200 MILES FGK stars, it labels 60 others to about a Cannon's precision."""
    spectra, table = read_miles(miles_dir, exclude_flagged=True)
    y = np.column_stack([np.asarray(table[name], dtype=float) for name in LABELS])
    fgk = np.flatnonzero(np.all(np.isfinite(y), axis=1) & (y[:, 0] > 4000) & (y[:, 0] < 7000))
    rows = np.random.default_rng(0).permutation(fgk)
    train, test = np.sort(rows[:200]), np.sort(rows[200:260])
    grid = SpectralGrid.log_uniform(3700 * u.AA, 7300 * u.AA, 2048)
    prepared = Resampler(grid).fit_transform(spectra[np.concatenate([train, test])])
    smooth = ContinuumNormalizer(method="running_quantile", smoothing=900 * u.km / u.s)
    model = QuadraticSpectrumModel(continuum=smooth).fit(prepared[:200], y[train])
    predicted = _labels(model.predict(prepared[200:]))
    scatter = 1.4826 * np.median(np.abs(predicted - y[test]), axis=0)
    assert np.all(scatter < [200, 0.4, 0.25]), scatter
    # S/N 30 moves the labels by far less than that
    flux = prepared[200:].flux.value
    noisy = flux + flux * np.random.default_rng(1).standard_normal(flux.shape) / 30
    moved = _labels(model.predict(_with(prepared[200:], noisy, prepared[200:].mask))) - predicted
    assert np.all(1.4826 * np.median(np.abs(moved), axis=0) < 0.6 * scatter)


def test_a_spectrum_without_an_uncertainty_beside_one_with_is_fitted_as_alone(fitted):
    model, test, _ = fitted
    flux = test.flux.value
    noisy = flux[:2] + np.random.default_rng(4).normal(0, 0.02, flux[:2].shape)
    a = _with(test[0:1], noisy[:1], ivar=np.full(noisy[:1].shape, 0.02 ** -2))
    b = _with(test[1:2], noisy[1:2])
    together, alone = model.predict([a, b]), model.predict(b)
    for name in ("teff", "logg", "feh", "noise"):
        np.testing.assert_allclose(np.asarray(together[name])[1], np.asarray(alone[name])[0],
                                   rtol=1e-9, err_msg=name)
    np.testing.assert_allclose(np.asarray(together["teff"])[0],
                               np.asarray(model.predict(a)["teff"])[0], rtol=1e-9)
