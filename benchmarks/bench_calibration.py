"""How much DeepREMAP's calibrated intervals move with the draw of the calibration stars.

`bench_parameters.py` calibrates the recommended ensemble on 15% of each
training set, a few dozen stars. This script measures what that costs. A
fifth of the public MILES FGK stars is set aside first (``--holdout-seed``,
777 by default) and never read. On the other stars, for each fold of a
5-fold cross-validation, the ensemble is pre-trained and fine-tuned exactly
as `bench_parameters.py` does it (same seeds, same 85/15 split of the fold's
training stars). Its calibration and test stars are both out of sample for
it, so they are pooled and split again at random, ``--repeats`` times, into
as many calibration stars as the recipe keeps and test stars. Each split is
calibrated with each fit of `DeepREMAPEnsemble.calibrate` (the default: a
temperature and a tail weight fitted to the coverage of the 68% and 95%
intervals; the temperature alone fitted to both, ``no tail``; to the 68%
intervals alone; by likelihood) and judged on its test stars.

For each fit and label the script prints the mean and standard deviation of
the test coverage over the splits, its root-mean-square distance from the
level, and the fraction of splits inside the targets of the issue tracker
(0.63-0.73 and 0.90-0.97); then the standard deviation that the test stars
alone would give (binomial, at the nominal level) and what the calibration
adds to it in quadrature. The last line is JSON.

Usage::

    python benchmarks/bench_calibration.py            # about 20 minutes on 2 CPU cores
    python benchmarks/bench_calibration.py --quick    # a smoke run of about two minutes
"""

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
import torch

from stellarlatent.diagnostics import interval_coverage

sys.path.insert(0, str(Path(__file__).parent))
import bench_parameters as bp  # noqa: E402

#: the temperature fits compared: name -> keyword arguments of `calibrate`
FITS = {"coverage 68+95": {"method": "coverage"},
        "no tail": {"method": "coverage", "tail": False},
        "coverage 68": {"method": "coverage", "level": 0.6827},
        "nll": {"method": "nll"}}
#: the targets of the coverage (issue #13)
TARGETS = {68: (0.6827, 0.63, 0.73), 95: (0.9545, 0.90, 0.97)}


def parse_args(argv):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--miles", help="MILES folder (default: find_data_dir('miles'))")
    parser.add_argument("--holdout-seed", type=int, default=777,
                        help="seed of the fifth set aside and never read (default: %(default)s)")
    parser.add_argument("--repeats", type=int, default=20,
                        help="random calibration/test splits per fold (default: %(default)s)")
    parser.add_argument("--jobs", type=int, default=2, help="members trained at once")
    parser.add_argument("--quick", action="store_true",
                        help="smoke run: 2 folds, small pre-training, 2 repeats")
    args = parser.parse_args(argv)
    if args.repeats < 1:
        parser.error("--repeats must be at least 1")
    recipe = ["--holdout-fraction", "0.2", "--holdout-seed", str(args.holdout_seed),
              "--jobs", str(args.jobs), "--skip-gain"]
    if args.miles:
        recipe += ["--miles", args.miles]
    if args.quick:
        recipe.append("--quick")
        args.repeats = min(args.repeats, 2)
    return args, bp.parse_args(recipe)


def fold_models(recipe):
    """Yield (fold, fitted ensemble, its calibration rows, its test rows) and the data."""
    parts, y, plan, mode = bp.load_all(recipe)
    X = bp.preprocess(parts[0], recipe.n_pixels, "median")
    print(mode, flush=True)
    template = bp.new_ensemble(recipe, recipe.pretrain_epochs)
    X_syn, y_syn = bp.synthetic_set(recipe.n_synthetic, parts[0].spectral_axis,
                                    recipe.n_pixels, recipe.seed + 1, bp.SYNTHETIC_RANGES)
    template.pretrain(X_syn, y_syn)
    del X_syn, y_syn
    for fold, train, test in plan:
        fit_rows, cal_rows = bp.calibration_split(len(train), recipe.calibration_fraction,
                                                  recipe.seed + fold)
        model = template.fit(X[train[fit_rows]], y[train[fit_rows]])
        yield fold, model, train[cal_rows], test, X, y


def coverage(model, X, y):
    truth = {name: y[:, j] for j, name in enumerate(bp.LABELS)}
    rows = interval_coverage(model.predict_proba(X), truth, levels=(0.68, 0.95))
    return {level: [float(row[f"coverage_{level}"]) for row in rows] for level in (68, 95)}


def summarise(found, n_test):
    """Per fit, level and label: mean, sd, rms from the level, fraction inside the target."""
    out = {}
    for name, by_level in found.items():
        out[name] = {}
        for level, (nominal, low, high) in TARGETS.items():
            values = np.array(by_level[level])
            out[name][level] = {
                "mean": values.mean(axis=0).tolist(), "sd": values.std(axis=0).tolist(),
                "rms": np.sqrt(np.mean((values - nominal) ** 2, axis=0)).tolist(),
                "inside": np.mean((values >= low) & (values <= high), axis=0).tolist()}
    binomial = {level: float(np.sqrt(nominal * (1 - nominal) / n_test))
                for level, (nominal, _, _) in TARGETS.items()}
    return out, binomial


def main(argv=None):
    args, recipe = parse_args(argv)
    torch.set_num_threads(1)
    started = time.perf_counter()
    found = {name: {68: [], 95: []} for name in FITS}
    sizes = []
    for fold, model, cal, test, X, y in fold_models(recipe):
        pool = np.concatenate([cal, test])
        rng = np.random.default_rng(fold)
        for _ in range(args.repeats):
            order = rng.permutation(pool)
            on, judged = order[:len(cal)], order[len(cal):]
            for name, kwargs in FITS.items():
                model.calibrate(X[on], y[on], **kwargs)
                for level, values in coverage(model, X[judged], y[judged]).items():
                    found[name][level].append(values)
        sizes.append((len(cal), len(test)))
        print(f"fold {fold + 1}: {len(cal)} calibration and {len(test)} test stars, "
              f"{args.repeats} splits; {time.perf_counter() - started:.0f} s so far", flush=True)
    n_cal, n_test = np.mean(sizes, axis=0)
    summary, binomial = summarise(found, n_test)
    print(f"coverage of the test stars over {len(sizes) * args.repeats} splits "
          f"(about {n_cal:.0f} calibration and {n_test:.0f} test stars each); "
          "mean +- sd, rms from the level, fraction inside the target:")
    for name, by_level in summary.items():
        for level, stats in by_level.items():
            cells = "  ".join(
                f"{n} {stats['mean'][j]:.3f}+-{stats['sd'][j]:.3f} rms {stats['rms'][j]:.3f} "
                f"in {stats['inside'][j]:.2f}" for j, n in enumerate(bp.LABELS))
            print(f"  {name:>15} {level}%: {cells}")
    added = {name: {level: [float(np.sqrt(max(sd ** 2 - binomial[level] ** 2, 0.0)))
                            for sd in stats["sd"]] for level, stats in by_level.items()}
             for name, by_level in summary.items()}
    print("sd of the test stars alone (binomial): "
          + ", ".join(f"{level}% {sd:.3f}" for level, sd in binomial.items())
          + "; added by the calibration (default fit): "
          + ", ".join(f"{level}% " + "/".join(f"{v:.3f}" for v in values)
                      for level, values in added["coverage 68+95"].items()))
    seconds = round(time.perf_counter() - started, 1)
    print(json.dumps({"n_calibration": float(n_cal), "n_test": float(n_test),
                      "coverage": summary, "binomial_sd": binomial,
                      "calibration_sd": added, "seconds": seconds}))


if __name__ == "__main__":
    main()
