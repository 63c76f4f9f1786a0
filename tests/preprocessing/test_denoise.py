"""PCADenoiser: noise removed where it exceeds the training spectra's, nothing else touched."""

import astropy.units as u
import numpy as np
import pytest
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
