"""Bad files and arguments given to the readers: clear messages naming the file."""

import logging
import shutil

import numpy as np
import pytest
from astropy.io import fits
from specutils import Spectrum

from stellarlatent.datasets import read_harps_adp, read_miles, read_phoenix

MILES_NAME = "MILES_res2.50_star_m{:04d}V.fits"


def _miles_file(path, miles_id, n_pixels=40, crval1=3540.5, cdelt1=0.9):
    hdu = fits.PrimaryHDU(np.ones(n_pixels))
    hdu.header.update(CRVAL1=crval1, CDELT1=cdelt1, CRPIX1=1)
    hdu.writeto(path / MILES_NAME.format(miles_id))
    return path / MILES_NAME.format(miles_id)


# 3. CDELT1 <= 0


@pytest.mark.parametrize("cdelt1", [0.0, -0.9, "0.9 A"])
def test_miles_step_that_is_not_positive_is_refused_naming_file_and_keyword(tmp_path, cdelt1):
    _miles_file(tmp_path, 1, cdelt1=cdelt1)
    with pytest.raises(ValueError, match=r"m0001V\.fits.*CDELT1"):
        read_miles(tmp_path, params_file="absent.txt")


def test_miles_file_with_bad_step_is_skipped_with_the_reason(tmp_path, caplog):
    for miles_id in (1, 2, 3):
        _miles_file(tmp_path, miles_id, cdelt1=0.0 if miles_id == 1 else 0.9)
    with caplog.at_level(logging.WARNING, logger="stellarlatent"):
        spectra, labels = read_miles(tmp_path, params_file="absent.txt")
    assert labels["miles_id"].tolist() == [2, 3]
    assert "m0001V.fits skipped" in caplog.text and "CDELT1" in caplog.text
    assert np.all(np.diff(spectra.spectral_axis.value) > 0)


def test_miles_axis_reaching_non_positive_wavelengths_is_refused(tmp_path):
    _miles_file(tmp_path, 1, crval1=-10.0)
    with pytest.raises(ValueError, match=r"m0001V\.fits.*CRVAL1"):
        read_miles(tmp_path, params_file="absent.txt")


# 4. ids


@pytest.mark.parametrize("ids", ["abc", 3.5, [1, "x"], {"a": 1}, True, [], [0], b"1"])
def test_miles_ids_are_validated(tmp_path, ids):
    for miles_id in (1, 2, 3):
        _miles_file(tmp_path, miles_id)
    # 3.5 used to read star 3 and True star 1, silently
    with pytest.raises((TypeError, ValueError), match="^ids must be"):
        read_miles(tmp_path, ids=ids, params_file="absent.txt")


def test_miles_ids_accepts_integers_of_any_kind(tmp_path):
    for miles_id in (1, 2, 3):
        _miles_file(tmp_path, miles_id)
    for ids in (2, np.int64(2), [2, 3], np.array([3, 2]), (2.0,)):
        _, labels = read_miles(tmp_path, ids=ids, params_file="absent.txt")
        assert set(labels["miles_id"]) <= {2, 3}


# 5. the majority grid wins


def test_miles_keeps_the_majority_grid_when_the_first_file_differs(tmp_path, caplog):
    _miles_file(tmp_path, 1, cdelt1=1.8)
    for miles_id in range(2, 8):
        _miles_file(tmp_path, miles_id)
    with caplog.at_level(logging.WARNING, logger="stellarlatent"):
        spectra, labels = read_miles(tmp_path, params_file="absent.txt")
    assert labels["miles_id"].tolist() == list(range(2, 8))
    assert spectra.shape == (6, 40)
    np.testing.assert_allclose(np.diff(spectra.spectral_axis.value), 0.9)
    assert "m0001V.fits skipped" in caplog.text
    assert "read 6 of 7" in caplog.text


def test_miles_without_a_majority_grid_is_refused(tmp_path):
    for miles_id in (1, 2):
        _miles_file(tmp_path, miles_id)
    for miles_id in (3, 4):
        _miles_file(tmp_path, miles_id, cdelt1=1.8)
    with pytest.raises(ValueError, match="no wavelength grid is shared by most"):
        read_miles(tmp_path, params_file="absent.txt")
    # choosing files on one grid reads them
    _, labels = read_miles(tmp_path, ids=[3, 4], params_file="absent.txt")
    assert labels["miles_id"].tolist() == [3, 4]


def test_real_miles_folder_with_a_foreign_first_file(tmp_path, miles_dir, caplog):
    names = sorted(p.name for p in miles_dir.glob("MILES_res2.50_star_m*V.fits"))[:8]
    for name in names[1:]:
        (tmp_path / name).symlink_to(miles_dir / name)
    with fits.open(miles_dir / names[0]) as hdul:
        hdul[0].header["CDELT1"] = 0.8
        hdul.writeto(tmp_path / names[0])
    shutil.copy(miles_dir / "paramsMILES_v9.1.txt", tmp_path)
    with caplog.at_level(logging.WARNING, logger="stellarlatent"):
        spectra, labels = read_miles(tmp_path)
    assert len(labels) == 7 and names[0] not in labels["filename"]
    assert f"{names[0]} skipped" in caplog.text


# 8. garbage files name themselves


def _garbage(tmp_path):
    garbage = tmp_path / "garbage.fits"
    garbage.write_bytes(b"this is not a FITS file " * 200)
    empty = tmp_path / "empty.fits"
    empty.write_bytes(b"")
    image = tmp_path / "image.fits"
    fits.PrimaryHDU(np.ones(10)).writeto(image)
    table = tmp_path / "table.fits"
    fits.HDUList(
        [
            fits.PrimaryHDU(),
            fits.BinTableHDU.from_columns([fits.Column("WAVE", "10D", array=[np.zeros(10)])]),
        ]
    ).writeto(table)
    flat = tmp_path / "flat.fits"
    fits.HDUList(
        [
            fits.PrimaryHDU(),
            fits.BinTableHDU.from_columns(
                [
                    fits.Column("WAVE", "10D", array=[np.zeros(10)]),
                    fits.Column("FLUX", "10D", array=[np.ones(10)]),
                ]
            ),
        ]
    ).writeto(flat)
    return [garbage, empty, image, table, flat]


def test_harps_loader_errors_name_the_file_and_the_format(tmp_path):
    for path in _garbage(tmp_path):
        with pytest.raises((OSError, ValueError), match=rf"{path.name}.*HARPS") as info:
            Spectrum.read(path, format="HARPS-ADP")
        assert "file_obj" not in str(info.value)
        with pytest.raises((OSError, ValueError), match=path.name):
            read_harps_adp(str(path))


def test_phoenix_errors_name_the_file(tmp_path):
    wave = tmp_path / "WAVE_PHOENIX-ACES-AGSS-COND-2011.fits"
    fits.PrimaryHDU(np.linspace(5000.0, 5010.0, 11)).writeto(wave)
    model = tmp_path / "lte05800-4.50-0.0.PHOENIX-ACES-AGSS-COND-2011-HiRes.fits"
    fits.PrimaryHDU(np.ones(11, np.float32)).writeto(model)
    for path in _garbage(tmp_path)[:2]:
        with pytest.raises(OSError, match=rf"flux_file: .*{path.name}.*PHOENIX"):
            read_phoenix(path, wave)
        with pytest.raises(OSError, match=rf"wave_file: .*{path.name}.*PHOENIX"):
            read_phoenix(model, path)
    short = tmp_path / "short.fits"
    fits.PrimaryHDU(np.linspace(5000.0, 5010.0, 5)).writeto(short)
    mismatch = rf"{model.name} has 11 pixels but wave_file .*{short.name} has 5"
    with pytest.raises(ValueError, match=mismatch):
        read_phoenix(model, short)
    backwards = tmp_path / "backwards.fits"
    fits.PrimaryHDU(np.r_[5000.0, 4990.0, 5000.0]).writeto(backwards)
    with pytest.raises(ValueError, match=rf"wave_file: .*{backwards.name}.*monotonic"):
        read_phoenix(model, backwards)
