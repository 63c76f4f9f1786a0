"""SpectralStore.from_files with dask: the same store as the serial path, bad files included."""

import functools
import logging
import sys

import astropy.units as u
import h5py
import numpy as np
import pytest
from astropy.table import QTable
from sklearn.base import BaseEstimator, TransformerMixin
from sklearn.pipeline import make_pipeline
from specutils import Spectrum

from stellarlatent.datasets import SpectralStore, make_synthetic_spectra, write_miles
from stellarlatent.datasets._parallel import LocalDaskRunner, make_runner
from stellarlatent.preprocessing import ContinuumNormalizer, Resampler, SpectralGrid

pytest.importorskip("dask")

N_FILES = 14
READ = functools.partial(Spectrum.read, format="wcs1d-fits")


class RefuseZeroFlux(TransformerMixin, BaseEstimator):
    """Fails on any spectrum whose flux is all zero (to exercise preprocessing skips)."""

    def fit(self, spectra, y=None):
        self.fitted_ = True
        return self

    def transform(self, spectra):
        flux = np.atleast_2d(spectra.flux.value)
        if (flux == 0).all(axis=-1).any():
            raise ValueError("flux is all zero")
        return spectra


class Telling(RefuseZeroFlux):
    """RefuseZeroFlux that logs a warning each time it transforms (in whatever process)."""

    def transform(self, spectra):
        from stellarlatent._logging import log

        flux = np.atleast_2d(spectra.flux.value)
        log.warning("%d spectra, the first at %.6f", len(flux), np.nanmedian(flux[0]))
        return super().transform(spectra)


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    """14 MILES files on two grids, one of zero flux, one corrupt (sorted in between)."""
    folder = tmp_path_factory.mktemp("miles")
    spectra, labels = make_synthetic_spectra(
        N_FILES - 4, SpectralGrid.linear(4800 * u.AA, 5200 * u.AA, 300), random_state=0)
    labels["miles_id"] = np.arange(1, N_FILES - 3)
    write_miles(folder, spectra, labels)
    other, other_labels = make_synthetic_spectra(
        2, SpectralGrid.linear(4790 * u.AA, 5210 * u.AA, 310), random_state=1)
    other_labels["miles_id"] = [20, 21]
    write_miles(folder / "other", other, other_labels)
    for path in sorted((folder / "other").glob("*.fits")):
        path.rename(folder / path.name)
    zero = Spectrum(flux=np.zeros(300) * u.one, spectral_axis=spectra.spectral_axis)
    zero_labels = QTable({"miles_id": [7]})
    write_miles(folder / "zero", [zero], zero_labels)
    (folder / "zero" / "MILES_res2.50_star_m0007V.fits").rename(
        folder / "MILES_res2.50_star_m0007aV.fits")
    (folder / "MILES_res2.50_star_m0009aV.fits").write_bytes(b"not a FITS file")
    files = sorted(folder.glob("*.fits"))
    assert len(files) == N_FILES
    return folder


def _pipeline():
    grid = SpectralGrid.log_uniform(4850 * u.AA, 5150 * u.AA, 128)
    return make_pipeline(Resampler(grid), RefuseZeroFlux(), ContinuumNormalizer(method="median"))


def _labels(files):
    n = len(files)
    return QTable({"index": np.arange(n), "teff": (4000.0 + 10 * np.arange(n)) * u.K})


def _contents(path):
    """Every dataset and attribute of an HDF5 file, as arrays."""
    out = {}
    with h5py.File(path, "r") as f:
        out["/attrs"] = dict(f.attrs)

        def visit(name, obj):
            if isinstance(obj, h5py.Dataset):
                out[name] = obj[()]
            out[name + "/attrs"] = dict(obj.attrs)

        f.visititems(visit)
    return out


def _build(folder, out, caplog, **kwargs):
    files = sorted(folder.glob("*.fits"))
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="stellarlatent"):
        store = SpectralStore.from_files(files, out, reader=READ, progress=False, **kwargs)
    store.close()
    messages = [r.getMessage().replace(str(out), "STORE") for r in caplog.records
                if r.name == "stellarlatent"]
    return _contents(out), messages


def _assert_same(a, b):
    assert a.keys() == b.keys()
    for key in a:
        if isinstance(a[key], np.ndarray):
            assert a[key].dtype == b[key].dtype, key
            np.testing.assert_array_equal(a[key], b[key], err_msg=key)
        elif isinstance(a[key], dict):
            assert a[key].keys() == b[key].keys(), key
            for name in a[key]:
                np.testing.assert_array_equal(a[key][name], b[key][name], err_msg=f"{key}:{name}")
        else:
            assert a[key] == b[key], key


@pytest.fixture(scope="module")
def serial(folder, tmp_path_factory):
    """The serial store with preprocessing and labels, and the messages it logged."""
    out = tmp_path_factory.mktemp("serial") / "serial.h5"
    files = sorted(folder.glob("*.fits"))
    records = []
    handler = logging.Handler(logging.WARNING)
    handler.emit = records.append
    logger = logging.getLogger("stellarlatent")
    logger.addHandler(handler)
    try:
        SpectralStore.from_files(files, out, reader=READ, progress=False, batch_size=4,
                                 preprocess=_pipeline(), labels=_labels(files)).close()
    finally:
        logger.removeHandler(handler)
    return _contents(out), [r.getMessage().replace(str(out), "STORE") for r in records]


def test_serial_build_skips_the_bad_files(serial):
    contents, messages = serial
    assert len(contents["flux"]) == N_FILES - 2
    assert any("m0009aV.fits skipped: " in m for m in messages)
    assert any("m0007aV.fits skipped: preprocessing failed: ValueError: flux is all zero" in m
               for m in messages)
    assert messages[-1] == f"2 of {N_FILES} files skipped while building STORE"


@pytest.mark.parametrize("scheduler,n_workers", [("synchronous", None), ("threads", 3),
                                                 ("threads", 1)])
def test_dask_schedulers_write_the_serial_store(folder, serial, tmp_path, caplog, scheduler,
                                                n_workers):
    files = sorted(folder.glob("*.fits"))
    contents, messages = _build(folder, tmp_path / "dask.h5", caplog, batch_size=4,
                                preprocess=_pipeline(), labels=_labels(files),
                                scheduler=scheduler, n_workers=n_workers)
    _assert_same(serial[0], contents)
    assert messages == serial[1]


def test_warnings_of_worker_processes_are_logged_by_the_caller_once(folder, tmp_path, caplog):
    def pipeline():
        return make_pipeline(Resampler(SpectralGrid.log_uniform(4850 * u.AA, 5150 * u.AA, 128)),
                             Telling())

    _, serial = _build(folder, tmp_path / "serial.h5", caplog, batch_size=4,
                       preprocess=pipeline())
    _, processes = _build(folder, tmp_path / "processes.h5", caplog, batch_size=4,
                          preprocess=pipeline(), scheduler="processes", n_workers=2)
    # every batch said its line once, those read in worker processes too
    assert sum(" spectra, the first at " in m for m in serial) >= 3
    assert processes == serial


def test_processes_write_the_serial_store(folder, serial, tmp_path, caplog):
    files = sorted(folder.glob("*.fits"))
    contents, messages = _build(folder, tmp_path / "processes.h5", caplog, batch_size=4,
                                preprocess=_pipeline(), labels=_labels(files),
                                scheduler="processes", n_workers=2)
    _assert_same(serial[0], contents)
    assert messages == serial[1]


def test_without_preprocessing_other_grids_are_skipped_alike(folder, tmp_path, caplog):
    serial = _build(folder, tmp_path / "serial.h5", caplog, batch_size=3)
    threads = _build(folder, tmp_path / "threads.h5", caplog, batch_size=3,
                     scheduler="threads", n_workers=2)
    _assert_same(serial[0], threads[0])
    assert threads[1] == serial[1]
    assert sum("its grid differs from the store's" in m for m in serial[1]) == 2


def test_a_fitted_preprocessing_is_not_refitted(folder, tmp_path, caplog):
    files = sorted(folder.glob("*.fits"))
    pipeline = _pipeline().fit([READ(str(files[0]))])
    grid = pipeline[0].grid_
    contents, _ = _build(folder, tmp_path / "s.h5", caplog, batch_size=5, preprocess=pipeline,
                         scheduler="threads", n_workers=2)
    assert pipeline[0].grid_ is grid
    assert len(contents["flux"]) == N_FILES - 2


def test_nothing_readable_leaves_no_store(tmp_path):
    bad = []
    for i in range(3):
        bad.append(tmp_path / f"bad{i}.fits")
        bad[-1].write_bytes(b"corrupt")
    with pytest.raises(ValueError, match="none of the files could be read"):
        SpectralStore.from_files(bad, tmp_path / "none.h5", reader=READ, progress=False,
                                 batch_size=1, scheduler="threads", n_workers=2)
    assert not (tmp_path / "none.h5").exists()


def test_only_a_few_batches_are_in_flight():
    runner = LocalDaskRunner("threads", n_workers=2)
    in_flight, seen = [], []
    submit = runner.submit

    def counting_submit(paths, reader, preprocess):
        in_flight.append(paths)
        return submit(paths, reader, preprocess)

    runner.submit = counting_submit
    batches = [[f"missing{i}.fits"] for i in range(30)]
    with runner:
        for chunk in runner.map(batches, READ, None):
            seen.append(chunk)
            assert len(in_flight) - len(seen) <= runner.window == 4
    assert len(seen) == 30 and all(not c.parts for c in seen)
    assert [c.skipped[0].name for c in seen] == [f"missing{i}.fits" for i in range(30)]


@pytest.mark.skipif(sys.platform == "win32", reason="POSIX signals")
def test_process_workers_leave_ctrl_c_to_the_calling_process():
    """Ctrl-C reaches every process of the group: workers starting up must survive it."""
    import os
    import signal

    runner = LocalDaskRunner("processes", n_workers=1)
    with runner:
        runner.start()
        assert signal.SIGINT not in signal.pthread_sigmask(signal.SIG_BLOCK, [])
        (pid,) = runner._pool._processes
        os.kill(pid, signal.SIGINT)  # while it starts: it imports specutils for seconds
        assert runner._pool.submit(os.getpid).result(timeout=120) == pid
        os.kill(pid, signal.SIGINT)  # and once started
        assert runner._pool.submit(signal.getsignal, signal.SIGINT).result(
            timeout=120) == signal.SIG_IGN


@pytest.mark.parametrize("scheduler", ["dask", "thread", 3, "tcp:/nowhere"])
def test_unknown_scheduler_is_refused(scheduler):
    with pytest.raises(ValueError, match="scheduler must be None, 'serial', 'synchronous'"):
        make_runner(scheduler)


@pytest.mark.parametrize("n_workers", [0, -1, 1.5, True, "two"])
def test_bad_n_workers_is_refused(n_workers):
    with pytest.raises(ValueError, match="n_workers must be a positive integer"):
        make_runner("threads", n_workers)


def test_n_workers_needs_a_parallel_scheduler(folder, tmp_path):
    with pytest.raises(ValueError, match="n_workers=2 needs a parallel scheduler"):
        SpectralStore.from_files(folder, tmp_path / "s.h5", scheduler=None, n_workers=2)
    assert not (tmp_path / "s.h5").exists()


def test_missing_dask_names_the_extra(monkeypatch):
    monkeypatch.setitem(sys.modules, "dask", None)
    with pytest.raises(ImportError, match=r"pip install 'stellarlatent\[dask\]'"):
        make_runner("processes")
    # the serial path needs no dask
    assert type(make_runner(None)).__name__ == "SerialRunner"


def test_missing_distributed_names_the_extra(monkeypatch):
    monkeypatch.setitem(sys.modules, "distributed", None)
    with pytest.raises(ImportError, match=r"'distributed' package.*stellarlatent\[dask\]"):
        make_runner("tcp://127.0.0.1:8786")


def test_distributed_cluster_writes_the_serial_store(folder, serial, tmp_path, caplog):
    distributed = pytest.importorskip("distributed")
    files = sorted(folder.glob("*.fits"))
    with distributed.LocalCluster(n_workers=1, threads_per_worker=2, processes=False,
                                  dashboard_address=None) as cluster:
        with distributed.Client(cluster) as client:
            by_client = _build(folder, tmp_path / "client.h5", caplog, batch_size=4,
                               preprocess=_pipeline(), labels=_labels(files), scheduler=client)
            assert client.status == "running"  # a client given is left open
        by_address = _build(folder, tmp_path / "address.h5", caplog, batch_size=4,
                            preprocess=_pipeline(), labels=_labels(files),
                            scheduler=cluster.scheduler_address)
    for contents, messages in (by_client, by_address):
        _assert_same(serial[0], contents)
        assert messages == serial[1]
