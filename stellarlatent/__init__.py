"""Learn from large collections of stellar spectra.

stellarlatent turns `specutils.Spectrum` objects on any grid into training
batches (`stellarlatent.preprocessing`), reads real and synthetic spectra
(`stellarlatent.datasets`), trains a convolutional beta-VAE and the deep-REMAP
parameter network (`stellarlatent.estimators`), and diagnoses what they learned
(`stellarlatent.diagnostics`).
"""

from astropy import config as _config

try:
    from ._version import version as __version__
except ImportError:  # pragma: no cover - only in a source tree without setuptools_scm
    __version__ = "0.0.0"

__all__ = ["__version__", "conf"]


class Conf(_config.ConfigNamespace):
    """Configuration for stellarlatent: data sources, cache and timeouts only.

    Science hyperparameters are arguments of the classes that use them, never
    configuration items.
    """

    phoenix_url = _config.ConfigItem(
        "https://phoenix.astro.physik.uni-goettingen.de/data/HiResFITS/",
        "Base URL of the PHOENIX-ACES HiRes model spectra (Husser et al. 2013).",
    )
    data_dir = _config.ConfigItem(
        "",
        "Directory holding local data such as the MILES library; the environment "
        "variable STELLARLATENT_DATA takes precedence when set.",
    )
    remote_timeout = _config.ConfigItem(
        60.0, "Timeout in seconds for downloads from remote archives.", cfgtype="float"
    )
    cache = _config.ConfigItem(
        True, "Cache downloaded files in the astropy cache of stellarlatent.", cfgtype="boolean"
    )


conf = Conf()
