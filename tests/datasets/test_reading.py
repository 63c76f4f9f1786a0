"""read_spectra_files (the one road from files to a batch) and the MILES specutils loader."""

import functools
import logging
from pathlib import Path

import astropy.units as u
import numpy as np
import pytest
from astropy.io import fits
from sklearn.pipeline import make_pipeline
from specutils import Spectrum

from stellarlatent.datasets import (
    SkippedFile,
    SpectraRead,
    SpectralStore,
    identify_miles,
    make_synthetic_spectra,
    read_miles,
    read_miles_spectrum,
    read_phoenix_wave,
    read_spectra_files,
    write_miles,
)
from stellarlatent.datasets._formats import FORMATS, identify_format
from stellarlatent.preprocessing import ContinuumNormalizer, Resampler, SpectralGrid

READ_MILES = functools.partial(Spectrum.read, format="MILES")


@pytest.fixture
def folder(tmp_path):
    """Four good MILES-layout files, a damaged one and one with no valid pixel."""
    grid = SpectralGrid.linear(4800 * u.AA, 5200 * u.AA, 120)
    spectra, labels = make_synthetic_spectra(5, grid, random_state=1)
    labels["miles_id"] = range(1, 6)
    write_miles(tmp_path, spectra, labels)
    (tmp_path / "MILES_res2.50_star_m0003V.fits").write_bytes(b"SIMPLE  = damaged")
    with fits.open(tmp_path / "MILES_res2.50_star_m0004V.fits", mode="update") as hdul:
        hdul[0].data = np.full(hdul[0].data.shape, np.nan)
    return tmp_path


def _files(folder):
    return sorted(folder.glob("MILES_*.fits")) + [folder / "missing.fits"]


def test_the_bad_files_are_skip_records_with_their_reasons(folder, caplog):
    with caplog.at_level(logging.WARNING, logger="stellarlatent"):
        read = read_spectra_files(_files(folder), READ_MILES)
    assert isinstance(read, SpectraRead)
    assert read.spectra.flux.shape == (3, 120)
    assert read.names == [f"MILES_res2.50_star_m000{i}V.fits" for i in (1, 2, 5)]
    skipped = dict(read.skipped)
    assert all(isinstance(s, SkippedFile) for s in read.skipped)
    assert list(skipped) == ["MILES_res2.50_star_m0003V.fits", "MILES_res2.50_star_m0004V.fits",
                             "missing.fits"]
    assert skipped["missing.fits"].startswith("FileNotFoundError: ")
    assert skipped["MILES_res2.50_star_m0003V.fits"].startswith("OSError: not a readable FITS")
    assert skipped["MILES_res2.50_star_m0004V.fits"].startswith("no valid pixel")
    # one line each, logged by default, the file named once
    for name, reason in read.skipped:
        assert "\n" not in reason and not reason.startswith(name)
        assert f"{name} skipped: {reason}" in caplog.text


def test_on_skip_replaces_the_log(folder, caplog):
    seen = []
    with caplog.at_level(logging.WARNING, logger="stellarlatent"):
        read = read_spectra_files(_files(folder), READ_MILES, on_skip=seen.append,
                                  batch_size=2)
    assert seen == read.skipped and len(seen) == 3
    assert "skipped" not in caplog.text


def test_the_pipeline_is_fitted_and_applied(folder):
    grid = SpectralGrid.log_uniform(4850 * u.AA, 5150 * u.AA, 64)
    pipeline = make_pipeline(Resampler(grid), ContinuumNormalizer())
    read = read_spectra_files(_files(folder), READ_MILES, pipeline, batch_size=2)
    assert read.spectra.flux.shape == (3, 64)
    assert np.allclose(read.spectra.spectral_axis.to_value(u.AA), grid.spectral_axis.to_value(u.AA))
    assert np.nanmedian(read.spectra.flux.value, axis=1) == pytest.approx(1.0, abs=0.05)
    # fitted in place on the first batch: the same spectra again, one batch at a time
    again = read_spectra_files(_files(folder)[:2], READ_MILES, pipeline, batch_size=1)
    assert np.array_equal(again.spectra.flux.value, read.spectra.flux.value[:2])


def test_a_failing_preprocessing_skips_the_file(folder):
    good = [p for p in _files(folder) if p.name[-7] in "125"]
    peaks = {p.name: np.nanmax(read_miles_spectrum(p).flux.value) for p in good}
    limit = np.mean(sorted(peaks.values())[-2:])

    class Picky(ContinuumNormalizer):
        def transform(self, X):
            if any(np.nanmax(s.flux.value) > limit for s in (X if isinstance(X, list) else [X])):
                raise ValueError("too bright\nsecond line")
            return super().transform(X)

    read = read_spectra_files(good, READ_MILES, Picky(), on_skip=lambda s: None)
    (name, reason), = read.skipped
    assert name == max(peaks, key=peaks.get)
    assert reason == "preprocessing failed: ValueError: too bright"
    assert read.names == [p.name for p in good if p.name != name]


def test_the_first_batch_is_transformed_once_and_its_warnings_said_once(folder, caplog):
    from stellarlatent._logging import log

    good = [p for p in _files(folder) if p.name[-7] in "125"]
    calls = []

    class Telling(ContinuumNormalizer):
        def transform(self, X):
            calls.append(len(X) if isinstance(X, list) else 1)
            log.warning("a spectrum without a radial velocity")
            if any(np.nanmax(s.flux.value) > 1e30 for s in (X if isinstance(X, list) else [X])):
                raise ValueError("too bright")
            return super().transform(X)

    with caplog.at_level(logging.WARNING, logger="stellarlatent"):
        grid = SpectralGrid.log_uniform(4850 * u.AA, 5150 * u.AA, 64)
        read_spectra_files(good, READ_MILES, make_pipeline(Telling(), Resampler(grid)),
                           batch_size=3)
    assert calls == [3]  # fitted and transformed in one pass, not fitted then transformed
    bright = folder / "bright.fits"
    data, header = fits.getdata(good[0], header=True)
    fits.PrimaryHDU(data * 1e35, header=header).writeto(bright)
    calls.clear()
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="stellarlatent"):
        read = read_spectra_files([*good, bright], READ_MILES, Telling(), batch_size=4,
                                  on_skip=lambda s: None)
    assert [name for name, _ in read.skipped] == ["bright.fits"]
    assert len(calls) > 2  # the batch, then file by file
    assert caplog.text.count("a spectrum without a radial velocity") == 1


def test_files_on_other_grids_are_skipped_without_preprocessing(tmp_path):
    for k, start in enumerate((4800, 4800, 4900)):
        grid = SpectralGrid.linear(start * u.AA, (start + 400) * u.AA, 50)
        spectra, labels = make_synthetic_spectra(1, grid, random_state=k)
        labels["miles_id"] = [k + 1]
        write_miles(tmp_path, spectra, labels, overwrite=True)
    read = read_spectra_files(tmp_path, READ_MILES, pattern="MILES_*.fits", on_skip=lambda s: None)
    assert read.names == ["MILES_res2.50_star_m0001V.fits", "MILES_res2.50_star_m0002V.fits"]
    (name, reason), = read.skipped
    assert name == "MILES_res2.50_star_m0003V.fits" and "another grid" in reason


def test_nothing_readable_gives_no_spectra(tmp_path):
    read = read_spectra_files([tmp_path / "a.fits", tmp_path / "b.fits"], on_skip=lambda s: None)
    assert read.spectra is None and read.names == [] and len(read.skipped) == 2


def test_from_files_gives_its_skips_to_on_skip(folder, tmp_path, caplog):
    seen = []
    with caplog.at_level(logging.WARNING, logger="stellarlatent"):
        store = SpectralStore.from_files(_files(folder), tmp_path / "s.h5", reader=READ_MILES,
                                         progress=False, on_skip=seen.append, batch_size=2)
    with store:
        assert len(store) == 3
        assert store.meta["wavelength_medium"] == "air"
    assert [s.name for s in seen] == ["MILES_res2.50_star_m0003V.fits",
                                      "MILES_res2.50_star_m0004V.fits", "missing.fits"]
    assert "m0003V.fits skipped" not in caplog.text
    assert "3 of 6 files skipped while building" in caplog.text


# -- the MILES loader -----------------------------------------------------------------

def test_the_miles_loader_reads_a_row_of_read_miles(miles_dir):
    batch, labels = read_miles(miles_dir, ids=[1, 2, 3])
    for row, name in enumerate(labels["filename"]):
        path = Path(miles_dir) / name
        assert identify_format(path) == "MILES"
        for spectrum in (Spectrum.read(path), Spectrum.read(path, format="MILES"),
                         read_miles_spectrum(path)):
            assert spectrum.flux.shape == (batch.flux.shape[1],)
            assert np.array_equal(spectrum.flux.value, batch.flux.value[row])
            assert spectrum.flux.unit == batch.flux.unit
            assert np.array_equal(spectrum.mask, batch.mask[row])
            assert np.array_equal(spectrum.spectral_axis, batch.spectral_axis)
            assert spectrum.meta == batch.meta
    assert batch.meta["wavelength_medium"] == "air" and batch.meta["library"] == "MILES"


def test_the_miles_loader_reads_an_hdulist(miles_dir):
    path = Path(miles_dir) / "MILES_res2.50_star_m0001V.fits"
    with fits.open(path) as hdul:
        assert identify_miles("read", hdul)
        spectrum = Spectrum.read(hdul, format="MILES")
    assert np.array_equal(spectrum.flux.value, read_miles_spectrum(path).flux.value)


def test_the_miles_identifier_claims_no_other_file(real_dir, tmp_path):
    others = sorted(real_dir.glob("*/*.fits"))
    assert len(others) == 8  # with the PHOENIX wavelength file
    for path in others:
        assert not identify_miles("read", str(path)), path.name
        assert identify_format(path) != "MILES"
    assert not identify_miles("read", str(tmp_path / "MILES_missing.fits"))
    assert not identify_miles("write", str(others[0]))
    assert "MILES" in FORMATS


def test_a_damaged_miles_file_names_itself(tmp_path):
    path = tmp_path / "MILES_res2.50_star_m0001V.fits"
    fits.PrimaryHDU(np.ones(10), header=fits.Header({"CRVAL1": 3540.5, "CDELT1": -0.9})).writeto(
        path)
    with pytest.raises(ValueError, match=r"MILES_res2.50_star_m0001V.fits: header keyword CDELT1"):
        Spectrum.read(path, format="MILES")


def test_read_phoenix_wave(real_dir):
    wave = read_phoenix_wave(real_dir / "phoenix" / "WAVE_PHOENIX-ACES-AGSS-COND-2011.fits")
    assert wave.unit == u.AA and wave.size == 1569128 and np.all(np.diff(wave.value) > 0)


def test_prepare_detects_miles_files_and_records_air(miles_dir, tmp_path, capsys):
    from stellarlatent.cli import main

    files = [str(p) for p in sorted(Path(miles_dir).glob("MILES_res2.50_star_m*V.fits"))[:4]]
    stores = []
    for fmt in ([], ["--format", "MILES"], ["--format", "miles"]):
        out = tmp_path / f"s{len(stores)}.h5"
        assert main(["prepare", *files, str(tmp_path / "missing.fits"), *fmt,
                     "--grid", "3700", "7300", "64", "--out", str(out), "--quiet"]) == 0
        printed = capsys.readouterr().out
        assert "4 spectra" in printed and "1 skipped" in printed and "missing.fits" in printed
        with SpectralStore(out) as store:
            assert store.meta["wavelength_medium"] == "air"
            stores.append(store.read().flux.value)
    assert np.array_equal(stores[0], stores[1]) and np.array_equal(stores[0], stores[2])
