import astropy.units as u
import numpy as np
import pytest
from astropy.constants import c
from astropy.nddata import InverseVariance
from specutils import Spectrum

from stellarlatent.preprocessing import (
    Broadener,
    gaussian_broaden,
    rotational_broaden,
    rotational_profile,
)

C_KMS = c.to_value(u.km / u.s)
FWHM = 2 * np.sqrt(2 * np.log(2))

GRIDS = {
    "linear": np.linspace(4980, 5020, 4001),
    "log": np.geomspace(4980, 5020, 4001),
    "irregular": np.sort(np.random.default_rng(0).uniform(4980, 5020, 4001)),
}


def gaussian_line(wave, sigma, depth=0.4, center=5000.0):
    return 1 - depth * np.exp(-0.5 * ((wave - center) / sigma) ** 2)


def moments(wave, flux):
    depth = 1 - flux
    ew = np.trapezoid(depth, wave)
    mean = np.trapezoid(depth * wave, wave) / ew
    var = np.trapezoid(depth * (wave - mean) ** 2, wave) / ew
    return ew, mean, np.sqrt(var)


def measured_fwhm(wave, flux):
    depth = 1 - flux
    half = depth.max() / 2
    above = np.flatnonzero(depth >= half)
    lo, hi = above[0], above[-1]
    left = np.interp(half, [depth[lo - 1], depth[lo]], [wave[lo - 1], wave[lo]])
    right = np.interp(half, [depth[hi + 1], depth[hi]], [wave[hi + 1], wave[hi]])
    return right - left


@pytest.mark.parametrize("grid", list(GRIDS))
def test_gaussian_fwhm_adds_in_quadrature_and_ew_is_conserved(grid):
    wave = GRIDS[grid]
    sigma_in = 0.2
    flux = gaussian_line(wave, sigma_in)
    out = gaussian_broaden(wave * u.AA, flux, fwhm=0.8 * u.AA)
    expected = np.sqrt((FWHM * sigma_in) ** 2 + 0.8**2)
    assert measured_fwhm(wave, out) == pytest.approx(expected, rel=2e-3)
    ew_in, mean_in, _ = moments(wave, flux)
    ew_out, mean_out, _ = moments(wave, out)
    assert ew_out == pytest.approx(ew_in, rel=1e-4)
    assert mean_out == pytest.approx(mean_in, abs=1e-4)


def test_resolving_power_and_input_resolution():
    wave = GRIDS["log"]
    flux = gaussian_line(wave, 0.05)
    spectrum = Spectrum(flux=flux * u.one, spectral_axis=wave * u.AA)
    r20k = Broadener(resolution=20000).transform(spectrum)
    r5k = Broadener(resolution=5000).transform(spectrum).flux.value[0]
    via = Broadener(resolution=5000, input_resolution=20000).transform(r20k).flux.value[0]
    expected = np.sqrt((FWHM * 0.05) ** 2 + (5000 / 5000) ** 2)
    assert measured_fwhm(wave, r5k) == pytest.approx(expected, rel=2e-3)
    np.testing.assert_allclose(via, r5k, atol=2e-4)
    # velocity FWHM is the same as a resolving power
    kms = Broadener(fwhm=C_KMS / 5000 * u.km / u.s).transform(spectrum).flux.value[0]
    np.testing.assert_allclose(kms, r5k, atol=1e-10)
    with pytest.raises(ValueError, match="narrower than the input"):
        Broadener(resolution=50000, input_resolution=20000).transform(spectrum)


def test_rotational_profile_integrates_to_one():
    for vsini, epsilon in [(5, 0.0), (30, 0.6), (250, 1.0)]:
        v = np.linspace(-vsini, vsini, 200001) * u.km / u.s
        kernel = rotational_profile(v, vsini * u.km / u.s, epsilon=epsilon)
        assert kernel.unit == u.s / u.km
        assert np.trapezoid(kernel, v).to_value(u.one) == pytest.approx(1.0, abs=1e-5)
        outside = np.array([-1.01, 1.01]) * vsini * u.km / u.s
        assert rotational_profile(outside, vsini * u.km / u.s).value.max() == 0


@pytest.mark.parametrize("grid", ["log", "linear"])
def test_rotation_conserves_ew_and_has_the_right_width(grid):
    wave = GRIDS[grid]
    flux = gaussian_line(wave, 0.01, depth=0.3)
    out = rotational_broaden(wave * u.AA, flux, 60 * u.km / u.s, epsilon=0.6)
    ew_in, mean_in, _ = moments(wave, flux)
    ew_out, mean_out, sigma_out = moments(wave, out)
    assert ew_out == pytest.approx(ew_in, rel=1e-4)
    assert mean_out == pytest.approx(mean_in, abs=1e-4)
    # variance of the rotational profile: vsini**2 (1 - eps) / 4 ... analytic second moment
    v = np.linspace(-60, 60, 200001)
    g = rotational_profile(v * u.km / u.s, 60 * u.km / u.s).value
    kernel_sigma = np.sqrt(np.trapezoid(g * v**2, v)) * 5000 / C_KMS
    assert sigma_out == pytest.approx(np.hypot(kernel_sigma, 0.01), rel=5e-3)
    assert 0.3 * 0.01 * np.sqrt(2 * np.pi) / ew_in == pytest.approx(1, rel=1e-3)


def test_per_spectrum_vsini_on_log_and_linear_grid_agree():
    flux = np.stack([gaussian_line(GRIDS["log"], 0.1), gaussian_line(GRIDS["log"], 0.1)])
    vsini = [0, 40] * u.km / u.s
    log = rotational_broaden(GRIDS["log"] * u.AA, flux, vsini)
    lin_flux = np.stack([gaussian_line(GRIDS["linear"], 0.1)] * 2)
    lin = rotational_broaden(GRIDS["linear"] * u.AA, lin_flux, vsini)
    np.testing.assert_allclose(log[0], flux[0], atol=1e-12)
    np.testing.assert_allclose(np.interp(GRIDS["linear"], GRIDS["log"], log[1]), lin[1], atol=2e-4)


def test_masked_pixels_do_not_spread_and_ivar_is_propagated():
    wave = GRIDS["linear"][:2000]
    flux = np.ones((1, wave.size))
    flux[0, 1000:1005] = np.nan
    ivar = np.full(flux.shape, 100.0)
    spectrum = Spectrum(flux=flux * u.Jy, spectral_axis=wave * u.AA,
                        uncertainty=InverseVariance(ivar / u.Jy**2), spectral_axis_index=1)
    out = Broadener(fwhm=0.2 * u.AA).transform(spectrum)
    assert np.all(np.isfinite(out.flux.value))
    np.testing.assert_allclose(out.flux.value[~out.mask], 1.0, rtol=1e-12)
    assert out.mask[0, 1000:1005].all() and out.mask.sum() == 5
    # averaging about sigma * 2 sqrt(pi) / step independent pixels lowers the variance
    n_eff = 0.2 / FWHM * 2 * np.sqrt(np.pi) / (wave[1] - wave[0])
    assert out.uncertainty.array[0, 500] == pytest.approx(100.0 * n_eff, rel=0.02)
    assert np.all(out.uncertainty.array[out.mask] == 0)


def test_a_kernel_matrix_too_large_to_hold_is_applied_block_by_block(monkeypatch):
    # an irregular grid (two steps) takes the sparse matrix; R 2000 on it has wide rows
    from stellarlatent.preprocessing import broaden

    wave = np.concatenate([np.arange(5000.0, 5050.0, 0.01), np.arange(5050.0, 5100.0, 0.02)])
    rng = np.random.default_rng(0)
    flux = np.stack([gaussian_line(wave, 0.05), 1 + 0.01 * rng.standard_normal(wave.size)])
    flux[1, 700:720] = np.nan
    spectra = Spectrum(flux=flux * u.Jy, spectral_axis=wave * u.AA, spectral_axis_index=1,
                       uncertainty=InverseVariance(np.full(flux.shape, 1e4) / u.Jy**2))
    broadener = Broadener(resolution=2000, vsini=[0, 30] * u.km / u.s)
    whole = broadener.transform(spectra)
    monkeypatch.setattr(broaden, "_MAX_KERNEL_ENTRIES", 5000)
    matrix = broaden._KernelMatrix(wave, 300.0, lambda x, rows: broaden._gaussian_cdf(x, 60.0))
    assert len(matrix.blocks) > 50
    blocks = broadener.transform(spectra)
    np.testing.assert_allclose(blocks.flux.value, whole.flux.value, rtol=1e-12)
    np.testing.assert_array_equal(blocks.mask, whole.mask)
    np.testing.assert_allclose(blocks.uncertainty.array, whole.uncertainty.array, rtol=1e-12)


def test_flat_spectrum_stays_flat_to_the_edges():
    wave = GRIDS["log"]
    out = Broadener(resolution=2000, vsini=100 * u.km / u.s).transform(
        Spectrum(flux=np.full(wave.size, 3.0) * u.Jy, spectral_axis=wave * u.AA)
    )
    np.testing.assert_allclose(out.flux.value, 3.0, rtol=1e-12)
    assert not out.mask.any()


def test_bad_arguments():
    spectrum = Spectrum(flux=np.ones(10) * u.one, spectral_axis=(np.arange(10.0) + 5000) * u.AA)
    with pytest.raises(ValueError, match="at least one of"):
        Broadener().transform(spectrum)
    with pytest.raises(ValueError, match="resolution or fwhm, not both"):
        Broadener(resolution=100, fwhm=1 * u.AA).transform(spectrum)
    with pytest.raises(ValueError, match="resolution"):
        Broadener(resolution=-5).transform(spectrum)
    with pytest.raises(u.UnitsError, match="vsini"):
        Broadener(vsini=10).transform(spectrum)
    with pytest.raises(ValueError, match="epsilon"):
        Broadener(vsini=10 * u.km / u.s, epsilon=2).transform(spectrum)
    with pytest.raises(u.UnitsError, match="fwhm"):
        Broadener(fwhm=1 * u.s).transform(spectrum)
