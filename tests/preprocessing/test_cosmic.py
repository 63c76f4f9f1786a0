"""Cosmic rays: spikes narrower than any line are masked; lines, noise and real spectra are not."""

from contextlib import nullcontext

import astropy.units as u
import numpy as np
import pytest
from sklearn.base import clone
from specutils import Spectrum

from stellarlatent.preprocessing import CosmicRayMasker, InstrumentMatcher, find_cosmic_rays

PIXELS = np.arange(2000)


def lines(centres, depth, fwhm_pixels, continuum=1.0):
    """A continuum with Gaussian lines (negative ``depth``: emission) of one FWHM in pixels."""
    sigma = fwhm_pixels / 2.3548
    flux = np.full(PIXELS.size, continuum, dtype=float)
    for centre in centres:
        flux -= depth * np.exp(-0.5 * ((PIXELS - centre) / sigma) ** 2)
    return flux


def test_single_and_double_spikes_are_found_and_nothing_else():
    rng = np.random.default_rng(0)
    hits = [100, 500, 501, 1500, 1750, 1751, 1756]  # the last two spikes, five pixels apart
    centres = rng.uniform(20, 1980, 60)
    centres = centres[np.min(np.abs(centres[:, None] - hits), axis=1) > 12]  # off the lines
    flux = lines(centres, 0.5, 3.0) + rng.normal(0, 0.02, PIXELS.size)
    flux[hits] += [0.8, 2.0, 1.2, 5.0, 0.9, 0.9, 1.5]
    np.testing.assert_array_equal(np.flatnonzero(find_cosmic_rays(flux)), hits)


@pytest.mark.parametrize("pixels", [[0], [1], [2], [1997], [1998], [1999], [0, 1], [1998, 1999]])
def test_spikes_at_the_ends_are_found(pixels):
    rng = np.random.default_rng(13)
    flux = 1 + rng.normal(0, 0.01, PIXELS.size)
    flux[pixels] += 2.0
    assert np.flatnonzero(find_cosmic_rays(flux)).tolist() == pixels


@pytest.mark.parametrize("offset", [0.0, 0.25, 0.5, 0.75, 1.0, 1.5])
def test_lines_at_the_ends_are_left_alone(offset):
    rng = np.random.default_rng(14)
    for centre in (offset, PIXELS.size - 1 - offset):
        flux = lines([centre], -30.0, 2.0) + rng.normal(0, 0.01, PIXELS.size)
        assert not find_cosmic_rays(flux).any()


def test_what_is_missed_by_design():
    rng = np.random.default_rng(11)
    flux = lines([500], 0.9, 3.0) + rng.normal(0, 0.01, PIXELS.size)
    flux[500] += 0.5  # in the core of a deep line, not reaching the continuum
    flux[[1000, 1001, 1002]] += 2.0  # three pixels
    flux[[1500, 1502]] += 2.0  # one pixel apart
    assert not find_cosmic_rays(flux).any()


def test_noise_alone_flags_nothing():
    rng = np.random.default_rng(1)
    flux = lines(rng.uniform(20, 1980, 80), 0.6, 2.5) + rng.normal(0, 1 / 30, (300, PIXELS.size))
    assert not find_cosmic_rays(flux).any()


@pytest.mark.parametrize("offset", [0.0, 0.1, 0.25, 0.4, 0.5])
@pytest.mark.parametrize("fwhm", [2.0, 3.0, 6.0])
def test_lines_as_sharp_as_a_nyquist_sampled_spectrum_allows_are_left_alone(offset, fwhm):
    # emission lines a thousand times the noise, on a spectrum full of absorption lines
    rng = np.random.default_rng(2)
    flux = (lines(np.arange(30, 2000, 97) + offset, -3.0, fwhm)
            - lines(np.arange(60, 2000, 41) + offset, 0.7, fwhm) + 1
            + rng.normal(0, 0.003, PIXELS.size))
    assert not find_cosmic_rays(flux).any()


def test_the_continuum_between_two_deep_lines_is_not_a_spike():
    # the sodium doublet of a cool star at MILES's sampling (2.8 pixels per FWHM)
    flux = lines([1000, 1006.6], 0.85, 2.8) + np.random.default_rng(3).normal(0, 0.002,
                                                                              PIXELS.size)
    assert not find_cosmic_rays(flux).any()


@pytest.mark.parametrize("fwhm", [2.0, 2.5, 3.0])
@pytest.mark.parametrize("separation", [1.1, 1.3, 1.6, 2.0])
@pytest.mark.parametrize("depth", [0.3, 0.6, 0.9])
def test_nor_between_two_lines_closer_than_two_fwhm(fwhm, separation, depth):
    rng = np.random.default_rng(8)
    gap = separation * fwhm
    centres = [c + sign * gap / 2 for c in np.arange(50, 1950, 23) + rng.uniform(0, 1, 83)
               for sign in (-1, 1)]
    flux = lines(centres, depth, fwhm) + rng.normal(0, 1e-3, PIXELS.size)
    assert not find_cosmic_rays(flux).any()


def test_nyquist_sampled_emission_lines_just_above_the_threshold_are_left_alone():
    # lines of 25-30 times the noise at random sub-pixel centres, where noise can make a
    # line of two pixels look steep
    rng = np.random.default_rng(9)
    flagged = 0
    for _ in range(20):
        centres = np.arange(10, 1990, 20) + rng.uniform(0, 1, 99)
        flux = (lines(centres, -rng.uniform(25, 30), 2.0, continuum=0.0)
                + rng.normal(0, 1, PIXELS.size))
        flagged += int(find_cosmic_rays(flux).sum())
    assert flagged == 0


def test_integer_counts_and_constant_runs_do_not_make_the_noise_vanish():
    rng = np.random.default_rng(10)
    counts = np.round(1000 + rng.normal(0, 0.3, 600))
    assert not find_cosmic_rays(counts).any()
    flux = np.concatenate([np.zeros(400), 1 + rng.normal(0, 0.01, 600)])
    assert not find_cosmic_rays(flux).any()
    assert not find_cosmic_rays(np.ones(300)).any()  # no noise at all: nothing judged


def test_an_underestimated_uncertainty_does_not_turn_noise_into_spikes():
    rng = np.random.default_rng(4)
    flux = 1 + rng.normal(0, 0.05, (20, PIXELS.size))
    ivar = np.full(flux.shape, 1 / 0.005**2)  # ten times too small an error
    assert not find_cosmic_rays(flux, ivar=ivar).any()
    flux[3, 700] += 1.0
    assert np.flatnonzero(find_cosmic_rays(flux, ivar=ivar)[3]).tolist() == [700]


def test_masked_and_nan_pixels_are_skipped():
    rng = np.random.default_rng(5)
    flux = 1 + rng.normal(0, 0.01, (2, PIXELS.size))
    flux[0, 300] = 50.0
    mask = np.zeros(flux.shape, bool)
    mask[0, 300] = True
    flux[1, 10:40] = np.nan
    flux[1, 41] = 3.0  # beside a gap: its neighbours are the valid pixels on either side
    found = find_cosmic_rays(flux, mask=mask)
    assert not found[0].any()
    assert np.flatnonzero(found[1]).tolist() == [41]
    assert find_cosmic_rays(flux[1]).shape == (PIXELS.size,)
    # a masked array keeps its mask; a mask of one row applies to every row
    assert not find_cosmic_rays(np.ma.masked_array(flux, mask=mask))[0].any()
    assert not find_cosmic_rays(flux, mask=mask[0]).any(axis=1)[0]
    # pixels whose inverse variance is zero are not judged
    ivar = np.full(flux.shape, 1e4)
    ivar[0, 300] = 0.0
    assert not find_cosmic_rays(flux, ivar=ivar)[0].any()


def test_the_masker_masks_zeroes_their_inverse_variance_and_counts_them():
    rng = np.random.default_rng(6)
    flux = 1 + rng.normal(0, 0.01, (3, 400))
    flux[1, [50, 51, 200]] += [1.0, 1.0, 2.0]
    spectra = Spectrum(flux=flux * u.Jy, spectral_axis=np.linspace(5000, 5400, 400) * u.AA,
                       uncertainty=None)
    masker = clone(CosmicRayMasker())
    out = masker.fit_transform(spectra)
    assert out.meta["cosmic_rays"].tolist() == [0, 3, 0]
    assert np.flatnonzero(out.mask[1]).tolist() == [50, 51, 200]
    np.testing.assert_array_equal(out.flux.value, flux)  # the flux is kept
    assert out.flux.unit == u.Jy
    # interpolated instead: nothing masked, the flux between the pixels about them
    filled = CosmicRayMasker(interpolate=True).fit_transform(spectra)
    assert not filled.mask.any() and filled.meta["cosmic_rays"].tolist() == [0, 3, 0]
    np.testing.assert_allclose(filled.flux.value[1, [50, 51]],
                               flux[1, 49] + (flux[1, 52] - flux[1, 49]) * np.array([1, 2]) / 3)
    assert filled.flux.value[1, 200] == pytest.approx((flux[1, 199] + flux[1, 201]) / 2)
    # a second masker adds what it finds to the count of the first
    assert CosmicRayMasker().fit_transform(out).meta["cosmic_rays"].tolist() == [0, 3, 0]
    # a higher threshold keeps what is lower than it
    assert CosmicRayMasker(threshold=150).fit_transform(spectra).meta["cosmic_rays"].tolist() == [
        0, 1, 0]


def test_the_masker_takes_spectra_on_several_grids_ahead_of_a_resampler():
    from sklearn.pipeline import make_pipeline

    from stellarlatent.preprocessing import Resampler, SpectralGrid

    rng = np.random.default_rng(16)
    spectra = []
    for k, (start, n) in enumerate([(5000.0, 400), (5010.0, 800)]):
        flux = 1 + rng.normal(0, 0.01, n)
        flux[n // 2] += 2.0
        spectra.append(Spectrum(flux=flux * u.one,
                                spectral_axis=np.linspace(start, start + 380, n) * u.AA))
    out = CosmicRayMasker(interpolate=True).fit_transform(spectra)
    assert isinstance(out, list) and [o.meta["cosmic_rays"].tolist() for o in out] == [[1], [1]]
    grid = SpectralGrid.log_uniform(5020 * u.AA, 5370 * u.AA, 300)
    batch = make_pipeline(CosmicRayMasker(interpolate=True), Resampler(grid)).fit_transform(
        spectra)
    assert batch.flux.shape == (2, 300) and np.nanmax(batch.flux.value) < 1.1


@pytest.mark.parametrize("threshold", [0, -1.0, "high"])
def test_a_bad_threshold_is_refused(threshold):
    spectra = Spectrum(flux=np.ones((1, 50)) * u.one, spectral_axis=np.arange(50.0) * u.AA)
    with pytest.raises((ValueError, TypeError), match="threshold must be a positive number"):
        CosmicRayMasker(threshold=threshold).fit_transform(spectra)


def test_real_spectra_keep_their_lines_and_lose_their_spikes(miles_dir, real_dir):
    from stellarlatent._batch import to_batch
    from stellarlatent.datasets import read_miles, read_phoenix_grid

    # a MILES star with a cosmic ray left at 4555.7 Angstrom (twice the continuum)
    spectra, _ = read_miles(miles_dir, ids=[1, 3, 459])
    batch = to_batch(spectra)
    found = find_cosmic_rays(batch.flux, batch.mask, batch.ivar)
    assert found.sum(axis=1).tolist() == [0, 0, 1]
    assert batch.spectral_axis[found[2]].to_value(u.AA) == pytest.approx([4555.7], abs=0.1)
    # noise-free PHOENIX models: sharp lines and nothing else
    models, _ = read_phoenix_grid(real_dir / "phoenix", wavelength_range=[4000, 7000] * u.AA)
    assert not find_cosmic_rays(models.flux.value).any()
    # archive files of HARPS (313,000 pixels) and LAMOST: lines and noise, nothing flagged
    from stellarlatent.datasets._io import UnknownUnitWarning

    for path in sorted((real_dir / "harps").glob("*.fits")) + sorted(
            (real_dir / "lamost").glob("*.fits")):
        with pytest.warns(UnknownUnitWarning) if "s1d" in path.name else nullcontext():
            read = Spectrum.read(path)
        for spectrum in read if isinstance(read, list) else [read]:
            batch = to_batch(spectrum)
            assert not find_cosmic_rays(batch.flux, batch.mask, batch.ivar).any(), path.name


def test_spikes_no_longer_move_the_labels_of_a_bundled_model(miles_dir):
    from stellarlatent import pretrained
    from stellarlatent.datasets import read_miles

    spectra, table = read_miles(miles_dir, ids=[2, 5])  # a G dwarf and an F subgiant
    flux = spectra.flux.value
    spiked = flux.copy()
    rng = np.random.default_rng(7)
    for k in range(2):
        pixels = rng.choice(np.flatnonzero(np.isfinite(flux[k]))[10:-10], 20, replace=False)
        spiked[k, pixels] += 20 * np.nanmedian(flux[k])

    def spectrum(values):
        return Spectrum(flux=values * spectra.flux.unit, spectral_axis=spectra.spectral_axis,
                        spectral_axis_index=1, meta=dict(spectra.meta))

    model = pretrained.load("miles-normalized")
    shifts = {}
    for masking in (True, False):
        pipeline = pretrained.pipeline("miles-normalized")
        [name] = [n for n, step in pipeline.steps if isinstance(step, InstrumentMatcher)]
        pipeline.set_params(**{f"{name}__mask_cosmic_rays": masking})
        clean = model.predict(pipeline.transform(spectrum(flux)))
        hit = pipeline.transform(spectrum(spiked))
        if masking:
            assert hit.meta["cosmic_rays"].tolist() == [20, 20]
        shifts[masking] = np.abs(model.predict(hit)["teff"].value - clean["teff"].value)
    assert np.all(shifts[True] < 10)  # against 79 K of the model's scatter on FGK stars
    assert np.all(shifts[False] > 150)  # what the spikes did before


def test_the_matcher_leaves_spectra_sampled_too_coarsely_unsearched(caplog):
    wave = np.linspace(5000.0, 5400.0, 401)  # 1 Angstrom pixels
    flux = 1 + np.random.default_rng(12).normal(0, 0.01, (2, wave.size))
    flux[:, 200] += 1.0
    spectra = Spectrum(flux=flux * u.one, spectral_axis=wave * u.AA,
                       meta={"fwhm": [3.0, 1.2] * u.AA})  # 3 and 1.2 pixels per FWHM
    matcher = InstrumentMatcher(fwhm=None, medium=None, remove_rv=False).fit()
    out = matcher.transform(spectra)
    counts = out.meta["cosmic_rays"]
    assert counts[0] == 1 and np.isnan(counts[1])
    # interpolated over, not masked
    assert not out.mask.any()
    assert out.flux.value[0, 200] == pytest.approx((flux[0, 199] + flux[0, 201]) / 2)
    assert out.flux.value[1, 200] == flux[1, 200]
    assert "fewer than 1.5 pixels per FWHM" in caplog.text
    kept = matcher.set_params(mask_cosmic_rays=False).transform(spectra)
    assert "cosmic_rays" not in kept.meta and not kept.mask.any()


def test_predict_writes_how_many_cosmic_rays_it_masked(miles_dir, tmp_path):
    from astropy.io import fits
    from astropy.table import QTable

    from stellarlatent.cli import main

    path = tmp_path / "MILES_hit.fits"
    with fits.open(miles_dir / "MILES_res2.50_star_m0003V.fits") as hdus:
        flux = np.asarray(hdus[0].data, dtype=float)
        flat = flux.reshape(-1)
        flat[[1000, 2200, 2201, 3000]] += 10 * np.median(flat)
        hdus[0].data = flux.astype(np.float32)
        hdus.writeto(path)
    out = tmp_path / "labels.ecsv"
    assert main(["predict", "miles-normalized", str(path), str(miles_dir /
                 "MILES_res2.50_star_m0003V.fits"), "--out", str(out), "--quiet",
                 "--device", "cpu", "--format", "MILES"]) == 0
    table = QTable.read(out)
    assert table["cosmic_rays"].tolist() == [4, 0] and table["cosmic_rays"].dtype.kind == "i"
    assert abs(table["teff"][0] - table["teff"][1]).to_value(u.K) < 30
    # --keep-cosmic-rays leaves them (and counts nothing); without the matching it has no sense
    kept = tmp_path / "kept.ecsv"
    assert main(["predict", "miles-normalized", str(path), "--out", str(kept), "--quiet",
                 "--device", "cpu", "--format", "MILES", "--keep-cosmic-rays"]) == 0
    assert "cosmic_rays" not in QTable.read(kept).colnames
    assert main(["predict", "miles-normalized", str(path), "--out", str(kept), "--overwrite",
                 "--quiet", "--format", "MILES", "--keep-cosmic-rays", "--no-match"]) == 1


def test_prepare_masks_cosmic_rays_when_asked_and_records_it(miles_dir, tmp_path):
    from astropy.io import fits

    from stellarlatent.cli import main
    from stellarlatent.datasets import SpectralStore

    files = []
    for k, name in enumerate(["m0001V", "m0003V", "m0005V"]):
        path = tmp_path / f"MILES_res2.50_star_{name}.fits"
        with fits.open(miles_dir / path.name) as hdus:
            flux = np.asarray(hdus[0].data, dtype=float)
            if k == 1:
                flux.reshape(-1)[2000] += 30 * np.median(flux)
            hdus[0].data = flux.astype(np.float32)
            hdus.writeto(path)
        files.append(str(path))
    grid = ["--grid", "3700", "7300", "1024", "--format", "MILES", "--quiet"]
    stores = {}
    for flag in ([], ["--mask-cosmic-rays"]):
        out = tmp_path / f"store{len(flag)}.h5"
        assert main(["prepare", *files, *grid, *flag, "--out", str(out)]) == 0
        with SpectralStore(out) as store:
            stores[bool(flag)] = (store.read().flux.value,
                                  [s["class"] for s in store.meta["preprocessing"]["steps"]])
    assert stores[True][1] == ["CosmicRayMasker", "Resampler", "ContinuumNormalizer"]
    assert stores[False][1] == ["Resampler", "ContinuumNormalizer"]
    plain, masked = stores[False][0], stores[True][0]
    assert np.nanmax(plain[1]) > 5 > np.nanmax(masked[1])  # the spike, resampled, is gone
    np.testing.assert_allclose(masked[[0, 2]], plain[[0, 2]])  # the others are as they were
    # a model trained on files read so keeps the masker, after the matcher's: the count adds up
    model = tmp_path / "vae.pt"
    assert main(["fit-vae", *files, *grid, "--mask-cosmic-rays", "--latent-dim", "2",
                 "--epochs", "1", "--batch-size", "2", "--out", str(model)]) == 0
    table = tmp_path / "z.ecsv"
    assert main(["predict", str(model), *files, "--format", "MILES", "--out", str(table),
                 "--quiet"]) == 0
    from astropy.table import QTable

    assert QTable.read(table)["cosmic_rays"].tolist() == [0, 1, 0]
    # the option is for raw files: with a store it would do nothing
    assert main(["fit-remap", str(tmp_path / "store0.h5"), "--mask-cosmic-rays", "--out",
                 str(tmp_path / "m.pt"), "--quiet"]) == 1
    assert main(["predict", "miles", str(tmp_path / "store0.h5"), "--keep-cosmic-rays",
                 "--out", str(tmp_path / "t.ecsv"), "--quiet"]) == 1


def test_cosmic_rays_in_a_harps_spectrum_cost_no_coverage(real_dir):
    from stellarlatent import pretrained

    spectrum = Spectrum.read(real_dir / "harps" / "ADP.2014-09-16T11:04:45.123.fits")
    flux = np.array(spectrum.flux.value, dtype=float).reshape(1, -1)
    rng = np.random.default_rng(15)
    hit = flux.copy()
    pixels = rng.choice(np.flatnonzero(np.isfinite(flux[0]))[20:-20], 200, replace=False)
    hit[0, pixels] += 10 * np.nanmedian(flux)

    def spectrum_of(values):
        return Spectrum(flux=values * spectrum.flux.unit, spectral_axis=spectrum.spectral_axis,
                        meta=dict(spectrum.meta))

    pipeline = pretrained.pipeline("miles-normalized")
    clean, spiked = (pipeline.transform(spectrum_of(v)) for v in (flux, hit))
    assert spiked.meta["cosmic_rays"][0] >= 190
    # 200 pixels of 0.01 Angstrom, interpolated over, mask no pixel of the model
    assert spiked.mask.sum() == clean.mask.sum()
    assert np.nanmax(np.abs(spiked.flux.value - clean.flux.value)) < 0.05
