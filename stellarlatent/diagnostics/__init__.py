"""Numbers and figures that tell what a model learned and how far to trust it.

Disentanglement (Sedaghat et al. 2021): `latent_mad`,
`informative_dimensions`, `mutual_information`, `latent_correlation`,
`latent_dependence` (are the latents independent of each other?),
`beta_sweep` and `BetaSweepDisplay` (the paper's beta study), the
`DisentanglementReport` that gathers them, `LatentTraversalDisplay`, and
`LatentExplorer` (an interactive page: latent sliders, scatter, neighbours).

Calibration (deep-REMAP, Gilda 2025): `expected_calibration_error`,
`reliability_curve`, `interval_coverage`, `negative_log_likelihood` and
`CalibrationDisplay`.

Metrics are pure functions that return numbers or `~astropy.table.Table`;
figures are ``*Display`` classes with ``from_estimator``, ``from_predictions``
and ``plot``. matplotlib is imported only when a figure is drawn.
"""

from .beta_sweep import BetaSweep, BetaSweepDisplay, beta_sweep
from .calibration import (
    expected_calibration_error,
    interval_coverage,
    negative_log_likelihood,
    reliability_curve,
)
from .calibration_display import CalibrationDisplay
from .dependence import LatentDependence, latent_dependence
from .disentanglement import (
    informative_dimensions,
    latent_correlation,
    latent_mad,
    mutual_information,
)
from .explorer import LatentExplorer
from .report import BestDimension, DisentanglementReport
from .traversal import LatentTraversalDisplay

__all__ = [
    "latent_mad",
    "informative_dimensions",
    "mutual_information",
    "latent_correlation",
    "latent_dependence",
    "LatentDependence",
    "beta_sweep",
    "BetaSweep",
    "BetaSweepDisplay",
    "DisentanglementReport",
    "BestDimension",
    "LatentTraversalDisplay",
    "LatentExplorer",
    "expected_calibration_error",
    "reliability_curve",
    "interval_coverage",
    "negative_log_likelihood",
    "CalibrationDisplay",
]
