"""Rebuild the models bundled in `stellarlatent.pretrained` from the MILES library.

With fixed seeds, from ``../shared/data/miles`` (or ``$STELLARLATENT_DATA``):

* ``"miles"``: the recommended `~stellarlatent.estimators.DeepREMAPEnsemble`
  (DeepREMAP's defaults, pre-trained on synthetic spectra made like MILES over
  the label ranges of the training stars, fine-tuned, with the ridge expert,
  calibrated by coverage on 15% of its training stars) for Teff, log g and
  [Fe/H] of MILES stars of every labelled spectral type. A fifth of the
  labelled stars, drawn with a fixed seed before anything else, is held out;
  the model is trained on the rest, and the precision the registry reports is
  measured once on that fifth (robust scatter, 1.4826 x median |residual|, on
  its FGK stars, 4000-7000 K, and on all of it).
* ``"miles-vae"``: a `~stellarlatent.estimators.SpectralVAE` (8 latents) trained
  on every MILES spectrum, for discovery and the latent explorer.

Both carry their preprocessing (a log-uniform grid of 2048 pixels over
3700-7300 Angstrom in air, flux-conserving resampling, division by the
median), so raw spectra go in. The script writes the model files and
``registry.json`` (with each file's SHA-256) into ``stellarlatent/pretrained``
and prints the numbers it records.

Usage::

    python benchmarks/build_pretrained.py            # about 20 minutes on 2 CPU cores
    python benchmarks/build_pretrained.py --quick    # a smoke run into --out
"""

import argparse
import hashlib
import json
import time
from pathlib import Path

import astropy.units as u
import numpy as np
import torch
from sklearn.pipeline import make_pipeline

from stellarlatent._preprocessing_spec import describe
from stellarlatent.datasets import find_data_dir, make_synthetic_spectra, read_miles
from stellarlatent.estimators import DeepREMAP, DeepREMAPEnsemble, SpectralVAE
from stellarlatent.preprocessing import (Broadener, ContinuumNormalizer, DopplerShift, Resampler,
                                         SpectralGrid)

LABELS = ("teff", "logg", "feh")
WAVE_RANGE = (3700.0, 7300.0)
N_PIXELS = 2048
HOLDOUT_SEED = 2026
PACKAGE = Path(__file__).resolve().parents[1] / "stellarlatent" / "pretrained"


def _values(table, name):
    column = table[name]
    column = getattr(column, "value", column)
    return np.ma.filled(np.ma.asarray(column, dtype=float), np.nan)


def held_out_split(table, fraction=0.2, seed=HOLDOUT_SEED):
    """``(held, train)`` rows: a random ``fraction`` of the stars with every label, and the rest.

    Stars lacking a label are in neither set. The defaults give the fifth
    that this script holds out (``bench_discovery.py`` and ``bench_transfer.py``
    judge on the same stars).
    """
    y = np.column_stack([_values(table, name) for name in LABELS])
    labelled = np.flatnonzero(np.all(np.isfinite(y), axis=1))
    order = np.random.default_rng(seed).permutation(labelled)
    n_out = int(np.floor(fraction * len(order) + 1e-9))
    return np.sort(order[:n_out]), np.sort(order[n_out:])


def pipeline(normalize="median"):
    grid = SpectralGrid.log_uniform(WAVE_RANGE[0] * u.AA, WAVE_RANGE[1] * u.AA, N_PIXELS)
    return make_pipeline(Resampler(grid), ContinuumNormalizer(method=normalize))


def ccm89(wave_aa, r_v=3.1):
    """A_lambda / A_V of Cardelli, Clayton & Mathis (1989), optical/near-infrared."""
    x = 1e4 / np.asarray(wave_aa, dtype=float)  # inverse micron
    a, b = np.zeros_like(x), np.zeros_like(x)
    ir = (x >= 0.3) & (x < 1.1)
    a[ir], b[ir] = 0.574 * x[ir] ** 1.61, -0.527 * x[ir] ** 1.61
    opt = (x >= 1.1) & (x <= 3.3)
    y = x[opt] - 1.82
    a[opt] = (1 + 0.17699 * y - 0.50447 * y**2 - 0.02427 * y**3 + 0.72085 * y**4
              + 0.01979 * y**5 - 0.77530 * y**6 + 0.32999 * y**7)
    b[opt] = (1.41338 * y + 2.28305 * y**2 + 1.07233 * y**3 - 5.38434 * y**4
              - 0.62251 * y**5 + 5.30260 * y**6 - 2.09002 * y**7)
    return a + b / r_v


#: ranges of the augmentation (other instruments, drawn per copy of each training star)
AUGMENT = {"fwhm": (2.5, 4.0), "snr": (20.0, 150.0), "tilt": (-0.1, 0.1), "ebv": (0.0, 0.4),
           "rv_sigma": 5.0, "cut_probability": 0.5, "cut_blue": 300.0, "cut_red": 600.0}


#: what `augment` may degrade
AUGMENT_STEPS = ("resolution", "rv", "continuum", "noise", "coverage")


def augment(spectra, rows, copies, seed, steps=AUGMENT_STEPS):
    """``copies`` degraded copies of the raw spectra ``rows``, as other instruments record them.

    Each copy draws a line-spread function (2.5-4 Angstrom FWHM), a linear
    continuum tilt, reddening, a residual radial velocity (the scatter the
    instrument matching leaves), photon noise at a drawn S/N and, half of the
    time, a shorter wavelength coverage (the rest masked); ``steps`` chooses
    which (the flux-calibrated model keeps its continuum). The draws are the
    same whichever steps are left out. Returns the copies (on the raw grid)
    and the index of the star of each.
    """
    from specutils import Spectrum

    rng = np.random.default_rng(seed)
    wave = spectra.spectral_axis.to_value(u.AA)
    flux_all = np.asarray(spectra.flux.value, dtype=float)
    out, star = [], []
    for row in rows:
        for _ in range(copies):
            flux = flux_all[row].copy()
            mask = np.array(spectra.mask[row], dtype=bool)
            one = Spectrum(flux=flux * u.one, spectral_axis=wave * u.AA, mask=mask)
            fwhm = rng.uniform(*AUGMENT["fwhm"])
            if fwhm > 2.55 and "resolution" in steps:
                one = Broadener(fwhm=fwhm * u.AA, input_fwhm=2.5 * u.AA).transform(one)
            rv = rng.normal(0, AUGMENT["rv_sigma"])
            if "rv" in steps:
                one = DopplerShift(rv=[rv] * u.km / u.s).transform(one)
            one = Resampler(SpectralGrid(wave * u.AA)).fit_transform(one)
            flux = np.array(one.flux.value[0], dtype=float)
            mask = np.array(one.mask[0], dtype=bool)
            x = (wave - wave[0]) / (wave[-1] - wave[0]) - 0.5
            tilt, ebv = rng.uniform(*AUGMENT["tilt"]), rng.uniform(*AUGMENT["ebv"])
            if "continuum" in steps:
                flux *= (1 + tilt * x) * 10 ** (-0.4 * ebv * 3.1 * ccm89(wave))
            level = np.nanmedian(np.where(mask, np.nan, flux))
            sigma = np.sqrt(np.clip(flux, 0, None) * level) / rng.uniform(*AUGMENT["snr"])
            noise = sigma * rng.standard_normal(flux.shape)
            if "noise" in steps:
                flux = flux + noise
            if rng.uniform() < AUGMENT["cut_probability"]:
                lo = WAVE_RANGE[0] + rng.uniform(0, AUGMENT["cut_blue"])
                hi = WAVE_RANGE[1] - rng.uniform(0, AUGMENT["cut_red"])
                if "coverage" in steps:
                    mask |= (wave < lo) | (wave > hi)
            out.append(np.where(mask, np.nan, flux))
            star.append(row)
    batch = Spectrum(flux=np.asarray(out) * u.one, spectral_axis=wave * u.AA,
                     mask=~np.isfinite(np.asarray(out)), spectral_axis_index=1)
    return batch, np.asarray(star)


def robust(predicted, truth):
    return 1.4826 * np.nanmedian(np.abs(predicted - truth), axis=0)


def synthetic(n, y, spectral_axis, seed, prepare):
    """Synthetic spectra like MILES (air, 2.5 A FWHM, rest frame) over the training ranges."""
    logt = np.log10(y[:, 0])
    span = logt.max() - logt.min()
    teff = (10 ** (logt.min() - 0.05 * span), 10 ** (logt.max() + 0.05 * span))
    ranges = {"teff": (max(teff[0], 2000.0), min(teff[1], 50000.0))}
    # a margin, within what make_synthetic_spectra draws
    for j, name, limits in ((1, "logg", (-1.0, 6.0)), (2, "feh", (-5.0, 1.0))):
        lo, hi = np.nanmin(y[:, j]), np.nanmax(y[:, j])
        ranges[name] = (max(lo - 0.05 * (hi - lo), limits[0]),
                        min(hi + 0.05 * (hi - lo), limits[1]))
    spectra, table = make_synthetic_spectra(
        n, grid=spectral_axis, teff=ranges["teff"], logg=ranges["logg"], feh=ranges["feh"],
        rv=0 * u.km / u.s, vsini=(0.0, 15.0) * u.km / u.s, snr=(30.0, 300.0),
        fwhm=2.5 * u.AA, air=True, random_state=seed)
    X = prepare.transform(spectra)
    return X, np.column_stack([_values(table, name) for name in LABELS]), ranges


#: Teff bins (K) of the radial-velocity templates: one median spectrum of training stars each
TEMPLATE_BINS = (3000, 3800, 4500, 5200, 5900, 6600, 7500, 10000, 40000)
TEMPLATE_FILE = "miles-rv-templates.fits"


def rv_templates(spectra, teff, rows, out):
    """Write the median rest-frame spectrum of the training stars in each Teff bin.

    MILES spectra are in their rest frame (air, 2.5 A FWHM); each is divided by
    its median first. Returns the file and its SHA-256.
    """
    from astropy.io import fits

    flux = np.asarray(spectra.flux.value, dtype=float)
    flux = np.where(spectra.mask, np.nan, flux)
    flux = flux / np.nanmedian(flux, axis=1, keepdims=True)
    medians, names = [], []
    for lo, hi in zip(TEMPLATE_BINS[:-1], TEMPLATE_BINS[1:]):
        members = rows[(teff[rows] >= lo) & (teff[rows] < hi)]
        if len(members) < 3:
            continue
        medians.append(np.nanmedian(flux[members], axis=0))
        names.append(f"{lo}-{hi} K ({len(members)} stars)")
    primary = fits.PrimaryHDU(np.asarray(medians, dtype=np.float32))
    primary.header["BUNIT"] = ""
    primary.header["MEDIUM"] = "air"
    primary.header["FWHM"] = (2.5, "Angstrom")
    for k, name in enumerate(names):
        primary.header[f"TEMPL{k}"] = name
    wave = fits.ImageHDU(np.asarray(spectra.spectral_axis.to_value(u.AA)), name="WAVE")
    wave.header["BUNIT"] = "Angstrom"
    path = out / TEMPLATE_FILE
    fits.HDUList([primary, wave]).writeto(path, overwrite=True)
    return path, hashlib.sha256(path.read_bytes()).hexdigest()


def write(model, name, out):
    path = out / f"{name}.pt"
    model.save(path)
    return path, hashlib.sha256(path.read_bytes()).hexdigest()


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--miles", help="MILES folder (default: find_data_dir('miles'))")
    parser.add_argument("--out", default=str(PACKAGE), help="folder of the files and registry")
    parser.add_argument("--quick", action="store_true", help="small networks, few epochs")
    parser.add_argument("--jobs", type=int, default=2)
    parser.add_argument("--members", type=int, default=5, help="networks of the ensemble")
    parser.add_argument("--n-synthetic", type=int, default=4000)
    parser.add_argument("--pretrain-epochs", type=int, default=30)
    parser.add_argument("--epochs", type=int, default=40, help="fine-tuning epochs")
    parser.add_argument("--normalize", choices=("median", "running_quantile"), default="median",
                        help="median: flux-calibrated spectra ('miles'); running_quantile: "
                             "continuum-normalised ('miles-normalized', blind to flux "
                             "calibration and reddening)")
    parser.add_argument("--augment", type=int, default=0, metavar="COPIES",
                        help="degraded copies of each training star added to the fine-tuning "
                             "and calibration spectra (other instruments; default: none)")
    parser.add_argument("--augment-steps", nargs="+", choices=AUGMENT_STEPS,
                        default=list(AUGMENT_STEPS), metavar="STEP",
                        help="what --augment degrades (default: all of %(choices)s)")
    parser.add_argument("--skip-vae", action="store_true", help="build the DeepREMAP model only")
    parser.add_argument("--templates-only", action="store_true",
                        help="rewrite only the radial-velocity templates and their registry entry")
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    started = time.perf_counter()
    folder = Path(args.miles) if args.miles else find_data_dir("miles")
    if folder is None:
        raise SystemExit("MILES data not found: pass --miles DIR or set STELLARLATENT_DATA")
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)

    spectra, table = read_miles(folder, exclude_flagged=True)
    prepare = pipeline(args.normalize)
    name = "miles" if args.normalize == "median" else "miles-normalized"
    X_all = prepare.fit_transform(spectra)
    X_all.meta["wavelength_medium"] = "air"
    y_all = np.column_stack([_values(table, name) for name in LABELS])
    held, train = held_out_split(table)
    cal = np.sort(np.random.default_rng(HOLDOUT_SEED + 1).choice(
        train, size=int(round(0.15 * len(train))), replace=False))
    fit_rows = np.setdiff1d(train, cal)
    spec = describe(prepare)
    template_path, template_digest = rv_templates(spectra, _values(table, "teff"), train, out)
    instrument = {"fwhm": "2.5 Angstrom", "medium": "air", "rv_templates": template_path.name,
                  "rv_templates_sha256": template_digest}
    print(f"radial-velocity templates: {template_path} ({template_path.stat().st_size / 1e3:.0f} kB)")
    if args.templates_only:
        registry = json.loads((out / "registry.json").read_text())
        registry[name]["instrument"] = instrument
        (out / "registry.json").write_text(json.dumps(registry, indent=2) + "\n")
        return
    print(f"MILES: {len(y_all)} spectra, {len(held) + len(train)} with Teff, log g and "
          "[Fe/H]; "
          f"{len(fit_rows)} train + {len(cal)} calibrate, {len(held)} held out "
          f"(seed {HOLDOUT_SEED})", flush=True)

    n_members, n_synthetic, pre_epochs, epochs = ((2, 500, 2, 5) if args.quick else (
        args.members, args.n_synthetic, args.pretrain_epochs, args.epochs))
    member = DeepREMAP(LABELS, max_epochs=pre_epochs, device="cpu", verbose=0)
    ensemble = DeepREMAPEnsemble(member, n_members=n_members, fine_tune_epochs=epochs,
                                 n_jobs=args.jobs, random_state=0)
    X_syn, y_syn, ranges = synthetic(n_synthetic, y_all[train], X_all.spectral_axis, 1, prepare)
    X_syn.meta["wavelength_medium"] = "air"
    ensemble.pretrain(X_syn, y_syn)
    del X_syn
    X_fit, y_fit, X_cal, y_cal = X_all[fit_rows], y_all[fit_rows], X_all[cal], y_all[cal]
    if args.augment:
        from stellarlatent._batch import to_batch

        from specutils import Spectrum

        def joined(rows, copies, seed):
            copies_raw, star = augment(spectra, rows, copies, seed, args.augment_steps)
            extra = prepare.transform(copies_raw)
            both = to_batch([X_all[rows], extra])
            return (Spectrum(flux=both.flux * u.one, spectral_axis=both.spectral_axis,
                             mask=both.mask, meta={"wavelength_medium": "air"},
                             spectral_axis_index=1),
                    np.concatenate([y_all[rows], y_all[star]]))

        X_fit, y_fit = joined(fit_rows, args.augment, 11)
        X_cal, y_cal = joined(cal, 1, 12)
        print(f"augmented: {len(y_fit)} fine-tuning and {len(y_cal)} calibration spectra",
              flush=True)
    ensemble.fit(X_fit, y_fit)
    ensemble.calibrate(X_cal, y_cal, method="coverage")
    if args.augment:
        # kneighbors and novelty compare with the training stars, not with their copies
        ensemble.set_reference(X_all[fit_rows], y_all[fit_rows])
    for m in (ensemble, *ensemble.members_):
        m.preprocessing_ = spec
    table_held = ensemble.predict(X_all[held])
    predicted = np.column_stack([np.asarray(table_held[name].value, dtype=float)
                                 for name in LABELS])
    truth = y_all[held]
    fgk = (truth[:, 0] >= 4000) & (truth[:, 0] <= 7000)
    scatter_fgk, scatter_all = robust(predicted[fgk], truth[fgk]), robust(predicted, truth)
    inside = [(np.asarray(table_held[f"{n}_p16"].value) <= truth[:, j])
              & (truth[:, j] <= np.asarray(table_held[f"{n}_p84"].value))
              for j, n in enumerate(LABELS)]
    coverage = [float(np.mean(c)) for c in inside]
    precision = (f"{len(held)} held-out stars, FGK ({int(fgk.sum())}): "
                 f"{scatter_fgk[0]:.0f} K, {scatter_fgk[1]:.3f} dex, {scatter_fgk[2]:.3f} dex; "
                 f"all: {scatter_all[0]:.0f} K, {scatter_all[1]:.3f} dex, {scatter_all[2]:.3f} dex; "
                 f"68% coverage {coverage[0]:.2f}, {coverage[1]:.2f}, {coverage[2]:.2f}")
    path, digest = write(ensemble, name, out)
    lo, hi = np.nanmin(y_all[train], axis=0), np.nanmax(y_all[train], axis=0)
    registry_file = out / "registry.json"
    registry = json.loads(registry_file.read_text()) if registry_file.is_file() else {}
    normalised = ("; continuum-normalised (running 0.9 quantile over 5000 km/s): blind to "
                  "flux calibration and reddening" if args.normalize != "median" else
                  "; flux-calibrated, dereddened spectra (divided by their median)")
    registry[name] = {
        "kind": "DeepREMAPEnsemble", "file": path.name, "sha256": digest,
        "training_data": f"MILES (Sanchez-Blazquez et al. 2006), {len(train)} labelled stars "
                         "of every spectral type (a fifth held out)",
        "wavelength_range": f"{WAVE_RANGE[0]:g}-{WAVE_RANGE[1]:g} Angstrom",
        "resolution": "2.5 Angstrom FWHM (R ~ 2000 at 5000 Angstrom)",
        "medium": "air",
        "label_ranges": f"Teff {lo[0]:.0f}-{hi[0]:.0f} K, log g {lo[1]:.2f}-{hi[1]:.2f}, "
                        f"[Fe/H] {lo[2]:.2f}-{hi[2]:.2f}",
        "precision": precision,
        "recipe": f"{n_members} members, {n_synthetic} synthetic spectra x {pre_epochs} "
                  f"pre-training epochs, {epochs} fine-tuning epochs"
                  + (f", {args.augment} degraded copies of each training star ("
                     + ", ".join(args.augment_steps) + ")" if args.augment else ""),
        "instrument": instrument,
    }
    registry[name]["training_data"] += normalised
    print(f"{name}: {path.stat().st_size / 1e6:.1f} MB; {precision}; "
          f"{time.perf_counter() - started:.0f} s so far", flush=True)
    if args.skip_vae:
        registry_file.write_text(json.dumps(registry, indent=2) + "\n")
        return

    vae = SpectralVAE(latent_dim=8, beta=0.003, max_epochs=3 if args.quick else 60,
                      validation_fraction=0.1, random_state=0, verbose=0, device="cpu")
    vae.fit(X_all)
    vae.preprocessing_ = spec
    path, digest = write(vae, "miles-vae", out)
    registry["miles-vae"] = {
        "kind": "SpectralVAE", "file": path.name, "sha256": digest,
        "training_data": f"MILES (Sanchez-Blazquez et al. 2006), all {len(y_all)} spectra",
        "wavelength_range": f"{WAVE_RANGE[0]:g}-{WAVE_RANGE[1]:g} Angstrom",
        "resolution": "2.5 Angstrom FWHM (R ~ 2000 at 5000 Angstrom)",
        "medium": "air", "label_ranges": "", "precision": "(unsupervised: 8 latents)",
    }
    (out / "registry.json").write_text(json.dumps(registry, indent=2) + "\n")
    print(f"miles-vae: {path.stat().st_size / 1e6:.1f} MB; registry written to {out}; "
          f"total {time.perf_counter() - started:.0f} s")


if __name__ == "__main__":
    main()
