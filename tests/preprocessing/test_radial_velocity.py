"""RadialVelocityEstimator: injected shifts recovered, masks, bad parameters, rest frame."""

import astropy.units as u
import numpy as np
import pytest
from astropy.nddata import InverseVariance
from specutils import Spectrum

from stellarlatent.datasets import make_synthetic_spectra, read_miles
from stellarlatent.preprocessing import DopplerShift, RadialVelocityEstimator, SpectralGrid

KMS = u.km / u.s
STAR = dict(teff=5800.0, logg=4.4, feh=0.0, vsini=3 * KMS)
#: A HARPS-like setup: R = 50000 over 300 Angstrom, 1 km/s pixels.
HARPS = dict(grid=SpectralGrid.from_velocity_step(5000 * u.AA, 5300 * u.AA, 1.0 * KMS),
             resolution=50000.0)
#: MILES-like: the default grid of make_synthetic_spectra (0.9 A pixels), R = 2000.
MILES = dict(grid=None, resolution=2000.0)


def _sample(setup, n, snr=50, seed=1):
    template, _ = make_synthetic_spectra(1, setup["grid"], rv=0 * KMS, snr=None,
                                         resolution=setup["resolution"], **STAR)
    spectra, labels = make_synthetic_spectra(n, setup["grid"], snr=snr, random_state=seed,
                                             resolution=setup["resolution"], **STAR)
    return template[0], spectra, labels


@pytest.fixture(scope="module", params=["MILES", "HARPS"])
def sample(request):
    setup = {"MILES": MILES, "HARPS": HARPS}[request.param]
    return (request.param,) + _sample(setup, 30)


def test_injected_shifts_are_recovered_within_their_uncertainty(sample):
    name, template, spectra, labels = sample
    assert np.ptp(labels["rv"].value) > 400  # drawn over +-300 km/s
    table = RadialVelocityEstimator(template=template).fit(spectra).estimate(spectra)
    assert table.colnames == ["rv", "rv_err", "ccf_peak"]
    assert table["rv"].unit == KMS and table["rv_err"].unit == KMS
    diff = (table["rv"] - labels["rv"]).to_value(KMS)
    err = table["rv_err"].to_value(KMS)
    assert np.all(err > 0)
    # Gaussian errors: 0.3% beyond 3 sigma; rv_err is about 1.2 times too small at
    # R=2000 (a noise-free floor of about 0.15 km/s, 0.4% of a pixel), hence 90%
    assert np.mean(np.abs(diff) < 3 * err) >= 0.9, name
    assert np.all(np.abs(diff) < 4 * err), name
    scatter = np.sqrt(np.mean(diff**2))
    assert 0.5 < scatter / np.median(err) < 2.0, (name, scatter, np.median(err))
    assert np.all((table["ccf_peak"] > 0.9) & (table["ccf_peak"] <= 1))


def test_a_template_in_the_other_wavelength_medium_is_converted(sample):
    # a PHOENIX template (vacuum) against HARPS spectra (air): 80 km/s off before
    from stellarlatent.preprocessing import air_to_vacuum

    name, template, spectra, labels = sample
    air = Spectrum(flux=spectra.flux, spectral_axis=spectra.spectral_axis,
                   meta={"wavelength_medium": "air"}, spectral_axis_index=1)
    vacuum = Spectrum(flux=template.flux, spectral_axis=air_to_vacuum(template.spectral_axis),
                      meta={"wavelength_medium": "vacuum"})
    estimator = RadialVelocityEstimator(template=vacuum).fit(air)
    assert estimator.wavelength_medium_ == "vacuum"
    diff = (estimator.estimate(air)["rv"] - labels["rv"]).to_value(KMS)
    assert np.all(np.abs(diff) < (3.0 if name == "MILES" else 0.3)), name
    # spectra of both media, without a template: one frame
    both = [Spectrum(flux=spectra.flux[0], spectral_axis=spectra.spectral_axis,
                     meta={"wavelength_medium": "air"}),
            Spectrum(flux=spectra.flux[1], spectral_axis=air_to_vacuum(spectra.spectral_axis),
                     meta={"wavelength_medium": "vacuum"})]
    relative = RadialVelocityEstimator().fit(both).estimate(both)["rv"].to_value(KMS)
    truth = labels["rv"][:2].to_value(KMS)
    assert abs((relative[1] - relative[0]) - (truth[1] - truth[0])) < 3.0


def test_precision_scales_with_resolution(sample):
    name, template, spectra, labels = sample
    err = RadialVelocityEstimator(template=template).fit(spectra).estimate(spectra)["rv_err"]
    # a few hundred m/s at R=2000 with S/N 50, tens of m/s at R=50000
    assert np.median(err) < (1.0 if name == "MILES" else 0.05) * KMS


def test_template_built_from_the_spectra_gives_relative_velocities(sample):
    name, template, spectra, labels = sample
    estimator = RadialVelocityEstimator(n_iter=2).fit(spectra)
    table = estimator.estimate(spectra)
    assert abs(np.median(table["rv"].value)) < 1e-6
    diff = (table["rv"] - labels["rv"]).to_value(KMS)
    diff -= np.median(diff)
    assert np.sqrt(np.mean(diff**2)) < 3 * np.median(table["rv_err"].value), name
    assert estimator.template_.flux.ndim == 1


def test_transform_brings_the_spectra_to_the_rest_frame():
    template, spectra, labels = _sample(MILES, 6, snr=100, seed=3)
    estimator = RadialVelocityEstimator(template=template).fit(spectra)
    rest = estimator.transform(spectra)
    assert rest.flux.shape == spectra.flux.shape
    assert np.array_equal(rest.spectral_axis.value, spectra.spectral_axis.value)
    assert rest.uncertainty is not None
    np.testing.assert_allclose(rest.meta["rv"].value, labels["rv"].value, atol=3)
    assert rest.meta["rv_err"].unit == KMS
    # pixels shifted in from beyond the grid are masked, the rest is not
    assert rest.mask[:, 400:-400].sum() == 0
    assert rest.mask.any()
    again = estimator.estimate(rest)["rv"].to_value(KMS)
    assert np.all(np.abs(again) < 3), again


def test_a_fitted_estimator_and_its_template_survive_pickling():
    import pickle

    from sklearn.base import clone

    from stellarlatent.preprocessing import InstrumentMatcher

    template, spectra, _ = _sample(MILES, 4, snr=100, seed=3)
    template = Spectrum(flux=template.flux, spectral_axis=template.spectral_axis,
                        uncertainty=InverseVariance(np.full(template.flux.shape, 1e4)),
                        mask=np.zeros(template.flux.shape, bool), meta={"name": "template"})
    for fitted in (RadialVelocityEstimator(template=template).fit(spectra),
                   InstrumentMatcher(rv_templates=template).fit(spectra)):
        again = pickle.loads(pickle.dumps(fitted))
        np.testing.assert_array_equal(again.transform(spectra).flux.value,
                                      fitted.transform(spectra).flux.value)
        np.testing.assert_array_equal(clone(again).fit(spectra).transform(spectra).flux.value,
                                      fitted.transform(spectra).flux.value)
    assert again.rv_templates.meta["name"] == "template"
    assert again.rv_templates.uncertainty.array[0] == 1e4


def test_remove_false_only_records_the_velocities():
    template, spectra, labels = _sample(MILES, 3, snr=100, seed=4)
    out = RadialVelocityEstimator(template=template, remove=False).fit(spectra).transform(spectra)
    np.testing.assert_array_equal(out.flux.value, spectra.flux.value)
    np.testing.assert_allclose(out.meta["rv"].value, labels["rv"].value, atol=3)


def test_nan_and_masked_pixels_get_zero_weight():
    template, spectra, labels = _sample(MILES, 4, snr=100, seed=5)
    flux = spectra.flux.value.copy()
    mask = np.zeros(flux.shape, dtype=bool)
    flux[0, 1000:1300] = np.nan
    flux[1, ::7] = np.nan
    mask[2, 2000:2600] = True
    flux[2, 2000:2600] = 1e6  # garbage under the mask
    mask[3, :1500] = True
    damaged = Spectrum(flux=flux * u.one, spectral_axis=spectra.spectral_axis, mask=mask,
                       uncertainty=spectra.uncertainty, spectral_axis_index=1)
    estimator = RadialVelocityEstimator(template=template).fit(spectra)
    clean = estimator.estimate(spectra)
    table = estimator.estimate(damaged)
    assert np.all(np.isfinite(table["rv"].value))
    diff = (table["rv"] - labels["rv"]).to_value(KMS)
    assert np.all(np.abs(diff) < 3 * table["rv_err"].value + 0.5), diff
    # fewer pixels, larger uncertainty
    assert table["rv_err"][3] > clean["rv_err"][3]
    # a template with NaNs works too
    t_flux = template.flux.value.copy()
    t_flux[500:700] = np.nan
    holed = Spectrum(flux=t_flux * u.one, spectral_axis=template.spectral_axis)
    table = RadialVelocityEstimator(template=holed).fit(spectra).estimate(damaged)
    assert np.all(np.abs((table["rv"] - labels["rv"]).value) < 3)


def test_spectra_on_different_grids_and_units():
    template, spectra, labels = _sample(HARPS, 2, snr=100, seed=6)
    estimator = RadialVelocityEstimator(template=template).fit(spectra)
    one = Spectrum(flux=spectra.flux[0], spectral_axis=spectra.spectral_axis.to(u.nm),
                   uncertainty=InverseVariance(spectra.uncertainty.array[0]))
    two = Spectrum(flux=spectra.flux[1, ::2], spectral_axis=spectra.spectral_axis[::2])
    table = estimator.estimate([one, two])
    np.testing.assert_allclose(table["rv"].value, labels["rv"].value, atol=0.2)
    rest = estimator.transform([one, two])
    assert isinstance(rest, list) and len(rest) == 2
    assert rest[0].spectral_axis.unit == u.nm
    assert rest[1].flux.shape == (1, two.flux.size)


def test_a_peak_outside_rv_range_is_nan():
    template, spectra, labels = _sample(HARPS, 1, snr=100, seed=7)
    shifted = DopplerShift(inject=True, rv=[150.0] * KMS).transform(spectra)
    estimator = RadialVelocityEstimator(template=template, rv_range=(-100, 100) * KMS)
    table = estimator.fit(spectra).estimate(shifted)
    assert np.isnan(table["rv"][0]) and np.isnan(table["rv_err"][0])
    rest = estimator.transform(shifted)  # left unshifted
    np.testing.assert_allclose(rest.flux.value, shifted.flux.value, rtol=1e-12)


def test_not_fitted_refused():
    from sklearn.exceptions import NotFittedError

    _, spectra, _ = _sample(HARPS, 1, seed=8)
    with pytest.raises(NotFittedError):
        RadialVelocityEstimator().estimate(spectra)


@pytest.mark.parametrize(
    "kwargs, name",
    [
        ({"template": np.ones(10)}, "template"),
        ({"template": Spectrum(flux=np.ones((2, 10)) * u.one,
                               spectral_axis=np.arange(1.0, 11.0) * u.AA,
                               spectral_axis_index=1)}, "template"),
        ({"rv_range": (-500, 500)}, "rv_range"),
        ({"rv_range": (500, -500) * KMS}, "rv_range"),
        ({"rv_range": (100, 100) * KMS}, "rv_range"),
        ({"rv_range": (-5e5, 5e5) * KMS}, "rv_range"),
        ({"rv_range": (-1, 1) * u.AA}, "rv_range"),
        ({"step": 1.0}, "step"),
        ({"step": -1 * KMS}, "step"),
        ({"step": [1, 2] * KMS}, "step"),
        ({"step": 1 * u.AA}, "step"),
        ({"continuum_window": 1}, "continuum_window"),
        ({"continuum_window": -100 * KMS}, "continuum_window"),
        ({"continuum_window": 3 * u.s}, "continuum_window"),
        ({"remove": 1}, "remove"),
        ({"n_iter": -1}, "n_iter"),
        ({"n_iter": True}, "n_iter"),
    ],
)
def test_bad_parameters_are_refused_naming_them(kwargs, name):
    spectra = Spectrum(flux=np.ones((2, 64)) * u.one,
                       spectral_axis=np.linspace(5000.0, 5010.0, 64) * u.AA,
                       spectral_axis_index=1)
    with pytest.raises((ValueError, TypeError, u.UnitsError), match=rf"\b{name}\b"):
        RadialVelocityEstimator(**kwargs).fit(spectra)


def test_real_miles_stars_shifted_by_known_amounts(miles_dir):
    spectra, labels = read_miles(miles_dir, ids=[1, 3, 5])  # G3 V, G2 V, K1 IV
    rv = np.array([-230.0, 80.0, 310.0])
    shifted = DopplerShift(inject=True, rv=rv * KMS).transform(spectra)
    estimator = RadialVelocityEstimator(template=spectra[1]).fit(spectra)
    measured = estimator.estimate(shifted)["rv"].to_value(KMS)
    original = estimator.estimate(spectra)["rv"].to_value(KMS)
    # the injected shift adds to each star's own (barycentric) velocity
    np.testing.assert_allclose(measured - original, rv, atol=2.0)  # 1/20 of a pixel


def test_a_systematic_error_adds_in_quadrature_and_moves_no_velocity():
    template, spectra, _ = _sample(MILES, 5)
    plain = RadialVelocityEstimator(template=template).fit(spectra).estimate(spectra)
    floor = RadialVelocityEstimator(template=template, systematic_error=5 * KMS).fit(
        spectra).estimate(spectra)
    np.testing.assert_array_equal(floor["rv"], plain["rv"])
    np.testing.assert_allclose(floor["rv_err"].value,
                               np.hypot(plain["rv_err"].value, 5.0), rtol=1e-12)
    for bad in (-1 * KMS, 5.0, [1, 2] * KMS):
        with pytest.raises((TypeError, ValueError, u.UnitsError), match="systematic_error"):
            RadialVelocityEstimator(template=template, systematic_error=bad).fit(spectra)
