"""``stellarlatent demo``: the main job on the embedded default, end to end."""

import contextlib
import logging
import os
import time
from pathlib import Path

import astropy.units as u
import numpy as np
from astropy.table import QTable

from ._logging import log
from ._report import HTMLReport

__all__ = ["run_demo"]

LABELS = ("teff", "logg", "feh")


#: synthetic spectra of the demo unless --n-spectra says
N_SPECTRA = 800


def _settings(args):
    """Sizes of the run: the default fits in about 3 minutes on 2 CPU cores.

    ``n_synthetic``, ``pretrain_epochs`` and ``remap_epochs`` (of fine-tuning)
    are those of the DeepREMAP ensemble (``n_members`` networks, each
    pre-trained on synthetic spectra as ``stellarlatent fit-remap`` does).
    """
    n_spectra = N_SPECTRA if args.n_spectra is None else args.n_spectra
    if args.quick:
        # a smoke run: its few VAE steps learn nothing from flattened spectra, so the
        # VAE sees median-normalised ones there
        return {"n_spectra": min(n_spectra, 240), "n_pixels": 512, "vae_epochs": 4,
                "remap_epochs": 3, "latent_dim": 6, "n_members": 2, "n_synthetic": 240,
                "pretrain_epochs": 3, "vae_normalizer": {"method": "median"}}
    return {"n_spectra": n_spectra, "n_pixels": 1024, "vae_epochs": 100, "vae_batch_size": 16,
            "remap_epochs": 20, "latent_dim": 8, "n_members": 2, "n_synthetic": 1200,
            "pretrain_epochs": 12}


def _load(args, settings):
    from .datasets import make_synthetic_spectra, read_miles
    from .preprocessing import DopplerShift

    if args.miles:
        folder = Path(args.miles)
        if not folder.is_dir():
            raise ValueError(f"--miles: {folder} is not a folder")
        spectra, table = read_miles(folder, exclude_flagged=True)
        keep = ~(np.ma.getmaskarray(table["teff"]) | np.ma.getmaskarray(table["logg"])
                 | np.ma.getmaskarray(table["feh"]))
        rows = np.flatnonzero(keep)
        from specutils import Spectrum

        spectra = Spectrum(flux=spectra.flux[rows], spectral_axis=spectra.spectral_axis,
                           mask=spectra.mask[rows], spectral_axis_index=1)
        table = table[rows]
        shift = DopplerShift(inject=True, random_state=args.seed)
        shifted = shift.fit_transform(spectra)
        labels = QTable({name: u.Quantity(table[name]).value * u.Quantity(table[name]).unit
                         for name in LABELS})
        labels["rv"] = shift.rv_applied_.to(u.km / u.s)
        return shifted, labels, "MILES spectra with injected radial velocities"
    spectra, labels = make_synthetic_spectra(settings["n_spectra"], random_state=args.seed)
    return spectra, labels, "synthetic spectra (stellarlatent.datasets.make_synthetic_spectra)"


#: the VAE's normalisation: lines at full depth, a tenth of the continuum's slope
#: (log flux) kept. Dividing by the median leaves the continuum, which follows
#: Teff, to dominate the reconstruction, and no latent learns the velocity.
#: Chosen on synthetic spectra of seeds 11 and 12, never on the demo's own.
VAE_NORMALIZER = {"method": "running_quantile", "keep_shape": 0.1}


def _vae_normalization(normalizer):
    """The end of the report's sentence on how the VAE's spectra were normalised."""
    if normalizer.get("method", "median") == "median":
        return " and the SpectralVAE"
    arguments = ", ".join(f"{k}={v!r}" for k, v in normalizer.items())
    return (f"; the SpectralVAE sees them through ContinuumNormalizer({arguments}), which "
            "divides out most of the continuum, so that line positions, not the continuum, "
            "dominate what it reconstructs")


def _preprocess(spectra, n_pixels, *normalizers):
    """The spectra resampled once, then normalised by each of ``normalizers``.

    ``normalizers`` are dicts of `~stellarlatent.preprocessing.ContinuumNormalizer`
    parameters. Returns one ``(batch, description)`` per normaliser; the
    description is saved with the models (``preprocessing_``), so that
    ``stellarlatent predict`` puts raw files through the same steps.
    """
    from sklearn.pipeline import make_pipeline

    from ._preprocessing_spec import describe
    from .preprocessing import ContinuumNormalizer, Resampler, SpectralGrid

    resampler = Resampler(SpectralGrid.log_uniform(3700 * u.AA, 7300 * u.AA, n_pixels))
    resampled = resampler.fit_transform(spectra)
    steps = [ContinuumNormalizer(**params) for params in normalizers]
    return [(step.fit_transform(resampled), describe(make_pipeline(resampler, step)))
            for step in steps]


#: the fewest spectra the demo splits into training, calibration and test sets
MIN_SPECTRA = 60


def _check_args(args):
    from ._commands import UserError
    from ._commands.outputs import check_out_folder

    if args.n_spectra is not None and args.n_spectra < MIN_SPECTRA:
        raise UserError(f"--n-spectra must be at least {MIN_SPECTRA} (the demo holds out test "
                        f"and calibration spectra), got {args.n_spectra}")
    if args.miles is not None:
        folder = Path(args.miles)
        if not folder.is_dir():
            raise UserError(f"--miles: {folder} is not a folder")
        if args.n_spectra is not None:
            raise UserError("--n-spectra sets the number of synthetic spectra; with --miles "
                            "the demo uses every labelled MILES spectrum: leave it out")
    return check_out_folder(args.out)


def _ridge_baseline(train_flux, train_labels, test_flux, names):
    """Ridge regression of each label on the same normalised flux; predictions as a QTable.

    One `~sklearn.linear_model.RidgeCV` per label on standardised pixels
    (penalty by efficient leave-one-out cross-validation; Teff in log10, as
    DeepREMAP bins it). Its 68% interval is the prediction plus or minus
    1.4826 times the median absolute leave-one-out residual.
    """
    from sklearn.linear_model import RidgeCV

    from ._commands.sections import label_values

    train_flux = np.array(train_flux, dtype=float)
    test_flux = np.array(test_flux, dtype=float)
    with np.errstate(all="ignore"):
        fill = np.nanmedian(train_flux, axis=0)
    fill = np.where(np.isfinite(fill), fill, 1.0)
    for flux in (train_flux, test_flux):
        bad = ~np.isfinite(flux)
        flux[bad] = np.broadcast_to(fill, flux.shape)[bad]
    mean, scale = train_flux.mean(axis=0), train_flux.std(axis=0)
    scale = np.where(scale > 0, scale, 1.0)
    train_x, test_x = (train_flux - mean) / scale, (test_flux - mean) / scale
    table = QTable()
    for name in names:
        values = label_values(train_labels, name)
        log = name == "teff"
        target = np.log10(values) if log else values
        known = np.isfinite(target)
        model = RidgeCV(alphas=RIDGE_ALPHAS, store_cv_results=True).fit(train_x[known],
                                                                        target[known])
        # squared leave-one-out errors at the chosen penalty
        squared = model.cv_results_.reshape(known.sum(), -1)[
            :, int(np.argmin(np.abs(RIDGE_ALPHAS - model.alpha_)))]
        width = 1.4826 * np.median(np.sqrt(squared))
        centre = model.predict(test_x)
        low, high = centre - width, centre + width
        if log:
            centre, low, high = 10**centre, 10**low, 10**high
        unit = getattr(train_labels[name], "unit", None)
        unit = u.dimensionless_unscaled if unit is None else unit
        table[name] = centre * unit
        table[name + "_err"] = 0.5 * (high - low) * unit
        table[name + "_p16"] = low * unit
        table[name + "_p84"] = high * unit
        table.meta[f"{name}_alpha"] = float(model.alpha_)
    return table


#: penalties searched by the ridge baseline's leave-one-out cross-validation
RIDGE_ALPHAS = np.logspace(-3, 6, 28)


def _pretraining(args, spectra, labels, fit_rows, preprocessing, n_synthetic):
    """Synthetic spectra to pre-train on, made as ``stellarlatent fit-remap`` makes them.

    On the raw grid of the demo's spectra, at their resolution, over label
    ranges that cover the training labels (with radial velocity 0 and
    S/N 30-300, as `~stellarlatent._commands.pretrain.synthetic_pretraining`
    draws them), put through the demo's preprocessing.
    """
    from specutils import Spectrum

    from ._commands.pretrain import synthetic_pretraining
    from ._commands.sections import label_values

    values = np.column_stack([label_values(labels, name)[fit_rows] for name in LABELS])
    # MILES spectra with injected velocities come as a list, each on its shifted grid: the
    # first one's grid is as good as any (the preprocessing resamples the synthetic spectra)
    first = spectra if isinstance(spectra, Spectrum) else spectra[0]
    return synthetic_pretraining(n_synthetic, LABELS, values, first.spectral_axis,
                                 getattr(first, "meta", None), preprocessing, args.seed + 1)


def _train_remap(args, settings, pretraining, X, y, verbose):
    """The recommended DeepREMAPEnsemble (with its ridge expert), pre-trained then fitted."""
    from ._commands.recipe import contrast_window, recipe_member
    from .estimators import DeepREMAPEnsemble

    member = recipe_member(LABELS).set_params(
        max_epochs=settings.get("pretrain_epochs", settings["remap_epochs"]),
        contrast_window=contrast_window(X.spectral_axis),
        device=args.device, random_state=args.seed, verbose=verbose)
    n_members = settings.get("n_members", 2)
    # the members train in parallel processes, one torch thread each
    ensemble = DeepREMAPEnsemble(member, n_members=n_members,
                                 fine_tune_epochs=settings["remap_epochs"],
                                 n_jobs=max(1, min(n_members, _n_cores())),
                                 random_state=args.seed, ridge_expert=True)
    ensemble.pretrain(pretraining.X, pretraining.y)
    return ensemble.fit(X, y)


def _fit_vae(params, flux, mask, spectral_axis):
    """A SpectralVAE fitted on one torch thread (run in a worker process, which gets
    arrays: a Spectrum's WCS does not pickle)."""
    import torch
    from specutils import Spectrum

    from .estimators import SpectralVAE

    torch.set_num_threads(1)
    X = Spectrum(flux=flux, spectral_axis=spectral_axis, mask=mask, spectral_axis_index=1)
    return SpectralVAE(**params).fit(X)


@contextlib.contextmanager
def _background():
    """``submit(function, *args)`` giving a future: a worker process when there is a
    second CPU core (the VAE then trains while DeepREMAP does), else run at once."""
    from concurrent.futures import Future, ProcessPoolExecutor

    if _n_cores() < 2:
        def run_now(function, *arguments):
            future = Future()
            future.set_result(function(*arguments))
            return future

        yield run_now
        return
    import multiprocessing

    with ProcessPoolExecutor(1, mp_context=multiprocessing.get_context("spawn")) as pool:
        yield pool.submit


def _n_cores():
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def _record_preprocessing(model, spec):
    """The preprocessing on the model and on each member (the ensemble file keeps theirs)."""
    for member in getattr(model, "members_", ()):
        member.preprocessing_ = spec
    model.preprocessing_ = spec


def run_demo(args):
    """Generate or read spectra, train both models, diagnose them, write the report."""
    import matplotlib

    matplotlib.use("Agg")

    from ._commands.sections import remap_section, vae_label_table, vae_section, what_it_tracks
    from .diagnostics import LatentExplorer
    started = time.perf_counter()
    out = _check_args(args)
    settings = _settings(args)
    verbose = 0 if args.quiet else 1

    spectra, labels, description = _load(args, settings)
    vae_normalizer = settings.get("vae_normalizer", VAE_NORMALIZER)
    (batch, preprocessing), (vae_batch, vae_preprocessing) = _preprocess(
        spectra, settings["n_pixels"], {"method": "median"}, vae_normalizer)
    (out / "models").mkdir(parents=True, exist_ok=True)
    n = batch.flux.shape[0]
    rng = np.random.default_rng(args.seed)
    order = rng.permutation(n)
    n_test = max(n // 5, 10)
    test, train = np.sort(order[:n_test]), np.sort(order[n_test:])
    n_cal = max(len(train) // 5, 10)
    calibration, fit_rows = np.sort(train[:n_cal]), np.sort(train[n_cal:])
    log.info("%d spectra (%s), %d pixels; %d for training, %d for calibration, %d for testing",
             n, description, batch.flux.shape[1], len(fit_rows), len(calibration), len(test))

    def rows(index, source=batch):
        from specutils import Spectrum

        return Spectrum(flux=source.flux[index], spectral_axis=source.spectral_axis,
                        mask=source.mask[index], spectral_axis_index=1, meta=source.meta)

    def label_rows(index):
        return QTable({name: labels[name][index] for name in LABELS})

    report = HTMLReport("stellarlatent demo report")
    report.paragraph(
        f"{n} {description}, resampled flux-conservingly onto a log-uniform grid of "
        f"{batch.flux.shape[1]} pixels and divided by their median for DeepREMAP and the "
        f"ridge baseline{_vae_normalization(vae_normalizer)}. {len(fit_rows)} spectra "
        f"train the models, {len(calibration)} calibrate DeepREMAP and {len(test)} (never "
        "seen in training) are used for every number and figure below."
    )

    # -- unsupervised discovery, trained in the background ---------------------------
    vae_params = dict(latent_dim=settings["latent_dim"], beta=settings.get("beta", 0.003),
                      max_epochs=settings["vae_epochs"],
                      batch_size=settings.get("vae_batch_size", 64), lr=2e-3,
                      random_state=args.seed, device=args.device, verbose=verbose)
    with _background() as submit:
        vae_future = submit(_fit_vae, vae_params, vae_batch.flux[train], vae_batch.mask[train],
                            vae_batch.spectral_axis)

        # -- stellar parameters -------------------------------------------------------
        pretraining = _pretraining(args, spectra, labels, fit_rows, preprocessing,
                                   settings.get("n_synthetic", 200))
        remap = _train_remap(args, settings, pretraining, rows(fit_rows), label_rows(fit_rows),
                             verbose)
        remap.calibrate(rows(calibration), label_rows(calibration), method="coverage")
        _record_preprocessing(remap, preprocessing)
        remap.save(out / "models" / "deep_remap.pt")
        vae = vae_future.result()
    vae.preprocessing_ = vae_preprocessing
    vae.save(out / "models" / "spectral_vae.pt")
    disentanglement = vae_section(report, vae, rows(test, vae_batch),
                                  vae_label_table(labels[test]), out,
                                  heading="1. What the SpectralVAE learned without labels")
    summary = disentanglement.summary

    flux = batch.flux.value
    ridge = _ridge_baseline(np.where(batch.mask[train], np.nan, flux[train]), labels[train],
                            np.where(batch.mask[test], np.nan, flux[test]), LABELS)
    truth = label_rows(test)
    _, accuracy, coverage = remap_section(
        report, remap, rows(test), truth, out, baselines={"ridge": ridge},
        heading="2. Stellar parameters with calibrated uncertainties (DeepREMAP)",
        training=(f"Each network was pre-trained for {settings['pretrain_epochs']} epochs on "
                  f"{pretraining.description}, then fine-tuned for {settings['remap_epochs']} "
                  f"epochs on the {len(fit_rows)} training spectra. The ridge baseline is "
                  "scikit-learn's RidgeCV (penalty by leave-one-out cross-validation) on the "
                  f"same normalised flux of the {len(train)} training and calibration spectra "
                  "(it does not see the synthetic pre-training spectra); its 68% interval is "
                  "its prediction plus or minus 1.4826 times its median absolute "
                  "leave-one-out residual."))

    # -- the explorer page ------------------------------------------------------------
    explorer = LatentExplorer.from_estimator(
        vae, rows(test, vae_batch), labels=_explorer_labels(labels[test]), remap=remap,
        remap_X=rows(test),
        title="stellarlatent demo: latent explorer")
    explorer.save(out / "explorer.html")

    report.heading("Files")
    report.link("explorer.html", "explorer.html: the latent explorer (scatter of any two "
                "latents, sliders that decode a spectrum, a star's most similar spectra)")
    for name in ("disentanglement.ecsv", "predictions.ecsv", "accuracy.ecsv", "coverage.ecsv",
                 "models/spectral_vae.pt", "models/deep_remap.pt"):
        report.link(name, name)
    page = report.write(out)

    lines = [f"stellarlatent demo: {n} spectra, {time.perf_counter() - started:.0f} s; "
             f"report: {page}",
             f"  SpectralVAE: {len(disentanglement.informative)} informative latents of "
             f"{settings['latent_dim']}; {disentanglement.verdict[0]}"]
    for row in summary:
        lines.append(f"    latent {row['dim']}: {what_it_tracks(row)}")
    lines.append("  robust scatter on test spectra, DeepREMAP (68%/95% coverage) vs ridge:")
    for name, cov in zip(LABELS, coverage):
        mine = accuracy[(accuracy["label"] == name) & (accuracy["method"] == "DeepREMAP")]
        theirs = accuracy[(accuracy["label"] == name) & (accuracy["method"] == "ridge")]
        lines.append(f"    {name:5s} {mine['robust_scatter'][0]:8.3g} "
                     f"({cov['coverage_68']:.2f} / {cov['coverage_95']:.2f})   ridge "
                     f"{theirs['robust_scatter'][0]:8.3g}")
    lines.append(f"  latent explorer: {out / 'explorer.html'}")
    print("\n".join(lines))
    logging.getLogger("stellarlatent").debug("demo finished")
    return page


def _explorer_labels(labels):
    """The labels the explorer lists and colours by (plain numbers in their units)."""
    from ._commands.sections import label_values

    names = [name for name in (*LABELS, "rv", "vsini", "snr") if name in labels.colnames]
    return QTable({name: label_values(labels, name)
                   * (getattr(labels[name], "unit", None) or u.dimensionless_unscaled)
                   for name in names})
