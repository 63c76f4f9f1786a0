"""Rebuild the models bundled in `stellarlatent.pretrained` from the MILES library.

With fixed seeds, from ``../shared/data/miles`` (or ``$STELLARLATENT_DATA``):

* ``"miles"``: the recommended `~stellarlatent.estimators.DeepREMAPEnsemble`
  (DeepREMAP's defaults, pre-trained on synthetic spectra made like MILES over
  the label ranges of the training stars, fine-tuned on all of them, with the
  ridge expert, calibrated by coverage on their 5-fold out-of-fold
  predictions, each type of star on its own, as ``fit-remap`` does;
  ``--calibration-cv 0`` holds 15% of them out instead, ``--calibrate-by
  none`` gives one calibration for every star) for Teff, log g and [Fe/H] of
  MILES stars of every labelled
  spectral type. A fifth of the labelled stars, drawn with a fixed seed
  before anything else, is held out; the model is trained on the rest, and
  the precision the registry reports is measured once on that fifth (robust
  scatter, 1.4826 x median |residual|, on its FGK stars, 4000-7000 K, and on
  all of it).
* ``"miles-vae"``: a `~stellarlatent.estimators.SpectralVAE` for discovery and
  the latent explorer: ``SpectralVAE.from_preset("miles")`` (8 latents,
  beta 0.005 on the summed KL, 450 epochs, cosine learning rate), trained
  without labels on the same training stars, each Doppler-shifted six times
  by velocities drawn in +-300 km/s (as ``bench_discovery.py`` does); the
  registry reports, on the held-out fifth shifted once, the latent that
  tracks the radial velocity and the one that tracks log Teff best.

Both carry their preprocessing (a log-uniform grid of 2048 pixels over
3700-7300 Angstrom in air, flux-conserving resampling, division by the
median), so raw spectra go in. Each DeepREMAP model also gets a
`~stellarlatent.preprocessing.PCADenoiser` (64 components) fitted on its
training stars after that preprocessing, whose registry entry says it takes
photon noise (``denoiser_noise_exponent`` 1; ``--denoiser-only`` refits just
that, in seconds). The script writes the model files and
``registry.json`` (with each file's SHA-256) into ``stellarlatent/pretrained``
and prints the numbers it records.

Usage::

    python benchmarks/build_pretrained.py            # an hour or more on 2 CPU cores
    python benchmarks/build_pretrained.py --quick    # a smoke run into --out

The shipped ``"miles"`` (``--augment 3 --augment-steps resolution rv noise
coverage --skip-vae``, built before the calibration by type: ``--calibrate-by
none`` reproduces it) took 93 minutes with ``--jobs 1`` on a shared machine.
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
from specutils import Spectrum

from stellarlatent import pretrained
from stellarlatent._commands.recipe import CALIBRATE_BY, CALIBRATION_CV, parse_calibrate_by
from stellarlatent._preprocessing_spec import describe
from stellarlatent.diagnostics import informative_dimensions, latent_correlation
from stellarlatent.datasets import find_data_dir, make_synthetic_spectra, read_miles
from stellarlatent.estimators import DeepREMAP, DeepREMAPEnsemble, SpectralVAE
from stellarlatent.preprocessing import (ContinuumNormalizer, DopplerShift, InstrumentAugmenter,
                                         InstrumentMatcher, PCADenoiser, Resampler, SpectralGrid)

LABELS = ("teff", "logg", "feh")
WAVE_RANGE = (3700.0, 7300.0)
#: MILES' instrument as the registry records it (each model adds its own entries)
MILES_INSTRUMENT = {"fwhm": "2.5 Angstrom", "medium": "air",
                    "wavelength_range": [f"{w:g} Angstrom" for w in WAVE_RANGE]}
N_PIXELS = 2048
HOLDOUT_SEED = 2026
PACKAGE = Path(__file__).resolve().parents[1] / "stellarlatent" / "pretrained"


def _values(table, name):
    column = table[name]
    column = getattr(column, "value", column)
    return np.ma.filled(np.ma.asarray(column, dtype=float), np.nan)


def sha256(path):
    """The SHA-256 of a file, as the registry records it."""
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def labelled_miles(miles=None):
    """MILES spectra (flagged ones left out), their table and (Teff, log g, [Fe/H]) of each.

    From the folder ``miles``, or ``find_data_dir("miles")`` when it is None.
    """
    folder = Path(miles) if miles else find_data_dir("miles")
    if folder is None:
        raise SystemExit("MILES data not found: pass --miles DIR or set STELLARLATENT_DATA")
    spectra, table = read_miles(folder, exclude_flagged=True)
    return spectra, table, np.column_stack([_values(table, name) for name in LABELS])


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


#: ranges of the augmentation (other instruments, drawn per copy of each training star)
AUGMENT = {"fwhm": (2.5, 4.0), "snr": (20.0, 150.0), "tilt": (-0.1, 0.1), "ebv": (0.0, 0.4),
           "rv_sigma": 5.0, "cut_probability": 0.5, "cut_blue": 300.0, "cut_red": 600.0}


#: what `augment` may degrade
AUGMENT_STEPS = ("resolution", "rv", "continuum", "noise", "coverage")


def augment(spectra, rows, copies, seed, steps=AUGMENT_STEPS):
    """``copies`` degraded copies of the raw spectra ``rows``, as other instruments record them.

    `~stellarlatent.preprocessing.InstrumentAugmenter` with the `AUGMENT`
    ranges: each copy draws a line-spread function (2.5-4 Angstrom FWHM), a
    residual radial velocity, a linear continuum tilt, reddening, photon noise
    at a drawn S/N and, half of the time, a shorter wavelength coverage;
    ``steps`` chooses which (the flux-calibrated model keeps its continuum).
    Returns the copies (on the raw grid) and the index of the star of each.
    """
    star = np.repeat(np.asarray(rows), copies)
    batch = Spectrum(flux=spectra.flux[star], spectral_axis=spectra.spectral_axis,
                     mask=spectra.mask[star], spectral_axis_index=1)
    augmenter = InstrumentAugmenter(
        fwhm=AUGMENT["fwhm"] * u.AA if "resolution" in steps else None,
        input_fwhm=2.5 * u.AA,
        rv_scatter=AUGMENT["rv_sigma"] * u.km / u.s if "rv" in steps else None,
        tilt=AUGMENT["tilt"] if "continuum" in steps else None,
        ebv=AUGMENT["ebv"] if "continuum" in steps else None,
        snr=AUGMENT["snr"] if "noise" in steps else None,
        coverage=([[WAVE_RANGE[0], WAVE_RANGE[0] + AUGMENT["cut_blue"]],
                   [WAVE_RANGE[1] - AUGMENT["cut_red"], WAVE_RANGE[1]]] * u.AA
                  if "coverage" in steps else None),
        coverage_probability=AUGMENT["cut_probability"], random_state=seed)
    copies_raw = augmenter.transform(batch)
    return Spectrum(flux=np.where(copies_raw.mask, np.nan, copies_raw.flux.value) * u.one,
                    spectral_axis=copies_raw.spectral_axis, mask=copies_raw.mask,
                    spectral_axis_index=1), star


#: Doppler-shifted copies of each training star the discovery model sees
VAE_COPIES = 6
VAE_RV_RANGE = (-300.0, 300.0)


def doppler_copies(spectra, rows, copies, seed):
    """``copies`` copies of the raw spectra ``rows``, each shifted by a velocity drawn
    uniformly in `VAE_RV_RANGE` (before resampling, as an observed spectrum would be).

    Returns the shifted batch and the velocities (km/s).
    """
    repeated = np.tile(np.asarray(rows), copies)
    mask = None if spectra.mask is None else spectra.mask[repeated]
    batch = Spectrum(flux=spectra.flux[repeated], spectral_axis=spectra.spectral_axis,
                     mask=mask, spectral_axis_index=1)
    shift = DopplerShift(inject=True, rv_range=VAE_RV_RANGE * u.km / u.s, random_state=seed)
    shifted = shift.fit_transform(batch)
    return shifted, shift.rv_applied_.to_value(u.km / u.s)


def build_vae(spectra, table, train, held, prepare, spec, quick, out, registry):
    """Train "miles-vae" on Doppler-shifted training stars and add it to ``registry``.

    Its precision entry is measured on the held-out stars, each shifted once:
    the latent with the largest |Spearman rho| against the velocity and
    against log Teff, and the number of informative latents (MAD > 0.02).
    """
    started = time.perf_counter()
    quick_epochs = {"max_epochs": 3} if quick else {}
    vae = SpectralVAE.from_preset("miles", latent_dim=8, validation_fraction=0.1,
                                  random_state=0, verbose=0, device="cpu", **quick_epochs)
    copies = 1 if quick else VAE_COPIES
    shifted, _ = doppler_copies(spectra, train, copies, 0)
    vae.fit(prepare.transform(shifted))
    vae.preprocessing_ = spec
    shifted, rv = doppler_copies(spectra, held, 1, 1)
    Z = vae.transform(prepare.transform(shifted))
    truth = {"radial velocity": rv, "log Teff": np.log10(_values(table, "teff")[held])}
    rho = latent_correlation(Z, truth)
    nodes = []
    for label in truth:
        values = np.abs(np.asarray(rho[label], dtype=float))
        nodes.append(f"{label}: latent {int(np.nanargmax(values))} (|rho| "
                     f"{np.nanmax(values):.3f})")
    n_informative = len(informative_dimensions(Z, threshold=0.02))
    precision = (f"{len(held)} held-out stars with injected velocities (+-300 km/s): "
                 + "; ".join(nodes) + f"; {n_informative} of 8 latents informative (MAD > 0.02)")
    path, digest = write(vae, "miles-vae", out)
    registry["miles-vae"] = {
        "kind": "SpectralVAE", "file": path.name, "sha256": digest,
        "training_data": (f"MILES (Sanchez-Blazquez et al. 2006), {len(train)} stars (a fifth "
                          f"held out) x {copies} Doppler shifts in +-300 km/s, no labels"),
        "wavelength_range": f"{WAVE_RANGE[0]:g}-{WAVE_RANGE[1]:g} Angstrom",
        "resolution": "2.5 Angstrom FWHM (R ~ 2000 at 5000 Angstrom)",
        "medium": "air", "label_ranges": "", "precision": precision,
        "recipe": (f'SpectralVAE.from_preset("miles"): {vae.latent_dim} latents, beta '
                   f'{vae.beta:g} (KL {vae.kl_reduction}), line term of weight '
                   f'{vae.line_weight:g} over '
                   f'{vae.line_window} pixels, {vae.max_epochs} epochs, '
                   f'{vae.lr_schedule} learning rate from {vae.lr:g}'),
        # no noise drawn: the training stars as MILES observed them (and no denoiser)
        "lowest_training_snr": None,
        # brought to MILES' resolution, medium and range, but not to rest: a latent reads the
        # velocity
        "instrument": {**MILES_INSTRUMENT, "remove_rv": False},
    }
    print(f"miles-vae: {path.stat().st_size / 1e6:.1f} MB; {precision}; "
          f"{time.perf_counter() - started:.0f} s", flush=True)


def robust(predicted, truth):
    return 1.4826 * np.nanmedian(np.abs(predicted - truth), axis=0)


#: S/N of the synthetic pre-training spectra, drawn per spectrum
SYNTHETIC_SNR = (30.0, 300.0)


def lowest_training_snr(augment, steps):
    """The lowest S/N drawn for a spectrum a DeepREMAP model trains on, as the registry records it.

    Its synthetic pre-training spectra (`SYNTHETIC_SNR`) and, with ``augment``
    copies that ``steps`` add noise to, the degraded copies of the training
    stars (`AUGMENT`); ``predict`` flags a spectrum whose denoiser finds it
    noisier as out of the model's range.
    """
    noisy = augment and "noise" in steps
    return min(SYNTHETIC_SNR[0], AUGMENT["snr"][0] if noisy else np.inf)


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
        rv=0 * u.km / u.s, vsini=(0.0, 15.0) * u.km / u.s, snr=SYNTHETIC_SNR,
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
    return path, sha256(path)


def rv_systematic(spectra, rows, template_path):
    """The velocity error the templates add, from training stars that are at rest.

    MILES spectra are in their rest frame: the velocities the templates find
    for every third training star scatter by more than their statistical
    uncertainties say (template mismatch, and the stars' own residual
    velocities). Returns the quadrature difference of the robust scatter and
    the median uncertainty, in km/s, which the matcher adds to every
    uncertainty (``rv_systematic``).
    """
    matcher = InstrumentMatcher(rv_templates=pretrained.read_rv_templates(template_path),
                                rescale=True,
                                wavelength_range=list(WAVE_RANGE) * u.AA).fit()
    out = matcher.transform(spectra[rows[::3]])
    rv, err = (np.asarray(out.meta[key].to_value(u.km / u.s)) for key in ("rv", "rv_err"))
    ok = np.isfinite(rv)
    scatter = 1.4826 * np.median(np.abs(rv[ok] - np.median(rv[ok])))
    floor = float(np.sqrt(max(scatter ** 2 - np.median(err[ok]) ** 2, 0.0)))
    print(f"radial velocities of {int(ok.sum())} training stars at rest: robust scatter "
          f"{scatter:.2f} km/s, median uncertainty {np.median(err[ok]):.2f} km/s: "
          f"rv_systematic {floor:.1f} km/s", flush=True)
    return floor


#: Principal components of the bundled models' denoisers
DENOISER_COMPONENTS = 64
#: How their excess noise follows the continuum (1: photon noise; see PCADenoiser)
DENOISER_NOISE_EXPONENT = 1.0


def write_denoiser(X_train, name, out):
    """Fit the model's `PCADenoiser` on its training stars (after its preprocessing) and write it.

    Returns the registry fields of the file and its SHA-256.
    """
    path = out / f"{name}-denoiser.fits"
    PCADenoiser(n_components=DENOISER_COMPONENTS).fit(X_train).write(path, overwrite=True)
    print(f"denoiser: {path} ({path.stat().st_size / 1e3:.0f} kB)", flush=True)
    return {"denoiser": path.name, "denoiser_sha256": sha256(path),
            "denoiser_noise_exponent": DENOISER_NOISE_EXPONENT}


def write(model, name, out):
    path = out / f"{name}.pt"
    model.save(path)
    return path, sha256(path)


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
    parser.add_argument("--calibration-cv", type=int, default=CALIBRATION_CV, metavar="K",
                        help="fine-tune on every training star and calibrate on K-fold "
                             "out-of-fold predictions, each star's copies in its fold "
                             "(DeepREMAPEnsemble.cross_calibrate; default %(default)s, as "
                             "fit-remap); 0: hold 15%% of the training stars out to calibrate")
    parser.add_argument("--calibrate-by", nargs="+", default=None, metavar="LABEL_OR_EDGE",
                        help="calibrate each type of star on its own, sorted by the predicted "
                             "LABEL between the EDGEs (DeepREMAPEnsemble.calibrate's by; "
                             "default: " + " ".join([CALIBRATE_BY[0], *(
                                 f"{v:g}" for v in CALIBRATE_BY[1])])
                             + ", as fit-remap; 'none': one calibration for every star)")
    parser.add_argument("--skip-vae", action="store_true", help="build the DeepREMAP model only")
    parser.add_argument("--vae-only", action="store_true",
                        help="build only \"miles-vae\" (and its registry entry)")
    parser.add_argument("--templates-only", action="store_true",
                        help="rewrite only the radial-velocity templates and their registry entry")
    parser.add_argument("--denoiser-only", action="store_true",
                        help="rewrite only the model's denoiser (fitted on its training stars) "
                             "and its registry entry; the network is left as it is")
    args = parser.parse_args(argv)
    try:
        by = parse_calibrate_by(args.calibrate_by)
    except ValueError as exc:
        parser.error(str(exc))
    if args.calibration_cv == 1 or args.calibration_cv < 0:
        parser.error(f"--calibration-cv must be 0 or at least 2, got {args.calibration_cv}")
    torch.set_num_threads(1)
    started = time.perf_counter()
    spectra, table, y_all = labelled_miles(args.miles)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)

    prepare = pipeline(args.normalize)
    name = "miles" if args.normalize == "median" else "miles-normalized"
    X_all = prepare.fit_transform(spectra)
    X_all.meta["wavelength_medium"] = "air"
    held, train = held_out_split(table)
    spec = describe(prepare)
    if args.skip_vae and args.vae_only:
        parser.error("--skip-vae and --vae-only exclude each other")
    if args.vae_only:
        registry_file = out / "registry.json"
        registry = json.loads(registry_file.read_text()) if registry_file.is_file() else {}
        build_vae(spectra, table, train, held, prepare, spec, args.quick, out, registry)
        registry_file.write_text(json.dumps(registry, indent=2) + "\n")
        print(f"total {time.perf_counter() - started:.0f} s")
        return
    template_path, template_digest = rv_templates(spectra, _values(table, "teff"), train, out)
    instrument = {**MILES_INSTRUMENT,
                  "rv_templates": template_path.name, "rv_templates_sha256": template_digest,
                  "rv_systematic": f"{rv_systematic(spectra, train, template_path):.1f} km / s"}
    print(f"radial-velocity templates: {template_path} "
          f"({template_path.stat().st_size / 1e3:.0f} kB)")
    if args.templates_only or args.denoiser_only:
        registry = json.loads((out / "registry.json").read_text())
        if args.templates_only:
            registry[name]["instrument"] = instrument
        if args.denoiser_only:
            registry[name].update(write_denoiser(X_all[train], name, out))
        (out / "registry.json").write_text(json.dumps(registry, indent=2) + "\n")
        return
    cross = args.calibration_cv > 0
    if cross:
        fit_rows, cal = train, np.empty(0, dtype=int)
    else:
        cal = np.sort(np.random.default_rng(HOLDOUT_SEED + 1).choice(
            train, size=int(round(0.15 * len(train))), replace=False))
        fit_rows = np.setdiff1d(train, cal)
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
    X_fit, y_fit, star_fit = X_all[fit_rows], y_all[fit_rows], fit_rows
    X_cal, y_cal = X_all[cal], y_all[cal]
    if args.augment:
        from stellarlatent._batch import to_batch

        def joined(rows, copies, seed):
            copies_raw, star = augment(spectra, rows, copies, seed, args.augment_steps)
            extra = prepare.transform(copies_raw)
            both = to_batch([X_all[rows], extra])
            return (Spectrum(flux=both.flux * u.one, spectral_axis=both.spectral_axis,
                             mask=both.mask, meta={"wavelength_medium": "air"},
                             spectral_axis_index=1),
                    np.concatenate([y_all[rows], y_all[star]]),
                    np.concatenate([rows, star]))

        X_fit, y_fit, star_fit = joined(fit_rows, args.augment, 11)
        if not cross:
            X_cal, y_cal, _ = joined(cal, 1, 12)
        print(f"augmented: {len(y_fit)} fine-tuning and {len(y_cal)} calibration spectra",
              flush=True)
    ensemble.fit(X_fit, y_fit)
    if cross:
        ensemble.cross_calibrate(X_fit, y_fit, cv=args.calibration_cv, groups=star_fit, by=by)
    else:
        ensemble.calibrate(X_cal, y_cal, method="coverage", by=by)
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
                 f"all: {scatter_all[0]:.0f} K, {scatter_all[1]:.3f} dex, "
                 f"{scatter_all[2]:.3f} dex; "
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
                     + ", ".join(args.augment_steps) + ")" if args.augment else "")
                  + (f", calibrated on {args.calibration_cv}-fold out-of-fold predictions of "
                     "every training star" + (" and copy" if args.augment else "")
                     if cross else f", calibrated on {len(cal)} held-out training stars"
                     + (" and a copy of each" if args.augment else ""))
                  + ("" if by is None else f", each type by {by[0]} ("
                     + ", ".join(f"{v:g}" for v in by[1]) + ") on its own"),
        "lowest_training_snr": float(lowest_training_snr(args.augment, args.augment_steps)),
        "instrument": instrument,
        **write_denoiser(X_all[train], name, out),
    }
    registry[name]["training_data"] += normalised
    print(f"{name}: {path.stat().st_size / 1e6:.1f} MB; {precision}; "
          f"{time.perf_counter() - started:.0f} s so far", flush=True)
    if args.skip_vae:
        registry_file.write_text(json.dumps(registry, indent=2) + "\n")
        return

    build_vae(spectra, table, train, held, prepare, spec, args.quick, out, registry)
    (out / "registry.json").write_text(json.dumps(registry, indent=2) + "\n")
    print(f"registry written to {out}; total {time.perf_counter() - started:.0f} s")


if __name__ == "__main__":
    main()
