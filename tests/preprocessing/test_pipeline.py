import astropy.units as u
import numpy as np
import pytest
from astropy.io import fits
from astropy.nddata import InverseVariance
from sklearn.base import clone
from sklearn.pipeline import make_pipeline
from specutils import Spectrum

from stellarlatent.datasets import make_synthetic_spectra
from stellarlatent.preprocessing import (
    Broadener,
    ContinuumNormalizer,
    DopplerShift,
    InstrumentAugmenter,
    Masker,
    NoiseAugmenter,
    Padder,
    PCADenoiser,
    Resampler,
    SpectralGrid,
    air_to_vacuum,
    doppler_factor,
)

TRANSFORMERS = [
    ContinuumNormalizer(method="spline", knot_spacing=200 * u.AA),
    DopplerShift(rv=12 * u.km / u.s),
    Broadener(resolution=3000, vsini=10 * u.km / u.s),
    Masker(regions=[(5303.6 * u.AA, 5338.0 * u.AA)]),
    Padder(multiple_of=256),
    NoiseAugmenter(snr=(30, 60), random_state=0),
    InstrumentAugmenter(fwhm=2.5 * u.AA, input_fwhm=1 * u.AA, random_state=0),
]


def toy_batch(n_spectra=3):
    wave = np.geomspace(5000, 5600, 1500)
    flux = 2 - np.exp(-0.5 * ((wave - 5300) / 1.0) ** 2)
    flux = np.tile(flux, (n_spectra, 1)) * np.arange(1, n_spectra + 1)[:, None]
    return Spectrum(flux=flux * u.Jy, spectral_axis=wave * u.AA,
                    uncertainty=InverseVariance(np.full(flux.shape, 1e4) / u.Jy**2),
                    spectral_axis_index=1)


@pytest.mark.parametrize("transformer", TRANSFORMERS, ids=lambda t: type(t).__name__)
def test_clone_fit_and_transform(transformer):
    copy = clone(transformer)
    assert copy.get_params() == transformer.get_params()
    spectrum = toy_batch()
    assert copy.fit(spectrum) is copy
    out = copy.fit_transform(spectrum)
    assert isinstance(out, Spectrum) and out.flux.shape[0] == 3
    assert out.spectral_axis_index == 1 and out.mask.shape == out.flux.shape
    # parameters are stored untouched: no validation or derived state in __init__
    assert vars(type(transformer)(**transformer.get_params())) == transformer.get_params()


def test_full_pipeline_on_a_common_grid():
    grid = SpectralGrid.log_uniform(5050 * u.AA, 5550 * u.AA, 1000)
    pipeline = make_pipeline(
        DopplerShift(inject=True, rv_range=(-200, 200) * u.km / u.s, random_state=1),
        Resampler(grid),
        Broadener(resolution=2000),
        Masker(regions=[(5303.6 * u.AA, 5338.0 * u.AA)]),
        ContinuumNormalizer(exclude=[(5303.6 * u.AA, 5338.0 * u.AA)]),
        NoiseAugmenter(snr=100, random_state=2),
        Padder(multiple_of=512),
    )
    out = pipeline.fit_transform(toy_batch())
    assert out.flux.shape == (3, 1024)
    assert out.mask[:, 1000:].all()
    rv = pipeline[0].rv_applied_.to_value(u.km / u.s)
    assert rv.shape == (3,) and np.unique(rv).size == 3
    # the line moved to 5300 * doppler factor in each spectrum
    wave = out.spectral_axis.value[:1000]
    flux = out.flux.value[:, :1000]
    mask = out.mask[:, :1000]
    n_checked = 0
    for row, v in enumerate(rv):
        expected = 5300 * float(doppler_factor(v * u.km / u.s))
        if 5300 <= expected <= 5342:  # line centre inside the masked CCD gap
            continue
        centre = wave[np.argmin(np.where(mask[row], np.inf, flux[row]))]
        assert centre == pytest.approx(expected, abs=1.0)
        n_checked += 1
    assert n_checked >= 1


def read_miles(path):
    header = fits.getheader(path)
    flux = fits.getdata(path).astype(float)
    wave = header["CRVAL1"] + header["CDELT1"] * (
        np.arange(header["NAXIS1"]) + 1 - header["CRPIX1"]
    )
    return Spectrum(flux=flux * u.one, spectral_axis=wave * u.AA, mask=flux <= 0)


def test_pipeline_on_real_miles_spectra(miles_dir):
    files = sorted(miles_dir.glob("MILES_res2.50_star_m*V.fits"))[:8]
    spectra = [read_miles(f) for f in files]
    # MILES is in air: go to vacuum wavelengths, inject velocities, resample onto a
    # log-uniform grid, normalise, degrade, pad to a multiple of 2**k
    vacuum = [
        Spectrum(flux=s.flux, spectral_axis=air_to_vacuum(s.spectral_axis), mask=s.mask)
        for s in spectra
    ]
    grid = SpectralGrid.log_uniform(3700 * u.AA, 7200 * u.AA, 3000)
    pipeline = make_pipeline(
        DopplerShift(inject=True, random_state=0),
        Resampler(grid),
        ContinuumNormalizer(method="polynomial", degree=5),
        Broadener(fwhm=5 * u.AA, input_fwhm=2.5 * u.AA),
        NoiseAugmenter(snr=(50, 100), random_state=0),
        Padder(multiple_of=2**10),
    )
    out = pipeline.fit_transform(vacuum)
    assert out.flux.shape == (8, 3072)
    good = ~out.mask[:, :3000]
    assert good.mean() > 0.99
    flux = out.flux.value[:, :3000]
    # normalised: the upper envelope of each spectrum is close to one
    top = np.array([np.quantile(f[g], 0.95) for f, g in zip(flux, good)])
    assert np.all((top > 0.9) & (top < 1.3))
    # H-alpha (vacuum 6564.6 A) stays a local minimum, shifted by the injected RV
    rv = pipeline[0].rv_applied_
    wave = out.spectral_axis.value[:3000]
    for row in range(8):
        centre = 6564.61 * float(doppler_factor(rv[row]))
        near = np.abs(wave - centre) < 3
        around = (np.abs(wave - centre) > 15) & (np.abs(wave - centre) < 30)
        assert flux[row, near].min() < np.median(flux[row, around])


def _one(spectra, k, uncertain):
    """Spectrum ``k`` of a synthetic batch, on a grid of its own, with or without an uncertainty."""
    wave = spectra.spectral_axis.value * (1 + 1e-5 * (k + 1))
    flux = spectra.flux.value[k]
    unc = InverseVariance(np.full(flux.shape, 40.0 ** 2)) if uncertain else None
    return Spectrum(flux=flux * spectra.flux.unit, spectral_axis=wave * u.AA, uncertainty=unc)


def test_a_spectrum_is_transformed_alike_whatever_shares_its_batch():
    train, _ = make_synthetic_spectra(60, snr=None, random_state=0)
    noisy, _ = make_synthetic_spectra(3, snr=30, random_state=1)
    grid = SpectralGrid.log_uniform(4200 * u.AA, 6600 * u.AA, 1500)
    prepare = make_pipeline(Resampler(grid), ContinuumNormalizer(method="running_quantile",
                                                                 store_continuum=True))
    denoiser = PCADenoiser(n_components=8, noise_exponent=1).fit(prepare.fit_transform(train))
    pipe = make_pipeline(*[step for _, step in prepare.steps], denoiser)
    alone = pipe.transform([_one(noisy, 0, True)])
    mixed = pipe.transform([_one(noisy, 0, True), _one(noisy, 1, False), _one(noisy, 2, True)])
    # the first spectrum reports its noise, which caps the denoising: with or without the
    # spectrum without an uncertainty beside it
    np.testing.assert_allclose(mixed.flux.value[0], alone.flux.value[0], rtol=1e-12)
    np.testing.assert_allclose(mixed.meta["excess_noise"][0], alone.meta["excess_noise"][0],
                               rtol=1e-12)
    # uncertainties are kept where they were given, NaN (none) where they were not
    ivar = mixed.uncertainty.array
    assert np.isfinite(ivar[0]).any() and np.isfinite(ivar[2]).any()
    assert np.isnan(ivar[1]).all()
    np.testing.assert_array_equal(mixed.mask[1], pipe.transform([_one(noisy, 1, False)]).mask[0])


def _mixed_pair():
    """Two spectra on one grid, the first with an uncertainty, the second without."""
    spectra, _ = make_synthetic_spectra(2, snr=None, random_state=3)
    axis = spectra.spectral_axis
    a = Spectrum(flux=spectra.flux[0], spectral_axis=axis,
                 uncertainty=InverseVariance(np.full(axis.shape, 50.0 ** 2)))
    b = Spectrum(flux=spectra.flux[1], spectral_axis=axis)
    return a, b


def test_spectra_without_an_uncertainty_beside_ones_with_are_treated_as_such():
    a, b = _mixed_pair()
    # weighted transformations leave the spectrum without one unmasked and uncertain-free
    for step in (Masker(), Broadener(resolution=1500), InstrumentAugmenter(random_state=0)):
        out = step.transform([a, b])
        assert not out.mask[1].all(), type(step).__name__
        alone = step.transform(b)
        np.testing.assert_array_equal(out.mask[1], alone.mask[0], err_msg=type(step).__name__)
    broadened = Broadener(resolution=1500).transform([a, b])
    assert np.isnan(broadened.uncertainty.array[1]).all()
    assert np.isfinite(broadened.uncertainty.array[0]).any()
    # per-spectrum parameters and one random stream for the whole batch, as with any batch
    noisy = NoiseAugmenter(snr=np.array([50.0, 100.0]), random_state=0).transform([a, b])
    added = noisy.flux.value - np.vstack([a.flux.value, b.flux.value])
    assert abs(np.corrcoef(added)[0, 1]) < 0.2
    assert Broadener(vsini=[5, 10] * u.km / u.s).transform([a, b]).flux.shape[0] == 2
    drawn = InstrumentAugmenter(random_state=0).transform([a, b]).meta["augment_rv"]
    assert drawn[0] != drawn[1]


def test_estimators_weight_a_mixed_batch_alike():
    """An estimator's inverse variance is None when any spectrum has no uncertainty."""
    from stellarlatent._batch import as_flux_array

    a, b = _mixed_pair()
    assert as_flux_array([a, b])[2] is None
    assert as_flux_array([a, a])[2].shape == (2, a.flux.shape[-1])


def test_spectra_stacked_on_one_grid_keep_their_own_meta(caplog):
    """A list of spectra becomes one batch: each keeps its resolution, S/N and name."""
    import logging

    from stellarlatent.preprocessing import InstrumentMatcher

    wave = np.linspace(6000, 7000, 2000) * u.AA
    fine = Spectrum(flux=np.ones(2000) * u.Jy, spectral_axis=wave,
                    meta={"wavelength_medium": "air", "resolution": 20000.0, "object": "a"})
    coarse = Spectrum(flux=np.ones(2000) * u.Jy, spectral_axis=wave,
                      meta={"wavelength_medium": "air", "resolution": 1000.0, "object": "b",
                            "snr": 50.0})
    matched = make_pipeline(Masker(regions=[(6690 * u.AA, 6700 * u.AA)]),
                            InstrumentMatcher(remove_rv=False)).fit_transform([fine, coarse])
    assert matched.meta["resolution_status"].tolist() == ["matched", "coarser"]
    stacked = ContinuumNormalizer().fit_transform([fine, coarse]).meta
    assert stacked["wavelength_medium"] == "air"
    assert stacked["object"].tolist() == ["a", "b"]
    np.testing.assert_array_equal(stacked["snr"], [np.nan, 50.0])
    # air and vacuum on one grid have no common convention: none is recorded, with a warning
    vacuum = Spectrum(flux=np.ones(2000) * u.Jy, spectral_axis=wave,
                      meta={"wavelength_medium": "vacuum"})
    with caplog.at_level(logging.WARNING, logger="stellarlatent"):
        mixed = ContinuumNormalizer().fit_transform([fine, vacuum]).meta
    assert "wavelength_medium" not in mixed and "air and vacuum" in caplog.text
    # a batch's rows beside another's single value, whatever the grouping; odd types left out
    pair = Masker(regions=[(6600 * u.AA, 6610 * u.AA)]).fit_transform([fine, coarse])
    third = Spectrum(flux=np.ones(2000) * u.Jy, spectral_axis=wave,
                     meta={"wavelength_medium": "air", "resolution": 20000.0,
                           "t": np.timedelta64(1, "D")})
    grouped = make_pipeline(Masker(regions=[(6690 * u.AA, 6700 * u.AA)]),
                            InstrumentMatcher(remove_rv=False)).fit_transform([pair, third])
    assert grouped.meta["resolution_status"].tolist() == ["matched", "coarser", "matched"]
    fourth = Spectrum(flux=np.ones(2000) * u.Jy, spectral_axis=wave,
                      meta={"t": np.timedelta64(2, "h")})
    assert "t" not in ContinuumNormalizer().fit_transform([third, fourth]).meta


def test_doppler_shift_gives_each_spectrum_its_own_meta():
    wave = np.linspace(6000, 7000, 500) * u.AA
    batch = Spectrum(flux=np.ones((2, 500)) * u.Jy, spectral_axis=wave, spectral_axis_index=1,
                     meta={"snr": np.array([10.0, 20.0]), "library": "x"})
    shifted = DopplerShift(inject=True, random_state=0).fit_transform(batch)
    assert [float(s.meta["snr"]) for s in shifted] == [10.0, 20.0]
    assert shifted[1].meta["library"] == "x"
    grid = SpectralGrid.linear(6100 * u.AA, 6900 * u.AA, 300)
    resampled = make_pipeline(DopplerShift(inject=True, random_state=0),
                              Resampler(grid)).fit_transform(batch)
    assert resampled.meta["snr"].tolist() == [10.0, 20.0] and len(resampled.meta["rv"]) == 2


@pytest.mark.parametrize("make", [
    lambda rs: NoiseAugmenter(snr=30, random_state=rs),
    lambda rs: DopplerShift(inject=True, random_state=rs),
    lambda rs: InstrumentAugmenter(fwhm=(3, 4) * u.AA, input_fwhm=2.5 * u.AA, random_state=rs),
])
def test_random_transformers_take_a_seed_a_random_state_or_a_generator(make):
    """One random state can go through a pipeline of them, whichever numpy API it comes from."""
    grid = SpectralGrid.linear(5000 * u.AA, 5500 * u.AA, 300)
    spectra, _ = make_synthetic_spectra(3, grid, random_state=0)

    def flux(out):
        parts = out if isinstance(out, list) else [out]
        return np.concatenate([np.ravel(s.flux.value) for s in parts])

    for kind in (np.random.RandomState, np.random.default_rng):
        a = flux(make(kind(7)).fit_transform(spectra))
        b = flux(make(kind(7)).fit_transform(spectra))
        np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(flux(make(3).fit_transform(spectra)),
                                  flux(make(3).fit_transform(spectra)))


def test_a_generator_based_augmenter_takes_any_seed():
    grid = SpectralGrid.linear(5000 * u.AA, 5500 * u.AA, 300)
    spectra, _ = make_synthetic_spectra(2, grid, random_state=0)
    InstrumentAugmenter(random_state=2**40).fit_transform(spectra)
