"""Calibration figure of a probabilistic label predictor such as deep-REMAP."""

import numpy as np
from astropy.table import Table

from ._labels import _column_values, label_values
from ._plotting import axes_grid, axis_label, store_arguments
from .calibration import (
    _prediction_labels,
    expected_calibration_error,
    interval_coverage,
    reliability_curve,
)

__all__ = ["CalibrationDisplay"]

_DEFAULT_LEVELS = np.round(np.linspace(0.05, 0.95, 19), 2)


class CalibrationDisplay:
    """Reliability diagram, interval coverage and residuals, per label.

    Build it with `from_estimator` or `from_predictions`, then call `plot`.

    Parameters
    ----------
    labels : list of str
    truth, predicted, error : dict
        By label: true values, predicted values and predicted standard
        deviations (`None` when unknown), in ``units[label]``.
    units : dict
        By label: unit of the prediction, or `None`.
    reliability : dict
        By label: ``(mean_confidence, accuracy, counts)`` of
        `~stellarlatent.diagnostics.reliability_curve`, or `None` without
        probabilities.
    ece : dict
        By label: expected calibration error (NaN without probabilities).
    levels : ndarray
        Nominal credible levels of the coverage curve.
    coverage : dict
        By label: empirical coverage at ``levels``.

    Attributes
    ----------
    figure_ : `~matplotlib.figure.Figure`
    axes_ : ndarray of `~matplotlib.axes.Axes`, shape (n_labels, n_panels)
        One row per label; the columns are ``panels_``.
    panels_ : list of str
        ``["reliability", "coverage", "residuals"]`` (without
        ``"reliability"`` when no label has probabilities).

    Examples
    --------
    >>> import numpy as np
    >>> from astropy.table import QTable
    >>> from stellarlatent.diagnostics import CalibrationDisplay
    >>> rng = np.random.default_rng(0)
    >>> truth = {"feh": rng.uniform(-2, 0.5, 500)}
    >>> predictions = QTable({"feh": truth["feh"] + rng.normal(0, 0.1, 500),
    ...                       "feh_err": np.full(500, 0.1)})
    >>> display = CalibrationDisplay.from_predictions(predictions, truth)
    >>> round(float(display.coverage["feh"][12]), 1)  # nominal 0.65
    0.7
    """

    def __init__(
        self, labels, truth, predicted, error, units, reliability, ece, levels, coverage
    ):
        store_arguments(self, locals())

    @classmethod
    def from_estimator(cls, remap, X, y, labels=None, **kwargs):
        """Predict ``X`` with a fitted estimator and compare with the truth ``y``.

        Parameters
        ----------
        remap : estimator
            A fitted `~stellarlatent.estimators.DeepREMAP` (anything with
            ``predict(X) -> QTable``, ``predict_proba(X) -> dict`` and
            ``labels``).
        X : `~specutils.Spectrum` or array-like
            Spectra.
        y : `~astropy.table.Table` or dict
            True labels of the spectra.
        labels : sequence of str, default=None
            Labels to show (default ``remap.labels``).
        **kwargs
            Passed to `from_predictions`.

        Returns
        -------
        `CalibrationDisplay`
        """
        predictions = remap.predict(X)
        proba = remap.predict_proba(X) if hasattr(remap, "predict_proba") else None
        if labels is None:
            labels = getattr(remap, "labels", None)
        return cls.from_predictions(predictions, y, proba=proba, labels=labels, **kwargs)

    @classmethod
    def from_predictions(
        cls, predictions, truth, proba=None, labels=None, n_bins=10, levels=_DEFAULT_LEVELS
    ):
        """Compare predictions with the truth.

        Parameters
        ----------
        predictions : `~astropy.table.QTable`
            Table of ``predict``: for each label ``L`` the columns ``L`` and
            ``L_err`` (``L_p16`` and ``L_p84`` optional).
        truth : `~astropy.table.Table`, dict or array-like
            True labels (a 1-D array for a single label); Quantities are
            converted to the prediction's unit; NaN values are dropped.
        proba : dict, default=None
            ``{label: (proba, bin_edges)}`` of ``predict_proba``; it gives the
            reliability diagram and the exact coverage of the binned
            distribution. Without it coverage uses Gaussian intervals from
            ``L_err``.
        labels : sequence of str, default=None
            Labels to show (default every label of ``predictions``).
        n_bins : int
            Confidence intervals of the reliability diagram.
        levels : array-like
            Nominal levels of the coverage curve.

        Returns
        -------
        `CalibrationDisplay`
        """
        if not isinstance(predictions, Table):
            raise TypeError(
                f"predictions must be the QTable of predict(), got {type(predictions).__name__}"
            )
        if proba is not None and not isinstance(proba, dict):
            raise TypeError(
                f"proba must be the dict of predict_proba() or None, got {type(proba).__name__}"
            )
        labels = _prediction_labels(predictions, labels)
        levels = np.atleast_1d(np.asarray(levels, dtype=float))
        truth_, predicted, error, units = {}, {}, {}, {}
        reliability, ece, coverage = {}, {}, {}
        n = len(predictions)
        for label in labels:
            if label not in predictions.colnames:
                raise ValueError(f"predictions has no column '{label}'")
            predicted[label], units[label] = _column_values(
                predictions[label], f"predictions['{label}']"
            )
            truth_[label] = label_values(truth, label, n, unit=units[label], name="truth")
            error[label] = None
            if f"{label}_err" in predictions.colnames:
                values, unit = _column_values(
                    predictions[f"{label}_err"], f"predictions['{label}_err']"
                )
                if unit is not None and units[label] is not None and unit != units[label]:
                    values = (values * unit).to_value(units[label])
                error[label] = values
            reliability[label], ece[label] = None, float("nan")
            source = predictions
            if proba is not None and label in proba:
                p, edges = proba[label]
                y = label_values(
                    truth, label, n, unit=getattr(edges, "unit", None), name="truth"
                )
                reliability[label] = reliability_curve(p, y, edges, n_bins=n_bins)
                ece[label] = expected_calibration_error(p, y, edges, n_bins=n_bins)
                source = proba
            row = interval_coverage(source, truth, levels=levels, labels=[label])[0]
            coverage[label] = np.array([row[name] for name in row.colnames[2:]], dtype=float)
        return cls(
            labels, truth_, predicted, error, units, reliability, ece, levels, coverage
        )

    def plot(self, *, ax=None, axes=None):
        """Draw one row of panels per label.

        Parameters
        ----------
        ax : array of `~matplotlib.axes.Axes`, default=None
            ``n_labels * n_panels`` axes in row-major order; a new figure when
            `None`.
        axes : array of `~matplotlib.axes.Axes`, default=None
            The former name of ``ax``; give one of them.

        Returns
        -------
        self
        """
        if ax is not None and axes is not None:
            raise TypeError("give ax or axes (its former name), not both")
        name = "axes" if axes is not None else "ax"
        axes = ax if axes is None else axes
        panels = ["coverage", "residuals"]
        if any(r is not None for r in self.reliability.values()):
            panels.insert(0, "reliability")
        fig, grid = axes_grid(axes, len(self.labels), len(panels), name=name)
        for row, label in zip(grid, self.labels):
            for panel, kind in zip(row, panels):
                getattr(self, f"_plot_{kind}")(panel, label)
        self.figure_, self.axes_, self.panels_ = fig, grid, panels
        return self

    def _plot_reliability(self, ax, label):
        ax.plot([0, 1], [0, 1], color="k", ls="--", lw=1)
        ax.set_xlim(0, 1)
        ax.set_ylim(0, 1)
        ax.set_xlabel("confidence")
        ax.set_ylabel("accuracy")
        if self.reliability[label] is None:
            ax.set_title(f"{label}: no probabilities")
            return
        confidence, accuracy, counts = self.reliability[label]
        full = counts > 0
        ax.plot(confidence[full], accuracy[full], marker="o", color="C0")
        ax.set_title(f"{label} (ECE = {self.ece[label]:.3f})")

    def _plot_coverage(self, ax, label):
        ax.plot([0, 1], [0, 1], color="k", ls="--", lw=1)
        ax.plot(self.levels, self.coverage[label], marker=".", color="C1")
        ax.set_xlim(0, 1)
        ax.set_ylim(0, 1)
        ax.set_xlabel("nominal coverage")
        ax.set_ylabel("empirical coverage")
        ax.set_title(label)

    def _plot_residuals(self, ax, label):
        truth, predicted, error = self.truth[label], self.predicted[label], self.error[label]
        ok = np.isfinite(truth) & np.isfinite(predicted)
        ax.errorbar(
            truth[ok],
            predicted[ok] - truth[ok],
            yerr=None if error is None else error[ok],
            fmt=".",
            ms=3,
            color="C2",
            ecolor="0.6",
            elinewidth=0.6,
        )
        ax.axhline(0.0, color="k", lw=1)
        unit = self.units[label]
        ax.set_xlabel(axis_label(f"true {label}", unit))
        ax.set_ylabel(axis_label("predicted - true", unit))
        ax.set_title(label)
