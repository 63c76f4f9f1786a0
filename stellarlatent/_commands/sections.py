"""Report sections shared by ``stellarlatent demo`` and ``stellarlatent diagnose``.

Each function adds text, tables and figures to an `~stellarlatent._report.HTMLReport`
and writes its ECSV tables into the report folder.
"""

from pathlib import Path

import astropy.units as u
import numpy as np
from astropy.table import QTable, Table

__all__ = ["label_values", "vae_label_table", "vae_section", "remap_section"]

VAE_LABELS = ("teff", "logg", "feh", "rv", "vsini")


def label_values(labels, name):
    """A label column as floats, NaN where missing or masked."""
    column = labels[name]
    if hasattr(column, "unmasked"):
        mask = np.asarray(getattr(column, "mask", False), dtype=bool)
        column = column.unmasked
    else:
        mask = np.ma.getmaskarray(column)
    values = np.array(getattr(column, "value", column), dtype=float)
    values[np.broadcast_to(mask, values.shape)] = np.nan
    return values


def vae_label_table(labels, names=None):
    """The numeric label columns compared to the latents (``log_teff`` added with ``teff``)."""
    names = [n for n in (VAE_LABELS if names is None else names) if n in labels.colnames]
    table = Table({name: label_values(labels, name) for name in names})
    if "teff" in table.colnames:
        with np.errstate(invalid="ignore", divide="ignore"):
            table["log_teff"] = np.log10(table["teff"])
    return table


def vae_section(report, vae, spectra, labels, out, *, heading, color_label="log_teff"):
    """What a SpectralVAE learned: informative latents, mutual information, traversals.

    Writes ``disentanglement.ecsv`` into ``out``; returns the
    `~stellarlatent.diagnostics.DisentanglementReport`.
    """
    import matplotlib.pyplot as plt

    from ..diagnostics import DisentanglementReport

    disentanglement = DisentanglementReport.from_estimator(vae, spectra, labels)
    summary = disentanglement.summary
    summary.write(Path(out) / "disentanglement.ecsv", overwrite=True)

    report.heading(heading)
    kind = f"beta-VAE (beta = {vae.beta:g})" if vae.variational else "autoencoder"
    report.paragraph(
        f"A convolutional {kind} with {vae.latent_dim} latents was trained on the spectra "
        "alone. A latent is informative when its median absolute deviation over the spectra "
        "shown here exceeds 0.02 (Sedaghat et al. 2021). The table gives, for each "
        "informative latent, the label it shares most information with, that mutual "
        "information (nats; nmi normalised to [0, 1]) and the Spearman correlation."
    )
    report.table(summary, caption="Informative latents and what they track")
    fig, ax = plt.subplots(figsize=(6, 3))
    disentanglement.plot_mad(ax=ax)
    report.figure(fig, "latent_mad", "Median absolute deviation of each latent; the dashed line "
                  "is the 0.02 threshold above which a latent counts as informative.")
    plt.close(fig)
    if not len(disentanglement.informative):
        report.paragraph("No latent is informative: train longer, or lower beta.")
    elif len(labels.colnames):
        fig, ax = plt.subplots(figsize=(6, 4))
        disentanglement.plot_mutual_information(ax=ax, normalize="nmi")
        report.figure(fig, "mutual_information", "Normalised mutual information between each "
                      "latent (rows) and each label (columns): bright cells show which parameter "
                      "a latent tracks.")
        plt.close(fig)
    if len(disentanglement.informative) >= 2 and color_label in labels.colnames:
        fig = disentanglement.plot_pairwise(color_label)
        report.figure(fig, "pairwise_latents", "Informative latents against each other, "
                      f"coloured by {color_label}: smooth colour gradients show a latent that "
                      "follows it.")
        plt.close(fig)
    if len(disentanglement.informative):
        first = _first(spectra)
        fig = disentanglement.plot_traversals(first, vae=vae, scale="mad").figure_
        report.figure(fig, "latent_traversals", "Latent traversals: one spectrum decoded with one "
                      "informative latent moved by a few MADs at a time; this shows what each "
                      "node does to a spectrum.")
        plt.close(fig)
    return disentanglement


def _first(spectra):
    from specutils import Spectrum

    return Spectrum(flux=spectra.flux[:1], spectral_axis=spectra.spectral_axis,
                    mask=None if spectra.mask is None else spectra.mask[:1],
                    spectral_axis_index=1)


def remap_section(report, remap, spectra, truth, out, *, heading):
    """Accuracy and calibration of a DeepREMAP against known labels.

    Writes ``predictions.ecsv``, ``accuracy.ecsv`` and ``coverage.ecsv`` into
    ``out``; returns ``(predictions, accuracy, coverage)``.
    """
    import matplotlib.pyplot as plt

    from ..diagnostics import CalibrationDisplay, interval_coverage

    out = Path(out)
    labels = tuple(remap.bin_edges_)
    predictions = remap.predict(spectra)
    predictions.write(out / "predictions.ecsv", overwrite=True)
    coverage = interval_coverage(predictions, truth, levels=(0.68, 0.95))
    coverage.write(out / "coverage.ecsv", overwrite=True)
    accuracy = Table(names=("label", "robust_scatter", "bias", "n"), dtype=(str, float, float, int))
    for name in labels:
        residual = u.Quantity(predictions[name]).value - label_values(truth, name)
        residual = residual[np.isfinite(residual)]
        if residual.size:
            accuracy.add_row((name, 1.4826 * np.median(np.abs(residual - np.median(residual))),
                              np.median(residual), residual.size))
        else:
            accuracy.add_row((name, np.nan, np.nan, 0))
    accuracy.write(out / "accuracy.ecsv", overwrite=True)

    calibrated = any(t != 1.0 for t in remap.temperatures_.values())
    members = getattr(remap, "members_", None)
    report.heading(heading)
    report.paragraph(
        (f"An ensemble of {len(members)} residual 1-D CNNs, each trained with its own seed "
         f"(and pre-trained with its own, when it was), predicts {', '.join(labels)} as "
         "probabilities over label bins, the average of their log-probabilities "
         if members is not None else
         f"A residual 1-D CNN predicts {', '.join(labels)} as probabilities over label bins ")
        + "(focal loss with a distance-aware cost matrix, triplet embedding loss, cosine "
        "annealing with stochastic weight averaging)"
        + (", then temperature scaling calibrated the probabilities on held-out spectra "
           if calibrated else "; its probabilities were not calibrated ")
        + "(Gilda 2025). Robust scatter is 1.4826 times the median absolute residual; coverage "
        "is the fraction of stars whose true value lies inside the 68% and 95% credible "
        "intervals (ideally 0.68 and 0.95)."
    )
    report.table(accuracy, caption="Accuracy")
    report.table(coverage, caption="Interval coverage")
    display = CalibrationDisplay.from_estimator(remap, spectra, truth, labels=labels)
    display.plot()
    report.figure(display.figure_, "calibration", "Per label: reliability diagram (confidence "
                  "against accuracy of the most probable bin), coverage of central credible "
                  "intervals against their nominal level, and residuals against the truth.")
    plt.close(display.figure_)
    return predictions, accuracy, coverage


def remap_truth(labels, names):
    """The true labels of a DeepREMAP as a QTable (NaN where missing)."""
    table = QTable()
    for name in names:
        unit = getattr(labels[name], "unit", None)
        values = label_values(labels, name)
        table[name] = values if unit is None else values * unit
    return table
