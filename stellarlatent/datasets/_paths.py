"""Where the real spectra shipped beside the project live."""

import os
from pathlib import Path

from .. import conf

__all__ = ["find_data_dir"]

_REPO_DEFAULT = Path(__file__).resolve().parents[2].parent / "shared" / "data"


def find_data_dir(subdir=None):
    """Return the local data directory, or ``None`` when there is none.

    The directory is, in order of precedence: the environment variable
    ``STELLARLATENT_DATA``, the configuration item ``conf.data_dir``, and
    ``../shared/data`` beside a source checkout.

    Parameters
    ----------
    subdir : str, default=None
        A folder inside the data directory, for example ``"miles"``.

    Returns
    -------
    `pathlib.Path` or None
    """
    candidates = [os.environ.get("STELLARLATENT_DATA"), conf.data_dir, _REPO_DEFAULT]
    for candidate in candidates:
        if not candidate:
            continue
        path = Path(candidate).expanduser()
        if subdir is not None:
            path = path / subdir
        if path.is_dir():
            return path
    return None
