"""Training from a SpectralStore: batch-sized reads only, and safe in DataLoader workers."""

import pickle

import astropy.units as u
import h5py
import numpy as np
import pytest
import torch
from astropy.table import QTable

from stellarlatent.datasets import SpectralStore
from stellarlatent.estimators import DeepREMAP, SpectralVAE
from stellarlatent.estimators._data import StoreSource, as_source, digest_rows

N, N_PIX = 40, 96


@pytest.fixture(scope="module")
def store_path(tmp_path_factory):
    rng = np.random.default_rng(0)
    teff = rng.uniform(4000, 7000, N)
    x = np.linspace(-1, 1, N_PIX)
    flux = 1 - (teff[:, None] - 3500) / 5000 * np.exp(-0.5 * ((x - 0.1) / 0.05) ** 2)
    flux += 0.01 * rng.standard_normal(flux.shape)
    flux[3, 5] = np.nan
    ivar = rng.uniform(1e3, 1e4, flux.shape)
    mask = np.zeros(flux.shape, bool)
    mask[7, 10:20] = True
    path = tmp_path_factory.mktemp("stream") / "store.h5"
    with SpectralStore.create(path, np.linspace(5000, 5100, N_PIX) * u.AA,
                              labels={"teff": u.K}) as store:
        store.append(flux, QTable({"teff": teff * u.K}), mask=mask, ivar=ivar)
    return path


def _vae(**kwargs):
    return SpectralVAE(latent_dim=2, max_epochs=2, batch_size=8, validation_fraction=0.25,
                       device="cpu", random_state=0, verbose=0, **kwargs)


def _remap(**kwargs):
    return DeepREMAP(("teff",), n_bins=6, base_channels=4, n_stages=2, blocks_per_stage=1,
                     embedding_dim=8, max_epochs=2, batch_size=8, validation_fraction=0.25,
                     swa_start=0.5, device="cpu", random_state=0, verbose=0, **kwargs)


def _same_batch(a, b):
    assert a.keys() == b.keys()
    for key in a:
        if a[key] is None:
            assert b[key] is None
        else:
            assert a[key].dtype == b[key].dtype
            torch.testing.assert_close(a[key], b[key], rtol=0, atol=0)


def test_store_source_reads_like_the_store(store_path):
    with SpectralStore(store_path) as store:
        source = as_source(store)
        flux, mask, ivar = store.read_arrays()
    assert isinstance(source, StoreSource) and len(source) == N and source.n_pixels == N_PIX
    order = [12, 3, 7, 39, 0, 3]  # any order, repeats allowed
    batch = source.batch(order)
    bad = mask | ~np.isfinite(flux)
    assert batch["mask"].dtype == torch.bool and batch["flux"].dtype == torch.float32
    np.testing.assert_array_equal(batch["mask"].numpy(), bad[order])
    np.testing.assert_array_equal(batch["flux"].numpy(), np.where(bad, 0, flux)[order])
    np.testing.assert_array_equal(batch["ivar"].numpy(), np.where(bad, 0, ivar)[order])
    with pytest.raises(IndexError):
        source.batch([N])
    source.close()


def test_a_store_and_its_spectra_in_memory_have_one_fingerprint_that_sees_every_row(
        store_path, tmp_path):
    # fit-remap --jobs above 1 reads the store into memory; a checkpoint must resume either way
    with SpectralStore(store_path) as store:
        streamed, in_memory = as_source(store), as_source(store.read())
        flux, mask, ivar = store.read_arrays()
        axis, labels = store.spectral_axis, QTable({"teff": store.labels["teff"]})
    assert streamed.digest() == in_memory.digest()
    # read in chunks of any size, the same digest
    assert digest_rows(streamed, chunk_bytes=3 * 4 * N_PIX) == in_memory.digest()
    changed = tmp_path / "changed.h5"
    flux[N - 2, 50] += 1e-3  # one pixel of one row
    with SpectralStore.create(changed, axis, labels={"teff": u.K}) as store:
        store.append(flux, QTable({"teff": np.ones(N) * u.K}), mask=mask, ivar=ivar)
    with SpectralStore(changed) as store:
        assert as_source(store).digest() != streamed.digest()
    # a spectrum without an uncertainty: the store streams unit weights for it, the spectra
    # in memory have no inverse variance at all; a DeepREMAP, which reads none, sees one
    unknown = tmp_path / "unknown.h5"
    ivar[4] = np.nan
    with SpectralStore.create(unknown, axis, labels={"teff": u.K}) as store:
        store.append(flux, labels, mask=mask, ivar=ivar)
    with SpectralStore(unknown) as store:
        streamed, in_memory = as_source(store), as_source(store.read())
        assert streamed.digest() != in_memory.digest()
        assert streamed.digest(ivar=False) == in_memory.digest(ivar=False)
        _remap().fit(store, checkpoint_dir=tmp_path / "ckpt")
        spectra = store.read()
    # resumed from the checkpoint of the streamed store, not refused as other data
    _remap().fit(spectra, labels, checkpoint_dir=tmp_path / "ckpt")


def test_store_source_pickles_without_its_file(store_path):
    with SpectralStore(store_path) as store:
        source = as_source(store)
    before = source.batch([1, 2, 30])  # opens the file in this process
    clone = pickle.loads(pickle.dumps(source))
    assert clone._dataset._file is None and source._dataset._file is not None
    _same_batch(clone.batch([1, 2, 30]), before)
    assert len(clone) == N and clone.n_pixels == N_PIX and clone.has_ivar
    assert u.allclose(clone.spectral_axis, source.spectral_axis)
    clone.close()
    source.close()


@pytest.mark.parametrize("context", ["fork", pytest.param("spawn", marks=pytest.mark.slow)])
def test_dataloader_workers_read_the_same_batches(store_path, context):
    """Batches read in two worker processes equal those read in this one.

    Spawned workers start a fresh interpreter and unpickle the source (about
    15 s here, hence ``slow``); forked ones inherit this process's open file.
    """
    from stellarlatent.estimators._base import _BatchReader, _as_is

    with SpectralStore(store_path) as store:
        source = as_source(store)
        dataset = store.to_torch_dataset()
    # Use the file in this process first: a forked worker must not share the handle.
    source.batch([0])
    dataset[0]
    batches = [np.array([5, 1, 9]), np.arange(10, 18), np.array([39, 0]), np.array([7, 7, 3])]

    def load(num_workers):
        loader = torch.utils.data.DataLoader(
            _BatchReader(source), batch_size=None, sampler=batches, collate_fn=_as_is,
            num_workers=num_workers, multiprocessing_context=context if num_workers else None)
        return list(loader)

    serial, parallel = load(0), load(2)
    assert len(serial) == len(parallel) == len(batches)
    for (idx_a, a), (idx_b, b) in zip(serial, parallel):
        np.testing.assert_array_equal(idx_a, idx_b)
        _same_batch(a, b)
    if context == "spawn":  # the dataset below is the one inside the source: spawned once is enough
        source.close()
        dataset.close()
        return

    def items(num_workers):
        loader = torch.utils.data.DataLoader(
            dataset, batch_size=6, shuffle=False, num_workers=num_workers,
            multiprocessing_context=context if num_workers else None)
        return [torch.cat(part) for part in zip(*loader)]

    for a, b in zip(items(0), items(2)):
        torch.testing.assert_close(a, b, rtol=0, atol=0)
    source.close()
    dataset.close()


@pytest.fixture
def row_reads(monkeypatch):
    """Rows read per call from the 2-D datasets (flux, mask, ivar) of any HDF5 file."""
    reads = []
    original = h5py.Dataset.__getitem__

    def getitem(self, key):
        out = original(self, key)
        if self.ndim == 2:
            reads.append((self.name, np.shape(out)[0] if np.ndim(out) == 2 else 1))
        return out

    monkeypatch.setattr(h5py.Dataset, "__getitem__", getitem)
    return reads


@pytest.mark.parametrize("kind", ["vae", "remap"])
def test_training_and_prediction_read_at_most_a_batch_at_a_time(store_path, row_reads, kind):
    with SpectralStore(store_path) as store:
        if kind == "vae":
            model = _vae().fit(store)
            out = model.transform(store)
        else:
            model = _remap().fit(store)  # labels from the store, SWA batch-norm update
            out = model.predict(store)
            model.kneighbors(store, n_neighbors=2)
    assert len(out) == N
    names = {name for name, _ in row_reads}
    assert {"/flux", "/mask", "/ivar"} <= names
    largest = max(rows for _, rows in row_reads)
    assert largest <= 8, f"a read of {largest} rows for batches of 8"
    # every epoch reads every training spectrum: many small reads, not one big one
    n_flux_reads = sum(1 for name, _ in row_reads if name == "/flux")
    assert n_flux_reads >= 2 * N / 8


def test_training_from_a_store_in_worker_processes_matches_one_process(store_path):
    with SpectralStore(store_path) as store:
        alone = _remap().fit(store)
        workers = _remap(num_workers=2).fit(store)
        np.testing.assert_array_equal(workers.predict(store)["teff"].value,
                                      alone.predict(store)["teff"].value)
        assert [r["train_loss"] for r in workers.history_] == [
            r["train_loss"] for r in alone.history_]


def test_a_subset_of_a_store_trains_and_calibrates_like_those_rows_in_memory(store_path, row_reads):
    train, calibration = np.arange(0, N, 2), np.arange(1, N, 2)
    with SpectralStore(store_path) as store:
        streamed = _remap().fit(store.subset(train))
        streamed.calibrate(store.subset(calibration))  # labels from the store's rows
        largest = max(rows for _, rows in row_reads)
        in_memory = _remap().fit(store.read(train), store.labels[train])
        in_memory.calibrate(store.read(calibration), store.labels[calibration])
        X = store.subset(calibration)
        np.testing.assert_allclose(streamed.predict(X)["teff"].value,
                                   in_memory.predict(X)["teff"].value, rtol=1e-6)
    assert largest <= 8
    assert streamed.temperatures_ == pytest.approx(in_memory.temperatures_, rel=1e-6)


def test_take_rows_keeps_the_form_of_every_input(store_path):
    from astropy.nddata import InverseVariance
    from specutils import Spectrum

    from stellarlatent.estimators._data import take_rows

    rows = np.array([5, 1, 7])
    with SpectralStore(store_path) as store:
        every = as_source(store).batch(np.arange(N))
        picked = take_rows(store, rows)
        _same_batch(as_source(picked).batch(np.arange(3)),
                    {k: (None if v is None else v[rows]) for k, v in every.items()})
        again = take_rows(picked, [2, 0])  # a subset of a subset: rows 7 and 5 of the store
        np.testing.assert_array_equal(again.indices, [7, 5])
        flux = every["flux"].numpy()
        mask = every["mask"].numpy()
        batch = Spectrum(flux=flux * u.one, spectral_axis=store.spectral_axis, mask=mask,
                         uncertainty=InverseVariance(every["ivar"].numpy()),
                         meta={"wavelength_medium": "air"}, spectral_axis_index=1)
    part = take_rows(batch, rows)
    np.testing.assert_array_equal(part.flux.value, flux[rows])
    np.testing.assert_array_equal(part.mask, mask[rows])
    np.testing.assert_array_equal(part.uncertainty.array, every["ivar"].numpy()[rows])
    assert part.meta["wavelength_medium"] == "air"
    single = [batch[i] for i in range(4)]
    assert [s.flux[0] for s in take_rows(single, [3, 0])] == [single[3].flux[0], single[0].flux[0]]
    masked = np.ma.masked_array(flux, mask)
    assert isinstance(take_rows(masked, rows), np.ma.MaskedArray)
    np.testing.assert_array_equal(take_rows(masked, rows).mask, mask[rows])
    np.testing.assert_array_equal(take_rows(flux.tolist(), rows), flux[rows])
