"""Bad input to the preprocessing transformers: refused early, with a clear message."""

import astropy.units as u
import numpy as np
import pytest
from astropy.nddata import InverseVariance, StdDevUncertainty, UnknownUncertainty
from specutils import Spectrum

from stellarlatent.preprocessing import (
    Broadener,
    ContinuumNormalizer,
    DopplerShift,
    Masker,
    NoiseAugmenter,
    Padder,
    SpectralGrid,
)
from stellarlatent.preprocessing import grid as grid_module


def spectrum(flux=1.0, n_spectra=1, n_pixels=2000, uncertainty=None, wave=None):
    flux = np.broadcast_to(np.asarray(flux, dtype=float), (n_spectra, n_pixels)).copy()
    if wave is None:
        wave = np.linspace(5000.0, 6000.0, n_pixels)
    return Spectrum(
        flux=flux * u.one,
        spectral_axis=wave * u.AA,
        uncertainty=uncertainty,
        spectral_axis_index=1,
    )


# 1. NoiseAugmenter: negative flux, and spectra already noisier than the target


def test_noise_refuses_negative_median_flux_naming_the_row():
    flux = np.ones((3, 2000))
    flux[1] = -1.0
    with pytest.raises(ValueError, match=r"spectra\[1\].*median flux.*-1"):
        NoiseAugmenter(snr=50, random_state=0).transform(spectrum(flux, n_spectra=3))
    with pytest.raises(ValueError, match=r"spectra\[0\].*median flux"):
        NoiseAugmenter(snr=50, noise_model="constant").transform(spectrum(0.0))


def test_noise_records_the_snr_reached_not_the_target():
    # S/N 10 already (sigma 0.1 on a flux of 1): a target of 50 cannot be reached
    noisy = spectrum(1.0, n_spectra=2, uncertainty=StdDevUncertainty(np.full((2, 2000), 0.1)))
    out = NoiseAugmenter(snr=50, random_state=0).transform(noisy)
    np.testing.assert_allclose(out.meta["snr"], 10.0)
    np.testing.assert_array_equal(out.meta["snr_target"], 50.0)
    # no noise was added, and the uncertainty is the one the spectrum had
    np.testing.assert_array_equal(out.flux.value, 1.0)
    np.testing.assert_allclose(out.uncertainty.array, 100.0)
    # cleaner than the target: the target is reached exactly
    clean = spectrum(1.0, uncertainty=StdDevUncertainty(np.full((1, 2000), 0.001)))
    out = NoiseAugmenter(snr=50, random_state=0).transform(clean)
    np.testing.assert_array_equal(out.meta["snr"], 50.0)


def test_noise_refuses_a_boolean_snr():
    with pytest.raises(TypeError, match="snr"):
        NoiseAugmenter(snr=True).transform(spectrum())


# 2. negative uncertainties


@pytest.mark.parametrize("kind", ["std", "variance"])
def test_negative_uncertainties_are_masked(kind):
    sigma = np.full((1, 2000), 0.1)
    sigma[0, :10] = -0.1
    if kind == "std":
        uncertainty = StdDevUncertainty(sigma)
    else:
        from astropy.nddata import VarianceUncertainty

        uncertainty = VarianceUncertainty(np.sign(sigma) * sigma**2)
    out = Masker().transform(spectrum(uncertainty=uncertainty))
    assert out.mask[0, :10].all() and not out.mask[0, 10:].any()
    np.testing.assert_array_equal(out.uncertainty.array[0, :10], 0.0)
    np.testing.assert_allclose(out.uncertainty.array[0, 10:], 100.0)


def test_an_uncertainty_that_is_nan_everywhere_means_none_not_every_pixel_bad():
    sigma = np.full((2, 2000), 0.1)
    sigma[1] = np.nan  # as an archive file's empty error column, or a spectrum stacked without
    sigma[0, :5] = np.nan  # a few bad pixels of a spectrum that has one
    out = Masker().transform(spectrum(n_spectra=2, uncertainty=StdDevUncertainty(sigma)))
    assert out.mask[0, :5].all() and not out.mask[0, 5:].any()
    assert not out.mask[1].any() and np.isnan(out.uncertainty.array[1]).all()
    alone = Masker().transform(spectrum(uncertainty=StdDevUncertainty(sigma[1:])))
    assert alone.uncertainty is None and not alone.mask.any()


def test_an_uncertainty_negative_everywhere_is_a_sign_error_not_a_missing_one():
    sigma = np.full((2, 2000), 0.1)
    sigma[1, :10] *= -1
    out = Masker().transform(spectrum(n_spectra=2, uncertainty=StdDevUncertainty(sigma)))
    assert out.mask[1, :10].all() and not out.mask[0].any()
    with pytest.raises(ValueError, match="first at row 0; its uncertainties are negative"):
        Masker().transform(spectrum(n_spectra=2, uncertainty=StdDevUncertainty(-sigma)))
    from stellarlatent.datasets._reading import file_reason

    with pytest.raises(ValueError) as excinfo:
        Masker().transform(spectrum(uncertainty=StdDevUncertainty(-sigma[:1])))
    assert file_reason(str(excinfo.value)) == (
        "no valid pixel: its uncertainties are negative, a sign error upstream?")


def test_uncertainty_without_conversion_names_the_spectrum():
    with pytest.raises(TypeError, match=r"spectra.uncertainty.*UnknownUncertainty"):
        Masker().transform(spectrum(uncertainty=UnknownUncertainty(np.ones((1, 2000)))))


def test_an_uncertainty_in_another_unit_than_the_flux_is_converted():
    wave = np.linspace(5000, 5100, 50) * u.AA
    expected = (0.01 / u.Jy**2).to_value(1 / u.mJy**2)  # 10 Jy, as an inverse variance
    for uncertainty in (StdDevUncertainty(np.full(50, 10.0) * u.Jy),
                        InverseVariance(np.full(50, 0.01) / u.Jy**2)):
        given = Spectrum(flux=np.full(50, 5e4) * u.mJy, spectral_axis=wave,
                         uncertainty=uncertainty)
        out = Masker().transform(given)
        assert out.uncertainty.unit == 1 / u.mJy**2
        np.testing.assert_allclose(out.uncertainty.array, expected)


# 6. DopplerShift rv_range


@pytest.mark.parametrize("seed", range(5))
def test_rv_range_beyond_c_is_refused_for_every_seed(seed):
    shifter = DopplerShift(inject=True, rv_range=(-5e5, 5e5) * u.km / u.s, random_state=seed)
    with pytest.raises(ValueError, match="rv_range.*speed of light"):
        shifter.transform(spectrum())


def test_rv_beyond_c_and_rv_with_rv_range_are_refused():
    with pytest.raises(ValueError, match="rv must be.*speed of light"):
        DopplerShift(rv=[10, 4e5] * u.km / u.s).transform(spectrum(n_spectra=2))
    with pytest.raises(ValueError, match="rv_range.*not both"):
        DopplerShift(
            rv=10 * u.km / u.s, inject=True, rv_range=(-5, 5) * u.km / u.s
        ).transform(spectrum())


# 7. SpectralGrid sizes


def test_grid_refuses_impossible_sizes_with_the_figure():
    figure = r"would need 3\.6e\+14 pixels \(2\.9 PB in float64\); expected at most"
    with pytest.raises(ValueError, match=figure):
        SpectralGrid.from_velocity_step(3000 * u.AA, 10000 * u.AA, 1e-9 * u.km / u.s)
    with pytest.raises(ValueError, match="would need 1e\\+13 pixels"):
        SpectralGrid.linear(4000 * u.AA, 5000 * u.AA, 10**13)
    with pytest.raises(ValueError, match="would need"):
        SpectralGrid.log_uniform(4000 * u.AA, 5000 * u.AA, grid_module.MAX_PIXELS + 1)
    with pytest.raises(ValueError, match="would need"):
        SpectralGrid.from_velocity_step(1 * u.AA, 2 * u.AA, 1e-300 * u.km / u.s)
    # the limit itself is allowed (only the check, not the allocation, is tested here)
    assert SpectralGrid._check_size(grid_module.MAX_PIXELS, "n") == grid_module.MAX_PIXELS


@pytest.mark.parametrize("n", [np.inf, np.nan, "abc", 2.5, True, [3, 4]])
def test_grid_refuses_pixel_counts_that_are_not_integers(n):
    with pytest.raises((TypeError, ValueError), match="n must be an integer"):
        SpectralGrid.linear(4000 * u.AA, 5000 * u.AA, n)


def test_velocity_grid_checks_start_step_and_stop():
    step = 1 * u.km / u.s
    with pytest.raises(ValueError, match="start must be positive"):
        SpectralGrid.from_velocity_step(0 * u.AA, 2 * u.AA, step)
    with pytest.raises(ValueError, match="start must be positive"):
        SpectralGrid.from_velocity_step(-1 * u.AA, 2 * u.AA, step)
    with pytest.raises(ValueError, match="step must be a scalar"):
        SpectralGrid.from_velocity_step(1 * u.AA, 2 * u.AA, [1, 2] * u.km / u.s)
    with pytest.raises(u.UnitsError, match="stop"):
        SpectralGrid.from_velocity_step(1 * u.AA, 2 * u.Hz, step)


# 9. Padder


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"multiple_of": 0}, "multiple_of must be a positive integer"),
        ({"multiple_of": True}, "multiple_of must be a positive integer"),
        ({"length": True}, "length must be a positive integer"),
        ({"multiple_of": 2**40}, r"would need 1\.1e\+12 pixels.*at most"),
        ({"length": 10**13}, r"would need 1e\+13 pixels.*at most"),
    ],
)
def test_padder_refuses_bad_or_impossible_lengths(kwargs, match):
    with pytest.raises((TypeError, ValueError), match=match):
        Padder(**kwargs).transform(spectrum())


def test_padder_refuses_padding_below_zero_wavelength():
    with pytest.raises(ValueError, match="side='left'.*not positive"):
        Padder(length=20000, side="left").transform(spectrum())


# other parameters that blew up late


def test_spline_knots_finer_than_pixels_are_refused():
    with pytest.raises(ValueError, match="knot_spacing.*knot intervals.*at most"):
        ContinuumNormalizer(method="spline", knot_spacing=1e-9 * u.km / u.s).transform(spectrum())


def test_polynomial_degree_beyond_the_pixels_is_refused():
    with pytest.raises(ValueError, match="degree=100000.*2000 pixels"):
        ContinuumNormalizer(method="polynomial", degree=100000).transform(spectrum())


@pytest.mark.parametrize(
    "kwargs",
    [
        {"resolution": 1e-6},
        {"fwhm": 1e7 * u.AA},
        {"vsini": 1e5 * u.km / u.s},
    ],
)
def test_broadening_kernel_wider_than_the_spectra_is_refused(kwargs):
    # a resolution of 1e-6 used to ask for a 208 GiB kernel
    log_grid = spectrum(wave=np.geomspace(5000.0, 6000.0, 2000))
    with pytest.raises(ValueError, match="wider than the spectra"):
        Broadener(**kwargs).transform(log_grid)
    with pytest.raises(ValueError, match="vsini must be smaller than the speed of light"):
        Broadener(vsini=1e9 * u.km / u.s).transform(log_grid)


def test_valid_inputs_still_work():
    # the checks leave ordinary use alone
    flux = spectrum(1.0, uncertainty=InverseVariance(np.full((1, 2000), 1e4)))
    out = NoiseAugmenter(snr=20, random_state=0).transform(flux)
    np.testing.assert_array_equal(out.meta["snr"], 20.0)
    assert Padder(multiple_of=2**11).transform(flux).shape == (1, 2048)
    assert DopplerShift(inject=True, random_state=0).transform(flux).shape == (1, 2000)
    assert len(SpectralGrid.from_velocity_step(5000 * u.AA, 5001 * u.AA, 10 * u.km / u.s)) == 6
    assert Broadener(resolution=5000).transform(flux).shape == (1, 2000)


def test_an_output_never_shares_the_callers_flux():
    given = spectrum(n_spectra=2)
    for out in (Masker().transform(given), Masker(regions=[(5000, 5001) * u.AA]).transform(given)):
        assert not np.shares_memory(out.flux.value, given.flux.value)
        out.flux.value[0, 0] = -999.0
        assert given.flux.value[0, 0] != -999.0
