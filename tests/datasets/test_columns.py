"""Spectra kept as columns of a table: the "columns" format."""

import astropy.units as u
import numpy as np
import pytest
from astropy.nddata import InverseVariance, StdDevUncertainty
from astropy.table import QTable, Table
from specutils import Spectrum

from stellarlatent.datasets import read_columns

WAVE = np.linspace(5000.0, 5100.0, 201)
FLUX = 1.0 - 0.5 * np.exp(-0.5 * ((WAVE - 5050.0) / 0.8) ** 2)


def test_plain_columns_without_a_header_are_wavelength_and_flux(tmp_path):
    path = tmp_path / "star.dat"
    np.savetxt(path, np.column_stack([WAVE, FLUX]))
    spectrum = read_columns(path)
    np.testing.assert_allclose(spectrum.spectral_axis.to_value(u.AA), WAVE)
    np.testing.assert_allclose(spectrum.flux.value, FLUX)
    assert spectrum.flux.unit == u.one and spectrum.uncertainty is None
    # and through specutils, by asking for the format
    assert np.array_equal(Spectrum.read(path, format="columns").flux.value, spectrum.flux.value)


def test_columns_are_found_by_their_names_and_units(tmp_path):
    table = QTable({"order": np.ones(WAVE.size, int), "LAMBDA": WAVE * u.AA,
                    "FLUX_NORM": FLUX, "sigma": np.full(WAVE.size, 0.01)})
    table.write(tmp_path / "odd.fits")
    spectrum = read_columns(tmp_path / "odd.fits")
    assert spectrum.meta["columns"] == {"wavelength": "LAMBDA", "flux": "FLUX_NORM",
                                        "error": "sigma"}
    assert isinstance(spectrum.uncertainty, StdDevUncertainty)
    in_microns = QTable({"wavelength": (WAVE * u.AA).to(u.um), "flux": FLUX * u.mJy,
                         "ivar": np.full(WAVE.size, 1e4) / u.mJy**2})
    in_microns.write(tmp_path / "um.ecsv")
    spectrum = read_columns(tmp_path / "um.ecsv")
    assert spectrum.spectral_axis.unit == u.um and spectrum.flux.unit == u.mJy
    assert isinstance(spectrum.uncertainty, InverseVariance)
    # a log-wavelength column, in reverse order
    Table({"loglam": np.log10(WAVE)[::-1], "flux": FLUX[::-1]}).write(tmp_path / "log.csv")
    spectrum = read_columns(tmp_path / "log.csv")
    np.testing.assert_allclose(spectrum.spectral_axis.to_value(u.AA), WAVE, rtol=1e-10)
    np.testing.assert_allclose(spectrum.flux.value, FLUX)


@pytest.mark.parametrize("name", ["star.fits", "star.FTS", "star.fit.gz", "star.fits.bz2",
                                  "star.FTS.BZ2"])
def test_every_ending_a_folder_gives_as_fits_is_read_as_a_fits_table(tmp_path, name):
    """One list of FITS endings: the files the commands take from a folder are FITS here."""
    import bz2
    import gzip

    from stellarlatent._commands.inputs import _fits_files

    Table({"wave": WAVE, "flux": FLUX}).write(tmp_path / "plain.fits")
    data = (tmp_path / "plain.fits").read_bytes()
    pack = {".gz": gzip.compress, ".bz2": bz2.compress}.get(name[name.rindex("."):].lower())
    (tmp_path / "plain.fits").unlink()
    (tmp_path / name).write_bytes(pack(data) if pack else data)
    assert _fits_files(tmp_path) == [tmp_path / name]
    np.testing.assert_allclose(read_columns(tmp_path / name).flux.value, FLUX)


def test_what_cannot_be_a_spectrum_is_refused_with_the_reason(tmp_path):
    (tmp_path / "one.txt").write_text("5000\n5001\n5002\n")
    with pytest.raises(ValueError, match="needs a wavelength and a flux column"):
        read_columns(tmp_path / "one.txt")
    np.savetxt(tmp_path / "micron.txt", np.column_stack([WAVE / 1e4, FLUX]))
    with pytest.raises(ValueError, match="without a unit"):
        read_columns(tmp_path / "micron.txt")
    assert read_columns(tmp_path / "micron.txt", wavelength_unit="um").spectral_axis.unit == u.um
    np.savetxt(tmp_path / "star.txt", np.column_stack([WAVE, FLUX]))
    with pytest.raises(ValueError, match="flux='f': no numeric column of that name"):
        read_columns(tmp_path / "star.txt", flux="f")


def test_by_name_a_table_of_other_numbers_is_refused_and_a_frequency_is_in_hz(tmp_path):
    Table({"teff": [5000.0, 6000.0], "logg": [4.0, 3.0]}).write(tmp_path / "labels.fits")
    with pytest.raises(ValueError, match="no wavelength and flux columns by their names"):
        read_columns(tmp_path / "labels.fits", by_name=True)
    assert read_columns(tmp_path / "labels.fits").meta["columns"]["wavelength"] == "teff"
    np.savetxt(tmp_path / "bare.txt", np.column_stack([WAVE, FLUX]))
    assert read_columns(tmp_path / "bare.txt", by_name=True).flux.shape == FLUX.shape
    frequency = (WAVE * u.AA).to_value(u.Hz, equivalencies=u.spectral())[::-1]
    Table({"nu": frequency, "flux": FLUX[::-1]}).write(tmp_path / "nu.csv")
    assert read_columns(tmp_path / "nu.csv").spectral_axis.unit == u.Hz


def test_the_command_reads_a_text_spectrum_that_nothing_else_reads(tmp_path, miles_dir):
    from stellarlatent.cli import main

    miles = Spectrum.read(miles_dir / "MILES_res2.50_star_m0001V.fits", format="MILES")
    wave = miles.spectral_axis.to_value(u.AA)
    np.savetxt(tmp_path / "m0001.txt", np.column_stack([wave, miles.flux.value.ravel()]),
               header="wavelength flux")
    out = tmp_path / "labels.ecsv"
    assert main(["predict", "miles", str(tmp_path / "m0001.txt"),
                 str(miles_dir / "MILES_res2.50_star_m0001V.fits"), "--out", str(out),
                 "--quiet", "--device", "cpu"]) == 0
    table = QTable.read(out)
    assert table["filename"].tolist() == ["m0001.txt", "MILES_res2.50_star_m0001V.fits"]
    # the same star, told apart only by what the text file does not say (its medium)
    assert abs(table["teff"][0] - table["teff"][1]) < 30 * u.K
    # a label table beside the spectra is not read as a star
    Table({"teff": [5000.0, 6000.0], "logg": [4.0, 3.0]}).write(tmp_path / "labels.fits")
    assert main(["predict", "miles", str(tmp_path / "labels.fits"), str(tmp_path / "m0001.txt"),
                 "--out", str(out), "--overwrite", "--quiet", "--device", "cpu"]) == 0
    assert QTable.read(out)["filename"].tolist() == ["m0001.txt"]
