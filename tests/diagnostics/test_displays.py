import astropy.units as u
import numpy as np
import pytest
from astropy.table import QTable
from matplotlib.collections import LineCollection
from matplotlib.figure import Figure

from stellarlatent.diagnostics import (
    CalibrationDisplay,
    DisentanglementReport,
    LatentTraversalDisplay,
    interval_coverage,
)

from .conftest import make_remap_data

# --- calibration --------------------------------------------------------------------


def test_calibration_display_from_estimator(fake_remap):
    X, truth = make_remap_data(n=2000)
    display = CalibrationDisplay.from_estimator(fake_remap, X, truth)
    assert display.labels == ["teff", "logg"]
    assert display.units == {"teff": u.K, "logg": u.dex}
    assert all(display.ece[k] < 0.05 for k in display.labels)
    expected = interval_coverage(fake_remap.predict_proba(X), truth, levels=display.levels)
    np.testing.assert_allclose(display.coverage["logg"], list(expected[1])[2:])
    assert display.plot() is display
    assert display.axes_.shape == (2, 3)
    assert display.panels_ == ["reliability", "coverage", "residuals"]
    for row in display.axes_:
        reliability, coverage, residuals = row
        assert len(reliability.lines) == 2  # diagonal and curve
        assert len(coverage.lines) == 2
        assert len(residuals.containers) == 1  # the error bars
        assert any(isinstance(c, LineCollection) for c in residuals.collections)
    points = display.axes_[0, 2].containers[0].lines[0]
    np.testing.assert_allclose(points.get_xdata(), truth["teff"].value)
    assert "ECE" in display.axes_[0, 0].get_title()
    assert display.axes_[0, 2].get_xlabel() == "true teff [K]"


def test_calibration_display_without_proba_and_given_axes(fake_remap):
    import matplotlib.pyplot as plt

    X, truth = make_remap_data(n=300)
    predictions = fake_remap.predict(X)
    display = CalibrationDisplay.from_predictions(predictions, truth, labels=["logg"])
    assert display.reliability == {"logg": None}
    assert np.isnan(display.ece["logg"])
    fig, axes = plt.subplots(1, 2)
    display.plot(ax=axes)
    assert display.figure_ is fig
    assert display.panels_ == ["coverage", "residuals"]
    with pytest.raises(ValueError, match=r"axes must be None or 2 matplotlib Axes"):
        display.plot(axes=axes[:1])
    with pytest.raises(ValueError, match=r"ax must be None or 2 matplotlib Axes"):
        display.plot(ax=axes[:1])
    with pytest.raises(TypeError, match="not both"):
        display.plot(ax=axes, axes=axes)


def test_display_plots_take_ax_by_keyword_only():
    import inspect

    from stellarlatent.diagnostics import (
        BetaSweepDisplay,
        CalibrationDisplay,
        DisentanglementReport,
        LatentTraversalDisplay,
    )

    methods = [BetaSweepDisplay.plot, CalibrationDisplay.plot, LatentTraversalDisplay.plot,
               DisentanglementReport.plot_mad, DisentanglementReport.plot_mutual_information]
    for method in methods:
        ax = inspect.signature(method).parameters["ax"]
        assert ax.kind is inspect.Parameter.KEYWORD_ONLY, method.__qualname__


def test_calibration_display_errors_and_missing_truth(fake_remap):
    X, truth = make_remap_data(n=200)
    predictions = fake_remap.predict(X)
    holes = truth.copy()
    holes["teff"][:50] = np.nan * u.K
    display = CalibrationDisplay.from_predictions(
        predictions, holes, proba=fake_remap.predict_proba(X)
    ).plot()
    assert display.reliability["teff"][2].sum() == 150
    points = display.axes_[0, 2].containers[0].lines[0]
    assert len(points.get_xdata()) == 150
    with pytest.raises(TypeError, match="predictions must be the QTable"):
        CalibrationDisplay.from_predictions({"teff": 1}, truth)
    with pytest.raises(TypeError, match="proba must be the dict"):
        CalibrationDisplay.from_predictions(predictions, truth, proba=np.zeros(3))
    with pytest.raises(ValueError, match="predictions has no column 'feh'"):
        CalibrationDisplay.from_predictions(predictions, truth, labels=["feh"])


# --- traversals ---------------------------------------------------------------------


def test_traversal_display_from_estimator_follows_the_decoder(fake_vae, latent_data):
    X, _, _ = latent_data
    values = np.linspace(-2, 2, 5)
    display = LatentTraversalDisplay.from_estimator(fake_vae, X[0], dims=[0, 1], values=values)
    assert display.dims == [0, 1]
    for d in (0, 1):
        flux = display.traversals[d]
        assert flux.shape == (5, fake_vae.W.shape[1])
        np.testing.assert_allclose(flux[-1] - flux[0], 4.0 * fake_vae.W[d], atol=1e-10)
        np.testing.assert_array_equal(display.values[d], values)
    display.plot()
    assert display.axes_.shape == (1, 2)
    assert [len(display.axes_[0, i].lines) for i in range(2)] == [5, 5]
    assert len(display.lines_[1]) == 5
    colors = [line.get_color() for line in display.lines_[0]]
    assert len({tuple(np.round(c, 6)) for c in colors}) == 5
    assert display.colorbar_ is not None
    assert display.axes_[0, 0].get_xlabel() == "spectral axis [Angstrom]"


def test_traversal_scaled_by_mad_and_default_dims(fake_vae, latent_data):
    X, Z, _ = latent_data
    display = LatentTraversalDisplay.from_estimator(
        fake_vae, X[0], values=[-1.0, 0.0, 1.0], scale="mad", latents=Z
    )
    assert display.dims == [0, 1]  # the informative ones
    centre = np.median(Z[:, 1])
    mad = np.median(np.abs(Z[:, 1] - centre))
    np.testing.assert_allclose(display.values[1], [centre - mad, centre, centre + mad])
    display.plot(kind="difference", ncols=1)
    assert display.axes_.shape == (2, 1)
    np.testing.assert_allclose(display.lines_[0][1].get_ydata(), 0.0, atol=1e-12)


def test_traversal_errors(fake_vae, latent_data):
    X, _, _ = latent_data
    with pytest.raises(ValueError, match="scale='mad' needs latents"):
        LatentTraversalDisplay.from_estimator(fake_vae, X[0], scale="mad")
    with pytest.raises(ValueError, match=r"dims must be in \[0, 4\)"):
        LatentTraversalDisplay.from_estimator(fake_vae, X[0], dims=[4])
    with pytest.raises(ValueError, match="values must be a non-empty 1-D"):
        LatentTraversalDisplay.from_estimator(fake_vae, X[0], values=[np.nan])

    class Short(type(fake_vae)):
        def traverse(self, x, dim, values):
            return super().traverse(x, dim, values[:-1])

    with pytest.raises(ValueError, match=r"returned 6 spectra; expected one per value \(7\)"):
        LatentTraversalDisplay.from_estimator(Short(), X[0], dims=[0])


def test_traversal_from_predictions_with_range_and_flipped_axis():
    wave = np.linspace(6000.0, 5000.0, 101) * u.AA  # decreasing: flipped on the way in
    flux = np.tile(np.linspace(0, 1, 101), (3, 1))
    display = LatentTraversalDisplay.from_predictions(
        wave, {2: flux * u.Jy}, {2: [-1.0, 0.0, 1.0]}, spectral_range=[5200, 5400] * u.AA
    )
    np.testing.assert_allclose(display.traversals[2][0, 0], 1.0)  # was at 6000 A, now last
    assert display.flux_unit == u.Jy
    display.plot(colorbar=False)
    x = display.lines_[2][0].get_xdata()
    assert x.min() >= 5200 and x.max() <= 5400 and x.size == 21
    assert display.colorbar_ is None
    with pytest.raises(ValueError, match=r"traversals\[0\] must have shape"):
        LatentTraversalDisplay.from_predictions(wave, {0: flux[:, :10]}, [-1.0, 0.0, 1.0])
    with pytest.raises(ValueError, match="values has no entry for dimension 0"):
        LatentTraversalDisplay.from_predictions(wave, {0: flux}, {1: [0.0, 1.0, 2.0]})
    with pytest.raises(TypeError, match="spectral_axis must be an astropy Quantity"):
        LatentTraversalDisplay.from_predictions(wave.value, {0: flux}, [0.0, 1.0, 2.0])
    narrow = LatentTraversalDisplay.from_predictions(
        wave, {0: flux}, [0.0, 1.0, 2.0], spectral_range=[5201, 5202] * u.AA
    )
    with pytest.raises(ValueError, match="spectral_range"):
        narrow.plot()


# --- disentanglement report figures --------------------------------------------------


def test_report_figures(fake_vae, latent_data):
    X, _, labels = latent_data
    report = DisentanglementReport.from_estimator(fake_vae, X, labels, dims="all")
    ax = report.plot_mad()
    assert len(ax.patches) == 4
    assert ax.get_yscale() == "log"
    ax = report.plot_mutual_information()
    assert len(ax.images) == 1
    assert ax.images[0].get_array().shape == (4, 3)
    assert len(ax.texts) == 12
    np.testing.assert_allclose(np.nanmax(ax.images[0].get_array(), axis=1), 1.0)
    ax = report.plot_mutual_information(normalize="nmi", annotate=False)
    assert len(ax.texts) == 0
    # each label's chance level under its name; the cells at or below it hatched
    chance = [report.chance_level(k, among="all") for k in report.label_names]
    assert [t.get_text() for t in ax.get_xticklabels()] == [
        f"{k}\n{c:.2f}" for k, c in zip(report.label_names, chance)]
    assert ax.get_xlabel() == "label (its chance level)"
    nmi = report.normalized_mutual_information
    hatched = {(int(round(p.get_y() + 0.5)), int(round(p.get_x() + 0.5))) for p in ax.patches}
    assert hatched == {(i, j) for i in range(4) for j, k in enumerate(report.label_names)
                       if not nmi[k][i] > chance[j]}
    assert (0, 0) not in hatched and (1, 1) not in hatched  # the teff and log g latents
    assert (2, 0) in hatched and (3, 0) in hatched
    fig = report.plot_pairwise("teff")
    assert isinstance(fig, Figure)
    visible = [a for a in fig.axes if a.get_visible()]
    assert len(visible) == 3 + 1  # two histograms, one scatter, the colour bar
    display = report.plot_traversals(X[0], values=[-1.0, 1.0])
    assert isinstance(display, LatentTraversalDisplay)
    assert display.dims == [0, 1]
    with pytest.raises(ValueError, match="label must be one of"):
        report.plot_pairwise("rv")
    with pytest.raises(ValueError, match="normalize must be"):
        report.plot_mutual_information(normalize="entropy")


def test_report_without_labels_has_what_needs_none(fake_vae, latent_data):
    X, _, labels = latent_data
    report = DisentanglementReport.from_estimator(fake_vae, X, None)
    labelled = DisentanglementReport.from_estimator(fake_vae, X, labels)
    assert report.label_names == [] and "labels: none" in repr(report)
    np.testing.assert_array_equal(report.informative, labelled.informative)
    np.testing.assert_allclose(report.mad, labelled.mad)
    assert report.mutual_information.colnames == ["dim"]
    assert report.relative_mutual_information.colnames == ["dim"]
    assert report.mutual_information["dim"].tolist() == [0, 1]
    summary = report.summary
    assert summary.colnames == ["dim", "mad"] and summary["dim"].tolist() == [1, 0]
    assert report.verdict == list(labelled.dependence.verdict())
    assert len(report.dependence_table) == 1
    assert len(report.plot_mad().patches) == 4
    fig = report.plot_pairwise(None)
    assert len([a for a in fig.axes if a.get_visible()]) == 3  # no colour bar
    assert report.plot_traversals(X[0], values=[-1.0, 1.0]).dims == [0, 1]
    with pytest.raises(ValueError, match="made without labels"):
        report.plot_mutual_information()
    with pytest.raises(ValueError, match="label must be one of"):
        report.plot_pairwise("teff")


def test_report_traversals_need_an_estimator(latent_data):
    _, Z, labels = latent_data
    report = DisentanglementReport.from_latents(Z, labels)
    with pytest.raises(ValueError, match="vae is required"):
        report.plot_traversals(np.ones(80))


def test_calibration_display_accepts_quantity_edges(fake_remap):
    X, truth = make_remap_data(n=500)
    proba = {k: (p, e * fake_remap.units[k]) for k, (p, e) in fake_remap.predict_proba(X).items()}
    truth_kk = QTable({"teff": truth["teff"].to(u.kK), "logg": truth["logg"]})
    a = CalibrationDisplay.from_predictions(fake_remap.predict(X), truth_kk, proba=proba)
    b = CalibrationDisplay.from_predictions(
        fake_remap.predict(X), truth, proba=fake_remap.predict_proba(X)
    )
    assert a.ece["teff"] == pytest.approx(b.ece["teff"])
    np.testing.assert_allclose(a.coverage["teff"], b.coverage["teff"])
