"""Fixtures of the diagnostics tests: Agg backend and small fake estimators.

The fakes follow the duck-typed interfaces the diagnostics program against, with
a known structure so that the metrics can be checked against it:

* ``FakeVAE``: a linear decoder ``flux = 1 + Z @ W`` whose encoder is its exact
  pseudo-inverse; latent 0 follows Teff, latent 1 follows -log g, latents 2 and
  3 are collapsed (MAD ~ 7e-4, below the 0.02 threshold).
* ``FakeREMAP``: rows of ``X`` hold the mean and standard deviation of each
  label; the predicted distribution is that Gaussian, binned.
"""

import matplotlib

matplotlib.use("Agg")

import astropy.units as u  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402
from astropy.table import QTable  # noqa: E402
from scipy.stats import norm  # noqa: E402
from specutils import Spectrum  # noqa: E402

from stellarlatent._batch import as_flux_array  # noqa: E402


class FakeVAE:
    latent_dim = 4

    def __init__(self, n_pixels=80, seed=0):
        rng = np.random.default_rng(seed)
        self.spectral_axis = np.linspace(5000.0, 5400.0, n_pixels) * u.AA
        self.W = rng.normal(0.0, 0.05, (self.latent_dim, n_pixels))
        self.encoder = np.linalg.pinv(self.W)

    def decode(self, Z):
        return 1.0 + np.asarray(Z) @ self.W

    def transform(self, X):
        flux, _, _, _ = as_flux_array(X, dtype=np.float64)
        return (flux - 1.0) @ self.encoder

    def traverse(self, x, dim, values):
        z = self.transform(np.atleast_2d(np.asarray(x, dtype=float)))[0]
        Z = np.repeat(z[np.newaxis, :], len(values), axis=0)
        Z[:, dim] = values
        return Spectrum(
            flux=self.decode(Z) * u.one,
            spectral_axis=self.spectral_axis,
            spectral_axis_index=1,
        )


def make_latent_data(n=1500, seed=1):
    """Labels, latents and spectra of the FakeVAE's known structure."""
    rng = np.random.default_rng(seed)
    teff = rng.uniform(4000.0, 7000.0, n)
    logg = rng.uniform(1.0, 5.0, n)
    feh = rng.uniform(-2.0, 0.5, n)
    Z = np.column_stack(
        [
            (teff - 5500.0) / 1000.0 + rng.normal(0.0, 0.05, n),
            -(logg - 3.0) + rng.normal(0.0, 0.05, n),
            rng.normal(0.0, 0.001, n),
            rng.normal(0.0, 0.001, n),
        ]
    )
    feh[::10] = np.nan  # missing labels are normal
    labels = QTable({"teff": teff * u.K, "logg": logg * u.dex, "feh": feh * u.dex})
    labels["name"] = [f"star{i}" for i in range(n)]  # non-numeric: skipped
    return Z, labels


@pytest.fixture
def fake_vae():
    return FakeVAE()


@pytest.fixture
def latent_data(fake_vae):
    Z, labels = make_latent_data()
    return fake_vae.decode(Z), Z, labels


class FakeREMAP:
    labels = ("teff", "logg")
    bin_edges = {"teff": np.linspace(3000.0, 8000.0, 51), "logg": np.linspace(0.0, 5.0, 41)}
    units = {"teff": u.K, "logg": u.dex}

    def _split(self, X):
        X = np.asarray(X, dtype=float)
        return {"teff": (X[:, 0], X[:, 1]), "logg": (X[:, 2], X[:, 3])}

    def predict_proba(self, X):
        out = {}
        for label, (mu, sigma) in self._split(X).items():
            edges = self.bin_edges[label]
            cdf = norm.cdf((edges[np.newaxis, :] - mu[:, np.newaxis]) / sigma[:, np.newaxis])
            proba = np.diff(cdf, axis=1)
            out[label] = (proba / proba.sum(axis=1, keepdims=True), edges)
        return out

    def predict(self, X):
        table = QTable()
        for label, (mu, sigma) in self._split(X).items():
            unit = self.units[label]
            edges = self.bin_edges[label]
            table[label] = mu * unit
            table[f"{label}_err"] = sigma * unit
            table[f"{label}_p16"] = (mu - sigma) * unit
            table[f"{label}_p84"] = (mu + sigma) * unit
            table[f"{label}_out_of_range"] = (mu < edges[0]) | (mu > edges[-1])
        return table


def make_remap_data(n=4000, seed=2, truth_scale=1.0):
    """Inputs of FakeREMAP and truths drawn from its predicted distributions.

    With ``truth_scale`` > 1 the truths scatter more than predicted: the model is
    over-confident.
    """
    rng = np.random.default_rng(seed)
    mu_teff = rng.uniform(4000.0, 7000.0, n)
    sigma_teff = rng.uniform(80.0, 300.0, n)
    mu_logg = rng.uniform(1.5, 4.5, n)
    sigma_logg = rng.uniform(0.1, 0.3, n)
    X = np.column_stack([mu_teff, sigma_teff, mu_logg, sigma_logg])
    truth = QTable(
        {
            "teff": (mu_teff + truth_scale * sigma_teff * rng.normal(size=n)) * u.K,
            "logg": (mu_logg + truth_scale * sigma_logg * rng.normal(size=n)) * u.dex,
        }
    )
    return X, truth


@pytest.fixture
def fake_remap():
    return FakeREMAP()


@pytest.fixture(autouse=True)
def close_figures():
    yield
    import matplotlib.pyplot as plt

    plt.close("all")
