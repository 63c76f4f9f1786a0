"""Scikit-learn estimators trained with PyTorch on CPU or GPU.

`SpectralVAE` compresses spectra into a few latent variables (Sedaghat et al.
2021); `DeepREMAP` predicts stellar parameters with calibrated uncertainties
(Gilda 2025), and `DeepREMAPEnsemble` combines several of them. All take
arrays, batch `~specutils.Spectrum` objects or a
`~stellarlatent.datasets.SpectralStore`, and save to one safe file.

The estimators are imported on first use, so that importing a torch-free
module of this package (the presets the command-line help reads) does not
import torch.
"""

import importlib

__all__ = ["DeepREMAP", "DeepREMAPEnsemble", "QuadraticSpectrumModel", "SpectralVAE",
           "TrainingDivergedError", "resolve_device"]

# where each public name is defined
_MODULES = {
    "DeepREMAP": ".remap",
    "DeepREMAPEnsemble": ".ensemble",
    "QuadraticSpectrumModel": ".spectrum_model",
    "SpectralVAE": ".vae",
    "TrainingDivergedError": "._base",
    "resolve_device": "._base",
}


def __getattr__(name):
    module = _MODULES.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(module, __name__), name)
    globals()[name] = value
    return value


def __dir__():
    return sorted(set(globals()) | set(__all__))
