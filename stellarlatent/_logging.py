"""The package logger: every message of stellarlatent goes through it."""

import contextlib
import logging
import sys

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
        # a logger without console handlers of its own prints through the root's: redirecting
        # it too would print each message twice
        loggers = [logger for logger in (logging.root, log) if _prints_to_console(logger)]
        with logging_redirect_tqdm(loggers=loggers, tqdm_class=tqdm):
            yield bar


def _prints_to_console(logger):
    return any(type(handler) is logging.StreamHandler
               and handler.stream in (sys.stdout, sys.stderr) for handler in logger.handlers)
