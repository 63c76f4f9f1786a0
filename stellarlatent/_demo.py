"""``stellarlatent demo``: the main job on the embedded default, end to end."""

import logging
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
    n_spectra = N_SPECTRA if args.n_spectra is None else args.n_spectra
    if args.quick:
        return {"n_spectra": min(n_spectra, 240), "n_pixels": 512, "vae_epochs": 4,
                "remap_epochs": 4, "latent_dim": 6}
    return {"n_spectra": n_spectra, "n_pixels": 1024, "vae_epochs": 30,
            "remap_epochs": 60, "latent_dim": 8}


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


def _preprocess(spectra, n_pixels):
    """The spectra resampled and normalised, and the description of that preprocessing.

    The description is saved with the models (``preprocessing_``), so that
    ``stellarlatent predict`` puts raw files through the same steps.
    """
    from sklearn.pipeline import make_pipeline

    from ._preprocessing_spec import describe
    from .preprocessing import ContinuumNormalizer, Resampler, SpectralGrid

    pipeline = make_pipeline(
        Resampler(SpectralGrid.log_uniform(3700 * u.AA, 7300 * u.AA, n_pixels)),
        ContinuumNormalizer(method="median"),
    )
    return pipeline.fit_transform(spectra), describe(pipeline)


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


def run_demo(args):
    """Generate or read spectra, train both models, diagnose them, write the report."""
    import matplotlib

    matplotlib.use("Agg")

    from ._commands.sections import remap_section, vae_label_table, vae_section
    from .estimators import DeepREMAP, SpectralVAE

    started = time.perf_counter()
    out = _check_args(args)
    settings = _settings(args)
    verbose = 0 if args.quiet else 1

    spectra, labels, description = _load(args, settings)
    batch, preprocessing = _preprocess(spectra, settings["n_pixels"])
    (out / "models").mkdir(parents=True, exist_ok=True)
    n = batch.flux.shape[0]
    rng = np.random.default_rng(args.seed)
    order = rng.permutation(n)
    n_test = max(n // 5, 10)
    test, train = np.sort(order[:n_test]), np.sort(order[n_test:])
    n_cal = max(len(train) // 5, 10)
    calibration, fit_rows = train[:n_cal], train[n_cal:]
    log.info("%d spectra (%s), %d pixels; %d for training, %d for calibration, %d for testing",
             n, description, batch.flux.shape[1], len(fit_rows), len(calibration), len(test))

    def rows(index):
        from specutils import Spectrum

        return Spectrum(flux=batch.flux[index], spectral_axis=batch.spectral_axis,
                        mask=batch.mask[index], spectral_axis_index=1)

    report = HTMLReport("stellarlatent demo report")
    report.paragraph(
        f"{n} {description}, resampled flux-conservingly onto a log-uniform grid of "
        f"{batch.flux.shape[1]} pixels and divided by their median. {len(fit_rows)} spectra "
        f"train the models, {len(calibration)} calibrate DeepREMAP and {len(test)} (never "
        "seen in training) are used for every number and figure below."
    )

    # -- unsupervised discovery -------------------------------------------------------
    vae = SpectralVAE(latent_dim=settings["latent_dim"], beta=0.003, max_epochs=settings["vae_epochs"],
                      batch_size=64, lr=2e-3, random_state=args.seed, device=args.device,
                      verbose=verbose).fit(rows(train))
    vae.preprocessing_ = preprocessing
    vae.save(out / "models" / "spectral_vae.pt")
    disentanglement = vae_section(report, vae, rows(test), vae_label_table(labels[test]), out,
                                  heading="1. What the SpectralVAE learned without labels")
    summary = disentanglement.summary

    # -- stellar parameters -----------------------------------------------------------
    y = QTable({name: labels[name][fit_rows] for name in LABELS})
    remap = DeepREMAP(labels=LABELS, max_epochs=settings["remap_epochs"], random_state=args.seed,
                      base_channels=8, n_stages=3,
                      device=args.device, verbose=verbose).fit(rows(fit_rows), y)
    remap.calibrate(rows(calibration), QTable({name: labels[name][calibration] for name in LABELS}))
    remap.preprocessing_ = preprocessing
    remap.save(out / "models" / "deep_remap.pt")
    truth = QTable({name: labels[name][test] for name in LABELS})
    _, accuracy, coverage = remap_section(
        report, remap, rows(test), truth, out,
        heading="2. Stellar parameters with calibrated uncertainties (DeepREMAP)")

    report.heading("Files")
    for name in ("disentanglement.ecsv", "predictions.ecsv", "accuracy.ecsv", "coverage.ecsv",
                 "models/spectral_vae.pt", "models/deep_remap.pt"):
        report.link(name, name)
    page = report.write(out)

    lines = [f"stellarlatent demo: {n} spectra, {time.perf_counter() - started:.0f} s; report: {page}",
             f"  SpectralVAE: {len(disentanglement.informative)} informative latents of "
             f"{settings['latent_dim']}"]
    for row in summary:
        lines.append(f"    latent {row['dim']}: tracks {row['best_label']} "
                     f"(Spearman {row['spearman']:+.2f})")
    lines.append("  DeepREMAP on test spectra (robust scatter, 68%/95% coverage):")
    for name, cov in zip(LABELS, coverage):
        scatter = accuracy[accuracy["label"] == name]["robust_scatter"][0]
        lines.append(f"    {name:5s} {scatter:8.3g}   {cov['coverage_68']:.2f} / {cov['coverage_95']:.2f}")
    print("\n".join(lines))
    logging.getLogger("stellarlatent").debug("demo finished")
    return page
