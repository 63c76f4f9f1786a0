"""Spectra kept as columns of a table: text (whitespace, CSV, ECSV) or a FITS binary table.

The ``"columns"`` format of `specutils.Spectrum.read` takes the wavelength,
flux and, when there is one, error columns by their names (``wave``,
``lambda``, ``flux``, ``err``...), or else the first two numeric columns.
Units come from the columns where the table records them; a wavelength
without one is taken in Angstrom (and a column named ``loglam`` as its
base-10 logarithm), a flux without one as a relative flux.
"""

from pathlib import Path

import astropy.units as u
import numpy as np
from astropy.nddata import InverseVariance, StdDevUncertainty, VarianceUncertainty
from astropy.table import Table
from specutils import Spectrum

from ._formats import FITS_SUFFIXES
from ._loader import register_loader, spectral_axis

__all__ = ["COLUMNS_FORMAT", "read_columns"]

COLUMNS_FORMAT = "columns"

_WAVELENGTH = ("wavelength", "wave", "lambda", "lam", "wl", "wavelength_air", "wavelength_vac",
               "awav", "vacwave", "airwave", "frequency", "freq", "nu", "loglam", "log_wave",
               "logwave", "log_lambda")
_LOG_WAVELENGTH = ("loglam", "log_wave", "logwave", "log_lambda")
_FREQUENCY = ("frequency", "freq", "nu")
_FLUX = ("flux", "flux_norm", "norm_flux", "normalized_flux", "f_lambda", "flam", "f_lam",
         "f_nu", "fnu", "flux_density", "intensity", "spec", "f")
#: error columns and what they hold
_ERROR = {"error": "sigma", "err": "sigma", "flux_err": "sigma", "flux_error": "sigma",
          "e_flux": "sigma", "sigma": "sigma", "uncertainty": "sigma", "unc": "sigma",
          "ivar": "ivar", "inverse_variance": "ivar", "flux_ivar": "ivar",
          "var": "variance", "variance": "variance", "flux_var": "variance"}


def _read_table(path):
    name = Path(path).name.lower()
    if name.endswith(FITS_SUFFIXES):
        return Table.read(path, hdu=1 if not name.endswith(".gz") else None)
    if name.endswith(".ecsv"):
        return Table.read(path, format="ascii.ecsv")
    try:
        return Table.read(path, format="ascii")
    except Exception:  # noqa: BLE001 - astropy's guessing fails in many ways
        # plain columns of numbers, no header line
        return Table.read(path, format="ascii.no_header")


def _numeric(table):
    return [name for name in table.colnames
            if table[name].ndim == 1 and np.issubdtype(table[name].dtype, np.number)]


def _pick(names, wanted):
    lower = {name.lower(): name for name in names}
    for candidate in wanted:
        if candidate in lower:
            return lower[candidate]
    return None


def _values(column):
    values = np.ma.filled(np.ma.asarray(column, dtype=float), np.nan)
    return np.asarray(values, dtype=float)


def _unit(column):
    unit = getattr(column, "unit", None)
    return None if unit is None else u.Unit(unit)


def read_columns(path, wavelength=None, flux=None, error=None, wavelength_unit=None,
                 flux_unit=None, by_name=False):
    """Read a spectrum kept as columns of a table.

    Parameters
    ----------
    path : str or path-like
        A text table (whitespace-separated, CSV, ECSV; a header line of
        names or none) or a FITS binary table (first extension).
    wavelength, flux, error : str, default=None
        Column names; by default found by their usual names (``wave``,
        ``wavelength``, ``lambda``, ``loglam``...; ``flux``, ``flux_norm``,
        ``f_lambda``...; ``err``, ``sigma``, ``ivar``, ``var``...), else
        the first and second numeric columns (no error column then).
    wavelength_unit, flux_unit : str or `~astropy.units.Unit`, default=None
        Units where the table records none: Angstrom (a ``loglam`` column
        read as the base-10 logarithm of Angstrom, a ``freq`` or ``nu``
        column as Hz) and a relative flux.
    by_name : bool, default=False
        Take the wavelength and flux columns by their names only (or, in a
        table without a header line, the first two): a table of other
        numbers, such as a label table, is then refused rather than read.
        The ``stellarlatent`` commands read so the files that no other
        format reads.

    Returns
    -------
    `~specutils.Spectrum`
        ``meta["filename"]`` holds the file name, ``meta["columns"]`` the
        columns read.

    Examples
    --------
    >>> import tempfile
    >>> from pathlib import Path
    >>> path = Path(tempfile.mkdtemp()) / "star.txt"
    >>> _ = path.write_text("# wave flux\\n5000.0 1.00\\n5000.5 0.98\\n5001.0 0.97\\n")
    >>> spectrum = read_columns(path)
    >>> spectrum.spectral_axis
    <SpectralAxis [5000. , 5000.5, 5001. ] Angstrom>
    >>> spectrum.meta["columns"]
    {'wavelength': 'wave', 'flux': 'flux', 'error': None}
    """
    name = Path(path).name
    try:
        table = _read_table(path)
    except Exception as exc:  # noqa: BLE001 - astropy's readers raise many types
        raise ValueError(f"{name}: not a table of columns ({type(exc).__name__}: "
                         f"{str(exc).splitlines()[0] if str(exc) else ''})") from None
    numeric = _numeric(table)
    if len(numeric) < 2:
        raise ValueError(f"{name}: a spectrum in columns needs a wavelength and a flux column "
                         f"of numbers; the table has {len(numeric)} ({table.colnames})")
    for given, what in ((wavelength, "wavelength"), (flux, "flux"), (error, "error")):
        if given is not None and given not in numeric:
            raise ValueError(f"{what}={given!r}: no numeric column of that name in {name} "
                             f"(it has {numeric})")
    headerless = all(n == f"col{k + 1}" for k, n in enumerate(table.colnames))
    wave_name = wavelength or _pick(numeric, _WAVELENGTH)
    rest = [n for n in numeric if n != wave_name]
    flux_name = flux or _pick(rest, _FLUX) or next((n for n in rest if "flux" in n.lower()),
                                                   None)
    if by_name and not headerless and (wave_name is None or flux_name is None):
        raise ValueError(f"{name}: no wavelength and flux columns by their names "
                         f"({table.colnames}); read it with format='columns' (--format "
                         "columns) to take its first two numeric columns")
    wave_name = wave_name or numeric[0]
    rest = [n for n in numeric if n != wave_name]
    flux_name = flux_name if flux_name in rest else rest[0]
    error_name = error or _pick([n for n in rest if n != flux_name], _ERROR)

    wave = _values(table[wave_name])
    unit = _unit(table[wave_name]) or (u.Unit(wavelength_unit) if wavelength_unit else None)
    if wave_name.lower() in _LOG_WAVELENGTH and unit in (None, u.dex(u.AA)):
        wave, unit = 10.0 ** wave, u.AA
    if wave_name.lower() in _FREQUENCY and unit is None:
        unit = u.Hz
    if unit is None:
        if np.nanmax(wave) < 100:
            raise ValueError(
                f"{name}: the wavelengths of column {wave_name!r} run to {np.nanmax(wave):.4g} "
                "without a unit; give it (wavelength_unit, or --format columns reads Angstrom "
                "only: micron or nm need a unit in the table's header)")
        unit = u.AA
    values = _values(table[flux_name])
    funit = _unit(table[flux_name]) or (u.Unit(flux_unit) if flux_unit else u.one)
    order = np.argsort(wave, kind="stable") if not np.all(np.diff(wave) > 0) else None
    uncertainty = None
    if error_name is not None:
        errors = _values(table[error_name])
        kind = _ERROR.get(error_name.lower(), "sigma")
        eunit = _unit(table[error_name])
        if kind == "ivar":
            uncertainty = InverseVariance(errors, unit=eunit or funit**-2)
        elif kind == "variance":
            uncertainty = VarianceUncertainty(errors, unit=eunit or funit**2)
        else:
            uncertainty = StdDevUncertainty(errors, unit=eunit or funit)
    if order is not None:
        wave, values = wave[order], values[order]
        if uncertainty is not None:
            uncertainty = type(uncertainty)(uncertainty.array[order], unit=uncertainty.unit)
    axis, _ = spectral_axis(wave * unit, "wavelength", "columns")  # sorted above
    return Spectrum(flux=values * funit, spectral_axis=axis, uncertainty=uncertainty,
                    meta={"filename": name, "columns": {"wavelength": wave_name,
                                                        "flux": flux_name,
                                                        "error": error_name}})


def _never(*args, **kwargs):
    # any table could be read so: the format is asked for, never guessed
    return False


@register_loader(COLUMNS_FORMAT, _never,
                 extensions=("txt", "dat", "csv", "tsv", "ecsv", "ascii", "fits"), priority=-10)
def _load_columns(file_obj, **kwargs):
    """Read a spectrum kept as columns of a table (`read_columns`)."""
    if not isinstance(file_obj, (str, Path)):
        raise TypeError("the 'columns' format reads a file by its path")
    return read_columns(file_obj, **kwargs)
