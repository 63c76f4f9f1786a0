import astropy.units as u
import numpy as np
import pytest

from stellarlatent.preprocessing import air_to_vacuum, vacuum_to_air


@pytest.mark.parametrize(
    ("air", "vacuum"),
    [
        (6562.80, 6564.61),  # H-alpha
        (4861.35, 4862.71),  # H-beta (Morton 2000 / NIST)
        (5889.95, 5891.58),  # Na D2
        (8542.09, 8544.44),  # Ca II infrared triplet
    ],
)
def test_known_lines(air, vacuum):
    assert air_to_vacuum(air * u.AA).to_value(u.AA) == pytest.approx(vacuum, abs=0.011)
    assert vacuum_to_air(vacuum * u.AA).to_value(u.AA) == pytest.approx(air, abs=0.011)


def test_round_trip_and_units():
    wave = np.geomspace(2001, 25000, 5000) * u.AA
    back = air_to_vacuum(vacuum_to_air(wave))
    np.testing.assert_allclose(back.value, wave.value, rtol=1e-12, atol=0)
    nm = vacuum_to_air(wave.to(u.nm))
    assert nm.unit == u.nm
    np.testing.assert_allclose(nm.to_value(u.AA), vacuum_to_air(wave).value, rtol=1e-14)
    # air is shorter than vacuum, by about 2.8e-4 relative in the optical
    optical = np.linspace(3500, 10000, 100) * u.AA
    ratio = (optical / vacuum_to_air(optical)).decompose().value
    assert np.all((ratio > 1.000274) & (ratio < 1.000287))


def test_below_2000_unchanged():
    wave = [1215.67, 1999.0] * u.AA
    assert np.array_equal(vacuum_to_air(wave).value, wave.value)
    assert np.array_equal(air_to_vacuum(wave).value, wave.value)


def test_bad_input():
    with pytest.raises(TypeError, match="wavelength"):
        vacuum_to_air(5000.0)
    with pytest.raises(u.UnitsError, match="wavelength"):
        air_to_vacuum(5 * u.THz)
