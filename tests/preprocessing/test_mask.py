import astropy.units as u
import numpy as np
import pytest
from astropy.nddata import InverseVariance
from specutils import SpectralRegion, Spectrum

from stellarlatent.preprocessing import Masker


def make_spectrum():
    wave = np.linspace(5000, 6000, 101) * u.AA
    flux = np.ones((2, 101))
    flux[0, 3] = np.nan
    flux[1, 7] = 0.0
    ivar = np.full((2, 101), 4.0)
    ivar[1, 50] = 0.0
    return Spectrum(flux=flux * u.Jy, spectral_axis=wave,
                    uncertainty=InverseVariance(ivar / u.Jy**2), spectral_axis_index=1)


def test_regions_and_invalid_pixels():
    spectrum = make_spectrum()
    region = SpectralRegion([(5303.6 * u.AA, 5338.0 * u.AA), (7500 * u.AA, 7600 * u.AA)])
    out = Masker(regions=region).transform(spectrum)
    in_nm = Masker(regions=[(530.36 * u.nm, 533.80 * u.nm), (750 * u.nm, 760 * u.nm)])
    np.testing.assert_array_equal(in_nm.transform(spectrum).mask, out.mask)
    wave = spectrum.spectral_axis.value
    in_regions = ((wave >= 5303.6) & (wave <= 5338.0)) | ((wave >= 7500) & (wave <= 7600))
    expected = np.tile(in_regions, (2, 1))
    expected[0, 3] = expected[1, 50] = True
    np.testing.assert_array_equal(out.mask, expected)
    assert np.all(out.uncertainty.array[out.mask] == 0)
    assert np.all(out.uncertainty.array[~out.mask] == 4.0)


def test_pairs_and_nonpositive_flux():
    spectrum = make_spectrum()
    out = Masker(regions=[(5100 * u.AA, 5120 * u.AA), (5900 * u.AA, 5905 * u.AA)],
                 mask_nonpositive_flux=True).transform(spectrum)
    assert out.mask[1, 7] and out.mask[0, 10] and out.mask[0, 12] and out.mask[0, 90]
    assert not out.mask[0, 13]
    single = Masker(regions=(5100 * u.AA, 5120 * u.AA)).transform(spectrum)
    assert single.mask[0, 10:13].all() and not single.mask[1, 7]


def test_frequency_axis():
    wave = np.linspace(5000, 6000, 101) * u.AA
    frequency = wave.to(u.THz, equivalencies=u.spectral())[::-1]
    spectrum = Spectrum(flux=np.ones(101) * u.Jy, spectral_axis=frequency)
    out = Masker(regions=[(5500 * u.AA, 5600 * u.AA)]).transform(spectrum)
    assert out.mask.sum() == 11


def test_bad_regions():
    spectrum = make_spectrum()
    with pytest.raises(TypeError, match="regions"):
        Masker(regions=[(5000, 5100)]).transform(spectrum)
    with pytest.raises(u.UnitsError, match="regions"):
        Masker(regions=[(1 * u.s, 2 * u.s)]).transform(spectrum)
