import math

import pytest
import torch
from torch.nn import functional as F

from stellarlatent.nn import (
    FocalCostLoss,
    TemperatureScaler,
    class_balance_weights,
    distance_cost_matrix,
    linear_warmup,
    triplet_loss,
    vae_loss,
)


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(42)


# --- vae_loss ------------------------------------------------------------------


def test_kl_matches_manual_average():
    mu = torch.randn(4, 3)
    logvar = torch.randn(4, 3)
    _, _, kl = vae_loss(torch.zeros(4, 10), torch.zeros(4, 10), mu, logvar)
    terms = [
        -0.5 * (1 + logvar[i, j].item() - mu[i, j].item() ** 2 - math.exp(logvar[i, j].item()))
        for i in range(4)
        for j in range(3)
    ]
    assert kl.item() == pytest.approx(sum(terms) / len(terms), rel=1e-6)


def test_kl_zero_for_standard_normal_posterior_and_total():
    x, x_hat = torch.randn(3, 8), torch.randn(3, 8)
    mu, logvar = torch.zeros(3, 2), torch.zeros(3, 2)
    total, recon, kl = vae_loss(x_hat, x, mu, logvar, beta=0.3)
    assert kl.item() == 0.0
    assert total.item() == pytest.approx(recon.item())
    mu = torch.ones(3, 2)
    total, recon, kl = vae_loss(x_hat, x, mu, logvar, beta=0.3)
    assert kl.item() == pytest.approx(0.5)
    assert total.item() == pytest.approx(recon.item() + 0.15)


@pytest.mark.parametrize(
    "reconstruction, expected",
    [("l1", lambda d: d.abs().mean()), ("mse", lambda d: d.square().mean())],
)
def test_reconstruction_errors(reconstruction, expected):
    x, x_hat = torch.randn(5, 7), torch.randn(5, 7)
    _, recon, _ = vae_loss(x_hat, x, torch.zeros(5, 2), None, reconstruction=reconstruction)
    assert recon.item() == pytest.approx(expected(x_hat - x).item(), rel=1e-6)


def test_accepts_channel_axis():
    x, x_hat = torch.randn(2, 1, 9), torch.randn(2, 1, 9)
    a = vae_loss(x_hat, x, torch.zeros(2, 2), None)[1]
    b = vae_loss(x_hat[:, 0], x[:, 0], torch.zeros(2, 2), None)[1]
    torch.testing.assert_close(a, b)


def test_masked_pixels_do_not_affect_reconstruction():
    x, x_hat = torch.randn(3, 20), torch.randn(3, 20, requires_grad=True)
    mask = torch.zeros(3, 20, dtype=torch.bool)
    mask[0, :5] = True
    mask[2, 10:] = True
    mu = torch.zeros(3, 2)
    for reconstruction in ("l1", "mse", "chi2"):
        ivar = torch.rand(3, 20) + 0.5
        kwargs = {"mask": mask, "reconstruction": reconstruction}
        _, recon, _ = vae_loss(x_hat, x, mu, None, ivar=ivar, **kwargs)
        x2, ivar2 = x.clone(), ivar.clone()
        x2[mask] = torch.where(torch.arange(int(mask.sum())) % 2 == 0, torch.nan, 1e6)
        ivar2[mask] = 123.0
        _, recon2, _ = vae_loss(x_hat, x2, mu, None, ivar=ivar2, **kwargs)
        torch.testing.assert_close(recon, recon2)
        (grad,) = torch.autograd.grad(recon2, x_hat)
        assert torch.isfinite(grad).all()
        assert (grad[mask] == 0).all() and (grad[~mask] != 0).all()


def test_each_spectrum_averages_its_own_valid_pixels():
    x = torch.zeros(2, 10)
    x_hat = torch.zeros(2, 10)
    x_hat[0] = 1.0  # error 1 on every pixel
    x_hat[1, :2] = 3.0  # error 3 on the two valid pixels
    mask = torch.zeros(2, 10, dtype=torch.bool)
    mask[1, 2:] = True
    _, recon, _ = vae_loss(x_hat, x, torch.zeros(2, 1), None, mask=mask)
    assert recon.item() == pytest.approx((1.0 + 3.0) / 2)
    weight = torch.tensor([3.0, 1.0])
    weighted = vae_loss(x_hat, x, torch.zeros(2, 1), None, mask=mask, sample_weight=weight)
    assert weighted[1].item() == pytest.approx((3 * 1.0 + 3.0) / 4)


def test_fully_masked_batch_gives_zero_with_grad():
    x_hat = torch.randn(2, 5, requires_grad=True)
    mask = torch.ones(2, 5, dtype=torch.bool)
    total, recon, kl = vae_loss(x_hat, torch.randn(2, 5), torch.zeros(2, 1), None, mask=mask)
    assert total.item() == 0.0
    total.backward()
    assert (x_hat.grad == 0).all()


def test_chi2_weighting():
    x, x_hat = torch.randn(4, 6), torch.randn(4, 6)
    mu = torch.zeros(4, 1)
    ivar = torch.full((4, 6), 4.0)
    chi2 = vae_loss(x_hat, x, mu, None, ivar=ivar, reconstruction="chi2")[1]
    mse = vae_loss(x_hat, x, mu, None, reconstruction="mse")[1]
    assert chi2.item() == pytest.approx(4.0 * mse.item(), rel=1e-6)
    # zero inverse variance means no information: those pixels drop out
    ivar[:, 3:] = 0.0
    chi2 = vae_loss(x_hat, x, mu, None, ivar=ivar, reconstruction="chi2")[1]
    expected = 4.0 * vae_loss(x_hat[:, :3], x[:, :3], mu, None, reconstruction="mse")[1]
    assert chi2.item() == pytest.approx(expected.item(), rel=1e-6)
    with pytest.raises(ValueError, match="ivar is required"):
        vae_loss(x_hat, x, mu, None, reconstruction="chi2")


def test_vae_loss_invalid_arguments():
    x = torch.zeros(2, 4)
    with pytest.raises(ValueError, match="reconstruction"):
        vae_loss(x, x, torch.zeros(2, 1), None, reconstruction="l2")
    with pytest.raises(ValueError, match="same shape"):
        vae_loss(x, torch.zeros(2, 5), torch.zeros(2, 1), None)
    with pytest.raises(ValueError, match="sample_weight"):
        vae_loss(x, x, torch.zeros(2, 1), None, sample_weight=torch.ones(3))
    with pytest.raises(ValueError, match="mask"):
        vae_loss(x, x, torch.zeros(2, 1), None, mask=torch.zeros(2, 3, dtype=torch.bool))


def _line_spectra(shift):
    """Flat spectra with one Gaussian line, the second shifted by ``shift`` pixels."""
    pix = torch.arange(200.0)

    def line(centre):
        return 1 - 0.5 * torch.exp(-0.5 * ((pix - centre) / 2.0) ** 2)

    return line(100.0 + shift)[None], line(100.0)[None]


def test_line_term_ignores_continuum_and_counts_line_shifts():
    mu = torch.zeros(1, 2)
    x_hat, x = _line_spectra(0.0)
    tilted = x_hat + torch.linspace(-0.2, 0.2, 200)[None]
    plain = vae_loss(tilted, x, mu, None)[1]
    with_lines = vae_loss(tilted, x, mu, None, line_weight=5.0, line_window=41)[1]
    # a tilt is linear over the window: only the truncated windows at the edges add a little
    assert with_lines.item() == pytest.approx(plain.item(), rel=0.15)
    shifted, x = _line_spectra(3.0)
    plain = vae_loss(shifted, x, mu, None)[1]
    with_lines = vae_loss(shifted, x, mu, None, line_weight=5.0, line_window=41)[1]
    # a shifted line is all line: the second term adds about five times the first
    assert with_lines.item() > 5.0 * plain.item()


def test_line_term_uses_valid_pixels_only():
    mu = torch.zeros(1, 2)
    x_hat, x = _line_spectra(2.0)
    mask = torch.zeros(1, 200, dtype=torch.bool)
    mask[:, :60] = True
    spoiled = x_hat.clone()
    spoiled[:, :60] = 1e6
    reference = vae_loss(x_hat, x, mu, None, mask=mask, line_weight=1.0, line_window=21)[1]
    assert vae_loss(spoiled, x, mu, None, mask=mask, line_weight=1.0,
                    line_window=21)[1].item() == pytest.approx(reference.item())
    with pytest.raises(ValueError, match="line_window"):
        vae_loss(x_hat, x, mu, None, line_weight=1.0, line_window=20)
    with pytest.raises(ValueError, match="line_weight"):
        vae_loss(x_hat, x, mu, None, line_weight=-1.0)


def test_running_mean_of_valid_pixels_equals_the_direct_sum():
    from stellarlatent.nn.losses import _running_mean

    torch.manual_seed(0)
    values = torch.randn(3, 300)
    valid = torch.rand(3, 300) > 0.2
    valid[2] = False  # a row with no valid pixel gives zeros, not NaN
    for window in (3, 51, 129, 601):
        half = window // 2
        expected = torch.zeros(3, 300)
        for i in range(3):
            for j in range(300):
                span = slice(max(0, j - half), j + half + 1)
                count = valid[i, span].sum()
                if count:
                    expected[i, j] = values[i, span][valid[i, span]].sum() / count
        torch.testing.assert_close(_running_mean(values, valid, window), expected)


def test_coarse_term_grows_with_the_offset_of_a_line_where_the_pixel_term_does_not():
    mu = torch.zeros(1, 2)
    plain, coarse = [], []
    for shift in (12.0, 24.0, 48.0):
        shifted, x = _line_spectra(shift)
        plain.append(vae_loss(shifted, x, mu, None)[1].item())
        coarse.append(vae_loss(shifted, x, mu, None, coarse_weight=1.0,
                               coarse_window=81)[1].item() - plain[-1])
    assert plain == pytest.approx([plain[0]] * 3, rel=1e-2)  # lines apart: no direction
    assert coarse[0] < coarse[1] < coarse[2]
    # a uniform offset is all coarse: the term adds its weight times the pixel error
    x = torch.ones(1, 200)
    assert vae_loss(x + 0.1, x, mu, None, coarse_weight=2.0)[1].item() == pytest.approx(0.3)


def test_coarse_term_pulls_a_line_drawn_far_off_towards_its_place():
    pix = torch.arange(400.0)
    x = (1 - 0.5 * torch.exp(-0.5 * ((pix - 200.0) / 1.5) ** 2))[None]
    mu = torch.zeros(1, 2)
    for start in (170.0, 230.0):  # 20 line widths off, either side
        centre = torch.tensor(start, requires_grad=True)

        def drawn():
            return (1 - 0.5 * torch.exp(-0.5 * ((pix - centre) / 1.5) ** 2))[None]

        plain = torch.autograd.grad(vae_loss(drawn(), x, mu, None)[1], centre)[0]
        coarse = torch.autograd.grad(vae_loss(drawn(), x, mu, None, coarse_weight=1.0,
                                              coarse_window=129)[1], centre)[0]
        assert abs(plain.item()) < 1e-6  # the pixel error gives no direction
        assert (200.0 - start) * -coarse.item() > 0  # gradient descent moves it towards 200


def test_coarse_term_uses_valid_pixels_only_and_checks_its_arguments():
    mu = torch.zeros(1, 2)
    x_hat, x = _line_spectra(20.0)
    mask = torch.zeros(1, 200, dtype=torch.bool)
    mask[:, 150:] = True
    spoiled = x_hat.clone()
    spoiled[:, 150:] = 1e6
    reference = vae_loss(x_hat, x, mu, None, mask=mask, coarse_weight=1.0, coarse_window=41)[1]
    assert vae_loss(spoiled, x, mu, None, mask=mask, coarse_weight=1.0,
                    coarse_window=41)[1].item() == pytest.approx(reference.item())
    with pytest.raises(ValueError, match="coarse_window"):
        vae_loss(x_hat, x, mu, None, coarse_weight=1.0, coarse_window=40)
    with pytest.raises(ValueError, match="coarse_weight"):
        vae_loss(x_hat, x, mu, None, coarse_weight=-1.0)


def test_linear_warmup():
    values = [linear_warmup(i, 5000, 20000, 0.3) for i in (0, 4999, 5000, 8750, 20000, 10**6)]
    assert values == pytest.approx([0.0, 0.0, 0.0, 0.075, 0.3, 0.3])
    assert linear_warmup(9, 10, 10, 1.0) == 0.0
    assert linear_warmup(10, 10, 10, 1.0) == 1.0
    with pytest.raises(ValueError, match="stop"):
        linear_warmup(0, 10, 5, 1.0)


# --- class weights and cost matrix ------------------------------------------------


def test_class_balance_weights():
    counts = [100, 10, 1]
    inverse = class_balance_weights(counts, method="inverse_frequency")
    ratio = (inverse / inverse[0]).tolist()
    assert ratio == pytest.approx([1.0, 10.0, 100.0])
    assert inverse.mean().item() == pytest.approx(1.0)
    effective = class_balance_weights(counts, beta=0.99)
    assert effective[0] < effective[1] < effective[2]
    assert effective[2] / effective[0] < 100  # effective numbers saturate
    torch.testing.assert_close(class_balance_weights(counts, beta=0.0), torch.ones(3))
    with_empty = class_balance_weights([5, 0, 20], method="inverse_frequency")
    assert with_empty[1] == with_empty.max()
    with pytest.raises(ValueError, match="beta"):
        class_balance_weights(counts, beta=1.0)
    with pytest.raises(ValueError, match="counts"):
        class_balance_weights([-1, 2])


def test_distance_cost_matrix():
    cost = distance_cost_matrix(5, power=2.0)
    assert cost.shape == (5, 5)
    torch.testing.assert_close(cost, cost.T)
    assert (cost.diagonal() == 0).all()
    assert cost[0, 4].item() == 1.0
    assert cost[0, 2].item() == pytest.approx(0.25)
    assert distance_cost_matrix(1).tolist() == [[0.0]]


# --- FocalCostLoss ------------------------------------------------------------


def test_focal_reduces_to_cross_entropy():
    logits = torch.randn(16, 7)
    target = torch.randint(0, 7, (16,))
    loss = FocalCostLoss(7, gamma=0.0, cost_matrix=None)(logits, target)
    torch.testing.assert_close(loss, F.cross_entropy(logits, target))


def test_focal_down_weights_easy_samples():
    logits = torch.randn(32, 5) * 3
    target = torch.randint(0, 5, (32,))
    ce = F.cross_entropy(logits, target, reduction="none")
    focal = FocalCostLoss(5, gamma=2.0, cost_matrix=None)
    per_sample = torch.stack([focal(logits[i : i + 1], target[i : i + 1]) for i in range(32)])
    p_t = torch.softmax(logits, 1)[torch.arange(32), target]
    torch.testing.assert_close(per_sample, (1 - p_t) ** 2 * ce)


def test_class_weights_scale_each_sample():
    logits = torch.randn(10, 3)
    target = torch.randint(0, 3, (10,))
    weights = torch.tensor([1.0, 2.0, 5.0])
    loss = FocalCostLoss(3, gamma=0.0, class_weights=weights, cost_matrix=None)(logits, target)
    ce = F.cross_entropy(logits, target, reduction="none")
    assert loss.item() == pytest.approx((weights[target] * ce).mean().item(), rel=1e-6)


def test_cost_term_larger_for_far_bins():
    near = torch.full((1, 5), -5.0)
    near[0, 1] = 5.0
    far = torch.full((1, 5), -5.0)
    far[0, 4] = 5.0
    target = torch.tensor([0])
    no_cost = FocalCostLoss(5, cost_matrix=None)
    torch.testing.assert_close(no_cost(near, target), no_cost(far, target))
    with_cost = FocalCostLoss(5, cost_matrix="distance", cost_weight=1.0)
    assert with_cost(far, target) > with_cost(near, target) + 0.5
    expected = no_cost(far, target) + torch.softmax(far, 1)[0] @ distance_cost_matrix(5)[0]
    torch.testing.assert_close(with_cost(far, target), expected)


def test_missing_targets_excluded():
    logits = torch.randn(6, 4, requires_grad=True)
    target = torch.tensor([0, -1, 3, -1, 2, 1])
    loss_fn = FocalCostLoss(4)
    loss = loss_fn(logits, target)
    known = target >= 0
    torch.testing.assert_close(loss, loss_fn(logits[known], target[known]))
    masked = loss_fn(logits, target.clamp_min(0), mask=~known)
    torch.testing.assert_close(masked, loss)
    (grad,) = torch.autograd.grad(loss, logits)
    assert (grad[~known] == 0).all()
    weighted = loss_fn(logits, target, sample_weight=torch.tensor([1.0, 9.0, 0.0, 9.0, 0.0, 0.0]))
    torch.testing.assert_close(weighted, loss_fn(logits[:1], target[:1]))


def test_all_targets_missing_gives_zero_with_grad():
    logits = torch.randn(3, 4, requires_grad=True)
    loss = FocalCostLoss(4)(logits, torch.full((3,), -1))
    assert loss.item() == 0.0
    loss.backward()
    assert (logits.grad == 0).all()


def test_focal_invalid_inputs():
    loss = FocalCostLoss(4)
    with pytest.raises(ValueError, match="bin indices"):
        loss(torch.randn(2, 4), torch.tensor([0, 4]))
    with pytest.raises(ValueError, match="logits must have shape"):
        loss(torch.randn(2, 5), torch.tensor([0, 1]))
    with pytest.raises(ValueError, match="target must be integers"):
        loss(torch.randn(2, 4), torch.tensor([0.0, 1.0]))
    with pytest.raises(ValueError, match="class_weights"):
        FocalCostLoss(4, class_weights=[1.0, 2.0])
    with pytest.raises(ValueError, match="cost_matrix"):
        FocalCostLoss(4, cost_matrix="linear")


def test_label_smoothing_soft_targets():
    loss = FocalCostLoss(7, label_smoothing=1.5)
    q = loss.soft_targets(torch.tensor([0, 3, 6]))
    torch.testing.assert_close(q.sum(dim=1), torch.ones(3))
    assert q.argmax(dim=1).tolist() == [0, 3, 6]
    # symmetric around an inner bin, truncated and renormalised at the edges
    torch.testing.assert_close(q[1], q[1].flip(0))
    assert q[0, 0] > q[1, 3]
    one_hot = FocalCostLoss(7).soft_targets(torch.tensor([2]))
    assert one_hot.tolist() == [[0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 0.0]]


def test_label_smoothing_averages_both_terms_over_the_soft_target():
    logits = torch.randn(8, 6, dtype=torch.float64)
    target = torch.randint(0, 6, (8,))
    weights = torch.linspace(0.5, 2.0, 6, dtype=torch.float64)
    loss = FocalCostLoss(6, gamma=2.0, class_weights=weights, cost_weight=0.7,
                         label_smoothing=1.2).double()
    q = loss.soft_targets(target)
    p = torch.softmax(logits, dim=1)
    focal = -(q * weights * (1 - p) ** 2 * p.log()).sum(dim=1)
    cost = (p * (q @ distance_cost_matrix(6).double())).sum(dim=1)
    torch.testing.assert_close(loss(logits, target), (focal + 0.7 * cost).mean())
    # a very narrow soft target is the one-hot loss
    narrow = FocalCostLoss(6, class_weights=weights, label_smoothing=1e-3).double()
    one_hot = FocalCostLoss(6, class_weights=weights).double()
    torch.testing.assert_close(narrow(logits, target), one_hot(logits, target))


def test_label_smoothing_keeps_missing_targets_out():
    logits = torch.randn(4, 5, requires_grad=True)
    target = torch.tensor([1, -1, 4, -1])
    loss_fn = FocalCostLoss(5, label_smoothing=1.0)
    loss = loss_fn(logits, target)
    torch.testing.assert_close(loss, loss_fn(logits[[0, 2]], target[[0, 2]]))
    (grad,) = torch.autograd.grad(loss, logits)
    assert (grad[[1, 3]] == 0).all()
    with pytest.raises(ValueError, match="label_smoothing"):
        FocalCostLoss(5, label_smoothing=-1.0)


def test_focal_buffers_follow_the_module():
    loss = FocalCostLoss(4, class_weights=[1.0, 2.0, 3.0, 4.0]).double()
    assert loss.class_weights.dtype == loss.cost_matrix.dtype == torch.float64
    assert set(dict(loss.named_buffers())) == {"class_weights", "cost_matrix"}


# --- triplet_loss -------------------------------------------------------------


def _clusters(labels, swap=False):
    # one embedding direction per label group
    groups = (labels[:, 0] > 0.5).long()
    if swap:
        groups = torch.tensor([0, 1, 0, 1])
    return F.one_hot(groups, 2).float()


@pytest.mark.parametrize("mining", ["batch_hard", "batch_all"])
def test_triplet_zero_when_separated_positive_otherwise(mining):
    labels = torch.tensor([[0.0], [0.05], [1.0], [0.98]])
    separated = _clusters(labels)
    assert triplet_loss(separated, labels, mining=mining).item() == 0.0
    mixed = _clusters(labels, swap=True).requires_grad_()
    loss = triplet_loss(mixed, labels, mining=mining)
    assert loss.item() > 0.2
    loss.backward()
    assert mixed.grad.abs().sum() > 0


def test_triplet_batch_hard_value():
    labels = torch.tensor([0.0, 0.0, 1.0])
    emb = torch.tensor([[0.0, 0.0], [0.3, 0.0], [0.0, 0.4]])
    loss = triplet_loss(emb, labels, margin=0.2, mining="batch_hard")
    # anchors 0 and 1 have a positive and a negative; anchor 2 has no positive
    expected = (max(0.3 - 0.4 + 0.2, 0) + max(0.3 - 0.5 + 0.2, 0)) / 2
    assert loss.item() == pytest.approx(expected, abs=1e-6)


def test_triplet_nan_labels():
    labels = torch.tensor([[0.0, float("nan")], [0.0, 0.0], [1.0, 1.0], [1.0, float("nan")]])
    emb = torch.tensor([[1.0, 0.0], [1.0, 0.0], [0.0, 1.0], [0.0, 1.0]])
    assert triplet_loss(emb, labels).item() == 0.0
    assert triplet_loss(emb[[0, 2, 1, 3]], labels).item() > 0
    # a spectrum without any label neither anchors nor pairs
    unknown = torch.tensor([[float("nan"), float("nan")]])
    loss = triplet_loss(torch.cat([emb, torch.tensor([[0.7, 0.7]])]), torch.cat([labels, unknown]))
    assert loss.item() == 0.0
    mixed = emb[[0, 2, 1, 3]]
    with_unknown = triplet_loss(torch.cat([mixed, mixed[:1]]), torch.cat([labels, unknown]))
    torch.testing.assert_close(with_unknown, triplet_loss(mixed, labels))


def test_triplet_no_valid_triplet_gives_zero_with_grad():
    emb = torch.randn(4, 3, requires_grad=True)
    loss = triplet_loss(emb, torch.zeros(4))  # no negatives
    assert loss.item() == 0.0
    loss.backward()
    assert (emb.grad == 0).all()


def test_triplet_label_scale_and_thresholds():
    labels = torch.tensor([[0.0], [50.0], [5000.0], [5050.0]])
    emb = torch.tensor([[1.0, 0.0], [0.0, 1.0], [1.0, 0.0], [0.0, 1.0]])
    assert triplet_loss(emb, labels, positive_threshold=0.1).item() == 0.0  # no positives
    assert triplet_loss(emb, labels, positive_threshold=0.1, label_scale=1000.0).item() > 0
    with pytest.raises(ValueError, match="negative_threshold"):
        triplet_loss(emb, labels, positive_threshold=0.5, negative_threshold=0.1)
    with pytest.raises(ValueError, match="mining"):
        triplet_loss(emb, labels, mining="semi_hard")
    with pytest.raises(ValueError, match="labels must have shape"):
        triplet_loss(emb, labels[:3])


# --- TemperatureScaler --------------------------------------------------------


def _calibrated_problem(n=2000, k=6, scale=1.5):
    # Gaussian logits shifted by scale**2 on the true class: softmax is the exact posterior
    target = torch.randint(0, k, (n,))
    logits = torch.randn(n, k) * scale
    logits[torch.arange(n), target] += scale**2
    return logits, target


@pytest.mark.parametrize("factor, above_one", [(4.0, True), (0.25, False)])
def test_temperature_scaling_lowers_nll(factor, above_one):
    logits, target = _calibrated_problem()
    miscalibrated = logits * factor
    scaler = TemperatureScaler()
    with torch.no_grad():
        before = F.cross_entropy(miscalibrated, target)
        scaler.fit(miscalibrated, target)
        after = F.cross_entropy(scaler(miscalibrated), target)
    assert after < before - 0.05
    assert (scaler.temperature.item() > 1.0) is above_one
    assert scaler.temperature.item() == pytest.approx(factor, rel=0.25)
    torch.testing.assert_close(scaler(miscalibrated).argmax(1), miscalibrated.argmax(1))


def test_temperature_per_class_and_missing_targets():
    logits, target = _calibrated_problem(k=4)
    target[::3] = -1
    scaler = TemperatureScaler(n_temperatures=4).fit(3.0 * logits, target)
    assert scaler.temperature.shape == (4,)
    assert (scaler.temperature > 1.0).all()
    with pytest.raises(ValueError, match="n_temperatures"):
        scaler(torch.randn(2, 5))
    with pytest.raises(ValueError, match="at least one known label"):
        TemperatureScaler().fit(logits, torch.full((len(target),), -1))
    with pytest.raises(ValueError, match="bin indices"):
        TemperatureScaler().fit(logits[:2], torch.tensor([0, 9]))
