"""The named settings of `DeepREMAP.from_preset` and the width of its contrast channel.

Plain Python, without torch or numpy: ``stellarlatent._commands.recipe``
reads these for the command-line help, and building that help must not
import torch (``stellarlatent.estimators`` imports its estimators lazily).
"""

import math

__all__ = ["CONTRAST_KMS", "PRESETS", "odd_window"]

#: contrast_window="auto": 33 pixels of the 2048-pixel log-uniform grid over
#: 3700-7300 Angstrom (about 55 Angstrom at 5000), as a velocity in km/s.
CONTRAST_KMS = 33 * 299792.458 * math.log(7300.0 / 3700.0) / 2047

#: Named settings of `DeepREMAP.from_preset`.
PRESETS = {
    # The recommended recipe, which the constructor defaults are: a small residual CNN
    # for ~2000-pixel spectra (MILES: 3700-7300 Angstrom at 2.5 Angstrom FWHM) and a few
    # hundred to a few thousand training stars, on a CPU; the contrast channel 55
    # Angstrom wide, "auto" bins of a fixed width per label, Gaussian soft targets one
    # bin wide for the errors of observed labels, no held-out monitoring set.
    "miles": {
        "base_channels": 8,
        "n_stages": 4,
        "blocks_per_stage": 1,
        "kernel_size": 7,
        "standardize": True,
        "class_balance": False,
        "label_smoothing": 1.0,
        "lr": 3e-3,
        "batch_size": 32,
        "validation_fraction": 0.0,
        "contrast_window": "auto",
        "n_bins": "auto",
        "log_teff": True,
        "max_epochs": 40,
    },
}


def odd_window(window, n_pixels):
    """``window`` pixels made odd (rounded down), at least 3 and at most a quarter of the spectrum.

    >>> odd_window(33.4, 2048), odd_window(40, 2048), odd_window(900, 2048), odd_window(1, 64)
    (33, 39, 511, 3)
    """
    window = min(int(window), n_pixels // 4)
    window = window if window % 2 else window - 1
    return max(3, window)
