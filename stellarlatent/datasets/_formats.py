"""The package's own specutils formats, and identifying a file among them in one opening.

``Spectrum.read(path)`` without a format asks every registered identifier,
and each opens the file again: for a HARPS file with a header of 3,000 cards
that costs more than reading it. `identify_format` opens the file once and
asks only the package's identifiers, in the order of their priority.
"""

from pathlib import Path

from astropy.io import fits

__all__ = ["FITS_SUFFIXES", "FORMATS", "SURVEY_SPECTROGRAPHS", "identify_format",
           "complete_survey_meta"]

#: the endings of FITS files, in any case (``name.lower().endswith(FITS_SUFFIXES)``),
#: compressed ones included: the files the commands take from a folder, and the tables
#: the columns format reads as FITS
FITS_SUFFIXES = tuple(f"{ext}{packed}" for ext in (".fits", ".fit", ".fts")
                      for packed in ("", ".gz", ".bz2"))


def _identifiers():
    from . import harps, lamost, miles, phoenix

    return (
        (phoenix.PHOENIX_WAVE_FORMAT, phoenix.identify_phoenix_wave),
        (harps.HARPS_ADP_FORMAT, harps.identify_harps_adp),
        (harps.HARPS_S1D_FORMAT, harps.identify_harps_s1d),
        (miles.MILES_FORMAT, miles.identify_miles),
        (lamost.LAMOST_LRS_FORMAT, lamost.identify_lamost_lrs),
        (lamost.LAMOST_MRS_FORMAT, lamost.identify_lamost_mrs),
        (phoenix.PHOENIX_FORMAT, phoenix.identify_phoenix),
    )


#: the specutils formats the package registers, with what they read
FORMATS = {
    "HARPS-ADP": "HARPS, HARPS-N and ESPRESSO 1-D archive (ESO Phase 3 ADP) spectra",
    "HARPS-s1d": "HARPS-family DRS 1-D spectra (*_s1d_A.fits)",
    "LAMOST-LRS": "LAMOST low-resolution spectra (spec-*.fits)",
    "LAMOST-MRS": "LAMOST medium-resolution spectra (med-*.fits)",
    "MILES": "MILES library spectra (MILES_res2.50_star_m*V.fits)",
    "PHOENIX": "PHOENIX-ACES HiRes model spectra, with the wavelength file beside them",
    "columns": "tables of wavelength, flux and error columns (text, CSV, ECSV, FITS; "
               "read when asked for, or by the commands where the columns' names say so)",
}


def identify_format(path):
    """The package's format of a file, or None when it is none of them (or not FITS).

    Parameters
    ----------
    path : str or path-like

    Returns
    -------
    str or None
        A format name of `FORMATS` (or ``"PHOENIX-wave"`` for the PHOENIX
        wavelength file, which the registry refuses to read as a spectrum).
    """
    path = Path(path)
    identifiers = _identifiers()
    if identifiers[0][1]("read", str(path)):
        return identifiers[0][0]
    try:
        hdulist = fits.open(path, memmap=True, lazy_load_hdus=True)
    except Exception:  # noqa: BLE001 - not FITS: the registry's other formats may read it
        return None
    try:
        for name, identifier in identifiers[1:]:
            if identifier("read", hdulist):
                return name
    finally:
        hdulist.close()
    return None


#: What specutils' own loaders of survey spectra do not record in ``meta``:
#: ``(wavelength_medium, nominal resolving power)`` of each format.
SURVEY_SPECTROGRAPHS = {
    "SDSS-I/II spSpec": ("vacuum", 1800.0),
    "SDSS-III/IV spec": ("vacuum", 2000.0),
    "SDSS-V spec": ("vacuum", 2000.0),
    "SDSS spPlate": ("vacuum", 2000.0),
    "APOGEE apStar": ("vacuum", 22500.0),
    "APOGEE apVisit": ("vacuum", 22500.0),
    "APOGEE aspcapStar": ("vacuum", 22500.0),
    "SDSS-V apStar": ("vacuum", 22500.0),
    "SDSS-V apVisit": ("vacuum", 22500.0),
}


def complete_survey_meta(spectrum, path):
    """Record the medium and resolving power of a survey spectrum read by specutils.

    SDSS and APOGEE spectra are in vacuum wavelengths, but specutils' loaders
    do not say so; for a file one of `SURVEY_SPECTROGRAPHS` identifies,
    ``meta["wavelength_medium"]`` and ``meta["resolution"]`` are set where
    missing, so that `~stellarlatent.preprocessing.InstrumentMatcher` can
    convert and broaden it. Other spectra are returned as they are.

    Parameters
    ----------
    spectrum : `~specutils.Spectrum`
    path : str or path-like
        The file it was read from.

    Returns
    -------
    `~specutils.Spectrum`
        The same object.
    """
    from astropy.io import registry
    from specutils import Spectrum

    meta = spectrum.meta
    if meta is None or not hasattr(meta, "setdefault"):
        return spectrum
    if meta.get("wavelength_medium") in ("air", "vacuum") and meta.get("resolution"):
        return spectrum
    try:
        found = registry.identify_format("read", Spectrum, str(path), None, [], {})
    except Exception:  # noqa: BLE001 - an identifier that fails identifies nothing
        return spectrum
    for name in found:
        if name in SURVEY_SPECTROGRAPHS:
            medium, resolution = SURVEY_SPECTROGRAPHS[name]
            meta.setdefault("wavelength_medium", medium)
            meta.setdefault("resolution", resolution)
            break
    return spectrum
