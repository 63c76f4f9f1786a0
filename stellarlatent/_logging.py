"""The package logger: every message of stellarlatent goes through it.

It has no handler of its own: where the application configures none (a
script, a notebook), Python's last-resort handler writes its warnings and
errors to standard error, so that a file skipped or a label table not found
is not passed over in silence; its informational messages need a handler
(``logging.basicConfig(level=logging.INFO)``). The ``stellarlatent``
command installs its own.
"""

import contextlib
import logging
import sys

__all__ = ["log", "progress_bar", "said_once"]

log = logging.getLogger("stellarlatent")


@contextlib.contextmanager
def progress_bar(*, total=None, enabled=True, **kwargs):
    """A tqdm bar (``kwargs`` are tqdm's) over whose line log messages print cleanly.

    While the bar shows, the console handlers of the root and package loggers
    write through ``tqdm.write``, so that a warning gets a line of its own
    instead of being glued to the bar. Only their stream changes: each keeps
    its level, filters and format.

    Examples
    --------
    >>> with progress_bar(total=2, enabled=False, unit="file") as bar:
    ...     bar.update(2)
    """
    from tqdm.auto import tqdm

    with tqdm(total=total, disable=not enabled, **kwargs) as bar:
        if not enabled:
            yield bar
            return
        swapped = []
        last_resort = logging.lastResort
        try:
            for logger in (logging.root, log):
                for handler in logger.handlers:
                    stream = getattr(handler, "stream", None)
                    if (isinstance(handler, logging.StreamHandler)
                            and stream in (sys.stdout, sys.stderr)):
                        swapped.append((handler, handler.setStream(_BarSafe(stream, tqdm))))
            if last_resort is not None:
                # where no logging is configured, Python's last resort prints the warnings
                logging.lastResort = logging.StreamHandler(_BarSafe(sys.stderr, tqdm))
                logging.lastResort.setLevel(last_resort.level)
            yield bar
        finally:
            logging.lastResort = last_resort
            for handler, stream in reversed(swapped):
                handler.setStream(stream)


class _BarSafe:
    """A console stream that writes with ``tqdm.write``: the bar is cleared and redrawn."""

    def __init__(self, stream, tqdm_class):
        self.stream, self.tqdm_class = stream, tqdm_class

    def write(self, text):
        self.tqdm_class.write(text, file=self.stream, end="")

    def flush(self):
        self.stream.flush()


class _SaidOnce(logging.Filter):
    """Drops a record whose level and message the logger has already passed on."""

    def __init__(self):
        super().__init__()
        self.seen = set()

    def filter(self, record):
        try:
            key = (record.levelno, record.getMessage())
        except Exception:  # noqa: BLE001 - a malformed call is for the handler to report
            return True
        if key in self.seen:
            return False
        self.seen.add(key)
        return True


@contextlib.contextmanager
def said_once():
    """Within the block, a message the package logger has given is not given again.

    Reading a batch of files through a preprocessing tries the batch whole,
    then file by file when one file fails it; each try would repeat the
    warnings of the spectra that were fine (and a failed fit is tried again),
    so the same line came out several times. The readers use it for each
    batch (a message of one batch may well be true of the next).

    Examples
    --------
    >>> import logging
    >>> records = []
    >>> handler = logging.Handler()
    >>> handler.emit = records.append
    >>> log.addHandler(handler)
    >>> with said_once():
    ...     for _ in range(3):
    ...         log.warning("no radial velocity found")
    >>> log.removeHandler(handler)
    >>> len(records)
    1
    """
    once = _SaidOnce()
    log.addFilter(once)
    try:
        yield
    finally:
        log.removeFilter(once)
