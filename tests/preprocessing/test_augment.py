"""InstrumentAugmenter: each degradation does what it says, alone, and can be left out."""

import astropy.units as u
import numpy as np
import pytest
from specutils import Spectrum

from stellarlatent.preprocessing import InstrumentAugmenter, ccm89_extinction

WAVE = np.linspace(4000.0, 7000.0, 6001)  # 0.5 Angstrom pixels
NONE = dict(rv_scatter=None, tilt=None, ebv=None, snr=None)


def star(n=4, depth=0.6, sigma=1.0, centre=5500.0):
    line = 1 - depth * np.exp(-0.5 * ((WAVE - centre) / sigma) ** 2)
    return Spectrum(flux=np.tile(line, (n, 1)) * u.one, spectral_axis=WAVE * u.AA)


def line_sigma(flux, centre=5500.0):
    near = np.abs(WAVE - centre) < 20
    depth = 1 - flux[near]
    centroid = np.sum(WAVE[near] * depth) / np.sum(depth)
    return np.sqrt(np.sum((WAVE[near] - centroid) ** 2 * depth) / np.sum(depth)), centroid


def test_nothing_drawn_leaves_the_spectra_alone():
    out = InstrumentAugmenter(**NONE, random_state=0).transform(star())
    np.testing.assert_allclose(out.flux.value, star().flux.value)
    assert out.uncertainty is None
    assert np.all(np.isnan(out.meta["augment_tilt"])) and not out.meta["augment_coverage"].any()


def test_broadening_reaches_the_drawn_fwhm_and_keeps_the_equivalent_width():
    fwhm_in = 2.3548 * 1.0  # the input line has sigma 1 A: call it the instrument's
    out = InstrumentAugmenter(fwhm=(3.0, 5.0) * u.AA, input_fwhm=fwhm_in * u.AA, **NONE,
                              random_state=1).transform(star())
    drawn = out.meta["augment_fwhm"].to_value(u.AA)
    assert np.all((drawn >= 3.0) & (drawn <= 5.0)) and len(np.unique(drawn)) == 4
    for flux, target in zip(out.flux.value, drawn):
        sigma, _ = line_sigma(flux)
        assert sigma * 2.3548 == pytest.approx(target, rel=0.03)
        np.testing.assert_allclose(np.sum(1 - flux), np.sum(1 - star(1).flux.value[0]),
                                   rtol=1e-3)


def test_a_target_at_or_below_the_input_fwhm_leaves_the_resolution(caplog):
    import logging

    with caplog.at_level(logging.WARNING, logger="stellarlatent"):
        out = InstrumentAugmenter(fwhm=2.0 * u.AA, input_fwhm=2.5 * u.AA,
                                  **NONE).transform(star(1))
    np.testing.assert_allclose(out.flux.value, star(1).flux.value)
    assert out.meta["augment_fwhm"][0] == 2.5 * u.AA
    assert "no copy is broadened" in caplog.text  # the whole range is below: said so


def test_velocity_scatter_moves_the_line_by_the_recorded_velocity():
    out = InstrumentAugmenter(rv_scatter=30 * u.km / u.s, tilt=None, ebv=None, snr=None,
                              random_state=2).transform(star())
    rv = out.meta["augment_rv"]
    assert np.std(rv) > 5
    for flux, v in zip(out.flux.value, rv):
        _, centroid = line_sigma(flux)
        assert (centroid / 5500.0 - 1) * 299792.458 == pytest.approx(v, abs=0.5)


def test_tilt_and_reddening_multiply_the_flux_as_recorded():
    flat = Spectrum(flux=np.ones((3, WAVE.size)) * u.one, spectral_axis=WAVE * u.AA)
    out = InstrumentAugmenter(rv_scatter=None, snr=None, tilt=(-0.1, 0.1), ebv=(0.1, 0.4),
                              random_state=3).transform(flat)
    x = (WAVE - WAVE[0]) / (WAVE[-1] - WAVE[0]) - 0.5
    for flux, t, ebv in zip(out.flux.value, out.meta["augment_tilt"], out.meta["augment_ebv"]):
        assert -0.1 <= t <= 0.1 and 0.1 <= ebv <= 0.4
        expected = (1 + t * x) * 10 ** (-0.4 * 3.1 * ebv * ccm89_extinction(WAVE * u.AA))
        np.testing.assert_allclose(flux, expected, rtol=1e-12)
        assert flux[0] / (1 - t / 2) < flux[-1] / (1 + t / 2)  # reddening dims the blue more


def test_photon_noise_reaches_the_drawn_snr_and_sets_the_inverse_variance():
    flat = Spectrum(flux=np.full((3, WAVE.size), 4.0) * u.one, spectral_axis=WAVE * u.AA)
    out = InstrumentAugmenter(rv_scatter=None, tilt=None, ebv=None, snr=(20, 60),
                              random_state=4).transform(flat)
    snr = out.meta["augment_snr"]
    np.testing.assert_allclose(4.0 / out.flux.value.std(axis=1), snr, rtol=0.05)
    np.testing.assert_allclose(out.uncertainty.array,
                               np.broadcast_to((snr[:, None] / 4.0) ** 2, out.flux.shape))


def test_the_inverse_variance_of_the_input_is_carried_and_grows_by_the_noise():
    flat = Spectrum(flux=np.ones((2, WAVE.size)) * u.one, spectral_axis=WAVE * u.AA,
                    uncertainty=__import__("astropy.nddata", fromlist=["InverseVariance"])
                    .InverseVariance(np.full((2, WAVE.size), 1e4)))
    out = InstrumentAugmenter(rv_scatter=None, tilt=0.0, ebv=None, snr=100.0,
                              random_state=5).transform(flat)
    np.testing.assert_allclose(out.uncertainty.array, 1 / (1e-4 + 1e-4))


def test_coverage_is_cut_with_the_given_probability_and_within_the_ranges():
    edges = [[4000, 4500], [6000, 7000]] * u.AA
    out = InstrumentAugmenter(**NONE, coverage=edges, coverage_probability=1.0,
                              random_state=6).transform(star(5))
    assert out.meta["augment_coverage"].all()
    for mask in out.mask:
        kept = WAVE[~mask]
        assert 4000 <= kept.min() <= 4500 and 6000 <= kept.max() <= 7000
        assert np.all(~mask[(WAVE > 4500) & (WAVE < 6000)])
    none = InstrumentAugmenter(**NONE, coverage=edges, coverage_probability=0.0).transform(star())
    assert not none.mask.any() and not none.meta["augment_coverage"].any()


def test_leaving_a_step_out_keeps_the_draws_of_the_others():
    both = InstrumentAugmenter(tilt=(-0.1, 0.1), ebv=None, snr=50.0, rv_scatter=None,
                               random_state=7).transform(star())
    tilt_only = InstrumentAugmenter(tilt=(-0.1, 0.1), ebv=None, snr=None, rv_scatter=None,
                                    random_state=7).transform(star())
    np.testing.assert_array_equal(both.meta["augment_tilt"], tilt_only.meta["augment_tilt"])
    assert not np.allclose(both.flux.value, tilt_only.flux.value)
    again = InstrumentAugmenter(tilt=(-0.1, 0.1), ebv=None, snr=50.0, rv_scatter=None,
                                random_state=7).transform(star())
    np.testing.assert_array_equal(both.flux.value, again.flux.value)


def test_masked_pixels_stay_masked_and_nan_flux_does_not_spread():
    spectrum = star(2)
    mask = np.zeros(spectrum.flux.shape, dtype=bool)
    mask[:, 100:120] = True
    flux = spectrum.flux.value.copy()
    flux[:, 100:120] = np.nan
    out = InstrumentAugmenter(random_state=8).transform(
        Spectrum(flux=flux * u.one, spectral_axis=WAVE * u.AA, mask=mask))
    assert out.mask[:, 100:120].all()
    assert np.isfinite(out.flux.value[~out.mask]).all() and (~out.mask).sum() > 0.9 * mask.size


@pytest.mark.parametrize("params, error, match", [
    (dict(fwhm=3.0), TypeError, "fwhm must be a wavelength or velocity Quantity"),
    (dict(fwhm=(4, 3) * u.AA), ValueError, "fwhm must be .*low <= high"),
    (dict(fwhm=3 * u.AA, input_fwhm=50 * u.km / u.s), u.UnitsError, "both be wavelengths"),
    (dict(input_fwhm=(1, 2) * u.AA), TypeError, "input_fwhm must be a scalar"),
    (dict(rv_scatter=5.0), TypeError, "rv_scatter must be a Quantity"),
    (dict(ebv=(-0.1, 0.2)), ValueError, "ebv must not be negative"),
    (dict(snr=(0, 10)), ValueError, "snr must be positive"),
    (dict(tilt="steep"), TypeError, "tilt must be a number"),
    (dict(coverage=[4000, 7000] * u.AA), TypeError, r"coverage must be a \(2, 2\)"),
    (dict(coverage=[[4000, 6500], [6000, 7000]] * u.AA), ValueError, "below its red"),
    (dict(coverage_probability=1.5), ValueError, "coverage_probability"),
])
def test_bad_parameters_are_refused_by_name(params, error, match):
    with pytest.raises(error, match=match):
        InstrumentAugmenter(**params).transform(star(1))


def test_photon_noise_refuses_a_spectrum_without_positive_flux():
    dark = Spectrum(flux=-np.ones((2, WAVE.size)) * u.one, spectral_axis=WAVE * u.AA)
    with pytest.raises(ValueError, match=r"spectra\[0\].*median flux"):
        InstrumentAugmenter(tilt=None, ebv=None, rv_scatter=None).transform(dark)


def test_ccm89_is_one_at_v_and_larger_in_the_blue():
    values = ccm89_extinction([4400, 5500, 7000] * u.AA)
    assert values[1] == pytest.approx(1.0, abs=0.01)
    assert values[0] > values[1] > values[2]
    # any spectral unit
    np.testing.assert_allclose(ccm89_extinction(550 * u.nm), ccm89_extinction(5500 * u.AA))
