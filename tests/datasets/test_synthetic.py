import warnings

import astropy.units as u
import numpy as np
import pytest
from astropy.constants import c
from astropy.nddata import InverseVariance

from stellarlatent.datasets import make_synthetic_spectra
from stellarlatent.preprocessing import SpectralGrid

C_KMS = c.to_value(u.km / u.s)


def equivalent_width(wave, flux, centre, half_width, continuum_windows):
    """EW (A) against a straight continuum through the median of two side windows."""
    points = [(np.mean(w), np.median(flux[..., (wave > w[0]) & (wave < w[1])], axis=-1))
              for w in continuum_windows]
    (x0, y0), (x1, y1) = points
    band = np.abs(wave - centre) < half_width
    continuum = y0[..., None] + (y1 - y0)[..., None] * (wave[band] - x0) / (x1 - x0)
    step = np.gradient(wave)[band]
    return np.sum((1 - flux[..., band] / continuum) * step, axis=-1)


def test_deterministic_and_labelled():
    a, labels_a = make_synthetic_spectra(4, random_state=3)
    b, labels_b = make_synthetic_spectra(4, random_state=3)
    other, labels_c = make_synthetic_spectra(4, random_state=4)
    np.testing.assert_array_equal(a.flux.value, b.flux.value)
    np.testing.assert_array_equal(a.uncertainty.array, b.uncertainty.array)
    for name in labels_a.colnames:
        np.testing.assert_array_equal(labels_a[name], labels_b[name])
    assert not np.allclose(labels_a["teff"], labels_c["teff"])
    assert not np.allclose(a.flux.value, other.flux.value)


def test_shapes_units_and_ranges():
    spectra, labels = make_synthetic_spectra(5, random_state=0)
    wave = spectra.spectral_axis.to_value(u.AA)
    assert spectra.flux.shape == (5, 4300) and spectra.spectral_axis_index == 1
    assert wave[0] == pytest.approx(3540.5) and wave[-1] == pytest.approx(3540.5 + 0.9 * 4299)
    assert isinstance(spectra.uncertainty, InverseVariance)
    assert not spectra.mask.any() and np.all(np.isfinite(spectra.flux.value))
    np.testing.assert_allclose(np.median(spectra.flux.value, axis=1), 1.0, atol=0.1)
    assert spectra.meta["wavelength_medium"] == "air"
    assert labels.colnames == ["teff", "logg", "feh", "rv", "vsini", "snr"]
    assert labels["teff"].unit == u.K and labels["logg"].unit == u.dex
    assert labels["rv"].unit == u.km / u.s and labels["vsini"].unit == u.km / u.s
    teff = labels["teff"].to_value(u.K)
    assert np.all((teff >= 3500) & (teff <= 12000))
    assert np.all(np.abs(labels["rv"].to_value(u.km / u.s)) <= 300)
    assert np.all((labels["snr"] >= 20) & (labels["snr"] <= 200))


def test_explicit_values_grid_and_noise_free():
    grid = SpectralGrid.log_uniform(4800 * u.AA, 5300 * u.AA, 2000)
    spectra, labels = make_synthetic_spectra(
        3, grid, teff=[4500, 5500, 6500], logg=4.0, feh=(-0.5, -0.5),
        rv=0 * u.km / u.s, vsini=[0, 10, 20] * u.km / u.s, snr=None, resolution=5000,
    )
    assert spectra.flux.shape == (3, 2000) and spectra.uncertainty is None
    np.testing.assert_array_equal(labels["teff"].to_value(u.K), [4500, 5500, 6500])
    np.testing.assert_array_equal(labels["feh"].value, -0.5)
    assert np.all(np.isinf(labels["snr"]))
    np.testing.assert_array_equal(labels["vsini"].to_value(u.km / u.s), [0, 10, 20])


def test_balmer_lines_peak_in_a_stars():
    teff = np.array([5000, 6500, 7500, 8500, 9500, 11000, 14000])
    grid = SpectralGrid.linear(4000 * u.AA, 4250 * u.AA, 500)
    spectra, _ = make_synthetic_spectra(
        teff.size, grid, teff=teff, logg=4.0, feh=0.0, rv=0.0, vsini=0.0, snr=None
    )
    wave = spectra.spectral_axis.to_value(u.AA)
    ew = equivalent_width(wave, spectra.flux.value, 4101.7, 35, [(4020, 4040), (4180, 4200)])
    assert 8000 <= teff[np.argmax(ew)] <= 11000
    assert ew.max() > 8 and ew[0] < 0.5 * ew.max() and ew[-1] < ew.max()


def test_metal_lines_grow_with_metallicity():
    feh = np.array([-2.5, -1.5, -0.5, 0.0, 0.5])
    grid = SpectralGrid.linear(5240 * u.AA, 5290 * u.AA, 200)
    spectra, _ = make_synthetic_spectra(
        feh.size, grid, teff=5000, logg=4.5, feh=feh, rv=0.0, vsini=0.0, snr=None,
        resolution=20000,
    )
    wave = spectra.spectral_axis.to_value(u.AA)
    # Fe I 5269.5 and Ca I 5270.3
    ew = equivalent_width(wave, spectra.flux.value, 5269.9, 2.5, [(5255, 5258), (5277, 5280)])
    assert np.all(np.diff(ew) > 0)
    assert ew[0] < 0.3 * ew[-1]


def line_centre(wave, flux, expected, half_width=25):
    """Centroid of the absorption against a straight continuum through the window ends."""
    near = np.abs(wave - expected) < half_width
    x, y = wave[near], flux[near]
    continuum = np.polyval(np.polyfit(np.r_[x[:20], x[-20:]], np.r_[y[:20], y[-20:]], 1), x)
    depth = 1 - y / continuum
    return np.sum(depth * x) / np.sum(depth)


def test_injected_radial_velocity_moves_lines():
    grid = SpectralGrid.linear(6500 * u.AA, 6640 * u.AA, 2801)
    rv = np.array([0.0, 200.0, -150.0])
    spectra, labels = make_synthetic_spectra(
        3, grid, teff=8500, logg=4.0, feh=0.0, rv=rv * u.km / u.s, vsini=0.0, snr=None,
        resolution=20000,
    )
    wave = spectra.spectral_axis.to_value(u.AA)
    centres = []
    for row, v in enumerate(rv):
        expected = 6562.80 * np.sqrt((1 + v / C_KMS) / (1 - v / C_KMS))
        centres.append(line_centre(wave, spectra.flux.value[row], expected))
        assert centres[-1] == pytest.approx(expected, abs=0.05)
    assert centres[1] - centres[0] == pytest.approx(6562.80 * 200 / C_KMS, rel=0.02)
    np.testing.assert_array_equal(labels["rv"].to_value(u.km / u.s), rv)


def peak_normalised(grid, teff, logg, resolution):
    """Wavelengths [A] and noise-free flux of stars of one ``teff``, each divided by its maximum."""
    stars, _ = make_synthetic_spectra(
        len(logg), grid, teff=teff, logg=logg, feh=0.0, rv=0.0, vsini=0.0, snr=None,
        resolution=resolution,
    )
    flux = stars.flux.value
    return stars.spectral_axis.to_value(u.AA), flux / np.max(flux, axis=1, keepdims=True)


def test_gravity_broadens_wings():
    # Stark wings of H-beta in A stars and van der Waals wings of Mg b in K stars
    grid = SpectralGrid.linear(4780 * u.AA, 4945 * u.AA, 1650)
    wave, flux = peak_normalised(grid, teff=9000, logg=[2.5, 4.5], resolution=10000)
    offset = np.abs(wave - 4861.35)
    core = flux[:, offset < 1].min(axis=1)
    wing = flux[:, (offset > 12) & (offset < 20)].mean(axis=1)
    assert (1 - wing[1]) / (1 - core[1]) > 1.3 * (1 - wing[0]) / (1 - core[0])

    grid = SpectralGrid.linear(5160 * u.AA, 5200 * u.AA, 800)
    wave, flux = peak_normalised(grid, teff=4800, logg=[1.5, 4.8], resolution=20000)
    # far red wing of Mg b 5183.6, free of other listed lines
    wing_depth = 1 - flux[:, (wave > 5185.5) & (wave < 5188.0)].mean(axis=1)
    assert wing_depth[1] > 2 * wing_depth[0]


def test_measured_signal_to_noise():
    grid = SpectralGrid.linear(5500 * u.AA, 6500 * u.AA, 4000)
    kwargs = dict(teff=(5000, 7000), logg=4.0, feh=0.0, random_state=7)
    clean, _ = make_synthetic_spectra(4, grid, snr=None, **kwargs)
    noisy, labels = make_synthetic_spectra(4, grid, snr=[30, 60, 90, 120], **kwargs)
    sigma = 1 / np.sqrt(noisy.uncertainty.array)
    pulls = (noisy.flux.value - clean.flux.value) / sigma
    np.testing.assert_allclose(pulls.std(axis=1), 1.0, rtol=0.06)
    near_median = np.abs(clean.flux.value - 1) < 0.02
    measured = [np.median(1 / sigma[i, near_median[i]]) for i in range(4)]
    np.testing.assert_allclose(measured, [30, 60, 90, 120], rtol=0.03)
    np.testing.assert_array_equal(labels["snr"], [30, 60, 90, 120])


def test_tio_bands_appear_in_cool_stars():
    teff = np.array([3300, 3700, 4000, 4500, 5500])
    grid = SpectralGrid.linear(6950 * u.AA, 7150 * u.AA, 400)
    spectra, _ = make_synthetic_spectra(
        teff.size, grid, teff=teff, logg=4.7, feh=0.0, rv=0.0, vsini=0.0, snr=None
    )
    wave = spectra.spectral_axis.to_value(u.AA)
    flux = spectra.flux.value
    blue = flux[:, (wave > 7000) & (wave < 7045)].mean(axis=1)
    red = flux[:, (wave > 7060) & (wave < 7100)].mean(axis=1)
    depth = 1 - red / blue  # the 7054 A band head of TiO
    assert depth[0] > depth[1] > depth[2] > max(depth[3], depth[4])
    assert depth[0] > 0.3 and depth[1] > 0.1 and depth[3] < 0.02 and depth[4] < 0.02


def test_vacuum_wavelengths_shift_lines():
    grid = SpectralGrid.linear(6540 * u.AA, 6590 * u.AA, 1001)
    kwargs = dict(teff=9000, logg=4.0, feh=0.0, rv=0.0, vsini=0.0, snr=None, resolution=20000)
    air, _ = make_synthetic_spectra(1, grid, **kwargs)
    vacuum, _ = make_synthetic_spectra(1, grid, air=False, **kwargs)
    wave = grid.spectral_axis.value
    assert line_centre(wave, air.flux.value[0], 6562.80, 20) == pytest.approx(6562.80, abs=0.05)
    assert line_centre(wave, vacuum.flux.value[0], 6564.61, 20) == pytest.approx(6564.61, abs=0.05)
    assert vacuum.meta["wavelength_medium"] == "vacuum"


def test_bad_arguments():
    with pytest.raises(ValueError, match="n must be a positive integer"):
        make_synthetic_spectra(0)
    with pytest.raises(ValueError, match="teff range"):
        make_synthetic_spectra(2, teff=(6000, 5000))
    with pytest.raises(u.UnitsError, match="rv"):
        make_synthetic_spectra(2, rv=(-1, 1) * u.AA)
    with pytest.raises(ValueError, match="logg"):
        make_synthetic_spectra(2, logg=[1.0, 2.0, 3.0])
    with pytest.raises(ValueError, match="resolution"):
        make_synthetic_spectra(2, resolution=-10)
    with pytest.raises(TypeError, match="grid"):
        make_synthetic_spectra(2, grid="MILES")
    with pytest.raises(ValueError, match="snr"):
        make_synthetic_spectra(2, snr=0)


def test_two_element_quantity_for_two_spectra_warns_that_it_is_a_range():
    with pytest.warns(UserWarning, match="rv: a two-element Quantity is read as a range"):
        _, table = make_synthetic_spectra(2, rv=[-50.0, 50.0] * u.km / u.s, snr=None,
                                          random_state=0)
    assert not np.allclose(table["rv"].value, [-50.0, 50.0])
    _, table = make_synthetic_spectra(2, rv=np.array([-50.0, 50.0]), snr=None, random_state=0)
    assert np.allclose(table["rv"].value, [-50.0, 50.0])
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        make_synthetic_spectra(2, snr=None, random_state=0)   # the default ranges stay quiet
        make_synthetic_spectra(3, rv=[-50.0, 0.0, 50.0] * u.km / u.s, snr=None, random_state=0)
