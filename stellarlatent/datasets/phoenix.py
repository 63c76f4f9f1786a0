"""PHOENIX-ACES-AGSS-COND-2011 high-resolution model spectra (Husser et al. 2013).

Each model is one FITS file whose primary array is the flux in
erg/s/cm^2/cm, with the model parameters in the header keywords ``PHXTEFF``,
``PHXLOGG``, ``PHXM_H`` and ``PHXALPHA``; the wavelengths, in **vacuum**
Angstrom, are in the single file ``WAVE_PHOENIX-ACES-AGSS-COND-2011.fits``.
"""

import re
from pathlib import Path

import astropy.units as u
import numpy as np
from astropy.io import fits
from astropy.table import QTable
from specutils import Spectrum

from .. import conf
from .._batch import SpectraBatch, check_spectral_axis, from_batch
from .._logging import log
from ._docs import fill_doc
from ._io import fits_identifier
from ._reading import read_logged, warn_skipped

__all__ = [
    "read_phoenix",
    "read_phoenix_wave",
    "read_phoenix_grid",
    "fetch_phoenix",
    "phoenix_url",
    "phoenix_wave_url",
    "PHOENIX_FLUX_UNIT",
]

PHOENIX_FLUX_UNIT = u.erg / (u.s * u.cm**2 * u.AA)
"""Flux unit of the spectra returned by the PHOENIX readers."""

_LIBRARY = "PHOENIX-ACES-AGSS-COND-2011"
WAVE_FILE = f"WAVE_{_LIBRARY}.fits"
_FILE_PATTERN = f"lte*.{_LIBRARY}-HiRes.fits"
_NAME = re.compile(
    r"lte(?P<teff>\d{5})-(?P<logg>\d+\.\d+)(?P<feh>[+-]\d+\.\d+)"
    r"(?:\.Alpha=(?P<alpha>[+-]\d+\.\d+))?\." + re.escape(_LIBRARY)
)
_HEADER_LABELS = {"teff": "PHXTEFF", "logg": "PHXLOGG", "feh": "PHXM_H", "alpha": "PHXALPHA"}
_LABEL_UNITS = {"teff": u.K, "logg": u.dex, "feh": u.dex, "alpha": u.dex}
#: Resolving power of the HiRes spectra from 3000 to 25,000 Angstrom (Husser et al. 2013):
#: computed, not observed, so far sharper than any spectrograph they are compared with
_RESOLUTION = 500_000.0
_FEH_VALUES = (-4.0, -3.0, -2.0, -1.5, -1.0, -0.5, 0.0, 0.5, 1.0)
_ALPHA_VALUES = (-0.2, 0.0, 0.2, 0.4, 0.6, 0.8, 1.0, 1.2)


def _value(value, unit, name):
    if isinstance(value, u.Quantity):
        try:
            return float(value.to_value(unit))
        except u.UnitsError:
            raise u.UnitsError(f"{name} must be in {unit}, got '{value.unit}'") from None
    try:
        return float(value)
    except (TypeError, ValueError):
        raise TypeError(
            f"{name} must be a number or a Quantity, got {type(value).__name__}"
        ) from None


def _on_steps(value, values):
    return any(abs(value - v) < 1e-6 for v in values)


def _check_grid_point(teff, logg, feh, alpha):
    teff = _value(teff, u.K, "teff")
    logg = _value(logg, u.dex, "logg")
    feh = _value(feh, u.dex, "feh")
    alpha = _value(alpha, u.dex, "alpha")
    teff_ok = (2300 <= teff <= 7000 and abs(teff / 100 - round(teff / 100)) < 1e-9) or (
        7000 <= teff <= 12000 and abs(teff / 200 - round(teff / 200)) < 1e-9
    )
    if not teff_ok:
        raise ValueError(
            f"teff={teff:g} K is not on the PHOENIX grid: 2300-7000 K in steps of 100 K, "
            "7000-12000 K in steps of 200 K"
        )
    if not (0 <= logg <= 6 and _on_steps(logg, np.arange(0, 6.01, 0.5))):
        raise ValueError(f"logg={logg:g} is not on the PHOENIX grid: 0 to 6 in steps of 0.5")
    if not _on_steps(feh, _FEH_VALUES):
        raise ValueError(f"feh={feh:g} is not on the PHOENIX grid: one of {list(_FEH_VALUES)}")
    if not _on_steps(alpha, _ALPHA_VALUES):
        raise ValueError(
            f"alpha={alpha:g} is not on the PHOENIX grid: one of {list(_ALPHA_VALUES)}"
        )
    if abs(alpha) > 1e-9 and not (-3.0 <= feh <= 0.0 and 3500 <= teff <= 8000):
        raise ValueError(
            f"alpha={alpha:g} needs -3 <= feh <= 0 and 3500 K <= teff <= 8000 K "
            f"(the alpha-enhanced PHOENIX models), got feh={feh:g}, teff={teff:g} K"
        )
    return int(round(teff)), round(logg * 2) / 2, round(feh * 2) / 2, round(alpha * 5) / 5


def _signed(value, digits):
    text = f"{value:+.{digits}f}"
    return "-" + text[1:] if float(text) == 0 else text


def phoenix_url(teff, logg, feh, alpha=0.0):
    """URL of one PHOENIX-ACES HiRes model spectrum on the public server.

    Parameters
    ----------
    teff : float or `~astropy.units.Quantity`
        Effective temperature [K]: 2300-7000 K in steps of 100 K,
        7000-12000 K in steps of 200 K.
    logg : float or `~astropy.units.Quantity`
        Surface gravity [dex], 0 to 6 in steps of 0.5.
    feh : float or `~astropy.units.Quantity`
        Metallicity [dex], one of -4, -3, -2, -1.5, -1, -0.5, 0, +0.5, +1.
    alpha : float or `~astropy.units.Quantity`, default=0.0
        Alpha enhancement [dex], -0.2 to +1.2 in steps of 0.2 (non-zero only
        for -3 <= feh <= 0 and 3500 K <= teff <= 8000 K).

    Returns
    -------
    str
        The URL under ``stellarlatent.conf.phoenix_url``.

    Raises
    ------
    ValueError
        If the parameters are not a point of the grid.

    Examples
    --------
    >>> from stellarlatent.datasets import phoenix_url
    >>> phoenix_url(5800, 4.5, 0.0).split("HiResFITS/")[1]
    'PHOENIX-ACES-AGSS-COND-2011/Z-0.0/lte05800-4.50-0.0.PHOENIX-ACES-AGSS-COND-2011-HiRes.fits'
    >>> phoenix_url(4000, 1.0, -1.0, alpha=0.4).split("/")[-2:]
    ['Z-1.0.Alpha=+0.40', 'lte04000-1.00-1.0.Alpha=+0.40.PHOENIX-ACES-AGSS-COND-2011-HiRes.fits']
    """
    teff, logg, feh, alpha = _check_grid_point(teff, logg, feh, alpha)
    z = _signed(feh, 1)
    folder = f"Z{z}"
    stem = f"lte{teff:05d}-{logg:.2f}{z}"
    if alpha != 0:
        suffix = f".Alpha={alpha:+.2f}"
        folder += suffix
        stem += suffix
    return f"{_base_url()}{_LIBRARY}/{folder}/{stem}.{_LIBRARY}-HiRes.fits"


def phoenix_wave_url():
    """URL of the wavelength file of the PHOENIX-ACES HiRes spectra.

    Examples
    --------
    >>> from stellarlatent.datasets import phoenix_wave_url
    >>> phoenix_wave_url().rsplit("/", 1)[1]
    'WAVE_PHOENIX-ACES-AGSS-COND-2011.fits'
    """
    return f"{_base_url()}{WAVE_FILE}"


def _base_url():
    base = str(conf.phoenix_url)
    return base if base.endswith("/") else base + "/"


def _open_fits(path, name, what, memmap):
    """`astropy.io.fits.open`, with errors that name the file and what it should be."""
    try:
        return fits.open(path, memmap=memmap)
    except (FileNotFoundError, IsADirectoryError, PermissionError):
        raise
    except OSError as exc:
        raise OSError(
            f"{name}: {path} is not a readable FITS file ({exc}); expected {what}"
        ) from None


_WAVE_EXPECTED = f"the PHOENIX wavelength file {WAVE_FILE} (a 1-D primary array)"
_FLUX_EXPECTED = f"a PHOENIX model spectrum {_FILE_PATTERN} (a 1-D primary array)"


@fill_doc
def read_phoenix_wave(wave_file):
    """Read the PHOENIX wavelength file (``WAVE_PHOENIX-ACES-AGSS-COND-2011.fits``).

    Parameters
    ----------
    wave_file : str, path-like or `~astropy.units.Quantity`
        The file, or wavelengths already read (checked and converted).

    Returns
    -------
    `~astropy.units.Quantity`
        The vacuum wavelengths in Angstrom, increasing and positive.

    Raises
    ------
    %(fits_oserror)s
    ValueError
        If it holds no 1-D primary array of increasing positive wavelengths.

    Examples
    --------
    %(fits_example_imports)s
    >>> from stellarlatent.datasets import read_phoenix_wave
    >>> path = os.path.join(tempfile.mkdtemp(), "WAVE_PHOENIX-ACES-AGSS-COND-2011.fits")
    >>> fits.PrimaryHDU(np.linspace(5000.0, 5010.0, 11)).writeto(path)
    >>> read_phoenix_wave(path)[[0, -1]]
    <Quantity [5000., 5010.] Angstrom>
    """
    if isinstance(wave_file, u.Quantity):
        wave, where = wave_file.to(u.AA, equivalencies=u.spectral()), "wave_file"
    else:
        where = f"wave_file: {wave_file}"
        with _open_fits(wave_file, "wave_file", _WAVE_EXPECTED, memmap=False) as hdul:
            data = hdul[0].data
            if data is None or data.ndim != 1:
                raise ValueError(f"{where} has no 1-D primary array; expected {_WAVE_EXPECTED}")
            unit = u.Unit(hdul[0].header.get("UNIT", "Angstrom"), parse_strict="silent")
            if not unit.is_equivalent(u.AA):
                unit = u.AA
            wave = (np.asarray(data, dtype=float) * unit).to(u.AA)
    _, flipped = check_spectral_axis(wave, name=where)
    if flipped or not wave.value[0] > 0:
        raise ValueError(
            f"{where} does not hold increasing positive wavelengths (from {wave[0]:g} to "
            f"{wave[-1]:g}); expected {_WAVE_EXPECTED}"
        )
    return wave


def _range_slice(wave, wavelength_range):
    if wavelength_range is None:
        return slice(None)
    try:
        lo, hi = u.Quantity(wavelength_range).to_value(u.AA, equivalencies=u.spectral())
    except (TypeError, ValueError, u.UnitsError):
        raise ValueError(
            "wavelength_range must be a Quantity (min, max) in spectral units "
            f"(vacuum wavelengths), got {wavelength_range!r}"
        ) from None
    lo, hi = min(lo, hi), max(lo, hi)
    start = np.searchsorted(wave.value, lo, side="left")
    stop = np.searchsorted(wave.value, hi, side="right")
    if stop - start < 2:
        raise ValueError(
            f"wavelength_range ({lo:g}-{hi:g} Angstrom) keeps fewer than two pixels of the "
            f"PHOENIX grid ({wave.value[0]:g}-{wave.value[-1]:g} Angstrom)"
        )
    return slice(start, stop)


def _labels_from(header, path):
    labels = {}
    match = _NAME.search(Path(path).name) if path is not None else None
    for key, card in _HEADER_LABELS.items():
        value = header.get(card)
        if value is None and match is not None:
            value = match.group(key) or (0.0 if key == "alpha" else None)
        labels[key] = np.nan if value is None else float(value)
    return labels


def _read_flux(flux_file, section):
    with _open_fits(flux_file, "flux_file", _FLUX_EXPECTED, memmap=True) as hdul:
        data = hdul[0].data
        if data is None or data.ndim != 1:
            raise ValueError(
                f"flux_file: {flux_file} has no 1-D primary array; expected {_FLUX_EXPECTED}"
            )
        return np.array(data[section], dtype=float), hdul[0].header.copy(), data.size


@fill_doc
def read_phoenix(flux_file, wave_file, *, wavelength_range=None):
    """Read one PHOENIX-ACES HiRes model spectrum.

    Parameters
    ----------
    flux_file : str or path-like
        A ``lte*.PHOENIX-ACES-AGSS-COND-2011-HiRes.fits`` file.
    wave_file : str, path-like or `~astropy.units.Quantity`
        The wavelength file ``WAVE_PHOENIX-ACES-AGSS-COND-2011.fits`` (or its
        wavelengths already read, to save reading it again).
    wavelength_range : `~astropy.units.Quantity`, default=None
        ``(min, max)`` in vacuum wavelengths: keep only the pixels inside
        (the full spectrum has about 1.5 million pixels).

    Returns
    -------
    `~specutils.Spectrum`
        1-D flux in erg/(s cm2 Angstrom) (`PHOENIX_FLUX_UNIT`; the file's
        erg/s/cm^2/cm times 1e-8) on **vacuum** wavelengths in Angstrom.
        ``meta`` holds ``teff`` [K], ``logg``, ``feh`` and ``alpha`` [dex]
        from the header keywords ``PHXTEFF``, ``PHXLOGG``, ``PHXM_H`` and
        ``PHXALPHA`` (from the file name when they are missing),
        ``wavelength_medium="vacuum"``, ``resolution`` (500,000, the
        resolving power of the optical and near-infrared part, so that
        `~stellarlatent.preprocessing.InstrumentMatcher` broadens them to a
        model's resolution), ``filename`` and ``header``. Use
        `stellarlatent.preprocessing.vacuum_to_air` to compare with air
        wavelengths.

    Examples
    --------
    %(fits_example_imports)s
    >>> import astropy.units as u
    >>> from stellarlatent.datasets import read_phoenix
    >>> folder = tempfile.mkdtemp()
    >>> wave = os.path.join(folder, "WAVE_PHOENIX-ACES-AGSS-COND-2011.fits")
    >>> fits.PrimaryHDU(np.linspace(5000.0, 5010.0, 11)).writeto(wave)
    >>> flux = os.path.join(folder, "lte05800-4.50-0.0.PHOENIX-ACES-AGSS-COND-2011-HiRes.fits")
    >>> header = fits.Header({"PHXTEFF": 5800.0, "PHXLOGG": 4.5, "PHXM_H": 0.0, "PHXALPHA": 0.0})
    >>> fits.PrimaryHDU(np.full(11, 2e15, dtype=np.float32), header=header).writeto(flux)
    >>> spectrum = read_phoenix(flux, wave, wavelength_range=[5002, 5005] * u.AA)
    >>> spectrum.flux[:2]  # doctest: +FLOAT_CMP
    <Quantity [2.e+07, 2.e+07] erg / (Angstrom s cm2)>
    >>> spectrum.meta["teff"], spectrum.meta["logg"]
    (<Quantity 5800. K>, <Quantity 4.5 dex>)
    """
    wave = read_phoenix_wave(wave_file)
    section = _range_slice(wave, wavelength_range)
    flux, header, n_flux = _read_flux(flux_file, section)
    if n_flux != wave.size:
        wave_name = "the wave_file Quantity" if isinstance(wave_file, u.Quantity) else wave_file
        raise ValueError(
            f"flux_file: {flux_file} has {n_flux} pixels but wave_file {wave_name} has "
            f"{wave.size}; expected the wavelength file of the same PHOENIX release"
        )
    flux = (flux * (u.erg / (u.s * u.cm**3))).to(PHOENIX_FLUX_UNIT)
    labels = _labels_from(header, flux_file)
    meta = {key: value * _LABEL_UNITS[key] for key, value in labels.items()}
    meta.update(
        wavelength_medium="vacuum", resolution=_RESOLUTION, filename=Path(flux_file).name,
        header=header
    )
    return Spectrum(
        flux=flux,
        spectral_axis=wave[section],
        mask=~np.isfinite(flux.value),
        meta=meta,
    )


def _find_wave_file(directory):
    for folder in [directory, *list(directory.parents)[:3]]:
        candidate = folder / WAVE_FILE
        if candidate.is_file():
            return candidate
    raise FileNotFoundError(
        f"wave_file: no {WAVE_FILE} in {directory} or the three folders above it; pass wave_file"
    )


@fill_doc
def read_phoenix_grid(directory, wave_file=None, *, pattern=_FILE_PATTERN, wavelength_range=None,
                      grid=None, method="flux_conserving"):
    """Read a local folder of PHOENIX-ACES HiRes model spectra.

    Parameters
    ----------
    directory : str or path-like
        Folder searched recursively for files matching ``pattern`` (for
        example a copy of the server's ``PHOENIX-ACES-AGSS-COND-2011`` folder
        with its ``Z-*`` subfolders).
    wave_file : str, path-like or `~astropy.units.Quantity`, default=None
        The wavelength file; by default ``WAVE_PHOENIX-ACES-AGSS-COND-2011.fits``
        in ``directory`` or one of the three folders above it.
    pattern : str, optional
        Glob pattern of the model files (default
        ``"lte*.PHOENIX-ACES-AGSS-COND-2011-HiRes.fits"``).
    wavelength_range : `~astropy.units.Quantity`, default=None
        ``(min, max)`` vacuum wavelengths to keep (strongly advised: the full
        grid has about 1.5 million pixels, 12 MB per spectrum).
    grid : `~stellarlatent.preprocessing.SpectralGrid` or `~astropy.units.Quantity`, default=None
        Resample onto this grid with `~stellarlatent.preprocessing.Resampler`.
    method : str, default="flux_conserving"
        Resampling method when ``grid`` is given.

    Returns
    -------
    spectra : `~specutils.Spectrum`
        A batch (flux ``(n_spectra, n_pixels)`` in `PHOENIX_FLUX_UNIT`,
        spectral axis last, vacuum wavelengths; ``meta`` records the medium
        and the ``resolution`` as `read_phoenix` does).
    labels : `~astropy.table.QTable`
        ``teff`` [K], ``logg``, ``feh``, ``alpha`` [dex] and ``filename``,
        one row per spectrum in the same order (files sorted by path).

    Notes
    -----
    Files that cannot be read are skipped, each with a logged reason.

    Examples
    --------
    %(fits_example_imports)s
    >>> from stellarlatent.datasets import read_phoenix_grid
    >>> folder = tempfile.mkdtemp()
    >>> fits.PrimaryHDU(np.linspace(5000.0, 5010.0, 11)).writeto(
    ...     os.path.join(folder, "WAVE_PHOENIX-ACES-AGSS-COND-2011.fits"))
    >>> for teff in (5800, 6000):
    ...     name = f"lte{teff:05d}-4.50-0.0.PHOENIX-ACES-AGSS-COND-2011-HiRes.fits"
    ...     header = fits.Header({"PHXTEFF": teff, "PHXLOGG": 4.5, "PHXM_H": 0.0,
    ...                           "PHXALPHA": 0.0})
    ...     fits.PrimaryHDU(np.ones(11, np.float32), header=header).writeto(
    ...         os.path.join(folder, name))
    >>> spectra, labels = read_phoenix_grid(folder)
    >>> spectra.flux.shape
    (2, 11)
    >>> labels["teff"].value.tolist()
    [5800.0, 6000.0]
    """
    directory = Path(directory)
    if not directory.is_dir():
        raise FileNotFoundError(f"directory: {directory} is not a folder")
    files = sorted(directory.rglob(pattern))
    if not files:
        raise FileNotFoundError(f"directory: no files matching '{pattern}' in {directory}")
    wave = read_phoenix_wave(_find_wave_file(directory) if wave_file is None else wave_file)
    spectra, kept, _ = read_logged(
        files, lambda path: read_phoenix(path, wave, wavelength_range=wavelength_range))
    if not spectra:
        raise ValueError(f"directory: none of the {len(files)} PHOENIX files could be read")
    warn_skipped(kept, files, "PHOENIX")

    labels = QTable()
    for key, unit in _LABEL_UNITS.items():
        labels[key] = u.Quantity([s.meta[key].to_value(unit) for s in spectra], unit)
    labels["filename"] = np.array([p.name for p in kept], dtype=str)

    if grid is not None:
        from ..preprocessing import Resampler

        batch = Resampler(grid=grid, method=method).fit(spectra).transform(spectra)
        batch.meta.clear()
        batch.meta.update(wavelength_medium="vacuum", resolution=_RESOLUTION)
        return batch, labels
    flux = np.vstack([s.flux.value for s in spectra])
    batch = SpectraBatch(
        flux=flux,
        spectral_axis=spectra[0].spectral_axis,
        mask=~np.isfinite(flux),
        flux_unit=PHOENIX_FLUX_UNIT,
        meta={"wavelength_medium": "vacuum", "resolution": _RESOLUTION},
    )
    return from_batch(batch), labels


def fetch_phoenix(teff, logg, feh, alpha=0.0, *, wavelength_range=None, cache=None, timeout=None):
    """Download one PHOENIX-ACES HiRes model spectrum (cached) and read it.

    Parameters
    ----------
    teff, logg, feh, alpha : float or `~astropy.units.Quantity`
        A point of the grid (see `phoenix_url`).
    wavelength_range : `~astropy.units.Quantity`, default=None
        ``(min, max)`` vacuum wavelengths to keep.
    cache : bool, default=None
        Use the astropy download cache of stellarlatent (default
        ``conf.cache``).
    timeout : float, default=None
        Seconds to wait for the server (default ``conf.remote_timeout``).

    Returns
    -------
    `~specutils.Spectrum`
        As returned by `read_phoenix`.

    Notes
    -----
    The files come from ``conf.phoenix_url`` through
    `astropy.utils.data.download_file` (about 6 MB per model plus 6 MB for the
    wavelength file, downloaded once).
    """
    from astropy.utils.data import download_file

    url = phoenix_url(teff, logg, feh, alpha)
    cache = conf.cache if cache is None else cache
    timeout = conf.remote_timeout if timeout is None else timeout
    log.info("downloading %s", url)
    wave = download_file(phoenix_wave_url(), cache=cache, pkgname="stellarlatent", timeout=timeout)
    flux = download_file(url, cache=cache, pkgname="stellarlatent", timeout=timeout)
    spectrum = read_phoenix(flux, wave, wavelength_range=wavelength_range)
    spectrum.meta["filename"] = url.rsplit("/", 1)[1]
    spectrum.meta["url"] = url
    return spectrum


PHOENIX_FORMAT = "PHOENIX"
PHOENIX_WAVE_FORMAT = "PHOENIX-wave"


def _file_name(args):
    """The file name of what the registry passes an identifier or loader, or None."""
    if not args:
        return None
    first = args[0]
    if isinstance(first, (str, Path)):
        return Path(first)
    if isinstance(first, fits.HDUList):
        return Path(first.filename()) if first.filename() else None
    name = getattr(first, "name", None)
    return Path(name) if isinstance(name, str) else None


@fits_identifier
def identify_phoenix(hdulist, args):
    """Tell whether a file is a PHOENIX-ACES HiRes model spectrum.

    Its name must be that of the library (``lte*.PHOENIX-ACES-AGSS-COND-2011-HiRes.fits``)
    or its primary header must hold ``PHXTEFF``, over a 1-D primary array.
    Never raises.
    """
    path = _file_name(args)
    named = path is not None and _NAME.search(path.name) is not None
    header = hdulist[0].header
    return header.get("NAXIS") == 1 and (named or "PHXTEFF" in header)


def identify_phoenix_wave(origin, *args, **kwargs):
    """Tell whether a file is the PHOENIX wavelength file (by its name). Never raises.

    Parameters
    ----------
    origin : str
        ``"read"`` or ``"write"``.
    *args
        The file name, file object or `~astropy.io.fits.HDUList`.

    Returns
    -------
    bool
    """
    try:
        path = _file_name(args)
        return origin == "read" and path is not None and path.name == WAVE_FILE
    except Exception:  # noqa: BLE001 - an identifier must never raise
        return False


_WAVE_CACHE = {}


def _wave_beside(flux_path, wave_file):
    """The wavelengths for a flux file: of ``wave_file``, else of the file found beside it.

    The last wavelength file read is kept (by path, size and modification
    time), so that reading a folder of models reads it once.
    """
    if wave_file is None:
        if flux_path is None:
            raise ValueError("wave_file: give the PHOENIX wavelength file (the flux file has "
                             "no name to look for it beside)")
        wave_file = _find_wave_file(Path(flux_path).resolve().parent)
    if isinstance(wave_file, u.Quantity):
        return wave_file
    path = Path(wave_file)
    try:
        stat = path.stat()
        key = (str(path.resolve()), stat.st_size, stat.st_mtime_ns)
    except OSError:
        return read_phoenix_wave(wave_file)
    if key not in _WAVE_CACHE:
        _WAVE_CACHE.clear()
        _WAVE_CACHE[key] = read_phoenix_wave(wave_file)
    return _WAVE_CACHE[key]


def _register():
    from ._loader import register_loader

    @register_loader(PHOENIX_FORMAT, identify_phoenix)
    def phoenix_loader(file_obj, wave_file=None, wavelength_range=None, **kwargs):
        """Read a PHOENIX-ACES HiRes model spectrum (`read_phoenix`).

        ``wave_file`` defaults to ``WAVE_PHOENIX-ACES-AGSS-COND-2011.fits`` in
        the model's folder or one of the three folders above it.
        """
        path = _file_name((file_obj,))
        wave = _wave_beside(path, wave_file)
        flux_file = file_obj if isinstance(file_obj, (str, Path)) else path
        if flux_file is None:
            raise ValueError("flux_file: the PHOENIX loader reads files by name; give a path")
        return read_phoenix(flux_file, wave, wavelength_range=wavelength_range)

    @register_loader(PHOENIX_WAVE_FORMAT, identify_phoenix_wave, priority=20)
    def phoenix_wave_loader(file_obj, **kwargs):
        """Refuse the PHOENIX wavelength file: it holds wavelengths, not a spectrum."""
        name = _file_name((file_obj,))
        raise ValueError(
            f"{name}: this is the PHOENIX wavelength file ({WAVE_FILE}), not a spectrum; "
            "read the model files (lte*.PHOENIX-ACES-AGSS-COND-2011-HiRes.fits) beside it"
        )

    return phoenix_loader, phoenix_wave_loader


_register()
