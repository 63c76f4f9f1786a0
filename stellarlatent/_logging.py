"""The package logger: every message of stellarlatent goes through it."""

import contextlib
import logging

__all__ = ["log", "progress_bar"]

log = logging.getLogger("stellarlatent")
log.addHandler(logging.NullHandler())


@contextlib.contextmanager
def progress_bar(*, total=None, enabled=True, **kwargs):
    """A tqdm bar (``kwargs`` are tqdm's) over whose line log messages print cleanly.

    While the bar shows, the console handlers of the root and package loggers
    write through ``tqdm.write``, so that a warning gets a line of its own
    instead of being glued to the bar.

    Examples
    --------
    >>> with progress_bar(total=2, enabled=False, unit="file") as bar:
    ...     bar.update(2)
    """
    from tqdm.auto import tqdm
    from tqdm.contrib.logging import logging_redirect_tqdm

    with tqdm(total=total, disable=not enabled, **kwargs) as bar:
        if not enabled:
            yield bar
            return
        with logging_redirect_tqdm(loggers=[logging.root, log], tqdm_class=tqdm):
            yield bar
