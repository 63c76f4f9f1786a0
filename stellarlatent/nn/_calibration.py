"""Temperature scaling of classifier logits (Guo et al. 2017)."""

import torch
from torch import nn
from torch.nn import functional as F

from ._utils import check_int

__all__ = ["TemperatureScaler"]


class TemperatureScaler(nn.Module):
    """Divide logits by a learned temperature to calibrate probabilities.

    The temperature is parametrised by its logarithm, so it stays positive,
    and fitted by minimising the negative log-likelihood of held-out data with
    L-BFGS. A temperature above 1 softens over-confident probabilities; the
    ranking of the classes, hence the accuracy, does not change.

    Parameters
    ----------
    n_temperatures : int, default=1
        1 for one temperature shared by all classes, or ``n_bins`` for one per
        class (logit column).

    Attributes
    ----------
    log_temperature : `~torch.nn.Parameter`, shape (n_temperatures,)

    Examples
    --------
    >>> import torch
    >>> torch.manual_seed(0)  # doctest: +IGNORE_OUTPUT
    >>> target = torch.randint(0, 5, (500,))
    >>> logits = torch.randn(500, 5) * 2.0
    >>> logits[torch.arange(500), target] += 2.0
    >>> scaler = TemperatureScaler().fit(10.0 * logits, target)
    >>> float(scaler.temperature) > 1.0
    True
    >>> tuple(scaler(logits).shape)
    (500, 5)
    """

    def __init__(self, n_temperatures=1):
        super().__init__()
        self.n_temperatures = check_int(n_temperatures, "n_temperatures")
        self.log_temperature = nn.Parameter(torch.zeros(self.n_temperatures))

    @property
    def temperature(self):
        """The temperature(s), ``exp(log_temperature)`` (a tensor without gradient)."""
        return self.log_temperature.detach().exp()

    def _check_logits(self, logits):
        if not isinstance(logits, torch.Tensor) or logits.ndim != 2:
            shape = (
                tuple(logits.shape) if isinstance(logits, torch.Tensor) else type(logits).__name__
            )
            raise ValueError(f"logits must be a tensor of shape (batch, n_bins), got {shape}")
        if self.n_temperatures not in (1, logits.shape[1]):
            raise ValueError(
                f"logits must have {self.n_temperatures} columns (n_temperatures) "
                f"or n_temperatures must be 1, got {logits.shape[1]} columns"
            )

    def forward(self, logits):
        """Scaled logits ``logits / temperature``, shape ``(B, n_bins)``."""
        self._check_logits(logits)
        return logits / self.log_temperature.exp()

    def fit(self, logits, target, *, ignore_index=-1, max_iter=100, lr=0.1):
        """Fit the temperature on held-out logits by minimising the NLL.

        Parameters
        ----------
        logits : Tensor, shape (B, n_bins)
            Uncalibrated logits (detached before fitting).
        target : Tensor of int, shape (B,)
            True bins; ``ignore_index`` marks a missing label.
        ignore_index : int, default=-1
        max_iter : int, default=100
            Maximum L-BFGS iterations.
        lr : float, default=0.1
            L-BFGS step size (a strong-Wolfe line search refines it).

        Returns
        -------
        self
        """
        self._check_logits(logits)
        max_iter = check_int(max_iter, "max_iter")
        logits = logits.detach().to(self.log_temperature)
        target = torch.as_tensor(target, device=logits.device)
        if target.shape != logits.shape[:1] or target.is_floating_point():
            raise ValueError(
                f"target must be integers of shape ({logits.shape[0]},), got {tuple(target.shape)}"
            )
        valid = target != ignore_index
        if not valid.any():
            raise ValueError("target must hold at least one known label to fit a temperature")
        logits, target = logits[valid], target[valid].long()
        if ((target < 0) | (target >= logits.shape[1])).any():
            raise ValueError(f"target must hold bin indices in [0, {logits.shape[1]})")

        optimizer = torch.optim.LBFGS(
            [self.log_temperature], lr=lr, max_iter=max_iter, line_search_fn="strong_wolfe"
        )

        def closure():
            optimizer.zero_grad()
            loss = F.cross_entropy(logits / self.log_temperature.exp(), target)
            loss.backward()
            return loss

        with torch.enable_grad():
            optimizer.step(closure)
        self.log_temperature.grad = None
        return self

    def extra_repr(self):
        return f"n_temperatures={self.n_temperatures}"
