"""Where `SpectralStore.from_files` reads and preprocesses its batches of files.

A runner maps ``stellarlatent.datasets._reading.read_chunk`` over batches of
files and yields the results in the order of the files, keeping only a few
batches in flight so that memory does not grow with the number of files:

- `SerialRunner`: in this process, one batch after the other (no dask);
- `LocalDaskRunner`: dask's local schedulers (``"synchronous"``,
  ``"threads"``, ``"processes"``);
- `DistributedRunner`: a ``dask.distributed`` cluster, from its address or a
  ``Client``.

The store itself is always written by the calling process.
"""

import contextlib
import copy
import itertools
import logging
import multiprocessing
import re
import signal
import threading
import uuid
from collections import deque
from concurrent.futures import Future, ProcessPoolExecutor, ThreadPoolExecutor

from .._logging import log
from ._reading import read_chunk

__all__ = ["make_runner", "SCHEDULERS"]

#: the scheduler names `make_runner` knows, besides addresses and clients
SCHEDULERS = ("serial", "synchronous", "threads", "processes")

_ADDRESS = re.compile(r"^(\w+://\S+|[\w.\-]+:\d+|\[[0-9a-fA-F:]+\]:\d+)$")
_DASK_HINT = "pip install 'stellarlatent[dask]'"


def make_runner(scheduler=None, n_workers=None):
    """The runner for a ``scheduler`` and ``n_workers`` of `SpectralStore.from_files`.

    Raises
    ------
    ValueError
        For an unknown scheduler or a bad ``n_workers``.
    ImportError
        When the scheduler needs dask (or ``distributed``) and it is missing.
    """
    if n_workers is not None:
        try:
            ok = (not isinstance(n_workers, bool) and float(n_workers).is_integer()
                  and n_workers >= 1)
        except (TypeError, ValueError):
            ok = False
        if not ok:
            raise ValueError(f"n_workers must be a positive integer or None, got {n_workers!r}")
        n_workers = int(n_workers)
    if scheduler is not None and not isinstance(scheduler, str):
        client_class = _client_class()
        if client_class is not None and isinstance(scheduler, client_class):
            return DistributedRunner(client=scheduler, n_workers=n_workers)
    if scheduler is None or (isinstance(scheduler, str) and scheduler.lower() == "serial"):
        if n_workers is not None and n_workers != 1:
            raise ValueError(
                f"n_workers={n_workers} needs a parallel scheduler: give scheduler='threads', "
                "'processes' or the address of a dask.distributed scheduler"
            )
        return SerialRunner()
    if isinstance(scheduler, str):
        name = scheduler.strip()
        if name.lower() in SCHEDULERS:
            return LocalDaskRunner(name.lower(), n_workers)
        if _ADDRESS.match(name):
            return DistributedRunner(address=name, n_workers=n_workers)
    raise ValueError(
        "scheduler must be None, 'serial', 'synchronous', 'threads', 'processes', the address "
        "of a dask.distributed scheduler (such as 'tcp://10.0.0.5:8786') or a "
        f"dask.distributed.Client; got {scheduler!r}"
    )


def _client_class():
    try:
        from distributed import Client
    except ImportError:
        return None
    return Client


def _import_dask(what):
    try:
        import dask
    except ImportError:
        raise ImportError(
            f"{what} needs dask, which is not installed: {_DASK_HINT} (or pip install dask)"
        ) from None
    return dask


class _Runner:
    """In-order, bounded map of `read_chunk` over batches of files."""

    #: batches in flight at most (beyond the one being written)
    window = 1

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
        return False

    def close(self):
        """Cancel the batches still in flight and release the workers."""

    def submit(self, paths, reader, preprocess):  # pragma: no cover - abstract
        raise NotImplementedError

    def start(self):
        """Start the workers (they may start while this process fits the preprocessing)."""

    def prepare(self, reader, preprocess):
        """Called once before the first `submit` with the (fitted) preprocessing."""
        self.start()
        return reader, preprocess

    def map(self, batches, reader, preprocess):
        """Yield the `Chunk` of each batch of paths, in order.

        At most ``window`` batches are read ahead of the one being consumed.
        """
        batches = iter(batches)
        first = next(batches, None)
        if first is None:
            return
        reader, preprocess = self.prepare(reader, preprocess)
        self._pending = pending = deque()
        for paths in itertools.chain([first], itertools.islice(batches, self.window - 1)):
            pending.append(self.submit(paths, reader, preprocess))
        while pending:
            future = pending.popleft()
            chunk = future.result()
            for paths in itertools.islice(batches, 1):
                pending.append(self.submit(paths, reader, preprocess))
            yield chunk

    def _cancel_pending(self):
        for future in getattr(self, "_pending", ()):
            future.cancel()


class SerialRunner(_Runner):
    """One batch after the other in this process, without dask."""

    description = "serial"

    def map(self, batches, reader, preprocess):
        for paths in batches:
            yield read_chunk(paths, reader, preprocess)


class LocalDaskRunner(_Runner):
    """dask's local schedulers: ``"synchronous"``, ``"threads"`` or ``"processes"``.

    Each batch of files is a `dask.delayed` task computed with the chosen
    scheduler on one pool of ``n_workers`` threads or processes kept for the
    whole build (a process pool is started once, not for every batch).
    """

    def __init__(self, kind, n_workers=None):
        dask = _import_dask(f"scheduler={kind!r}")
        from dask.system import CPU_COUNT

        self.dask, self.kind = dask, kind
        self.n_workers = 1 if kind == "synchronous" else (n_workers or CPU_COUNT)
        self.window = 1 if kind == "synchronous" else 2 * self.n_workers
        self.description = f"dask {kind} scheduler" + (
            "" if kind == "synchronous" else f", {self.n_workers} workers")
        self._pool = self._driver = None

    def start(self):
        if self._pool is not None or self.kind == "synchronous":
            return
        if self.kind == "threads":
            self._pool = ThreadPoolExecutor(self.n_workers, thread_name_prefix="stellarlatent-dask")
        else:
            from dask.multiprocessing import get_context

            # Ctrl-C reaches the whole process group: the workers leave it to this process,
            # which cancels the build and shuts them down (interrupted while they import
            # specutils, each would print a traceback or fail the build with another error).
            # They start with SIGINT blocked, then ignore it. The pool comes first: it starts
            # multiprocessing's resource tracker, which unblocks SIGINT in this thread.
            self._pool = ProcessPoolExecutor(self.n_workers, mp_context=get_context(),
                                             initializer=signal.signal,
                                             initargs=(signal.SIGINT, signal.SIG_IGN))
            # a new process imports astropy, specutils and scikit-learn (seconds):
            # start every worker now, from the main thread
            with _sigint_held():
                for _ in range(self.n_workers):
                    self._pool.submit(_warm_up)
        # threads here wait on dask's pool, one per batch in flight
        self._driver = ThreadPoolExecutor(self.window, thread_name_prefix="stellarlatent-driver")

    def prepare(self, reader, preprocess):
        self.start()
        # threads share the preprocessing object: each thread transforms with its own copy
        self._token = uuid.uuid4().hex if self.kind == "threads" else None
        return reader, preprocess

    def submit(self, paths, reader, preprocess):
        task = self.dask.delayed(chunk_task, pure=False)(list(paths), reader, preprocess,
                                                         self._token)
        if self._driver is None:
            future = Future()
            try:
                future.set_result(self.dask.compute(task, scheduler="synchronous")[0])
            except Exception as exc:
                future.set_exception(exc)
            return future
        return self._driver.submit(self._compute, task)

    def _compute(self, task):
        (chunk,) = self.dask.compute(task, scheduler=self.kind, pool=self._pool)
        return chunk

    def close(self):
        self._cancel_pending()
        for executor in (self._driver, self._pool):
            if executor is not None:
                executor.shutdown(wait=True, cancel_futures=True)
        self._pool = self._driver = None


class DistributedRunner(_Runner):
    """A ``dask.distributed`` cluster, given by its scheduler's address or a ``Client``.

    The preprocessing is sent once to every worker (``Client.scatter``); each
    batch of files is one task. The files must be readable at the same paths
    on the workers.
    """

    def __init__(self, address=None, client=None, n_workers=None):
        try:
            from distributed import Client
        except ImportError:
            raise ImportError(
                "a dask.distributed scheduler needs the 'distributed' package, which is not "
                f"installed: {_DASK_HINT} (or pip install 'dask[distributed]')"
            ) from None
        self._Client, self.address, self.client = Client, address, client
        self.n_workers, self._own = n_workers, False
        where = address if client is None else getattr(client.scheduler, "address", "client")
        self.description = f"dask.distributed cluster at {where}"

    def start(self):
        if self.client is None:
            try:
                self.client = self._Client(self.address, set_as_default=False)
            except OSError as exc:
                raise OSError(
                    f"scheduler: cannot reach the dask.distributed scheduler at {self.address} "
                    f"({exc})"
                ) from None
            self._own = True

    def prepare(self, reader, preprocess):
        self.start()
        threads = sum(self.client.nthreads().values())
        self.window = 2 * (self.n_workers or max(threads, 1))
        if preprocess is not None:
            preprocess = self.client.scatter(preprocess, broadcast=True, hash=False)
        self._token = uuid.uuid4().hex
        return reader, preprocess

    def submit(self, paths, reader, preprocess):
        return self.client.submit(chunk_task, list(paths), reader, preprocess, self._token,
                                  pure=False)

    def close(self):
        self._cancel_pending()
        if self._own and self.client is not None:
            self.client.close()
            self.client, self._own = None, False


@contextlib.contextmanager
def _sigint_held():
    """Hold SIGINT back from this thread, and from the processes it starts, until the end.

    A signal that arrives meanwhile is delivered at the end, not lost.
    """
    if not hasattr(signal, "pthread_sigmask"):  # pragma: no cover - Windows
        yield
        return
    before = signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT})
    try:
        yield
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, before)


_local = threading.local()


def _warm_up():
    """Nothing: the import of this module, in a new worker process, is the work."""


def chunk_task(paths, reader, preprocess, token=None):
    """`read_chunk` in a worker; with a ``token``, on this thread's copy of ``preprocess``.

    Transformers may cache state while transforming (the Resampler's
    matrices); threads sharing one object must not race on it, so each
    thread deep-copies the preprocessing once per build (``token``).
    """
    if token is not None and preprocess is not None:
        if getattr(_local, "token", None) != token:
            _local.token, _local.preprocess = token, copy.deepcopy(preprocess)
        preprocess = _local.preprocess
    if multiprocessing.parent_process() is None:
        return read_chunk(paths, reader, preprocess)
    # in a worker process, what the package logs goes back with the chunk, to be logged
    # by the calling process (with its handlers and format, once, in the order of the files)
    records = _Recorder()
    log.addHandler(records)
    try:
        chunk = read_chunk(paths, reader, preprocess)
    finally:
        log.removeHandler(records)
    return chunk._replace(events=[*records.events, *chunk.events])


class _Recorder(logging.Handler):
    """Keeps ``(level, "%s", (message,))`` of each record, as `Chunk.events` holds them."""

    def __init__(self):
        super().__init__()
        self.events = []

    def emit(self, record):
        self.events.append((record.levelno, "%s", (record.getMessage(),)))
