"""Scikit-learn estimators trained with PyTorch on CPU or GPU.

`SpectralVAE` compresses spectra into a few latent variables (Sedaghat et al.
2021); `DeepREMAP` predicts stellar parameters with calibrated uncertainties
(Gilda 2025), and `DeepREMAPEnsemble` combines several of them. All take arrays, batch `~specutils.Spectrum` objects or a
`~stellarlatent.datasets.SpectralStore`, and save to one safe file.
"""

from ._base import TrainingDivergedError, resolve_device
from .ensemble import DeepREMAPEnsemble
from .remap import DeepREMAP
from .vae import SpectralVAE

__all__ = ["DeepREMAP", "DeepREMAPEnsemble", "SpectralVAE", "TrainingDivergedError", "resolve_device"]
