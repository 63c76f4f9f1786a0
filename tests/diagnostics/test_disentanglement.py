import logging

import astropy.units as u
import numpy as np
import pytest
from astropy.table import MaskedColumn, QTable, Table
from scipy.stats import median_abs_deviation, pearsonr, spearmanr

from stellarlatent.diagnostics import (
    DisentanglementReport,
    informative_dimensions,
    latent_correlation,
    latent_mad,
    mutual_information,
)
from stellarlatent.diagnostics.disentanglement import PAPER_BINS


def reference_mi(z, y, bins):
    """Plug-in mutual information from numpy's 2-D histogram, averaged over bin counts."""
    values = []
    for b in bins:
        counts, _, _ = np.histogram2d(z, y, bins=b)
        p = counts / counts.sum()
        outer = p.sum(axis=1, keepdims=True) * p.sum(axis=0, keepdims=True)
        nz = p > 0
        values.append(np.sum(p[nz] * np.log(p[nz] / outer[nz])))
    return np.mean(values)


# --- MAD and informative dimensions -------------------------------------------------


def test_latent_mad_matches_scipy_and_ignores_nan():
    rng = np.random.default_rng(0)
    Z = rng.normal(scale=[1.0, 0.01, 3.0], size=(200, 3))
    expected = median_abs_deviation(Z, axis=0, scale=1.0)
    np.testing.assert_allclose(latent_mad(Z), expected)
    Z_nan = np.vstack([Z, [np.nan, np.nan, np.nan]])
    np.testing.assert_allclose(latent_mad(Z_nan), expected)


def test_informative_dimensions_finds_the_known_latents(latent_data):
    _, Z, _ = latent_data
    np.testing.assert_array_equal(informative_dimensions(Z), [0, 1])
    np.testing.assert_array_equal(informative_dimensions(Z, threshold=0.9), [1])
    assert informative_dimensions(Z, threshold=100).size == 0


@pytest.mark.parametrize(
    "Z, match",
    [(np.zeros(5), "Z must be 2-D"), (np.zeros((0, 3)), "Z is empty"), ("abc", "Z must be")],
)
def test_latent_validation_names_argument(Z, match):
    with pytest.raises((ValueError, TypeError), match=match):
        latent_mad(Z)


def test_threshold_validation():
    for bad in (-1, "x", None, True):
        with pytest.raises(ValueError, match="threshold must be a finite non-negative number"):
            informative_dimensions(np.zeros((3, 2)), threshold=bad)


# --- mutual information -------------------------------------------------------------


def test_histogram_mi_matches_numpy_histogram2d(latent_data):
    _, Z, labels = latent_data
    table = mutual_information(Z, labels, normalize=False)
    assert table.colnames == ["dim", "teff", "logg", "feh"]  # 'name' skipped
    feh = labels["feh"].value
    valid = np.isfinite(feh)
    for j in range(Z.shape[1]):
        assert table["teff"][j] == pytest.approx(
            reference_mi(Z[:, j], labels["teff"].value, PAPER_BINS), rel=1e-10
        )
        assert table["feh"][j] == pytest.approx(
            reference_mi(Z[valid, j], feh[valid], PAPER_BINS), rel=1e-10
        )
    assert table.meta["n_samples"] == {"teff": 1500, "logg": 1500, "feh": int(valid.sum())}
    assert table.meta["bins"] == list(PAPER_BINS)


def test_mi_finds_what_each_latent_carries(latent_data):
    _, Z, labels = latent_data
    nmi = mutual_information(Z, labels, normalize="entropy")
    labels_names = ["teff", "logg", "feh"]
    values = np.column_stack([nmi[k] for k in labels_names])
    assert labels_names[int(np.argmax(values[0]))] == "teff"
    assert labels_names[int(np.argmax(values[1]))] == "logg"
    assert np.all((values >= 0) & (values <= 1))
    # comparable between latents: the informative latent carries Teff best
    assert int(np.argmax(nmi["teff"])) == 0
    assert nmi["teff"][0] > 2 * nmi["teff"][2]


def test_row_max_normalisation(latent_data):
    _, Z, labels = latent_data
    raw = mutual_information(Z, labels, normalize=False)
    scaled = mutual_information(Z, labels, normalize=True)
    values = np.column_stack([raw[k] for k in ("teff", "logg", "feh")])
    rescaled = np.column_stack([scaled[k] for k in ("teff", "logg", "feh")])
    np.testing.assert_allclose(rescaled, values / values.max(axis=1, keepdims=True))
    np.testing.assert_allclose(rescaled.max(axis=1), 1.0)
    assert scaled.meta["normalize"] == "max"


def test_histogram_mi_is_invariant_to_affine_label_changes():
    rng = np.random.default_rng(3)
    y = rng.normal(size=800)
    Z = np.column_stack([y + rng.normal(0, 0.3, 800), rng.normal(size=800)])
    a = mutual_information(Z, {"y": y}, normalize=False)["y"]
    b = mutual_information(Z, {"y": 1e3 * y + 7}, normalize=False)["y"]
    np.testing.assert_allclose(a, b, rtol=1e-8)


def test_ksg_mi_and_linfoot_scale(latent_data):
    _, Z, labels = latent_data
    table = mutual_information(Z, labels, method="ksg", normalize="linfoot", random_state=0)
    assert table["teff"][0] > 0.9
    assert table["logg"][1] > 0.9
    assert table["teff"][2] < 0.35
    again = mutual_information(Z, labels, method="ksg", normalize="linfoot", random_state=0)
    np.testing.assert_array_equal(table["teff"], again["teff"])
    with pytest.raises(ValueError, match="normalize='entropy' needs method='histogram'"):
        mutual_information(Z, labels, method="ksg", normalize="entropy")


def test_ksg_linfoot_equals_abs_correlation_for_gaussians():
    rng = np.random.default_rng(4)
    rho = 0.8
    y = rng.normal(size=4000)
    z = rho * y + np.sqrt(1 - rho**2) * rng.normal(size=4000)
    table = mutual_information(z[:, None], {"y": y}, method="ksg", normalize="linfoot",
                               random_state=0)
    assert table["y"][0] == pytest.approx(rho, abs=0.03)


def test_sigma_clip_removes_outliers_that_ruin_the_histogram():
    rng = np.random.default_rng(5)
    y = rng.normal(size=2000)
    z = y + rng.normal(0, 0.1, 2000)
    y_bad = y.copy()
    y_bad[:10] = 1e6  # a few absurd labels squeeze everything into one bin
    kwargs = dict(normalize="entropy", bins=(10, 20))
    clean = mutual_information(z[:, None], {"y": y}, **kwargs)["y"][0]
    ruined = mutual_information(z[:, None], {"y": y_bad}, **kwargs)["y"][0]
    clipped = mutual_information(z[:, None], {"y": y_bad}, sigma_clip=3.0, **kwargs)["y"][0]
    assert ruined < 0.1 * clean
    assert clipped == pytest.approx(clean, rel=0.15)
    ksg = mutual_information(z[:, None], {"y": y_bad}, method="ksg", sigma_clip=3.0,
                             normalize=False, random_state=0)
    assert ksg["y"][0] > 1.0


def test_label_containers_agree(latent_data):
    _, Z, labels = latent_data
    from_table = mutual_information(Z, labels, names=["teff", "logg"])
    plain = Table({"teff": labels["teff"].value, "logg": labels["logg"].value})
    from_dict = mutual_information(Z, {"teff": labels["teff"], "logg": labels["logg"]})
    array = np.column_stack([labels["teff"].value, labels["logg"].value])
    from_array = mutual_information(Z, array, names=["teff", "logg"])
    for other in (mutual_information(Z, plain), from_dict, from_array):
        assert other.colnames == ["dim", "teff", "logg"]
        for key in ("teff", "logg"):
            np.testing.assert_allclose(other[key], from_table[key])
    default_names = mutual_information(Z, array)
    assert default_names.colnames == ["dim", "label_0", "label_1"]


def test_masked_labels_are_dropped_per_label(latent_data):
    _, Z, labels = latent_data
    feh = labels["feh"].value
    masked = Table({"feh": MaskedColumn(np.nan_to_num(feh), mask=~np.isfinite(feh))})
    a = mutual_information(Z, masked, normalize=False)
    b = mutual_information(Z, {"feh": feh}, normalize=False)
    np.testing.assert_allclose(a["feh"], b["feh"])
    assert a.meta["n_samples"]["feh"] == int(np.isfinite(feh).sum())


def test_too_few_labels_give_nan(latent_data, caplog):
    _, Z, _ = latent_data
    y = np.full(Z.shape[0], np.nan)
    y[:3] = 1.0
    with caplog.at_level(logging.WARNING, logger="stellarlatent"):
        table = mutual_information(Z, {"sparse": y, "full": np.arange(Z.shape[0])})
    assert np.all(np.isnan(table["sparse"]))
    assert np.all(np.isfinite(table["full"]))
    assert "sparse" in caplog.text


def test_dims_subset(latent_data):
    _, Z, labels = latent_data
    table = mutual_information(Z, labels, dims=[1, 3], normalize=False)
    full = mutual_information(Z, labels, normalize=False)
    assert table["dim"].tolist() == [1, 3]
    np.testing.assert_allclose(table["logg"], full["logg"][[1, 3]])


@pytest.mark.parametrize(
    "kwargs, match",
    [
        (dict(method="kde"), "method must be"),
        (dict(normalize="sum"), "normalize must be"),
        (dict(bins=(1, 5)), "bins must be"),
        (dict(dims=[0, 7]), "dims must hold indices"),
        (dict(sigma_clip=-1), "sigma_clip"),
        (dict(names=["nope"]), "labels has no column 'nope'"),
    ],
)
def test_mutual_information_validation(latent_data, kwargs, match):
    _, Z, labels = latent_data
    with pytest.raises(ValueError, match=match):
        mutual_information(Z, labels, **kwargs)


def test_label_length_and_type_errors(latent_data):
    _, Z, _ = latent_data
    with pytest.raises(ValueError, match=r"labels\['teff'\] has 3 values; expected 1500"):
        mutual_information(Z, {"teff": [1.0, 2.0, 3.0]})
    with pytest.raises(TypeError, match=r"labels\['name'\] must hold numbers"):
        mutual_information(Z, {"name": np.array(["a"] * Z.shape[0])})
    with pytest.raises(ValueError, match="names has 1 entries but labels has 2 columns"):
        mutual_information(Z, np.zeros((Z.shape[0], 2)), names=["a"])


# --- correlation --------------------------------------------------------------------


def test_spearman_matches_scipy_with_nan_dropped(latent_data):
    _, Z, labels = latent_data
    table = latent_correlation(Z, labels)
    feh = labels["feh"].value
    valid = np.isfinite(feh)
    for j in range(Z.shape[1]):
        assert table["teff"][j] == pytest.approx(spearmanr(Z[:, j], labels["teff"].value)[0])
        assert table["feh"][j] == pytest.approx(spearmanr(Z[valid, j], feh[valid])[0])
    assert table["teff"][0] > 0.95
    assert table["logg"][1] < -0.95


def test_pearson_and_constant_latent():
    rng = np.random.default_rng(6)
    y = rng.normal(size=100)
    Z = np.column_stack([2 * y + rng.normal(size=100), np.ones(100)])
    table = latent_correlation(Z, {"y": y}, method="pearson")
    assert table["y"][0] == pytest.approx(pearsonr(Z[:, 0], y)[0])
    assert np.isnan(table["y"][1])
    with pytest.raises(ValueError, match="method must be 'spearman' or 'pearson'"):
        latent_correlation(Z, {"y": y}, method="kendall")


# --- report -------------------------------------------------------------------------


def test_report_from_estimator(fake_vae, latent_data):
    X, Z, labels = latent_data
    report = DisentanglementReport.from_estimator(fake_vae, X, labels)
    np.testing.assert_allclose(report.latents, Z, atol=1e-8)
    np.testing.assert_array_equal(report.informative, [0, 1])
    assert report.label_names == ["teff", "logg", "feh"]
    summary = report.summary
    assert summary.colnames == ["dim", "mad", "best_label", "mi", "nmi", "spearman",
                                "beyond_chance"]
    assert summary["beyond_chance"].tolist() == [True, True]
    # sorted by decreasing MAD: logg latent spans 4 dex, teff latent 3 (x 1000 K)
    assert summary["dim"].tolist() == [1, 0]
    assert summary["best_label"].tolist() == ["logg", "teff"]
    assert summary["spearman"][0] < -0.95 and summary["spearman"][1] > 0.95
    np.testing.assert_allclose(summary["mad"], latent_mad(Z)[[1, 0]], rtol=1e-6)
    dim, rho, mi = report.best_dimension("teff")
    assert (dim, rho > 0.95) == (0, True)
    assert mi == pytest.approx(report.normalized_mutual_information["teff"][0])
    assert report.best_dimension("logg").dim == 1
    assert "2 of 4 latent dimensions informative" in repr(report)


def test_report_all_dims_and_relative_mi(latent_data):
    _, Z, labels = latent_data
    report = DisentanglementReport.from_latents(Z, labels, dims="all")
    assert report.mutual_information["dim"].tolist() == [0, 1, 2, 3]
    relative = report.relative_mutual_information
    values = np.column_stack([relative[k] for k in report.label_names])
    np.testing.assert_allclose(values.max(axis=1), 1.0)
    assert report.best_dimension("teff", among="all").dim == 0
    assert report.normalized_mutual_information.meta["normalize"] == "entropy"


def test_best_dimension_of_a_label_without_known_values_says_so(latent_data):
    _, Z, labels = latent_data
    unknown = labels.copy()
    unknown["teff"] = np.full(len(unknown), np.nan) * unknown["teff"].unit
    report = DisentanglementReport.from_latents(Z, unknown)
    with pytest.raises(ValueError, match="label 'teff' has 0 known values"):
        report.best_dimension("teff")
    assert report.best_dimension("logg").dim == 1
    assert np.isnan(report.chance_level("teff"))
    ax = report.plot_mutual_information(normalize="nmi")
    assert ax.get_xticklabels()[0].get_text() == "teff"


def test_report_ksg_uses_linfoot(latent_data):
    _, Z, labels = latent_data
    report = DisentanglementReport.from_latents(
        Z[:400], labels[:400], method="ksg", random_state=0
    )
    nmi = report.normalized_mutual_information
    assert nmi.meta["normalize"] == "linfoot"
    np.testing.assert_allclose(
        nmi["teff"], np.sqrt(1 - np.exp(-2 * report.mutual_information["teff"]))
    )


def test_report_without_informative_dimension(latent_data, caplog):
    _, Z, labels = latent_data
    with caplog.at_level(logging.WARNING, logger="stellarlatent"):
        report = DisentanglementReport.from_latents(Z, labels, threshold=50)
    assert "no latent dimension" in caplog.text
    assert len(report.summary) == 0
    with pytest.raises(ValueError, match="no informative dimension"):
        report.best_dimension("teff")
    with pytest.raises(ValueError, match="label must be one of"):
        report.best_dimension("rv")


def test_report_rejects_bad_transform(latent_data):
    X, _, labels = latent_data

    class Broken:
        latent_dim = 4

        def transform(self, X):
            return np.zeros((len(X), 3))

    with pytest.raises(ValueError, match=r"vae.transform\(X\) returned shape"):
        DisentanglementReport.from_estimator(Broken(), X, labels)


def test_quantity_labels_keep_units(latent_data):
    _, Z, labels = latent_data
    report = DisentanglementReport.from_latents(Z, labels)
    assert report.labels["teff"][1] == u.K
    assert report.labels["logg"][1] == u.dex
    qt = QTable({"teff": labels["teff"].to(u.kK)})
    other = DisentanglementReport.from_latents(Z, qt)
    np.testing.assert_allclose(
        other.mutual_information["teff"], report.mutual_information["teff"], rtol=1e-8
    )


def test_tables_use_float_columns_unless_named(latent_data):
    _, Z, labels = latent_data
    table = labels.copy()
    table["miles_id"] = np.arange(len(table))
    table["flagged"] = np.zeros(len(table), dtype=bool)
    assert mutual_information(Z, table).colnames == ["dim", "teff", "logg", "feh"]
    named = mutual_information(Z, table, names=["miles_id", "teff"])
    assert named.colnames == ["dim", "miles_id", "teff"]
    with pytest.raises(TypeError, match=r"labels\['name'\] must hold numbers"):
        mutual_information(Z, table, names=["name"])
