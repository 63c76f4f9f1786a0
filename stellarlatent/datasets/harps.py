"""Readers for HARPS-family 1-D spectra: ESO archive (Phase 3 "ADP") files and DRS ``s1d``.

An ADP file (HARPS, HARPS-N, ESPRESSO) holds the header values in its primary
HDU (``OBJECT``, ``DATE-OBS``, ``MJD-OBS``, ``SNR``, ``SPEC_RES``, the
barycentric correction) and the spectrum in its first extension: a binary
table with one row whose array columns are ``WAVE`` (Angstrom), ``FLUX`` and
``ERR``. A DRS ``*_s1d_A.fits`` file holds the flux as its primary image on the
linear grid of ``CRVAL1``, ``CDELT1`` and ``CRPIX1``.

Importing this module registers the ``"HARPS-ADP"`` and ``"HARPS-s1d"``
formats with specutils, so that ``Spectrum.read(path, format="HARPS-ADP")``
works (and ``Spectrum.read`` without a format recognises these files before
the generic FITS loaders).
"""

import astropy.units as u
import numpy as np
from astropy.io import fits
from astropy.nddata import InverseVariance
from astropy.table import MaskedColumn, QTable
from astropy.utils.masked import Masked
from specutils import Spectrum

from .._batch import from_batch
from ._docs import fill_doc
from ._io import files_from, fits_identifier, parse_unit, stack_spectra
from ._loader import add_file_meta, header_meta, load_fits, register_loader, spectral_axis
from ._reading import read_logged, warn_skipped

__all__ = ["read_harps", "read_harps_adp", "identify_harps_adp", "read_harps_s1d",
           "identify_harps_s1d"]

HARPS_ADP_FORMAT = "HARPS-ADP"
HARPS_S1D_FORMAT = "HARPS-s1d"
#: header keywords of each ``meta`` entry, the first present wins
_META_KEYS = {
    "object": ("OBJECT",),
    "instrument": ("INSTRUME",),
    "date_obs": ("DATE-OBS",),
    "mjd": ("MJD-OBS",),
    "snr": ("SNR",),
    "resolution": ("SPEC_RES",),
    "berv": ("HIERARCH ESO DRS BERV", "HIERARCH TNG DRS BERV", "HIERARCH ESO QC BERV"),
}
#: the keywords that tell a header comes from a HARPS-family pipeline
_BERV_KEYS = _META_KEYS["berv"]
_INSTRUMENTS = ("HARPS", "HARPN", "ESPRESSO")
#: what ``missing_err`` may be
_MISSING_ERR = ("snr", "none")


def _from_harps_family(header):
    instrument = str(header.get("INSTRUME", "")).strip().upper()
    return instrument.startswith(_INSTRUMENTS) or any(key in header for key in _BERV_KEYS)


def _column(table_hdu, name):
    names = {n.upper(): n for n in table_hdu.columns.names}
    return names.get(name)


@fits_identifier
def identify_harps_adp(hdulist, args):
    """Tell whether a file is a HARPS, HARPS-N or ESPRESSO 1-D archive (ADP) spectrum.

    The file must have a binary table in its first extension with a single
    row and array columns ``WAVE`` and ``FLUX``, and a primary header from
    one of these instruments (``INSTRUME`` starting with ``HARPS``,
    ``HARPN`` or ``ESPRESSO``, or a barycentric correction keyword such as
    ``HIERARCH ESO DRS BERV``). Never raises: a file it cannot open is not
    one.
    """
    if len(hdulist) < 2 or not isinstance(hdulist[1], fits.BinTableHDU):
        return False
    table = hdulist[1]
    return (_from_harps_family(hdulist[0].header)
            and table.header.get("NAXIS2") == 1
            and _column(table, "WAVE") is not None
            and _column(table, "FLUX") is not None)


@fits_identifier
def identify_harps_s1d(hdulist, args):
    """Tell whether a file is a HARPS-family DRS 1-D spectrum (``*_s1d_A.fits``).

    The file must have a one-dimensional primary image on a linear grid
    (``CRVAL1`` and ``CDELT1``) and a header from HARPS, HARPS-N or ESPRESSO
    (see `identify_harps_adp`). Never raises.
    """
    header = hdulist[0].header
    return (header.get("NAXIS") == 1
            and header.get("NAXIS1", 0) > 1
            and "CRVAL1" in header
            and ("CDELT1" in header or "CD1_1" in header)
            and _from_harps_family(header))


def _unit(table_hdu, column, default, name, what):
    return parse_unit(table_hdu.columns[column].unit, default, name, what)


def _medium(header, wave_column):
    """``"air"`` or ``"vacuum"``: HARPS and HARPS-N write air wavelengths; ESPRESSO's
    ``WAVE`` is in vacuum and its ``WAVE_AIR`` in air."""
    instrument = str(header.get("INSTRUME", "")).strip().upper()
    if instrument.startswith("ESPRESSO") and wave_column.upper() != "WAVE_AIR":
        return "vacuum"
    return "air"


#: nominal resolving powers, for s1d files whose header has no SPEC_RES
NOMINAL_RESOLUTION = {"HARPS": 115000.0, "HARPN": 115000.0, "HARPS-N": 115000.0,
                      "ESPRESSO": 140000.0}


def _meta(header):
    meta = header_meta(header, _META_KEYS)
    if "berv" in meta:
        meta["berv"] = float(meta["berv"]) * (u.km / u.s)
    for key in ("object", "instrument"):
        if key in meta:
            meta[key] = str(meta[key]).strip()
    return meta


@register_loader(HARPS_ADP_FORMAT, identify_harps_adp)
@fill_doc
def read_harps_adp(file_obj, missing_err="snr", **kwargs):
    """Read one HARPS, HARPS-N or ESPRESSO 1-D archive (ADP) spectrum.

    Registered with specutils as the format ``"HARPS-ADP"``.

    Parameters
    ----------
    file_obj : str, path-like, file-like or `~astropy.io.fits.HDUList`
        The ADP file.
    missing_err : {"snr", "none"}, default="snr"
        What to do when the ``ERR`` column holds no uncertainty at all (every
        value NaN or zero, as in the archive's older HARPS products, whose
        ``ERR`` is "not available, filled with NaN"): ``"snr"`` (default)
        estimates a constant error, the median flux divided by the header's
        ``SNR`` (the archive's median signal-to-noise ratio); ``"none"``, or
        a header without a positive ``SNR``, leaves ``uncertainty`` out.
        Either way no pixel is masked for it.
    %(fits_kwargs_raises)s
    ValueError
        If the file is FITS but not an ADP spectrum (no one-row binary
        table of ``WAVE`` and ``FLUX`` in extension 1, columns of different
        lengths, wavelengths that are not strictly monotonic), or
        ``missing_err`` is not one of its values; the message names the file
        and what was expected.

    Warns
    -----
    UnknownUnitWarning
        If the ``FLUX`` column's unit is not one astropy can parse; the flux
        is then read as dimensionless.

    Returns
    -------
    `~specutils.Spectrum`
        1-D flux (unit from the ``FLUX`` column, dimensionless when it has
        none) on the wavelengths of the ``WAVE`` column (``WAVE_AIR`` when an
        ESPRESSO file has one), as stored (barycentric). ``uncertainty`` is
        the `~astropy.nddata.InverseVariance` from ``ERR``; pixels whose
        ``ERR`` is zero or not finite, whose flux is not finite or exactly
        zero (the DRS's fill, as in the gap between the CCDs), or whose
        ``QUAL`` (ESPRESSO) is not zero, are masked. ``meta`` holds
        ``object``, ``instrument``, ``date_obs``, ``mjd``, ``snr``,
        ``resolution``, ``berv`` (a Quantity in km/s), ``wavelength_medium``
        (``"air"`` for HARPS and HARPS-N and ESPRESSO's ``WAVE_AIR``,
        ``"vacuum"`` for ESPRESSO's ``WAVE``), ``uncertainty_source``
        (``"ERR"``, ``"SNR"`` or ``None``), ``filename`` and the primary
        ``header``.

    Examples
    --------
    %(fits_example_imports)s
    >>> from specutils import Spectrum
    >>> import stellarlatent.datasets  # registers "HARPS-ADP"
    >>> wave = np.linspace(5000.0, 5001.0, 101)
    >>> header = fits.Header({"INSTRUME": "HARPS", "OBJECT": "HD 10700",
    ...                       "MJD-OBS": 55000.5, "SNR": 120.0, "SPEC_RES": 115000.0,
    ...                       "HIERARCH ESO DRS BERV": 12.5})
    >>> table = fits.BinTableHDU.from_columns([
    ...     fits.Column("WAVE", "101D", unit="Angstrom", array=[wave]),
    ...     fits.Column("FLUX", "101E", array=[np.full(101, 100.0)]),
    ...     fits.Column("ERR", "101E", array=[np.full(101, 10.0)])])
    >>> path = os.path.join(tempfile.mkdtemp(), "ADP.2010-01-01T00:00:00.000.fits")
    >>> fits.HDUList([fits.PrimaryHDU(header=header), table]).writeto(path)
    >>> spectrum = Spectrum.read(path, format="HARPS-ADP")
    >>> spectrum.meta["object"], spectrum.meta["berv"]
    ('HD 10700', <Quantity 12.5 km / s>)
    >>> float(spectrum.uncertainty.array[0]), spectrum.meta["wavelength_medium"]
    (0.01, 'air')
    """
    _check_missing_err(missing_err)
    return load_fits(file_obj, kwargs, lambda h, n: _spectrum_from(h, n, missing_err),
                     "HARPS ADP", _EXPECTED)


def _check_missing_err(missing_err):
    if missing_err not in _MISSING_ERR:
        raise ValueError(f"missing_err must be one of {_MISSING_ERR}, got {missing_err!r}")


_EXPECTED = (
    "expected a HARPS 1-D archive (ADP) spectrum: a FITS file with a one-row binary table "
    "of array columns WAVE, FLUX and ERR in extension 1"
)


def _spectrum_from(hdulist, name, missing_err="snr"):
    if len(hdulist) < 2 or not isinstance(hdulist[1], fits.BinTableHDU):
        raise ValueError(f"{name}: extension 1 is not a binary table; {_EXPECTED}")
    header = hdulist[0].header.copy()
    table = hdulist[1]
    names = {key: _column(table, key) for key in ("WAVE", "WAVE_AIR", "FLUX", "ERR", "QUAL")}
    for key in ("WAVE", "FLUX"):
        if names[key] is None:
            raise ValueError(f"{name}: extension 1 has no column {key}; {_EXPECTED}")
    if len(table.data) != 1:
        raise ValueError(
            f"{name}: extension 1 has {len(table.data)} rows; {_EXPECTED}"
        )
    wave_name = names["WAVE_AIR"] or names["WAVE"]
    row = table.data[0]
    try:
        wave = np.asarray(row[wave_name], dtype=float).ravel()
        flux = np.asarray(row[names["FLUX"]], dtype=float).ravel()
        err = None
        if names["ERR"] is not None:
            err = np.asarray(row[names["ERR"]], dtype=float).ravel()
        qual = None
        if names["QUAL"] is not None:
            qual = np.asarray(row[names["QUAL"]]).ravel()
    except (TypeError, ValueError) as exc:
        raise ValueError(f"{name}: WAVE, FLUX or ERR is not numeric ({exc}); {_EXPECTED}") from None
    wave_unit = _unit(table, wave_name, u.AA, name, "wavelength")
    flux_unit = _unit(table, names["FLUX"], u.dimensionless_unscaled, name, "flux")
    if wave.shape != flux.shape or (err is not None and err.shape != flux.shape) or (
            qual is not None and qual.shape != flux.shape):
        raise ValueError(
            f"{name}: WAVE, FLUX and ERR differ in length "
            f"({wave.size}, {flux.size}, {None if err is None else err.size}); {_EXPECTED}"
        )
    axis, flipped = spectral_axis(wave * wave_unit, f"{name}: {wave_name}", "HARPS ADP")
    if flipped:
        flux = flux[::-1]
        err = None if err is None else err[::-1]
        qual = None if qual is None else qual[::-1]
    mask = _no_data(flux)
    if qual is not None:
        mask |= qual != 0
    meta = _meta(header)
    uncertainty, source = None, None
    good = None if err is None else np.isfinite(err) & (err > 0)
    if good is not None and good.any():
        mask |= ~good
        ivar = np.zeros_like(err)
        ivar[good] = 1.0 / err[good] ** 2
        uncertainty, source = InverseVariance(ivar, unit=flux_unit**-2), "ERR"
    elif missing_err == "snr":
        uncertainty, source = _snr_uncertainty(flux, mask, meta, flux_unit)
    meta["wavelength_medium"] = _medium(header, wave_name)
    return _harps_spectrum(flux, flux_unit, axis, uncertainty, source, mask, meta, hdulist, header)


def _no_data(flux):
    """Pixels without data: a flux that is not finite, or exactly zero.

    The DRS writes zeros where there is no data, such as the gap between the
    two CCDs of HARPS (5304-5337 Angstrom); a measured flux is never exactly 0.
    """
    return ~np.isfinite(flux) | (flux == 0)


def _snr_uncertainty(flux, mask, meta, flux_unit):
    """``(uncertainty, "SNR")`` from the S/N in ``meta`` (`_ivar_from_snr`), or ``(None, None)``
    when there is none."""
    ivar = _ivar_from_snr(flux, mask, meta.get("snr"))
    if ivar is None:
        return None, None
    return InverseVariance(ivar, unit=flux_unit**-2), "SNR"


def _harps_spectrum(flux, flux_unit, axis, uncertainty, source, mask, meta, hdulist, header):
    meta["uncertainty_source"] = source
    meta = add_file_meta(meta, hdulist, header)
    return Spectrum(flux=flux * flux_unit, spectral_axis=axis, uncertainty=uncertainty, mask=mask,
                    meta=meta)


def _ivar_from_snr(flux, mask, snr):
    """A constant inverse variance, ``(SNR / median flux)**2``, or None when it cannot be had."""
    try:
        snr = float(snr)
    except (TypeError, ValueError):
        return None
    good = flux[~mask]
    if not (np.isfinite(snr) and snr > 0) or not good.size:
        return None
    level = float(np.median(np.abs(good)))
    if not level > 0:
        return None
    ivar = np.full(flux.shape, (snr / level) ** 2)
    ivar[mask] = 0.0
    return ivar


_S1D_EXPECTED = (
    "expected a HARPS DRS 1-D spectrum (*_s1d_A.fits): a FITS file with a 1-D primary image "
    "on the linear grid of CRVAL1, CDELT1 and CRPIX1"
)


@register_loader(HARPS_S1D_FORMAT, identify_harps_s1d)
@fill_doc
def read_harps_s1d(file_obj, missing_err="snr", **kwargs):
    """Read one HARPS, HARPS-N or ESPRESSO DRS 1-D spectrum (``*_s1d_A.fits``).

    Registered with specutils as the format ``"HARPS-s1d"``.

    Parameters
    ----------
    file_obj : str, path-like, file-like or `~astropy.io.fits.HDUList`
        The ``s1d`` file.
    missing_err : {"snr", "none"}, default="snr"
        The DRS ``s1d`` holds no uncertainty: ``"snr"`` (default) estimates
        a constant error, the median flux divided by the header's
        signal-to-noise ratio (``SNR``, else ``HIERARCH ESO DRS SPE EXT
        SN50``, the S/N of order 50 near 5500 A), as `read_harps_adp` does
        for an ADP file without ``ERR``; ``"none"``, or a header without
        either, leaves ``uncertainty`` out.
    %(fits_kwargs_raises)s
    ValueError
        If it has no 1-D primary image or no linear grid (``CRVAL1``,
        ``CDELT1``); the message names the file and what was expected.

    Warns
    -----
    UnknownUnitWarning
        If ``BUNIT`` is not a unit astropy can parse (the DRS writes
        ``'Relative Flux'``); the flux is then read as dimensionless.

    Returns
    -------
    `~specutils.Spectrum`
        1-D flux (``BUNIT``, dimensionless when absent or unparseable) on the
        wavelengths ``CRVAL1 + CDELT1 * (pixel + 1 - CRPIX1)`` in Angstrom
        (``CUNIT1`` when given), air and barycentric as the DRS writes them.
        ``uncertainty`` is the constant `~astropy.nddata.InverseVariance`
        estimated from the S/N (see ``missing_err``); pixels whose flux is
        not finite or exactly zero (the DRS's fill, as in the gap between the
        CCDs) are masked. ``meta`` holds ``object``, ``instrument``,
        ``date_obs``, ``mjd``, ``berv`` [km/s] and, when the header has them,
        ``snr`` (``SNR``, else the DRS S/N of order 50,
        ``HIERARCH ESO DRS SPE EXT SN50``) and ``rv`` [km/s] (the CCF radial
        velocity, ``HIERARCH ESO DRS CCF RVC``), ``resolution`` (the nominal
        resolving power of the instrument, 115,000 for HARPS and HARPS-N),
        ``wavelength_medium="air"``,
        ``uncertainty_source`` (``"SNR"`` or ``None``), ``filename`` and
        ``header``.

    Examples
    --------
    >>> import os, tempfile, warnings
    >>> import numpy as np
    >>> from astropy.io import fits
    >>> from specutils import Spectrum
    >>> import stellarlatent.datasets  # registers "HARPS-s1d"
    >>> header = fits.Header({"INSTRUME": "HARPS", "OBJECT": "Gl581", "CRVAL1": 5000.0,
    ...                       "CDELT1": 0.01, "CRPIX1": 1.0, "BUNIT": "Relative Flux"})
    >>> path = os.path.join(tempfile.mkdtemp(), "HARPS.2010-01-01T00:00:00.000_s1d_A.fits")
    >>> fits.PrimaryHDU(np.ones(100, np.float32), header=header).writeto(path)
    >>> with warnings.catch_warnings():
    ...     warnings.simplefilter("ignore")  # 'Relative Flux' is no astropy unit
    ...     spectrum = Spectrum.read(path)
    >>> spectrum.spectral_axis[[0, -1]], spectrum.flux.unit
    (<SpectralAxis [5000.  , 5000.99] Angstrom>, Unit(dimensionless))
    """
    _check_missing_err(missing_err)
    return load_fits(file_obj, kwargs, lambda h, n: _s1d_from(h, n, missing_err),
                     "HARPS s1d", _S1D_EXPECTED)


def _s1d_from(hdulist, name, missing_err="snr"):
    hdu = hdulist[0]
    header = hdu.header.copy()
    if header.get("NAXIS") != 1 or hdu.data is None:
        raise ValueError(f"{name}: the primary HDU holds no 1-D image; {_S1D_EXPECTED}")
    try:
        start = float(header["CRVAL1"])
        step = float(header.get("CDELT1", header.get("CD1_1")))
        ref = float(header.get("CRPIX1", 1.0))
    except (KeyError, TypeError, ValueError):
        raise ValueError(f"{name}: no linear grid (CRVAL1, CDELT1); {_S1D_EXPECTED}") from None
    flux = np.asarray(hdu.data, dtype=float)
    wave = start + step * (np.arange(flux.size) + 1.0 - ref)
    wave_unit = u.AA
    if header.get("CUNIT1"):
        wave_unit = parse_unit(header["CUNIT1"], u.AA, name, "wavelength")
    flux_unit = parse_unit(header.get("BUNIT"), u.dimensionless_unscaled, name, "flux")
    axis, flipped = spectral_axis(wave * wave_unit, f"{name}: the CRVAL1/CDELT1 grid",
                                  "HARPS s1d")
    if flipped:
        flux = flux[::-1]
    meta = _meta(header)
    if "snr" not in meta and "HIERARCH ESO DRS SPE EXT SN50" in header:
        meta["snr"] = float(header["HIERARCH ESO DRS SPE EXT SN50"])
    if "HIERARCH ESO DRS CCF RVC" in header:
        meta["rv"] = float(header["HIERARCH ESO DRS CCF RVC"]) * (u.km / u.s)
    meta["wavelength_medium"] = _medium(header, "WAVE_AIR")
    if "resolution" not in meta and NOMINAL_RESOLUTION.get(meta.get("instrument")):
        meta["resolution"] = NOMINAL_RESOLUTION[meta["instrument"]]
    mask = _no_data(flux)
    uncertainty, source = None, None
    if missing_err == "snr":
        uncertainty, source = _snr_uncertainty(flux, mask, meta, flux_unit)
    return _harps_spectrum(flux, flux_unit, axis, uncertainty, source, mask, meta, hdulist, header)


def _meta_table(spectra, files):
    table = QTable()
    table["filename"] = np.array([f.name for f in files], dtype=str)
    columns = {
        "object": (str, None),
        "date_obs": (str, None),
        "mjd": (float, None),
        "snr": (float, None),
        "resolution": (float, None),
        "berv": (float, u.km / u.s),
    }
    for key, (kind, unit) in columns.items():
        present = np.array([key in s.meta for s in spectra], dtype=bool)
        if kind is str:
            values = np.array([str(s.meta.get(key, "")) for s in spectra], dtype=str)
            table[key] = MaskedColumn(values, mask=~present)
            continue
        values = np.array(
            [
                u.Quantity(s.meta[key]).to_value(unit or u.one) if key in s.meta else np.nan
                for s in spectra
            ],
            dtype=float,
        )
        quantity = u.Quantity(values, unit or u.one)
        if unit is None:
            table[key] = MaskedColumn(values, mask=~present)
        else:
            table[key] = Masked(quantity, mask=~present)
    return table


def read_harps(source, *, pattern="*.fits", grid=None, method="flux_conserving", stack=True):
    """Read many HARPS 1-D archive (ADP) spectra.

    Parameters
    ----------
    source : str, path-like or sequence of them
        A folder of ADP files, one file, or a list of files.
    pattern : str, optional
        Glob pattern of the files when ``source`` is a folder (default ``"*.fits"``).
    grid : `~stellarlatent.preprocessing.SpectralGrid` or `~astropy.units.Quantity`, default=None
        Resample every spectrum onto this grid.
    method : str, default="flux_conserving"
        Resampling method of `~stellarlatent.preprocessing.Resampler`.
    stack : bool, default=True
        If True (default), return one batch. Spectra that all share one
        wavelength grid are stacked as they are; otherwise (or when ``grid`` is
        given) they are resampled with
        `~stellarlatent.preprocessing.Resampler` (onto ``grid``, or onto the
        grid that ``Resampler(grid=None)`` learns from them). If False, return
        the list of spectra, each on its own grid.

    Returns
    -------
    spectra : `~specutils.Spectrum` or list of `~specutils.Spectrum`
        A batch (flux ``(n_spectra, n_pixels)``, spectral axis last,
        inverse-variance uncertainty, mask) or a list (``stack=False``).
    table : `~astropy.table.QTable`
        One row per spectrum read, in the same order: ``filename``,
        ``object``, ``date_obs``, ``mjd``, ``snr``, ``resolution`` and
        ``berv`` [km/s]; values missing from a header are masked.

    Raises
    ------
    ValueError
        If no file could be read.

    Notes
    -----
    Files that cannot be read as HARPS ADP spectra are skipped; each is
    reported through the ``stellarlatent`` logger with its reason, then the
    number skipped.
    """
    files = files_from(source, pattern)
    spectra, kept, _ = read_logged(files, read_harps_adp)
    if not spectra:
        raise ValueError(f"source: none of the {len(files)} files is a readable HARPS ADP spectrum")
    warn_skipped(kept, files, "HARPS")
    table = _meta_table(spectra, kept)
    if not stack:
        return spectra, table
    return _stack(spectra, grid, method), table


def _same_grid(spectra):
    first = spectra[0].spectral_axis
    return all(
        s.spectral_axis.shape == first.shape
        and np.array_equal(s.spectral_axis.to_value(first.unit), first.value)
        for s in spectra[1:]
    )


def _stack(spectra, grid, method):
    if grid is None and _same_grid(spectra):
        batch = stack_spectra(spectra, "spectra")
        batch.meta = {}
        return from_batch(batch)
    from ..preprocessing import Resampler

    with np.errstate(divide="ignore"):
        return Resampler(grid=grid, method=method).fit(spectra).transform(spectra)
