"""Readers for LAMOST spectra: low (``spec-*.fits``) and medium resolution (``med-*.fits``).

A LAMOST low-resolution (LRS, R ~ 1800) file holds a primary image of five
rows by N pixels: flux, inverse variance, wavelength, ``andmask`` and
``ormask``. A medium-resolution (MRS, R ~ 7500) file holds the co-added blue
and red arms in the binary tables ``COADD_B`` and ``COADD_R`` (columns
``FLUX``, ``IVAR``, ``LOGLAM`` or ``WAVELENGTH``, ``ANDMASK``, ``ORMASK``),
then one table per single exposure (``B-<minute>``, ``R-<minute>``, with a
``PIXMASK`` column). LAMOST writes vacuum wavelengths (header ``VACUUM = T``),
corrected to the heliocentric frame.

Importing this module registers the formats ``"LAMOST-LRS"`` and
``"LAMOST-MRS"`` with specutils, so that ``Spectrum.read`` recognises these
files without a format.
"""

import astropy.units as u
import numpy as np
from astropy.io import fits
from astropy.nddata import InverseVariance
from specutils import Spectrum

from ._docs import fill_doc
from ._io import fits_identifier, parse_unit
from ._loader import add_file_meta, header_meta, load_fits, register_loader, spectral_axis

__all__ = ["read_lamost_lrs", "identify_lamost_lrs", "read_lamost_mrs", "identify_lamost_mrs"]

LAMOST_LRS_FORMAT = "LAMOST-LRS"
LAMOST_MRS_FORMAT = "LAMOST-MRS"
#: ``arm=`` values of `read_lamost_mrs` and the extensions they read
_ARMS = {"both": ("COADD_B", "COADD_R"), "blue": ("COADD_B",), "red": ("COADD_R",),
         "b": ("COADD_B",), "r": ("COADD_R",), "coadd_b": ("COADD_B",), "coadd_r": ("COADD_R",)}
_META_KEYS = {
    "object": "DESIG",
    "objname": "OBJNAME",
    "obsid": "OBSID",
    "date_obs": "DATE-OBS",
    "mjd": "MJD",
    "ra": "RA",
    "dec": "DEC",
    "class": "CLASS",
    "subclass": "SUBCLASS",
    "z": "Z",
    "z_err": "Z_ERR",
    "data_release": "DATA_V",
}
_LRS_EXPECTED = (
    "expected a LAMOST low-resolution spectrum (spec-*.fits): a primary image of 5 rows "
    "(flux, inverse variance, wavelength, andmask, ormask)"
)
_MRS_EXPECTED = (
    "expected a LAMOST medium-resolution spectrum (med-*.fits): binary tables COADD_B and "
    "COADD_R of columns FLUX, IVAR, LOGLAM (or WAVELENGTH), ANDMASK, ORMASK"
)


def _from_lamost(header):
    return (str(header.get("TELESCOP", "")).strip().upper() == "LAMOST"
            or str(header.get("DATA_V", "")).strip().upper().startswith("LAMOST"))


@fits_identifier
def identify_lamost_lrs(hdulist, args):
    """Tell whether a file is a LAMOST low-resolution spectrum (``spec-*.fits``).

    The primary header must come from LAMOST (``TELESCOP = 'LAMOST'`` or
    ``DATA_V`` starting with ``LAMOST``) and hold an image of at least three
    rows (flux, inverse variance, wavelength). Never raises.
    """
    header = hdulist[0].header
    return (_from_lamost(header) and header.get("NAXIS") == 2
            and header.get("NAXIS2", 0) >= 3 and header.get("NAXIS1", 0) > 1)


@fits_identifier
def identify_lamost_mrs(hdulist, args):
    """Tell whether a file is a LAMOST medium-resolution spectrum (``med-*.fits``).

    The file must have a binary table ``COADD_B`` or ``COADD_R`` with a
    ``FLUX`` column. Never raises.
    """
    return any(isinstance(hdu, fits.BinTableHDU)
               and str(hdu.name).upper() in ("COADD_B", "COADD_R")
               and _column(hdu.columns.names, "FLUX") is not None
               for hdu in hdulist[1:3])


def _column(names, name):
    upper = {n.upper(): n for n in names}
    return upper.get(name)


def _meta(header):
    meta = {key: value.strip() if isinstance(value, str) else value
            for key, value in header_meta(header, _META_KEYS).items()}
    if "z" in meta:
        try:
            meta["rv"] = (float(meta["z"]) * 299792.458) * (u.km / u.s)
        except (TypeError, ValueError):
            pass
    meta["wavelength_medium"] = "air" if header.get("VACUUM", True) is False else "vacuum"
    meta["uncertainty_source"] = "IVAR"
    return meta


#: nominal resolving powers of LAMOST's low- and medium-resolution spectrographs
RESOLVING_POWER = {"LRS": 1800.0, "MRS": 7500.0}


def _spectrum(wave, flux, ivar, bad, flux_unit, meta, name, what):
    """A Spectrum on increasing wavelengths; masked where flagged, ivar <= 0 or flux not finite.

    An ``IVAR`` without any finite positive value holds no uncertainty (as
    an all-NaN ``ERR`` column of a HARPS ADP file): the spectrum gets none,
    not a mask over every pixel, unless it has no flux either (a dead
    spectrum, masked whole).
    """
    axis, flipped = spectral_axis(wave * u.AA, f"{name}: {what}", "LAMOST")
    if flipped:
        flux, ivar, bad = flux[::-1], ivar[::-1], bad[::-1]
    good_ivar = np.isfinite(ivar) & (ivar > 0)
    mask = bad | ~np.isfinite(flux)
    # a dead spectrum (no flux at all) stays masked whole: it is skipped, not read as data
    if not good_ivar.any() and np.any(np.isfinite(flux) & (flux != 0)):
        meta["uncertainty_source"] = None
        return Spectrum(flux=flux * flux_unit, spectral_axis=axis, mask=mask, meta=meta)
    return Spectrum(flux=flux * flux_unit, spectral_axis=axis, mask=mask | ~good_ivar,
                    uncertainty=InverseVariance(np.where(good_ivar, ivar, 0.0),
                                                unit=flux_unit**-2), meta=meta)


@register_loader(LAMOST_LRS_FORMAT, identify_lamost_lrs, extensions=("fits", "fits.gz"))
@fill_doc
def read_lamost_lrs(file_obj, use_ormask=False, **kwargs):
    """Read one LAMOST low-resolution spectrum (``spec-*.fits``).

    Registered with specutils as the format ``"LAMOST-LRS"``.

    Parameters
    ----------
    file_obj : str, path-like, file-like or `~astropy.io.fits.HDUList`
        The ``spec-*.fits`` file (DR5 and later: 5 rows of flux, inverse
        variance, wavelength, ``andmask``, ``ormask``).
    %(lamost_use_ormask)s
    %(fits_kwargs_raises)s
    ValueError
        If the primary image has fewer than 3 rows or its wavelength row is
        not strictly monotonic; the message names the file.

    Warns
    -----
    UnknownUnitWarning
        If ``BUNIT`` is not a unit astropy can parse.

    Returns
    -------
    `~specutils.Spectrum`
        1-D flux (``BUNIT``, dimensionless when absent) on **vacuum**
        wavelengths in Angstrom (the wavelength row), with the
        `~astropy.nddata.InverseVariance` of the second row; pixels of zero
        inverse variance, non-finite flux or a non-zero ``andmask`` are
        masked. ``meta`` holds ``object`` (``DESIG``), ``objname``,
        ``obsid``, ``date_obs``, ``mjd``, ``ra``, ``dec``, ``class``,
        ``subclass``, ``z``, ``z_err``, ``rv`` (``z`` times c, in km/s),
        ``snr`` (of the g band, ``SNRG``) and ``snr_u`` ... ``snr_z``,
        ``resolution`` (the nominal resolving power, 1800),
        ``wavelength_medium`` (``"vacuum"``, or ``"air"`` when the header
        says ``VACUUM = F``), ``filename`` and ``header``.

    Examples
    --------
    %(fits_example_imports)s
    >>> from specutils import Spectrum
    >>> import stellarlatent.datasets  # registers "LAMOST-LRS"
    >>> wave = 10 ** (3.5682 + 1e-4 * np.arange(100))
    >>> data = np.array([np.ones(100), np.full(100, 4.0), wave, np.zeros(100), np.zeros(100)])
    >>> header = fits.Header({"TELESCOP": "LAMOST", "VACUUM": True, "SNRG": 50.0})
    >>> path = os.path.join(tempfile.mkdtemp(), "spec-58397-EG014118N254444M01_sp03-031.fits")
    >>> fits.PrimaryHDU(data.astype(np.float32), header=header).writeto(path)
    >>> spectrum = Spectrum.read(path)
    >>> spectrum.meta["wavelength_medium"], spectrum.meta["snr"], spectrum.flux.shape
    ('vacuum', 50.0, (100,))
    """
    return load_fits(file_obj, kwargs, lambda h, n: _lrs_from(h, n, use_ormask), "LAMOST LRS",
                     _LRS_EXPECTED)


def _lrs_from(hdulist, name, use_ormask):
    hdu = hdulist[0]
    header = hdu.header.copy()
    data = hdu.data
    if data is None or data.ndim != 2 or data.shape[0] < 3:
        shape = None if data is None else data.shape
        raise ValueError(f"{name}: the primary image has shape {shape}; {_LRS_EXPECTED}")
    data = np.asarray(data, dtype=float)
    flux, ivar, wave = data[0], data[1], data[2]
    bad = np.zeros(flux.shape, dtype=bool)
    if data.shape[0] > 3:
        bad |= data[3] != 0
    if use_ormask and data.shape[0] > 4:
        bad |= data[4] != 0
    flux_unit = parse_unit(header.get("BUNIT"), u.dimensionless_unscaled, name, "flux")
    meta = _meta(header)
    for band in "ugriz":
        key = f"SNR{band.upper()}"
        if key in header:
            meta[f"snr_{band}"] = float(header[key])
    if "snr_g" in meta:
        meta["snr"] = meta["snr_g"]
    meta.setdefault("resolution", RESOLVING_POWER["LRS"])
    meta = add_file_meta(meta, hdulist, header)
    return _spectrum(wave, flux, ivar, bad, flux_unit, meta, name, "the wavelength row")


@register_loader(LAMOST_MRS_FORMAT, identify_lamost_mrs, extensions=("fits", "fits.gz"))
@fill_doc
def read_lamost_mrs(file_obj, arm="both", use_ormask=False, **kwargs):
    """Read one LAMOST medium-resolution spectrum (``med-*.fits``): co-added arms or one exposure.

    Registered with specutils as the format ``"LAMOST-MRS"``; give options
    through ``Spectrum.read(path, format="LAMOST-MRS", arm="red")``.

    Parameters
    ----------
    file_obj : str, path-like, file-like or `~astropy.io.fits.HDUList`
        The ``med-*.fits`` file.
    arm : str, default="both"
        ``"both"`` (default): the co-added blue (``COADD_B``, about
        4950-5350 A) and red (``COADD_R``, about 6300-6800 A) arms joined on
        one increasing wavelength axis, with one masked pixel of zero weight
        on each side of the gap between them, so that resampling leaves the
        gap masked rather than bridging it. ``"blue"`` or ``"red"`` (also
        ``"B"``, ``"R"``, ``"COADD_B"``, ``"COADD_R"``): one co-added arm.
        The name of any other table of the file (a single exposure such as
        ``"B-84107311"``): that table, masked by its ``PIXMASK``.
    %(lamost_use_ormask)s
    %(fits_kwargs_raises)s
    ValueError
        If ``arm`` names no table of the file, a table lacks ``FLUX``,
        ``IVAR`` or its wavelengths, or the two arms overlap; the message
        names the file and what was expected.

    Returns
    -------
    `~specutils.Spectrum`
        1-D flux (dimensionless unless the table gives a unit) on **vacuum**
        wavelengths in Angstrom (``10**LOGLAM``, or ``WAVELENGTH``), with
        the `~astropy.nddata.InverseVariance` of ``IVAR``; pixels of zero
        inverse variance (including the zero padding at the end of each
        arm), non-finite flux or a non-zero ``ANDMASK``/``PIXMASK`` are
        masked. ``meta`` holds the primary header's ``object``, ``obsid``,
        ``date_obs``, ``mjd``, ``ra``, ``dec``, ``arm`` (``"both"``, or the
        table read), ``snr_blue`` and ``snr_red`` (the ``SNR`` of the
        co-added arms), ``snr`` (of the table read, for one table),
        ``resolution`` (the nominal resolving power, 7500),
        ``wavelength_medium`` (``"vacuum"`` unless ``VACUUM = F``),
        ``filename`` and ``header``.

    Examples
    --------
    %(fits_example_imports)s
    >>> from specutils import Spectrum
    >>> import stellarlatent.datasets  # registers "LAMOST-MRS"
    >>> def arm(name, start, n=50):
    ...     columns = [fits.Column("FLUX", "E", array=np.ones(n)),
    ...                fits.Column("IVAR", "E", array=np.full(n, 4.0)),
    ...                fits.Column("LOGLAM", "E", array=start + 1e-5 * np.arange(n)),
    ...                fits.Column("ANDMASK", "I", array=np.zeros(n)),
    ...                fits.Column("ORMASK", "I", array=np.zeros(n))]
    ...     table = fits.BinTableHDU.from_columns(columns, name=name)
    ...     table.header["SNR"] = 30.0
    ...     return table
    >>> primary = fits.PrimaryHDU(header=fits.Header({"TELESCOP": "LAMOST", "VACUUM": True}))
    >>> path = os.path.join(tempfile.mkdtemp(), "med-58408-TD230151N343645T01_sp01-015.fits")
    >>> fits.HDUList([primary, arm("COADD_B", 3.69), arm("COADD_R", 3.80)]).writeto(path)
    >>> both = Spectrum.read(path)  # 50 + 50 pixels and one masked pixel each side of the gap
    >>> both.flux.shape, int(both.mask.sum())
    ((102,), 2)
    >>> red = Spectrum.read(path, format="LAMOST-MRS", arm="red")
    >>> red.flux.shape, red.meta["arm"]
    ((50,), 'COADD_R')
    """
    if not isinstance(arm, str):
        raise TypeError(f"arm must be a string ('both', 'blue', 'red' or a table name), "
                        f"got {type(arm).__name__}")
    return load_fits(file_obj, kwargs, lambda h, n: _mrs_from(h, n, arm, use_ormask),
                     "LAMOST MRS", _MRS_EXPECTED)


def _mrs_table(hdulist, extname, name, use_ormask):
    """``(wave, flux, ivar, bad, unit, snr)`` of one table of an MRS file."""
    try:
        hdu = hdulist[extname]
    except KeyError:
        tables = [h.name for h in hdulist[1:] if isinstance(h, fits.BinTableHDU)]
        raise ValueError(f"{name}: no table {extname!r} "
                         f"(the file has {', '.join(tables) or 'none'}); "
                         f"{_MRS_EXPECTED}") from None
    if not isinstance(hdu, fits.BinTableHDU):
        raise ValueError(f"{name}: {extname} is not a binary table; {_MRS_EXPECTED}")
    names = hdu.columns.names
    columns = {key: _column(names, key)
               for key in ("FLUX", "IVAR", "LOGLAM", "WAVELENGTH", "ANDMASK", "ORMASK", "PIXMASK")}
    for key in ("FLUX", "IVAR"):
        if columns[key] is None:
            raise ValueError(f"{name}: {extname} has no column {key}; {_MRS_EXPECTED}")
    data = hdu.data
    if columns["WAVELENGTH"] is not None:
        wave = np.asarray(data[columns["WAVELENGTH"]], dtype=float).ravel()
    elif columns["LOGLAM"] is not None:
        wave = 10.0 ** np.asarray(data[columns["LOGLAM"]], dtype=float).ravel()
    else:
        raise ValueError(f"{name}: {extname} has no column LOGLAM or WAVELENGTH; {_MRS_EXPECTED}")
    flux = np.asarray(data[columns["FLUX"]], dtype=float).ravel()
    ivar = np.asarray(data[columns["IVAR"]], dtype=float).ravel()
    if not wave.shape == flux.shape == ivar.shape:
        raise ValueError(f"{name}: the columns of {extname} differ in length; {_MRS_EXPECTED}")
    bad = np.zeros(flux.shape, dtype=bool)
    flags = ["ANDMASK", "PIXMASK"] + (["ORMASK"] if use_ormask else [])
    for key in flags:
        if columns[key] is not None:
            bad |= np.asarray(data[columns[key]]).ravel() != 0
    unit = parse_unit(hdu.columns[columns["FLUX"]].unit, u.dimensionless_unscaled, name, "flux")
    snr = hdu.header.get("SNR")
    return wave, flux, ivar, bad, unit, (None if snr is None else float(snr)), str(hdu.name)


def _mrs_from(hdulist, name, arm, use_ormask):
    header = hdulist[0].header.copy()
    extnames = _ARMS.get(arm.lower(), (arm,))
    if arm.lower() == "both":
        # a file whose other arm was not combined (COMBIN_B or COMBIN_R false) gives the one it has
        extnames = tuple(ext for ext in extnames if ext in hdulist) or extnames
    parts = [_mrs_table(hdulist, ext, name, use_ormask) for ext in extnames]
    meta = _meta(header)
    meta.setdefault("resolution", RESOLVING_POWER["MRS"])
    for arm_name, key in (("COADD_B", "snr_blue"), ("COADD_R", "snr_red")):
        if arm_name in hdulist and hdulist[arm_name].header.get("SNR") is not None:
            meta[key] = float(hdulist[arm_name].header["SNR"])
    if len(parts) == 1:
        wave, flux, ivar, bad, unit, snr, extname = parts[0]
        meta["arm"] = extname
        if snr is not None:
            meta["snr"] = snr
        meta = add_file_meta(meta, hdulist, header)
        return _spectrum(wave, flux, ivar, bad, unit, meta, name, f"the wavelengths of {extname}")
    (wb, fb, ib, bb, unit, _, _), (wr, fr, ir, br, unit_r, _, _) = parts
    if unit_r != unit:
        raise ValueError(f"{name}: the arms have different flux units ({unit}, {unit_r}); "
                         f"read them one by one with arm='blue' and arm='red'")
    if wr.size and wb.size and wr[0] < wr[-1] and wb[0] < wb[-1] and not wb[-1] < wr[0]:
        raise ValueError(f"{name}: the blue arm ends at {wb[-1]:.2f} A, after the red arm starts "
                         f"({wr[0]:.2f} A); read them one by one with arm='blue' and arm='red'")
    # one masked pixel of zero weight a step beyond each side of the gap
    edges = np.array([wb[-1] + (wb[-1] - wb[-2]), wr[0] - (wr[1] - wr[0])])
    wave = np.concatenate([wb, edges, wr])
    flux = np.concatenate([fb, [0.0, 0.0], fr])
    ivar = np.concatenate([ib, [0.0, 0.0], ir])
    bad = np.concatenate([bb, [True, True], br])
    meta["arm"] = "both"
    meta = add_file_meta(meta, hdulist, header)
    return _spectrum(wave, flux, ivar, bad, unit, meta, name, "the wavelengths of the arms")
