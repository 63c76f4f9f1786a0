import astropy.units as u
import numpy as np
import pytest
from astropy.table import QTable, Table

from stellarlatent.diagnostics import (
    expected_calibration_error,
    interval_coverage,
    negative_log_likelihood,
    reliability_curve,
)

from .conftest import make_remap_data


def dirichlet_problem(n=20000, n_classes=8, sharpen=1.0, seed=0):
    """Probabilities and true classes drawn from them (calibrated when sharpen=1).

    The reported probabilities are the true ones raised to ``sharpen`` and
    renormalised: ``sharpen > 1`` makes the model over-confident.
    """
    rng = np.random.default_rng(seed)
    true_proba = rng.dirichlet(np.full(n_classes, 0.5), size=n)
    cumulative = np.cumsum(true_proba, axis=1)
    y = (rng.uniform(size=(n, 1)) > cumulative).sum(axis=1)
    proba = true_proba**sharpen
    return proba / proba.sum(axis=1, keepdims=True), y


# --- ECE and reliability ------------------------------------------------------------


def test_ece_small_when_truth_follows_the_predictions():
    proba, y = dirichlet_problem()
    assert expected_calibration_error(proba, y) < 0.015


def test_ece_large_when_over_confident():
    proba, y = dirichlet_problem(sharpen=3.0)
    ece = expected_calibration_error(proba, y)
    assert ece > 0.1
    confidence, accuracy, counts = reliability_curve(proba, y)
    full = counts > 50
    assert np.all(accuracy[full][-3:] < confidence[full][-3:])


def test_reliability_curve_by_hand():
    proba = np.array([[0.95, 0.05], [0.85, 0.15], [0.55, 0.45], [0.3, 0.7]])
    confidence, accuracy, counts = reliability_curve(proba, [0, 1, 0, 1], n_bins=2)
    np.testing.assert_array_equal(counts, [0, 4])
    assert np.isnan(confidence[0]) and np.isnan(accuracy[0])
    assert confidence[1] == pytest.approx((0.95 + 0.85 + 0.55 + 0.7) / 4)
    assert accuracy[1] == pytest.approx(0.75)
    ece = expected_calibration_error(proba, [0, 1, 0, 1], n_bins=2)
    assert ece == pytest.approx(abs(0.75 - confidence[1]))


def test_values_with_edges_equal_indices_and_nan_is_dropped():
    proba, y = dirichlet_problem(n=3000)
    edges = np.linspace(3000.0, 7000.0, 9)
    centres = 0.5 * (edges[1:] + edges[:-1])
    values = centres[y]
    values[:100] = np.nan
    kept = slice(100, None)
    ece_values = expected_calibration_error(proba, values, bin_edges=edges)
    assert ece_values == pytest.approx(expected_calibration_error(proba[kept], y[kept]))
    _, _, counts = reliability_curve(proba, values, bin_edges=edges)
    assert counts.sum() == 2900
    # Quantity truths are converted to the unit of Quantity edges
    as_kk = expected_calibration_error(proba, values / 1000 * u.kK, bin_edges=edges * u.K)
    assert as_kk == pytest.approx(ece_values)


def test_values_outside_edges_go_to_edge_bins():
    proba = np.array([[0.1, 0.9], [0.9, 0.1]])
    nll = negative_log_likelihood(proba, [99.0, -99.0], bin_edges=[0, 1, 2])
    assert nll == pytest.approx(-np.log(0.9))


def test_all_nan_truth_gives_nan():
    proba = np.full((4, 2), 0.5)
    assert np.isnan(expected_calibration_error(proba, np.full(4, np.nan)))
    assert np.isnan(negative_log_likelihood(proba, np.full(4, np.nan)))


@pytest.mark.parametrize(
    "proba, y, kwargs, match",
    [
        (np.full(4, 0.25), [0], {}, "proba must be 2-D"),
        (np.full((2, 2), 0.4), [0, 1], {}, "proba rows must sum to 1; row 0 sums to 0.8"),
        (np.array([[1.5, -0.5], [0.5, 0.5]]), [0, 1], {}, "negative probabilities"),
        (np.array([[np.nan, 1.0], [0.5, 0.5]]), [0, 1], {}, "non-finite"),
        (np.full((2, 2), 0.5), [0, 2], {}, r"y_true must hold bin indices in \[0, 2\)"),
        (np.full((2, 2), 0.5), [0, 0.5], {}, "y_true must hold bin indices"),
        (np.full((2, 2), 0.5), [0, 1, 1], {}, "y_true has 3 values but proba has 2 rows"),
        (np.full((2, 2), 0.5), [0.5, 1.5], {"bin_edges": [0, 1]}, "bin_edges must be 1-D with"),
        (np.full((2, 2), 0.5), [0.5, 1.5], {"bin_edges": [0, 2, 1]}, "strictly increasing"),
        (np.full((2, 2), 0.5), [0, 1], {"n_bins": 0}, "n_bins must be a positive"),
    ],
)
def test_metric_validation_names_argument(proba, y, kwargs, match):
    with pytest.raises(ValueError, match=match):
        expected_calibration_error(proba, y, **kwargs)


def test_unit_mismatch_is_an_error():
    with pytest.raises(u.UnitsError, match="y_true has unit 'dex'"):
        reliability_curve(np.full((2, 2), 0.5), [1, 2] * u.dex, bin_edges=[0, 1, 2] * u.K)


# --- negative log-likelihood --------------------------------------------------------


def test_nll_of_uniform_proba_is_log_n_bins():
    rng = np.random.default_rng(1)
    proba = np.full((50, 16), 1 / 16)
    assert negative_log_likelihood(proba, rng.integers(0, 16, 50)) == pytest.approx(np.log(16))


def test_nll_clips_zero_probability():
    proba = np.array([[1.0, 0.0], [1.0, 0.0]])
    assert negative_log_likelihood(proba, [0, 1], eps=1e-6) == pytest.approx(-np.log(1e-6) / 2)


def test_nll_per_label_from_predict_proba(fake_remap):
    X, truth = make_remap_data(n=500)
    proba = fake_remap.predict_proba(X)
    table = negative_log_likelihood(proba, truth)
    assert table["label"].tolist() == ["teff", "logg"]
    p, edges = proba["teff"]
    expected = negative_log_likelihood(p, truth["teff"].value, bin_edges=edges)
    assert table["nll"][0] == pytest.approx(expected)
    assert table["n"].tolist() == [500, 500]
    # a wrong model costs more than the calibrated one
    sharper = make_remap_data(n=500, truth_scale=3.0)[1]
    assert negative_log_likelihood(proba, sharper)["nll"][0] > table["nll"][0]


# --- interval coverage --------------------------------------------------------------


def gaussian_table(n=20000, scale=1.0, seed=3):
    rng = np.random.default_rng(seed)
    mean = rng.normal(5500.0, 500.0, n)
    err = rng.uniform(50.0, 200.0, n)
    table = QTable(
        {
            "teff": mean * u.K,
            "teff_err": err * u.K,
            "teff_p16": (mean - err) * u.K,
            "teff_p84": (mean + err) * u.K,
        }
    )
    truth = mean + scale * err * rng.normal(size=n)
    return table, truth


def test_coverage_matches_nominal_on_gaussian_data():
    table, truth = gaussian_table()
    levels = (0.5, 0.68, 0.9, 0.95, 0.99)
    result = interval_coverage(table, {"teff": truth * u.K}, levels=levels)
    assert result.colnames == [
        "label", "n", "coverage_50", "coverage_68", "coverage_90", "coverage_95", "coverage_99",
    ]
    assert result["label"][0] == "teff" and result["n"][0] == 20000
    for level in levels:
        assert result[f"coverage_{100 * level:g}"][0] == pytest.approx(level, abs=0.012)
    assert result.meta["method"] == "table"


def test_coverage_shows_over_confidence():
    table, truth = gaussian_table(scale=2.0)
    result = interval_coverage(table, truth)  # a 1-D array for a single label
    assert result["coverage_68"][0] < 0.45
    assert result["coverage_95"][0] < 0.75


def test_coverage_uses_percentile_columns_for_68():
    table, truth = gaussian_table(n=2000)
    table["teff_p16"] = table["teff"] - 10 * table["teff_err"]  # absurdly wide
    table["teff_p84"] = table["teff"] + 10 * table["teff_err"]
    result = interval_coverage(table, truth, levels=(0.68, 0.6827, 0.7))
    assert result["coverage_68"][0] == 1.0
    assert result["coverage_68.27"][0] == 1.0
    assert result["coverage_70"][0] < 0.8  # Gaussian from teff_err


def sample_binned(proba, edges, rng):
    """Draw one value per row from a binned distribution (uniform inside each bin)."""
    cumulative = np.cumsum(proba, axis=1)
    k = np.minimum((rng.uniform(size=(len(proba), 1)) > cumulative).sum(axis=1), len(edges) - 2)
    return edges[k] + rng.uniform(size=len(proba)) * (edges[k + 1] - edges[k])


def test_coverage_from_binned_proba_is_exact(fake_remap):
    X, _ = make_remap_data(n=6000)
    proba = fake_remap.predict_proba(X)
    rng = np.random.default_rng(7)
    truth = {label: sample_binned(p, edges, rng) for label, (p, edges) in proba.items()}
    result = interval_coverage(proba, truth, levels=(0.5, 0.68, 0.95))
    assert result.meta["method"] == "binned_cdf"
    for row in result:
        for level in (0.5, 0.68, 0.95):
            assert row[f"coverage_{100 * level:g}"] == pytest.approx(level, abs=0.02)
    _, wide = make_remap_data(n=6000, truth_scale=2.0)
    worse = interval_coverage(proba, wide, levels=(0.68,))
    assert np.all(worse["coverage_68"] < 0.45)


def test_binned_cdf_quantiles_by_hand():
    # one sample, uniform over [0, 4] in four bins: the central 50 % interval is [1, 3]
    proba = {"x": (np.full((1, 4), 0.25), np.arange(5.0))}
    inside = interval_coverage(proba, {"x": [2.9]}, levels=(0.5,))
    outside = interval_coverage(proba, {"x": [3.1]}, levels=(0.5,))
    beyond = interval_coverage(proba, {"x": [7.0]}, levels=(0.99,))
    assert inside["coverage_50"][0] == 1.0
    assert outside["coverage_50"][0] == 0.0
    assert beyond["coverage_99"][0] == 0.0


def test_coverage_units_and_nan(fake_remap):
    X, truth = make_remap_data(n=3000)
    predictions = fake_remap.predict(X)
    base = interval_coverage(predictions, truth)
    truth_kk = QTable({"teff": truth["teff"].to(u.kK), "logg": truth["logg"]})
    np.testing.assert_allclose(interval_coverage(predictions, truth_kk)["coverage_68"],
                               base["coverage_68"])
    plain = Table({"teff": truth["teff"].value, "logg": truth["logg"].value})
    np.testing.assert_allclose(interval_coverage(predictions, plain)["coverage_95"],
                               base["coverage_95"])
    holes = truth.copy()
    holes["logg"][::2] = np.nan * u.dex
    with_nan = interval_coverage(predictions, holes)
    assert with_nan["n"].tolist() == [3000, 1500]
    assert with_nan["coverage_68"][1] == pytest.approx(0.68, abs=0.04)
    wrong = QTable({"teff": truth["teff"].value * u.dex, "logg": truth["logg"]})
    with pytest.raises(u.UnitsError, match=r"truth\['teff'\] has unit 'dex'"):
        interval_coverage(predictions, wrong)


def test_coverage_validation(fake_remap):
    X, truth = make_remap_data(n=50)
    predictions = fake_remap.predict(X)
    with pytest.raises(ValueError, match="levels must be probabilities"):
        interval_coverage(predictions, truth, levels=(0.68, 1.0))
    with pytest.raises(TypeError, match="predictions must be the QTable"):
        interval_coverage(np.zeros((50, 2)), truth)
    with pytest.raises(ValueError, match="truth must be a table or dict"):
        interval_coverage(predictions, truth["teff"].value)
    with pytest.raises(ValueError, match="predictions needs a column 'teff_err'"):
        interval_coverage(predictions[["teff", "teff_p16", "teff_p84"]], truth, levels=(0.9,))
    with pytest.raises(ValueError, match=r"truth\['teff'\] has 3 values"):
        interval_coverage(predictions, {"teff": [1.0, 2.0, 3.0], "logg": truth["logg"]})
