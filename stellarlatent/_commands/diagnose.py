"""``stellarlatent diagnose``: a report folder on a saved model and labelled spectra."""

import time
from pathlib import Path

import astropy.units as u
import numpy as np

from .._report import HTMLReport
from .inputs import Skips, UserError
from .models import (MODEL_RAW_OPTIONS, early_labels, is_remap, load_model, model_data,
                     parse_labels, store_input)
from .outputs import check_out_folder
from .sections import (VAE_LABELS, remap_section, remap_truth, vae_label_table, vae_section,
                       what_it_tracks)
from .transfer import transfer_steps

__all__ = ["run_diagnose"]


def run_diagnose(args):
    """Write the report; return the exit code."""
    import matplotlib

    matplotlib.use("Agg")
    started = time.perf_counter()
    out = check_out_folder(args.out)
    has_store = store_input(args, options=MODEL_RAW_OPTIONS) is not None
    model = load_model(args.model, args.device)
    remap = is_remap(model)
    # a label table is read (and raw files without one refused) before the spectra
    table_file = early_labels(args.labels, has_store)
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
    table, labels = parse_labels(args.labels, names, source, default=default, table=table_file)
    if not remap and not labels:
        where = args.data[0] if source is not None else "the files"
        raise UserError(f"--labels: {where} has none of the labels {', '.join(VAE_LABELS)} to "
                        "compare the latents with; give a table file (--labels TABLE) or name "
                        "the store's numeric columns")
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise UserError(f"--out: cannot make the report folder {out} "
                        f"({exc.strerror or exc})") from None
    report = HTMLReport(f"stellarlatent diagnose: {Path(args.model).name}")
    report.paragraph(
        f"{spectra.flux.shape[0]} spectra of "
        f"{args.data[0] if len(args.data) == 1 else f'{n_inputs} files'}"
        f" ({spectra.flux.shape[1]} pixels), labels {', '.join(labels) or 'none'}"
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
        lines = [f"  {row['label']:5s} robust scatter {row['robust_scatter']:.3g} "
                 f"({row['n']} stars with the label), "
                 f"68%/95% coverage {cov['coverage_68']:.2f} / {cov['coverage_95']:.2f}"
                 for row, cov in zip(accuracy, coverage)]
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
