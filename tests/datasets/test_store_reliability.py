"""SpectralStore: appends are all-or-nothing, and corrupt files are refused clearly."""

import importlib.util
import logging
import os
import signal
import warnings

import astropy.units as u
import h5py
import numpy as np
import pytest
from stellarlatent.datasets import SpectralStore

from .test_store import N_PIX, WAVE, make_batch, make_labels

needs_fork = pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork")
has_torch = importlib.util.find_spec("torch") is not None


def killed_append(path, mode):
    """Append 200 spectra to ``path`` in a forked child that SIGKILLs itself midway.

    The child dies once the flux is written and the first label column is
    about to be, as a process killed mid-append would; its flush first puts
    the half-written rows on disk. A fork, unlike a fresh interpreter, needs
    no second import of the package, which keeps the test fast.
    """
    with warnings.catch_warnings():
        # Python >= 3.12 warns about forking a multi-threaded process; the
        # child only writes this file and dies.
        warnings.simplefilter("ignore", DeprecationWarning)
        pid = os.fork()
    if pid == 0:
        try:
            resize = h5py.Dataset.resize

            def resize_then_die(self, *args, **kwargs):
                if self.name.startswith("/labels/"):
                    self.file.flush()
                    os.kill(os.getpid(), signal.SIGKILL)
                return resize(self, *args, **kwargs)

            h5py.Dataset.resize = resize_then_die
            spectra = make_batch(200, seed=7)[0]
            if mode == "a":
                store = SpectralStore(path, mode="a")
            else:
                store = SpectralStore.create(path, WAVE, labels=make_labels(1), flux_unit=u.Jy)
            store.append(spectra, make_labels(200, offset=100))
        finally:
            os._exit(3)  # never reached when the append was killed
    _, status = os.waitpid(pid, 0)
    assert os.WIFSIGNALED(status) and os.WTERMSIG(status) == signal.SIGKILL, status


def assert_reads_as_before(path, flux, mask, labels, mode="r"):
    with SpectralStore(path, mode=mode) as store:
        assert len(store) == 5
        batch = store.read()
        assert batch.flux.shape == (5, N_PIX)
        np.testing.assert_allclose(batch.flux.value, flux.astype(np.float32))
        np.testing.assert_array_equal(batch.mask, mask)
        got = store.labels
        assert len(got) == 5
        assert got["star_id"].tolist() == labels["star_id"].tolist()
        assert got["name"].mask.tolist() == labels["name"].mask.tolist()
        np.testing.assert_array_equal(got["teff"].mask, labels["teff"].mask)
        assert store[4].meta["labels"]["star_id"][0] == 4
        assert [b.flux.shape[0] for b in store.iter_batches(batch_size=4)] == [4, 1]


def append_more(path):
    spectra, flux, _, _ = make_batch(3, seed=3)
    with SpectralStore(path, mode="a") as store:
        assert store.append(spectra, make_labels(3, offset=50)) == slice(5, 8)
    with SpectralStore(path) as store:
        assert len(store) == 8
        np.testing.assert_allclose(store.read(slice(5, 8)).flux.value, flux.astype(np.float32))
        assert store.labels["star_id"].tolist() == [0, 1, 2, 3, 4, 50, 51, 52]


@needs_fork
def test_append_killed_midway_leaves_the_earlier_spectra(store_path, tmp_path, caplog):
    path, flux, _, mask, labels = store_path
    killed_append(path, "a")
    with h5py.File(path, "r") as f:  # the kill did leave half an append behind
        assert f["flux"].shape[0] == 205 and f["labels/teff"].shape[0] == 5
    with caplog.at_level(logging.WARNING, logger="stellarlatent"):
        assert_reads_as_before(path, flux, mask, labels)
    assert "interrupted append" in caplog.text and str(path) in caplog.text
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="stellarlatent"):
        assert_reads_as_before(path, flux, mask, labels, mode="a")  # removes the 200 rows
    assert "removed" in caplog.text
    with h5py.File(path, "r") as f:
        assert f["flux"].shape[0] == 5 and f["ivar"].shape[0] == 5
    append_more(path)


@needs_fork
def test_first_write_killed_leaves_no_store(tmp_path):
    path = tmp_path / "new.h5"
    killed_append(path, "w")
    assert not path.exists()
    partial = list(tmp_path.glob(".new.h5.*.partial"))
    assert len(partial) == 1
    with pytest.raises(ValueError, match=rf"{partial[0].name} is incomplete.*build"):
        SpectralStore(partial[0])


def _half_append(path, stage):
    """Leave on disk what an append killed at ``stage`` leaves (8 rows begun, 5 committed)."""
    with h5py.File(path, "a") as f:
        names = ["flux", "mask", "ivar"]
        if stage != "arrays":
            names += [f"labels/{n}" for n in ("teff", "logg")]
        if stage == "everything":
            names += [f"{g}/{n}" for g in ("labels", "label_masks") for n in f["labels"]]
        for name in dict.fromkeys(names):
            f[name].resize(8, axis=0)
            f[name][5:] = f[name][:3]


@pytest.mark.parametrize("stage", ["arrays", "some labels", "everything"])
def test_half_written_append_is_ignored_then_removed(store_path, stage, caplog):
    path, flux, _, mask, labels = store_path
    _half_append(path, stage)
    with caplog.at_level(logging.WARNING, logger="stellarlatent"):
        assert_reads_as_before(path, flux, mask, labels)
        with SpectralStore(path) as store:
            dataset = store.to_torch_dataset(labels=["teff"]) if has_torch else None
    if dataset is not None:
        assert len(dataset) == 5 and dataset.labels.shape == (5, 1)
    assert "3 rows of an interrupted append" in caplog.text
    assert_reads_as_before(path, flux, mask, labels, mode="a")
    append_more(path)


@pytest.mark.parametrize("mode", ["a", "w"])
def test_failed_append_is_rolled_back(store_path, tmp_path, monkeypatch, mode):
    path, flux, _, mask, labels = store_path
    if mode == "w":
        path = tmp_path / "built.h5"
        store = SpectralStore.create(path, WAVE, labels=labels, flux_unit=u.Jy)
        store.append(make_batch(5)[0], labels)
    else:
        store = SpectralStore(path, mode="a")
    setitem = h5py.Dataset.__setitem__

    def disk_full(self, key, value):
        if self.name == "/labels/giant":
            raise OSError("No space left on device")
        return setitem(self, key, value)

    monkeypatch.setattr(h5py.Dataset, "__setitem__", disk_full)
    with pytest.raises(OSError, match="No space"):
        store.append(make_batch(4, seed=1)[0], make_labels(4))
    monkeypatch.undo()
    assert len(store) == 5 and len(store.labels) == 5
    assert store._file["flux"].shape[0] == 5 and store._file["labels/teff"].shape[0] == 5
    store.close()
    assert_reads_as_before(path, flux, mask, labels)
    append_more(path)


def test_create_that_fails_leaves_no_temporary_file(tmp_path):
    with pytest.raises(ValueError):
        SpectralStore.create(tmp_path / "s.h5", WAVE, compression="no-such-filter")
    assert list(tmp_path.iterdir()) == []


def test_store_without_committed_count_still_opens_and_appends(store_path):
    path, flux, _, mask, labels = store_path
    with h5py.File(path, "a") as f:  # as written before the count was recorded
        del f.attrs["n_spectra"]
    assert_reads_as_before(path, flux, mask, labels)
    append_more(path)
    with h5py.File(path, "r") as f:
        assert f.attrs["n_spectra"] == 8


def test_committed_count_beyond_the_data_is_refused(store_path):
    path = store_path[0]
    with h5py.File(path, "a") as f:
        f.attrs["n_spectra"] = 9
    with pytest.raises(ValueError, match=rf"{path.name}.*flux has 5 rows.*9 spectra"):
        SpectralStore(path)


def _corrupt_files(path, tmp_path):
    data = path.read_bytes()
    rng = np.random.default_rng(0)
    for cut in (0, 8, 100, len(data) // 3, len(data) - 1):
        yield f"truncated at {cut}", data[:cut]
    yield "random bytes", rng.integers(0, 256, 4096, dtype=np.uint8).tobytes()
    yield "text", b"teff,logg\n5000,4.4\n"
    plain = tmp_path / "plain.tmp"
    with h5py.File(plain, "w") as f:
        f["flux"] = np.ones((2, 3))
    yield "another HDF5 file", plain.read_bytes()
    with h5py.File(plain, "w") as f:
        f.attrs["format"] = np.array([1, 2])
    yield "a format attribute that is not a string", plain.read_bytes()
    with h5py.File(plain, "w") as f:
        pass
    yield "an empty HDF5 file", plain.read_bytes()
    odd = tmp_path / "odd.tmp"
    odd.write_bytes(data)
    with h5py.File(odd, "a") as f:
        del f["labels"]
        f["labels"] = np.zeros(5)
    yield "labels that are not a group", odd.read_bytes()
    with h5py.File(odd, "w") as f:
        f.attrs.update(format="stellarlatent.SpectralStore", version=1, complete=True)
    yield "a store format attribute and nothing else", odd.read_bytes()


def test_corrupt_files_raise_a_value_error_naming_the_file(store_path, tmp_path):
    path = store_path[0]
    for k, (what, content) in enumerate(_corrupt_files(path, tmp_path)):
        bad = tmp_path / f"bad{k}.h5"
        bad.write_bytes(content)
        for mode in ("r", "a"):
            with pytest.raises(ValueError) as info:
                SpectralStore(bad, mode=mode)
            message = str(info.value)
            assert str(bad) in message, (what, message)
            assert "SpectralStore" in message and "expected" in message, (what, message)
            assert not message.startswith("Unable to"), (what, message)
        assert bad.read_bytes() == content, what  # refusing a file leaves it as it was
