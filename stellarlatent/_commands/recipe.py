"""The recipe that ``stellarlatent fit-remap`` trains by default (light to import: cli.py reads it).

An ensemble of `MEMBERS` DeepREMAP networks, each pre-trained with its own
seed on `N_SYNTHETIC` synthetic spectra made like the training spectra for
`PRETRAIN_EPOCHS` epochs, fine-tuned on the training spectra for
`EPOCHS_PRETRAINED` epochs, their log-probabilities averaged, joined by a
ridge expert and calibrated by coverage on the out-of-fold predictions of
`CALIBRATION_CV` more fine-tunings, each type of star of `CALIBRATE_BY` on
its own (Gilda 2025; the settings of ``benchmarks/bench_parameters.py``).
"""

import math

# torch-free: the estimators package imports its estimators lazily
from ..estimators._presets import CONTRAST_KMS, PRESETS, odd_window

__all__ = ["RECIPE", "MEMBERS", "PRETRAIN_EPOCHS", "N_SYNTHETIC", "EPOCHS_PRETRAINED",
           "EPOCHS_SCRATCH", "CALIBRATION_CV", "CALIBRATION_FRACTION", "CALIBRATE_BY",
           "CONTRAST_KMS",
           "VAE_DEFAULTS", "recipe_member", "contrast_window", "parse_calibrate_by"]

#: The network and training settings: DeepREMAP's "miles" preset (its defaults), a
#: small residual CNN for ~2000-pixel spectra and a few hundred to a few thousand
#: training stars on a CPU.
RECIPE = dict(PRESETS["miles"])
#: --members, --pretrain-epochs, --n-synthetic
MEMBERS, PRETRAIN_EPOCHS, N_SYNTHETIC = 3, 30, 4000
#: --epochs: of fine-tuning after pre-training, or of training from scratch
EPOCHS_PRETRAINED, EPOCHS_SCRATCH = 40, 150
#: --calibration-cv: folds of the cross-calibration (DeepREMAPEnsemble.cross_calibrate)
CALIBRATION_CV = 5
#: --calibration-fraction: stars held out to calibrate when not cross-calibrating
CALIBRATION_FRACTION = 0.2
#: --calibrate-by: an ensemble that predicts Teff calibrates cool, FGK and hot stars apart
#: (DeepREMAPEnsemble.calibrate's ``by``; a type with too few stars keeps the overall one)
CALIBRATE_BY = ("teff", (4000.0, 7000.0))

#: fit-vae's settings without --preset, by estimator parameter (its options' defaults)
VAE_DEFAULTS = {"latent_dim": 8, "beta": 0.003, "line_weight": 0.0,
                "kl_reduction": "mean", "lr_schedule": "constant", "max_epochs": 30,
                "batch_size": 64, "lr": 2e-3, "validation_fraction": 0.1}
# CONTRAST_KMS, the width of the contrast channel's running mean as a velocity (km/s),
# is DeepREMAP's (contrast_window="auto"): 33 pixels of the 2048-pixel log-uniform grid
# over 3700-7300 Angstrom, about 55 Angstrom at 5000.


def recipe_member(labels):
    """A DeepREMAP with the recommended settings (the "miles" preset) for ``labels``."""
    from ..estimators import DeepREMAP

    return DeepREMAP.from_preset("miles", labels=tuple(labels))


def contrast_window(spectral_axis):
    """The recipe's contrast window on a grid, in pixels (odd).

    33 pixels on the 2048-pixel log-uniform MILES grid of 3700-7300 Angstrom;
    on other grids the same velocity width at the middle pixel, at least 3
    pixels and at most a quarter of the spectrum.

    >>> import numpy as np
    >>> contrast_window(np.geomspace(3700, 7300, 2048))
    33
    >>> contrast_window(np.geomspace(4600, 5900, 256))
    11
    """
    import numpy as np

    axis = np.asarray(getattr(spectral_axis, "value", spectral_axis), dtype=float)
    n = axis.size
    middle = max(1, n // 2)
    step = 299792.458 * abs(math.log(axis[middle] / axis[middle - 1]))
    return odd_window(round(CONTRAST_KMS / step) if step > 0 else 3, n)


def parse_calibrate_by(given):
    """``--calibrate-by`` values as DeepREMAPEnsemble's ``by``.

    Not given (None): the recipe's `CALIBRATE_BY`; ``["none"]``: None (one
    calibration for every star); else ``(label, [edges])``.

    Raises
    ------
    ValueError
        If the values are not a label and one or more increasing numbers.

    Examples
    --------
    >>> parse_calibrate_by(None), parse_calibrate_by(["none"])
    (('teff', [4000.0, 7000.0]), None)
    >>> parse_calibrate_by(["logg", "3.5"])
    ('logg', [3.5])
    """
    if given is None:
        return CALIBRATE_BY[0], list(CALIBRATE_BY[1])
    if [v.lower() for v in given] == ["none"]:
        return None
    try:
        edges = [float(v) for v in given[1:]]
    except ValueError:
        edges = []
    if len(given) < 2 or not edges or any(b <= a for a, b in zip(edges, edges[1:])):
        raise ValueError("--calibrate-by takes a label and one or more increasing values that "
                         f"separate the types, for example 'teff 4000 7000'; got "
                         f"{' '.join(given)!r}")
    return given[0], edges
