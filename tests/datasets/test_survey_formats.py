"""Survey spectra read by specutils' own loaders get their vacuum wavelengths and resolution."""

import astropy.units as u
import numpy as np
from astropy.io import fits
from astropy.table import QTable

from stellarlatent.cli import main
from stellarlatent.datasets import make_synthetic_spectra


def write_sdss_spec(path, rv=60.0):
    """A minimal SDSS-III/IV ``spec-*.fits`` file (BOSS layout) of a synthetic G star."""
    loglam = np.arange(np.log10(3600.0), np.log10(9000.0), 1e-4)
    spectra, _ = make_synthetic_spectra(
        3, grid=10**loglam * u.AA, teff=5800.0, logg=4.4, feh=0.0, resolution=2000,
        air=False, snr=80, rv=[rv, 0.0, 0.0] * u.km / u.s, random_state=0)
    flux = spectra.flux.value[0] * 50.0  # in 1e-17 erg/s/cm2/A
    primary = fits.PrimaryHDU()
    primary.header.update({"TELESCOP": "SDSS 2.5-M", "VERS2D": "v5_13_2", "FIBERID": 17,
                           "BUNIT": "1E-17 erg/cm^2/s/Ang"})
    columns = fits.ColDefs([
        fits.Column("flux", "E", array=flux.astype(np.float32)),
        fits.Column("loglam", "E", array=loglam.astype(np.float32)),
        fits.Column("ivar", "E", array=np.full(loglam.size, (80.0 / 50.0) ** 2, np.float32)),
        fits.Column("and_mask", "J", array=np.zeros(loglam.size, np.int32)),
    ])
    fits.HDUList([primary, fits.BinTableHDU.from_columns(columns)]).writeto(path)
    return path


def test_an_sdss_spectrum_is_read_as_vacuum_at_r_2000(tmp_path):
    from stellarlatent._commands.inputs import make_reader

    path = write_sdss_spec(tmp_path / "spec-0001-51234-0017.fits")
    spectrum = make_reader("auto")(path)
    assert spectrum.meta["wavelength_medium"] == "vacuum"
    assert spectrum.meta["resolution"] == 2000.0


def test_predict_converts_an_sdss_spectrum_and_removes_its_velocity(tmp_path):
    path = write_sdss_spec(tmp_path / "spec-0001-51234-0017.fits", rv=60.0)
    out = tmp_path / "labels.ecsv"
    assert main(["predict", "miles-normalized", str(path), "--out", str(out), "--quiet",
                 "--device", "cpu"]) == 0
    table = QTable.read(out)
    # vacuum to air is about 80 km/s at these wavelengths: unconverted, it would add to the rv
    assert abs(table["rv"][0].value - 60.0) < 15
    assert table["resolution_status"][0] in ("matched", "coarser")
    assert table["coverage"][0] == 1
