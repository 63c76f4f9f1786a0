"""Pure PyTorch networks and losses of the two methods of stellarlatent.

Nothing here knows about astropy, specutils or scikit-learn: modules take and
return `torch.Tensor` objects whose shapes their docstrings give (batch first,
spectral axis last). The estimators of `stellarlatent.estimators` wrap them.

Sedaghat et al. (2021), unsupervised discovery:
`ConvVAE`, `SEDAGHAT2021`, `vae_layer_plan`, `vae_loss`, `linear_warmup`.

Gilda (2025), deep-REMAP:
`DeepREMAPNet`, `ResNet1D`, `ResidualBlock1D`, `DeepREMAPOutput`,
`FocalCostLoss`, `class_balance_weights`, `distance_cost_matrix`,
`triplet_loss`, `TemperatureScaler`.
"""

from ._calibration import TemperatureScaler
from .losses import (
    FocalCostLoss,
    class_balance_weights,
    distance_cost_matrix,
    linear_warmup,
    triplet_loss,
    vae_loss,
)
from .resnet import DeepREMAPNet, DeepREMAPOutput, ResidualBlock1D, ResNet1D
from .vae import SEDAGHAT2021, ConvVAE, vae_layer_plan

__all__ = [
    "ConvVAE",
    "SEDAGHAT2021",
    "vae_layer_plan",
    "vae_loss",
    "linear_warmup",
    "DeepREMAPNet",
    "DeepREMAPOutput",
    "ResNet1D",
    "ResidualBlock1D",
    "FocalCostLoss",
    "class_balance_weights",
    "distance_cost_matrix",
    "triplet_loss",
    "TemperatureScaler",
]
