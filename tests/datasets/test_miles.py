"""MILES reader: real library files and tiny folders written in the same layout."""

import logging
import time

import astropy.units as u
import numpy as np
import pytest
from astropy.io import fits
from astropy.table import QTable
from astropy.utils.masked import Masked
from specutils import Spectrum

from stellarlatent.datasets import MILES_FLAGGED, read_miles, read_miles_table, write_miles

N_FILES = 796


@pytest.fixture(scope="module")
def timed_read(miles_dir):
    start = time.perf_counter()
    spectra, labels = read_miles(miles_dir)
    return spectra, labels, time.perf_counter() - start


@pytest.fixture(scope="module")
def miles(timed_read):
    return timed_read[:2]


def test_real_library_counts_and_shape(miles, miles_dir):
    spectra, labels = miles
    assert spectra.flux.shape == (N_FILES, 4300)
    assert spectra.spectral_axis_index == 1
    assert len(labels) == N_FILES
    assert len(list(miles_dir.glob("MILES_res2.50_star_m*V.fits"))) == N_FILES


def test_real_wavelength_solution_from_header(miles, miles_dir):
    spectra, _ = miles
    wave = spectra.spectral_axis.to_value(u.AA)
    header = fits.getheader(miles_dir / "MILES_res2.50_star_m0001V.fits")
    assert wave[0] == pytest.approx(3540.5)
    assert wave[0] == pytest.approx(header["CRVAL1"])
    assert np.allclose(np.diff(wave), 0.9)
    assert wave[-1] == pytest.approx(3540.5 + 0.9 * 4299)
    assert spectra.meta["wavelength_medium"] == "air"


def test_real_rows_follow_spectra(miles, miles_dir):
    spectra, labels = miles
    for row in (0, 137, N_FILES - 1):
        name = labels["filename"][row]
        assert name == f"MILES_res2.50_star_m{labels['miles_id'][row]:04d}V.fits"
        data = fits.getdata(miles_dir / name)
        good = ~spectra.mask[row]
        assert np.array_equal(spectra.flux.value[row][good], data[good])
    assert np.all(np.diff(labels["miles_id"]) > 0)


def test_real_zero_end_pixels_are_masked(miles, miles_dir):
    spectra, labels = miles
    data = fits.getdata(miles_dir / "MILES_res2.50_star_m0742V.fits")
    row = int(np.flatnonzero(labels["miles_id"] == 742)[0])
    zeros = data == 0
    assert zeros[-3:].all()
    assert np.array_equal(spectra.mask[row], zeros)
    # every exact zero is masked, and nothing else in a spectrum without zeros
    assert np.array_equal(spectra.mask, spectra.flux.value == 0)


def test_real_missing_labels_are_masked(miles):
    _, labels = miles
    assert isinstance(labels["teff"], Masked)
    assert labels["teff"].unit == u.K and labels["feh"].unit == u.dex
    row = int(np.flatnonzero(labels["miles_id"] == 102)[0])  # HD017378: [Fe/H] is "--"
    assert labels["name"][row] == "HD017378"
    assert labels["feh"].mask[row]
    assert not labels["teff"].mask[row]
    assert labels["teff"][row].unmasked == 8587 * u.K
    assert 0 < labels["feh"].mask.sum() < len(labels)


def test_real_flagged_star(miles, miles_dir):
    _, labels = miles
    assert labels["flagged"].sum() == 1
    assert labels["miles_id"][labels["flagged"]][0] == 970
    spectra, labels = read_miles(miles_dir, ids=[969, 970, 972], exclude_flagged=True)
    assert labels["miles_id"].tolist() == [969, 972] and spectra.shape[0] == 2
    assert MILES_FLAGGED == {970}


def test_real_table_malformed_number(miles_dir):
    table = read_miles_table(miles_dir)
    assert len(table) == 985
    row = table[table["miles_id"] == 221]
    assert len(row) == 1
    assert row["name"][0] == "HD044691A"
    assert row["teff"][0] == 7950 * u.K
    assert row["logg"][0] == 3.95 * u.dex
    assert row["feh"][0] == 0.35 * u.dex
    assert len(np.unique(table["miles_id"])) == 985


def test_real_selection_by_ids(miles_dir):
    spectra, labels = read_miles(miles_dir, ids=[5, 1, 3])
    assert labels["miles_id"].tolist() == [1, 3, 5]
    assert spectra.shape[0] == 3


def test_real_read_is_fast(timed_read):
    assert timed_read[2] < 10


def _write_folder(path, n=3, n_pixels=40):
    wave = (3540.5 + 0.9 * np.arange(n_pixels)) * u.AA
    rng = np.random.default_rng(1)
    flux = 1 + 0.1 * rng.random((n, n_pixels))
    flux[0, :2] = 0.0
    table = QTable(
        {
            "miles_id": np.arange(1, n + 1) * 10,
            "name": [f"HD{i:06d}" for i in range(n)],
            "sptype": ["G2V"] * n,
            "teff": Masked(np.linspace(4000, 6000, n) * u.K, mask=[False] * (n - 1) + [True]),
            "logg": np.full(n, 4.5) * u.dex,
            "feh": np.zeros(n) * u.dex,
        }
    )
    spectra = Spectrum(flux=flux * u.one, spectral_axis=wave, spectral_axis_index=1)
    write_miles(path, spectra, table)
    return flux, table


def test_round_trip_written_folder(tmp_path):
    flux, table = _write_folder(tmp_path)
    spectra, labels = read_miles(tmp_path)
    assert labels["miles_id"].tolist() == [10, 20, 30]
    assert labels["name"].tolist() == list(table["name"])
    assert labels["teff"].mask.tolist() == [False, False, True]
    assert np.allclose(labels["teff"][:2].unmasked.value, [4000, 5000])
    assert spectra.mask[0, :2].all() and not spectra.mask[1:].any()
    good = ~spectra.mask
    assert np.allclose(spectra.flux.value[good], flux[good])


def test_files_without_table_row_get_masked_labels(tmp_path, caplog):
    _write_folder(tmp_path)
    extra = fits.PrimaryHDU(np.ones(40))
    extra.header.update(CRVAL1=3540.5, CDELT1=0.9, CRPIX1=1)
    extra.writeto(tmp_path / "MILES_res2.50_star_m0999V.fits")
    with caplog.at_level(logging.WARNING, logger="stellarlatent"):
        spectra, labels = read_miles(tmp_path)
    assert "no row in the parameter table" in caplog.text
    assert labels["miles_id"].tolist() == [10, 20, 30, 999]
    assert labels["teff"].mask[-1] and labels["name"].mask[-1]
    assert spectra.shape[0] == 4


def test_header_wavelength_solution_is_used(tmp_path):
    hdu = fits.PrimaryHDU(np.ones(5))
    hdu.header.update(CRVAL1=4000.0, CDELT1=2.0, CRPIX1=3)
    hdu.writeto(tmp_path / "MILES_res2.50_star_m0001V.fits")
    spectra, _ = read_miles(tmp_path, params_file="absent.txt")
    assert spectra.spectral_axis.to_value(u.AA).tolist() == [3996, 3998, 4000, 4002, 4004]


def test_bad_and_mismatched_files_are_skipped(tmp_path, caplog):
    _write_folder(tmp_path)
    other = fits.PrimaryHDU(np.ones(40))
    other.header.update(CRVAL1=5000.0, CDELT1=0.9, CRPIX1=1)
    other.writeto(tmp_path / "MILES_res2.50_star_m0040V.fits")
    (tmp_path / "MILES_res2.50_star_m0050V.fits").write_bytes(b"not a fits file")
    with caplog.at_level(logging.WARNING, logger="stellarlatent"):
        spectra, labels = read_miles(tmp_path)
    assert labels["miles_id"].tolist() == [10, 20, 30]
    assert "m0040V.fits skipped" in caplog.text and "m0050V.fits skipped" in caplog.text


def test_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="directory"):
        read_miles(tmp_path / "nowhere")
    with pytest.raises(FileNotFoundError, match="no files matching"):
        read_miles(tmp_path)
    _write_folder(tmp_path)
    with pytest.raises(ValueError, match="ids"):
        read_miles(tmp_path, ids=[12345])
    with pytest.raises(FileExistsError):
        _write_folder(tmp_path)
    (tmp_path / "bad.txt").write_text("Nothing here\n\n\n")
    with pytest.raises(ValueError, match="no column 'Name'"):
        read_miles_table(tmp_path / "bad.txt")


def test_a_flux_unit_in_the_header_is_read_and_written(tmp_path, caplog):
    from stellarlatent.datasets import UnknownUnitWarning

    wave = (3540.5 + 0.9 * np.arange(40)) * u.AA
    flux = np.ones((2, 40)) * 3e-26
    table = QTable({"miles_id": [1, 2], "teff": [5800, 4500] * u.K})
    write_miles(tmp_path, Spectrum(flux=flux * u.Jy, spectral_axis=wave, spectral_axis_index=1),
                table)
    assert fits.getheader(tmp_path / "MILES_res2.50_star_m0001V.fits")["BUNIT"] == "Jy"
    spectra, _ = read_miles(tmp_path)
    assert spectra.flux.unit == u.Jy
    one = Spectrum.read(tmp_path / "MILES_res2.50_star_m0002V.fits", format="MILES")
    assert one.flux.unit == u.Jy
    # another unit in the folder: that file is skipped, by name
    other = fits.PrimaryHDU(np.ones(40), header=fits.Header(
        {"CRVAL1": 3540.5, "CDELT1": 0.9, "CRPIX1": 1, "BUNIT": "erg / (s cm2 Angstrom)"}))
    other.writeto(tmp_path / "MILES_res2.50_star_m0003V.fits")
    with caplog.at_level(logging.WARNING, logger="stellarlatent"):
        spectra, labels = read_miles(tmp_path)
    assert spectra.flux.unit == u.Jy and labels["miles_id"].tolist() == [1, 2]
    assert "m0003V.fits skipped: its flux unit (BUNIT 'erg / (s cm2 Angstrom)') cannot be " \
           "converted to that of 2 of the 3 files (Jy)" in caplog.text
    # an equivalent unit is converted, whatever file comes first: the unit of most files wins
    (tmp_path / "MILES_res2.50_star_m0003V.fits").unlink()
    fits.PrimaryHDU(np.ones(40) * 3e-23, header=fits.Header(
        {"CRVAL1": 3540.5, "CDELT1": 0.9, "CRPIX1": 1, "BUNIT": "mJy"})).writeto(
        tmp_path / "MILES_res2.50_star_m0000V.fits")
    spectra, labels = read_miles(tmp_path)
    assert spectra.flux.unit == u.Jy and len(labels) == 3
    np.testing.assert_allclose(spectra.flux.value[0], 3e-26)
    # units FITS has no name for are written as astropy writes them, and read back
    write_miles(tmp_path / "e", Spectrum(flux=np.ones((2, 40)) * u.electron / u.s,
                                         spectral_axis=wave, spectral_axis_index=1), table)
    assert read_miles(tmp_path / "e")[0].flux.unit == u.electron / u.s
    # a unit astropy cannot parse: dimensionless, with a warning naming the file
    fits.PrimaryHDU(np.ones(40), header=fits.Header(
        {"CRVAL1": 3540.5, "CDELT1": 0.9, "CRPIX1": 1, "BUNIT": "Relative Flux"})).writeto(
        tmp_path / "odd.fits")
    with pytest.warns(UnknownUnitWarning, match="odd.fits"):
        odd = Spectrum.read(tmp_path / "odd.fits", format="MILES")
    assert odd.flux.unit == u.dimensionless_unscaled
    folder = tmp_path / "odd"
    folder.mkdir()
    for k in (1, 2):
        (folder / f"MILES_res2.50_star_m000{k}V.fits").write_bytes(
            (tmp_path / "odd.fits").read_bytes())
    with pytest.warns(UnknownUnitWarning, match=r"Relative Flux.*\(and 1 more files\)"):
        spectra, _ = read_miles(folder, params_file="absent.txt")
    assert spectra.flux.unit == u.dimensionless_unscaled
