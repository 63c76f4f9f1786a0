import astropy.units as u
import numpy as np
import pytest
from astropy.constants import c
from astropy.nddata import InverseVariance
from specutils import Spectrum

from stellarlatent.preprocessing import DopplerShift, doppler_factor

C_KMS = c.to_value(u.km / u.s)


def line_spectrum(n_spectra=1, center=5000.0, rv=None):
    wave = np.geomspace(4950, 5050, 4001)
    flux = 1 - 0.5 * np.exp(-0.5 * ((wave - center) / 0.3) ** 2)
    flux = np.tile(flux, (n_spectra, 1))
    kwargs = {} if rv is None else {"radial_velocity": rv}
    return Spectrum(flux=flux * u.Jy, spectral_axis=wave * u.AA,
                    uncertainty=InverseVariance(np.full(flux.shape, 100.0) / u.Jy**2),
                    spectral_axis_index=1, **kwargs)


def line_centre(spectrum):
    wave = spectrum.spectral_axis.value
    depth = 1 - np.atleast_2d(spectrum.flux.value)[0]
    return np.trapezoid(depth * wave, wave) / np.trapezoid(depth, wave)


def test_doppler_factor_is_relativistic():
    assert doppler_factor(0 * u.km / u.s) == 1
    beta = 0.1
    assert float(doppler_factor(beta * C_KMS * u.km / u.s)) == pytest.approx(
        np.sqrt(1.1 / 0.9), rel=1e-14
    )
    # first order: 1 + v / c
    assert float(doppler_factor(30 * u.km / u.s)) == pytest.approx(1 + 30 / C_KMS, rel=1e-8)
    with pytest.raises(ValueError, match="speed of light"):
        doppler_factor(4e5 * u.km / u.s)


def test_injected_rv_moves_line_centre():
    spectrum = line_spectrum()
    shifted = DopplerShift(rv=250 * u.km / u.s, inject=True).transform(spectrum)
    expected = 5000.0 * np.sqrt((1 + 250 / C_KMS) / (1 - 250 / C_KMS))
    assert line_centre(shifted) == pytest.approx(expected, abs=1e-6)
    assert line_centre(spectrum) == pytest.approx(5000.0, abs=1e-6)
    # flux values, uncertainties and masks travel with their pixels
    np.testing.assert_array_equal(shifted.flux.value, spectrum.flux.value)
    np.testing.assert_array_equal(shifted.uncertainty.array, spectrum.uncertainty.array)


def test_rest_frame_from_radial_velocity_attribute():
    rv = -120 * u.km / u.s
    observed = line_spectrum(center=5000.0 * float(doppler_factor(rv)), rv=rv)
    rest = DopplerShift().transform(observed)
    assert line_centre(rest) == pytest.approx(5000.0, abs=1e-6)
    assert rest.meta["rv"].to_value(u.km / u.s) == pytest.approx([120.0])
    # the same with an explicit velocity
    observed = line_spectrum(center=5000.0 * float(doppler_factor(rv)))
    explicit = DopplerShift(rv=rv).transform(observed)
    np.testing.assert_allclose(explicit.spectral_axis.value, rest.spectral_axis.value)


def test_per_spectrum_rvs_give_a_list_and_are_recorded():
    spectrum = line_spectrum(n_spectra=4)
    shifter = DopplerShift(inject=True, rv_range=(-300, 300) * u.km / u.s, random_state=7)
    out = shifter.transform(spectrum)
    assert isinstance(out, list) and len(out) == 4
    rv = shifter.rv_applied_.to_value(u.km / u.s)
    assert np.all(np.abs(rv) <= 300) and np.unique(rv).size == 4
    for spec, v in zip(out, rv):
        assert spec.flux.ndim == 1
        assert spec.meta["rv"].to_value(u.km / u.s) == pytest.approx(v)
        expected = 5000 * np.sqrt((1 + v / C_KMS) / (1 - v / C_KMS))
        assert line_centre(spec) == pytest.approx(expected, abs=1e-6)
    again = DopplerShift(inject=True, random_state=7).transform(spectrum)
    np.testing.assert_array_equal(again[2].spectral_axis.value, out[2].spectral_axis.value)


def test_list_on_different_grids_and_frequency_axis():
    a = line_spectrum()
    b = Spectrum(flux=a.flux[0], spectral_axis=a.spectral_axis.to(u.THz, u.spectral()))
    out = DopplerShift(rv=[10, 10] * u.km / u.s, inject=True).transform([a, b])
    assert isinstance(out, list) and len(out) == 2
    np.testing.assert_allclose(
        out[1].spectral_axis.to_value(u.AA, u.spectral())[::-1],
        out[0].spectral_axis.value, rtol=1e-12,
    )


def test_bad_arguments():
    spectrum = line_spectrum(n_spectra=2)
    with pytest.raises(u.UnitsError, match="rv"):
        DopplerShift(rv=3 * u.AA).transform(spectrum)
    with pytest.raises(TypeError, match="rv"):
        DopplerShift(rv=30.0).transform(spectrum)
    with pytest.raises(ValueError, match="one value per spectrum"):
        DopplerShift(rv=[1, 2, 3] * u.km / u.s).transform(spectrum)
    with pytest.raises(ValueError, match="rv_range"):
        DopplerShift(inject=True, rv_range=(5, 1) * u.km / u.s).transform(spectrum)
    with pytest.raises(ValueError, match="inject"):
        DopplerShift(rv_range=(-5, 5) * u.km / u.s).transform(spectrum)
