import astropy.units as u
import numpy as np
import pytest
from astropy.nddata import InverseVariance
from specutils import Spectrum

from stellarlatent.preprocessing import Padder, SpectralGrid


def spectrum_on(axis, n_spectra=2):
    flux = np.arange(n_spectra * axis.size, dtype=float).reshape(n_spectra, -1) + 1
    return Spectrum(flux=flux * u.Jy, spectral_axis=axis,
                    uncertainty=InverseVariance(np.ones(flux.shape) / u.Jy**2),
                    spectral_axis_index=1)


def test_multiple_of_power_of_two_like_sedaghat():
    # 312,501 -> 327,680 pixels in Sedaghat et al. (2021), scaled down by 2**6
    n_in = 312501 // 64
    axis = SpectralGrid.linear(3785 * u.AA, 6910 * u.AA, n_in).spectral_axis
    out = Padder(multiple_of=2**10).transform(spectrum_on(axis))
    assert out.flux.shape == (2, 5120)
    assert out.mask[:, n_in:].all() and not out.mask[:, :n_in].any()
    assert np.all(out.flux.value[:, n_in:] == 0) and np.all(out.uncertainty.array[:, n_in:] == 0)
    step = np.diff(out.spectral_axis.value)
    np.testing.assert_allclose(step, step[0], rtol=1e-8)
    assert 327680 == -(-312501 // 2**16) * 2**16


def test_log_grid_keeps_log_step_on_both_sides():
    axis = SpectralGrid.log_uniform(4000 * u.AA, 5000 * u.AA, 100).spectral_axis
    out = Padder(length=107, side="both", value=-1.0).transform(spectrum_on(axis))
    assert out.flux.shape == (2, 107)
    ratio = out.spectral_axis.value[1:] / out.spectral_axis.value[:-1]
    np.testing.assert_allclose(ratio, ratio[0], rtol=1e-10)
    np.testing.assert_array_equal(out.mask[0], np.r_[[True] * 3, [False] * 100, [True] * 4])
    assert np.all(out.flux.value[:, :3] == -1.0)
    np.testing.assert_array_equal(out.flux.value[:, 3:103], spectrum_on(axis).flux.value)


def test_left_and_exact_length():
    axis = np.linspace(5000, 5010, 11) * u.AA
    out = Padder(length=16, side="left").transform(spectrum_on(axis, 1))
    assert out.spectral_axis[0].value == pytest.approx(4995.0)
    assert out.mask[0, :5].all()
    same = Padder(length=11).transform(spectrum_on(axis, 1))
    assert same.flux.shape == (1, 11) and not same.mask.any()


def test_bad_arguments():
    spectrum = spectrum_on(np.linspace(5000, 5010, 11) * u.AA)
    with pytest.raises(ValueError, match="length=8 is shorter"):
        Padder(length=8).transform(spectrum)
    with pytest.raises(ValueError, match="exactly one of length and multiple_of"):
        Padder().transform(spectrum)
    with pytest.raises(ValueError, match="side"):
        Padder(length=20, side="middle").transform(spectrum)
    with pytest.raises(ValueError, match="multiple_of"):
        Padder(multiple_of=0).transform(spectrum)
