"""Stellar parameters of MILES FGK stars: DeepREMAP against three classical baselines.

On the public MILES FGK stars (4000-7000 K in the MILES table, Teff, log g
and [Fe/H] all known, the flagged star left out), every method sees the same
folds and the same preprocessing: the spectra are resampled flux-conservingly
onto a log-uniform grid of 2048 pixels over 3700-7300 Angstrom
(`~stellarlatent.preprocessing.Resampler`) and divided by their median flux
(`~stellarlatent.preprocessing.ContinuumNormalizer`). The methods are:

* **DeepREMAP** with the recommended settings below: pre-trained on
  synthetic spectra (`~stellarlatent.datasets.make_synthetic_spectra` on the
  MILES wavelength grid, air wavelengths, 2.5 Angstrom FWHM, rest frame,
  S/N 30-300), then fine-tuned on the training stars of the fold (85% of
  them; the other 15% calibrate the probabilities by temperature scaling);
  three networks, each pre-trained with its own seed and then fine-tuned,
  are combined by averaging their log-probabilities and joined by a ridge
  expert (`~stellarlatent.estimators.DeepREMAPEnsemble`), and one
  temperature per label is fitted to the coverage of the 68% and 95%
  intervals of the calibration stars (``calibrate(method="coverage")``, see
  below). Two rows of their own: the same networks without the ridge
  expert (``networks only``), and with the ridge expert refitted on every
  training star, the calibration reading its leave-one-out predictions of
  the calibration stars (``calibrate(..., ridge_train=(X_fit, y_fit))``,
  ``DeepREMAP, ridge refit``; it did not help, see below);
* **ridge** regression on the normalised flux, the penalty of each label
  chosen by leave-one-out cross-validation (`~sklearn.linear_model.RidgeCV`);
* **pca-knn**: per-pixel standardisation, PCA and distance-weighted k nearest
  neighbours, the number of components and of neighbours chosen by an inner
  3-fold cross-validation on the training stars;
* **cannon**: The Cannon (`~stellarlatent.estimators.QuadraticSpectrumModel`:
  every pixel a quadratic function of the standardised labels plus the cube
  of Teff, with the cross-fitted variance of what it misses; labels of a test
  star by weighted least squares from the best-fitting training star), on
  the same median-normalised flux.

For Teff, log g and [Fe/H] the script prints the robust scatter
(1.4826 x median absolute residual) and the bias (median residual) of every
method, then the 68% and 95% coverage of the calibrated DeepREMAP intervals
(`~stellarlatent.diagnostics.interval_coverage` on the binned probabilities)
and the expected calibration error of its most probable bin
(`~stellarlatent.diagnostics.expected_calibration_error`). Last, the gain from
pre-training: the pre-trained network fine-tuned on 100 training stars, against
the same network trained from scratch on the same 100 stars, both judged on
the test stars.

Recommended DeepREMAP settings (the ones used here, chosen by cross-validation
on the public stars; CPU, one torch thread)::

    grid = SpectralGrid.log_uniform(3700 * u.AA, 7300 * u.AA, 2048)
    prepare = make_pipeline(Resampler(grid), ContinuumNormalizer(method="median"))
    remap = DeepREMAP(base_channels=8, n_stages=4, blocks_per_stage=1, standardize=True,
                      contrast_window=33, label_smoothing=1.0, class_balance=False,
                      lr=3e-3, batch_size=32, validation_fraction=0.0, max_epochs=30)
    remap.fit(synthetic_flux, synthetic_labels)   # 4000 synthetic spectra
    remap.fine_tune(miles_flux, miles_labels, max_epochs=40, lr=3e-3)
    remap.calibrate(held_out_flux, held_out_labels, method="coverage")
    # best: three such networks, pre-trained with random_state 0, 7919, 15838
    # and fine-tuned, whose log-probabilities are averaged and joined by the
    # ridge expert, one coverage temperature per label (DeepREMAPEnsemble)

``contrast_window=33`` gives the network the lines without the continuum as
a third input channel (the flux minus its running mean over 33 pixels, about
55 Angstrom); ``label_smoothing=1.0`` trains on Gaussian soft targets one bin
wide (77 K, 0.11 dex and 0.08 dex here, about the uncertainties of the MILES
labels). Pre-training each member separately makes the members differ in
more than their fine-tuning batches; 30 pre-training epochs rather than 15
gained about 3 K in Teff. Five members rather than three gave the same Teff
(86 K) in paired runs, at 30 minutes against 19 for the benchmark.

Temperature scaling by likelihood (``calibrate(method="nll")``, the default)
gave intervals that over-covered on these stars (with one-hot targets, 68%
intervals holding 82-86% of the truths, temperatures 1.3-2.2): the residuals
have heavier tails than the predicted distributions (5-6% of the stars beyond
2 sigma, 1.5-2% beyond 3), and the few stars far from their predicted bins
dominate the likelihood, so the fitted temperature widens every distribution
for their sake (and pulls the posterior means towards the middle of the
bins). Fitted to the coverage of the 68% intervals alone, the 95% intervals
under-covered (0.872-0.923 in the run of 2026-12-06, three members); fitted
to the 68% and 95% intervals together (the default), 0.901-0.929, with the
68% intervals at 0.689-0.730. The script prints the 68%-only calibration of
the same networks as an ablation. The expected calibration error of the most
probable bin is 0.01-0.04 (0.13-0.19 with one-hot targets).

``--all-types`` also fine-tunes DeepREMAP on the labelled stars of every other
spectral type in the training folder (never tested; the synthetic spectra then
span their labels) and adds the row ``ridge, all types``. Measured on
2026-12-06: 94 K, 0.213 dex and 0.138 dex against 86 K, 0.201 dex and
0.122 dex for the recipe on FGK stars alone; not used.

Usage::

    python benchmarks/bench_parameters.py                   # 5-fold CV on the public stars
    python benchmarks/bench_parameters.py --quick           # a few-minute smoke run
    python benchmarks/bench_parameters.py --train A --test B  # folders in the MILES layout

In cross-validation the numbers are those of the pooled out-of-fold
predictions. The last output line is one JSON object: ``scatter`` and
``bias`` by method and label, ``coverage68``, ``coverage95`` and ``ece`` of
DeepREMAP by label (with ``--calibration-cv``, the same three of the
cross-calibrated row under ``cross_calibrated``), and ``seconds``, the time
of the whole run.

``--calibration-cv K`` adds the row ``DeepREMAP, cross-calibrated``: the
same pre-trained networks fine-tuned on every training star of the fold (not
85% of them) and calibrated on the out-of-fold predictions of K copies
fine-tuned on the rest (`DeepREMAPEnsemble.cross_calibrate`), K + 1
fine-tunings where the recipe needs one. ``stellarlatent fit-remap`` trains
this way by default (K = 5, chosen by the 5-fold cross-validation of the
performance page); the benchmark keeps the held-out calibration as its main
row so that a run stays near 20 minutes (with ``--calibration-cv 5`` the
cross-validation on 470 stars took 38 minutes with ``--jobs 2``, and on the
588 public stars 65 minutes with ``--jobs 1 --skip-gain`` on a shared
machine).
"""

import argparse
import copy
import json
import time
from pathlib import Path

import astropy.units as u
import numpy as np
import torch
from sklearn.base import clone
from sklearn.decomposition import PCA
from sklearn.linear_model import RidgeCV
from sklearn.model_selection import KFold
from sklearn.neighbors import KNeighborsRegressor
from sklearn.pipeline import make_pipeline

from stellarlatent.datasets import find_data_dir, make_synthetic_spectra, read_miles
from stellarlatent.diagnostics import interval_coverage, reliability_curve
from stellarlatent.estimators import DeepREMAP, DeepREMAPEnsemble, QuadraticSpectrumModel
from specutils import Spectrum

from stellarlatent.preprocessing import (ContinuumNormalizer, InstrumentAugmenter, Resampler,
                                         SpectralGrid)

LABELS = ("teff", "logg", "feh")
UNITS = {"teff": "K", "logg": "dex", "feh": "dex"}
FGK = (4000.0, 7000.0)
WAVE_RANGE = (3700.0, 7300.0)
# Labels of the synthetic pre-training spectra: a little wider than the MILES
# FGK stars, so that their bins (set by the pre-training) hold every star.
SYNTHETIC_RANGES = {"teff": (3900.0, 7100.0), "logg": (0.0, 5.0), "feh": (-3.0, 0.7)}


def covering(y):
    """`SYNTHETIC_RANGES` widened to hold every label of ``y`` (Teff by 5% beyond), within
    what `make_synthetic_spectra` draws (its [Fe/H] stops at +1)."""
    teff, logg, feh = SYNTHETIC_RANGES.values()
    return {"teff": (min(teff[0], y[:, 0].min() / 1.05), max(teff[1], y[:, 0].max() * 1.05)),
            "logg": (min(logg[0], y[:, 1].min()), max(logg[1], y[:, 1].max())),
            "feh": (min(feh[0], y[:, 2].min()), min(1.0, max(feh[1], y[:, 2].max())))}


# -- data ------------------------------------------------------------------------------


def _column(table, name):
    values = table[name]
    values = getattr(values, "value", values)
    return np.ma.filled(np.ma.asarray(values, dtype=float), np.nan)


def load_fgk(directory, others=False):
    """MILES FGK stars with all three labels: (spectra batch, labels (n, 3), MILES ids).

    With ``others``, the other labelled stars of the folder instead (every
    spectral type outside 4000-7000 K, all three labels known, unflagged):
    ``--all-types`` trains DeepREMAP on them too, but never tests on them.
    """
    spectra, table = read_miles(directory, exclude_flagged=True)
    y = np.column_stack([_column(table, name) for name in LABELS])
    fgk = (y[:, 0] >= FGK[0]) & (y[:, 0] <= FGK[1])
    keep = np.all(np.isfinite(y), axis=1) & (~fgk if others else fgk)
    if "flagged" in table.colnames:
        keep &= ~np.asarray(table["flagged"], dtype=bool)
    rows = np.flatnonzero(keep)
    if rows.size == 0:
        kind = "non-FGK" if others else "FGK"
        raise SystemExit(f"no {kind} star with all three labels in {directory}")
    return spectra[rows], y[rows], np.asarray(table["miles_id"])[rows]


def model_grid(n_pixels):
    """The log-uniform grid every method works on."""
    return SpectralGrid.log_uniform(WAVE_RANGE[0] * u.AA, WAVE_RANGE[1] * u.AA, n_pixels)


def preprocess(spectra, n_pixels, normalisation="median"):
    """Resample onto the log-uniform grid and normalise: float32 flux, NaN = bad."""
    prepare = make_pipeline(Resampler(model_grid(n_pixels)),
                            ContinuumNormalizer(method=normalisation))
    batch = prepare.fit_transform(spectra)
    flux = np.asarray(batch.flux.value, dtype=np.float32)
    if batch.mask is not None:
        flux = np.where(batch.mask, np.nan, flux)
    return flux


def synthetic_set(n, spectral_axis, n_pixels, seed, ranges=SYNTHETIC_RANGES):
    """Synthetic spectra matched to MILES (grid, air wavelengths, 2.5 A FWHM, rest frame)."""
    spectra, table = make_synthetic_spectra(
        n, grid=spectral_axis, teff=ranges["teff"], logg=ranges["logg"],
        feh=ranges["feh"], rv=0 * u.km / u.s, vsini=(0.0, 15.0) * u.km / u.s,
        snr=(30.0, 300.0), fwhm=2.5 * u.AA, air=True, random_state=seed,
    )
    y = np.column_stack([np.asarray(table[name].value, dtype=float) for name in LABELS])
    return preprocess(spectra, n_pixels), y


#: The degraded copies of ``--augment``: those of the bundled "miles" model
#: (``build_pretrained.py --augment 3 --augment-steps resolution rv noise coverage``),
#: set from a list of other instruments' traits before any run, never tuned.
AUGMENTER = InstrumentAugmenter(
    fwhm=(2.5, 4.0) * u.AA, input_fwhm=2.5 * u.AA, rv_scatter=5.0 * u.km / u.s, tilt=None,
    ebv=None, snr=(20.0, 150.0), coverage=[[3700, 4000], [6700, 7300]] * u.AA,
    coverage_probability=0.5)


def degraded_copies(parts, rows, copies, seed, n_pixels):
    """Median-normalised flux of ``copies`` degraded copies of each raw spectrum ``rows``
    (rows of the stars of ``parts`` in order), and the row of each copy."""
    sizes = np.cumsum([0] + [part.flux.shape[0] for part in parts])
    star = np.repeat(np.asarray(rows), copies)
    which = np.searchsorted(sizes, star, side="right") - 1
    flux = np.concatenate([parts[k].flux.value[[r - sizes[k]]] for k, r in zip(which, star)])
    mask = np.concatenate([np.asarray(parts[k].mask)[[r - sizes[k]]]
                           for k, r in zip(which, star)])
    raw = Spectrum(flux=flux * u.one, spectral_axis=parts[0].spectral_axis, mask=mask,
                   spectral_axis_index=1)
    degraded = clone(AUGMENTER).set_params(random_state=seed).transform(raw)
    return preprocess(degraded, n_pixels), star


def fill_bad(train, *others):
    """Replace NaN pixels by the training median of that pixel (for the baselines)."""
    median = np.nanmedian(train, axis=0)
    median = np.where(np.isfinite(median), median, 1.0)
    return [np.where(np.isfinite(x), x, median) for x in (train, *others)]


# -- baselines -------------------------------------------------------------------------


RIDGE_ALPHAS = np.logspace(-4, 4, 33)
#: Normalisations ridge regression chooses among, by an inner cross-validation.
NORMALISATIONS = ("median", "running_quantile", "spline")


def _ridge_fit_predict(X_train, y_train, X_test, standardise=False):
    X_train, X_test = fill_bad(X_train, X_test)
    loc, scale = y_train.mean(axis=0), y_train.std(axis=0)
    pixel_loc, pixel_scale = X_train.mean(axis=0), X_train.std(axis=0)
    pixel_scale = np.where(pixel_scale > 0, pixel_scale, 1.0) if standardise else 1.0
    model = RidgeCV(alphas=RIDGE_ALPHAS, alpha_per_target=True)
    model.fit((X_train - pixel_loc) / pixel_scale, (y_train - loc) / scale)
    return model.predict((X_test - pixel_loc) / pixel_scale) * scale + loc


def ridge(X_train, y_train, X_test, seed, views=None, train=None, test=None):
    """Ridge regression at its strongest: the penalty of each label by leave-one-out CV,
    and for each label the normalisation (among `NORMALISATIONS`; ``views`` holds the
    flux of every star under each) and whether the pixels are standardised, chosen by
    a 5-fold CV inside the training stars."""
    if views is None:
        return _ridge_fit_predict(X_train, y_train, X_test)
    label_scale = y_train.std(axis=0)
    loss = {}
    for name, flux in views.items():
        for standardise in (False, True):
            inner = np.full(y_train.shape, np.nan)
            for fit_rows, check_rows in KFold(5, shuffle=True, random_state=seed).split(train):
                inner[check_rows] = _ridge_fit_predict(
                    flux[train[fit_rows]], y_train[fit_rows], flux[train[check_rows]],
                    standardise)
            loss[name, standardise] = (1.4826 * np.median(np.abs(inner - y_train), axis=0)
                                       / label_scale)
    predicted = np.empty((len(test), y_train.shape[1]))
    chosen = []
    for j in range(y_train.shape[1]):
        best = min(loss, key=lambda key: loss[key][j])  # noqa: B023
        chosen.append(f"{best[0]}{'+std' if best[1] else ''}")
        predicted[:, j] = _ridge_fit_predict(views[best[0]][train], y_train,
                                             views[best[0]][test], best[1])[:, j]
    ridge.chosen = chosen
    return predicted


PCA_COMPONENTS = (5, 10, 20, 40)
KNN_NEIGHBOURS = (3, 5, 10, 20)


def _pca_scores(X_train, X_test, n_components, seed):
    loc, scale = X_train.mean(axis=0), X_train.std(axis=0)
    scale = np.where(scale > 0, scale, 1.0)
    pca = PCA(n_components=min(n_components, *X_train.shape), random_state=seed)
    pca.fit((X_train - loc) / scale)
    return pca.transform((X_train - loc) / scale), pca.transform((X_test - loc) / scale)


def pca_knn(X_train, y_train, X_test, seed):
    X_train, X_test = fill_bad(X_train, X_test)
    label_scale = y_train.std(axis=0)
    loss = {}
    for inner_train, inner_test in KFold(3, shuffle=True, random_state=seed).split(X_train):
        Z_train, Z_test = _pca_scores(X_train[inner_train], X_train[inner_test],
                                      max(PCA_COMPONENTS), seed)
        for nc in PCA_COMPONENTS:
            for k in KNN_NEIGHBOURS:
                knn = KNeighborsRegressor(n_neighbors=k, weights="distance")
                pred = knn.fit(Z_train[:, :nc], y_train[inner_train]).predict(Z_test[:, :nc])
                scatter = 1.4826 * np.median(np.abs(pred - y_train[inner_test]), axis=0)
                loss[nc, k] = loss.get((nc, k), 0.0) + np.sum((scatter / label_scale) ** 2)
    nc, k = min(loss, key=loss.get)
    Z_train, Z_test = _pca_scores(X_train, X_test, nc, seed)
    knn = KNeighborsRegressor(n_neighbors=k, weights="distance").fit(Z_train, y_train)
    return knn.predict(Z_test)


def cannon(X_train, y_train, X_test, seed):
    """The Cannon: `~stellarlatent.estimators.QuadraticSpectrumModel` on the same flux."""
    axis = model_grid(X_train.shape[1]).spectral_axis

    def spectra(flux):
        return Spectrum(flux=flux * u.one, spectral_axis=axis, spectral_axis_index=1)

    model = QuadraticSpectrumModel(labels=LABELS).fit(spectra(X_train), y_train)
    table = model.predict(spectra(X_test))
    return np.column_stack([np.asarray(table[name].value, dtype=float) for name in LABELS])


BASELINES = {"ridge": ridge, "pca-knn": pca_knn, "cannon": cannon}


# -- DeepREMAP -------------------------------------------------------------------------

#: Fine-tuning learning rate (the recipe's lr).
FINE_TUNE_LR = 3e-3
#: How the temperatures are fitted (see `DeepREMAP.calibrate`): the likelihood
#: is dominated by the few stars far from their predicted bins and over-covers;
#: the coverage fit gives intervals that hold what they claim.
CALIBRATION = "coverage"
#: Networks per ensemble, each pre-trained with its own seed.
N_MODELS = 3
#: the row of the ablation that refits the ridge expert on every training star
REFIT = "DeepREMAP, ridge refit"
#: the row of ridge regression given the other spectral types too (``--all-types``)
RIDGE_ALL = "ridge, all types"
#: the row of the ensemble fitted on every training star and calibrated on its
#: out-of-fold predictions (``--calibration-cv K``)
CROSS = "DeepREMAP, cross-calibrated"


def new_ensemble(args, epochs, ridge_expert=True):
    """The recommended ensemble: `DeepREMAP`'s defaults are the recipe."""
    member = DeepREMAP(LABELS, max_epochs=epochs, device=args.device, verbose=0)
    return DeepREMAPEnsemble(member, n_members=args.n_models, fine_tune_epochs=args.epochs,
                             fine_tune_lr=FINE_TUNE_LR, n_jobs=args.jobs,
                             random_state=args.seed, ridge_expert=ridge_expert)


def networks_only(ensemble):
    """The same fitted networks without the ridge expert (for the ablation row)."""
    alone = clone(ensemble).set_params(ridge_expert=False)
    alone._adopt(ensemble.members_)
    alone.ridge_ = None
    return alone


def point_estimates(model, X):
    """Posterior means of the labels, ndarray (n, 3)."""
    table = model.predict(X)
    return np.column_stack([np.asarray(table[name].value, dtype=float) for name in LABELS])


def robust_stats(predicted, true):
    residual = predicted - true
    return 1.4826 * np.median(np.abs(residual), axis=0), np.median(residual, axis=0)


class CalibrationTally:
    """Interval coverage and top-bin calibration pooled over folds.

    Coverage is pooled by counts; the expected calibration error of the pooled
    predictions is rebuilt from the per-fold reliability curves (the same
    confidence intervals as `expected_calibration_error`, whose value it equals
    for a single fold), since folds trained from scratch have different bins.
    """

    def __init__(self, n_bins=10):
        self.n_bins = n_bins
        self.covered = {(name, level): 0.0 for name in LABELS for level in (68, 95)}
        self.n = dict.fromkeys(LABELS, 0)
        self.confidence = {name: np.zeros(n_bins) for name in LABELS}
        self.accuracy = {name: np.zeros(n_bins) for name in LABELS}
        self.counts = {name: np.zeros(n_bins) for name in LABELS}

    def add(self, model, X, y):
        proba = model.predict_proba(X)
        truth = {name: y[:, j] for j, name in enumerate(LABELS)}
        coverage = interval_coverage(proba, truth, levels=(0.68, 0.95))
        for row in coverage:
            name = row["label"]
            self.n[name] += int(row["n"])
            for level in (68, 95):
                self.covered[name, level] += float(row[f"coverage_{level}"]) * int(row["n"])
        for j, name in enumerate(LABELS):
            p, edges = proba[name]
            edges = np.asarray(getattr(edges, "value", edges), dtype=float)
            confidence, accuracy, counts = reliability_curve(p, y[:, j], edges, n_bins=self.n_bins)
            self.confidence[name] += np.nan_to_num(confidence) * counts
            self.accuracy[name] += np.nan_to_num(accuracy) * counts
            self.counts[name] += counts

    def coverage(self, level):
        return {name: self.covered[name, level] / max(self.n[name], 1) for name in LABELS}

    def ece(self):
        return {name: float(np.sum(np.abs(self.accuracy[name] - self.confidence[name]))
                            / max(self.counts[name].sum(), 1)) for name in LABELS}


# -- the benchmark ---------------------------------------------------------------------


def splits(args, n):
    """Yield (fold, train rows, test rows) of the cross-validation."""
    folds = KFold(args.folds, shuffle=True, random_state=args.seed).split(np.arange(n))
    yield from ((k, train, test) for k, (train, test) in enumerate(folds))


def holdout_split(n, fraction, seed):
    """Rows kept for development and rows held out (set aside before anything is tuned)."""
    order = np.random.default_rng(seed).permutation(n)
    n_out = int(round(fraction * n))
    return np.sort(order[n_out:]), np.sort(order[:n_out])


def calibration_split(n, fraction, seed):
    """Rows that train and rows that calibrate DeepREMAP, inside a training set."""
    order = np.random.default_rng(seed).permutation(n)
    n_cal = max(1, int(round(fraction * n)))
    return np.sort(order[n_cal:]), np.sort(order[:n_cal])


def print_table(title, results, digits=(0, 3, 3), units=True):
    width = max(10, *(len(name) for name in results))
    print(title)
    print(f"  {'':{width}s}"
          + "".join(f"{f'{n} [{UNITS[n]}]' if units else n:>11s}" for n in LABELS))
    for name, values in results.items():
        print(f"  {name:{width}s}"
              + "".join(f"{values[n]:11.{d}f}" for n, d in zip(LABELS, digits)))


def parse_args(argv):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--miles", help="MILES folder (default: find_data_dir('miles'))")
    parser.add_argument("--train", help="folder of training spectra in the MILES layout")
    parser.add_argument("--test", help="folder of test spectra in the MILES layout")
    parser.add_argument("--folds", type=int, default=5, help="cross-validation folds")
    parser.add_argument("--holdout-fraction", type=float, default=0.0,
                        help="fraction of the stars set aside before anything else; the "
                             "cross-validation runs on the others (default 0: none)")
    parser.add_argument("--holdout-seed", type=int, default=12345,
                        help="seed of the held-out draw")
    parser.add_argument("--on-holdout", action="store_true",
                        help="train on every star not held out and test once on the held-out "
                             "ones (instead of the cross-validation)")
    parser.add_argument("--n-pixels", type=int, default=2048)
    parser.add_argument("--epochs", type=int, default=None,
                        help="DeepREMAP epochs on the MILES stars (fine-tuning; default 40, "
                             "or 150 from scratch with --skip-pretraining)")
    parser.add_argument("--pretrain-epochs", type=int, default=30,
                        help="epochs of each pre-training on the synthetic spectra")
    parser.add_argument("--n-synthetic", type=int, default=4000,
                        help="synthetic spectra for the pre-training")
    parser.add_argument("--n-models", type=int, default=N_MODELS,
                        help="DeepREMAP networks per ensemble")
    parser.add_argument("--n-small", type=int, default=100,
                        help="stars of the pre-training gain experiment")
    parser.add_argument("--calibration-fraction", type=float, default=0.15,
                        help="fraction of each training set held out to calibrate DeepREMAP")
    parser.add_argument("--calibration-cv", type=int, default=0, metavar="K",
                        help="also fine-tune DeepREMAP on every training star and calibrate "
                             "it on its K-fold out-of-fold predictions "
                             "(DeepREMAPEnsemble.cross_calibrate), a row of its own with "
                             "its coverage (default 0: not run)")
    parser.add_argument("--augment", type=int, default=0, metavar="COPIES",
                        help="degraded copies of each training star (`AUGMENTER`) added to "
                             "DeepREMAP's fine-tuning stars, and one of each calibration star "
                             "to its calibration stars; ridge gets them in a row of its own")
    parser.add_argument("--all-types", action="store_true",
                        help="also fine-tune DeepREMAP on the labelled stars of every other "
                             "spectral type of the training folder (never tested; the "
                             "synthetic spectra then span their labels too); ridge gets them "
                             "in a row of its own")
    parser.add_argument("--skip-pretraining", action="store_true",
                        help="train DeepREMAP from scratch; no pre-training gain experiment")
    parser.add_argument("--skip-gain", action="store_true",
                        help="no pre-training gain experiment")
    parser.add_argument("--quick", action="store_true",
                        help="smoke run: 2 folds, 1000 synthetic spectra, fewer epochs")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--device", default="cpu", help="torch device of DeepREMAP")
    parser.add_argument("--jobs", type=int, default=1,
                        help="ensemble members trained at once, in separate processes")
    parser.add_argument("--threads", type=int, default=1,
                        help="torch CPU threads (one is fastest for this small network)")
    args = parser.parse_args(argv)
    if bool(args.train) != bool(args.test):
        parser.error("--train and --test go together")
    if not 0 <= args.holdout_fraction < 1:
        parser.error("--holdout-fraction must be in [0, 1)")
    if args.on_holdout and not args.holdout_fraction:
        parser.error("--on-holdout needs --holdout-fraction")
    if args.train and args.holdout_fraction:
        parser.error("--train/--test already hold the test stars out: no --holdout-fraction")
    if args.calibration_cv and (args.calibration_cv < 2 or args.augment or args.all_types
                                or args.skip_pretraining):
        parser.error("--calibration-cv needs K >= 2 and the pre-training, and goes with "
                     "neither --augment nor --all-types")
    if args.quick:
        args.folds = min(args.folds, 2)
        args.n_synthetic = min(args.n_synthetic, 1000)
        args.pretrain_epochs = min(args.pretrain_epochs, 4)
        args.n_models = min(args.n_models, 2)
        args.skip_gain = True
    if args.epochs is None:
        args.epochs = 150 if args.skip_pretraining else 40
        if args.quick:
            args.epochs = 40 if args.skip_pretraining else 12
    return args


def load_others(args):
    """The non-FGK labelled stars of the training folder (``--all-types``), or None."""
    if not args.all_types:
        return None
    folder = args.train or args.miles or find_data_dir("miles")
    spectra, y, _ = load_fgk(Path(folder), others=True)
    return spectra, y


def load_all(args):
    """Every star of the run: raw spectra, labels, the plan of (fold, train, test), words."""
    if args.train:
        train_spectra, y_train, _ = load_fgk(Path(args.train))
        test_spectra, y_test, _ = load_fgk(Path(args.test))
        spectra = [train_spectra, test_spectra]
        y = np.concatenate([y_train, y_test])
        n_train = len(y_train)
        plan = [(0, np.arange(n_train), np.arange(n_train, len(y)))]
        mode = (f"trained on {n_train} stars of {args.train}, tested on {len(y) - n_train} "
                f"of {args.test}")
        return spectra, y, plan, mode
    folder = Path(args.miles) if args.miles else find_data_dir("miles")
    if folder is None:
        raise SystemExit("MILES data not found: pass --miles DIR or set STELLARLATENT_DATA")
    spectra, y, _ = load_fgk(folder)
    where = f"stars of {folder}"
    if args.holdout_fraction:
        dev, held = holdout_split(len(y), args.holdout_fraction, args.holdout_seed)
        if args.on_holdout:
            plan = [(0, dev, held)]
            mode = (f"trained on {len(dev)} {where}, tested once on the {len(held)} held out "
                    f"(fraction {args.holdout_fraction:g}, seed {args.holdout_seed})")
        else:
            plan = [(k, dev[train], dev[test]) for k, train, test in splits(args, len(dev))]
            mode = (f"{args.folds}-fold cross-validation on {len(dev)} {where}; "
                    f"{len(held)} held out and not used (seed {args.holdout_seed})")
    else:
        plan = list(splits(args, len(y)))
        mode = f"{args.folds}-fold cross-validation on {len(y)} {where}"
    return [spectra], y, plan, mode


def main(argv=None):
    args = parse_args(argv)
    torch.set_num_threads(args.threads)
    started = time.perf_counter()

    parts, y, plan, mode = load_all(args)
    others = load_others(args)
    # the other types come after the FGK stars: rows len(y) on, never in a test set
    extra = np.arange(len(y), len(y) + (0 if others is None else len(others[1])))
    y_all = y if others is None else np.concatenate([y, others[1]])
    if others is not None:
        parts = [*parts, others[0]]
        mode += (f"; DeepREMAP also fine-tuned on {len(extra)} labelled stars of other "
                 f"types (Teff {others[1][:, 0].min():.0f}-{others[1][:, 0].max():.0f} K)")
    views = {name: np.concatenate([preprocess(part, args.n_pixels, name) for part in parts])
             for name in NORMALISATIONS}
    X = views["median"]
    spectral_axis = parts[0].spectral_axis
    print(f"MILES FGK stars: {mode}; grid {WAVE_RANGE[0]:g}-{WAVE_RANGE[1]:g} A, "
          f"{args.n_pixels} log-uniform pixels, median-normalised (ridge also tries "
          f"{', '.join(NORMALISATIONS[1:])}); torch threads {torch.get_num_threads()}")

    template = new_ensemble(args, args.pretrain_epochs if not args.skip_pretraining
                            else args.epochs)
    if not args.skip_pretraining:
        start = time.perf_counter()
        ranges = SYNTHETIC_RANGES if others is None else covering(y_all)
        X_syn, y_syn = synthetic_set(args.n_synthetic, spectral_axis, args.n_pixels,
                                     args.seed + 1, ranges)
        made = time.perf_counter() - start
        # each member is pre-trained with its own seed: the members then differ in
        # their pre-training too, not only in the fine-tuning batches
        template.pretrain(X_syn, y_syn)
        print(f"pre-trained {args.n_models} DeepREMAP networks on {args.n_synthetic} synthetic "
              f"spectra: {made:.0f} s to make them, {time.perf_counter() - start - made:.0f} s "
              f"for {args.pretrain_epochs} epochs each", flush=True)
        del X_syn, y_syn

    methods = ("DeepREMAP", "networks only") + (() if args.augment else (REFIT,)) + (
        (CROSS,) if args.calibration_cv else ()) + (
        "ridge", "pca-knn", "cannon") + (
        ("ridge + copies",) if args.augment else ()) + (
        (RIDGE_ALL,) if others is not None else ())
    predicted = {name: np.full(y.shape, np.nan) for name in methods}
    X = X[:len(y)]  # the FGK stars; the others (--all-types) are read from the views
    tally = CalibrationTally()
    tally_networks = CalibrationTally()
    tally_68 = CalibrationTally()
    tally_cross = CalibrationTally()
    timing = dict.fromkeys(methods, 0.0)
    tested = np.zeros(len(y), dtype=bool)
    for fold, train, test in plan:
        for name, method in BASELINES.items():
            start = time.perf_counter()
            if name == "ridge":
                predicted[name][test] = ridge(None, y[train], None, args.seed, views=views,
                                              train=train, test=test)
            else:
                predicted[name][test] = method(X[train], y[train], X[test], args.seed)
            timing[name] += time.perf_counter() - start
        if others is not None:
            predicted[RIDGE_ALL][test] = ridge(None, y_all[np.r_[train, extra]], None,
                                               args.seed, views=views,
                                               train=np.r_[train, extra], test=test)
        start = time.perf_counter()
        fit_rows, cal_rows = calibration_split(len(train), args.calibration_fraction,
                                               args.seed + fold)
        fit_rows, cal_rows = train[fit_rows], train[cal_rows]
        # fit fine-tunes copies of the pre-trained members (or trains from scratch)
        # extra (the other types of --all-types, else empty) only ever trains
        X_fit, y_fit = views["median"][np.r_[fit_rows, extra]], y_all[np.r_[fit_rows, extra]]
        X_cal, y_cal = X[cal_rows], y[cal_rows]
        if args.augment:
            copies, star = degraded_copies(parts, np.r_[fit_rows, extra], args.augment,
                                           100 + fold, args.n_pixels)
            X_fit, y_fit = np.concatenate([X_fit, copies]), np.concatenate([y_fit, y_all[star]])
            copies, star = degraded_copies(parts, cal_rows, 1, 200 + fold, args.n_pixels)
            X_cal, y_cal = np.concatenate([X_cal, copies]), np.concatenate([y_cal, y[star]])
            extra, star = degraded_copies(parts, train, args.augment, 300 + fold, args.n_pixels)
            predicted["ridge + copies"][test] = ridge(
                np.concatenate([X[train], extra]), np.concatenate([y[train], y[star]]),
                X[test], args.seed)
        model = template.fit(X_fit, y_fit)
        if not args.augment:
            # ablation: the ridge expert refitted on every training star (not with copies:
            # a star and its copy among the calibration spectra would make the
            # leave-one-out predictions in-sample)
            refit = copy.deepcopy(model).calibrate(X_cal, y_cal, method=CALIBRATION,
                                                   ridge_train=(X_fit, y_fit))
            predicted[REFIT][test] = point_estimates(refit, X[test])
        # ablation: the temperatures fitted to the 68% intervals alone (the earlier default)
        tally_68.add(model.calibrate(X_cal, y_cal, method=CALIBRATION, level=0.6827),
                     X[test], y[test])
        model.calibrate(X_cal, y_cal, method=CALIBRATION)
        alone = networks_only(model).calibrate(X_cal, y_cal, method=CALIBRATION)
        predicted["DeepREMAP"][test] = point_estimates(model, X[test])
        predicted["networks only"][test] = point_estimates(alone, X[test])
        tally.add(model, X[test], y[test])
        tally_networks.add(alone, X[test], y[test])
        timing["DeepREMAP"] += time.perf_counter() - start
        if args.calibration_cv:
            start = time.perf_counter()
            crossed = template.fit(X[train], y[train]).cross_calibrate(
                X[train], y[train], cv=args.calibration_cv, method=CALIBRATION)
            predicted[CROSS][test] = point_estimates(crossed, X[test])
            tally_cross.add(crossed, X[test], y[test])
            timing[CROSS] += time.perf_counter() - start
        tested[test] = True
        scatter, _ = robust_stats(predicted["DeepREMAP"][test], y[test])
        temperatures = ", ".join(f"{t:.2f}" for t in model.temperatures_.values())
        print(f"fold {fold + 1}/{len(plan)}: {len(fit_rows)} + {len(cal_rows)} calibration "
              f"stars, {len(test)} test stars; DeepREMAP scatter "
              + ", ".join(f"{s:.3g}" for s in scatter)
              + f"; temperatures {temperatures}; ridge normalisations "
              + ", ".join(getattr(ridge, "chosen", []))
              + f"; {time.perf_counter() - started:.0f} s so far", flush=True)

    scatter, bias = {}, {}
    for name in methods:
        s_, b_ = robust_stats(predicted[name][tested], y[tested])
        scatter[name] = dict(zip(LABELS, map(float, s_)))
        bias[name] = dict(zip(LABELS, map(float, b_)))
    print_table("robust scatter (1.4826 x median |residual|):", scatter)
    print_table("bias (median residual):", bias)
    ridges = [name for name in methods if name.startswith("ridge")]
    print(f"DeepREMAP scatter / best scatter of {' or '.join(ridges)}: " + ", ".join(
        f"{n} {scatter['DeepREMAP'][n] / min(scatter[r][n] for r in ridges):.3f}"
        for n in LABELS))
    print("time per method (all folds): "
          + ", ".join(f"{name} {seconds:.0f} s" for name, seconds in timing.items() if seconds))
    coverage68, coverage95, ece = tally.coverage(68), tally.coverage(95), tally.ece()
    print_table("DeepREMAP calibrated intervals and probabilities:",
                {"cover. 68%": coverage68, "cover. 95%": coverage95, "ECE": ece},
                digits=(3, 3, 3), units=False)
    print_table("the same, calibrated to the 68% intervals alone:",
                {"cover. 68%": tally_68.coverage(68), "cover. 95%": tally_68.coverage(95),
                 "ECE": tally_68.ece()}, digits=(3, 3, 3), units=False)
    print_table("the networks alone (no ridge expert):",
                {"cover. 68%": tally_networks.coverage(68),
                 "cover. 95%": tally_networks.coverage(95), "ECE": tally_networks.ece()},
                digits=(3, 3, 3), units=False)

    summary = {"scatter": scatter, "bias": bias, "coverage68": coverage68,
               "coverage95": coverage95, "ece": ece}
    if args.calibration_cv:
        cross = {"cover. 68%": tally_cross.coverage(68), "cover. 95%": tally_cross.coverage(95),
                 "ECE": tally_cross.ece()}
        print_table(f"fitted on every training star, calibrated on {args.calibration_cv}-fold "
                    "out-of-fold predictions:", cross, digits=(3, 3, 3), units=False)
        summary["cross_calibrated"] = {"coverage68": cross["cover. 68%"],
                                       "coverage95": cross["cover. 95%"], "ece": cross["ECE"]}

    if not args.skip_pretraining and not args.skip_gain:
        gain_experiment(args, X, y, plan, template)
    seconds = time.perf_counter() - started
    print(f"total time {seconds:.0f} s")
    summary["seconds"] = round(seconds, 1)
    print(json.dumps(summary))


def gain_experiment(args, X, y, plan, pretrained):
    """Fine-tune the pre-trained networks on a few stars, or train them from scratch on them.

    In cross-validation the stars are drawn from all of them and the others are
    the test set; with --train/--test they are drawn from the training stars.
    Both get the same number of optimiser steps as a fine-tuning run on a whole
    training fold; neither has the ridge expert (the gain is the networks').
    """
    train = plan[0][1] if len(plan) == 1 else np.arange(len(y))
    rng = np.random.default_rng(args.seed + 100)
    small = np.sort(rng.choice(train, size=min(args.n_small, len(train)), replace=False))
    test = plan[0][2] if len(plan) == 1 else np.setdiff1d(np.arange(len(y)), small)
    n_fold = int(round(len(plan[0][1]) * (1 - args.calibration_fraction)))
    epochs = max(1, int(round(args.epochs * n_fold / len(small))))
    results = {}
    fine_tuned = clone(pretrained).set_params(n_members=1, fine_tune_epochs=epochs,
                                              ridge_expert=False)
    fine_tuned.pretrained_members_ = pretrained.pretrained_members_[:1]
    scratch = new_ensemble(args, epochs, ridge_expert=False).set_params(n_members=1)
    for name, model in (("pre-trained + fine-tuned", fine_tuned), ("from scratch", scratch)):
        start = time.perf_counter()
        model.fit(X[small], y[small])
        scatter, _ = robust_stats(point_estimates(model, X[test]), y[test])
        results[name] = dict(zip(LABELS, scatter))
        print(f"  {name}: {epochs} epochs, {time.perf_counter() - start:.0f} s")
    print_table(f"pre-training gain: DeepREMAP trained on {len(small)} stars, scatter on "
                f"{len(test)} other stars:", results)


if __name__ == "__main__":
    main()
