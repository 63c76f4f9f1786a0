"""Fixtures of the reader tests: small synthetic files in the layouts of the real archive files;
and ``store_path``, the small store of the SpectralStore tests.

``real_dir`` (the real files themselves) is in ``tests/conftest.py``.
"""

import numpy as np
import pytest
from astropy.io import fits


@pytest.fixture
def make_adp(tmp_path):
    """``make_adp(name, err=..., snr=..., flux_unit=...)``: an ESO Phase 3 HARPS ADP file."""

    def write(name="ADP.2010-01-01T00:00:00.000.fits", *, n=300, err=None, snr=25.0,
              flux_unit="adu", instrument="HARPS"):
        wave = 5000.0 + 0.01 * np.arange(n)
        flux = 100.0 + 10.0 * np.sin(np.arange(n) / 7.0)
        err = np.full(n, 2.0) if err is None else err
        header = fits.Header({"INSTRUME": instrument, "OBJECT": "HD 1", "MJD-OBS": 55000.0,
                              "HIERARCH ESO DRS BERV": 1.5})
        if snr is not None:
            header["SNR"] = snr
        table = fits.BinTableHDU.from_columns([
            fits.Column("WAVE", f"{n}D", unit="Angstrom", array=[wave]),
            fits.Column("FLUX", f"{n}E", unit=flux_unit, array=[flux]),
            fits.Column("ERR", f"{n}E", unit=flux_unit, array=[err]),
        ], name="SPECTRUM")
        path = tmp_path / name
        fits.HDUList([fits.PrimaryHDU(header=header), table]).writeto(path)
        return path, wave, flux

    return write


@pytest.fixture
def make_s1d(tmp_path):
    """``make_s1d(name, bunit=...)``: a HARPS DRS ``*_s1d_A.fits`` file."""

    def write(name="HARPS.2010-01-01T00:00:00.000_s1d_A.fits", *, n=300, bunit="Relative Flux"):
        header = fits.Header({"INSTRUME": "HARPS", "OBJECT": "Gl 581", "CRVAL1": 5000.0,
                              "CDELT1": 0.01, "CRPIX1": 1.0, "CTYPE1": "Angstrom",
                              "HIERARCH ESO DRS BERV": -2.0,
                              "HIERARCH ESO DRS SPE EXT SN50": 40.0})
        if bunit is not None:
            header["BUNIT"] = bunit
        flux = (1.0 + 0.1 * np.cos(np.arange(n) / 5.0)).astype(np.float32)
        path = tmp_path / name
        fits.PrimaryHDU(flux, header=header).writeto(path)
        return path, flux

    return write


@pytest.fixture
def make_lrs(tmp_path):
    """``make_lrs(name, bunit=...)``: a LAMOST low-resolution ``spec-*.fits`` file."""

    def write(name="spec-58397-EG014118N254444M01_sp03-031.fits", *, n=400, bunit=None):
        wave = 10 ** (3.5682 + 1e-4 * np.arange(n))
        ivar = np.full(n, 4.0)
        ivar[:3] = 0.0
        data = np.array([np.ones(n), ivar, wave, np.zeros(n), np.zeros(n)], dtype=np.float32)
        header = fits.Header({"TELESCOP": "LAMOST", "DATA_V": "LAMOST DR7", "VACUUM": True,
                              "SNRG": 80.0, "CLASS": "STAR", "Z": 1e-4})
        if bunit is not None:
            header["BUNIT"] = bunit
        path = tmp_path / name
        fits.PrimaryHDU(data, header=header).writeto(path)
        return path

    return write


@pytest.fixture
def store_path(tmp_path):
    """A store of five spectra and labels (test_store's ``make_batch`` and ``make_labels``).

    Returns the path and what was written: flux, ivar, mask and labels.
    """
    import astropy.units as u

    from stellarlatent.datasets import SpectralStore

    from .test_store import WAVE, make_batch, make_labels

    path = tmp_path / "store.h5"
    spectra, flux, ivar, mask = make_batch(5)
    labels = make_labels(5)
    with SpectralStore.create(path, WAVE, labels=labels, flux_unit=u.Jy) as store:
        store.append(spectra, labels)
    return path, flux, ivar, mask, labels
