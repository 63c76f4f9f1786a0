"""Report sections shared by ``stellarlatent demo`` and ``stellarlatent diagnose``.

Each function adds text, tables and figures to an `~stellarlatent._report.HTMLReport`
and writes its ECSV tables into the report folder.
"""

from pathlib import Path

import astropy.units as u
import numpy as np
from astropy.table import QTable, Table

__all__ = ["label_values", "vae_label_table", "vae_section", "remap_section", "VAE_FILES",
           "REMAP_FILES"]

VAE_LABELS = ("teff", "logg", "feh", "rv", "vsini")
#: every file `vae_section` may write into a report folder (its table and figures)
VAE_FILES = ("disentanglement.ecsv", "latent_mad.png", "mutual_information.png",
             "pairwise_latents.png", "latent_traversals.png")
#: every file `remap_section` may write into a report folder
REMAP_FILES = ("predictions.ecsv", "accuracy.ecsv", "coverage.ecsv", "calibration.png")


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


def what_it_tracks(row):
    """A row of `DisentanglementReport.summary` in words: the label its latent tracks."""
    if not row["best_label"]:
        return "no label to compare with"
    said = f"{row['best_label']} (Spearman {row['spearman']:+.2f})"
    return f"tracks {said}" if row["beyond_chance"] else f"no label beyond chance; closest {said}"


def vae_section(report, vae, spectra, labels, out, *, heading, color_label="log_teff"):
    """What a SpectralVAE learned: informative latents, mutual information, traversals.

    ``labels`` is None (or a table without columns) for spectra without
    labels: the section then shows what needs none (the informative latents,
    their dependence, the traversals). Writes ``disentanglement.ecsv`` into
    ``out`` (only ``dim`` and ``mad`` without labels); returns the
    `~stellarlatent.diagnostics.DisentanglementReport`.
    """
    import matplotlib.pyplot as plt

    from ..diagnostics import DisentanglementReport

    no_labels = labels is None or not len(labels.colnames)
    disentanglement = DisentanglementReport.from_estimator(vae, spectra,
                                                           None if no_labels else labels)
    summary = disentanglement.summary
    summary.write(Path(out) / "disentanglement.ecsv", overwrite=True)

    report.heading(heading)
    kind = f"beta-VAE (beta = {vae.beta:g})" if vae.variational else "autoencoder"
    about = (
        "No labels were given, so no latent is compared with a label: this shows which "
        "latents are informative (the table gives the MAD of each), how they depend on one "
        "another and what each does to a spectrum."
        if no_labels else
        "The table gives, for each informative latent, the label it shares most information "
        "with, that mutual information (nats; nmi normalised to [0, 1]), the Spearman "
        "correlation, and whether the latent carries that label beyond chance (more "
        "information than the label shuffled gets, or a significant rank correlation)."
    )
    report.paragraph(
        f"A convolutional {kind} with {vae.latent_dim} latents was trained on the spectra "
        "alone. A latent is informative when its median absolute deviation over the spectra "
        f"shown here exceeds 0.02 (Sedaghat et al. 2021). {about}"
    )
    if len(summary):
        report.table(summary, caption="Informative latents and their MAD" if no_labels
                     else "Informative latents and what they track")
    else:
        report.paragraph("No latent is informative: the posterior collapsed to the prior"
                         + ("" if no_labels else
                            ", so there is nothing to compare with the labels")
                         + " (see the verdict below).")
    verdict = disentanglement.verdict
    if verdict:
        report.paragraph("Are the latents independent of one another? "
                         "(stellarlatent.diagnostics.latent_dependence) " + verdict[0] + ".")
        for sentence in verdict[1:]:
            report.paragraph(sentence[:1].upper() + sentence[1:] + ".")
    pairs = disentanglement.dependence_table[:10] if no_labels else []
    if len(pairs):
        pairs["entangled"] = ["yes" if flag else "no" for flag in pairs["entangled"]]
        report.table(pairs, caption="The most dependent pairs of informative latents: "
                     "absolute Spearman correlation and normalised mutual information "
                     "(stellarlatent.diagnostics.latent_dependence)")
    fig, ax = plt.subplots(figsize=(6, 3))
    disentanglement.plot_mad(ax=ax)
    report.figure(fig, "latent_mad", "Median absolute deviation of each latent; the dashed line "
                  "is the 0.02 threshold above which a latent counts as informative.")
    plt.close(fig)
    if not len(disentanglement.informative):
        report.paragraph("No latent is informative: train longer, or lower beta.")
    elif not no_labels:
        fig, ax = plt.subplots(figsize=(6, 4))
        disentanglement.plot_mutual_information(ax=ax, normalize="nmi")
        report.figure(fig, "mutual_information", "Normalised mutual information between each "
                      "latent (rows) and each label (columns): bright cells show which parameter "
                      "a latent tracks. Under each label, the level shuffled labels reach by "
                      "chance (the estimate is biased upwards, the more so the fewer the "
                      "spectra); hatched cells do not exceed it.")
        plt.close(fig)
    if len(disentanglement.informative) >= 2 and no_labels:
        fig = disentanglement.plot_pairwise(None)
        report.figure(fig, "pairwise_latents", "Informative latents against each other: a "
                      "thin curve or a tilted cloud shows two latents that depend on one "
                      "another (one factor in two latents).")
        plt.close(fig)
    elif len(disentanglement.informative) >= 2 and color_label in labels.colnames:
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


def _accuracy_rows(accuracy, method, predictions, truth, labels, coverage=None):
    """Robust scatter, bias and 68% coverage of ``predictions`` added to ``accuracy``."""
    covered = {}
    if coverage is not None:
        covered = {row["label"]: float(row["coverage_68"]) for row in coverage}
    for name in labels:
        true = label_values(truth, name)
        residual = u.Quantity(predictions[name]).value - true
        known = np.isfinite(residual)
        residual = residual[known]
        cov = covered.get(name, np.nan)
        if coverage is None and f"{name}_p16" in predictions.colnames:
            low = u.Quantity(predictions[f"{name}_p16"]).value[known]
            high = u.Quantity(predictions[f"{name}_p84"]).value[known]
            cov = float(np.mean((true[known] >= low) & (true[known] <= high))) if known.any() \
                else np.nan
        if residual.size:
            accuracy.add_row((method, name,
                              1.4826 * np.median(np.abs(residual - np.median(residual))),
                              np.median(residual), cov, residual.size))
        else:
            accuracy.add_row((method, name, np.nan, np.nan, np.nan, 0))


def remap_section(report, remap, spectra, truth, out, *, heading, baselines=None, training=None,
                  names=None, which="the test spectra"):
    """Accuracy and calibration of a DeepREMAP against known labels.

    Writes ``predictions.ecsv`` (with a ``filename`` column when ``names``
    are given, and the true labels as ``L_true``), ``accuracy.ecsv`` and
    ``coverage.ecsv`` into ``out``; returns ``(predictions, accuracy,
    coverage)``. ``accuracy`` has
    one row per method and label (``method`` "DeepREMAP", then those of
    ``baselines``, a dict ``{method: predictions}`` of other models'
    predictions of the same spectra, with ``L`` and optionally ``L_p16``,
    ``L_p84`` columns). ``training`` is a sentence on how the models were
    trained, added to the text.
    """
    import matplotlib.pyplot as plt

    from ..diagnostics import CalibrationDisplay, interval_coverage

    out = Path(out)
    labels = tuple(remap.bin_edges_)
    predictions = remap.predict(spectra)
    written = predictions.copy()
    for label in labels:
        written[f"{label}_true"] = truth[label]
    if names is not None:
        written.add_column(np.asarray(names, dtype=str), name="filename", index=0)
    written.write(out / "predictions.ecsv", overwrite=True)
    # the exact central intervals of the binned distributions (a Gaussian from L_err would
    # miss their wide tails at 95%)
    coverage = interval_coverage(remap.predict_proba(spectra), truth, levels=(0.68, 0.95))
    coverage.write(out / "coverage.ecsv", overwrite=True)
    accuracy = Table(names=("method", "label", "robust_scatter", "bias", "coverage_68", "n"),
                     dtype=(str, str, float, float, float, int))
    _accuracy_rows(accuracy, "DeepREMAP", predictions, truth, labels, coverage)
    for method, other in (baselines or {}).items():
        _accuracy_rows(accuracy, method, other, truth, labels)
    accuracy.write(out / "accuracy.ecsv", overwrite=True)

    calibrated = any(t != 1.0 for t in remap.temperatures_.values())
    members = getattr(remap, "members_", None)
    ridge = getattr(remap, "ridge_", None)
    report.heading(heading)
    report.paragraph(
        (f"An ensemble of {len(members)} residual 1-D CNNs, each trained with its own seed "
         f"(and pre-trained with its own, when it was), predicts {', '.join(labels)} as "
         "probabilities over label bins, the average of their log-probabilities "
         if members is not None else
         f"A residual 1-D CNN predicts {', '.join(labels)} as probabilities over label bins ")
        + "(focal loss with a distance-aware cost matrix, triplet embedding loss, cosine "
        "annealing with stochastic weight averaging)"
        + (", multiplied by the bin probabilities of a ridge regression of each label on the "
           "same spectra (a product of experts; the ridge expert's share is chosen per label "
           "on the held-out spectra)" if ridge is not None else "")
        + (", then temperature scaling calibrated the probabilities on held-out spectra "
           if calibrated else "; its probabilities were not calibrated ")
        + "(Gilda 2025). "
        + (f"{training} " if training else "")
        + "Robust scatter is 1.4826 times the median absolute deviation of the residuals; "
        "coverage is the fraction of stars whose true value lies inside the 68% and 95% "
        "credible intervals (ideally 0.68 and 0.95)."
    )
    if baselines:
        wins = _wins(accuracy, labels, baselines)
        report.paragraph(wins)
    report.table(accuracy, caption=f"Accuracy on {which}")
    report.table(coverage, caption="Interval coverage")
    display = CalibrationDisplay.from_estimator(remap, spectra, truth, labels=labels)
    display.plot()
    report.figure(display.figure_, "calibration", "Per label: reliability diagram (confidence "
                  "against accuracy of the most probable bin), coverage of central credible "
                  "intervals against their nominal level, and residuals against the truth.")
    plt.close(display.figure_)
    return predictions, accuracy, coverage


def _wins(accuracy, labels, baselines):
    """A sentence: in which labels DeepREMAP's robust scatter beats each baseline's."""
    sentences = []
    for method in baselines:
        better, worse = [], []
        for name in labels:
            mine = accuracy[(accuracy["method"] == "DeepREMAP") & (accuracy["label"] == name)]
            theirs = accuracy[(accuracy["method"] == method) & (accuracy["label"] == name)]
            if not (len(mine) and len(theirs)):
                continue
            a, b = float(mine["robust_scatter"][0]), float(theirs["robust_scatter"][0])
            (better if a < b else worse).append(f"{name} {a:.3g} against {b:.3g}")
        if better:
            sentences.append(f"DeepREMAP has a smaller robust scatter than {method} in "
                             + ", ".join(better) + ".")
        if worse:
            sentences.append(f"{method} does as well or better in " + ", ".join(worse) + ".")
    return " ".join(sentences)


def remap_truth(labels, names):
    """The true labels of a DeepREMAP as a QTable (NaN where missing)."""
    table = QTable()
    for name in names:
        unit = getattr(labels[name], "unit", None)
        values = label_values(labels, name)
        table[name] = values if unit is None else values * unit
    return table
