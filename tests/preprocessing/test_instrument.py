"""InstrumentMatcher: medium, resolution and rest frame of another instrument's spectra."""

import astropy.units as u
import numpy as np
import pytest
from specutils import Spectrum

from stellarlatent.datasets import make_synthetic_spectra, read_miles
from stellarlatent.preprocessing import (Broadener, DopplerShift, InstrumentMatcher, Resampler,
                                         SpectralGrid)


def _spectra(n=3, rv=(-80, 10, 150), **kwargs):
    star = dict(teff=5800.0, logg=4.4, feh=0.0, snr=200, random_state=0)
    star.update(kwargs)
    return make_synthetic_spectra(n, rv=list(rv) * u.km / u.s, **star)


def test_vacuum_spectra_come_back_in_air_and_the_reverse():
    spectra, _ = _spectra(resolution=5000, air=False)
    out = InstrumentMatcher(medium="air", remove_rv=False).fit_transform(spectra)
    assert out.meta["wavelength_medium"] == "air"
    shift = (spectra.spectral_axis - out.spectral_axis).to_value(u.AA)
    # about 1.5 Angstrom at 5500 Angstrom, the air-vacuum difference
    assert 1.3 < np.interp(5500, out.spectral_axis.value, shift) < 1.7
    back = InstrumentMatcher(medium="vacuum", remove_rv=False).fit_transform(out)
    np.testing.assert_allclose(back.spectral_axis.value, spectra.spectral_axis.value, rtol=1e-9)
    unchanged = InstrumentMatcher(medium=None, remove_rv=False).fit_transform(spectra)
    np.testing.assert_array_equal(unchanged.spectral_axis.value, spectra.spectral_axis.value)
    assert out.meta["input_medium"].tolist() == ["vacuum"] * 3
    # a spectrum that does not say is taken to be in the model's medium, and said to be unknown
    unstated = Spectrum(flux=spectra.flux, spectral_axis=spectra.spectral_axis)
    out = InstrumentMatcher(medium="air", remove_rv=False).fit_transform(unstated)
    np.testing.assert_array_equal(out.spectral_axis.value, spectra.spectral_axis.value)
    assert out.meta["input_medium"].tolist() == ["unknown"] * 3


def test_a_vacuum_spectrum_that_starts_in_the_far_ultraviolet_comes_back_in_air():
    """Below 2000 A wavelengths stay in vacuum (IAU); the band just above, converted, would
    fold back over them (PHOENIX models start at 500 A)."""
    wave = np.linspace(1500.0, 8000.0, 20000) * u.AA
    flux = np.ones((1, wave.size)) + 0.01 * np.sin(wave.value / 7.0)
    spectrum = Spectrum(flux=flux * u.one, spectral_axis=wave,
                        meta={"wavelength_medium": "vacuum"}, spectral_axis_index=1)
    out = InstrumentMatcher(fwhm=None, medium="air", remove_rv=False).fit_transform(spectrum)
    axis = out.spectral_axis.to_value(u.AA)
    assert np.all(np.diff(axis) > 0) and 1999 < axis[0] < 2001 and axis[-1] < 8000


def test_pixels_far_beyond_the_models_range_are_left_out_first():
    grid = SpectralGrid.log_uniform(3000 * u.AA, 9000 * u.AA, 30000)
    spectra, _ = _spectra(grid=grid, resolution=20000, air=True)
    kept = InstrumentMatcher(wavelength_range=(4000, 7000) * u.AA, remove_rv=False)
    out, every = kept.fit_transform(spectra), InstrumentMatcher(remove_rv=False).fit_transform(
        spectra)
    axis = out.spectral_axis.to_value(u.AA)
    assert 3590 < axis[0] < 3610 and 7690 < axis[-1] < 7710  # 10% beyond
    # the model's range itself comes out as it does from the whole spectrum
    inner = (axis > 4000) & (axis < 7000)
    full = every.spectral_axis.to_value(u.AA)
    start = np.searchsorted(full, axis[inner][0])
    np.testing.assert_allclose(out.flux.value[:, inner],
                               every.flux.value[:, start:start + inner.sum()], rtol=1e-6)


def test_a_finer_spectrum_is_broadened_to_the_model_as_broadener_does():
    spectra, _ = _spectra(resolution=10000, air=True)
    out = InstrumentMatcher(fwhm=2.5 * u.AA, remove_rv=False).fit_transform(spectra)
    expected = Broadener(fwhm=2.5 * u.AA, input_resolution=10000).transform(spectra)
    np.testing.assert_allclose(out.flux.value, expected.flux.value, rtol=1e-6, atol=1e-9)
    assert out.meta["resolution_status"].tolist() == ["matched"] * 3
    np.testing.assert_allclose(out.meta["input_fwhm"].to_value(u.AA),
                               np.median(spectra.spectral_axis.value) / 10000, rtol=0.05)
    # a given input resolution stands in only where the spectrum records none: one value
    # for a folder of files must not override the HARPS headers among them
    given = InstrumentMatcher(input_resolution=20000, remove_rv=False).fit_transform(spectra)
    np.testing.assert_array_equal(given.flux.value, out.flux.value)
    unrecorded = Spectrum(flux=spectra.flux, spectral_axis=spectra.spectral_axis,
                          meta={k: v for k, v in spectra.meta.items()
                                if k not in ("resolution", "fwhm", "resolving_power")})
    given = InstrumentMatcher(input_resolution=20000, remove_rv=False).fit_transform(unrecorded)
    expected = Broadener(fwhm=2.5 * u.AA, input_resolution=20000).transform(unrecorded)
    np.testing.assert_allclose(given.flux.value, expected.flux.value, rtol=1e-6, atol=1e-9)


def test_coarser_and_unknown_resolutions_are_flagged_and_left_as_they_are():
    coarse, _ = _spectra(fwhm=4.0 * u.AA, air=True)
    out = InstrumentMatcher(fwhm=2.5 * u.AA, remove_rv=False).fit_transform(coarse)
    assert out.meta["resolution_status"].tolist() == ["coarser"] * 3
    np.testing.assert_array_equal(out.flux.value, coarse.flux.value)
    unknown = Spectrum(flux=coarse.flux, spectral_axis=coarse.spectral_axis,
                       meta={"wavelength_medium": "air"}, spectral_axis_index=1)
    out = InstrumentMatcher(remove_rv=False).fit_transform(unknown)
    assert out.meta["resolution_status"].tolist() == ["unknown"] * 3
    assert np.isnan(out.meta["input_fwhm"]).all()
    # without a target resolution nothing is broadened nor flagged
    out = InstrumentMatcher(fwhm=None, remove_rv=False).fit_transform(coarse)
    np.testing.assert_array_equal(out.flux.value, coarse.flux.value)
    assert "resolution_status" not in out.meta


def test_velocities_are_measured_removed_and_survive_resampling():
    spectra, labels = _spectra(resolution=5000, air=True)
    matcher = InstrumentMatcher().fit(spectra)
    out = matcher.transform(spectra)
    np.testing.assert_allclose(out.meta["rv"].to_value(u.km / u.s),
                               labels["rv"].to_value(u.km / u.s), atol=3)
    assert (out.meta["rv_err"] > 0 * u.km / u.s).all()
    rest = matcher.transform(out)  # already at rest
    np.testing.assert_allclose(rest.meta["rv"].to_value(u.km / u.s), 0, atol=3)
    # per-spectrum entries survive a Resampler over spectra on several grids
    grid = SpectralGrid.log_uniform(4000 * u.AA, 7000 * u.AA, 1500)
    parts = matcher.transform([out[0], Resampler(grid).fit_transform(out[1:])])
    assert isinstance(parts, list) and len(parts) == 2
    joined = Resampler(grid).fit_transform(parts)
    assert joined.meta["rv"].shape == (3,)
    assert joined.meta["resolution_status"].tolist() == ["matched"] * 3


def test_empirical_templates_recover_injected_velocities_of_real_stars(miles_dir):
    spectra, table = read_miles(miles_dir, pattern="MILES_res2.50_star_m00[0-3]*V.fits")
    teff = np.asarray(table["teff"].value, dtype=float)
    fgk = np.flatnonzero((teff > 4200) & (teff < 6800))
    assert len(fgk) >= 8
    templates, stars = spectra[fgk[:3]], spectra[fgk[3:]]
    rv = np.random.default_rng(1).uniform(-300, 300, len(fgk) - 3) * u.km / u.s
    # DopplerShift(v) removes v; -v adds it
    shifted = DopplerShift(rv=-rv).transform(stars)
    matcher = InstrumentMatcher(rv_templates=templates).fit(shifted)
    # every shifted star is on its own grid; the matcher keeps them apart, a Resampler joins them
    out = Resampler(stars.spectral_axis).fit_transform(matcher.transform(shifted))
    error = (out.meta["rv"] - rv).to_value(u.km / u.s)
    assert np.all(np.isfinite(error))
    assert 1.4826 * np.median(np.abs(error)) < 10


@pytest.mark.parametrize("params, match", [
    ({"resolution": 2000}, "one of fwhm and resolution"),
    ({"medium": "water"}, "medium"),
    ({"input_resolution": 2000, "input_fwhm": 1 * u.AA}, "not both"),
    ({"rv_templates": np.ones(10)}, "rv_templates"),
    ({"remove_rv": 1}, "remove_rv"),
    ({"wavelength_range": [3700, 7300]}, "wavelength_range.*wavelength Quantity"),
    ({"wavelength_range": [0, 7300] * u.AA}, "wavelength_range.*0 < min < max"),
    ({"wavelength_range": [3700, 5000, 7300] * u.AA}, "wavelength_range"),
])
def test_bad_parameters_are_refused_by_name(params, match):
    spectra, _ = _spectra(resolution=5000)
    with pytest.raises((TypeError, ValueError), match=match):
        InstrumentMatcher(**params).fit(spectra)


def test_a_flux_per_unit_frequency_is_matched_as_the_same_flux_per_unit_wavelength():
    spectra, _ = _spectra(fwhm=2.5 * u.AA, air=True)
    f_lambda = spectra.flux.value * (u.erg / u.s / u.cm**2 / u.AA)
    in_jy = Spectrum(flux=f_lambda.to(u.mJy, equivalencies=u.spectral_density(
                         spectra.spectral_axis)),
                     spectral_axis=spectra.spectral_axis, meta=spectra.meta)
    as_given = Spectrum(flux=f_lambda, spectral_axis=spectra.spectral_axis, meta=spectra.meta)
    matcher = InstrumentMatcher(fwhm=2.5 * u.AA, remove_rv=False, rescale=True).fit()
    np.testing.assert_allclose(matcher.transform(in_jy).flux.value,
                               matcher.transform(as_given).flux.value, rtol=1e-6)
    # for a model trained on F_nu itself (the command's model files read their files so)
    kept = InstrumentMatcher(fwhm=None, remove_rv=False, flux_density=None).fit()
    assert kept.transform(in_jy).flux.unit == u.mJy


def test_a_spectrum_of_negative_median_flux_is_refused_not_flipped():
    # divided by its median, a spectrum with its sign flipped would pass for the star
    spectra, _ = _spectra(fwhm=2.5 * u.AA, air=True)
    flipped = Spectrum(flux=-spectra.flux, spectral_axis=spectra.spectral_axis,
                       meta=spectra.meta)
    matcher = InstrumentMatcher(fwhm=2.5 * u.AA, remove_rv=False, rescale=True).fit()
    assert np.all(np.nanmedian(matcher.transform(spectra).flux.value, axis=1) > 0)
    with pytest.raises(ValueError, match=r"spectra\[0\] \(and \d+ more\) has a median flux "
                                         r"of -[\d.]+, not positive"):
        matcher.transform(flipped)


def test_spectra_outside_the_models_range_are_refused_with_their_range():
    spectra, _ = _spectra(air=True)
    logged = Spectrum(flux=spectra.flux, spectral_axis=np.log10(spectra.spectral_axis.value)
                      * u.AA, meta=spectra.meta)
    matcher = InstrumentMatcher(remove_rv=False, wavelength_range=(3700, 7300) * u.AA).fit()
    with pytest.raises(ValueError, match=r"lie at 3\.\d+-3\.\d+ Angstrom, none of the "
                                         r"model's 3700-7300 Angstrom \(a logarithm"):
        matcher.transform(logged)
