"""``stellarlatent prepare --scheduler/--workers/--dask-address``: dask gives the serial store."""

import h5py
import numpy as np
import pytest

from stellarlatent.cli import main

from . import test_cli as _cli_tests

#: the HARPS-ADP files fixture of test_cli (assigned, so that pyflakes sees it used)
spectra_dir = _cli_tests.spectra_dir

pytest.importorskip("dask")

GRID = ["--grid", "4600", "5900", "128"]


def _arrays(path):
    with h5py.File(path, "r") as f:
        names = []
        f.visit(names.append)
        return {name: f[name][()] for name in names if isinstance(f[name], h5py.Dataset)}


@pytest.fixture(scope="module")
def inputs(spectra_dir, tmp_path_factory):  # noqa: F811
    folder = tmp_path_factory.mktemp("bad")
    bad = folder / "broken.fits"
    bad.write_bytes(b"this is not a FITS file")
    files = sorted(spectra_dir.glob("*.fits"))[:6]
    return [*map(str, files[:3]), str(bad), *map(str, files[3:]), str(folder / "missing.fits")]


@pytest.fixture(scope="module")
def serial_store(inputs, tmp_path_factory):
    out = tmp_path_factory.mktemp("serial") / "serial.h5"
    assert main(["prepare", *inputs, *GRID, "--batch-size", "2", "--out", str(out),
                 "--quiet"]) == 0
    return out


def test_prepare_with_threads_writes_the_serial_store(inputs, serial_store, tmp_path, capsys):
    out = tmp_path / "threads.h5"
    capsys.readouterr()
    code = main(["prepare", *inputs, *GRID, "--batch-size", "2", "--scheduler", "threads",
                 "--workers", "2", "--out", str(out), "--quiet"])
    assert code == 0
    printed = capsys.readouterr().out
    assert "6 spectra" in printed and "with dask (threads, 2 workers)" in printed
    assert "2 skipped" in printed and "broken.fits" in printed and "missing.fits" in printed
    serial, threads = _arrays(serial_store), _arrays(out)
    assert serial.keys() == threads.keys()
    for name in serial:
        np.testing.assert_array_equal(serial[name], threads[name], err_msg=name)


def test_prepare_with_synchronous_dask(inputs, serial_store, tmp_path, capsys):
    out = tmp_path / "sync.h5"
    assert main(["prepare", *inputs, *GRID, "--batch-size", "4", "--scheduler", "synchronous",
                 "--out", str(out), "--quiet"]) == 0
    np.testing.assert_array_equal(_arrays(serial_store)["flux"], _arrays(out)["flux"])


def test_prepare_refuses_an_unknown_scheduler(inputs, tmp_path, capsys):
    with pytest.raises(SystemExit) as excinfo:
        main(["prepare", *inputs, *GRID, "--scheduler", "dask", "--out", str(tmp_path / "x.h5")])
    assert excinfo.value.code == 2
    assert "--scheduler: invalid choice: 'dask'" in capsys.readouterr().err


def test_prepare_refuses_a_scheduler_and_an_address(inputs, tmp_path, capsys):
    with pytest.raises(SystemExit) as excinfo:
        main(["prepare", *inputs, *GRID, "--scheduler", "threads", "--dask-address",
              "tcp://127.0.0.1:8786", "--out", str(tmp_path / "x.h5")])
    assert excinfo.value.code == 2
    assert "not allowed with argument" in capsys.readouterr().err


@pytest.mark.parametrize("options,message", [
    (["--workers", "2"], "--workers needs --scheduler threads or processes"),
    (["--scheduler", "threads", "--workers", "0"], "--workers must be a positive integer"),
])
def test_prepare_refuses_bad_workers(inputs, tmp_path, capsys, options, message):
    code = main(["prepare", *inputs, *GRID, *options, "--out", str(tmp_path / "x.h5")])
    assert code == 1
    assert message in capsys.readouterr().err
    assert not (tmp_path / "x.h5").exists()


def test_prepare_on_a_distributed_cluster(inputs, serial_store, tmp_path, capsys):
    distributed = pytest.importorskip("distributed")
    out = tmp_path / "cluster.h5"
    with distributed.LocalCluster(n_workers=1, threads_per_worker=2, processes=False,
                                  dashboard_address=None) as cluster:
        code = main(["prepare", *inputs, *GRID, "--batch-size", "2", "--dask-address",
                     cluster.scheduler_address, "--out", str(out), "--quiet"])
    assert code == 0
    assert f"with dask ({cluster.scheduler_address})" in capsys.readouterr().out
    np.testing.assert_array_equal(_arrays(serial_store)["flux"], _arrays(out)["flux"])
