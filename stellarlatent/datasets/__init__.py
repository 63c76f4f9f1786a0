"""Readers for stellar spectra, an out-of-core store and download helpers."""

from ._formats import SURVEY_SPECTROGRAPHS, complete_survey_meta
from ._paths import find_data_dir
from ._io import UnknownUnitWarning
from .harps import (
    identify_harps_adp,
    identify_harps_s1d,
    read_harps,
    read_harps_adp,
    read_harps_s1d,
)
from .lamost import identify_lamost_lrs, identify_lamost_mrs, read_lamost_lrs, read_lamost_mrs
from .miles import (
    MILES_FLAGGED,
    identify_miles,
    read_miles,
    read_miles_spectrum,
    read_miles_table,
    write_miles,
)
from .phoenix import (
    PHOENIX_FLUX_UNIT,
    fetch_phoenix,
    phoenix_url,
    phoenix_wave_url,
    read_phoenix,
    read_phoenix_grid,
    read_phoenix_wave,
)
from ._reading import SkippedFile, SpectraRead, read_spectra_files
from .columns import COLUMNS_FORMAT, read_columns
from .store import SpectralStore, StoreSubset
from .synthetic import make_synthetic_spectra

__all__ = [
    "find_data_dir",
    "read_columns",
    "COLUMNS_FORMAT",
    "read_miles",
    "read_miles_table",
    "read_miles_spectrum",
    "identify_miles",
    "write_miles",
    "MILES_FLAGGED",
    "read_harps",
    "read_harps_adp",
    "identify_harps_adp",
    "read_harps_s1d",
    "identify_harps_s1d",
    "read_lamost_lrs",
    "identify_lamost_lrs",
    "read_lamost_mrs",
    "identify_lamost_mrs",
    "UnknownUnitWarning",
    "read_phoenix",
    "read_phoenix_grid",
    "read_phoenix_wave",
    "fetch_phoenix",
    "phoenix_url",
    "phoenix_wave_url",
    "PHOENIX_FLUX_UNIT",
    "SpectralStore",
    "StoreSubset",
    "make_synthetic_spectra",
    "read_spectra_files",
    "SpectraRead",
    "SkippedFile",
    "complete_survey_meta",
    "SURVEY_SPECTROGRAPHS",
]
