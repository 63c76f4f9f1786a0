"""SpectralStore: HDF5 round trip, appends, torch streaming and refusal of bad stores."""

import io
import logging
import shutil

import astropy.units as u
import h5py
import numpy as np
import pytest
from astropy.io import fits
from astropy.nddata import InverseVariance
from astropy.table import MaskedColumn, QTable
from astropy.utils.masked import Masked
from specutils import Spectrum

from stellarlatent.datasets import SpectralStore
from stellarlatent.preprocessing import Resampler

from .test_harps import write_adp

N_PIX = 32
WAVE = np.linspace(4000.0, 4100.0, N_PIX) * u.AA


def make_batch(n, seed=0, unit=u.Jy):
    rng = np.random.default_rng(seed)
    flux = rng.normal(10, 1, (n, N_PIX))
    ivar = rng.uniform(0.5, 2.0, (n, N_PIX))
    mask = rng.random((n, N_PIX)) < 0.1
    ivar[mask] = 0.0
    spectra = Spectrum(
        flux=flux * unit,
        spectral_axis=WAVE,
        uncertainty=InverseVariance(ivar, unit=unit**-2),
        mask=mask,
        spectral_axis_index=1,
    )
    return spectra, flux, ivar, mask


def make_labels(n, offset=0):
    return QTable(
        {
            "teff": Masked(np.arange(n) * 100.0 + 4000 + offset, mask=np.arange(n) % 3 == 1) * u.K,
            "logg": np.linspace(1, 5, n) * u.dex,
            "star_id": np.arange(n) + offset,
            "giant": np.arange(n) % 2 == 0,
            "name": MaskedColumn([f"star{i + offset}" for i in range(n)], mask=np.arange(n) == 0),
        }
    )


def test_round_trip(store_path):
    path, flux, ivar, mask, labels = store_path
    with SpectralStore(path) as store:
        assert len(store) == 5 and store.n_pixels == N_PIX
        assert store.flux_unit == u.Jy and store.has_ivar
        assert u.allclose(store.spectral_axis, WAVE)
        assert store.label_names == ["teff", "logg", "star_id", "giant", "name"]
        batch = store.read()
        assert batch.flux.shape == (5, N_PIX) and batch.spectral_axis_index == 1
        assert batch.flux.unit == u.Jy
        assert np.allclose(batch.flux.value, flux.astype(np.float32))
        assert np.array_equal(batch.mask, mask)
        assert isinstance(batch.uncertainty, InverseVariance)
        assert np.allclose(batch.uncertainty.array, ivar.astype(np.float32))
        got = store.labels
        assert got["teff"].unit == u.K and got["logg"].unit == u.dex
        assert np.array_equal(got["teff"].mask, labels["teff"].mask)
        assert np.allclose(got["teff"].unmasked[~got["teff"].mask], labels["teff"].unmasked[
            ~labels["teff"].mask])
        assert u.allclose(got["logg"], labels["logg"])
        assert got["star_id"].dtype.kind == "i" and got["star_id"].tolist() == list(range(5))
        assert got["giant"].tolist() == labels["giant"].tolist()
        assert got["name"].mask.tolist() == [True, False, False, False, False]
        assert got["name"][1:].tolist() == ["star1", "star2", "star3", "star4"]
    with h5py.File(path, "r") as f:
        assert f["flux"].dtype == np.float32 and f["ivar"].dtype == np.float32
        assert f["flux"].chunks[1] == N_PIX


def test_indexing(store_path):
    path, flux, _, mask, _ = store_path
    with SpectralStore.open(path) as store:
        one = store[2]
        assert one.flux.shape == (N_PIX,)
        assert np.allclose(one.flux.value, flux[2].astype(np.float32))
        assert np.array_equal(one.mask, mask[2])
        picked = store[[4, 1, 1]]
        assert np.allclose(picked.flux.value, flux[[4, 1, 1]].astype(np.float32))
        assert picked.meta["labels"]["star_id"].tolist() == [4, 1, 1]
        runs = store.read([3, 0, 1, 2, 4, 0])
        assert np.allclose(runs.flux.value, flux[[3, 0, 1, 2, 4, 0]].astype(np.float32))
        assert np.array_equal(runs.mask, mask[[3, 0, 1, 2, 4, 0]])
        assert store[-1].meta["labels"]["star_id"][0] == 4
        assert store[1:3].flux.shape == (2, N_PIX)
        assert store.read(np.arange(5) > 2).flux.shape == (2, N_PIX)
        assert [b.flux.shape[0] for b in store.iter_batches(batch_size=2)] == [2, 2, 1]
        with pytest.raises(IndexError):
            store[7]
        with pytest.raises(IndexError):
            store.read([1.5])


def test_append_in_batches(tmp_path):
    path = tmp_path / "s.h5"
    all_flux = []
    with SpectralStore.create(path, WAVE, labels={"teff": u.K, "kind": str}, flux_unit=u.mJy,
                              chunk_spectra=2) as store:
        for k in range(3):
            spectra, flux, _, _ = make_batch(4, seed=k)
            table = QTable({"teff": (5000 + 10 * np.arange(4) + 100 * k) * u.K,
                            "kind": ["dwarf"] * 4})
            assert store.append(spectra, table) == slice(4 * k, 4 * k + 4)
            all_flux.append(flux * 1000)  # Jy -> mJy
        single = Spectrum(flux=np.ones(N_PIX) * u.Jy, spectral_axis=WAVE,
                          uncertainty=InverseVariance(np.ones(N_PIX), unit=u.Jy**-2))
        store.append(single)  # no labels: masked
        all_flux.append(np.full((1, N_PIX), 1000.0))
        assert len(store) == 13
        assert not path.exists()  # still being built
    with SpectralStore(path) as store:
        assert len(store) == 13
        assert np.allclose(store.read().flux.value, np.vstack(all_flux), rtol=1e-6)
        teff = store.labels["teff"]
        assert teff.mask.tolist() == [False] * 12 + [True]
        assert teff[4].unmasked == 5100 * u.K
        assert store.read().uncertainty.array[-1, 0] == pytest.approx(1e-6)


def test_append_arrays_and_reopen_in_append_mode(tmp_path):
    path = tmp_path / "s.h5"
    with SpectralStore.create(path, WAVE, labels=["x"], ivar=False) as store:
        flux = np.ones((2, N_PIX))
        flux[0, 3] = np.nan
        store.append(flux, QTable({"x": [1.0, 2.0]}))
    with SpectralStore(path, mode="a") as store:
        store.append(np.zeros((1, N_PIX)), QTable({"x": [3.0]}), mask=np.ones((1, N_PIX), bool))
    with SpectralStore(path) as store:
        assert len(store) == 3
        assert store.labels["x"].tolist() == [1.0, 2.0, 3.0]
        _, mask, ivar = store.read_arrays()
        assert ivar is None
        assert mask[0, 3] and mask[2].all() and mask.sum() == N_PIX + 1
        assert store.read().uncertainty is None


def test_read_only_refuses_to_write(store_path):
    path = store_path[0]
    with SpectralStore(path) as store:
        with pytest.raises(io.UnsupportedOperation, match="read-only"):
            store.append(make_batch(1)[0], make_labels(1))
    store.close()
    with pytest.raises(ValueError, match="closed"):
        len(store)


def test_append_validation(tmp_path):
    path = tmp_path / "s.h5"
    with SpectralStore.create(path, WAVE, labels={"teff": u.K}, flux_unit=u.Jy) as store:
        spectra = make_batch(2)[0]
        with pytest.raises(ValueError, match="lacks the store's columns"):
            store.append(spectra, QTable({"logg": [1, 2] * u.dex}))
        with pytest.raises(u.UnitsError, match="teff"):
            store.append(spectra, QTable({"teff": [1, 2] * u.m}))
        with pytest.raises(ValueError, match="rows"):
            store.append(spectra, QTable({"teff": [1, 2, 3] * u.K}))
        other = Spectrum(flux=np.ones((1, 10)) * u.Jy, spectral_axis=np.arange(10) * u.AA,
                         uncertainty=InverseVariance(np.ones((1, 10))), spectral_axis_index=1)
        with pytest.raises(ValueError, match="another grid"):
            store.append(other)
        with pytest.raises(u.UnitsError, match="flux unit"):
            store.append(make_batch(1, unit=u.m)[0])
        with pytest.raises(ValueError, match="shape"):
            store.append(np.ones((2, N_PIX + 1)))
        store.append(spectra, QTable({"teff": [1, 2] * u.kK}))
        assert store.labels["teff"].to_value(u.K).tolist() == [1000, 2000]
    with pytest.raises(FileExistsError):
        SpectralStore.create(path, WAVE)


def test_torch_dataset_streams_with_dataloader(store_path):
    torch = pytest.importorskip("torch")
    from torch.utils.data import DataLoader

    path, flux, ivar, mask, labels = store_path
    with SpectralStore(path) as store:
        dataset = store.to_torch_dataset(indices=[0, 2, 3, 4], labels=["teff", "logg"])
    assert len(dataset) == 4
    x, m, w, y = dataset[1]
    assert x.dtype == m.dtype == w.dtype == torch.float32 and x.shape == (N_PIX,)
    expected_flux = np.where(mask, 0, flux).astype(np.float32)
    assert np.allclose(x.numpy(), expected_flux[2])
    assert np.array_equal(m.numpy() == 1, mask[2])
    assert np.allclose(w.numpy(), np.where(mask[2], 0, ivar[2]).astype(np.float32))
    assert np.allclose(y.numpy(), [4200, 3.0])
    assert torch.isnan(dataset[3][3][0]).item()  # store row 4: Teff masked
    with SpectralStore(path) as store:
        assert torch.isnan(store.to_torch_dataset(labels="teff")[1][3]).item()
    for workers in (0, 2):
        loader = DataLoader(dataset, batch_size=3, shuffle=False, num_workers=workers)
        batches = list(loader)
        assert [b[0].shape[0] for b in batches] == [3, 1]
        got = torch.cat([b[0] for b in batches]).numpy()
        assert np.allclose(got, expected_flux[[0, 2, 3, 4]])
        assert torch.cat([b[3] for b in batches])[:, 1].tolist() == pytest.approx(
            labels["logg"].value[[0, 2, 3, 4]].tolist())
    dataset.close()


def test_torch_dataset_without_ivar_gives_unit_weights(tmp_path):
    path = tmp_path / "s.h5"
    with SpectralStore.create(path, WAVE, ivar=False) as store:
        store.append(np.ones((2, N_PIX)), mask=np.eye(2, N_PIX, dtype=bool))
    with SpectralStore(path) as store:
        _, m, w = store.to_torch_dataset()[1]
    assert w[1].item() == 0 and w[0].item() == 1 and m[1].item() == 1


def test_refuses_truncated_file(store_path, tmp_path):
    path = store_path[0]
    data = path.read_bytes()
    truncated = tmp_path / "truncated.h5"
    truncated.write_bytes(data[: len(data) // 2])
    with pytest.raises(ValueError, match="truncated"):
        SpectralStore(truncated)
    garbage = tmp_path / "garbage.h5"
    garbage.write_bytes(b"\x89HDF\r\n" + b"0" * 100)
    with pytest.raises(ValueError, match="not a readable SpectralStore"):
        SpectralStore(garbage)
    with pytest.raises(FileNotFoundError):
        SpectralStore(tmp_path / "absent.h5")


def test_refuses_other_grid(store_path):
    path = store_path[0]
    with pytest.raises(ValueError, match="another grid"):
        SpectralStore(path, expected_grid=WAVE * 1.001)
    with pytest.raises(ValueError, match="another grid"):
        SpectralStore(path, expected_grid=WAVE[:-1])
    with SpectralStore(path, expected_grid=WAVE.to(u.nm)) as store:
        store.check_grid(WAVE)
        with pytest.raises(ValueError, match="another grid"):
            store.check_grid(np.linspace(1, 2, N_PIX) * u.um)
        # a grid of the same size and ends but other spacing is told apart in words
        other = (np.geomspace if np.allclose(np.diff(WAVE.value), np.diff(WAVE.value)[0])
                 else np.linspace)(WAVE[0].value, WAVE[-1].value, N_PIX) * WAVE.unit
        with pytest.raises(ValueError) as excinfo:
            store.check_grid(other)
        spacings = [kind for kind in ("linear", "log-uniform") if kind in str(excinfo.value)]
        assert len(spacings) == 2, str(excinfo.value)


def test_refuses_missing_column_or_dataset(store_path, tmp_path):
    path = store_path[0]
    with pytest.raises(ValueError, match="feh"):
        SpectralStore(path, required_labels=["teff", "feh"])
    for victim in ("ivar", "labels/logg", "mask"):
        broken = tmp_path / f"{victim.replace('/', '_')}.h5"
        shutil.copy(path, broken)
        with h5py.File(broken, "a") as f:
            del f[victim]
        with pytest.raises(ValueError, match="missing"):
            SpectralStore(broken)
    short = tmp_path / "short.h5"
    shutil.copy(path, short)
    with h5py.File(short, "a") as f:
        f["labels/teff"].resize(3, axis=0)
    with pytest.raises(ValueError, match="rows"):
        SpectralStore(short)
    plain = tmp_path / "plain.h5"
    with h5py.File(plain, "w") as f:
        f["flux"] = np.ones((2, 3))
    with pytest.raises(ValueError, match="not a SpectralStore"):
        SpectralStore(plain)


def test_interrupted_build_never_reads_as_complete(tmp_path):
    path = tmp_path / "s.h5"
    store = SpectralStore.create(path, WAVE, ivar=False)
    store.append(np.ones((2, N_PIX)))
    partial = store._tmp_path
    assert partial.exists() and not path.exists()
    store._file.flush()
    shutil.copy(partial, path)  # as if the partial file had been taken for the store
    with pytest.raises(ValueError, match="incomplete"):
        SpectralStore(path)
    path.unlink()
    store.close()
    assert path.exists() and not partial.exists()
    assert len(SpectralStore(path)) == 2

    other = tmp_path / "other.h5"
    with pytest.raises(RuntimeError, match="boom"):
        with SpectralStore.create(other, WAVE, ivar=False) as store:
            store.append(np.ones((2, N_PIX)))
            raise RuntimeError("boom")
    assert not other.exists()
    assert list(tmp_path.glob("*.partial")) == []


def test_overwrite_replaces_only_when_finished(store_path):
    path = store_path[0]
    store = SpectralStore.create(path, WAVE, ivar=False, overwrite=True)
    store.append(np.ones((1, N_PIX)))
    assert len(SpectralStore(path)) == 5
    store.close()
    assert len(SpectralStore(path)) == 1


def test_from_files_with_preprocessing(tmp_path, caplog):
    resample = pytest.importorskip("stellarlatent.preprocessing")
    folder = tmp_path / "adp"
    folder.mkdir()
    for k in range(5):
        write_adp(folder / f"ADP.{k}.fits", start=5000.0 + 0.003 * k, obj=f"star{k}")
    (folder / "ADP.9.fits").write_bytes(b"corrupt")
    files = sorted(folder.glob("*.fits"))
    catalogue = QTable({"teff": (5000 + 100 * np.arange(6)) * u.K})
    grid = np.linspace(5000.1, 5001.8, 50) * u.AA
    out = tmp_path / "harps.h5"
    with caplog.at_level(logging.WARNING, logger="stellarlatent"):
        store = SpectralStore.from_files(
            files, out, preprocess=resample.Resampler(grid=grid), labels=catalogue,
            batch_size=2, progress=False,
        )
    with store:
        assert store.mode == "r" and len(store) == 5
        store.check_grid(grid)
        assert store.has_ivar
        assert store.labels["filename"].tolist() == [f"ADP.{k}.fits" for k in range(5)]
        assert store.labels["teff"].to_value(u.K).tolist() == [5000, 5100, 5200, 5300, 5400]
        assert not store.read().mask.all(axis=1).any()
    assert "ADP.9.fits skipped" in caplog.text
    assert "1 of 6 files skipped" in caplog.text


def test_spectra_without_uncertainty_beside_ones_with_keep_none(tmp_path):
    wave = WAVE
    with_unc = Spectrum(flux=np.ones(N_PIX) * u.adu, spectral_axis=wave,
                        uncertainty=InverseVariance(np.full(N_PIX, 4.0)))
    without = Spectrum(flux=np.ones(N_PIX) * u.adu, spectral_axis=wave)
    with SpectralStore.create(tmp_path / "a.h5", wave, flux_unit=u.adu) as store:
        store.append([with_unc, without])
        store.append(without)
    with SpectralStore(tmp_path / "a.h5") as store:
        back = store.read()
        np.testing.assert_array_equal(back.uncertainty.array[0], 4.0)
        assert np.isnan(back.uncertainty.array[1:]).all() and not back.mask.any()
        # training weights a spectrum without an uncertainty alike, as a store without any
        _, _, ivar = store.to_torch_dataset().read_batch(np.arange(3))
        np.testing.assert_array_equal(ivar[1:], 1.0)
    # the same from arrays: a row of NaN or zero inverse variance is no uncertainty, a zero
    # pixel beside positive ones is a bad pixel
    ivar = np.array([np.full(N_PIX, 4.0), np.full(N_PIX, np.nan), np.zeros(N_PIX)])
    ivar[0, 3] = 0.0
    with SpectralStore.create(tmp_path / "b.h5", wave, flux_unit=u.adu) as store:
        store.append(np.ones((3, N_PIX)), ivar=ivar)
        back = store.read()
        assert back.mask[0].tolist() == [k == 3 for k in range(N_PIX)]
        assert not back.mask[1:].any() and np.isnan(back.uncertainty.array[1:]).all()
    # a folder of files with and without uncertainties, in any order
    folder = tmp_path / "mixed"
    folder.mkdir()
    write_adp(folder / "ADP.a.fits")
    write_adp(folder / "ADP.b.fits", err=np.full(200, np.nan), snr=None)  # no uncertainty
    grid = np.linspace(5000.1, 5001.8, 50) * u.AA
    for batch_size in (1, 2):
        store = SpectralStore.from_files(sorted(folder.glob("*.fits")),
                                         tmp_path / f"m{batch_size}.h5", batch_size=batch_size,
                                         preprocess=Resampler(grid=grid), progress=False)
        with store:
            assert len(store) == 2 and store.has_ivar
            assert np.isnan(store.read().uncertainty.array[1]).all()


def test_from_files_skips_files_whose_flux_unit_the_store_cannot_take(tmp_path, caplog):
    # HARPS ADP flux in adu beside a MILES file of relative flux, resampled but not normalised
    folder = tmp_path / "mixed"
    folder.mkdir()
    write_adp(folder / "ADP.a.fits")
    hdu = fits.PrimaryHDU(np.ones(40))
    hdu.header.update(CRVAL1=4990.0, CDELT1=0.9, CRPIX1=1)
    hdu.writeto(folder / "MILES_res2.50_star_m0001V.fits")
    write_adp(folder / "ADP.c.fits")
    grid = np.linspace(5000.1, 5001.8, 50) * u.AA
    for batch_size in (1, 3):
        caplog.clear()
        with caplog.at_level(logging.WARNING, logger="stellarlatent"):
            store = SpectralStore.from_files(sorted(folder.glob("*.fits")),
                                             tmp_path / f"s{batch_size}.h5", progress=False,
                                             preprocess=Resampler(grid=grid),
                                             batch_size=batch_size)
        with store:
            assert store.labels["filename"].tolist() == ["ADP.a.fits", "ADP.c.fits"]
            assert store.flux_unit == u.adu
        assert "m0001V.fits skipped: its flux unit (dimensionless) cannot be converted to " \
               "the store's (adu)" in caplog.text
    # a unit asked for is the store's from the first file on
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="stellarlatent"):
        store = SpectralStore.from_files(sorted(folder.glob("*.fits")), tmp_path / "one.h5",
                                         progress=False, preprocess=Resampler(grid=grid),
                                         batch_size=3, flux_unit=u.one)
    with store:
        assert store.labels["filename"].tolist() == ["MILES_res2.50_star_m0001V.fits"]
    assert "ADP.a.fits skipped: its flux unit (adu) cannot be converted to the store's " \
           "(dimensionless)" in caplog.text


def test_from_files_without_preprocessing_skips_other_grids(tmp_path, caplog):
    folder = tmp_path / "adp"
    folder.mkdir()
    write_adp(folder / "a.fits")
    write_adp(folder / "b.fits", start=6000.0)
    write_adp(folder / "c.fits")
    out = tmp_path / "s.h5"
    with caplog.at_level(logging.WARNING, logger="stellarlatent"):
        store = SpectralStore.from_files(folder, out, progress=False)
    with store:
        assert store.labels["filename"].tolist() == ["a.fits", "c.fits"]
        assert store.flux_unit == u.adu
    assert "b.fits skipped" in caplog.text
    with pytest.raises(FileExistsError):
        SpectralStore.from_files(folder, out, progress=False)
    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / "x.fits").write_bytes(b"corrupt")
    with pytest.raises(ValueError, match="none of the files"):
        SpectralStore.from_files(bad, tmp_path / "none.h5", progress=False)
    assert not (tmp_path / "none.h5").exists()


def test_from_files_fits_every_step_of_an_unfitted_pipeline(tmp_path):
    """A Resampler learning its grid in front of a normaliser must be fitted, not skipped."""
    import astropy.units as u
    import numpy as np
    from sklearn.pipeline import make_pipeline
    from specutils import Spectrum

    from stellarlatent.datasets import SpectralStore
    from stellarlatent.preprocessing import ContinuumNormalizer, Resampler

    files = []
    for i in range(3):
        wave = np.linspace(5000, 5100, 200) + i
        spec = Spectrum(flux=np.linspace(1, 2, 200) * u.Jy, spectral_axis=wave * u.AA)
        path = tmp_path / f"s{i}.fits"
        spec.write(path, format="tabular-fits")
        files.append(path)
    pipeline = make_pipeline(Resampler(), ContinuumNormalizer(method="median"))
    with SpectralStore.from_files(files, tmp_path / "store.h5", preprocess=pipeline,
                                  reader=lambda p: Spectrum.read(p, format="tabular-fits"),
                                  progress=False) as store:
        assert len(store) == 3


def test_torch_dataset_pickles_without_its_file_and_reopens(store_path):
    import pickle

    pytest.importorskip("torch")
    path, flux, ivar, mask, labels = store_path
    with SpectralStore(path) as store:
        everything = store.to_torch_dataset()
        subset = store.to_torch_dataset(indices=[4, 1])
    assert everything.indices is None and len(everything) == 5  # no index array for all rows
    first = everything[-1][0].numpy()  # opens the file in this process
    clone = pickle.loads(pickle.dumps(everything))
    assert clone._file is None and everything._file is not None
    assert np.array_equal(clone[4][0].numpy(), first)
    assert np.array_equal(pickle.loads(pickle.dumps(subset))[0][0].numpy(), first)
    x, bad, w = subset.read_batch([1, 0, 1])
    assert x.shape == (3, N_PIX) and bad.dtype == bool
    assert np.array_equal(bad, mask[[1, 4, 1]])
    assert np.allclose(w, np.where(mask, 0, ivar)[[1, 4, 1]])
    with pytest.raises(IndexError):
        subset[2]
    for dataset in (everything, clone, subset):
        dataset.close()


def test_subset_is_a_lazy_view_with_its_own_labels(store_path):
    path, flux, _, _, labels = store_path
    with SpectralStore(path) as store:
        view = store.subset([4, 0, 2])
        assert len(view) == 3 and view.n_pixels == N_PIX
        assert view.label_names == store.label_names
        np.testing.assert_array_equal(view.labels["logg"].value, labels["logg"].value[[4, 0, 2]])
        np.testing.assert_allclose(view.read().flux.value, flux[[4, 0, 2]])
        by_mask = store.subset(np.array([True, False, True, False, False]))
        np.testing.assert_array_equal(by_mask.indices, [0, 2])
        assert len(store.subset([-1])) == 1 and store.subset([-1]).indices[0] == 4
        assert len(view.to_torch_dataset()) == 3
        assert "3 spectra" in repr(view)


@pytest.mark.parametrize(("indices", "error", "message"), [
    (np.array([True, False]), ValueError, "boolean mask must have the store's length 5"),
    ([[0, 1]], ValueError, "1-D array of integer rows"),
    ([0.5], ValueError, "1-D array of integer rows"),
    ([5], IndexError, r"rows must lie in \[0, 5\)"),
])
def test_subset_refuses_bad_indices(store_path, indices, error, message):
    with SpectralStore(store_path[0]) as store, pytest.raises(error, match=message):
        store.subset(indices)
