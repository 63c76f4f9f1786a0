import copy
import logging

import astropy.units as u
import numpy as np
import pytest
import torch
from astropy.nddata import InverseVariance
from astropy.table import QTable, Table
from astropy.utils.masked import Masked
from scipy.stats import spearmanr
from sklearn.base import clone
from specutils import Spectrum

from stellarlatent.estimators import DeepREMAP, TrainingDivergedError
from stellarlatent.estimators._binning import binned_summaries, digitize, make_edges
from stellarlatent.estimators._tables import label_summaries, probability_outside

from ._helpers import line_spectra, small_remap


pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def fitted():
    """A model that has learnt the line depths, and held-out spectra."""
    X, y = line_spectra()
    remap = small_remap(base_channels=8, n_stages=3, max_epochs=30, validation_fraction=0.2)
    remap.fit(X, y)
    X_test, y_test = line_spectra(100, seed=1)
    return remap, X, y, X_test, y_test


def test_predict_table_columns_units_and_shapes():
    X, y = line_spectra(64)
    y["teff"] = y["teff"].to(u.kK)  # converted back to K
    remap = small_remap(max_epochs=2).fit(X, y)
    table = remap.predict(X[:5])
    assert isinstance(table, QTable) and len(table) == 5
    expected = []
    for label in ("teff", "logg", "feh"):
        expected += [label, f"{label}_err", f"{label}_p16", f"{label}_p84", f"{label}_out_of_range"]
    assert table.colnames == expected + ["embedding_distance"]
    assert table["teff"].unit == u.K and table["teff_err"].unit == u.K
    assert table["logg"].unit == u.dex and table["feh_p84"].unit == u.dex
    assert table["teff_out_of_range"].dtype == bool
    assert remap.label_units_ == {"teff": u.K, "logg": u.dex, "feh": u.dex}
    edges = remap.bin_edges_["teff"]
    teff = y["teff"].to_value(u.K)
    assert 3500 < edges[0] < edges[1] <= teff.min()  # the edge bins are margin
    assert teff.max() <= edges[-2] < edges[-1] < 7500
    proba = remap.predict_proba(X[:5])
    assert list(proba) == ["teff", "logg", "feh"]
    p, edges = proba["teff"]
    assert p.shape == (5, 12) and edges.shape == (13,) and edges.unit == u.K
    np.testing.assert_allclose(p.sum(axis=1), 1.0)
    assert remap.embed(X[:5]).shape == (5, 16)
    assert [h["epoch"] for h in remap.history_] == [1, 2]
    keys = {"train_loss", "train_focal", "train_triplet", "train_focal_teff", "train_focal_feh",
            "val_loss", "swa_n", "lr"}
    assert keys <= set(remap.history_[0])
    assert remap.score(X, y) < 0


def test_learns_the_labels_with_sensible_intervals(fitted):
    remap, _, _, X_test, y_test = fitted
    table = remap.predict(X_test)
    for label in ("teff", "logg", "feh"):
        rho = spearmanr(table[label].value, y_test[label].value)[0]
        assert rho > 0.9, (label, rho)
        mean, lo, hi = (table[k].value for k in (label, f"{label}_p16", f"{label}_p84"))
        assert np.mean((lo <= mean) & (mean <= hi)) > 0.9
        assert np.all(table[f"{label}_err"].value > 0)
    assert table["teff"].unit == u.K
    assert np.mean(table["teff_out_of_range"]) < 0.2


def test_binned_summaries_and_edges():
    edges = make_edges([1.0, 3.0], n_bins=4, margin=0.5)
    np.testing.assert_allclose(edges, [0.0, 1.0, 2.0, 3.0, 4.0])
    np.testing.assert_allclose(make_edges([1.0, 3.0], n_bins=4, margin=0.0), edges)  # >= 1 bin
    np.testing.assert_allclose(make_edges([1.0, 3.0], n_bins=6, margin=0.5),
                               np.linspace(0, 4, 7))
    proba = np.array([[0.0, 1.0, 0.0, 0.0], [0.25, 0.25, 0.25, 0.25]])
    mean, std, p16, p84 = binned_summaries(proba, edges)
    np.testing.assert_allclose(mean, [1.5, 2.0])
    np.testing.assert_allclose(std, [np.sqrt(1 / 12), np.sqrt(16 / 12)])
    np.testing.assert_allclose(p16, [1.16, 0.64])
    np.testing.assert_allclose(p84, [1.84, 3.36])
    log_edges = make_edges([4000.0, 8000.0], n_bins=4, margin=0.0, log=True)
    np.testing.assert_allclose(log_edges, 4000.0 * 2.0 ** np.array([-0.5, 0, 0.5, 1, 1.5]))
    np.testing.assert_allclose(make_edges([4000, 5000], width=300.0, margin=0.0),
                               [3600, 3900, 4200, 4500, 4800, 5100, 5400])
    bins, n_outside = digitize([-1.0, 0.0, 4.0, np.nan], edges)
    assert bins.tolist() == [-1, 0, 3, -1] and n_outside == 1


def test_bin_edges_cover_range_plus_margin_and_options():
    X, y = line_spectra(48)
    remap = small_remap(max_epochs=1, n_bins={"teff": 20}, margin={"logg": 0.25},
                        bin_width={"feh": 0.25 * u.dex}).fit(X, y)
    for label in ("teff", "logg", "feh"):
        values = y[label].value
        span = np.ptp(values)
        margin = 0.25 if label == "logg" else 0.05
        edges = remap.bin_edges_[label]
        assert edges[0] <= values.min() - margin * span + 1e-9
        assert edges[-1] >= values.max() + margin * span - 1e-9
    # labels left out of the n_bins dict get "auto": log g in bins of 0.09 dex
    assert len(remap.bin_edges_["teff"]) == 21
    np.testing.assert_allclose(np.diff(remap.bin_edges_["logg"]), 0.09)
    np.testing.assert_allclose(np.diff(remap.bin_edges_["feh"]), 0.25)


def test_auto_bins_keep_their_width_over_any_range():
    """Trained on 2800-36000 K, the Teff bins are as fine at 5800 K as on FGK stars alone."""
    X, y = line_spectra(48)
    fgk = small_remap(max_epochs=1, n_bins="auto", log_teff=True).fit(X, y)
    wide = y.copy()
    wide["teff"][:2] = [2800, 36000] * u.K
    everything = small_remap(max_epochs=1, n_bins="auto", log_teff=True).fit(X, wide)
    for model in (fgk, everything):
        edges = np.log10(model.bin_edges_["teff"])
        np.testing.assert_allclose(np.diff(edges), 0.005, rtol=1e-9)
    assert len(everything.bin_edges_["teff"]) > 4 * len(fgk.bin_edges_["teff"])
    # a narrow range still gets 20 bins; unknown labels get 50 over their range
    narrow = y.copy()
    narrow["feh"] = np.linspace(-0.1, 0.1, len(y)) * u.dex
    model = small_remap(max_epochs=1, n_bins="auto").fit(X, narrow)
    assert len(model.bin_edges_["feh"]) - 1 >= 20

    log_remap = small_remap(labels=["teff"], max_epochs=1, log_teff=True, n_bins=10).fit(X, y)
    edges = log_remap.bin_edges_["teff"]
    np.testing.assert_allclose(np.diff(np.log10(edges)), np.diff(np.log10(edges))[0])
    table = log_remap.predict(X[:4])
    assert table["teff"].unit == u.K
    assert np.all((table["teff"].value > edges[0]) & (table["teff"].value < edges[-1]))
    assert np.all(table["teff_p16"] <= table["teff_p84"])

    wide = small_remap(labels=["teff"], max_epochs=1, bin_width={"teff": "500 K"}).fit(X, y)
    np.testing.assert_allclose(np.diff(wide.bin_edges_["teff"]), 500.0)


def test_missing_labels_are_dropped_per_label(monkeypatch):
    X, y = line_spectra(64)
    feh = y["feh"].copy()
    missing = np.zeros(64, bool)
    missing[::2] = True
    y["feh"] = Masked(feh, mask=missing)  # masked values
    y["logg"][1::4] = np.nan * u.dex  # NaN values
    seen = []
    original = DeepREMAP._training_step

    def spy(self, batch, indices):
        seen.append(self._targets[indices].copy())
        return original(self, batch, indices)

    monkeypatch.setattr(DeepREMAP, "_training_step", spy)
    remap = small_remap(max_epochs=1, validation_fraction=0.0).fit(X, y)
    targets = np.concatenate(seen)
    no_feh = targets[:, 2] == -1
    assert no_feh.sum() == 32
    assert np.all(targets[no_feh, 0] >= 0)  # Teff of stars without [Fe/H] still trains
    assert np.sum(targets[:, 1] == -1) == 16
    assert np.isfinite(remap.history_[0]["train_focal_feh"])
    assert np.isnan(remap.reference_labels_["feh"][0].value)

    y["feh"] = np.full(64, np.nan) * u.dex
    with pytest.raises(ValueError, match="'feh' has no known value"):
        small_remap(max_epochs=1).fit(X, y)


def test_out_of_range_flags_novel_spectra_and_piled_up_edges(fitted, monkeypatch):
    remap, _, _, X_test, _ = fitted
    x = np.linspace(0, 30, 128)
    strange = np.vstack([1 + 0.9 * np.sin(x), np.where(np.sin(x) > 0, 2.0, 0.0)])
    table = remap.predict(strange)
    assert np.all(table["embedding_distance"] > remap.novelty_threshold_)
    for label in ("teff", "logg", "feh"):
        assert np.all(table[f"{label}_out_of_range"])

    normal = remap.predict(X_test[:20])
    assert not normal["logg_out_of_range"].all()
    original = DeepREMAP._probabilities

    def piled(self, logits):
        proba = original(self, logits)
        proba["logg"] = np.zeros_like(proba["logg"])
        proba["logg"][:, -1] = 0.6
        proba["logg"][:, -2] = 0.4
        return proba

    monkeypatch.setattr(DeepREMAP, "_probabilities", piled)
    flagged = remap.predict(X_test[:20])
    assert np.all(flagged["logg_out_of_range"])
    np.testing.assert_array_equal(flagged["teff_out_of_range"], normal["teff_out_of_range"])


def test_out_of_range_is_probability_beyond_the_training_labels(fitted):
    # with many bins of margin (a bin width), a distribution that spreads below the coolest
    # training star is flagged although its first bin holds next to nothing
    remap, X, y, X_test, _ = fitted
    normal = remap.predict(X_test[:30])
    proba = remap.predict_proba(X_test[:30])["teff"][0]
    low, high = (float(np.nanmin(y["teff"].value)), float(np.nanmax(y["teff"].value)))
    outside = probability_outside(proba, remap.bin_edges_["teff"], low, high)
    novel = np.asarray(normal["embedding_distance"]) > remap.novelty_threshold_
    np.testing.assert_array_equal(normal["teff_out_of_range"],
                                  (outside > remap.edge_probability) | novel)
    # the range is that of the reference set: all but the hottest stars at one temperature
    narrow = copy.deepcopy(remap)
    y_narrow = y.copy()
    hottest = int(np.nanargmax(y["teff"].value))
    y_narrow["teff"] = np.where(np.arange(len(y)) == hottest, y["teff"].value,
                                np.nanmax(y["teff"].value) - 1.0) * u.K
    narrow.set_reference(X, y_narrow)
    flagged = narrow.predict(X_test[:30])
    assert flagged["teff_out_of_range"].sum() > normal["teff_out_of_range"].sum() + 10
    np.testing.assert_array_equal(flagged["logg_out_of_range"] & ~novel,
                                  normal["logg_out_of_range"] & ~novel)
    # one known value (a fine-tuning on one cluster) gives no range: the bins' margin decides
    single = copy.deepcopy(remap)
    y_single = y.copy()
    y_single["teff"] = np.where(np.arange(len(y)) == 0, 5000.0, np.nan) * u.K
    single.set_reference(X, y_single)
    np.testing.assert_array_equal(single.predict(X_test[:30])["teff_out_of_range"] & ~novel,
                                  (probability_outside(proba, remap.bin_edges_["teff"],
                                                       remap.bin_edges_["teff"][1],
                                                       remap.bin_edges_["teff"][-2])
                                   > remap.edge_probability) & ~novel)


def test_the_edge_bins_count_as_outside_whatever_the_training_range():
    edges = [3000.0, 3500.0, 4000.0, 4500.0, 5000.0, 5500.0]
    piled = np.array([[0.0, 0.0, 0.1, 0.3, 0.6]])
    # labels beyond the bins (fine-tuning clips them into the edge bins) leave the flag on
    assert label_summaries(piled, edges, 0.25, (3600.0, 6000.0))[-1].tolist() == [True]
    assert label_summaries(piled, edges, 0.25)[-1].tolist() == [True]
    central = np.array([[0.0, 0.2, 0.6, 0.2, 0.0]])
    assert label_summaries(central, edges, 0.25, (3600.0, 6000.0))[-1].tolist() == [False]
    # inside the bins, the range decides: 0.3 of the probability lies below 4000 K
    assert label_summaries(np.array([[0.0, 0.3, 0.5, 0.2, 0.0]]), edges, 0.25,
                           (4000.0, 5000.0))[-1].tolist() == [True]


def test_calibrate_softens_an_over_confident_model(fitted):
    remap, X, y, X_test, y_test = fitted
    sharp = copy.deepcopy(remap)
    with torch.no_grad():
        for head in sharp.module_.heads.values():
            head.weight.mul_(8.0)
            head.bias.mul_(8.0)
    X_cal, y_cal = line_spectra(100, seed=2)
    before = sharp.score(X_test, y_test)
    proba_before = sharp.predict_proba(X_test[:5])["teff"][0]
    assert sharp.calibrate(X_cal, y_cal) is sharp
    assert set(sharp.temperatures_) == {"teff", "logg", "feh"}
    assert all(t > 2.0 for t in sharp.temperatures_.values())
    assert sharp.score(X_test, y_test) > before + 0.5
    proba_after = sharp.predict_proba(X_test[:5])["teff"][0]
    assert proba_after.max() < proba_before.max()
    np.testing.assert_array_equal(proba_after.argmax(axis=1), proba_before.argmax(axis=1))


def test_outputs_feed_the_calibration_diagnostics(fitted):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from stellarlatent.diagnostics import (
        CalibrationDisplay,
        expected_calibration_error,
        interval_coverage,
        negative_log_likelihood,
    )

    remap, _, _, X_test, y_test = fitted
    proba = remap.predict_proba(X_test)
    coverage = interval_coverage(proba, y_test)
    assert list(coverage["label"]) == ["teff", "logg", "feh"]
    assert np.all((coverage["coverage_68"] > 0.2) & (coverage["coverage_95"] <= 1))
    table_coverage = interval_coverage(remap.predict(X_test), y_test)
    assert np.all(np.isfinite(table_coverage["coverage_68"]))
    nll = negative_log_likelihood(proba, y_test)
    np.testing.assert_allclose(-np.mean(nll["nll"]), remap.score(X_test, y_test), rtol=1e-6)
    y_kk = QTable({"teff": y_test["teff"].to(u.kK)})  # converted through the edges' unit
    p, edges = proba["teff"]
    assert expected_calibration_error(p, y_kk["teff"], edges) == pytest.approx(
        expected_calibration_error(p, y_test["teff"].value, edges.value))
    display = CalibrationDisplay.from_estimator(remap, X_test, y_test).plot()
    assert display.panels_[0] == "reliability"
    plt.close("all")


def test_learns_teff_from_synthetic_spectra():
    datasets = pytest.importorskip("stellarlatent.datasets")
    if not hasattr(datasets, "make_synthetic_spectra"):
        pytest.skip("stellarlatent.datasets.make_synthetic_spectra is not available")
    from stellarlatent.preprocessing import SpectralGrid

    grid = SpectralGrid.log_uniform(4800 * u.AA, 5600 * u.AA, 128)
    spectra, labels = datasets.make_synthetic_spectra(
        200, grid, teff=(4000, 7000), rv=0 * u.km / u.s, vsini=(0, 5) * u.km / u.s, snr=100.0,
        random_state=0,
    )
    train, test = np.arange(150), np.arange(150, 200)
    remap = small_remap(labels=("teff", "feh"), base_channels=8, n_stages=3, max_epochs=12)
    table = remap.fit(spectra[train], labels[train]).predict(spectra[test])
    assert spearmanr(table["teff"].value, labels["teff"][test].value)[0] > 0.85
    assert u.allclose(remap.spectral_axis_, grid.spectral_axis)


def test_fine_tune_with_frozen_backbone_changes_only_the_heads(fitted, caplog):
    remap, X, y, _, _ = fitted
    model = clone(remap).set_params(max_epochs=2).fit(X, y)
    model.temperatures_ = {k: 2.0 for k in model.temperatures_}
    before = {k: v.clone() for k, v in model.module_.state_dict().items()}
    X_obs, y_obs = line_spectra(24, seed=3)
    y_obs["teff"][0] = 9000 * u.K  # beyond the bins: clipped, with a warning
    with caplog.at_level(logging.WARNING, logger="stellarlatent"):
        assert model.fine_tune(X_obs, y_obs, freeze="backbone", max_epochs=2, lr=1e-2) is model
    assert "outside the bins" in caplog.text
    after = model.module_.state_dict()
    for key, value in before.items():
        if key.startswith("backbone."):
            torch.testing.assert_close(after[key], value, msg=key)
    assert not torch.equal(after["heads.teff.weight"], before["heads.teff.weight"])
    assert all(p.requires_grad for p in model.module_.parameters())
    assert model.temperatures_ == {"teff": 1.0, "logg": 1.0, "feh": 1.0}
    assert len(model.fine_tune_history_) == 2 and len(model.history_) == 2
    assert model.reference_embeddings_.shape[0] == 24
    assert model.predict(X_obs).colnames[0] == "teff"

    partial = clone(remap).set_params(max_epochs=1).fit(X, y)
    before = {k: v.clone() for k, v in partial.module_.state_dict().items()}
    partial.fine_tune(X_obs, y_obs, freeze=2, max_epochs=1)
    after = partial.module_.state_dict()
    torch.testing.assert_close(after["backbone.blocks.1.conv1.0.weight"],
                               before["backbone.blocks.1.conv1.0.weight"])
    assert not torch.equal(after["backbone.blocks.2.conv1.0.weight"],
                           before["backbone.blocks.2.conv1.0.weight"])
    with pytest.raises(ValueError, match="freeze must be"):
        partial.fine_tune(X_obs, y_obs, freeze="heads")


def test_kneighbors_finds_the_training_spectrum_itself(fitted):
    remap, X, y, _, _ = fitted
    distances, indices, labels = remap.kneighbors(X[:10], n_neighbors=3)
    assert distances.shape == indices.shape == (10, 3)
    np.testing.assert_array_equal(indices[:, 0], np.arange(10))
    assert np.all(distances[:, 0] < 1e-6) and np.all(np.diff(distances, axis=1) >= 0)
    assert labels["teff"].shape == (10, 3) and labels["teff"].unit == u.K
    assert u.allclose(labels["teff"][:, 0], y["teff"][:10])
    with pytest.raises(ValueError, match="n_neighbors"):
        remap.kneighbors(X[:2], n_neighbors=0)


def test_save_and_load_round_trip(tmp_path):
    X, y = line_spectra(48)
    wave = np.linspace(5000, 5100, 128) * u.AA
    spec = Spectrum(flux=X * u.one, spectral_axis=wave, spectral_axis_index=1)
    remap = small_remap(bin_width={"teff": 250 * u.K}, max_epochs=2).fit(spec, y)
    remap.calibrate(X, y)
    path = remap.save(tmp_path / "remap.pt")
    again = DeepREMAP.load(path, device="cpu")
    for key in remap.predict(X).colnames:
        np.testing.assert_array_equal(again.predict(X)[key], remap.predict(X)[key])
    np.testing.assert_array_equal(again.predict_proba(X)["feh"][0],
                                  remap.predict_proba(X)["feh"][0])
    np.testing.assert_array_equal(again.kneighbors(X[:3])[1], remap.kneighbors(X[:3])[1])
    assert again.temperatures_ == remap.temperatures_
    assert again.label_units_ == remap.label_units_
    assert again.history_ == remap.history_
    assert u.allclose(again.spectral_axis_, wave)
    assert again.novelty_threshold_ == remap.novelty_threshold_
    np.testing.assert_array_equal(np.diff(again.bin_edges_["teff"]), 250.0)
    # a loaded model can be fine-tuned
    again.fine_tune(X[:16], y[:16], max_epochs=1)
    with pytest.raises(ValueError, match="holds a DeepREMAP"):
        from stellarlatent.estimators import SpectralVAE

        SpectralVAE.load(path)


def test_contrast_channel_and_soft_targets_train_save_and_load(tmp_path, monkeypatch):
    X, y = line_spectra(64)
    seen = {}
    from stellarlatent.nn import FocalCostLoss

    original = FocalCostLoss.__init__

    def spy(self, n_bins, **kwargs):
        original(self, n_bins, **kwargs)
        seen.setdefault(len(seen), (self.label_smoothing, self.gamma))

    monkeypatch.setattr(FocalCostLoss, "__init__", spy)
    remap = small_remap(contrast_window=15, label_smoothing={"teff": 1.5}, gamma={"feh": 0.0},
                        max_epochs=2)
    remap.fit(X, y)
    # one loss per label, in label order; labels left out of a dict get the default
    assert list(seen.values()) == [(1.5, 2.0), (0.0, 2.0), (0.0, 0.0)]
    assert remap.module_.backbone.in_channels == 3
    assert remap.module_.contrast_window == 15
    again = DeepREMAP.load(remap.save(tmp_path / "lines.pt"), device="cpu")
    assert again.module_.contrast_window == 15
    np.testing.assert_array_equal(again.predict_proba(X)["teff"][0],
                                  remap.predict_proba(X)["teff"][0])
    # the channel changes what the network computes
    plain = small_remap(label_smoothing={"teff": 1.5}, max_epochs=2).fit(X, y)
    assert not np.allclose(plain.predict_proba(X)["teff"][0], remap.predict_proba(X)["teff"][0])


def test_resume_from_checkpoint_matches_uninterrupted_run(tmp_path, monkeypatch):
    X, y = line_spectra(64)
    params = dict(max_epochs=5, swa_start=2, restart_period=2)
    full = small_remap(**params).fit(X, y)
    assert full.history_[-1]["swa_n"] == 3

    original = DeepREMAP._after_epoch

    def interrupt(self, epoch):
        if epoch == 3:  # after SWA has begun: its state is in the checkpoint
            raise KeyboardInterrupt
        return original(self, epoch)

    monkeypatch.setattr(DeepREMAP, "_after_epoch", interrupt)
    with pytest.raises(KeyboardInterrupt):
        small_remap(**params).fit(X, y, checkpoint_dir=tmp_path)
    monkeypatch.setattr(DeepREMAP, "_after_epoch", original)
    resumed = small_remap(**params).fit(X, y, checkpoint_dir=tmp_path)
    assert [h["epoch"] for h in resumed.history_] == [1, 2, 3, 4, 5]
    np.testing.assert_allclose(resumed.embed(X), full.embed(X), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(resumed.predict(X)["teff"].value, full.predict(X)["teff"].value,
                               rtol=1e-6)
    y_other = y.copy()
    y_other["teff"] = y_other["teff"][::-1]
    with pytest.raises(ValueError, match="other data or hyperparameters"):
        small_remap(**params).fit(X, y_other, checkpoint_dir=tmp_path)


def test_an_interrupted_fine_tuning_called_again_resumes_from_its_checkpoint(tmp_path,
                                                                             monkeypatch):
    X, y = line_spectra(64)
    pretrained = small_remap(max_epochs=2).fit(X[::-1].copy(), y[::-1])
    full = copy.deepcopy(pretrained).fine_tune(X, y, max_epochs=3, lr=1e-3)
    original = DeepREMAP._after_epoch

    def interrupt(self, epoch):
        if self._stage == "fine_tune" and epoch == 1:
            raise KeyboardInterrupt
        return original(self, epoch)

    remap = copy.deepcopy(pretrained)
    monkeypatch.setattr(DeepREMAP, "_after_epoch", interrupt)
    with pytest.raises(KeyboardInterrupt):
        remap.fine_tune(X, y, max_epochs=3, lr=1e-3, checkpoint_dir=tmp_path)
    monkeypatch.setattr(DeepREMAP, "_after_epoch", original)
    # the network it started from is back, so the same call (in the same session) resumes
    np.testing.assert_array_equal(remap.embed(X), pretrained.embed(X))
    with pytest.raises(ValueError, match="other data or hyperparameters"):
        copy.deepcopy(pretrained).fine_tune(X, y, max_epochs=3, lr=5e-3,
                                            checkpoint_dir=tmp_path)  # another lr
    with pytest.raises(ValueError, match="other data or hyperparameters"):
        copy.deepcopy(pretrained).fine_tune(X, y, max_epochs=3, lr=1e-3, freeze="backbone",
                                            checkpoint_dir=tmp_path)
    remap.fine_tune(X, y, max_epochs=3, lr=1e-3, checkpoint_dir=tmp_path)
    assert [h["epoch"] for h in remap.fine_tune_history_] == [1, 2, 3]
    np.testing.assert_allclose(remap.predict(X)["teff"].value, full.predict(X)["teff"].value,
                               rtol=1e-5)


def test_swa_gives_the_averaged_network():
    X, y = line_spectra(48)
    averaged = small_remap(max_epochs=3, swa_start=1).fit(X, y)
    assert [h["swa_n"] for h in averaged.history_] == [0, 1, 2]
    assert averaged.history_[-1]["lr"] == pytest.approx(1e-3)  # swa_lr = lr / 10
    plain = small_remap(max_epochs=3, swa_start=None).fit(X, y)
    assert [h["swa_n"] for h in plain.history_] == [0, 0, 0]
    assert not np.allclose(plain.embed(X), averaged.embed(X))
    assert not hasattr(averaged, "optimizer_")


def test_same_seed_same_result():
    X, y = line_spectra(48)
    a = small_remap().fit(X, y).predict(X)
    b = small_remap().fit(X, y).predict(X)
    for key in a.colnames:
        np.testing.assert_array_equal(a[key], b[key])
    c = small_remap(random_state=1).fit(X, y).predict(X)
    assert not np.array_equal(a["teff"], c["teff"])


def test_clone_and_get_params():
    remap = small_remap(bin_width={"teff": 50 * u.K}, n_bins={"logg": 8})
    copy = clone(remap)
    assert copy.get_params()["bin_width"] == {"teff": 50 * u.K}
    assert copy.get_params()["n_bins"] == {"logg": 8}
    assert not hasattr(copy, "module_")


def test_masked_pixels_store_and_label_forms(tmp_path):
    from stellarlatent.datasets import SpectralStore

    X, y = line_spectra(32)
    wave = np.linspace(5000, 5100, 128) * u.AA
    mask = np.zeros(X.shape, bool)
    mask[:, :10] = True
    bad = X.copy()
    bad[:, :10] = 1e6  # masked garbage must not matter
    bad[0, 50] = np.nan
    spec = Spectrum(flux=bad * u.one, spectral_axis=wave, mask=mask,
                    uncertainty=InverseVariance(np.full(X.shape, 100.0)), spectral_axis_index=1)
    remap = small_remap(max_epochs=1).fit(spec, y)
    assert np.isfinite(remap.history_[0]["train_loss"]) and remap.history_[0]["train_loss"] < 100
    other = Spectrum(flux=np.where(mask, -3.0, X) * u.one, spectral_axis=wave, mask=mask,
                     spectral_axis_index=1)
    np.testing.assert_allclose(remap.embed(spec)[1:], remap.embed(other)[1:], rtol=1e-6)

    plain = np.column_stack([y["teff"].value, y["logg"].value, y["feh"].value])
    a = small_remap(max_epochs=1).fit(X, plain).predict(X)
    b = small_remap(max_epochs=1).fit(X, Table(y)).predict(X)
    np.testing.assert_array_equal(a["teff"], b["teff"])

    path = tmp_path / "store.h5"
    with SpectralStore.create(path, wave, labels={"teff": u.K, "logg": u.dex, "feh": u.dex},
                              ivar=False) as store:
        store.append(X, y)
    with SpectralStore(path) as store:
        streamed = small_remap(max_epochs=1).fit(store)  # labels from the store
        table = streamed.predict(store)
    c = small_remap(max_epochs=1).fit(X, y).predict(X)
    np.testing.assert_allclose(table["teff"].value, c["teff"].value, rtol=1e-5)


def test_extra_labels_and_nan_guard(monkeypatch):
    X, y = line_spectra(48)
    rng = np.random.default_rng(0)
    y["rv"] = rng.uniform(-100, 100, 48) * u.m / u.s
    y["depth"] = rng.uniform(0, 1, 48)
    remap = small_remap(labels=["teff", "rv", "depth"], max_epochs=1).fit(X, y)
    table = remap.predict(X[:3])
    assert table["rv"].unit == u.km / u.s and remap.bin_edges_["rv"][-1] < 0.2
    assert not isinstance(table["depth"], u.Quantity)
    assert remap.predict_proba(X[:3])["depth"][1].__class__ is np.ndarray

    original = DeepREMAP._training_step

    def poisoned(self, batch, indices):
        out = original(self, batch, indices)
        if self.n_iter_ == 4:
            out["loss"] = out["loss"] * float("nan")
        return out

    monkeypatch.setattr(DeepREMAP, "_training_step", poisoned)
    broken = small_remap(max_epochs=3, validation_fraction=0.0)
    with pytest.raises(TrainingDivergedError, match="epoch 2"):
        broken.fit(X, y)
    assert np.all(np.isfinite(broken.predict(X[:3])["teff"].value))


def test_errors_name_the_argument():
    X, y = line_spectra(12)
    with pytest.raises(ValueError, match="y has 11 rows but X has 12 spectra"):
        small_remap().fit(X, y[:11])
    with pytest.raises(ValueError, match="y has no column 'vsini'"):
        small_remap(labels=("teff", "vsini")).fit(X, y)
    with pytest.raises(ValueError, match="y is required"):
        small_remap().fit(X)
    with pytest.raises(ValueError, match="2-D array with one column per label"):
        small_remap().fit(X, np.ones((12, 2)))
    y_bad = y.copy()
    y_bad["teff"] = y_bad["teff"].value * u.km
    with pytest.raises(u.UnitsError, match="y\\['teff'\\]"):
        small_remap().fit(X, y_bad)
    remap = small_remap(max_epochs=1).fit(X, y)
    with pytest.raises(ValueError, match="has 100 features, but DeepREMAP is expecting 128"):
        remap.predict(X[:, :100])


@pytest.mark.parametrize(
    ("params", "error", "match"),
    [
        ({"labels": "teff"}, TypeError, "labels"),
        ({"labels": ("teff", "teff")}, ValueError, "labels"),
        ({"n_bins": 1}, ValueError, "n_bins"),
        ({"n_bins": {"vsini": 4}}, ValueError, "n_bins"),
        ({"margin": -0.1}, ValueError, "margin"),
        ({"bin_width": {"teff": 5 * u.dex}}, u.UnitsError, "bin_width"),
        ({"bin_width": {"teff": -5}}, ValueError, "bin_width"),
        ({"gamma": -1}, ValueError, "gamma"),
        ({"gamma": {"vsini": 1.0}}, ValueError, "gamma"),
        ({"swa_start": 1.5}, ValueError, "swa_start"),
        ({"edge_probability": 0}, ValueError, "edge_probability"),
        ({"kernel_size": 4}, ValueError, "kernel_size"),
        ({"contrast_window": 4}, ValueError, "contrast_window"),
        ({"contrast_window": 1}, ValueError, "contrast_window"),
        ({"label_smoothing": -1.0}, ValueError, "label_smoothing"),
        ({"label_smoothing": {"vsini": 1.0}}, ValueError, "label_smoothing"),
        ({"max_epochs": 0}, ValueError, "max_epochs"),
        ({"device": "tpu"}, ValueError, "device"),
    ],
)
def test_bad_parameters_are_named(params, error, match):
    X, y = line_spectra(8)
    with pytest.raises(error, match=match):
        small_remap(**params).fit(X, y)


@pytest.mark.gpu
def test_cuda_training_and_prediction():
    X, y = line_spectra(64)
    remap = small_remap(device="cuda", max_epochs=2).fit(X, y)
    assert remap.device_.type == "cuda"
    table = remap.predict(X)
    assert len(table) == 64 and np.all(np.isfinite(table["teff"].value))
    distances, indices, _ = remap.kneighbors(X[:4], n_neighbors=2)
    np.testing.assert_array_equal(indices[:, 0], np.arange(4))
    remap.calibrate(X, y)
    remap.fine_tune(X[:16], y[:16], freeze="backbone", max_epochs=1)


def _gaussian_logits(centres, mean, sigma):
    return -0.5 * ((centres[None, :] - mean[:, None]) / sigma) ** 2


def test_coverage_temperature_matches_the_interval_width():
    from stellarlatent.estimators._binning import binned_cdf, coverage_temperature

    rng = np.random.default_rng(0)
    edges = np.arange(61.0)
    centres = 0.5 * (edges[1:] + edges[:-1])
    truth = rng.uniform(20, 40, 3000)
    for predicted, actual in ((1.0, 2.0), (3.0, 1.5)):  # too narrow, then too wide
        values = truth + rng.normal(0, actual, truth.size)
        logits = _gaussian_logits(centres, truth, predicted)
        temperature = coverage_temperature(logits, edges, values)
        assert temperature == pytest.approx((actual / predicted) ** 2, rel=0.1)
        pit = binned_cdf(np.exp(logits / temperature)
                         / np.exp(logits / temperature).sum(axis=1, keepdims=True), edges, values)
        assert np.mean(np.abs(2 * pit - 1) <= 0.6827) == pytest.approx(0.6827, abs=0.01)


def test_nll_temperature_over_covers_heavy_tailed_errors():
    # The cause of the over-covering intervals of DeepREMAP on MILES: a few
    # stars far from their predicted bins dominate the likelihood, so the NLL
    # temperature widens every distribution; the coverage temperature does not.
    from stellarlatent.diagnostics import interval_coverage
    from stellarlatent.estimators._binning import coverage_temperature
    from stellarlatent.nn import TemperatureScaler

    rng = np.random.default_rng(1)
    edges = np.arange(81.0)
    centres = 0.5 * (edges[1:] + edges[:-1])

    def sample(n):
        truth = rng.uniform(25, 55, n)
        errors = rng.normal(0, 1.5, n)
        outliers = rng.random(n) < 0.07
        errors[outliers] = rng.normal(0, 8.0, outliers.sum())
        return _gaussian_logits(centres, truth, 1.5), truth + errors

    logits, values = sample(3000)
    bins = np.clip(np.searchsorted(edges, values, side="right") - 1, 0, 79)
    t_nll = float(TemperatureScaler().fit(torch.from_numpy(logits),
                                          torch.from_numpy(bins)).temperature[0])
    t_cov = coverage_temperature(logits, edges, values)
    assert t_nll > 1.5 and t_cov < t_nll
    test_logits, test_values = sample(3000)
    coverage = {}
    for name, temperature in (("nll", t_nll), ("coverage", t_cov)):
        scaled = torch.softmax(torch.from_numpy(test_logits / temperature), dim=1).numpy()
        coverage[name] = interval_coverage({"x": (scaled, edges)}, {"x": test_values},
                                           levels=(0.68,))["coverage_68"][0]
    assert coverage["nll"] > 0.78
    assert coverage["coverage"] == pytest.approx(0.68, abs=0.03)


def test_calibrate_to_coverage(fitted):
    from stellarlatent.diagnostics import interval_coverage

    remap, X, y, X_test, y_test = fitted
    model = copy.deepcopy(remap)
    X_cal, y_cal = line_spectra(100, seed=2)
    assert model.calibrate(X_cal, y_cal, method="coverage", level=0.6827) is model
    coverage = interval_coverage(model.predict_proba(X_cal), y_cal, levels=(0.68,))
    np.testing.assert_allclose(coverage["coverage_68"], 0.68, atol=0.03)
    # the point estimate's bin does not change
    proba = model.predict_proba(X_test[:5])["teff"][0]
    np.testing.assert_array_equal(proba.argmax(axis=1),
                                  remap.predict_proba(X_test[:5])["teff"][0].argmax(axis=1))
    with pytest.raises(ValueError, match="method must be 'nll' or 'coverage'"):
        model.calibrate(X_cal, y_cal, method="ece")
    for level in (1.5, (0.68, 1.2), (), "0.68", True):
        with pytest.raises(ValueError, match="level must be a probability"):
            model.calibrate(X_cal, y_cal, method="coverage", level=level)


def test_coverage_temperature_shares_the_miss_between_levels():
    # Errors with heavier tails than the predicted Gaussians (Student-t, 3 degrees
    # of freedom): fitted to the 68% intervals alone, the 95% intervals fall short;
    # fitted to both, the larger of the two misses is smaller and they are shared.
    from stellarlatent.estimators._binning import binned_cdf, coverage_temperature

    rng = np.random.default_rng(3)
    edges = np.arange(81.0)
    centres = 0.5 * (edges[1:] + edges[:-1])
    truth = rng.uniform(25, 55, 3000)
    logits = _gaussian_logits(centres, truth, 1.5)
    values = truth + 1.5 * rng.standard_t(3, truth.size)
    levels = np.array([0.6827, 0.9545])
    misses = {}
    for level in (0.6827, tuple(levels)):
        temperature = coverage_temperature(logits, edges, values, level=level)
        proba = np.exp(logits / temperature)
        pit = binned_cdf(proba / proba.sum(axis=1, keepdims=True), edges, values)
        covered = np.mean(np.abs(2 * pit - 1)[:, None] <= levels, axis=0)
        misses[np.size(level)] = covered - levels
    assert misses[1][0] == pytest.approx(0, abs=0.005) and misses[1][1] < -0.04
    assert np.abs(misses[2]).max() < 0.8 * np.abs(misses[1]).max()
    assert misses[2][0] > 0.01 and misses[2][1] < -0.01  # 68% over, 95% under
    assert abs(abs(misses[2][0]) - abs(misses[2][1])) < 0.01


def test_coverage_temperature_of_few_values_is_not_biased_narrow():
    # With 40 calibration values the covered fraction moves in steps of 1/40 and a
    # range of temperatures ties; its lower end leaves the 95% intervals of other
    # spectra short (0.940-0.943 on average over 150 draws, seeds 5-7), its middle
    # much less (0.946-0.949).
    from stellarlatent.estimators._binning import binned_cdf, coverage_temperature

    rng = np.random.default_rng(5)
    edges = np.arange(61.0)
    centres = 0.5 * (edges[1:] + edges[:-1])
    levels = np.array([0.6827, 0.9545])

    def sample(n):
        truth = rng.uniform(20, 40, n)
        return _gaussian_logits(centres, truth, 1.0), truth + 2.0 * rng.normal(size=n)

    test_logits, test_values = sample(5000)
    covered = []
    for _ in range(150):
        logits, values = sample(40)
        temperature = coverage_temperature(logits, edges, values, level=tuple(levels))
        proba = np.exp(test_logits / temperature)
        pit = binned_cdf(proba / proba.sum(axis=1, keepdims=True), edges, test_values)
        covered.append(np.mean(np.abs(2 * pit - 1)[:, None] <= levels, axis=0))
    mean = np.mean(covered, axis=0)
    assert mean[0] > 0.66 and mean[1] > 0.945


def test_binned_cdf_is_the_integral_of_a_density_uniform_in_each_bin():
    from stellarlatent.estimators._binning import binned_cdf

    rng = np.random.default_rng(2)
    proba = rng.dirichlet(np.ones(7), 50)
    edges = np.cumsum(rng.uniform(0.5, 2, 8))
    values = rng.uniform(edges[0] - 1, edges[-1] + 1, 50)
    # the density of each row on a fine grid, integrated up to each value
    fine = np.linspace(edges[0], edges[-1], 200001)
    width = np.diff(edges)
    density = proba[:, np.clip(np.searchsorted(edges, fine, side="right") - 1, 0, 6)] / width[
        np.clip(np.searchsorted(edges, fine, side="right") - 1, 0, 6)]
    step = fine[1] - fine[0]
    cumulative = np.cumsum(density, axis=1) * step
    expected = [cumulative[k, np.searchsorted(fine, v) - 1] if v > edges[0] else 0.0
                for k, v in enumerate(values)]
    np.testing.assert_allclose(binned_cdf(proba, edges, values), np.minimum(expected, 1.0),
                               atol=2e-3)


def test_the_miles_preset_is_the_defaults_and_takes_overrides():
    from stellarlatent.estimators.remap import _PRESETS

    assert DeepREMAP.from_preset("miles").get_params() == DeepREMAP().get_params()
    assert set(_PRESETS["miles"]) >= {"base_channels", "n_stages", "contrast_window", "n_bins",
                                      "label_smoothing", "lr", "batch_size", "max_epochs"}
    remap = DeepREMAP.from_preset("miles", labels=("teff",), n_stages=2)
    assert remap.labels == ("teff",) and remap.n_stages == 2 and remap.kernel_size == 7
    with pytest.raises(ValueError, match=r"name must be one of \['miles'\], got 'nope'"):
        DeepREMAP.from_preset("nope")


def test_the_command_recipe_is_the_miles_preset_read_without_torch():
    import subprocess
    import sys

    from stellarlatent._commands import recipe
    from stellarlatent.estimators.remap import _PRESETS

    assert recipe.RECIPE == _PRESETS["miles"]
    assert recipe.recipe_member(["teff", "logg"]).get_params() == DeepREMAP.from_preset(
        "miles", labels=("teff", "logg")).get_params()
    code = ("import sys, stellarlatent.cli as cli; cli.build_parser(); "
            "assert 'torch' not in sys.modules, 'torch imported'")
    subprocess.run([sys.executable, "-c", code], check=True)


def test_a_file_of_the_first_format_still_loads_and_predicts():
    from pathlib import Path

    path = Path(__file__).parents[1] / "data" / "deep_remap_v0.1.dev95.pt"
    remap = DeepREMAP.load(path, device="cpu")
    assert remap.reference_embeddings_.shape == (30, 4) and np.isfinite(remap.novelty_threshold_)
    X = 1 + 0.01 * np.random.default_rng(0).standard_normal((3, remap.n_features_in_))
    table = remap.predict(X)
    assert np.all(np.isfinite(table["teff"].value)) and table["teff"].unit == u.K
    distances, indices, labels = remap.kneighbors(X, n_neighbors=2)
    assert distances.shape == indices.shape == (3, 2) and labels["logg"].shape == (3, 2)
