"""PCADenoiser: noise removed where it exceeds the training spectra's, nothing else touched."""

import astropy.units as u
import numpy as np
import pytest
from sklearn.base import clone
from specutils import Spectrum

from stellarlatent.datasets import make_synthetic_spectra, read_miles
from stellarlatent.preprocessing import (ContinuumNormalizer, PCADenoiser, Resampler,
                                         SpectralGrid)

FGK = dict(teff=(5000.0, 6500.0), logg=(3.8, 4.6), feh=(-0.8, 0.3))


def _with_flux(spectra, flux, mask=None):
    return Spectrum(flux=flux * spectra.flux.unit, spectral_axis=spectra.spectral_axis,
                    mask=mask, spectral_axis_index=1)


@pytest.fixture(scope="module")
def fitted():
    train, _ = make_synthetic_spectra(150, snr=None, random_state=0, **FGK)
    clean, _ = make_synthetic_spectra(12, snr=None, random_state=1, **FGK)
    return PCADenoiser(n_components=16).fit(train), clean


def _rms(a, b):
    return float(np.sqrt(np.nanmean((a - b) ** 2)))


def test_noise_is_estimated_and_removed(fitted):
    denoiser, clean = fitted
    sigma = np.array([0.02, 0.05, 0.1] * 4)[:, np.newaxis]
    noise = sigma * np.random.default_rng(3).standard_normal(clean.flux.shape)
    out = denoiser.transform(_with_flux(clean, clean.flux.value + noise))
    np.testing.assert_allclose(out.meta["excess_noise"], sigma[:, 0], rtol=0.05)
    for i in range(12):
        before = _rms(clean.flux.value[i] + noise[i], clean.flux.value[i])
        assert _rms(out.flux.value[i], clean.flux.value[i]) < before / 3


def test_spectra_no_noisier_than_the_training_ones_come_back_all_but_unchanged(fitted):
    denoiser, clean = fitted
    out = denoiser.transform(clean)
    excess = out.meta["excess_noise"]
    assert np.all(excess < 0.005) and np.sum(excess == 0) >= 6
    unchanged = excess == 0
    np.testing.assert_array_equal(out.flux.value[unchanged], clean.flux.value[unchanged])
    assert _rms(out.flux.value, clean.flux.value) < 1e-3


def test_masked_and_nan_pixels_are_left_alone(fitted):
    denoiser, clean = fitted
    flux = clean.flux.value + 0.05 * np.random.default_rng(4).standard_normal(clean.flux.shape)
    mask = np.zeros(flux.shape, dtype=bool)
    mask[:, :300] = True
    flux[:, 400:410] = np.nan
    flux[:, 100] = 7.0  # a bad value under the mask
    out = denoiser.transform(_with_flux(clean, flux, mask))
    np.testing.assert_array_equal(out.mask, mask | np.isnan(flux))
    np.testing.assert_array_equal(out.flux.value[:, :300], flux[:, :300])
    assert np.all(np.isnan(out.flux.value[:, 400:410]))
    np.testing.assert_allclose(out.meta["excess_noise"], 0.05, rtol=0.1)
    assert _rms(out.flux.value[:, 500:], clean.flux.value[:, 500:]) < 0.02


def test_a_batch_gives_what_each_spectrum_gives_alone(fitted):
    """Spectra are denoised together by mask pattern; none may borrow from another."""
    denoiser, clean = fitted
    noise = 0.05 * np.random.default_rng(4).standard_normal(clean.flux.shape)
    mask = np.zeros(clean.flux.shape, dtype=bool)
    mask[::2, 40:90] = True  # two mask patterns, interleaved
    mask[5, 10:] = True  # and one with too few valid pixels to denoise
    batch = _with_flux(clean, clean.flux.value + noise, mask)
    together = denoiser.transform(batch)
    for i in range(len(noise)):
        alone = denoiser.transform(batch[i:i + 1])
        np.testing.assert_allclose(together.flux.value[i], alone.flux.value[0],
                                   rtol=1e-10, atol=1e-12)
        assert together.meta["excess_noise"][i] == pytest.approx(alone.meta["excess_noise"][0])
    assert together.meta["excess_noise"][5] == 0.0 < together.meta["excess_noise"][4]


def test_a_spectrum_with_too_few_pixels_is_returned_as_it_is(fitted):
    denoiser, clean = fitted
    flux = clean.flux.value[:2] + 0.1
    mask = np.ones(flux.shape, dtype=bool)
    mask[:, :20] = False  # 20 valid pixels for 16 components
    out = denoiser.transform(_with_flux(clean[:2], flux, mask))
    np.testing.assert_array_equal(out.flux.value, flux)
    np.testing.assert_array_equal(out.meta["excess_noise"], 0.0)


def test_written_and_read_back_it_denoises_identically(fitted, tmp_path):
    denoiser, clean = fitted
    noisy = _with_flux(clean, clean.flux.value
                       + 0.05 * np.random.default_rng(5).standard_normal(clean.flux.shape))
    denoiser.write(tmp_path / "prior.fits")
    again = PCADenoiser.read(tmp_path / "prior.fits")
    assert again.components_.shape[0] == 16
    np.testing.assert_array_equal(again.transform(noisy).flux.value,
                                  denoiser.transform(noisy).flux.value)
    # a clone fitted again (as a pipeline is when files are read) keeps the prior
    from sklearn.base import clone
    refitted = clone(again).fit(noisy[:1])
    np.testing.assert_array_equal(refitted.transform(noisy).flux.value,
                                  denoiser.transform(noisy).flux.value)
    with pytest.raises(OSError):
        denoiser.write(tmp_path / "prior.fits")
    denoiser.write(tmp_path / "prior.fits", overwrite=True)
    # the file's number of components, or none: another number is not silently ignored
    assert PCADenoiser(16, prior_file=tmp_path / "prior.fits").fit().components_.shape[0] == 16
    with pytest.raises(ValueError, match="n_components=2, but prior_file .* holds 16"):
        PCADenoiser(2, prior_file=tmp_path / "prior.fits").fit()


def test_bad_input_is_refused_with_its_name(fitted, tmp_path):
    denoiser, clean = fitted
    with pytest.raises(ValueError, match="n_components"):
        PCADenoiser(n_components=0).fit(clean)
    with pytest.raises(ValueError, match="at least 4 spectra"):
        PCADenoiser().fit(clean[:3])
    with pytest.raises(ValueError, match="spectra must be given.*prior_file"):
        PCADenoiser().fit()
    with pytest.raises(TypeError, match="prior_file"):
        PCADenoiser(prior_file=3).fit()
    other = Resampler(SpectralGrid.linear(5000 * u.AA, 6000 * u.AA, 500)).fit_transform(clean)
    with pytest.raises(ValueError, match="grid the denoiser was fitted on.*Resampler"):
        denoiser.transform(other)
    from astropy.io import fits
    fits.PrimaryHDU(np.zeros(3)).writeto(tmp_path / "other.fits")
    with pytest.raises(ValueError, match="not a PCADenoiser file"):
        PCADenoiser.read(tmp_path / "other.fits")


def _reddened(clean, seed, snr=30.0, exponent=1.0):
    """``clean`` made faint in the blue, with noise whose variance goes as flux**(2 - exponent)
    (exponent 1: photon noise; 2: one level in flux units), S/N ``snr`` at the median."""
    wave = clean.spectral_axis.to_value(u.AA)
    observed = clean.flux.value * (0.15 + 0.85 * (wave - wave[0]) / (wave[-1] - wave[0]))
    level = np.median(observed, axis=1, keepdims=True)
    sigma = level / snr * (np.clip(observed, 0, None) / level) ** ((2 - exponent) / 2)
    noise = sigma * np.random.default_rng(seed).standard_normal(observed.shape)
    return _with_flux(clean, observed), _with_flux(clean, observed + noise)


def _divided(truth, noisy):
    """Both divided by the running-quantile continuum of ``truth``, which they record."""
    normalised = ContinuumNormalizer(method="running_quantile", store_continuum=True
                                     ).fit_transform(truth)
    continuum = normalised.meta["continuum"]
    return normalised, Spectrum(flux=noisy.flux / continuum, spectral_axis=noisy.spectral_axis,
                                mask=noisy.mask, meta={"continuum": continuum},
                                spectral_axis_index=1)


def _with_exponent(denoiser, exponent):
    shaped = clone(denoiser).set_params(noise_exponent=exponent)
    shaped.__dict__.update({k: v for k, v in vars(denoiser).items() if k.endswith("_")})
    return shaped


@pytest.mark.parametrize("exponent", [1.0, 2.0])
def test_noise_that_follows_the_continuum_is_measured_and_removed_where_it_is(exponent):
    train, _ = make_synthetic_spectra(150, snr=None, random_state=0, **FGK)
    clean, _ = make_synthetic_spectra(12, snr=None, random_state=1, **FGK)
    white = PCADenoiser(n_components=16).fit(
        ContinuumNormalizer(method="running_quantile").fit_transform(train))
    truth, noisy = _divided(*_reddened(clean, 6, exponent=exponent))
    plain, out = white.transform(noisy), _with_exponent(white, exponent).transform(noisy)
    # the excess is the level at the median continuum, S/N 30 there; white noise misjudges it
    np.testing.assert_allclose(out.meta["excess_noise"], 1 / 30, rtol=0.1)
    assert np.all(plain.meta["excess_noise"] * 30 > 1.1)
    # where the star is bright the noise is low: less smoothing, closer to the truth
    red = slice(truth.flux.shape[1] // 2, None)
    for i in range(len(clean.flux)):
        assert (_rms(out.flux.value[i, red], truth.flux.value[i, red])
                < _rms(plain.flux.value[i, red], truth.flux.value[i, red]))
    # exponent 0 is white noise, whatever the continuum
    np.testing.assert_array_equal(_with_exponent(white, 0.0).transform(noisy).flux.value,
                                  plain.flux.value)


def test_with_a_noise_shape_a_batch_gives_what_each_spectrum_gives_alone(fitted):
    denoiser, clean = fitted
    truth, noisy = _reddened(clean, 7)
    mask = np.zeros(clean.flux.shape, dtype=bool)
    mask[::3, 100:160] = True
    noisy = _with_flux(clean, noisy.flux.value, mask)
    shaped = _with_exponent(denoiser, 1.0)
    together = shaped.transform(_divided(truth, noisy)[1])
    for i in range(len(clean.flux)):
        alone = shaped.transform(_divided(truth[i:i + 1], noisy[i:i + 1])[1])
        np.testing.assert_allclose(together.flux.value[i], alone.flux.value[0],
                                   rtol=1e-10, atol=1e-12)
    assert np.all(together.meta["excess_noise"] > 0)


def _with_ivar(spectra, flux, sigma):
    from astropy.nddata import InverseVariance

    return Spectrum(flux=flux * spectra.flux.unit, spectral_axis=spectra.spectral_axis,
                    uncertainty=InverseVariance(np.broadcast_to(sigma ** -2.0, flux.shape)),
                    spectral_axis_index=1)


def test_a_spectrum_is_denoised_by_no_more_than_its_uncertainty_reports(fitted):
    denoiser, clean = fitted
    rng = np.random.default_rng(8)
    noise = 0.05 * rng.standard_normal(clean.flux.shape)
    # an honest uncertainty: the noise is found and removed as without one
    honest = denoiser.transform(_with_ivar(clean, clean.flux.value + noise, 0.05))
    plain = denoiser.transform(_with_flux(clean, clean.flux.value + noise))
    np.testing.assert_allclose(honest.meta["excess_noise"], plain.meta["excess_noise"], rtol=0.05)
    # a star unlike the training ones, observed at high S/N: what the prior cannot describe is
    # the star's, not noise, and stays
    unlike = clean.flux.value * (1 + 0.05 * np.sin(clean.spectral_axis.value / 3.0))
    sharp = denoiser.transform(_with_ivar(clean, unlike, 0.002))
    assert np.all(sharp.meta["excess_noise"] <= 0.002 * 1.0001)
    assert _rms(sharp.flux.value, unlike) < 0.6 * _rms(denoiser.transform(
        _with_flux(clean, unlike)).flux.value, unlike)
    ignored = clone(denoiser).set_params(use_uncertainty=False)
    ignored.__dict__.update({k: v for k, v in vars(denoiser).items() if k.endswith("_")})
    np.testing.assert_array_equal(ignored.transform(_with_ivar(clean, unlike, 0.002)).flux.value,
                                  denoiser.transform(_with_flux(clean, unlike)).flux.value)
    with pytest.raises((TypeError, ValueError), match="use_uncertainty"):
        PCADenoiser(use_uncertainty="yes").fit(clean)


def test_a_noise_shape_needs_the_continuum(fitted):
    denoiser, clean = fitted
    shaped = PCADenoiser(n_components=16, noise_exponent=1).fit(
        make_synthetic_spectra(20, snr=None, random_state=0, **FGK)[0])
    with pytest.raises(ValueError, match=r"noise_exponent=1.*store_continuum=True"):
        shaped.transform(clean)
    odd = Spectrum(flux=clean.flux, spectral_axis=clean.spectral_axis,
                   meta={"continuum": np.ones(5)}, spectral_axis_index=1)
    with pytest.raises(ValueError, match="continuum.*shape of the flux"):
        shaped.transform(odd)
    for bad in (-0.5, 2.5):
        with pytest.raises(ValueError, match="noise_exponent"):
            PCADenoiser(noise_exponent=bad).fit(clean)


def test_normalisers_keep_the_continuum_only_for_a_denoiser_that_needs_it():
    from stellarlatent.preprocessing.denoise import store_continuum_for_denoiser

    def steps(exponent):
        return [ContinuumNormalizer(method="running_quantile"),
                PCADenoiser(noise_exponent=exponent)]

    assert store_continuum_for_denoiser(steps(1.0))[0].store_continuum
    assert not store_continuum_for_denoiser(steps(0.0))[0].store_continuum
    after = [PCADenoiser(noise_exponent=1.0), ContinuumNormalizer()]
    assert not store_continuum_for_denoiser(after)[1].store_continuum


def test_real_miles_stars_at_snr_30_come_closer_to_their_clean_spectra(miles_dir):
    spectra, labels = read_miles(miles_dir, exclude_flagged=True)
    grid = SpectralGrid.log_uniform(3700 * u.AA, 7300 * u.AA, 2048)
    normalised = ContinuumNormalizer(method="running_quantile").fit_transform(
        Resampler(grid).fit_transform(spectra))
    teff = np.asarray(labels["teff"], dtype=float)
    fgk = np.flatnonzero((teff > 4000) & (teff < 7000))
    train, test = np.setdiff1d(np.arange(len(teff)), fgk[:40]), fgk[:40]
    denoiser = PCADenoiser(n_components=64).fit(normalised[train])
    clean = normalised[test]
    # a star unlike the training ones (here the supergiant HD 6474) can show some excess
    assert np.mean(denoiser.transform(clean).meta["excess_noise"] < 0.005) >= 0.9
    noise = np.random.default_rng(0).standard_normal(clean.flux.shape) / 30
    out = denoiser.transform(_with_flux(clean, clean.flux.value + noise))
    # the excess is what was added, about 1/30 of the continuum
    assert 0.025 < np.median(out.meta["excess_noise"]) < 0.04
    gain = [_rms(clean.flux.value[i] + noise[i], clean.flux.value[i])
            / _rms(out.flux.value[i], clean.flux.value[i]) for i in range(len(test))]
    assert np.median(gain) > 2.0


def test_real_reddened_miles_stars_are_denoised_better_with_their_noise_shape(miles_dir):
    """E(B-V) = 0.3 and noise of one level in flux (S/N 30 at the median): the white model
    smooths the faint blue too little and the bright red too much."""
    from stellarlatent.preprocessing.augment import ccm89_extinction

    spectra, labels = read_miles(miles_dir, exclude_flagged=True)
    grid = SpectralGrid.log_uniform(3700 * u.AA, 7300 * u.AA, 2048)
    resampled = Resampler(grid).fit_transform(spectra)
    normalizer = ContinuumNormalizer(method="running_quantile", store_continuum=True)
    teff = np.asarray(labels["teff"], dtype=float)
    fgk = np.flatnonzero((teff > 4000) & (teff < 7000))
    train, test = np.setdiff1d(np.arange(len(teff)), fgk[:30]), fgk[:30]
    prior = PCADenoiser(n_components=64).fit(normalizer.fit_transform(resampled[train]))
    reddening = 10 ** (-0.4 * 0.3 * 3.1 * ccm89_extinction(resampled.spectral_axis))
    observed = resampled.flux.value[test] * reddening
    sigma = np.nanmedian(observed, axis=1, keepdims=True) / 30
    noise = sigma * np.random.default_rng(1).standard_normal(observed.shape)
    noisy = normalizer.transform(_with_flux(resampled[test], observed + noise))
    truth = normalizer.transform(_with_flux(resampled[test], observed)).flux.value
    errors = {}
    for exponent in (0.0, 1.0, 2.0):
        out = _with_exponent(prior, exponent).transform(noisy).flux.value
        errors[exponent] = np.median([_rms(out[i], truth[i]) for i in range(len(test))])
    assert errors[2.0] < errors[1.0] < errors[0.0]
