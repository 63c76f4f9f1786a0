"""The state of one training run: early stopping, position, random generator and history."""

import math

__all__ = ["EarlyStopping", "TrainingRun"]


class EarlyStopping:
    """Track the best monitored loss and say when it stopped improving.

    Parameters
    ----------
    patience : int or None
        Epochs without improvement after which `should_stop` becomes True;
        None never stops (the best weights are still tracked).
    min_delta : float, default=0.0
        An epoch improves only when its loss is below the best by more than
        this (0: any decrease counts).
    monitor_only : bool, default=False
        Never stop (for example when the loss is the training loss, which
        is not a sign of over-fitting).

    Examples
    --------
    >>> stopping = EarlyStopping(patience=2, min_delta=0.01)
    >>> [stopping.update(loss) for loss in (1.0, 0.995, 0.98)]
    [True, False, True]
    >>> stopping.update(0.975), stopping.update(0.99), stopping.should_stop
    (False, False, True)
    """

    def __init__(self, patience, min_delta=0.0, monitor_only=False):
        self.patience = patience
        self.min_delta = float(min_delta)
        self.monitor_only = bool(monitor_only)
        self.best = math.inf
        self.bad_epochs = 0
        self.best_state = None

    def update(self, loss):
        """Record one epoch's loss; return whether it is a new best."""
        if loss is not None and loss < self.best - self.min_delta:
            self.best = float(loss)
            self.bad_epochs = 0
            return True
        self.bad_epochs += 1
        return False

    @property
    def should_stop(self):
        return (self.patience is not None and not self.monitor_only
                and self.bad_epochs >= self.patience)


class TrainingRun:
    """The state of one training run that checkpoints carry: position, RNG, history, best."""

    def __init__(self, history, generator, stopping):
        self.history = history
        self.generator = generator
        self.stopping = stopping
        self.epoch = 0
        self.iteration = 0
        self.fingerprint = None
        self.last_good = None
