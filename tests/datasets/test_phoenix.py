"""PHOENIX-ACES HiRes: URL builder (offline), readers on files in the server's layout."""

import logging

import astropy.units as u
import numpy as np
import pytest
from astropy.io import fits

from stellarlatent import conf
from stellarlatent.datasets import (
    PHOENIX_FLUX_UNIT,
    fetch_phoenix,
    phoenix_url,
    phoenix_wave_url,
    read_phoenix,
    read_phoenix_grid,
)

LIB = "PHOENIX-ACES-AGSS-COND-2011"
N_PIX = 60


def write_wave(folder):
    wave = np.linspace(3000.0, 9000.0, N_PIX)
    hdu = fits.PrimaryHDU(wave)
    hdu.header["UNIT"] = "Angstrom"
    path = folder / f"WAVE_{LIB}.fits"
    hdu.writeto(path)
    return path, wave


def write_model(folder, teff, logg, feh, alpha=0.0, header=True):
    z = "-0.0" if feh == 0 else f"{feh:+.1f}"
    sub = f"Z{z}" + (f".Alpha={alpha:+.2f}" if alpha else "")
    name = f"lte{teff:05d}-{logg:.2f}{z}" + (f".Alpha={alpha:+.2f}" if alpha else "")
    path = folder / sub / f"{name}.{LIB}-HiRes.fits"
    path.parent.mkdir(parents=True, exist_ok=True)
    flux = (teff * 1e10 + np.arange(N_PIX)).astype(np.float32)
    hdu = fits.PrimaryHDU(flux)
    if header:
        hdu.header.update(PHXTEFF=float(teff), PHXLOGG=logg, PHXM_H=feh, PHXALPHA=alpha)
        hdu.header["BUNIT"] = "erg/s/cm^2/cm"
    hdu.writeto(path)
    return path, flux


def test_url_layout():
    base = conf.phoenix_url.rstrip("/") + "/"
    assert phoenix_url(5800, 4.5, 0.0) == (
        f"{base}{LIB}/Z-0.0/lte05800-4.50-0.0.{LIB}-HiRes.fits"
    )
    assert phoenix_url(3000 * u.K, 0.0 * u.dex, 0.5).endswith(
        f"{LIB}/Z+0.5/lte03000-0.00+0.5.{LIB}-HiRes.fits"
    )
    assert phoenix_url(7200, 6.0, -1.0).endswith(f"Z-1.0/lte07200-6.00-1.0.{LIB}-HiRes.fits")
    assert phoenix_url(5800, 4.5, 0.0, alpha=0.4).endswith(
        f"Z-0.0.Alpha=+0.40/lte05800-4.50-0.0.Alpha=+0.40.{LIB}-HiRes.fits"
    )
    assert phoenix_url(5000, 2.5, -2.0, alpha=-0.2).endswith(
        f"Z-2.0.Alpha=-0.20/lte05000-2.50-2.0.Alpha=-0.20.{LIB}-HiRes.fits"
    )
    assert phoenix_wave_url() == f"{base}WAVE_{LIB}.fits"


def test_url_follows_configuration():
    with conf.set_temp("phoenix_url", "https://mirror.example/phoenix"):
        assert phoenix_url(5800, 4.5, 0.0).startswith("https://mirror.example/phoenix/PHOENIX")
        assert phoenix_wave_url() == f"https://mirror.example/phoenix/WAVE_{LIB}.fits"


@pytest.mark.parametrize(
    ("args", "match"),
    [
        ((5850, 4.5, 0.0), "teff"),
        ((7100, 4.5, 0.0), "teff"),
        ((2200, 4.5, 0.0), "teff"),
        ((12200, 4.5, 0.0), "teff"),
        ((5800, 4.25, 0.0), "logg"),
        ((5800, 6.5, 0.0), "logg"),
        ((5800, 4.5, -2.5), "feh"),
        ((5800, 4.5, 1.5), "feh"),
        ((5800, 4.5, 0.0, 0.3), "alpha"),
        ((5800, 4.5, 0.5, 0.4), "alpha"),
    ],
)
def test_url_rejects_points_off_the_grid(args, match):
    with pytest.raises(ValueError, match=match):
        phoenix_url(*args)


def test_url_rejects_bad_units():
    with pytest.raises(u.UnitsError, match="teff"):
        phoenix_url(5800 * u.m, 4.5, 0.0)
    with pytest.raises(TypeError, match="logg"):
        phoenix_url(5800, "high", 0.0)


def test_read_phoenix(tmp_path):
    wave_path, wave = write_wave(tmp_path)
    path, flux = write_model(tmp_path, 5800, 4.5, -0.5)
    spectrum = read_phoenix(path, wave_path)
    assert spectrum.flux.unit == PHOENIX_FLUX_UNIT
    assert np.allclose(spectrum.flux.value, flux * 1e-8, rtol=1e-6)
    assert np.allclose(spectrum.spectral_axis.to_value(u.AA), wave)
    assert spectrum.meta["teff"] == 5800 * u.K
    assert spectrum.meta["logg"] == 4.5 * u.dex
    assert spectrum.meta["feh"] == -0.5 * u.dex
    assert spectrum.meta["alpha"] == 0 * u.dex
    assert spectrum.meta["wavelength_medium"] == "vacuum"


def test_read_phoenix_range_and_labels_from_name(tmp_path):
    wave_path, wave = write_wave(tmp_path)
    path, flux = write_model(tmp_path, 4000, 1.0, -1.0, alpha=0.4, header=False)
    spectrum = read_phoenix(path, wave_path, wavelength_range=[500, 600] * u.nm)
    inside = (wave >= 5000) & (wave <= 6000)
    assert np.allclose(spectrum.spectral_axis.to_value(u.AA), wave[inside])
    assert np.allclose(spectrum.flux.value, flux[inside] * 1e-8, rtol=1e-6)
    assert spectrum.meta["teff"] == 4000 * u.K
    assert spectrum.meta["feh"] == -1.0 * u.dex
    assert spectrum.meta["alpha"] == 0.4 * u.dex


def test_read_phoenix_errors(tmp_path):
    wave_path, _ = write_wave(tmp_path)
    path, _ = write_model(tmp_path, 5800, 4.5, 0.0)
    with pytest.raises(ValueError, match="wavelength_range"):
        read_phoenix(path, wave_path, wavelength_range=[1, 2] * u.AA)
    with pytest.raises(ValueError, match="wavelength_range"):
        read_phoenix(path, wave_path, wavelength_range=[1, 2])
    short = tmp_path / "short.fits"
    fits.PrimaryHDU(np.linspace(3000, 4000, 10)).writeto(short)
    with pytest.raises(ValueError, match="pixels"):
        read_phoenix(path, short)


def test_read_phoenix_grid(tmp_path, caplog):
    root = tmp_path / "HiResFITS"
    (root / LIB).mkdir(parents=True)
    write_wave(root)
    points = [(6000, 4.5, 0.0), (5800, 4.5, 0.0), (5800, 4.0, -1.0)]
    for point in points:
        write_model(root / LIB, *point)
    (root / LIB / "Z-0.0" / f"lte09900-4.50-0.0.{LIB}-HiRes.fits").write_bytes(b"broken")
    with caplog.at_level(logging.WARNING, logger="stellarlatent"):
        spectra, labels = read_phoenix_grid(root / LIB, wavelength_range=[4000, 8000] * u.AA)
    assert "lte09900" in caplog.text
    assert spectra.flux.shape[0] == 3 == len(labels)
    assert spectra.spectral_axis_index == 1
    assert spectra.spectral_axis.min() >= 4000 * u.AA
    for row in range(3):
        teff = labels["teff"][row].to_value(u.K)
        assert labels["filename"][row].startswith(f"lte{int(teff):05d}")
        # each model's flux encodes its Teff: rows follow labels
        assert spectra.flux.value[row, 0] == pytest.approx(teff * 1e2, rel=1e-4)
    assert sorted(labels["feh"].value.tolist()) == [-1.0, 0.0, 0.0]

    grid = np.linspace(4500, 7500, 20) * u.AA
    resampled, labels2 = read_phoenix_grid(root / LIB, wavelength_range=[4000, 8000] * u.AA,
                                           grid=grid)
    assert resampled.flux.shape == (3, 20)
    assert np.array_equal(labels2["teff"], labels["teff"])


def test_read_phoenix_grid_needs_wave_file(tmp_path):
    write_model(tmp_path, 5800, 4.5, 0.0)
    with pytest.raises(FileNotFoundError, match="wave_file"):
        read_phoenix_grid(tmp_path / "Z-0.0")


@pytest.mark.remote_data
def test_fetch_phoenix():
    spectrum = fetch_phoenix(5800, 4.5, 0.0, wavelength_range=[5000, 5010] * u.AA)
    assert spectrum.meta["teff"] == 5800 * u.K
    assert spectrum.flux.unit == PHOENIX_FLUX_UNIT
    assert np.all(spectrum.flux.value > 0)
