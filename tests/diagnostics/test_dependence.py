"""latent_dependence on latents whose dependence is known by construction."""

import numpy as np
import pytest

from stellarlatent.diagnostics import latent_dependence


@pytest.fixture
def rng():
    return np.random.default_rng(0)


def test_independent_latents_are_judged_independent(rng):
    Z = rng.normal(size=(3000, 4)) * [1.0, 0.5, 2.0, 0.3]
    result = latent_dependence(Z)
    assert list(result.dims) == [0, 1, 2, 3]
    assert result.max_pair_abs_rho < 0.1
    off = ~np.eye(4, dtype=bool)
    assert np.all(result.nmi[off] < 0.05)
    assert result.total_correlation < 0.02
    assert result.entangled_pairs() == []


def test_a_nonlinear_function_of_another_latent_is_entangled(rng):
    a = rng.uniform(-1, 1, 3000)
    # not monotonic: invisible to a rank correlation, plain to the mutual information
    Z = np.column_stack([a, a**2 + 0.02 * rng.normal(size=3000), rng.normal(size=3000)])
    result = latent_dependence(Z)
    assert result.abs_spearman[0, 1] < 0.1
    assert result.nmi[0, 1] > 0.5
    pairs = result.entangled_pairs()
    assert [(p[0], p[1]) for p in pairs] == [(0, 1)]
    assert "latents 0 and 1 share" in result.verdict()[1]
    assert result.verdict()[0].startswith("entangled")


def test_a_monotonic_dependence_shows_in_rank_correlation_and_total_correlation(rng):
    a = rng.normal(size=2000)
    Z = np.column_stack([a, np.exp(a) + 0.01 * rng.normal(size=2000), rng.normal(size=2000)])
    result = latent_dependence(Z)
    assert result.abs_spearman[0, 1] > 0.95
    assert result.max_pair_abs_rho == pytest.approx(result.abs_spearman[0, 1])
    assert result.total_correlation > 1.0


def test_only_informative_latents_are_compared_and_the_unused_are_named(rng):
    a = rng.normal(size=1000)
    Z = np.column_stack([a, np.full(1000, 0.001), rng.normal(size=1000),
                         1e-3 * rng.normal(size=1000)])
    result = latent_dependence(Z)
    assert list(result.dims) == [0, 2]
    assert result.disentangled
    verdict = result.verdict()
    assert verdict[0].startswith("disentangled")
    assert "latents 1, 3 are unused" in verdict[-1]


def test_nothing_pruned_and_collapse_are_said(rng):
    every = latent_dependence(rng.normal(size=(500, 8)))
    assert every.verdict()[0] == "not pruned: every latent is informative"
    assert "nothing was pruned; raise beta" in every.verdict()[-1]
    assert not every.disentangled
    collapsed = latent_dependence(1e-4 * rng.normal(size=(500, 4)))
    assert collapsed.verdict()[0] == "collapsed: no latent is informative"
    assert not collapsed.disentangled


def test_too_few_spectra_are_not_judged_disentangled(rng):
    a = rng.normal(size=3)
    dependence = latent_dependence(np.column_stack([a, 2 * a, rng.normal(size=3)]))
    assert dependence.n_samples == 3 and dependence.too_few
    assert np.isnan(dependence.max_pair_abs_rho) and not dependence.disentangled
    assert np.isnan(dependence.abs_spearman[0, 1]) and dependence.abs_spearman[0, 0] == 1
    assert dependence.verdict()[0].startswith("not judged: 3 spectra are too few")
    assert latent_dependence(rng.normal(size=(50, 3))).n_samples == 50


def test_explicit_dims_and_bad_arguments(rng):
    Z = rng.normal(size=(200, 3))
    assert list(latent_dependence(Z, dims=[2, 0]).dims) == [2, 0]
    with pytest.raises(ValueError, match="n_bins must be an integer >= 2"):
        latent_dependence(Z, n_bins=1)
    for bad in (-1, 2):
        with pytest.raises(ValueError, match=r"rho_threshold must be a number in \[0, 1\]"):
            latent_dependence(Z, rho_threshold=bad)
    with pytest.raises(ValueError, match="nmi_threshold must be a number in"):
        latent_dependence(Z, nmi_threshold=1.5)
    with pytest.raises(ValueError, match="threshold must be a non-negative number"):
        latent_dependence(Z, threshold=-0.1)


def test_the_report_flags_entangled_pairs_and_labels_sharing_a_latent(rng):
    from stellarlatent.diagnostics import DisentanglementReport

    teff = rng.uniform(4000, 7000, 1500)
    rv = rng.uniform(-300, 300, 1500)
    Z = rng.normal(0, 0.005, (1500, 6))
    Z[:, 1] = (teff - 5500) / 1000 + 0.1 * rv / 300 + rng.normal(0, 0.02, 1500)
    Z[:, 3] = np.tanh(Z[:, 1]) + rng.normal(0, 0.02, 1500)
    report = DisentanglementReport.from_latents(Z, {"teff": teff, "rv": 0.2 * teff + rv})
    table = report.dependence_table
    assert (table["dim_a"][0], table["dim_b"][0]) == (1, 3)
    assert table["entangled"][0]
    assert table.meta["total_correlation"] > 1
    verdict = report.verdict
    assert verdict[0].startswith("entangled")
    assert any("are carried best by the same latent" in s for s in verdict)
    assert "entangled" in repr(report)


def test_one_factor_in_two_forms_sharing_a_latent_is_not_flagged(rng):
    from stellarlatent.diagnostics import DisentanglementReport

    teff, rv = rng.uniform(4000, 7000, 1500), rng.uniform(-300, 300, 1500)
    Z = rng.normal(0, 0.005, (1500, 5))
    Z[:, 0] = (teff - 5500) / 1000
    Z[:, 2] = rv / 300
    labels = {"teff": teff, "log_teff": np.log10(teff), "rv": rv}
    assert not any("not separated" in s for s in
                   DisentanglementReport.from_latents(Z, labels).verdict)
    # a real second factor on the same latent still is, named once with its first form
    Z[:, 0] += 0.5 * rv / 300
    Z[:, 2] = rng.normal(0, 0.005, 1500)
    sentences = [s for s in DisentanglementReport.from_latents(Z, labels).verdict
                 if "not separated" in s]
    assert sentences == ["labels teff and rv are carried best by the same latent 0: they are "
                         "not separated"]
    # a single informative latent has no pair
    Z[:, 0] = (teff - 5500) / 1000
    assert DisentanglementReport.from_latents(Z, {"teff": teff}).verdict[0] == (
        "disentangled: latent 0 is the only informative one, so no pair can depend on each other")


def test_the_report_of_independent_factors_says_disentangled(rng):
    from stellarlatent.diagnostics import DisentanglementReport

    teff, rv = rng.uniform(4000, 7000, 1500), rng.uniform(-300, 300, 1500)
    Z = rng.normal(0, 0.005, (1500, 5))
    Z[:, 0] = (teff - 5500) / 1000
    Z[:, 2] = rv / 300
    report = DisentanglementReport.from_latents(Z, {"teff": teff, "rv": rv})
    assert report.verdict[0].startswith("disentangled")
    assert not any(report.dependence_table["entangled"])


def test_a_label_no_latent_carries_is_not_said_to_share_one(rng):
    # the plug-in histogram gives an independent label about 0.37 on 300 stars,
    # as much as a real label on a latent that carries something else
    from stellarlatent.diagnostics import DisentanglementReport

    n = 300
    teff, rv = rng.uniform(4000, 7000, n), rng.uniform(-300, 300, n)
    vsini, feh = rng.uniform(0, 30, n), rng.uniform(-1, 0.4, n)
    Z = rng.normal(0, 0.005, (n, 6))
    Z[:, 0] = (teff - 5500) / 1000 + rng.normal(0, 0.05, n)
    Z[:, 3] = rv / 200 + rng.normal(0, 0.05, n)
    report = DisentanglementReport.from_latents(
        Z, {"teff": teff, "rv": rv, "vsini": vsini, "feh": feh})
    assert report.best_dimension("vsini").mi > 0.3
    assert report.best_dimension("vsini").mi <= report.chance_level("vsini")
    assert report.best_dimension("rv").mi > report.chance_level("rv")
    assert not any("not separated" in s for s in report.verdict)
    assert report.verdict[-1].startswith("labels vsini, feh: no informative latent carries them "
                                         "beyond chance")
    # a weak but significant rank correlation is not called chance
    Z[:, 3] += 0.4 * (feh - feh.mean()) / feh.std()
    report = DisentanglementReport.from_latents(Z, {"teff": teff, "feh": feh})
    assert not any("beyond chance" in s for s in report.verdict)


def test_chance_level_checks_its_arguments_and_keeps_its_value(rng):
    from stellarlatent.diagnostics import DisentanglementReport

    Z = rng.normal(size=(200, 3))
    report = DisentanglementReport.from_latents(Z, {"teff": rng.normal(size=200)})
    calls = []
    compute = report._chance_level
    report._chance_level = lambda *args: calls.append(args) or compute(*args)
    level = report.chance_level("teff")
    assert 0 < level < 1
    assert report.chance_level("teff") == level and len(calls) == 1  # kept, not recomputed
    assert report.chance_level("teff", random_state=1) != level
    with pytest.raises(ValueError, match="label must be one of"):
        report.chance_level("logg")
    with pytest.raises(ValueError, match="among must be"):
        report.chance_level("teff", among="some")
    with pytest.raises(ValueError, match="n_permutations must be an integer >= 2"):
        report.chance_level("teff", n_permutations=1)
    collapsed = DisentanglementReport.from_latents(np.zeros((200, 3)), {"teff": Z[:, 0]})
    assert np.isnan(collapsed.chance_level("teff"))


def test_a_latent_whose_best_label_is_chance_says_so(rng):
    from stellarlatent._commands.sections import what_it_tracks
    from stellarlatent.diagnostics import DisentanglementReport

    n = 200
    teff, feh = rng.uniform(4000, 7000, n), rng.uniform(-1, 0.4, n)
    Z = rng.normal(0, 0.005, (n, 4))
    Z[:, 0] = (teff - 5500) / 1000 + rng.normal(0, 0.05, n)
    Z[:, 2] = rng.normal(0, 0.05, n)  # informative, but of nothing labelled
    summary = DisentanglementReport.from_latents(Z, {"teff": teff, "feh": feh}).summary
    assert summary["dim"].tolist() == [0, 2]
    assert summary["beyond_chance"].tolist() == [True, False]
    assert what_it_tracks(summary[0]).startswith("tracks teff (Spearman +1.00")
    assert what_it_tracks(summary[1]).startswith("no label beyond chance; closest ")
