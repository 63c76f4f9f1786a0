"""Data and small estimators shared by the tests of stellarlatent.estimators.

Plain functions (the tests call them with their own sizes and settings);
the fixtures are in conftest.py.
"""

import astropy.units as u
import numpy as np
from astropy.table import QTable

from stellarlatent.estimators import DeepREMAP, SpectralVAE


def line_spectra(n=160, n_pixels=128, seed=0, noise=0.01):
    """Spectra whose lines encode the labels, and the labels (a QTable).

    Teff sets the depth of a line, log g the width of another (pressure
    broadening) and [Fe/H] the depth of a group of narrow lines.
    """
    rng = np.random.default_rng(seed)
    x = np.linspace(0, 1, n_pixels)
    teff = rng.uniform(4000, 7000, n)
    logg = rng.uniform(1, 5, n)
    feh = rng.uniform(-2, 0.5, n)

    def line(centre, sigma, depth):
        return depth[:, None] * np.exp(-0.5 * ((x - centre) / sigma[:, None]) ** 2)

    one = np.ones(n)
    flux = 1 - line(0.2, 0.02 * one, 0.1 + 0.8 * (teff - 4000) / 3000)
    flux -= line(0.5, 0.015 + 0.04 * (logg - 1) / 4, 0.5 * one)
    for centre in (0.7, 0.75, 0.8, 0.85, 0.9):
        flux -= line(centre, 0.004 * one, 0.1 + 0.6 * (feh + 2) / 2.5)
    flux += noise * rng.standard_normal(flux.shape)
    labels = QTable({"teff": teff * u.K, "logg": logg * u.dex, "feh": feh * u.dex})
    return flux, labels


def small_remap(**kwargs):
    """A small DeepREMAP with the settings these tests were written for (linear Teff bins,
    one-hot targets, no contrast channel; the recommended defaults are tested apart)."""
    params = dict(n_bins=12, base_channels=4, n_stages=2, embedding_dim=16, max_epochs=3,
                  batch_size=16, lr=1e-2, verbose=0, random_state=0, log_teff=False,
                  class_balance=True, label_smoothing=0.0, contrast_window=None,
                  standardize=False, validation_fraction=0.1, blocks_per_stage=2)
    params.update(kwargs)
    return DeepREMAP(**params)


def absorption_line_spectra(n=96, n_pixels=128, seed=0):
    """Spectra with one absorption line whose depth and centre are known: flux, depth, centre."""
    rng = np.random.default_rng(seed)
    x = np.linspace(0, 1, n_pixels)
    depth = rng.uniform(0.1, 0.9, n)
    center = rng.uniform(0.35, 0.65, n)
    flux = 1 - depth[:, None] * np.exp(-0.5 * ((x - center[:, None]) / 0.04) ** 2)
    return flux, depth, center


def small_vae(**kwargs):
    """A small SpectralVAE (3 latents, 3 epochs) for the spectra of `absorption_line_spectra`."""
    params = dict(latent_dim=3, beta=0.01, max_epochs=3, batch_size=16, verbose=0, random_state=1)
    params.update(kwargs)
    return SpectralVAE(**params)
