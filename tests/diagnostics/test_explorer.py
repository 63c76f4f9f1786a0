"""LatentExplorer without a browser: the page's data, its decoder and its size."""

import copy
import functools
import re

import astropy.units as u
import numpy as np
import pytest
from astropy.table import Table

from stellarlatent._batch import as_flux_array
from stellarlatent.datasets import make_synthetic_spectra
from stellarlatent.diagnostics import LatentExplorer, informative_dimensions
from stellarlatent.estimators import SpectralVAE
from stellarlatent.preprocessing import SpectralGrid


@functools.lru_cache(maxsize=None)
def fitted_vae(n=120, n_pixels=128):
    """A tiny SpectralVAE fitted on synthetic spectra (shared by the explorer tests)."""
    grid = SpectralGrid.linear(5000 * u.AA, 5600 * u.AA, n_pixels)
    X, labels = make_synthetic_spectra(n, grid=grid, random_state=0)
    vae = SpectralVAE(latent_dim=4, beta=0.001, max_epochs=2, verbose=0, random_state=0,
                      device="cpu").fit(X)
    return vae, X, labels


def brute_force_neighbors(E, k):
    d = np.sqrt(((E[:, None, :] - E[None, :, :]) ** 2).sum(-1))
    np.fill_diagonal(d, np.inf)
    return np.argsort(d, axis=1, kind="stable")[:, :k]


class FakeREMAP:
    """Duck-typed DeepREMAP: the embedding is a fixed projection of the flux."""

    def __init__(self, n_pixels, dim=6, seed=3):
        self.P = np.random.default_rng(seed).normal(size=(n_pixels, dim))

    def embed(self, X):
        E = as_flux_array(X, dtype=np.float64)[0] @ self.P
        return E / np.linalg.norm(E, axis=1, keepdims=True)


@pytest.fixture(scope="module")
def fitted():
    return fitted_vae()


@pytest.fixture(scope="module")
def explorer(fitted):
    vae, X, labels = fitted
    return LatentExplorer.from_estimator(vae, X, labels, n_neighbors=4, max_spectra=50)


def test_page_is_self_contained(explorer, tmp_path):
    page = explorer.to_html()
    assert "http://" not in page and "https://" not in page
    assert not re.search(r"<(script|img|iframe)[^>]*\ssrc=", page)
    assert not re.search(r"<link\b", page)
    assert "default-src 'none'" in page  # the page may not fetch anything
    path = explorer.save(tmp_path / "explorer.html")
    assert path.read_text(encoding="utf-8") == page
    assert page.count("<script") == 2  # the data and the code, both inline


def test_repr_html_is_an_iframe(explorer):
    out = explorer._repr_html_()
    assert out.startswith("<iframe srcdoc=") and "&lt;canvas" in out
    assert "<script" not in out  # escaped into the attribute


def test_exported_decoder_reproduces_inverse_transform(fitted, explorer):
    vae, X, _ = fitted
    rng = np.random.default_rng(0)
    Z = np.vstack([vae.transform(X)[:5], rng.normal(0, 2, (5, vae.latent_dim))])
    expected = vae.inverse_transform(Z).flux.value
    got = explorer.decode(Z)
    assert got.shape == expected.shape == (10, vae.n_features_in_)
    assert np.max(np.abs(got - expected)) < 1e-5 * np.max(np.abs(expected))


def test_neighbors_are_the_nearest_in_the_slider_latents(fitted, explorer):
    vae, X, _ = fitted
    Z = vae.transform(X)[:, explorer.dims]
    np.testing.assert_array_equal(explorer.neighbors, brute_force_neighbors(Z, 4))
    assert explorer.neighbor_space == "latent"
    assert np.all(np.diff(explorer.neighbor_distances, axis=1) >= 0)


def test_neighbors_in_the_remap_embedding(fitted):
    vae, X, _ = fitted
    remap = FakeREMAP(vae.n_features_in_)
    explorer = LatentExplorer.from_estimator(vae, X, remap=remap, n_neighbors=3, max_spectra=0)
    np.testing.assert_array_equal(explorer.neighbors, brute_force_neighbors(remap.embed(X), 3))
    assert explorer.neighbor_space == "DeepREMAP embedding"
    assert "DeepREMAP embedding" in repr(explorer)


def test_sliders_default_to_the_informative_latents(fitted, explorer):
    vae, X, _ = fitted
    informative = informative_dimensions(vae.transform(X))
    if informative.size:
        np.testing.assert_array_equal(explorer.dims, informative)
    else:  # the two latents of largest MAD
        assert explorer.dims.size == 2
    chosen = LatentExplorer.from_estimator(vae, X, dims=[3, 1], max_spectra=0)
    np.testing.assert_array_equal(chosen.dims, [3, 1])


def test_stored_spectra_are_the_observed_ones(fitted, explorer):
    vae, X, _ = fitted
    assert explorer.stored.size == 50
    assert np.all(np.diff(explorer.stored) > 0)
    flux = X.flux.value[explorer.stored]
    stored = explorer.stored_flux()
    assert np.max(np.abs(stored - flux)) <= 1e-4 * np.ptp(flux, axis=1).max()
    everything = LatentExplorer.from_estimator(vae, X[:30], max_spectra=500)
    np.testing.assert_array_equal(everything.stored, np.arange(30))


def test_long_spectra_store_fewer_observed_spectra(fitted, monkeypatch):
    from stellarlatent.diagnostics import explorer as module

    vae, X, _ = fitted
    monkeypatch.setattr(module, "_MAX_SPECTRA_BYTES", 10 * 2 * vae.n_features_in_)
    assert LatentExplorer.from_estimator(vae, X, max_spectra=50).stored.size == 10


def test_labels_reach_the_page(fitted):
    vae, X, labels = fitted
    table = Table(labels)
    table["name"] = [f"HD {i}" for i in range(len(table))]
    explorer = LatentExplorer.from_estimator(vae, X, table, max_spectra=0, title="My <stars>")
    page = explorer.to_html()
    assert '"names":["HD 0","HD 1"' in page
    assert '"name":"teff","unit":"K"' in page
    assert "<title>My &lt;stars&gt;</title>" in page


def test_the_scatter_is_first_coloured_by_a_stellar_label_not_a_catalogue_number(fitted):
    vae, X, labels = fitted
    table = Table(labels)
    table.add_column(np.arange(len(table)), name="miles_id", index=0)
    explorer = LatentExplorer.from_estimator(vae, X, table, max_spectra=0)
    names = [column["name"] for column in explorer._payload["labels"]]
    assert names[0] == "teff" and "miles_id" in names


def test_page_for_10000_spectra_stays_small(fitted):
    vae, X, _ = fitted
    rng = np.random.default_rng(1)
    flux = X.flux.value
    rows = rng.integers(0, flux.shape[0], 10_000)
    big = flux[rows] + rng.normal(0, 0.01, (10_000, flux.shape[1]))
    labels = Table({"teff": rng.uniform(4000, 7000, 10_000) * u.K})
    explorer = LatentExplorer.from_estimator(vae, big, labels)
    page = explorer.to_html()
    assert explorer.stored.size == 500
    assert len(page.encode()) < 25e6
    # the part that grows with the spectra: latents, labels, neighbours (~60 bytes a spectrum here)
    small = LatentExplorer.from_estimator(vae, big[:1000], labels[:1000]).to_html()
    assert (len(page) - len(small)) / 9000 < 200


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"n_neighbors": 0}, "n_neighbors must be a positive integer"),
        ({"n_neighbors": 120}, "n_neighbors must be smaller"),
        ({"max_spectra": -1}, "max_spectra must be a non-negative integer"),
        ({"dims": [7]}, "dims must hold indices"),
        ({"threshold": -1}, "threshold must be"),
        ({"title": 3}, "title must be a string"),
        ({"names": ["a"]}, "names has 1 entries"),
        ({"remap": object()}, "remap must be a fitted DeepREMAP"),
        ({"labels": Table({"teff": [1.0, 2.0]})}, "labels has 2 rows but X has 120"),
        ({"labels": {"teff": [1.0]}}, "labels must be an astropy Table"),
    ],
)
def test_bad_arguments_are_named(fitted, kwargs, match):
    vae, X, _ = fitted
    with pytest.raises((ValueError, TypeError), match=match):
        LatentExplorer.from_estimator(vae, X, **kwargs)


def test_bad_estimators_are_named(fitted):
    vae, X, _ = fitted
    with pytest.raises(ValueError, match="vae is not fitted"):
        LatentExplorer.from_estimator(SpectralVAE(), X)
    with pytest.raises(TypeError, match="vae must be a fitted SpectralVAE"):
        LatentExplorer.from_estimator(object(), X)
    import torch

    odd = copy.deepcopy(vae)
    odd.module_.decoder.append(torch.nn.BatchNorm1d(1))
    with pytest.raises(ValueError, match="vae: the explorer cannot decode a BatchNorm1d"):
        LatentExplorer.from_estimator(odd, X)


def test_save_checks_the_path(explorer, tmp_path):
    with pytest.raises(ValueError, match="path .* is a folder"):
        explorer.save(tmp_path)
    with pytest.raises(ValueError, match="does not exist"):
        explorer.save(tmp_path / "missing" / "page.html")
    with pytest.raises(TypeError, match="path must be"):
        explorer.save(3)
