"""How realistic are the synthetic spectra? Train on synthetic, test on MILES.

A simple regressor of log Teff is trained only on spectra from
``make_synthetic_spectra`` matched to MILES (the MILES grid, 3540.5 + 0.9 i
Angstrom in air, 4300 pixels; 2.5 Angstrom FWHM; rest frame), then predicts
the Teff of the real MILES FGK stars (4000-7000 K in the MILES parameter
table). Both sides get the same preprocessing: zero-valued pixels masked,
division by the median flux (``ContinuumNormalizer(method="median")``), the
3600-7300 Angstrom range. The regressor is ridge regression on the normalised
flux (its regularisation chosen by cross-validation on synthetic spectra
only) and, as a second opinion, PCA + k nearest neighbours.

The script prints, for each regressor, the Spearman rank correlation between
predicted and catalogue Teff, the robust scatter (1.4826 times the median
absolute deviation) of the residuals in K and in dex, and the median offset;
the last line is a JSON summary. Nothing is tuned on MILES.

Usage::

    python benchmarks/bench_synthetic_realism.py [--n-train 4000] [--seed 0]
"""

import argparse
import json
import time

import astropy.units as u
import numpy as np
from scipy.stats import spearmanr
from sklearn.decomposition import PCA
from sklearn.linear_model import RidgeCV
from sklearn.neighbors import KNeighborsRegressor
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from stellarlatent.datasets import find_data_dir, make_synthetic_spectra, read_miles
from stellarlatent.preprocessing import ContinuumNormalizer, Masker

FGK = (4000.0, 7000.0)
RANGE = (3600.0, 7300.0)


def features(spectra):
    """Median-normalised flux in RANGE; masked pixels set to one."""
    masked = Masker(mask_nonpositive_flux=True).transform(spectra)
    normalised = ContinuumNormalizer(method="median").transform(masked)
    wave = normalised.spectral_axis.to_value(u.AA)
    keep = (wave >= RANGE[0]) & (wave <= RANGE[1])
    flux = np.where(normalised.mask, 1.0, normalised.flux.value)
    return flux[:, keep]


def column(labels, name, unit):
    col = labels[name]
    values = np.asarray(getattr(col, "unmasked", col).to_value(unit), dtype=float)
    mask = np.asarray(getattr(col, "mask", np.zeros(len(col), bool)), dtype=bool)
    return np.where(mask, np.nan, values)


def summarise(name, predicted, true):
    residual = predicted - true
    log_residual = np.log10(predicted / true)
    result = {
        "regressor": name,
        "spearman": float(spearmanr(predicted, true).statistic),
        "robust_scatter_K": float(1.4826 * np.median(np.abs(residual - np.median(residual)))),
        "robust_scatter_dex": float(
            1.4826 * np.median(np.abs(log_residual - np.median(log_residual)))
        ),
        "median_offset_K": float(np.median(residual)),
    }
    print(
        f"{name:>12}: Spearman {result['spearman']:.3f}, robust scatter "
        f"{result['robust_scatter_K']:.0f} K ({result['robust_scatter_dex']:.3f} dex), "
        f"median offset {result['median_offset_K']:+.0f} K"
    )
    return result


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--miles", default=None, help="MILES folder (default: find_data_dir)")
    parser.add_argument("--n-train", type=int, default=4000)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    directory = args.miles or find_data_dir("miles")
    if directory is None:
        raise SystemExit("no MILES folder: set STELLARLATENT_DATA or pass --miles")
    spectra, labels = read_miles(directory, exclude_flagged=True)
    teff = column(labels, "teff", u.K)
    fgk = np.isfinite(teff) & (teff >= FGK[0]) & (teff <= FGK[1])
    X_test = features(spectra)[fgk]
    y_test = teff[fgk]

    start = time.perf_counter()
    synthetic, truth = make_synthetic_spectra(
        args.n_train,
        spectra.spectral_axis,
        teff=(3500.0, 8500.0),
        logg=(0.5, 5.0),
        feh=(-2.5, 0.5),
        rv=0.0 * u.km / u.s,
        vsini=(0.0, 15.0) * u.km / u.s,
        snr=(50.0, 300.0),
        fwhm=2.5 * u.AA,
        air=True,
        random_state=args.seed,
    )
    synth_time = time.perf_counter() - start
    X_train = features(synthetic)
    y_train = np.log10(truth["teff"].to_value(u.K))
    print(f"{args.n_train} synthetic spectra in {synth_time:.1f} s; "
          f"{fgk.sum()} MILES FGK stars with Teff")

    ridge = make_pipeline(StandardScaler(), RidgeCV(alphas=np.logspace(-1, 5, 13)))
    ridge.fit(X_train, y_train)
    knn = make_pipeline(
        StandardScaler(), PCA(n_components=20, random_state=args.seed),
        KNeighborsRegressor(n_neighbors=10, weights="distance"),
    )
    knn.fit(X_train, y_train)
    results = [
        summarise("ridge", 10 ** ridge.predict(X_test), y_test),
        summarise("PCA + kNN", 10 ** knn.predict(X_test), y_test),
    ]
    print(json.dumps({"n_train": args.n_train, "n_test": int(fgk.sum()),
                      "synthesis_seconds": round(synth_time, 1), "results": results}))


if __name__ == "__main__":
    main()
