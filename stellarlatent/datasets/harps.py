"""Reader for HARPS 1-D spectra from the ESO archive (Phase 3 "ADP" files).

An ADP file holds the header values in its primary HDU (``OBJECT``,
``DATE-OBS``, ``MJD-OBS``, ``SNR``, ``SPEC_RES``, ``HIERARCH ESO DRS BERV``)
and the spectrum in its first extension: a binary table with one row whose
array columns are ``WAVE`` (Angstrom), ``FLUX`` and ``ERR``.

Importing this module registers the ``"HARPS-ADP"`` format with specutils, so
that ``Spectrum.read(path, format="HARPS-ADP")`` works (and ``Spectrum.read``
without a format recognises these files before the generic FITS loaders).
"""

from pathlib import Path

import astropy.units as u
import numpy as np
from astropy.io import fits
from astropy.nddata import InverseVariance
from astropy.table import MaskedColumn, QTable
from astropy.utils.masked import Masked
from specutils import Spectrum
from specutils.io.parsing_utils import read_fileobj_or_hdulist
from specutils.io.registers import data_loader

from .._batch import check_spectral_axis, from_batch
from .._logging import log
from ._io import files_from, stack_spectra

__all__ = ["read_harps", "read_harps_adp", "identify_harps_adp"]

HARPS_ADP_FORMAT = "HARPS-ADP"
_META_KEYS = {
    "object": "OBJECT",
    "date_obs": "DATE-OBS",
    "mjd": "MJD-OBS",
    "snr": "SNR",
    "resolution": "SPEC_RES",
    "berv": "HIERARCH ESO DRS BERV",
}


def _column(table_hdu, name):
    names = {n.upper(): n for n in table_hdu.columns.names}
    return names.get(name)


def identify_harps_adp(origin, *args, **kwargs):
    """Tell whether a file is a HARPS 1-D archive (ADP) spectrum.

    The file must have a binary table in its first extension with a single
    row and array columns ``WAVE`` and ``FLUX``, and a primary header from
    HARPS (``INSTRUME`` starting with ``HARPS`` or the keyword
    ``HIERARCH ESO DRS BERV``).

    Parameters
    ----------
    origin : str
        ``"read"`` or ``"write"`` (the astropy I/O registry calls it so).
    *args
        The file name, file object or `~astropy.io.fits.HDUList`.

    Returns
    -------
    bool
    """
    if origin != "read":
        return False
    with read_fileobj_or_hdulist(*args, **kwargs) as hdulist:
        if len(hdulist) < 2 or not isinstance(hdulist[1], fits.BinTableHDU):
            return False
        primary = hdulist[0].header
        harps = str(primary.get("INSTRUME", "")).upper().startswith("HARPS") or (
            "HIERARCH ESO DRS BERV" in primary
        )
        table = hdulist[1]
        return bool(
            harps
            and table.header.get("NAXIS2") == 1
            and _column(table, "WAVE") is not None
            and _column(table, "FLUX") is not None
        )


def _unit(table_hdu, column, default):
    text = table_hdu.columns[column].unit
    if not text:
        return default
    unit = u.Unit(text, parse_strict="silent")
    if isinstance(unit, u.UnrecognizedUnit):
        log.debug("unknown unit %r of column %s; using %s", text, column, default)
        return default
    return unit


def _meta(header):
    meta = {}
    for key, card in _META_KEYS.items():
        value = header.get(card)
        if value is None:
            continue
        meta[key] = value
    if "berv" in meta:
        meta["berv"] = float(meta["berv"]) * (u.km / u.s)
    if "object" in meta:
        meta["object"] = str(meta["object"]).strip()
    return meta


@data_loader(
    HARPS_ADP_FORMAT,
    identifier=identify_harps_adp,
    dtype=Spectrum,
    extensions=["fits"],
    priority=10,
    force=True,
)
def read_harps_adp(file_obj, **kwargs):
    """Read one HARPS 1-D archive (ADP) spectrum.

    Registered with specutils as the format ``"HARPS-ADP"``.

    Parameters
    ----------
    file_obj : str, path-like, file-like or `~astropy.io.fits.HDUList`
        The ADP file.

    Raises
    ------
    OSError
        If the file is not a readable FITS file; the message names it.
    ValueError
        If the file is FITS but not a HARPS ADP spectrum (no one-row binary
        table of ``WAVE`` and ``FLUX`` in extension 1, columns of different
        lengths, wavelengths that are not strictly monotonic); the message
        names the file and what was expected.

    Returns
    -------
    `~specutils.Spectrum`
        1-D flux (unit from the ``FLUX`` column, dimensionless when it has
        none) on the wavelengths of the ``WAVE`` column, as stored (the HARPS
        pipeline writes barycentric air wavelengths). ``uncertainty`` is the
        `~astropy.nddata.InverseVariance` from ``ERR``; pixels whose ``ERR``
        is zero or not finite, or whose flux is not finite, are masked.
        ``meta`` holds ``object``, ``date_obs``, ``mjd``, ``snr``,
        ``resolution``, ``berv`` (a Quantity in km/s), ``filename`` and the
        primary ``header``.

    Examples
    --------
    >>> import os, tempfile
    >>> import numpy as np
    >>> from astropy.io import fits
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
    >>> float(spectrum.uncertainty.array[0])
    0.01
    """
    name = _describe(file_obj)
    try:
        with read_fileobj_or_hdulist(file_obj, **kwargs) as hdulist:
            return _spectrum_from(hdulist, name)
    except (FileNotFoundError, IsADirectoryError, PermissionError):
        raise
    except OSError as exc:
        raise OSError(f"{name}: not a readable FITS file ({exc}); {_EXPECTED}") from None
    except (TypeError, KeyError, IndexError, AttributeError) as exc:
        raise ValueError(
            f"{name}: cannot be read as a HARPS ADP spectrum ({type(exc).__name__}: {exc}); "
            f"{_EXPECTED}"
        ) from exc


_EXPECTED = (
    "expected a HARPS 1-D archive (ADP) spectrum: a FITS file with a one-row binary table "
    "of array columns WAVE, FLUX and ERR in extension 1"
)


def _describe(file_obj):
    """How to name ``file_obj`` in messages: its path, or what it is."""
    if isinstance(file_obj, (str, Path)):
        return str(file_obj)
    if isinstance(file_obj, fits.HDUList):
        return str(file_obj.filename() or "the HDUList")
    return str(getattr(file_obj, "name", None) or f"the {type(file_obj).__name__}")


def _spectrum_from(hdulist, name):
    if len(hdulist) < 2 or not isinstance(hdulist[1], fits.BinTableHDU):
        raise ValueError(f"{name}: extension 1 is not a binary table; {_EXPECTED}")
    header = hdulist[0].header.copy()
    table = hdulist[1]
    names = {key: _column(table, key) for key in ("WAVE", "FLUX", "ERR")}
    for key in ("WAVE", "FLUX"):
        if names[key] is None:
            raise ValueError(f"{name}: extension 1 has no column {key}; {_EXPECTED}")
    if len(table.data) != 1:
        raise ValueError(
            f"{name}: extension 1 has {len(table.data)} rows; {_EXPECTED}"
        )
    row = table.data[0]
    try:
        wave = np.asarray(row[names["WAVE"]], dtype=float).ravel()
        flux = np.asarray(row[names["FLUX"]], dtype=float).ravel()
        err = None
        if names["ERR"] is not None:
            err = np.asarray(row[names["ERR"]], dtype=float).ravel()
    except (TypeError, ValueError) as exc:
        raise ValueError(f"{name}: WAVE, FLUX or ERR is not numeric ({exc}); {_EXPECTED}") from None
    wave_unit = _unit(table, names["WAVE"], u.AA)
    flux_unit = _unit(table, names["FLUX"], u.dimensionless_unscaled)
    filename = hdulist.filename()
    if wave.shape != flux.shape or (err is not None and err.shape != flux.shape):
        raise ValueError(
            f"{name}: WAVE, FLUX and ERR differ in length "
            f"({wave.size}, {flux.size}, {None if err is None else err.size}); {_EXPECTED}"
        )
    try:
        axis, flipped = check_spectral_axis(wave * wave_unit, name=f"{name}: WAVE")
    except (ValueError, u.UnitsError) as exc:
        raise type(exc)(f"{exc} (in a HARPS ADP spectrum)") from None
    if flipped:
        flux = flux[::-1]
        err = None if err is None else err[::-1]
    mask = ~np.isfinite(flux)
    uncertainty = None
    if err is not None:
        good = np.isfinite(err) & (err > 0)
        mask |= ~good
        ivar = np.zeros_like(err)
        ivar[good] = 1.0 / err[good] ** 2
        uncertainty = InverseVariance(ivar, unit=flux_unit**-2)
    meta = _meta(header)
    if filename:
        meta["filename"] = Path(filename).name
    meta["header"] = header
    return Spectrum(
        flux=flux * flux_unit,
        spectral_axis=axis,
        uncertainty=uncertainty,
        mask=mask,
        meta=meta,
    )


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
        Glob pattern of the files when ``source`` is a folder.
    grid : `~stellarlatent.preprocessing.SpectralGrid` or `~astropy.units.Quantity`, optional
        Resample every spectrum onto this grid.
    method : str, optional
        Resampling method of `~stellarlatent.preprocessing.Resampler`.
    stack : bool, optional
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
    spectra, kept = [], []
    for path in files:
        try:
            spectrum = read_harps_adp(str(path))
        except Exception as exc:  # any unreadable file is skipped, never fatal
            log.warning("%s skipped: %s: %s", path.name, type(exc).__name__, exc)
            continue
        spectra.append(spectrum)
        kept.append(path)
    if not spectra:
        raise ValueError(f"source: none of the {len(files)} files is a readable HARPS ADP spectrum")
    if len(kept) < len(files):
        log.warning("read %d HARPS files; %d skipped", len(kept), len(files) - len(kept))
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
