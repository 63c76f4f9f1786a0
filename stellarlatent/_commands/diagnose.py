"""``stellarlatent diagnose``: a report folder on a saved model and labelled spectra.

The report is ``index.html`` and the tables and figures of its sections
(`REPORT_FILES`, every name a report of either model may write). A folder
that holds one of them holds an earlier report: it is refused unless
``--overwrite``, which removes those files (and only those: the
astronomer's other files and subfolders stay) before the new report is
written, so that no table or figure of the earlier report is left beside
the new page looking current.
"""

import time
from pathlib import Path

import astropy.units as u
import numpy as np

from .._report import HTMLReport
from .inputs import Skips, UserError
from .models import (MODEL_RAW_OPTIONS, early_labels, is_remap, load_model, model_data,
                     parse_labels, store_input)
from .outputs import check_report_folder, clear_report
from .sections import (REMAP_FILES, VAE_FILES, VAE_LABELS, remap_section, remap_truth,
                       vae_label_table, vae_section, what_it_tracks)
from .transfer import transfer_steps

__all__ = ["run_diagnose", "REPORT_FILES"]

#: every file a report may write into its folder (what --overwrite removes)
REPORT_FILES = ("index.html", *VAE_FILES, *REMAP_FILES)


def _no_vae_labels(args):
    return UserError(f"--labels: {args.labels[0]} has none of the labels "
                     f"{', '.join(VAE_LABELS)} to compare the latents with; name the columns "
                     f"to compare them with (--labels {args.labels[0]} COLUMN...), or leave "
                     "--labels out for a report without labels")


def run_diagnose(args):
    """Write the report; return the exit code."""
    import matplotlib

    matplotlib.use("Agg")
    started = time.perf_counter()
    overwrite = getattr(args, "overwrite", False)
    out = check_report_folder(args.out, REPORT_FILES, overwrite=overwrite)
    has_store = store_input(args, options=MODEL_RAW_OPTIONS) is not None
    model = load_model(args.model, args.device)
    remap = is_remap(model)
    # a label table is read (and, for a DeepREMAP, raw files without one refused) before the
    # spectra; a SpectralVAE without labels gets the report of what needs none
    table_file = early_labels(args.labels, has_store) if remap or args.labels else None
    if (not remap and table_file is not None and len(args.labels) == 1
            and not set(VAE_LABELS) & set(table_file.colnames)):
        raise _no_vae_labels(args)
    if remap and table_file is not None:
        missing = [name for name in model.bin_edges_ if name not in table_file.colnames]
        if missing:
            raise UserError(f"--labels: the model predicts {list(model.bin_edges_)} but "
                            f"{args.labels[0]} lacks {missing}")
    skips = Skips()
    # raw files are brought to the model's instrument, as predict does
    before, after = (None, None) if has_store else transfer_steps(model, args)
    X, names, source, n_inputs = model_data(model, args, skips, before=before, after=after)
    store = X if hasattr(X, "label_names") else None
    try:
        spectra = store.read() if store is not None else X
    finally:
        if store is not None:
            store.close()
    default = tuple(model.bin_edges_) if remap else VAE_LABELS
    if not remap and not args.labels and source is None:
        table, labels = None, []  # raw files and no table: nothing to compare with
    else:
        table, labels = parse_labels(args.labels, names, source, default=default,
                                     table=table_file)
    if not remap and not labels and args.labels:
        raise _no_vae_labels(args)
    if overwrite:
        clear_report(out, REPORT_FILES)
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise UserError(f"--out: cannot make the report folder {out} "
                        f"({exc.strerror or exc})") from None
    report = HTMLReport(f"stellarlatent diagnose: {Path(args.model).name}")
    report.paragraph(
        f"{spectra.flux.shape[0]} spectra of "
        f"{args.data[0] if len(args.data) == 1 else f'{n_inputs} files'}"
        f" ({spectra.flux.shape[1]} pixels), "
        + (f"labels {', '.join(labels)}" if labels else
           "no labels: nothing below is compared with labels (give a label table with "
           "--labels to see which parameter each latent tracks)")
        + (" (and log_teff, from teff)." if not remap and "teff" in labels else ".")
        + (f" {len(skips)} input files could not be read and were skipped." if len(skips) else "")
    )
    files = []
    if remap:
        missing = [name for name in model.bin_edges_ if name not in table.colnames]
        if missing:
            raise UserError(f"--labels: the model predicts {list(model.bin_edges_)} but the "
                            f"labels lack {missing}")
        truth = remap_truth(table, tuple(model.bin_edges_))
        if not any(np.isfinite(u.Quantity(truth[name]).value).any() for name in truth.colnames):
            raise UserError(f"--labels: no spectrum has a known {', '.join(truth.colnames)}; "
                            "is the table the one of these files (its 'filename' column)?")
        _, accuracy, coverage = remap_section(
            report, model, spectra, truth, out, heading="Stellar parameters (DeepREMAP)",
            names=names, which="these spectra (on the model's own training stars it flatters "
                               "the model: judge it on others)")
        files += ["predictions.ecsv", "accuracy.ecsv", "coverage.ecsv"]
        units = {label: " " + unit.to_string() if unit.to_string() else ""
                 for label, unit in model.label_units_.items()}
        lines = [f"  {row['label']:5s} robust scatter {row['robust_scatter']:.3g}"
                 f"{units.get(row['label'], '')} ({row['n']} stars with the label), "
                 f"68%/95% coverage {cov['coverage_68']:.2f} / {cov['coverage_95']:.2f}"
                 for row, cov in zip(accuracy, coverage)]
    elif not labels:
        disentanglement = vae_section(report, model, spectra, None, out,
                                      heading="What the SpectralVAE learned")
        files.append("disentanglement.ecsv")
        lines = ["  no labels given: the latents are not compared with labels",
                 f"  {len(disentanglement.informative)} informative latents of "
                 f"{model.latent_dim}; {disentanglement.verdict[0]}"]
        lines += [f"    latent {row['dim']}: MAD {row['mad']:.3g}"
                  for row in disentanglement.summary]
    else:
        disentanglement = vae_section(report, model, spectra, vae_label_table(table, labels), out,
                                      heading="What the SpectralVAE learned")
        files.append("disentanglement.ecsv")
        lines = [f"  {len(disentanglement.informative)} informative latents of {model.latent_dim}"]
        lines += [f"    latent {row['dim']}: {what_it_tracks(row)}"
                  for row in disentanglement.summary]
    report.heading("Files")
    for name in files:
        report.link(name, name)
    page = report.write(out)
    return skips.finish(
        f"stellarlatent diagnose: {spectra.flux.shape[0]} spectra, "
        f"{time.perf_counter() - started:.0f} s; report: {page}",
        "\n".join(lines))
