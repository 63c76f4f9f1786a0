"""Reader (and writer) for the MILES empirical stellar library.

MILES v9.1 (Sanchez-Blazquez et al. 2006; Cenarro et al. 2007; Falcon-Barroso
et al. 2011) ships one 1-D FITS image per star, ``MILES_res2.50_star_mNNNNV.fits``,
on a linear grid of **air** wavelengths in Angstrom given by the header keywords
``CRVAL1``, ``CDELT1`` and ``CRPIX1``, and a fixed-width parameter table,
``paramsMILES_v9.1.txt``, with star name, MILES number, spectral type, Teff,
log g and [Fe/H].
"""

import numbers
import re
import warnings
from pathlib import Path

import astropy.units as u
import numpy as np
from astropy.io import fits
from astropy.table import MaskedColumn, QTable
from astropy.utils.masked import Masked

from specutils import Spectrum

from .._batch import SpectraBatch, from_batch, to_batch
from .._logging import log
from ._docs import fill_doc
from ._io import UnknownUnitWarning, fits_identifier, parse_unit, same_grid
from ._loader import load_fits, register_loader
from ._paths import find_data_dir
from ._reading import read_logged
from .harps import _from_harps_family
from .phoenix import _file_name

__all__ = ["read_miles", "read_miles_table", "write_miles", "read_miles_spectrum",
           "identify_miles", "MILES_FLAGGED", "MILES_FORMAT"]

#: the specutils format of a MILES spectrum file
MILES_FORMAT = "MILES"

MILES_FLAGGED = frozenset({970})
"""MILES numbers of the stars that the MILES team flags as problematic."""

MILES_PARAMS_FILE = "paramsMILES_v9.1.txt"
MILES_PATTERN = "MILES_res2.50_star_m*V.fits"

# Tokens the parameter table writes where a number is malformed, and the star meant.
_ID_FIXES = {"022.": 221}
_HEADER_TOKENS = ("Name", "MILES", "CaT", "SpT", "Teff", "log g", "[Fe/H]", "Refs")
_ID_FROM_NAME = re.compile(r"_m(\d+)V?\.fits?$", re.IGNORECASE)
_MILES_NAME = re.compile(r"^MILES_.*\.fits?$", re.IGNORECASE)
_LABEL_UNITS = {"teff": u.K, "logg": u.dex, "feh": u.dex}


def _columns_from_header(line, path):
    starts = []
    for token in _HEADER_TOKENS:
        position = line.find(token)
        if position < 0 and token != "Refs":
            raise ValueError(
                f"{path}: header line has no column '{token}'; expected the MILES "
                f"parameter table layout ({', '.join(_HEADER_TOKENS)})"
            )
        starts.append(position)
    if starts[-1] < 0:
        starts[-1] = None
    known = [s for s in starts if s is not None]
    if known != sorted(known):
        raise ValueError(f"{path}: header columns are out of order: {line!r}")
    return list(zip(starts, starts[1:] + [None]))


def _parse_float(text):
    text = text.strip()
    if text in ("", "--"):
        return np.nan, True
    return float(text), False


def _parse_id(text, path, lineno):
    text = text.strip()
    if re.fullmatch(r"\d+", text):
        return int(text)
    if text in _ID_FIXES:
        log.debug("%s:%d: MILES number %r read as %04d", path, lineno, text, _ID_FIXES[text])
        return _ID_FIXES[text]
    log.warning("%s:%d: malformed MILES number %r; row skipped", path, lineno, text)
    return None


def read_miles_table(path):
    r"""Read the MILES parameter table (all stars, with or without spectra).

    Parameters
    ----------
    path : str or path-like
        The table file, for example ``paramsMILES_v9.1.txt``, or the folder
        holding it.

    Returns
    -------
    `~astropy.table.QTable`
        One row per star of the table, in table order, with columns
        ``miles_id`` (int), ``name``, ``cluster`` (bool: the star belongs to a
        cluster), ``sptype``, ``teff`` [K], ``logg`` [dex], ``feh`` [dex] and
        ``flagged`` (bool: the MILES team flags the star as problematic).
        Labels the table writes as ``--`` are masked.

    Notes
    -----
    Columns are located from the positions of the names in the first header
    line; the two lines that follow it are skipped. The row whose MILES number
    is the malformed ``022.`` is star 0221 (HD 044691A).

    Examples
    --------
    >>> import tempfile
    >>> from pathlib import Path
    >>> from stellarlatent.datasets import read_miles_table
    >>> path = Path(tempfile.mkdtemp()) / "paramsMILES_v9.1.txt"
    >>> _ = path.write_text(
    ...     "Name                  MILES   CaT   SpT            Teff   log g   [Fe/H]  Refs\n"
    ...     "                      s????\n"
    ...     " - - - - - - - - - - - - - - - - - - - - - - - - - - - - - - - - - - - - - -\n"
    ...     "HD017378               0102   208   A5Ia            8587   1.35      --    31\n"
    ...     "HD044691A              022.         A3m             7950   3.95     0.35   333\n")
    >>> print(read_miles_table(path)["miles_id", "name", "sptype", "teff", "logg", "feh"])
    ... # doctest: +NORMALIZE_WHITESPACE
    miles_id    name   sptype  teff  logg feh
                                K    dex  dex
    -------- --------- ------ ------ ---- ----
         102  HD017378   A5Ia 8587.0 1.35  ———
         221 HD044691A    A3m 7950.0 3.95 0.35
    """
    path = Path(path)
    if path.is_dir():
        path = path / MILES_PARAMS_FILE
    if not path.is_file():
        raise FileNotFoundError(f"path: no MILES parameter table at {path}")
    lines = path.read_text(encoding="latin-1").splitlines()
    if len(lines) < 3:
        raise ValueError(f"{path}: expected a header of three lines, got {len(lines)} lines")
    slices = dict(zip(_HEADER_TOKENS, _columns_from_header(lines[0], path)))

    def field(line, token):
        start, stop = slices[token]
        return line[start:stop]

    rows = {key: [] for key in ("miles_id", "name", "cluster", "sptype")}
    values = {key: [] for key in _LABEL_UNITS}
    masks = {key: [] for key in _LABEL_UNITS}
    for lineno, line in enumerate(lines[3:], start=4):
        if not line.strip():
            continue
        miles_id = _parse_id(field(line, "MILES"), path, lineno)
        if miles_id is None:
            continue
        name = field(line, "Name").rstrip()
        cluster = name.endswith(" Cl")
        if cluster:
            name = name[:-3]
        try:
            parsed = {
                key: _parse_float(field(line, token))
                for key, token in zip(_LABEL_UNITS, ("Teff", "log g", "[Fe/H]"))
            }
        except ValueError as exc:
            log.warning("%s:%d: unreadable labels (%s); row skipped", path, lineno, exc)
            continue
        rows["miles_id"].append(miles_id)
        rows["name"].append(name.strip())
        rows["cluster"].append(cluster)
        rows["sptype"].append(field(line, "SpT").strip())
        for key, (value, missing) in parsed.items():
            values[key].append(value)
            masks[key].append(missing)

    table = QTable()
    table["miles_id"] = np.array(rows["miles_id"], dtype=int)
    table["name"] = np.array(rows["name"], dtype=str)
    table["cluster"] = np.array(rows["cluster"], dtype=bool)
    sptype = np.array(rows["sptype"], dtype=str)
    table["sptype"] = MaskedColumn(sptype, mask=sptype == "")
    for key, unit in _LABEL_UNITS.items():
        table[key] = Masked(u.Quantity(values[key], unit), mask=np.array(masks[key], dtype=bool))
    table["flagged"] = np.isin(table["miles_id"], sorted(MILES_FLAGGED))
    duplicated = np.unique(table["miles_id"], return_counts=True)
    duplicated = duplicated[0][duplicated[1] > 1]
    if duplicated.size:
        log.warning("%s: MILES numbers listed more than once: %s", path, duplicated.tolist())
    return table


def _wavelengths(header, n_pixels, path):
    name = Path(path).name
    values = {}
    for key, default in (("CRVAL1", None), ("CDELT1", None), ("CRPIX1", 1.0)):
        raw = header.get(key, default)
        if raw is None:
            raise ValueError(f"{name}: no linear wavelength solution ({key} missing)")
        try:
            values[key] = float(raw)
        except (TypeError, ValueError):
            raise ValueError(f"{name}: header keyword {key} = {raw!r} is not a number") from None
        if not np.isfinite(values[key]):
            raise ValueError(f"{name}: header keyword {key} = {raw!r} is not finite")
    start, step, reference = values["CRVAL1"], values["CDELT1"], values["CRPIX1"]
    if not step > 0:
        raise ValueError(
            f"{name}: header keyword CDELT1 = {step:g}; expected a positive wavelength step "
            "(MILES files are on increasing wavelengths)"
        )
    unit = u.Unit(header.get("CUNIT1", "Angstrom"), parse_strict="silent")
    if not unit.is_equivalent(u.AA):
        unit = u.AA
    pixels = np.arange(1, n_pixels + 1, dtype=float)
    wave = start + (pixels - reference) * step
    if not wave[0] > 0:
        raise ValueError(
            f"{name}: the wavelength solution (CRVAL1 = {start:g}, CDELT1 = {step:g}, "
            f"CRPIX1 = {reference:g}) gives a first wavelength of {wave[0]:g} {unit}; "
            "expected positive wavelengths"
        )
    return wave * unit


def _read_one(path):
    """``(flux, wavelengths, header)`` of one MILES file; errors name the file."""
    try:
        hdul = fits.open(path, memmap=False)
    except OSError as exc:
        if isinstance(exc, (FileNotFoundError, PermissionError)):
            raise
        raise OSError(f"{Path(path).name}: not a readable FITS file ({exc}); {_EXPECTED}") from None
    with hdul:
        return _from_hdulist(hdul, Path(path).name)


_EXPECTED = "expected a MILES spectrum (a 1-D primary image with CRVAL1, CDELT1 and CRPIX1)"


def _from_hdulist(hdul, name):
    header = hdul[0].header
    data = hdul[0].data
    if data is None or data.ndim != 1 or data.size < 2:
        shape = None if data is None else data.shape
        raise ValueError(
            f"{name}: primary array has shape {shape}, expected a 1-D spectrum "
            "of at least two pixels"
        )
    return np.asarray(data, dtype=float), _wavelengths(header, data.size, name), header.copy()


def _meta(header, unit):
    meta = {"wavelength_medium": "air", "library": "MILES"}
    if "FWHM" in header:
        meta["fwhm"] = float(header["FWHM"]) * unit
    return meta


@fits_identifier
def identify_miles(hdulist, args):
    """Tell whether a file is a MILES library spectrum (``MILES_res2.50_star_mNNNNV.fits``).

    The file must have a one-dimensional primary image on a linear grid
    (``CRVAL1`` and ``CDELT1``), be named like a MILES file or state
    ``TPLLIB = 'MILES'``, and its header must not be that of a HARPS-family
    or PHOENIX file. Never raises.
    """
    header = hdulist[0].header
    path = _file_name(args)
    named = path is not None and _MILES_NAME.match(path.name) is not None
    library = str(header.get("TPLLIB", "")).strip().upper().startswith("MILES")
    return (header.get("NAXIS") == 1
            and header.get("NAXIS1", 0) > 1
            and "CRVAL1" in header and "CDELT1" in header
            and (named or library)
            and "PHXTEFF" not in header
            and not _from_harps_family(header))


@register_loader(MILES_FORMAT, identify_miles)
@fill_doc
def read_miles_spectrum(file_obj, **kwargs):
    """Read one MILES spectrum file.

    Registered with specutils as the format ``"MILES"``, so that
    ``Spectrum.read(path, format="MILES")`` reads a file of the library (and
    ``Spectrum.read(path)`` recognises it before the generic ``wcs1d-fits``).
    To read a folder with its labels, use `read_miles`.

    Parameters
    ----------
    file_obj : str, path-like, file-like or `~astropy.io.fits.HDUList`
        The MILES file.
    %(fits_kwargs)s

    Returns
    -------
    `~specutils.Spectrum`
        The 1-D flux (relative, dimensionless, unless the header states a
        ``BUNIT``: a file written with a flux unit) on the air wavelengths of the
        header keywords ``CRVAL1``, ``CDELT1`` and ``CRPIX1``, as one row of
        `read_miles`: zero-valued and non-finite pixels are masked, and
        ``meta`` holds ``wavelength_medium="air"``, ``library="MILES"`` and
        the resolution ``fwhm`` when the header gives it.

    Raises
    ------
    %(fits_oserror)s
    ValueError
        If it has no 1-D primary image or no valid linear wavelength
        solution (for example ``CDELT1 <= 0``).

    Examples
    --------
    %(fits_example_imports)s
    >>> from specutils import Spectrum
    >>> import stellarlatent.datasets  # registers "MILES"
    >>> path = os.path.join(tempfile.mkdtemp(), "MILES_res2.50_star_m0001V.fits")
    >>> header = fits.Header({"CRPIX1": 1, "CRVAL1": 3540.5, "CDELT1": 0.9, "FWHM": 2.5})
    >>> fits.PrimaryHDU(np.array([0.0, 1.0, 1.1, 0.9]), header=header).writeto(path)
    >>> spectrum = Spectrum.read(path)
    >>> spectrum.spectral_axis[:2], spectrum.mask.tolist()
    (<SpectralAxis [3540.5, 3541.4] Angstrom>, [True, False, False, False])
    >>> spectrum.meta["wavelength_medium"], spectrum.meta["fwhm"]
    ('air', <Quantity 2.5 Angstrom>)
    """
    if isinstance(file_obj, (str, Path)):
        values, wave, header = _read_one(file_obj)
    else:
        values, wave, header = load_fits(file_obj, kwargs, _from_hdulist, "MILES", _EXPECTED,
                                         wrapped=())
    if _from_harps_family(header) or "PHXTEFF" in header:
        # read as asked, but its air wavelengths and resolution are the library's, not its own
        log.warning("%s: read as a MILES spectrum, but its header is that of %s; give its own "
                    "format (or none, to have it found)",
                    Path(str(getattr(file_obj, "name", file_obj))).name,
                    f"a {header.get('INSTRUME', 'HARPS-family')} file"
                    if "PHXTEFF" not in header else "a PHOENIX model")
    name = Path(str(getattr(file_obj, "name", file_obj))).name
    return Spectrum(flux=values * _flux_unit(header, name), spectral_axis=wave,
                    mask=(values == 0) | ~np.isfinite(values), meta=_meta(header, wave.unit))


def _flux_unit(header, name):
    """``BUNIT`` (a file written with a flux unit), dimensionless when absent or unparseable."""
    return parse_unit(header.get("BUNIT"), u.dimensionless_unscaled, name, "flux")


def _file_id(path):
    match = _ID_FROM_NAME.search(path.name)
    return int(match.group(1)) if match else None


def _check_ids(ids):
    """The set of MILES numbers in ``ids`` (an int or a sequence of ints)."""
    expected = "expected a MILES number (a positive int) or a sequence of them"
    if isinstance(ids, (str, bytes, dict, set, frozenset)) or isinstance(ids, (bool, np.bool_)):
        raise TypeError(f"ids must be an int or a sequence of int, got {ids!r}; {expected}")
    values = np.atleast_1d(np.asarray(ids, dtype=object))
    if values.ndim != 1:
        raise ValueError(f"ids must be one-dimensional, got shape {values.shape}; {expected}")
    if values.size == 0:
        raise ValueError(f"ids must be non-empty; {expected}")
    wanted = set()
    for value in values:
        number = value.item() if isinstance(value, np.generic) else value
        if (
            isinstance(number, bool)
            or not isinstance(number, numbers.Real)
            or not np.isfinite(number)
            or number != int(number)
        ):
            raise TypeError(
                f"ids must be an int or a sequence of int, got {number!r} in {ids!r}; {expected}"
            )
        if number < 1:
            raise ValueError(f"ids must be positive MILES numbers, got {number!r}; {expected}")
        wanted.add(int(number))
    return wanted


def _select_files(directory, pattern, ids, exclude_flagged):
    wanted = None if ids is None else _check_ids(ids)
    files = sorted(directory.glob(pattern))
    if not files:
        raise FileNotFoundError(f"directory: no files matching '{pattern}' in {directory}")
    file_ids = [_file_id(f) for f in files]
    if ids is not None:
        found = {i for i in file_ids if i in wanted}
        if wanted - found:
            log.warning(
                "ids: no spectrum file for MILES numbers %s in %s",
                sorted(wanted - found),
                directory,
            )
        keep = [i in wanted for i in file_ids]
        files = [f for f, k in zip(files, keep) if k]
        file_ids = [i for i, k in zip(file_ids, keep) if k]
        if not files:
            raise ValueError(f"ids: none of the requested MILES numbers has a file in {directory}")
    if exclude_flagged:
        keep = [i not in MILES_FLAGGED for i in file_ids]
        files = [f for f, k in zip(files, keep) if k]
        file_ids = [i for i, k in zip(file_ids, keep) if k]
    return files, file_ids


def _labels_for(file_ids, files, params, directory):
    n = len(files)
    row_of = {}
    if params is not None:
        row_of = {int(i): row for row, i in enumerate(params["miles_id"])}
    rows = np.array([row_of.get(i, -1) if i is not None else -1 for i in file_ids], dtype=int)
    missing = rows < 0
    if missing.any() and params is not None:  # without a table at all, that was said
        log.warning(
            "%d spectrum files in %s have no row in the parameter table; their labels "
            "are masked: %s",
            int(missing.sum()),
            directory,
            ", ".join(f.name for f, m in zip(files, missing) if m),
        )
    take = np.where(missing, 0, rows)
    table = QTable()
    ids = np.array([-1 if i is None else i for i in file_ids], dtype=int)
    table["miles_id"] = MaskedColumn(ids, mask=ids < 0) if (ids < 0).any() else ids
    for key in ("name", "sptype"):
        if params is None:
            table[key] = MaskedColumn(np.full(n, "", dtype=str), mask=np.ones(n, bool))
            continue
        column = params[key][take]
        column_mask = missing | np.ma.getmaskarray(column)
        table[key] = MaskedColumn(np.asarray(np.ma.filled(column, ""), dtype=str), mask=column_mask)
    if params is None:
        table["cluster"] = np.zeros(n, bool)
    else:
        table["cluster"] = np.asarray(params["cluster"])[take] & ~missing
    for key, unit in _LABEL_UNITS.items():
        if params is None:
            table[key] = Masked(np.full(n, np.nan) * unit, mask=np.ones(n, bool))
            continue
        column = params[key][take]
        table[key] = Masked(column.unmasked, mask=column.mask | missing)
    table["flagged"] = np.isin(ids, sorted(MILES_FLAGGED))
    table["filename"] = np.array([f.name for f in files], dtype=str)
    return table


def read_miles(directory=None, *, ids=None, pattern=MILES_PATTERN, exclude_flagged=False,
               params_file=MILES_PARAMS_FILE):
    """Read MILES spectra and their labels.

    Parameters
    ----------
    directory : str or path-like, default=None
        Folder with the MILES FITS files and the parameter table. By default
        the ``miles`` folder of `find_data_dir`.
    ids : int or sequence of int, default=None
        MILES numbers of the stars to read (default: every file present);
        they are returned in file order, that is by increasing number.
    pattern : str, optional
        Glob pattern of the spectrum files inside ``directory`` (default
        ``"MILES_res2.50_star_m*V.fits"``).
    exclude_flagged : bool, default=False
        Leave out the stars that the MILES team flags as problematic
        (`MILES_FLAGGED`: MILES 0970). By default they are read and marked in
        the ``flagged`` column.
    params_file : str, default="paramsMILES_v9.1.txt"
        Name of the parameter table inside ``directory``. When it is absent
        the labels are masked and a warning is logged.

    Returns
    -------
    spectra : `~specutils.Spectrum`
        A batch: flux of shape ``(n_spectra, n_pixels)``, spectral axis last
        (``spectral_axis_index=1``), in air wavelengths (Angstrom) from the
        header keywords ``CRVAL1``, ``CDELT1`` and ``CRPIX1``. The flux is
        relative (dimensionless), or in the ``BUNIT`` most files state (files
        in an equivalent unit are converted to it, those in another are
        skipped with a logged warning naming them; an unparseable ``BUNIT``
        reads as dimensionless with one
        `~stellarlatent.datasets.UnknownUnitWarning`). Zero-valued pixels
        (fill values at the ends of a few spectra, one isolated dead pixel)
        and non-finite ones are
        masked (``mask`` True). ``meta`` holds ``wavelength_medium="air"`` and
        the resolution ``fwhm`` when the header gives it.
    labels : `~astropy.table.QTable`
        One row per spectrum, in the order of the spectra: ``miles_id``,
        ``name``, ``sptype``, ``cluster``, ``teff`` [K], ``logg`` [dex],
        ``feh`` [dex], ``flagged`` and ``filename``. Missing labels are masked;
        files without a row in the parameter table get masked labels and a
        logged warning.

    Raises
    ------
    FileNotFoundError
        If the folder or any spectrum file in it cannot be found.
    TypeError
        If ``ids`` is not an int or a sequence of int.
    ValueError
        If no file could be read (the message gives the first reasons, for
        example a header keyword ``CDELT1 <= 0``), ``ids`` selects no file, or
        no wavelength grid is shared by more than half of the readable files.

    Notes
    -----
    Files are sorted by name, hence by MILES number. A file that cannot be read
    is skipped with a logged warning giving the reason, for example a
    wavelength solution whose step ``CDELT1`` is not positive or whose
    wavelengths are not all positive.

    The spectra are returned on the wavelength grid shared by most of the
    readable files, which must be more than half of them; each file on
    another grid is skipped with a logged warning naming it and its grid
    (whatever its place in the folder). When no grid has such a majority, a
    ValueError lists the grids: select the files of one grid with ``ids`` or
    ``pattern``, or read them with `~stellarlatent.datasets.SpectralStore`
    and a `~stellarlatent.preprocessing.Resampler`.

    Examples
    --------
    >>> import tempfile
    >>> import numpy as np
    >>> import astropy.units as u
    >>> from astropy.table import QTable
    >>> from specutils import Spectrum
    >>> from stellarlatent.datasets import read_miles, write_miles
    >>> wave = (3540.5 + 0.9 * np.arange(50)) * u.AA
    >>> flux = np.ones((2, 50))
    >>> flux[1, -3:] = 0.0
    >>> table = QTable({"miles_id": [1, 2], "name": ["HD000001", "HD000002"],
    ...                 "teff": [5800, 4500] * u.K, "logg": [4.4, 2.5] * u.dex,
    ...                 "feh": [0.0, -0.5] * u.dex})
    >>> folder = tempfile.mkdtemp()
    >>> write_miles(folder, Spectrum(flux=flux * u.one, spectral_axis=wave,
    ...                              spectral_axis_index=1), table)
    >>> spectra, labels = read_miles(folder)
    >>> spectra.flux.shape
    (2, 50)
    >>> spectra.mask[1, -4:].tolist()
    [False, True, True, True]
    >>> print(labels["miles_id", "name", "teff", "logg"])  # doctest: +NORMALIZE_WHITESPACE
    miles_id   name    teff  logg
                        K    dex
    -------- -------- ------ ----
           1 HD000001 5800.0  4.4
           2 HD000002 4500.0  2.5
    """
    if directory is None:
        directory = find_data_dir("miles")
        if directory is None:
            raise FileNotFoundError(
                "directory: no MILES folder given and none found (set STELLARLATENT_DATA "
                "or stellarlatent.conf.data_dir)"
            )
    directory = Path(directory)
    if not directory.is_dir():
        raise FileNotFoundError(f"directory: {directory} is not a folder")
    files, _ = _select_files(directory, pattern, ids, exclude_flagged)

    params = None
    if (directory / params_file).is_file():
        params = read_miles_table(directory / params_file)
    else:
        log.warning("no parameter table %s in %s; labels are masked", params_file, directory)

    items, read_files, skipped = read_logged(files, _read_one)
    read = [(path, _file_id(path), *item) for path, item in zip(read_files, items)]
    if not read:
        reasons = [f"{name}: {reason}" for name, reason in skipped]
        shown = "; ".join(reasons[:3]) + ("; ..." if len(reasons) > 3 else "")
        raise ValueError(
            f"directory: none of the {len(files)} MILES files in {directory} could be read "
            f"({shown})"
        )
    read, flux_unit = _one_flux_unit(_majority_grid(read, directory))
    flux = [item[2] for item in read]
    kept = [item[0] for item in read]
    kept_ids = [item[1] for item in read]
    axis, header0 = read[0][3], read[0][4]
    if len(kept) < len(files):
        skipped = len(files) - len(kept)
        log.warning("read %d of %d MILES files; %d skipped", len(kept), len(files), skipped)

    flux = np.vstack(flux)
    mask = (flux == 0) | ~np.isfinite(flux)
    batch = SpectraBatch(flux=flux, spectral_axis=axis, mask=mask,
                         flux_unit=flux_unit,
                         meta=_meta(header0, axis.unit))
    labels = _labels_for(kept_ids, kept, params, directory)
    return from_batch(batch), labels


def _grid_text(wave):
    step = (wave[-1] - wave[0]) / (wave.size - 1)
    return f"{wave.size} pixels from {wave[0]:.6g} in steps of {step.value:.6g} {wave.unit}"


def _majority_grid(read, directory):
    """Keep the files on the grid shared by more than half of them; warn about each other one.

    ``read`` holds ``(path, file_id, flux, wave, header)`` per readable file.
    """
    groups = []  # [wave, members]; in order of first appearance
    for item in read:
        for group in groups:
            if same_grid(group[0], item[3], rtol=1e-9):
                group[1].append(item)
                break
        else:
            groups.append([item[3], [item]])
    if len(groups) == 1:
        return read
    wave, members = max(groups, key=lambda group: len(group[1]))
    if 2 * len(members) <= len(read):
        listing = "; ".join(
            f"{len(g[1])} on {_grid_text(g[0])} (first {g[1][0][0].name})" for g in groups
        )
        raise ValueError(
            f"directory: no wavelength grid is shared by most of the {len(read)} MILES files "
            f"in {directory} ({listing}); choose the files of one grid with ids= or pattern=, "
            "or put them on one grid with stellarlatent.preprocessing.Resampler"
        )
    for other_wave, others in groups:
        if other_wave is wave:
            continue
        for item in others:
            log.warning(
                "%s skipped: its wavelength grid (%s) differs from that of %d of the %d files "
                "(%s)",
                item[0].name,
                _grid_text(other_wave),
                len(members),
                len(read),
                _grid_text(wave),
            )
    chosen = {id(item) for item in members}
    return [item for item in read if id(item) in chosen]


def _one_flux_unit(read):
    """``(files, unit)``: the files in the flux unit (``BUNIT``) of most of them, their flux
    converted to it, and that unit.

    Files in an equivalent unit (mJy beside Jy) are converted; the others
    are skipped with a warning naming them.
    """
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", UnknownUnitWarning)
        units = [_flux_unit(item[4], item[0].name) for item in read]
    told = [w for w in caught if issubclass(w.category, UnknownUnitWarning)]
    if told:  # once for the folder, not once per file
        more = f" (and {len(told) - 1} more files)" if len(told) > 1 else ""
        warnings.warn(f"{told[0].message}{more}", UnknownUnitWarning, stacklevel=3)
    groups = []  # [unit, members] of mutually convertible units, in the order first seen
    for k, unit in enumerate(units):
        group = next((g for g in groups if unit.is_equivalent(g[0])), None)
        if group is None:
            groups.append([unit, [k]])
        else:
            group[1].append(k)
    _, members = max(groups, key=lambda g: len(g[1]))
    # the group's most frequent unit (the first seen of those as frequent)
    unit = max((units[k] for k in members), key=lambda x: sum(units[k] == x for k in members))
    kept = []
    for k, item in enumerate(read):
        if k in members:
            factor = float(units[k].to(unit))
            kept.append(item if factor == 1 else (*item[:2], item[2] * factor, *item[3:]))
        else:
            log.warning("%s skipped: its flux unit (%s) cannot be converted to that of %d of the "
                        "%d files (%s)", item[0].name, _unit_text(item[4]), len(members),
                        len(read), unit.to_string() or "dimensionless")
    return kept, unit


def _bunit(unit):
    """``unit`` as FITS writes it, or astropy's generic text for units FITS has no name for
    (electrons, AB magnitudes), which `parse_unit` reads back."""
    try:
        return unit.to_string("fits")
    except (ValueError, u.UnitsError):
        return unit.to_string()


def _unit_text(header):
    bunit = header.get("BUNIT")
    return f"BUNIT {bunit!r}" if bunit else "no BUNIT: dimensionless"


def _format_label(value, fmt, width):
    if np.ma.is_masked(value) or not np.isfinite(value):
        return "--".rjust(width)
    return format(value, fmt).rjust(width)


def write_miles(directory, spectra, labels, *, overwrite=False):
    """Write spectra and labels as a folder in the MILES layout.

    The folder can be read back with `read_miles`; benchmarks use it to hand
    train and test sets to other programs.

    Parameters
    ----------
    directory : str or path-like
        Destination folder (created if needed).
    spectra : `~specutils.Spectrum` or list of `~specutils.Spectrum`
        Spectra on one linear wavelength grid.
    labels : `~astropy.table.Table`
        One row per spectrum with an integer column ``miles_id`` and
        optionally ``name``, ``sptype``, ``teff``, ``logg`` and ``feh``
        (quantities are converted to K and dex; masked values are written
        ``--``).
    overwrite : bool, default=False
        Replace existing files.

    Raises
    ------
    ValueError
        If the grid is not linear, the number of labels differs from the
        number of spectra, or ``miles_id`` is missing.
    """
    batch = to_batch(spectra, "spectra")
    wave = batch.spectral_axis.to(u.AA, equivalencies=u.spectral())
    step = np.diff(wave.value)
    if not np.allclose(step, step[0], rtol=1e-6, atol=0):
        raise ValueError("spectra: MILES files need a linear wavelength grid")
    if "miles_id" not in labels.colnames:
        raise ValueError("labels: a 'miles_id' column is required")
    if len(labels) != batch.n_spectra:
        raise ValueError(
            f"labels: {len(labels)} rows for {batch.n_spectra} spectra; "
            "expected one row per spectrum"
        )
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    table_path = directory / MILES_PARAMS_FILE
    if table_path.exists() and not overwrite:
        raise FileExistsError(f"{table_path} exists; pass overwrite=True to replace it")

    flux = np.where(batch.mask, 0.0, batch.flux)
    for row, miles_id in enumerate(labels["miles_id"]):
        header = fits.Header()
        header["CRPIX1"] = 1
        header["CRVAL1"] = float(wave.value[0])
        header["CDELT1"] = float(step.mean())
        header["CUNIT1"] = "Angstrom"
        if batch.flux_unit != u.dimensionless_unscaled:
            header["BUNIT"] = _bunit(batch.flux_unit)
        fits.PrimaryHDU(flux[row], header=header).writeto(
            directory / f"MILES_res2.50_star_m{int(miles_id):04d}V.fits", overwrite=overwrite
        )

    def text(name, row):
        if name not in labels.colnames or np.ma.is_masked(labels[name][row]):
            return ""
        return str(labels[name][row])

    def number(name, unit, row):
        if name not in labels.colnames:
            return np.nan
        value = labels[name][row]
        if np.ma.is_masked(value):
            return np.nan
        if isinstance(value, u.Quantity):
            value = value.unmasked if hasattr(value, "unmasked") else value
            return float(value.to_value(unit))
        return float(value)

    lines = [
        "Name                  MILES   CaT   SpT            Teff   log g   [Fe/H]  Refs",
        "                      s????",
        " - " * 30,
    ]
    for row in range(len(labels)):
        name = text("name", row) or f"MILES{int(labels['miles_id'][row]):04d}"
        lines.append(
            f"{name[:17]:<22}{int(labels['miles_id'][row]):04d}{'':4}{'':6}"
            f"{text('sptype', row)[:14]:<15}"
            + _format_label(number("teff", u.K, row), ".0f", 5)
            + "  "
            + _format_label(number("logg", u.dex, row), ".2f", 6)
            + "  "
            + _format_label(number("feh", u.dex, row), ".2f", 6)
        )
    table_path.write_text("\n".join(lines) + "\n", encoding="latin-1")
