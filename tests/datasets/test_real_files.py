"""Every real archive file of ../shared/data/real read through specutils, and by ``prepare``."""

import subprocess
import sys

import astropy.units as u
import numpy as np
import pytest
from astropy.io import fits
from astropy.nddata import InverseVariance
from specutils import Spectrum

from stellarlatent.cli import main
from stellarlatent.datasets import (
    SpectralStore,
    UnknownUnitWarning,
    identify_harps_adp,
    identify_harps_s1d,
    identify_lamost_lrs,
    identify_lamost_mrs,
    read_harps_adp,
    read_lamost_mrs,
)
from stellarlatent.datasets._formats import identify_format

ADP = "harps/ADP.2014-09-16T11:04:45.123.fits"
S1D = "harps/HARPS.2010-09-18T23:42:36.178_s1d_A.fits"
LRS = "lamost/spec-58397-EG014118N254444M01_sp03-031.fits"
MRS = "lamost/med-58408-TD230151N343645T01_sp01-015.fits"
PHOENIX = [f"phoenix/lte0{m}.PHOENIX-ACES-AGSS-COND-2011-HiRes.fits"
           for m in ("5800-4.50-0.0", "6000-4.00-0.0", "6000-4.00-2.0")]
WAVE = "phoenix/WAVE_PHOENIX-ACES-AGSS-COND-2011.fits"

# file, format, pixels, first and last wavelength [A], medium, uncertainty source
CASES = [
    (ADP, "HARPS-ADP", 313124, 3781.43, 6912.66, "air", "SNR"),
    (S1D, "HARPS-s1d", 313114, 3781.19, 6912.32, "air", "SNR"),
    (LRS, "LAMOST-LRS", 3909, 3699.986, 9099.135, "vacuum", "IVAR"),
    (MRS, "LAMOST-MRS", 4101 + 2 + 3692, 4893.953, 6850.623, "vacuum", "IVAR"),
    *[(p, "PHOENIX", 1569128, None, None, "vacuum", None) for p in PHOENIX],
]


def _read(path, **kwargs):
    if path.name.endswith("_s1d_A.fits"):
        # its BUNIT is 'Relative Flux', which astropy cannot parse
        with pytest.warns(UnknownUnitWarning, match=path.name):
            return Spectrum.read(path, **kwargs)
    return Spectrum.read(path, **kwargs)


def test_every_file_is_listed(real_dir):
    on_disk = {str(p.relative_to(real_dir)) for p in real_dir.glob("*/*.fits")}
    assert on_disk == {case[0] for case in CASES} | {WAVE}


@pytest.mark.parametrize("name, fmt, n, first, last, medium, source", CASES,
                         ids=[case[0].split("/")[-1][:24] for case in CASES])
def test_real_file_reads_without_a_format(real_dir, name, fmt, n, first, last, medium, source):
    path = real_dir / name
    assert identify_format(path) == fmt
    spectrum = _read(path)
    assert spectrum.flux.shape == (n,)
    wave = spectrum.spectral_axis.to_value(u.AA)
    assert np.all(np.diff(wave) > 0)
    if first is not None:
        assert wave[0] == pytest.approx(first, abs=1e-3)
        assert wave[-1] == pytest.approx(last, abs=1e-3)
    assert spectrum.meta["wavelength_medium"] == medium
    if fmt == "PHOENIX":  # computed spectra, far sharper than any spectrograph
        assert spectrum.meta["resolution"] == 500_000
    assert spectrum.meta.get("uncertainty_source") == source
    flux = spectrum.flux.value
    good = np.isfinite(flux) & ~spectrum.mask
    assert good.mean() > 0.98
    if source is None:
        assert spectrum.uncertainty is None
    else:
        assert isinstance(spectrum.uncertainty, InverseVariance)
        ivar = spectrum.uncertainty.array
        assert np.all(ivar[good] > 0) and np.all(np.isfinite(ivar))
    # the same with the format named
    named = _read(path, format=fmt)
    assert np.array_equal(named.flux.value, flux, equal_nan=True)


def test_harps_adp_without_err_gets_its_uncertainty_from_snr(real_dir):
    path = real_dir / ADP
    with fits.open(path) as hdul:
        assert np.isnan(hdul[1].data["ERR"][0]).all()  # the archive's "not available"
    spectrum = read_harps_adp(path)
    # only the gap between the CCDs, where the DRS wrote zeros, is masked
    gap = spectrum.spectral_axis[spectrum.mask].to_value(u.AA)
    assert int(spectrum.mask.sum()) == 3295 and 5300 < gap.min() and gap.max() < 5340
    assert spectrum.flux.unit == u.adu
    meta = spectrum.meta
    assert meta["object"] == "IC4651No9122" and meta["snr"] == 23.35
    assert meta["berv"].to_value(u.km / u.s) == pytest.approx(-8.6859110031507)
    level = np.median(np.abs(spectrum.flux.value[~spectrum.mask]))
    ivar = spectrum.uncertainty.array
    assert ivar[~spectrum.mask] == pytest.approx((23.35 / level) ** 2)
    assert not ivar[spectrum.mask].any()
    bare = read_harps_adp(path, missing_err="none")
    assert bare.uncertainty is None and int(bare.mask.sum()) == 3295
    assert bare.meta["uncertainty_source"] is None


def test_harps_s1d_values(real_dir):
    path = real_dir / S1D
    with pytest.warns(UnknownUnitWarning, match=r"'Relative Flux'.*dimensionless"):
        spectrum = Spectrum.read(path, format="HARPS-s1d")
    assert spectrum.flux.unit == u.dimensionless_unscaled
    assert np.diff(spectrum.spectral_axis.to_value(u.AA)) == pytest.approx(0.01)
    assert spectrum.meta["object"] == "Gl581"
    assert spectrum.meta["berv"].to_value(u.km / u.s) == pytest.approx(-23.5438771778635)
    assert spectrum.meta["snr"] == pytest.approx(40.9)  # DRS S/N of order 50
    gap = spectrum.spectral_axis[spectrum.mask].to_value(u.AA)
    assert int(spectrum.mask.sum()) == 3295 and 5300 < gap.min() and gap.max() < 5340


def test_a_harps_file_read_as_miles_says_what_its_header_is(real_dir, caplog):
    from stellarlatent.datasets import UnknownUnitWarning

    # its BUNIT, 'Relative Flux', is told too
    with caplog.at_level("WARNING", logger="stellarlatent"), \
            pytest.warns(UnknownUnitWarning, match="Relative Flux"):
        Spectrum.read(real_dir / S1D, format="MILES")
    assert f"{(real_dir / S1D).name}: read as a MILES spectrum, but its header is that of a " \
           "HARPS file" in caplog.text


def test_lamost_values(real_dir):
    lrs = Spectrum.read(real_dir / LRS)
    assert lrs.meta["class"] == "STAR" and lrs.meta["subclass"] == "G3"
    assert lrs.meta["snr"] == pytest.approx(153.72)
    assert int(lrs.mask.sum()) == 48  # the pixels of zero inverse variance
    assert abs(lrs.meta["rv"].to_value(u.km / u.s)) < 5
    both = read_lamost_mrs(real_dir / MRS)
    blue = read_lamost_mrs(real_dir / MRS, arm="blue")
    red = Spectrum.read(real_dir / MRS, format="LAMOST-MRS", arm="R")
    assert (blue.flux.shape, red.flux.shape) == ((4101,), (3692,))
    assert (blue.meta["snr"], red.meta["snr"]) == (120.75, 280.75)
    assert (both.meta["snr_blue"], both.meta["snr_red"]) == (120.75, 280.75)
    assert np.array_equal(both.flux.value[:4101], blue.flux.value)
    assert np.array_equal(both.flux.value[-3692:], red.flux.value)
    assert both.mask[4101:4103].all()  # the gap between the arms
    assert blue.spectral_axis[-1] < both.spectral_axis[4101] < both.spectral_axis[4102] \
        < red.spectral_axis[0]
    exposure = read_lamost_mrs(real_dir / MRS, arm="B-84107311")
    assert exposure.flux.shape == (4136,) and exposure.meta["snr"] == 41.38
    with pytest.raises(ValueError, match=rf"{MRS.split('/')[-1]}: no table 'green'"):
        read_lamost_mrs(real_dir / MRS, arm="green")


def test_a_lamost_file_whose_ivar_holds_nothing_has_no_uncertainty(real_dir, tmp_path):
    """IVAR all zero (or NaN) means no uncertainty, as an all-NaN ERR of a HARPS ADP file."""
    from astropy.io import fits

    original = Spectrum.read(real_dir / LRS)
    for value in (0.0, np.nan):
        with fits.open(real_dir / LRS) as hdulist:
            hdulist[0].data[1] = value  # the IVAR row of the primary image
            hdulist.writeto(tmp_path / "spec-copy.fits", overwrite=True)
        lrs = Spectrum.read(tmp_path / "spec-copy.fits")
        assert lrs.uncertainty is None and lrs.meta["uncertainty_source"] is None
        assert int(lrs.mask.sum()) < 48  # only the pixels flagged or without flux
        np.testing.assert_array_equal(lrs.flux, original.flux)
    # without flux as well, it is a dead spectrum: masked whole (and so skipped by the commands)
    with fits.open(real_dir / LRS) as hdulist:
        hdulist[0].data[0:2] = 0.0
        hdulist.writeto(tmp_path / "spec-dead.fits", overwrite=True)
    assert Spectrum.read(tmp_path / "spec-dead.fits").mask.all()


def test_phoenix_wavelength_file_is_refused_by_name(real_dir):
    assert identify_format(real_dir / WAVE) == "PHOENIX-wave"
    with pytest.raises(ValueError, match="PHOENIX wavelength file.*not a spectrum"):
        Spectrum.read(real_dir / WAVE)
    model = Spectrum.read(real_dir / PHOENIX[2])
    assert model.meta["teff"] == 6000 * u.K and model.meta["feh"] == -2.0 * u.dex


@pytest.mark.parametrize("identifier", [identify_harps_adp, identify_harps_s1d,
                                        identify_lamost_lrs, identify_lamost_mrs])
def test_identifiers_never_raise(tmp_path, identifier):
    garbage = tmp_path / "garbage.fits"
    garbage.write_bytes(b"not a FITS file")
    assert identifier("read", str(garbage)) is False
    assert identifier("read", str(tmp_path)) is False
    assert identifier("read", str(tmp_path / "missing.fits")) is False
    assert identifier("write", str(garbage)) is False


def test_prepare_reads_the_archive_files_without_skipping(real_dir, tmp_path, capsys):
    files = [str(real_dir / name) for name in (ADP, S1D, LRS, MRS)]
    out = tmp_path / "x.h5"
    assert main(["prepare", *files, "--grid", "3700", "7300", "2048", "--out", str(out),
                 "--quiet"]) == 0
    assert "0 skipped" in capsys.readouterr().out
    with SpectralStore(out) as store:
        assert len(store) == 4 and store.n_pixels == 2048
        names = list(store.read_labels()["filename"])
        # air (HARPS) and vacuum (LAMOST) together: no medium is recorded
        assert "wavelength_medium" not in store.meta
    assert names == [name.split("/")[-1] for name in (ADP, S1D, LRS, MRS)]


def test_prepare_records_the_medium_of_the_files(real_dir, tmp_path):
    out = tmp_path / "lamost.h5"
    assert main(["prepare", str(real_dir / "lamost"), "--grid", "4000", "7000", "512",
                 "--out", str(out), "--quiet"]) == 0
    with SpectralStore(out) as store:
        assert len(store) == 2 and store.meta["wavelength_medium"] == "vacuum"


# -- small synthetic files ------------------------------------------------------------


@pytest.mark.parametrize("bad", [np.nan, 0.0], ids=["nan", "zero"])
def test_adp_without_err_is_not_masked(make_adp, bad):
    path, wave, flux = make_adp(err=np.full(300, bad), snr=25.0)
    spectrum = Spectrum.read(path)
    assert not spectrum.mask.any()
    assert spectrum.meta["uncertainty_source"] == "SNR"
    sigma = np.median(flux) / 25.0
    assert spectrum.uncertainty.array == pytest.approx(1 / sigma**2, rel=1e-5)
    assert Spectrum.read(path, missing_err="none").uncertainty is None


def test_adp_without_err_nor_snr_has_no_uncertainty(make_adp):
    path, _, _ = make_adp(err=np.full(300, np.nan), snr=None)
    spectrum = read_harps_adp(path)
    assert spectrum.uncertainty is None and not spectrum.mask.any()
    with pytest.raises(ValueError, match="missing_err must be one of"):
        read_harps_adp(path, missing_err="zero")


def test_prepare_keeps_an_adp_file_without_err(make_adp, tmp_path, capsys):
    path, _, _ = make_adp(err=np.full(300, np.nan))
    out = tmp_path / "adp.h5"
    assert main(["prepare", str(path), "--grid", "5000.5", "5002.5", "64", "--out", str(out),
                 "--quiet"]) == 0
    assert "1 spectra" in capsys.readouterr().out
    with SpectralStore(out) as store:
        assert store.meta["wavelength_medium"] == "air"


def test_unparseable_units_warn_and_read_as_dimensionless(make_adp, make_s1d, make_lrs):
    s1d, flux = make_s1d(bunit="Relative Flux")
    with pytest.warns(UnknownUnitWarning, match=rf"{s1d.name}.*'Relative Flux'"):
        spectrum = Spectrum.read(s1d)
    assert spectrum.flux.unit == u.one
    assert np.allclose(spectrum.flux.value, flux)
    adp, _, _ = make_adp(flux_unit="furlongs per fortnight")
    with pytest.warns(UnknownUnitWarning, match=adp.name):
        assert Spectrum.read(adp).flux.unit == u.one
    lrs = make_lrs(bunit="10**-17 bananas")
    with pytest.warns(UnknownUnitWarning, match=lrs.name):
        assert Spectrum.read(lrs).flux.unit == u.one
    parsed, _ = make_s1d("b_s1d_A.fits", bunit="erg/(s cm2 Angstrom)")
    assert Spectrum.read(parsed).flux.unit == u.erg / (u.s * u.cm**2 * u.AA)


def test_espresso_adp_prefers_air_wavelengths(tmp_path):
    n = 50
    header = fits.Header({"INSTRUME": "ESPRESSO", "SNR": 30.0})
    table = fits.BinTableHDU.from_columns([
        fits.Column("WAVE", f"{n}D", unit="Angstrom", array=[6000.0 + 0.01 * np.arange(n)]),
        fits.Column("WAVE_AIR", f"{n}D", unit="Angstrom", array=[5998.3 + 0.01 * np.arange(n)]),
        fits.Column("FLUX", f"{n}E", array=[np.ones(n)]),
        fits.Column("ERR", f"{n}E", array=[np.full(n, 0.1)]),
        fits.Column("QUAL", f"{n}J", array=[np.r_[1, np.zeros(n - 1)]]),
    ])
    path = tmp_path / "ADP.espresso.fits"
    fits.HDUList([fits.PrimaryHDU(header=header), table]).writeto(path)
    spectrum = Spectrum.read(path)
    assert spectrum.meta["wavelength_medium"] == "air"
    assert spectrum.spectral_axis[0].to_value(u.AA) == pytest.approx(5998.3)
    assert spectrum.mask.tolist() == [True] + [False] * (n - 1)


@pytest.mark.parametrize("module", ["stellarlatent.pretrained", "stellarlatent.preprocessing"])
def test_the_readers_are_registered_by_the_modules_that_use_real_files(real_dir, module):
    """A user who imports only what labels or prepares spectra can read the archive files."""
    files = [next((real_dir / "harps").glob("ADP*.fits")),
             next((real_dir / "lamost").glob("med-*.fits"))]
    code = (f"import {module}\nfrom specutils import Spectrum\n"
            f"for f in {[str(f) for f in files]!r}:\n"
            "    print(Spectrum.read(f).meta['wavelength_medium'])")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["air", "vacuum"]
