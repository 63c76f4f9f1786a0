import astropy.units as u
import numpy as np
import pytest
from astropy.nddata import InverseVariance
from specutils import Spectrum

from stellarlatent.preprocessing import NoiseAugmenter


def flat(n_spectra=3, n_pixels=20000, level=5.0, ivar=None):
    flux = np.full((n_spectra, n_pixels), level)
    unc = None if ivar is None else InverseVariance(np.full(flux.shape, ivar) / u.Jy**2)
    return Spectrum(flux=flux * u.Jy, spectral_axis=np.linspace(5000, 6000, n_pixels) * u.AA,
                    uncertainty=unc, spectral_axis_index=1)


@pytest.mark.parametrize("model", ["photon", "constant"])
def test_measured_snr_matches(model):
    out = NoiseAugmenter(snr=40, noise_model=model, random_state=0).transform(flat())
    measured = out.flux.value.mean(axis=1) / out.flux.value.std(axis=1)
    np.testing.assert_allclose(measured, 40, rtol=0.03)
    np.testing.assert_allclose(out.uncertainty.array, (40 / 5.0) ** 2, rtol=1e-12)
    # the reported uncertainties describe the noise: pulls have unit variance
    pulls = (out.flux.value - 5.0) * np.sqrt(out.uncertainty.array)
    assert pulls.std() == pytest.approx(1.0, rel=0.02)


def test_range_is_drawn_per_spectrum_and_reproducible():
    spectrum = flat(n_spectra=50, n_pixels=4000)
    a = NoiseAugmenter(snr=(20, 200), random_state=3).transform(spectrum)
    b = NoiseAugmenter(snr=(20, 200), random_state=3).transform(spectrum)
    np.testing.assert_array_equal(a.flux.value, b.flux.value)
    snr = a.meta["snr"]
    assert snr.shape == (50,) and snr.min() >= 20 and snr.max() <= 200 and snr.std() > 20
    measured = 5.0 / a.flux.value.std(axis=1)
    np.testing.assert_allclose(measured, snr, rtol=0.08)


def test_existing_noise_is_topped_up():
    # already S/N 100 (sigma 0.05 on 5); target 40 adds only the difference in variance
    out = NoiseAugmenter(snr=40, random_state=1).transform(flat(ivar=400.0))
    np.testing.assert_allclose(out.uncertainty.array, (40 / 5.0) ** 2)
    added = out.flux.value - 5.0
    assert added.std() == pytest.approx(np.sqrt((5 / 40) ** 2 - 0.05**2), rel=0.02)


def test_photon_noise_is_lower_in_lines():
    spectrum = flat(n_spectra=1, n_pixels=20000)
    spectrum = Spectrum(flux=spectrum.flux * np.r_[np.ones(10000), np.full(10000, 0.25)],
                        spectral_axis=spectrum.spectral_axis, spectral_axis_index=1)
    out = NoiseAugmenter(snr=50, random_state=0).transform(spectrum).flux.value[0]
    ratio = out[10000:].std() / out[:10000].std()
    assert ratio == pytest.approx(0.5, rel=0.05)


def test_bad_snr():
    with pytest.raises(ValueError, match="snr"):
        NoiseAugmenter(snr=-1).transform(flat())
    with pytest.raises(ValueError, match="snr"):
        NoiseAugmenter(snr=[1, 2, 3, 4]).transform(flat())
    with pytest.raises(ValueError, match="noise_model"):
        NoiseAugmenter(noise_model="poisson").transform(flat())
