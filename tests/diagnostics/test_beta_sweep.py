"""beta_sweep and BetaSweepDisplay: the paper's beta study."""

import numpy as np
import pytest
import torch
from astropy.table import Table

from stellarlatent.diagnostics import BetaSweep, BetaSweepDisplay, beta_sweep
from stellarlatent.diagnostics.beta_sweep import _choose
from stellarlatent.estimators import SpectralVAE


@pytest.fixture(autouse=True, scope="module")
def one_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def _two_factor_spectra(n=160, n_pixels=64, seed=0):
    rng = np.random.default_rng(seed)
    x = np.linspace(0, 1, n_pixels)
    depth = rng.uniform(0.1, 0.8, (n, 1))
    width = rng.uniform(0.02, 0.06, (n, 1))
    line = depth * np.exp(-0.5 * ((x - 0.3) / 0.03) ** 2)
    line += 0.5 * np.exp(-0.5 * ((x - 0.7) / width) ** 2)
    return 1 - line + 0.005 * rng.normal(size=(n, n_pixels))


def test_a_larger_beta_prunes_more_latents():
    X = _two_factor_spectra()
    vae = SpectralVAE(max_epochs=30, batch_size=32, lr=3e-3, verbose=0, random_state=0,
                      validation_fraction=0.0)
    sweep = beta_sweep(vae, X, betas=[0.0, 0.3], latent_dims=(3, 6), keep_estimators=True)
    counts = sweep.counts()
    assert set(counts) == {3, 6}
    assert counts[6][0] > counts[6][1]  # beta = 0 keeps more latents than beta = 0.3
    assert len(sweep.estimators) == 4
    assert all(est.latent_dim in (3, 6) for est in sweep.estimators)
    assert sweep.table["mad"].shape == (4, 6)
    assert np.all(np.isnan(sweep.table["mad"][sweep.table["latent_dim"] == 3][:, 3:]))


def test_the_chosen_beta_is_the_smallest_where_the_sizes_agree_and_prune():
    table = Table({"beta": [0.0, 0.0, 0.1, 0.1, 1.0, 1.0, 3.0, 3.0],
                   "latent_dim": [8, 32] * 4,
                   "n_informative": [8, 32, 6, 12, 6, 7, 0, 0]})
    assert _choose(table, [8, 32]) == (1.0, True)
    no_agreement = table[:4]
    assert _choose(no_agreement, [8, 32]) == (0.1, False)


def test_without_agreement_a_collapsed_pair_is_not_chosen_and_a_collapse_is_said():
    from stellarlatent.diagnostics.beta_sweep import BetaSweep

    # the 16-latent network collapsed at both betas, the 8-latent one at the larger
    table = Table({"beta": [0.001, 0.001, 0.01, 0.01], "latent_dim": [8, 16, 8, 16],
                   "n_informative": [3, 0, 0, 0]})
    assert _choose(table, [8, 16]) == (0.001, False)
    sweep = BetaSweep(table, 0.02, 0.001, False, [None] * 4)
    assert "at the chosen beta the 16-latent network collapsed" in sweep.summary()
    sweep = BetaSweep(table, 0.02, 0.01, False, [None] * 4)
    assert "the 8- and 16-latent networks collapsed" in sweep.summary()
    # a float32 column, and a size without a network at every beta
    table["beta"] = table["beta"].astype(np.float32)
    assert "16-latent network collapsed" in BetaSweep(table, 0.02, 0.001, False,
                                                      [None] * 4).summary()
    assert "collapsed" not in BetaSweep(table[[0, 2, 3]], 0.02, 0.001, False,
                                        [None] * 3).summary()


def test_parallel_sweep_equals_the_sequential_one():
    X = _two_factor_spectra(n=64)
    vae = SpectralVAE(max_epochs=2, batch_size=32, verbose=0, random_state=0,
                      validation_fraction=0.0)
    here = beta_sweep(vae, X, betas=[0.0, 0.1], latent_dims=(2, 3))
    there = beta_sweep(vae, X, betas=[0.0, 0.1], latent_dims=(2, 3), n_jobs=2)
    np.testing.assert_allclose(np.asarray(there.table["mad"]), np.asarray(here.table["mad"]),
                               rtol=1e-5)


@pytest.mark.parametrize("kwargs, message", [
    ({"betas": []}, "betas must be a non-empty sequence"),
    ({"betas": [-1.0]}, "betas must be a non-empty sequence"),
    ({"betas": [0.1], "latent_dims": (0,)}, "latent_dims must be positive integers"),
    ({"betas": [0.1], "n_jobs": 0}, "n_jobs must be None, -1 or a positive integer"),
    ({"betas": ["a"]}, "betas must be a non-empty sequence"),
    ({"betas": [0.1], "latent_dims": "8"}, "latent_dims must be positive integers"),
    ({"betas": [0.1], "threshold": -1}, "threshold must be a non-negative number"),
    ({"betas": [0.1], "threshold": "x"}, "threshold must be a non-negative number"),
])
def test_bad_arguments(kwargs, message):
    with pytest.raises(ValueError, match=message):
        beta_sweep(SpectralVAE(), np.ones((4, 16)), **kwargs)


def test_one_network_size_may_be_given_as_an_int():
    X = _two_factor_spectra(n=32)
    vae = SpectralVAE(max_epochs=1, batch_size=16, verbose=0, random_state=0,
                      validation_fraction=0.0)
    sweep = beta_sweep(vae, X, betas=[0.1], latent_dims=3)
    assert sweep.table["latent_dim"].tolist() == [3]


def test_display_draws_one_panel_per_size():
    pytest.importorskip("matplotlib")
    table = Table({"beta": [0.0, 0.0, 1.0, 1.0], "latent_dim": [2, 4, 2, 4],
                   "n_informative": [2, 4, 1, 1],
                   "mad": np.array([[0.5, 0.3, np.nan, np.nan], [0.5, 0.4, 0.3, 0.2],
                                    [0.4, 0.01, np.nan, np.nan], [0.4, 0.01, 0.0, 0.0]])})
    display = BetaSweepDisplay.from_sweep(BetaSweep(table, 0.02, 1.0, True, [None] * 4)).plot()
    assert len(display.axes_) == 2
    assert all(panel.get_ylim()[0] == 0 for panel in display.axes_)
    assert len(display.axes_[1].lines) == 4 + 2  # four latents, the threshold and the choice
    assert "4 latents: informative 4, 1" in display.axes_[1].get_title()
    import matplotlib.pyplot as plt

    plt.close(display.figure_)


def test_a_network_far_above_the_best_loss_of_its_beta_is_flagged_as_stuck():
    table = Table({"beta": [0.1, 0.1, 1.0, 1.0], "latent_dim": [8, 32, 8, 32],
                   "n_informative": [4, 3, 2, 9], "loss": [0.058, 0.033, 0.034, 0.036]})
    sweep = BetaSweep(table, 0.02, 0.1, True, [None] * 4)
    assert sweep.stuck() == [(0.1, 8, pytest.approx(0.058 / 0.033))]
    assert "8 latents at beta 0.1 ended at 1.76 times the lowest loss" in sweep.summary()
    assert "random_state" in sweep.summary()
    table["loss"] = [0.034, 0.033, 0.034, 0.036]
    assert BetaSweep(table, 0.02, 0.1, True, [None] * 4).stuck() == []
    del table["loss"]   # tables of earlier sweeps
    assert BetaSweep(table, 0.02, 0.1, True, [None] * 4).stuck() == []


def test_the_sweep_records_each_network_s_final_loss():
    X = _two_factor_spectra(n=64)
    vae = SpectralVAE(max_epochs=2, batch_size=32, verbose=0, random_state=0,
                      validation_fraction=0.25)
    sweep = beta_sweep(vae, X, betas=[0.0, 0.1], latent_dims=(2,), keep_estimators=True)
    expected = [est.history_[-1]["val_loss"] for est in sweep.estimators]
    np.testing.assert_allclose(np.asarray(sweep.table["loss"]), expected)


def test_n_init_keeps_the_start_with_the_lowest_loss():
    X = _two_factor_spectra(n=64)
    settings = dict(max_epochs=2, batch_size=32, verbose=0, validation_fraction=0.25)
    single = [beta_sweep(SpectralVAE(random_state=seed, **settings), X, betas=[0.1],
                         latent_dims=(2,)) for seed in (3, 4)]
    best = beta_sweep(SpectralVAE(random_state=3, **settings), X, betas=[0.1], latent_dims=(2,),
                      n_init=2, keep_estimators=True)
    losses = [float(sweep.table["loss"][0]) for sweep in single]
    assert losses[0] != losses[1]
    assert float(best.table["loss"][0]) == pytest.approx(min(losses))
    kept = single[int(np.argmin(losses))]
    np.testing.assert_allclose(np.asarray(best.table["mad"]), np.asarray(kept.table["mad"]),
                               rtol=1e-5)
    assert best.estimators[0].random_state == 3 + int(np.argmin(losses))


def test_n_init_must_be_a_positive_integer():
    with pytest.raises(ValueError, match="n_init must be a positive integer"):
        beta_sweep(SpectralVAE(), np.ones((4, 8)), betas=[0.1], n_init=0)


def test_with_early_stopping_the_loss_is_that_of_the_restored_best_weights():
    X = _two_factor_spectra(n=64)
    # a rate this high makes the validation loss jump, so the last epoch is not the best
    vae = SpectralVAE(max_epochs=6, batch_size=32, lr=0.1, verbose=0, random_state=0,
                      validation_fraction=0.25, n_iter_no_change=50)
    sweep = beta_sweep(vae, X, betas=[0.1], latent_dims=(2,), keep_estimators=True)
    losses = [record["val_loss"] for record in sweep.estimators[0].history_]
    assert losses[-1] > 1.5 * min(losses)
    assert float(sweep.table["loss"][0]) == pytest.approx(min(losses))
