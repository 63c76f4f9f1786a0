"""DeepREMAPEnsemble: members with their own seeds and pre-training, combined log-probabilities."""

import json

import numpy as np
import pytest
import torch
from sklearn.base import clone

from stellarlatent._params import all_constraints
from stellarlatent.estimators import DeepREMAP, DeepREMAPEnsemble

from ._helpers import line_spectra, small_remap


def uncalibrated_copy(model, pretrained=False):
    """A new ensemble with ``model``'s fitted members and ridge expert, temperatures reset
    (and its pre-trained members with ``pretrained``)."""
    copy_ = clone(model)
    copy_._adopt(model.members_)
    copy_.ridge_ = model.ridge_
    if pretrained:
        copy_.pretrained_members_ = model.pretrained_members_
    return copy_


@pytest.fixture(scope="module")
def data():
    flux, labels = line_spectra(n=96, n_pixels=96, seed=3)
    return flux, labels


@pytest.fixture(scope="module")
def fitted(data):
    flux, labels = data
    return DeepREMAPEnsemble(small_remap(max_epochs=2), n_members=3, random_state=0).fit(
        flux[:64], labels[:64])


def test_members_get_their_own_seeds_and_differ(fitted):
    seeds = [m.random_state for m in fitted.members_]
    assert len(set(seeds)) == 3
    weights = [next(iter(m.module_.state_dict().values())) for m in fitted.members_]
    assert not np.allclose(weights[0].numpy(), weights[1].numpy())


def test_predict_has_the_columns_of_deep_remap(fitted, data):
    flux, _ = data
    table = fitted.predict(flux[64:])
    assert table.colnames == fitted.members_[0].predict(flux[64:]).colnames
    assert table["teff"].unit == "K"
    assert np.all(table["teff_p16"] <= table["teff_p84"])


def test_predict_runs_each_member_once_and_its_columns_come_from_predict_proba(fitted, data):
    from stellarlatent.estimators._binning import binned_summaries
    from stellarlatent.estimators._tables import probability_outside

    flux, _ = data
    X = flux[64:]  # 32 spectra: two batches of each member
    calls = [0] * len(fitted.members_)

    def counter(m):
        def hook(module, args, output):
            calls[m] += 1
        return hook

    hooks = [member.module_.register_forward_hook(counter(m))
             for m, member in enumerate(fitted.members_)]
    try:
        fitted.members_[0].embed(X)
        one_pass, calls[0] = calls[0], 0
        table = fitted.predict(X)
    finally:
        for hook in hooks:
            hook.remove()
    assert one_pass == 2 and calls == [one_pass] * len(fitted.members_)

    proba = fitted.predict_proba(X)
    members = [member.predict(X) for member in fitted.members_]
    novel = np.mean([t["embedding_distance"] > member.novelty_threshold_
                     for member, t in zip(fitted.members_, members)], axis=0) > 0.5
    edge = fitted.members_[0].edge_probability
    for label, (p, _) in proba.items():
        mean, _, p16, p84 = binned_summaries(p, fitted.bin_edges_[label])
        for suffix, value in zip(("", "_err", "_p16", "_p84"),
                                 (mean, 0.5 * (p84 - p16), p16, p84)):
            np.testing.assert_allclose(np.asarray(table[label + suffix]), value, rtol=1e-12)
        values = np.concatenate([np.asarray(m.reference_labels_[label].value, dtype=float)
                                 for m in fitted.members_])
        outside = probability_outside(p, fitted.bin_edges_[label], np.nanmin(values),
                                      np.nanmax(values))
        np.testing.assert_array_equal(table[label + "_out_of_range"], (outside > edge) | novel)
    np.testing.assert_array_equal(
        table["embedding_distance"], np.median([t["embedding_distance"] for t in members], axis=0))


def test_the_ridge_expert_reads_a_store_in_chunks_as_it_reads_arrays(data, tmp_path,
                                                                     monkeypatch):
    import astropy.units as u

    from stellarlatent.datasets import SpectralStore
    from stellarlatent.estimators import _ridge
    from stellarlatent.estimators._data import as_source

    flux, labels = data
    flux = flux[:20].copy()
    flux[3, 5] = np.nan
    flux[4] *= 2.5  # brought to the level of the others
    path = tmp_path / "store.h5"
    with SpectralStore.create(path, np.linspace(5000, 5100, flux.shape[1]) * u.AA,
                              labels={"teff": u.K}, ivar=False) as store:
        store.append(flux, labels[:20]["teff",])
    monkeypatch.setattr(_ridge, "_CHUNK_VALUES", 7 * flux.shape[1])  # 3 chunks of 7 rows
    with SpectralStore(path) as store:
        chunked = _ridge.ridge_flux(as_source(store))
    np.testing.assert_array_equal(chunked, _ridge.ridge_flux(as_source(flux)))
    assert np.isnan(chunked[3, 5]) and np.nanmedian(chunked[4]) == pytest.approx(1.0)


def test_the_combined_distribution_is_the_normalised_product_of_the_experts(fitted, data):
    flux, _ = data
    combined = fitted.predict_proba(flux[64:70])["logg"][0]
    logs = np.mean([np.log(m.predict_proba(flux[64:70])["logg"][0]) for m in fitted.members_],
                   axis=0)
    j = list(fitted.bin_edges_).index("logg")
    # the ridge expert reads each spectrum divided by its median
    level = flux[64:70] / np.median(flux[64:70], axis=1, keepdims=True)
    logs = logs + fitted.ridge_.log_bin_mass(level, j, fitted.bin_edges_["logg"])
    expected = np.exp(logs) / np.exp(logs).sum(axis=1, keepdims=True)
    np.testing.assert_allclose(combined, expected, rtol=1e-4, atol=1e-10)  # float32 flux


def test_without_the_ridge_expert_it_is_the_geometric_mean_of_the_networks(fitted, data):
    flux, _ = data
    networks = clone(fitted).set_params(ridge_expert=False)
    networks._adopt(fitted.members_)
    combined = networks.predict_proba(flux[64:70])["logg"][0]
    logs = np.mean([np.log(m.predict_proba(flux[64:70])["logg"][0]) for m in fitted.members_],
                   axis=0)
    expected = np.exp(logs) / np.exp(logs).sum(axis=1, keepdims=True)
    np.testing.assert_allclose(combined, expected, rtol=1e-6)


def test_the_ridge_expert_is_ridge_regression_with_loo_penalty(data):
    from sklearn.linear_model import RidgeCV

    from stellarlatent.estimators._ridge import ALPHAS, RidgeExpert

    flux, labels = data
    values = np.column_stack([np.log10(labels["teff"].value), labels["logg"].value,
                              labels["feh"].value])
    expert = RidgeExpert().fit(flux[:64], values[:64])
    X = (flux[:64] - flux[:64].mean(axis=0)) / flux[:64].std(axis=0)
    reference = RidgeCV(alphas=ALPHAS).fit(X, values[:64, 1])
    assert expert.alpha_[1] == reference.alpha_
    np.testing.assert_allclose(
        expert.predict(flux[64:])[:, 1],
        reference.predict((flux[64:] - flux[:64].mean(axis=0)) / flux[:64].std(axis=0)),
        rtol=1e-6, atol=1e-8)
    # masked pixels are filled with the training median of the pixel
    holed = flux[64:].copy()
    holed[:, 10] = np.nan
    filled = flux[64:].copy()
    filled[:, 10] = np.median(flux[:64, 10])
    np.testing.assert_allclose(expert.predict(holed), expert.predict(filled))


def test_the_ridge_expert_keeps_the_ensemble_from_doing_worse_than_ridge(data):
    """Networks trained for one epoch know little; the product keeps ridge's precision."""
    flux, labels = data
    ensemble = DeepREMAPEnsemble(small_remap(max_epochs=1), n_members=2, random_state=0)
    ensemble.fit(flux[:64], labels[:64]).calibrate(flux[64:80], labels[64:80],
                                                   method="coverage")
    networks = clone(ensemble).set_params(ridge_expert=False)
    networks._adopt(ensemble.members_)
    networks.calibrate(flux[64:80], labels[64:80], method="coverage")
    ridge = ensemble.ridge_.predict(flux[80:] / np.median(flux[80:], axis=1, keepdims=True))[:, 1]
    truth = np.asarray(labels["logg"][80:])

    def scatter(predicted):
        return 1.4826 * np.median(np.abs(np.asarray(predicted) - truth))

    joined = scatter(ensemble.predict(flux[80:])["logg"])
    assert joined < 0.5 * scatter(networks.predict(flux[80:])["logg"])
    assert joined < 1.5 * scatter(ridge)
    # calibrate gave the ridge expert most of the weight where the networks know little
    assert ensemble.ridge_shares_["logg"] >= 0.6
    assert set(ensemble.ridge_shares_) == {"teff", "logg", "feh"}


def test_one_member_is_that_network(data):
    flux, labels = data
    ensemble = DeepREMAPEnsemble(small_remap(max_epochs=1), n_members=1, random_state=5,
                                 ridge_expert=False)
    ensemble.fit(flux[:64], labels[:64])
    alone = small_remap(max_epochs=1, random_state=5).fit(flux[:64], labels[:64])
    np.testing.assert_allclose(ensemble.predict_proba(flux[64:])["teff"][0],
                               alone.predict_proba(flux[64:])["teff"][0], rtol=1e-5, atol=1e-9)


def test_pretrain_then_fit_fine_tunes_copies_of_the_pretrained_members(data):
    flux, labels = data
    ensemble = DeepREMAPEnsemble(small_remap(max_epochs=1), n_members=2, fine_tune_epochs=2,
                                 fine_tune_lr=1e-3, random_state=0)
    ensemble.pretrain(flux[::-1][:64].copy(), labels[::-1][:64])
    before = [m.predict_proba(flux[64:])["teff"][0] for m in ensemble.pretrained_members_]
    ensemble.fit(flux[:64], labels[:64])
    after = [m.predict_proba(flux[64:])["teff"][0] for m in ensemble.pretrained_members_]
    for b, a in zip(before, after):
        np.testing.assert_array_equal(a, b)  # the pre-trained networks are kept as they were
    for member in ensemble.members_:
        assert len(member.fine_tune_history_) == 2
        assert member.bin_edges_["teff"] is not None
    first = ensemble.predict(flux[64:])["teff"]
    np.testing.assert_allclose(ensemble.fit(flux[:64], labels[:64]).predict(flux[64:])["teff"],
                               first)


def test_calibrate_by_coverage_reaches_the_level(fitted, data):
    flux, labels = data
    ensemble = clone(fitted)
    ensemble.members_ = fitted.members_
    ensemble._adopt(fitted.members_)
    ensemble.calibrate(flux[64:], labels[64:], method="coverage")
    table = ensemble.predict(flux[64:])
    inside = (table["teff_p16"] <= labels["teff"][64:]) & (labels["teff"][64:] <= table["teff_p84"])
    assert 0.55 <= np.mean(inside) <= 0.8
    assert ensemble.temperatures_["teff"] != 1.0
    ensemble.calibrate(flux[64:], labels[64:], method="nll")
    assert all(t > 0 for t in ensemble.temperatures_.values())


def test_the_tail_weight_mixes_in_a_wider_distribution_and_calibrate_fits_it(fitted, data):
    from stellarlatent.estimators._calibration import TAIL_WIDTH, softmax

    flux, labels = data
    ensemble = uncalibrated_copy(fitted)
    assert ensemble.tail_weights_ == dict.fromkeys(ensemble.bin_edges_, 0.0)
    joined = ensemble._combined_log_proba(flux[64:])
    ensemble.temperatures_ = dict.fromkeys(ensemble.temperatures_, 1.5)
    ensemble.tail_weights_ = dict.fromkeys(ensemble.tail_weights_, 0.2)
    expected = (0.8 * softmax(joined["logg"] / 1.5)
                + 0.2 * softmax(joined["logg"] / (1.5 * TAIL_WIDTH)))
    np.testing.assert_allclose(ensemble.predict_proba(flux[64:])["logg"][0], expected,
                               rtol=1e-10)
    # fitted with the temperature by the coverage of several levels, and only then
    ensemble.calibrate(flux[64:], labels[64:])
    assert set(ensemble.tail_weights_) == set(ensemble.bin_edges_)
    assert all(0.0 <= w <= 0.5 for w in ensemble.tail_weights_.values())
    for kwargs in ({"tail": False}, {"method": "nll"}, {"level": 0.6827}):
        ensemble.calibrate(flux[64:], labels[64:], **kwargs)
        assert ensemble.tail_weights_ == dict.fromkeys(ensemble.bin_edges_, 0.0)


def test_calibrating_with_the_tail_matches_both_levels_where_one_temperature_cannot():
    from stellarlatent._bins import binned_cdf
    from stellarlatent.estimators._binning import coverage_temperature
    from stellarlatent.estimators._calibration import fit_tail, mixture

    rng = np.random.default_rng(5)
    centres, edges = np.arange(60) + 0.5, np.arange(61.0)
    truth = rng.uniform(20, 40, 1500)
    values = truth + rng.normal(0, 1, 1500) * np.where(rng.random(1500) < 0.15, 2.5, 1.0)
    logp = -0.5 * (centres - truth[:, None]) ** 2
    levels = np.array([0.6827, 0.9545])

    def miss(proba):
        pit = binned_cdf(proba, edges, values)
        return np.max(np.abs(np.mean(np.abs(2 * pit - 1)[:, None] <= levels, axis=0) - levels))

    one = miss(mixture(logp, coverage_temperature(logp, edges, values, levels), 0.0))
    temperature, tail = fit_tail(logp, edges, values, levels)
    assert tail > 0 and miss(mixture(logp, temperature, tail)) < min(0.01, one / 2)
    # errors as narrow as predicted need no tail
    exact = truth + rng.normal(0, 1, 1500)
    assert fit_tail(logp, edges, exact, levels)[1] == 0.0


def test_widen_stretches_about_the_mean_where_a_temperature_moves_it():
    from stellarlatent.estimators._binning import binned_summaries
    from stellarlatent.estimators._calibration import softmax, widen

    edges = np.linspace(2800.0, 9000.0, 63)
    centres = 0.5 * (edges[1:] + edges[:-1])
    # cool stars near the lower edge, with a tail towards hotter bins
    logp = np.stack([-0.5 * ((centres - t) / 300.0) ** 2 + np.where(centres > t, 0.0, -1.0)
                     for t in (3000.0, 5200.0, 5800.0)])
    proba = softmax(logp)
    mean, std, _, _ = binned_summaries(proba, edges)
    np.testing.assert_allclose(widen(proba, edges, 1.0), proba, atol=1e-12)
    for scale in (0.6, 2.5):
        wide = widen(proba, edges, scale)
        np.testing.assert_allclose(wide.sum(axis=1), 1.0)
        assert np.all(wide >= 0)
        wide_mean, wide_std, _, _ = binned_summaries(wide, edges)
        np.testing.assert_allclose(wide_mean[1:], mean[1:], atol=5.0)
        np.testing.assert_allclose(wide_std[1:] / std[1:], scale, rtol=0.1)
    # a temperature that widens as much drags the mean of the cut distribution up
    hot_mean = binned_summaries(softmax(logp / 2.5 ** 2), edges)[0]
    assert hot_mean[0] - mean[0] > 3 * abs(binned_summaries(widen(proba, edges, 2.5),
                                                            edges)[0][0] - mean[0])


@pytest.mark.parametrize("method", ["coverage", "nll"])
def test_fit_scale_finds_how_much_wider_the_errors_are(method):
    from stellarlatent.estimators._calibration import fit_scale

    rng = np.random.default_rng(3)
    edges = np.arange(81.0)
    truth = rng.uniform(25, 55, 3000)
    values = truth + rng.normal(0, 3.0, 3000)
    proba = np.exp(-0.5 * ((edges[:-1] + 0.5 - truth[:, None]) / 1.5) ** 2)
    values[::50] = np.nan
    assert fit_scale(proba, edges, values, method) == pytest.approx(2.0, rel=0.1)
    assert fit_scale(proba, edges, truth + rng.normal(0, 1.5, 3000), method) == pytest.approx(
        1.0, rel=0.1)


@pytest.fixture(scope="module")
def hot_noisier():
    """Spectra whose hot half is five times noisier than its cool half, for calibration."""
    flux, labels = line_spectra(n=120, n_pixels=96, seed=11, noise=0.0)
    hot = labels["teff"].value > 5500
    noise = np.where(hot, 0.05, 0.01)[:, None]
    return flux + noise * np.random.default_rng(12).standard_normal(flux.shape), labels


def test_calibrating_by_type_fits_each_type_on_its_own_stars(fitted, hot_noisier, tmp_path):
    from stellarlatent.estimators._binning import binned_summaries
    from stellarlatent.estimators._calibration import mixture, widen
    from stellarlatent.estimators.ensemble import MIN_TYPE_SPECTRA

    flux, labels = hot_noisier
    ensemble = uncalibrated_copy(fitted).calibrate(flux, labels, by=("teff", [5500]))
    assert ensemble.calibrated_by_ == ("teff", [5500.0])
    assert all(len(v) == 2 for v in ensemble.type_scales_.values())
    # the noisier hot stars get wider distributions than the cool ones
    assert ensemble.type_scales_["teff"][1] > ensemble.type_scales_["teff"][0]
    # a spectrum's distribution is the overall one, stretched by the factor of its type
    joined = ensemble._combined_log_proba(flux)
    overall = {label: mixture(logp, ensemble.temperatures_[label], ensemble.tail_weights_[label])
               for label, logp in joined.items()}
    types = (binned_summaries(overall["teff"], ensemble.bin_edges_["teff"])[0]
             >= 5500).astype(int)
    proba = ensemble.predict_proba(flux)
    for label, edges in ensemble.bin_edges_.items():
        for k in (0, 1):
            rows = types == k
            expected = widen(overall[label][rows], edges, ensemble.type_scales_[label][k])
            np.testing.assert_allclose(proba[label][0][rows], expected, rtol=1e-10)
        # the labels stay those of the overall calibration, to within the binning (these
        # distributions of a small network span a few of its dozen bins)
        shift = (binned_summaries(proba[label][0], edges)[0]
                 - binned_summaries(overall[label], edges)[0])
        assert np.median(np.abs(shift)) < 0.1 * np.min(np.diff(edges))
    # each type's 68% intervals hold about 68% of its own calibration stars (one factor
    # shares the miss between the 68% and the 95% intervals)
    table = ensemble.predict(flux)
    for label in ensemble.bin_edges_:
        truth = labels[label].value
        inside = (table[f"{label}_p16"].value <= truth) & (truth <= table[f"{label}_p84"].value)
        for k in (0, 1):
            if np.sum(types == k) >= MIN_TYPE_SPECTRA:
                assert 0.55 <= np.mean(inside[types == k]) <= 0.85
    # saved and read back, the same; calibrated again without types, none left
    ensemble.save(tmp_path / "typed.pt")
    again = DeepREMAPEnsemble.load(tmp_path / "typed.pt", device="cpu")
    assert again.calibrated_by_ == ensemble.calibrated_by_
    np.testing.assert_array_equal(again.predict_proba(flux)["feh"][0], proba["feh"][0])
    # a file calibrated by type without its factors is refused, not read as something else
    payload = torch.load(tmp_path / "typed.pt", weights_only=True)
    metadata = json.loads(payload["metadata"])
    del metadata["type_scales"]
    payload["metadata"] = json.dumps(metadata)
    torch.save(payload, tmp_path / "broken.pt")
    with pytest.raises(ValueError, match="calibrated by type without a width factor"):
        DeepREMAPEnsemble.load(tmp_path / "broken.pt", device="cpu")
    ensemble.calibrate(flux, labels)
    assert ensemble.calibrated_by_ is None and ensemble.type_scales_ == {}


def test_a_type_with_too_few_stars_keeps_the_overall_calibration(fitted, hot_noisier):
    flux, labels = hot_noisier
    ensemble = uncalibrated_copy(fitted).calibrate(flux, labels, by=("teff", [4050]))
    for label in ensemble.bin_edges_:
        assert ensemble.type_scales_[label][0] == 1.0


@pytest.mark.parametrize("by", ["teff", ("mass", [1.0]), ("teff", []), ("teff", [6000, 5000]),
                                ("teff", [np.nan]), ("teff", [5000], 3)])
def test_calibrate_refuses_a_malformed_by(fitted, data, by):
    flux, labels = data
    with pytest.raises(ValueError, match="by must be None or a .label, edges. pair"):
        uncalibrated_copy(fitted).calibrate(flux[64:], labels[64:], by=by)


def test_the_ridge_expert_keeps_its_leave_one_out_predictions(data):
    from sklearn.linear_model import Ridge

    from stellarlatent.estimators._ridge import RidgeExpert

    flux, labels = data
    values = np.column_stack([labels["logg"].value, labels["feh"].value])
    values[5, 1] = np.nan
    expert = RidgeExpert().fit(flux[:64], values[:64])
    assert expert.loo_predictions_.shape == (64, 2) and np.isnan(expert.loo_predictions_[5, 1])
    X = (flux[:64] - flux[:64].mean(axis=0)) / flux[:64].std(axis=0)
    for i in (0, 17):
        others = np.arange(64) != i
        alone = Ridge(alpha=expert.alpha_[0]).fit(X[others], values[:64][others, 0])
        assert expert.loo_predictions_[i, 0] == pytest.approx(alone.predict(X[i:i + 1])[0],
                                                              rel=1e-6)


def test_calibrate_with_ridge_train_refits_the_ridge_expert_on_every_star(fitted, data):
    from stellarlatent.estimators._ridge import RidgeExpert

    flux, labels = data
    ensemble = clone(fitted)
    ensemble._adopt(fitted.members_)
    ensemble.ridge_ = fitted.ridge_
    plain = clone(ensemble)
    plain._adopt(fitted.members_)
    plain.ridge_ = fitted.ridge_
    plain.calibrate(flux[64:], labels[64:])
    assert ensemble.calibrate(flux[64:], labels[64:],
                              ridge_train=(flux[:64], labels[:64])) is ensemble
    normalised = flux / np.median(flux, axis=1, keepdims=True)
    teff = labels["teff"].value
    values = np.column_stack([np.log10(teff) if fitted.members_[0]._log_teff else teff,
                              labels["logg"].value, labels["feh"].value])
    every = RidgeExpert().fit(normalised, values)
    np.testing.assert_allclose(ensemble.ridge_.coef_, every.coef_, rtol=1e-2, atol=1e-6)  # float32
    assert not np.allclose(ensemble.ridge_.coef_, fitted.ridge_.coef_)
    # the calibration read the out-of-sample (leave-one-out) predictions of the 32 stars,
    # not the in-sample ones of a ridge that saw them
    assert ensemble.temperatures_ != plain.temperatures_ or \
        ensemble.ridge_shares_ != plain.ridge_shares_
    networks = clone(fitted).set_params(ridge_expert=False)
    networks._adopt(fitted.members_)
    with pytest.raises(ValueError, match="ridge_train refits the ridge expert"):
        networks.calibrate(flux[64:], labels[64:], ridge_train=(flux[:64], labels[:64]))
    with pytest.raises(ValueError, match="ridge_train must be a tuple"):
        ensemble.calibrate(flux[64:], labels[64:], ridge_train=flux[:64])


@pytest.fixture(scope="module")
def pretrained(data):
    flux, labels = data
    ensemble = DeepREMAPEnsemble(small_remap(max_epochs=1, validation_fraction=0.0),
                                 n_members=2, fine_tune_epochs=2, fine_tune_lr=1e-3,
                                 random_state=0)
    ensemble.pretrain(flux[::-1][:64].copy(), labels[::-1][:64])
    return ensemble.fit(flux[:64], labels[:64])


def test_cross_calibrate_predicts_each_star_with_a_copy_that_never_saw_it(pretrained, data,
                                                                          monkeypatch):
    flux, labels = data
    ensemble = uncalibrated_copy(pretrained, pretrained=True)
    before = ensemble.predict_proba(flux[64:])["teff"][0]
    seen, predicted = [], []
    fit, log_proba = DeepREMAPEnsemble.fit, DeepREMAPEnsemble._log_proba

    def recording_fit(self, X, y=None, sample_weight=None, checkpoint_dir=None):
        seen.append({row.tobytes() for row in np.asarray(X)})
        return fit(self, X, y, sample_weight, checkpoint_dir=checkpoint_dir)

    def recording_log_proba(self, X):
        predicted.append({row.tobytes() for row in np.asarray(X)})
        return log_proba(self, X)

    monkeypatch.setattr(DeepREMAPEnsemble, "fit", recording_fit)
    monkeypatch.setattr(DeepREMAPEnsemble, "_log_proba", recording_log_proba)
    groups = np.arange(64) // 2  # pairs of spectra of one "star" stay in one fold
    assert ensemble.cross_calibrate(flux[:64], labels[:64], cv=4, groups=groups) is ensemble
    monkeypatch.undo()
    assert len(seen) == 4 and len(predicted) == 4
    every = {row.tobytes() for row in flux[:64]}
    assert set().union(*predicted) == every  # each star predicted once, out of fold
    for trained, held in zip(seen, predicted):
        assert not trained & held and trained | held == every
        for first, second in flux[:64].reshape(32, 2, -1):
            assert (first.tobytes() in trained) == (second.tobytes() in trained)
    # the members and the ridge expert are still those fitted on all the stars
    assert all(a is b for a, b in zip(ensemble.members_, pretrained.members_))
    assert ensemble.ridge_ is pretrained.ridge_
    assert ensemble.temperatures_ != dict.fromkeys(ensemble.temperatures_, 1.0)
    after = uncalibrated_copy(ensemble)
    np.testing.assert_allclose(after.predict_proba(flux[64:])["teff"][0], before)


def test_cross_calibrate_fits_the_out_of_fold_distributions_as_calibrate_would(pretrained,
                                                                               data):
    from sklearn.model_selection import KFold

    from stellarlatent._bins import binned_cdf
    from stellarlatent.estimators._calibration import softmax

    flux, labels = data
    ensemble = uncalibrated_copy(pretrained, pretrained=True)
    ensemble.cross_calibrate(flux[:64], labels[:64], cv=3, level=0.6827)
    # the same folds by hand: the out-of-fold distributions, then calibrate's fit on them
    names = tuple(ensemble.bin_edges_)
    values = np.column_stack([labels[name].value[:64] for name in names])
    log_proba = {name: np.empty((64, len(ensemble.bin_edges_[name]) - 1)) for name in names}
    ridge_mass = {name: np.empty_like(log_proba[name]) for name in names}
    for train, test in KFold(3, shuffle=True, random_state=0).split(np.arange(64)):
        copy_ = clone(ensemble)
        copy_.pretrained_members_ = pretrained.pretrained_members_
        copy_.fit(flux[train], {name: values[train, j] for j, name in enumerate(names)})
        for name, logp in copy_._log_proba(flux[test]).items():
            log_proba[name][test] = logp
        for name, logm in copy_._ridge_log_mass(flux[test]).items():
            ridge_mass[name][test] = logm
    by_hand = uncalibrated_copy(ensemble)
    by_hand._fit_calibration(log_proba, ridge_mass, values, "coverage", (0.6827,), True)
    for name in names:
        assert ensemble.temperatures_[name] == pytest.approx(by_hand.temperatures_[name])
        assert ensemble.ridge_shares_[name] == by_hand.ridge_shares_[name]
    # the out-of-fold 68% intervals hold about 68% of the stars they were fitted to
    joined = ensemble._joined(log_proba, ridge_mass)
    name = names[0]
    pit = binned_cdf(softmax(joined[name] / ensemble.temperatures_[name]),
                     np.asarray(ensemble.bin_edges_[name], dtype=float), values[:, 0])
    assert 0.6 <= np.mean(np.abs(2 * pit - 1) <= 0.6827) <= 0.76


@pytest.mark.parametrize("kwargs, message", [
    ({"cv": 1}, "cv must be an integer of at least 2"),
    ({"cv": True}, "cv must be an integer of at least 2"),
    ({"cv": 65}, "cv=65 folds need at least 65 spectra"),
    ({"groups": np.zeros(3)}, "groups must have one entry per spectrum"),
    ({"groups": np.arange(64) % 2, "cv": 3}, "cv=3 folds need at least 3 groups"),
    ({"sample_weight": np.ones(3)}, r"sample_weight must have shape \(64,\)"),
    ({"method": "mse"}, "method must be 'nll' or 'coverage'"),
])
def test_cross_calibrate_refuses_bad_arguments(pretrained, data, kwargs, message):
    flux, labels = data
    with pytest.raises(ValueError, match=message):
        pretrained.cross_calibrate(flux[:64], labels[:64], **kwargs)


def test_cross_calibrate_calibrates_by_type_on_the_out_of_fold_distributions(pretrained, data):
    flux, labels = data
    ensemble = uncalibrated_copy(pretrained, pretrained=True)
    ensemble.cross_calibrate(flux[:64], labels[:64], cv=2, by=("logg", [3.0]))
    assert ensemble.calibrated_by_ == ("logg", [3.0])
    assert all(len(v) == 2 and all(scale > 0 for scale in v)
               for v in ensemble.type_scales_.values())


def test_cross_calibrate_needs_the_bins_of_a_pretraining(fitted, data):
    flux, labels = data
    with pytest.raises(ValueError, match="was not pre-trained .* with calibrate"):
        fitted.cross_calibrate(flux[:64], labels[:64])


def test_save_and_load_give_the_same_predictions(fitted, data, tmp_path):
    flux, _ = data
    fitted.temperatures_ = {k: 0.8 for k in fitted.temperatures_}
    fitted.tail_weights_ = {k: 0.1 for k in fitted.tail_weights_}
    loaded = DeepREMAPEnsemble.load(fitted.save(tmp_path / "ensemble.pt"), device="cpu")
    assert loaded.temperatures_ == fitted.temperatures_
    assert loaded.tail_weights_ == fitted.tail_weights_
    assert loaded.n_members == 3
    np.testing.assert_allclose(loaded.predict(flux[64:])["feh"], fitted.predict(flux[64:])["feh"])
    np.testing.assert_array_equal(loaded.ridge_.coef_, fitted.ridge_.coef_)
    assert loaded.ridge_shares_ == fitted.ridge_shares_
    # the members' template comes back, so that the loaded ensemble refits the same networks
    assert loaded.estimator.get_params() == {**fitted.estimator.get_params(), "device": "auto"}
    fitted.temperatures_ = {k: 1.0 for k in fitted.temperatures_}
    fitted.tail_weights_ = {k: 0.0 for k in fitted.tail_weights_}


def test_an_ensemble_file_of_the_first_format_still_loads(fitted, data, tmp_path):
    """Version 1 files had neither a ridge expert nor network temperatures."""
    flux, _ = data
    import json

    import torch

    path = fitted.save(tmp_path / "ensemble.pt")
    payload = torch.load(path, weights_only=True)
    payload["format_version"] = 1
    payload.pop("ridge")
    metadata = json.loads(payload["metadata"])
    metadata["params"].pop("ridge_expert")
    metadata.pop("network_temperatures")
    payload["metadata"] = json.dumps(metadata)
    torch.save(payload, tmp_path / "old.pt")
    old = DeepREMAPEnsemble.load(tmp_path / "old.pt", device="cpu")
    assert old.ridge_ is None and old.ridge_expert is False
    networks = clone(fitted).set_params(ridge_expert=False)
    networks._adopt(fitted.members_)
    np.testing.assert_allclose(old.predict(flux[64:])["feh"], networks.predict(flux[64:])["feh"])


def test_load_refuses_other_files(fitted, tmp_path):
    path = fitted.members_[0].save(tmp_path / "member.pt")
    with pytest.raises(ValueError, match="holds a DeepREMAP, not a DeepREMAPEnsemble file; "
                                         "use DeepREMAP.load"):
        DeepREMAPEnsemble.load(path)
    # and the other way round
    with pytest.raises(ValueError, match="holds a DeepREMAPEnsemble, not a DeepREMAP "
                                         "file; use DeepREMAPEnsemble.load"):
        DeepREMAP.load(fitted.save(tmp_path / "ensemble.pt"))
    (tmp_path / "junk.pt").write_bytes(b"junk")
    with pytest.raises(ValueError, match="not a readable stellarlatent model file"):
        DeepREMAPEnsemble.load(tmp_path / "junk.pt")
    fitted.save(tmp_path / "ensemble.pt")
    with pytest.raises(ValueError, match="^device must be .* got 'gpu'$"):
        DeepREMAPEnsemble.load(tmp_path / "ensemble.pt", device="gpu")


def test_embed_and_kneighbors(fitted, data):
    flux, _ = data
    embedding = fitted.embed(flux[64:])
    np.testing.assert_allclose(np.linalg.norm(embedding, axis=1), 1.0, rtol=1e-5)
    distances, indices, table = fitted.kneighbors(flux[:3], n_neighbors=4)
    assert distances.shape == indices.shape == (3, 4)
    assert np.all(np.diff(distances, axis=1) >= 0)
    np.testing.assert_allclose(distances[:, 0], 0.0, atol=1e-5)  # each training star finds itself
    assert table["teff"].shape == (3, 4)
    with pytest.raises(ValueError, match="n_neighbors must be an integer"):
        fitted.kneighbors(flux[:3], n_neighbors=0)


def test_set_reference_replaces_what_kneighbors_searches_and_keeps_predictions(data):
    flux, labels = data
    model = DeepREMAPEnsemble(small_remap(max_epochs=1), n_members=2, random_state=0).fit(
        flux[:64], labels[:64])
    before = model.predict(flux[64:])
    library = labels[64:]
    assert model.set_reference(flux[64:], library) is model
    distances, indices, table = model.kneighbors(flux[64:67], n_neighbors=2)
    assert indices.max() < 32 and len(model.members_[0].reference_labels_) == 32
    np.testing.assert_allclose(distances[:, 0], 0.0, atol=1e-5)  # each library star finds itself
    np.testing.assert_allclose(table["teff"][:, 0], library["teff"][:3])
    after = model.predict(flux[64:])
    for name in ("teff", "teff_err"):
        np.testing.assert_allclose(np.asarray(after[name]), np.asarray(before[name]))
    with pytest.raises(ValueError):
        model.set_reference(flux[64:, :50], library)  # not the model's grid


def test_members_trained_in_parallel_processes_equal_those_trained_here(data):
    flux, labels = data
    params = dict(n_members=2, random_state=1)
    here = DeepREMAPEnsemble(small_remap(max_epochs=1), **params).fit(flux[:48], labels[:48])
    there = DeepREMAPEnsemble(small_remap(max_epochs=1), n_jobs=2, **params).fit(
        flux[:48], labels[:48])
    np.testing.assert_allclose(there.predict(flux[48:])["teff"], here.predict(flux[48:])["teff"],
                               rtol=1e-5)


@pytest.mark.parametrize("params, message", [
    ({"n_members": 0}, r"n_members must be an integer in \[1, 100\]"),
    ({"estimator": "remap"}, "estimator must be None or a DeepREMAP estimator"),
    ({"fine_tune_lr": -1.0}, "fine_tune_lr must be None or a number"),
    ({"n_jobs": 0}, "n_jobs must be None, -1 or a positive integer"),
])
def test_bad_parameters_are_refused(params, message, data):
    flux, labels = data
    with pytest.raises(ValueError, match=message):
        DeepREMAPEnsemble(**params).fit(flux, labels)


def test_every_parameter_is_constrained_and_clone_works(fitted):
    assert set(fitted.get_params(deep=False)) <= set(all_constraints(DeepREMAPEnsemble))
    copy = clone(fitted)
    assert isinstance(copy.estimator, DeepREMAP)
    assert not hasattr(copy, "members_")


def _interrupt_fine_tune_of(monkeypatch, random_state, at_epoch):
    """Make the fine-tuning of the network seeded ``random_state`` stop after ``at_epoch``."""
    original = DeepREMAP._after_epoch

    def interrupt(self, epoch):
        if self._stage == "fine_tune" and self.random_state == random_state and epoch == at_epoch:
            raise KeyboardInterrupt
        return original(self, epoch)

    monkeypatch.setattr(DeepREMAP, "_after_epoch", interrupt)
    return original


def test_an_interrupted_ensemble_resumes_from_its_members_checkpoints(data, tmp_path,
                                                                      monkeypatch):
    flux, labels = data

    def ensemble():
        return DeepREMAPEnsemble(small_remap(max_epochs=2), n_members=2, fine_tune_epochs=3,
                                 fine_tune_lr=1e-3, random_state=0)

    synthetic = (flux[::-1][:64].copy(), labels[::-1][:64])
    full = ensemble()
    full.pretrain(*synthetic)
    full.fit(flux[:64], labels[:64])

    # member 1 (seed 7919, fine-tuned with 7920) is stopped in its second epoch
    original = _interrupt_fine_tune_of(monkeypatch, 7920, 2)
    first = ensemble()
    first.pretrain(*synthetic, checkpoint_dir=tmp_path / "pretrain")
    with pytest.raises(KeyboardInterrupt):
        first.fit(flux[:64], labels[:64], checkpoint_dir=tmp_path / "fit")
    monkeypatch.setattr(DeepREMAP, "_after_epoch", original)
    assert sorted(p.name for p in (tmp_path / "fit").iterdir()) == ["member-0", "member-1"]

    resumed = ensemble()
    resumed.pretrain(*synthetic, checkpoint_dir=tmp_path / "pretrain")
    resumed.fit(flux[:64], labels[:64], checkpoint_dir=tmp_path / "fit")
    assert [[h["epoch"] for h in m.fine_tune_history_] for m in resumed.members_] == [
        [1, 2, 3], [1, 2, 3]]
    np.testing.assert_allclose(resumed.predict(flux[64:])["teff"], full.predict(flux[64:])["teff"],
                               rtol=1e-5)


def test_a_fine_tuning_checkpoint_resumes_only_from_its_own_start(data, tmp_path):
    flux, labels = data
    ensemble = DeepREMAPEnsemble(small_remap(max_epochs=1), n_members=1, fine_tune_epochs=1,
                                 random_state=0)
    ensemble.pretrain(flux[::-1][:64].copy(), labels[::-1][:64])
    ensemble.fit(flux[:64], labels[:64], checkpoint_dir=tmp_path)
    # another pre-training (other spectra, same bins) leaves the fine-tuning's checkpoint
    # written for other starting weights
    other = clone(ensemble)
    other.pretrain(flux[:64], labels[::-1][:64])
    other.pretrained_members_[0].bin_edges_ = ensemble.pretrained_members_[0].bin_edges_
    with pytest.raises(ValueError, match="other data or hyperparameters"):
        other.fit(flux[:64], labels[:64], checkpoint_dir=tmp_path)


def test_checkpoints_need_a_fixed_random_state(data, tmp_path):
    flux, labels = data
    with pytest.raises(ValueError, match="checkpoint_dir needs a fixed random_state"):
        DeepREMAPEnsemble(small_remap(max_epochs=1), n_members=2).fit(
            flux[:32], labels[:32], checkpoint_dir=tmp_path)
    (tmp_path / "file").write_text("")
    with pytest.raises(NotADirectoryError, match="is a file"):
        DeepREMAPEnsemble(small_remap(max_epochs=1), n_members=2, random_state=0).fit(
            flux[:32], labels[:32], checkpoint_dir=tmp_path / "file")


def test_cross_calibrate_checkpoints_each_fold_and_resumes_to_the_same_calibration(
        pretrained, data, tmp_path):
    flux, labels = data
    plain = uncalibrated_copy(pretrained, pretrained=True)
    plain.cross_calibrate(flux[:64], labels[:64], cv=2)
    checkpointed = uncalibrated_copy(pretrained, pretrained=True)
    checkpointed.cross_calibrate(flux[:64], labels[:64], cv=2, checkpoint_dir=tmp_path)
    assert sorted(str(p.relative_to(tmp_path)) for p in tmp_path.glob("*/*")) == [
        "fold-0/member-0", "fold-0/member-1", "fold-1/member-0", "fold-1/member-1"]
    again = uncalibrated_copy(pretrained, pretrained=True)
    again.cross_calibrate(flux[:64], labels[:64], cv=2, checkpoint_dir=tmp_path)
    for model in (checkpointed, again):
        assert model.temperatures_ == pytest.approx(plain.temperatures_, rel=1e-5)
        assert model.ridge_shares_ == pytest.approx(plain.ridge_shares_)
