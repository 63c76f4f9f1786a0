"""The bundled 'miles' model on its held-out stars made to look like other instruments.

``benchmarks/build_pretrained.py`` holds out a fifth of the labelled MILES
stars (seed 2026) before anything is trained or chosen; this script takes
those stars, predicts their labels as they are, then degrades each one as
another spectrograph would record it and predicts again through the public
path (`stellarlatent.pretrained.pipeline`: the instrument matching, then the
model's preprocessing):

* a line-spread function of 3 Angstrom FWHM (and, in a second run, 4 Angstrom),
  coarser than MILES' 2.5 Angstrom (flagged; it cannot be sharpened);
* vacuum wavelengths on another grid (log-uniform, 69 km/s pixels);
* a 10% continuum tilt across the range and E(B-V) = 0.3 of reddening
  (Cardelli, Clayton & Mathis 1989, R_V = 3.1);
* coverage cut to 3900-6800 Angstrom;
* Gaussian noise at S/N 30 per pixel;
* a random radial velocity, uniform in +-300 km/s.

Each degradation is also applied alone, to show which one costs what, and
all of them but the noise together (``all_but_noise``). The
last line is JSON: the robust scatter (1.4826 x median |residual|) of each
label on the FGK stars (4000-7000 K) and on all held-out stars, for the
undegraded stars and each degraded set, the growth of the scatter
(``degraded / undegraded``; the target is at most 1.15), the robust scatter
of the recovered velocities and ``seconds``.

Usage::

    python benchmarks/bench_transfer.py           # about a minute on 2 CPU cores
    python benchmarks/bench_transfer.py --draws 5 --models miles-normalized
"""

import argparse
import json
import sys
import time
from pathlib import Path

import astropy.units as u
import numpy as np
from specutils import Spectrum

from stellarlatent import pretrained
from stellarlatent.preprocessing import (Broadener, DopplerShift, Resampler, SpectralGrid,
                                         air_to_vacuum, ccm89_extinction)

sys.path.insert(0, str(Path(__file__).parent))
from build_pretrained import (  # noqa: E402
    HOLDOUT_SEED, LABELS, held_out_split, labelled_miles)

SNR = 30.0
RV_MAX = 300.0
EBV = 0.3
TILT = 0.10
COVERAGE = (3900.0, 6800.0)
FGK = (4000.0, 7000.0)


def degrade(spectra, fwhm, rng, steps):
    """The held-out spectra as another instrument records them (``steps`` chooses which)."""
    n = spectra.flux.shape[0]
    rv = rng.uniform(-RV_MAX, RV_MAX, n) * u.km / u.s
    noise = rng.standard_normal((n, 20000))
    out = spectra
    if "resolution" in steps:
        out = Broadener(fwhm=fwhm * u.AA, input_fwhm=2.5 * u.AA).transform(out)
    wave = out.spectral_axis.to_value(u.AA)
    flux = np.array(out.flux.value, dtype=float)
    if "continuum" in steps:
        tilt = 1 + TILT * ((wave - wave[0]) / (wave[-1] - wave[0]) - 0.5)
        flux = flux * tilt * 10 ** (-0.4 * EBV * 3.1 * ccm89_extinction(wave * u.AA))
    medium = "air"
    axis = wave * u.AA
    if "vacuum" in steps:
        axis, medium = air_to_vacuum(axis), "vacuum"
    moved = Spectrum(flux=flux * u.one, spectral_axis=axis, mask=out.mask, spectral_axis_index=1)
    if "rv" in steps:
        moved = DopplerShift(rv=-rv).transform(moved)  # DopplerShift(v) removes v
    else:
        rv = np.zeros(n) * u.km / u.s
    lo, hi = (COVERAGE if "coverage" in steps else (wave[0] + 8, wave[-1] - 8))
    if "vacuum" in steps:
        lo, hi = air_to_vacuum(lo * u.AA).value, air_to_vacuum(hi * u.AA).value
    grid = SpectralGrid.log_uniform(lo * u.AA, hi * u.AA,
                                    int(np.log(hi / lo) / (69.0 / 299792.458)))
    resampled = Resampler(grid).fit_transform(moved)
    flux = np.array(resampled.flux.value, dtype=float)
    if "noise" in steps:
        sigma = np.nanmedian(flux, axis=1, keepdims=True) / SNR
        flux = flux + sigma * noise[:, : flux.shape[1]]
    meta = {"wavelength_medium": medium}
    if "resolution" in steps:
        meta["fwhm"] = fwhm * u.AA
    return Spectrum(flux=flux * u.one, spectral_axis=resampled.spectral_axis,
                    mask=resampled.mask, meta=meta, spectral_axis_index=1), rv


def robust(predicted, truth):
    return 1.4826 * np.nanmedian(np.abs(predicted - truth), axis=0)


def scores(model, pipe, spectra, truth):
    X = pipe.transform(spectra)
    table = model.predict(X)
    predicted = np.column_stack([np.asarray(table[name].value, dtype=float) for name in LABELS])
    fgk = (truth[:, 0] >= FGK[0]) & (truth[:, 0] <= FGK[1])
    return ({"fgk": robust(predicted[fgk], truth[fgk]).tolist(),
             "all": robust(predicted, truth).tolist(),
             "flagged": int(np.sum(np.any([table[f"{n}_out_of_range"] for n in LABELS], axis=0)))},
            X.meta)


def run_model(name, stars, truth, runs, seed, draws=1):
    """Scores of the bundled model ``name`` on the undegraded and on each degraded set.

    With ``draws`` above 1 each degraded set is drawn that many times (seeds
    ``seed``, ``seed + 1``, ...) and its scatters are the mean over the
    draws, each draw's kept under ``"fgk_draws"``.
    """
    model = pretrained.load(name, device="cpu")
    pipe = pretrained.pipeline(name)
    reference, _ = scores(model, pipe, stars, truth)
    result = {"undegraded": reference}
    print(f"{name}: undegraded FGK {reference['fgk'][0]:.0f} K, {reference['fgk'][1]:.3f}, "
          f"{reference['fgk'][2]:.3f} dex; all {reference['all'][0]:.0f} K, "
          f"{reference['all'][1]:.3f}, {reference['all'][2]:.3f}", flush=True)
    for run, fwhm, steps in runs:
        each = []
        for draw in range(draws):
            degraded, rv = degrade(stars, fwhm, np.random.default_rng(seed + draw), steps)
            scored, meta = scores(model, pipe, degraded, truth)
            if "rv" in steps:
                error = (meta["rv"] - rv).to_value(u.km / u.s)
                scored["rv_scatter_kms"] = float(
                    1.4826 * np.nanmedian(np.abs(error - np.nanmedian(error))))
                scored["rv_bias_kms"] = float(np.nanmedian(error))
            each.append(scored)
        scored = {key: np.mean([d[key] for d in each], axis=0).tolist() for key in each[0]}
        scored["flagged"] = int(round(scored["flagged"]))
        if draws > 1:
            scored["fgk_draws"] = [d["fgk"] for d in each]
        scored["growth_fgk"] = (np.array(scored["fgk"]) / np.array(reference["fgk"])).tolist()
        scored["growth_all"] = (np.array(scored["all"]) / np.array(reference["all"])).tolist()
        result[run] = scored
        g = scored["growth_fgk"]
        print(f"{run:>20}: FGK {scored['fgk'][0]:.0f} K, {scored['fgk'][1]:.3f}, "
              f"{scored['fgk'][2]:.3f} dex (x{g[0]:.2f}, x{g[1]:.2f}, x{g[2]:.2f}); all "
              f"{scored['all'][0]:.0f} K, {scored['all'][1]:.3f}, {scored['all'][2]:.3f}"
              + (f"; rv scatter {scored['rv_scatter_kms']:.1f} km/s" if "rv" in steps else "")
              + (f" (mean of {draws} draws)" if draws > 1 else ""),
              flush=True)
    return result


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--miles", help="MILES folder (default: find_data_dir('miles'))")
    parser.add_argument("--seed", type=int, default=0, help="seed of the degradations")
    parser.add_argument("--draws", type=int, default=1,
                        help="draws of each degraded set, their scatters averaged (seeds "
                             "SEED, SEED+1, ...): a draw moves the growth by about 0.1")
    parser.add_argument("--models", nargs="+", default=["miles-normalized", "miles"],
                        help="bundled models to run (default: %(default)s)")
    parser.add_argument("--no-ablation", action="store_true",
                        help="skip the runs with one degradation at a time")
    args = parser.parse_args(argv)
    if args.draws < 1:
        parser.error(f"--draws must be at least 1, got {args.draws}")
    started = time.perf_counter()
    spectra, table, y = labelled_miles(args.miles)
    held, _ = held_out_split(table)
    stars, truth = spectra[held], y[held]
    print(f"{len(held)} held-out MILES stars (seed {HOLDOUT_SEED}), "
          f"{int(np.sum((truth[:, 0] >= FGK[0]) & (truth[:, 0] <= FGK[1])))} FGK", flush=True)
    every = ("resolution", "vacuum", "continuum", "coverage", "noise", "rv")
    runs = [(f"degraded_{fwhm:g}A", fwhm, every) for fwhm in (3.0, 4.0)]
    if not args.no_ablation:
        runs += [(f"only_{step}", 3.0, (step,)) for step in every]
        # what the instrument matching leaves when no information is lost to noise
        runs.append(("all_but_noise", 3.0, tuple(step for step in every if step != "noise")))
    result = {}
    for model_name in args.models:
        result[model_name] = run_model(model_name, stars, truth, runs, args.seed, args.draws)
    result["seconds"] = round(time.perf_counter() - started, 1)
    print(json.dumps(result))


if __name__ == "__main__":
    main()
