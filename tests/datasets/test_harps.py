"""HARPS 1-D archive (ADP) files: the specutils loader and the folder reader."""

import logging

import astropy.units as u
import numpy as np
import pytest
from astropy.io import fits
from astropy.nddata import InverseVariance
from specutils import Spectrum, SpectrumList

from stellarlatent.datasets import identify_harps_adp, read_harps, read_harps_adp


def write_adp(path, *, start=5000.0, n=200, step=0.01, flux=None, err=None, obj="HD 10700",
              mjd=55000.25, snr=150.0, berv=-3.25, flux_unit="adu"):
    """Write a file in the ESO Phase 3 layout of HARPS 1-D spectra."""
    wave = start + step * np.arange(n)
    flux = np.linspace(100.0, 200.0, n) if flux is None else flux
    err = np.full(n, 5.0) if err is None else err
    header = fits.Header()
    header["ORIGIN"] = "ESO"
    header["INSTRUME"] = "HARPS"
    header["OBJECT"] = obj
    header["DATE-OBS"] = "2009-06-18T06:00:00.000"
    header["MJD-OBS"] = mjd
    header["SNR"] = snr
    header["SPEC_RES"] = 115000.0
    header["HIERARCH ESO DRS BERV"] = berv
    table = fits.BinTableHDU.from_columns(
        [
            fits.Column("WAVE", f"{n}D", unit="angstrom", array=[wave]),
            fits.Column("FLUX", f"{n}E", unit=flux_unit, array=[flux]),
            fits.Column("ERR", f"{n}E", unit=flux_unit, array=[err]),
        ]
    )
    table.header["EXTNAME"] = "SPECTRUM"
    fits.HDUList([fits.PrimaryHDU(header=header), table]).writeto(path)
    return wave, flux, err


def test_loader_reads_values_and_meta(tmp_path):
    path = tmp_path / "ADP.2009-06-18T06:00:00.000.fits"
    wave, flux, err = write_adp(path)
    spectrum = Spectrum.read(path, format="HARPS-ADP")
    assert np.allclose(spectrum.spectral_axis.to_value(u.AA), wave)
    assert np.allclose(spectrum.flux.value, flux, rtol=1e-6)
    assert spectrum.flux.unit == u.adu
    assert isinstance(spectrum.uncertainty, InverseVariance)
    assert np.allclose(spectrum.uncertainty.array, 1 / err**2)
    assert not spectrum.mask.any()
    meta = spectrum.meta
    assert meta["object"] == "HD 10700"
    assert meta["mjd"] == 55000.25
    assert meta["snr"] == 150.0
    assert meta["resolution"] == 115000.0
    assert meta["berv"] == -3.25 * u.km / u.s
    assert meta["filename"] == path.name


def test_loader_is_found_without_format(tmp_path):
    path = tmp_path / "a.fits"
    write_adp(path)
    assert identify_harps_adp("read", str(path))
    spectrum = Spectrum.read(path)  # HARPS-ADP outranks the generic tabular-fits loader
    assert "berv" in spectrum.meta
    assert len(SpectrumList.read(path, format="HARPS-ADP")) == 1


def test_identifier_rejects_other_files(tmp_path):
    image = tmp_path / "image.fits"
    fits.PrimaryHDU(np.ones(10)).writeto(image)
    table = tmp_path / "table.fits"
    fits.HDUList(
        [fits.PrimaryHDU(), fits.BinTableHDU.from_columns(
            [fits.Column("WAVE", "D", array=np.arange(3.0)),
             fits.Column("FLUX", "D", array=np.ones(3))])]
    ).writeto(table)
    assert not identify_harps_adp("read", str(image))
    assert not identify_harps_adp("read", str(table))
    assert not identify_harps_adp("write", str(table))


def test_bad_err_pixels_are_masked(tmp_path):
    path = tmp_path / "a.fits"
    err = np.full(200, 5.0)
    err[[3, 4]] = 0.0
    err[7] = np.nan
    flux = np.ones(200)
    flux[10] = np.inf
    write_adp(path, err=err, flux=flux)
    spectrum = read_harps_adp(str(path))
    assert np.flatnonzero(spectrum.mask).tolist() == [3, 4, 7, 10]
    assert np.all(spectrum.uncertainty.array[[3, 4, 7]] == 0)


def test_folder_on_one_grid_is_stacked(tmp_path):
    for k in range(3):
        write_adp(tmp_path / f"ADP.{k}.fits", obj=f"star{k}", mjd=55000.0 + k, berv=float(k))
    spectra, table = read_harps(tmp_path)
    assert spectra.flux.shape == (3, 200)
    assert spectra.spectral_axis_index == 1
    assert isinstance(spectra.uncertainty, InverseVariance)
    assert table["object"].tolist() == ["star0", "star1", "star2"]
    assert table["filename"].tolist() == ["ADP.0.fits", "ADP.1.fits", "ADP.2.fits"]
    assert np.allclose(table["berv"].to_value(u.km / u.s), [0, 1, 2])
    assert np.allclose(table["mjd"], [55000, 55001, 55002])


def test_folder_on_different_grids_is_resampled(tmp_path):
    write_adp(tmp_path / "a.fits", start=5000.0)
    write_adp(tmp_path / "b.fits", start=5000.37)
    spectra, table = read_harps(tmp_path)
    assert spectra.flux.shape[0] == 2
    wave = spectra.spectral_axis.to_value(u.AA)
    assert wave[0] >= 5000.37 - 0.01 and wave[-1] <= 5000 + 0.01 * 199 + 0.01
    grid = np.linspace(5000.5, 5001.5, 50) * u.AA
    spectra, _ = read_harps(tmp_path, grid=grid)
    assert spectra.flux.shape == (2, 50)
    assert np.allclose(spectra.spectral_axis.to_value(u.AA), grid.value)
    # the input flux is linear in wavelength, so any resampling keeps it on that line
    expected = 100 + 100 * (grid.value - 5000.0) / (0.01 * 199)
    assert np.allclose(spectra.flux.value[0], expected, rtol=1e-4)
    listed, _ = read_harps(tmp_path, stack=False)
    assert [s.flux.shape for s in listed] == [(200,), (200,)]


def test_bad_files_are_skipped_and_counted(tmp_path, caplog):
    write_adp(tmp_path / "a.fits")
    (tmp_path / "b.fits").write_bytes(b"garbage")
    fits.PrimaryHDU(np.ones(5)).writeto(tmp_path / "c.fits")
    with caplog.at_level(logging.WARNING, logger="stellarlatent"):
        spectra, table = read_harps(tmp_path)
    assert table["filename"].tolist() == ["a.fits"]
    assert "b.fits skipped" in caplog.text and "c.fits skipped" in caplog.text
    assert "2 skipped" in caplog.text


def test_errors(tmp_path):
    with pytest.raises(FileNotFoundError):
        read_harps(tmp_path / "missing")
    with pytest.raises(FileNotFoundError, match="no files matching"):
        read_harps(tmp_path)
    (tmp_path / "b.fits").write_bytes(b"garbage")
    with pytest.raises(ValueError, match="none of the 1 files"):
        read_harps(tmp_path)
