"""A cosine learning-rate schedule followed by stochastic weight averaging (SWA).

`CosineSWA` is the schedule of DeepREMAP in one object: the learning rate
anneals along a cosine (`~torch.optim.lr_scheduler.CosineAnnealingLR`, or
`~torch.optim.lr_scheduler.CosineAnnealingWarmRestarts` with a restart
period) down to the SWA learning rate; from the SWA start epoch on, the
weights are averaged after every epoch (`torch.optim.swa_utils.AveragedModel`)
while `~torch.optim.swa_utils.SWALR` holds the learning rate there. It is
stepped once per epoch, and its `CosineSWA.state_dict` is what a checkpoint
keeps of it.
"""

import math
import numbers

import torch
from torch.optim.swa_utils import SWALR, AveragedModel

from .._logging import log

__all__ = ["CosineSWA", "swa_start_epoch"]


def swa_start_epoch(swa_start, n_epochs, name="DeepREMAP"):
    """The epoch (0-based) after which averaging starts, or None for no averaging.

    ``swa_start`` is None, a fraction in [0, 1) of ``n_epochs`` or an epoch
    number; an epoch number at or past the end means no averaging (logged,
    naming ``name``).

    >>> swa_start_epoch(0.75, 40), swa_start_epoch(3, 40), swa_start_epoch(None, 40)
    (30, 3, None)
    """
    if swa_start is None:
        return None
    if isinstance(swa_start, numbers.Integral):
        if swa_start >= n_epochs:
            log.info("%s: swa_start=%d >= %d epochs; no weight averaging",
                     name, swa_start, n_epochs)
            return None
        return int(swa_start)
    return min(int(math.floor(swa_start * n_epochs)), n_epochs - 1)


class CosineSWA:
    """Cosine annealing to ``swa_lr``, then weight averaging at ``swa_lr``.

    Parameters
    ----------
    optimizer : `torch.optim.Optimizer`
    module : `torch.nn.Module`
        The network being trained (averaged from the start epoch on).
    n_epochs : int
        Epochs of training.
    swa_start : float, int or None
        A fraction in [0, 1) of the epochs or an epoch number (see
        `swa_start_epoch`); None anneals over every epoch and never averages.
    swa_lr : float
        Learning rate during SWA and floor of the cosine.
    restart_period : int or None
        Epochs of the first cosine cycle (warm restarts); None anneals once,
        over the epochs before SWA.

    Attributes
    ----------
    start_epoch : int or None
        The first epoch (0-based) whose weights are averaged.
    scheduler : `~torch.optim.lr_scheduler.LRScheduler`
        The cosine schedule.
    averaged : `~torch.optim.swa_utils.AveragedModel` or None
        The running average (None without SWA).
    swa_scheduler : `~torch.optim.swa_utils.SWALR` or None
        Made at the first averaged epoch.

    Examples
    --------
    >>> import torch
    >>> net = torch.nn.Linear(2, 1)
    >>> optimizer = torch.optim.SGD(net.parameters(), lr=1.0)
    >>> schedule = CosineSWA(optimizer, net, 4, swa_start=2, swa_lr=0.1)
    >>> for epoch in range(4):
    ...     optimizer.step()  # an epoch of training
    ...     schedule.step(epoch, net)
    >>> schedule.n_averaged, round(optimizer.param_groups[0]["lr"], 6)
    (2, 0.1)
    """

    def __init__(self, optimizer, module, n_epochs, *, swa_start, swa_lr, restart_period=None):
        self.optimizer = optimizer
        self.swa_lr = float(swa_lr)
        self.start_epoch = swa_start_epoch(swa_start, n_epochs)
        n_anneal = n_epochs if self.start_epoch is None else self.start_epoch
        if restart_period is None:
            self.scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(
                optimizer, T_max=max(1, n_anneal), eta_min=self.swa_lr
            )
        else:
            self.scheduler = torch.optim.lr_scheduler.CosineAnnealingWarmRestarts(
                optimizer, T_0=int(restart_period), eta_min=self.swa_lr
            )
        self.averaged = None if self.start_epoch is None else AveragedModel(module)
        self.swa_scheduler = None

    def _new_swa_scheduler(self):
        return SWALR(self.optimizer, swa_lr=self.swa_lr, anneal_epochs=1)

    def step(self, epoch, module):
        """End epoch ``epoch`` (0-based) of ``module``: average it or anneal the rate."""
        if self.start_epoch is not None and epoch >= self.start_epoch:
            self.averaged.update_parameters(module)
            if self.swa_scheduler is None:
                self.swa_scheduler = self._new_swa_scheduler()
            self.swa_scheduler.step()
        else:
            self.scheduler.step()

    @property
    def n_averaged(self):
        """Epochs averaged so far (0 without SWA)."""
        return 0 if self.averaged is None else int(self.averaged.n_averaged)

    @property
    def averaged_module(self):
        """The averaged network once an epoch was averaged, else None.

        Its batch-norm statistics are those of the average of the weights'
        statistics: recompute them on the training data before use.
        """
        return self.averaged.module if self.n_averaged > 0 else None

    def state_dict(self):
        """``{"scheduler", "swa_model", "swa_scheduler"}`` (the last two once they exist)."""
        state = {"scheduler": self.scheduler.state_dict()}
        if self.averaged is not None:
            state["swa_model"] = self.averaged.state_dict()
        if self.swa_scheduler is not None:
            state["swa_scheduler"] = self.swa_scheduler.state_dict()
        return state

    def load_state_dict(self, state):
        """Restore what `state_dict` returned."""
        self.scheduler.load_state_dict(state["scheduler"])
        if "swa_model" in state and self.averaged is not None:
            self.averaged.load_state_dict(state["swa_model"])
        if "swa_scheduler" in state:
            self.swa_scheduler = self._new_swa_scheduler()
            self.swa_scheduler.load_state_dict(state["swa_scheduler"])
