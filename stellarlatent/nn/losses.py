"""Loss functions of the beta-VAE and of the deep-REMAP network.

* `vae_loss` and `linear_warmup`: reconstruction error plus a weighted
  Kullback-Leibler term, as in Sedaghat et al. (2021).
* `FocalCostLoss`, `class_balance_weights`, `distance_cost_matrix`: the
  asymmetric (focal, class-balanced) classification loss over label bins with
  a distance-aware cost term of deep-REMAP (Gilda 2025).
* `triplet_loss`: the embedding loss of deep-REMAP, with online mining of
  triplets inside a batch from (possibly incomplete) continuous labels.
"""

import torch
from torch import nn
from torch.nn import functional as F

from ._utils import check_choice, check_float, check_int, check_odd_int

__all__ = [
    "vae_loss",
    "linear_warmup",
    "FocalCostLoss",
    "class_balance_weights",
    "distance_cost_matrix",
    "triplet_loss",
]


def _zero_like_graph(*tensors):
    """A scalar zero that keeps ``tensors`` in the autograd graph."""
    return sum(t.sum() * 0.0 for t in tensors if t is not None)


def _batch_mean(values, weight):
    """Weighted mean over the batch of per-sample ``values`` (zero weights excluded)."""
    # No host sync: with all weights zero the numerator is zero and so is the mean.
    total = weight.sum().clamp_min(torch.finfo(weight.dtype).tiny)
    return (values * weight).sum() / total


def _check_sample_weight(sample_weight, n, like):
    if sample_weight is None:
        return torch.ones(n, dtype=like.dtype, device=like.device)
    weight = torch.as_tensor(sample_weight, dtype=like.dtype, device=like.device)
    if weight.shape != (n,):
        raise ValueError(f"sample_weight must have shape ({n},), got {tuple(weight.shape)}")
    if not torch.isfinite(weight).all() or (weight < 0).any():
        raise ValueError("sample_weight must be finite and non-negative")
    return weight


def _pixel_error(diff, reconstruction, ivar):
    if reconstruction == "l1":
        return diff.abs()
    if reconstruction == "mse":
        return diff.square()
    return diff.square() * ivar


def _running_mean(values, valid, window):
    """Mean of the valid ``values`` of each row within ``window`` pixels (edges included).

    Differences of cumulative sums (accumulated in float64, where the device
    has it), so the cost does not grow with ``window``.
    """
    n, half = values.shape[-1], window // 2
    wide = torch.float32 if values.device.type == "mps" else torch.float64
    sums = F.pad(torch.cumsum(torch.where(valid, values, 0.0).to(wide), dim=-1), (1, 0))
    counts = F.pad(torch.cumsum(valid.to(wide), dim=-1), (1, 0))
    pixel = torch.arange(n, device=values.device)
    stop, start = (pixel + half + 1).clamp(max=n), (pixel - half).clamp(min=0)
    total = sums[..., stop] - sums[..., start]
    count = counts[..., stop] - counts[..., start]
    return (total / count.clamp_min(1)).to(values.dtype)


def vae_loss(
    x_hat,
    x,
    mu,
    logvar,
    *,
    mask=None,
    ivar=None,
    reconstruction="l1",
    beta=1.0,
    sample_weight=None,
    line_weight=0.0,
    line_window=51,
    coarse_weight=0.0,
    coarse_window=129,
    kl_reduction="mean",
):
    """Reconstruction error plus ``beta`` times the KL divergence of a VAE.

    Parameters
    ----------
    x_hat, x : Tensor, shape (B, L) or (B, 1, L)
        Reconstruction and target flux.
    mu : Tensor, shape (B, D)
        Posterior means.
    logvar : Tensor, shape (B, D), or None
        Posterior log-variances; None (a plain autoencoder) gives ``kl = 0``.
    mask : Tensor of bool, shape of ``x``, default=None
        True marks a bad pixel, excluded from the reconstruction error.
        Non-finite target pixels are excluded as well.
    ivar : Tensor, shape of ``x``, default=None
        Inverse variance of ``x``, needed by ``reconstruction="chi2"`` (where
        pixels with ``ivar <= 0`` are excluded); ignored otherwise.
    reconstruction : {"l1", "mse", "chi2"}, default="l1"
        Per-pixel error: absolute (the paper's choice), squared, or squared
        and weighted by ``ivar``.
    beta : float or Tensor, default=1.0
        Weight of the KL term (see `linear_warmup`).
    sample_weight : Tensor, shape (B,), default=None
        Non-negative weight of each spectrum in the batch means.
    line_weight : float, default=0.0
        Weight of a second reconstruction term on the absorption lines alone:
        the same per-pixel error of the residual after a running mean over
        ``line_window`` pixels (valid pixels only) is subtracted. The first
        term is dominated by the continuum shape, this one by the positions
        and depths of the lines. 0 leaves the single term.
    line_window : int, default=51
        Width in pixels (odd) of the running mean that defines the continuum
        of the line term.
    coarse_weight : float, default=0.0
        Weight of a reconstruction term on the broad shape: the same error of
        the residual averaged over ``coarse_window`` pixels. At high resolving
        power a Doppler shift moves narrow lines by many times their width;
        the pixel error of a line drawn off by more than its width does not
        depend on how far off it is, so the pixel terms give no direction and
        reward a blurred mean spectrum. Averaged over a window wider than the
        shift, the error falls as the lines come closer, which lets the
        network learn where they are.
        0 leaves it out.
    coarse_window : int, default=129
        Width in pixels (odd) of that average; it should span the largest
        shifts (in pixels) the spectra show.
    kl_reduction : {"mean", "sum"}, default="mean"
        How the KL divergences of the latent variables are combined:
        averaged, as Sedaghat et al. (2021) did, or summed, as in the
        beta-VAE of Higgins et al. (2017). With ``"mean"`` the weight on each
        latent is ``beta / D``, so a network with more latents penalises
        each one less; with ``"sum"`` it is ``beta`` whatever ``D``.

    Returns
    -------
    total : Tensor, scalar
        ``recon + beta * kl``.
    recon : Tensor, scalar
        Per-spectrum mean error over its valid pixels (plus ``line_weight``
        times that of the line residual and ``coarse_weight`` times that of
        the averaged residual), then the (weighted) mean over
        spectra that have at least one valid pixel.
    kl : Tensor, scalar
        ``-0.5 * (1 + logvar - mu**2 - exp(logvar))`` averaged (or, with
        ``kl_reduction="sum"``, summed) over latent variables, then averaged
        (weighted) over the batch.

    Examples
    --------
    >>> import torch
    >>> x = torch.ones(2, 5)
    >>> x_hat = torch.zeros(2, 5)
    >>> mu, logvar = torch.zeros(2, 3), torch.zeros(2, 3)
    >>> total, recon, kl = vae_loss(x_hat, x, mu, logvar, beta=0.3)
    >>> float(recon), float(kl)
    (1.0, 0.0)
    >>> mu1 = torch.ones(2, 3)
    >>> float(vae_loss(x_hat, x, mu1, logvar)[2]), float(vae_loss(x_hat, x, mu1, logvar,
    ...                                                     kl_reduction="sum")[2])
    (0.5, 1.5)
    >>> mask = torch.zeros(2, 5, dtype=torch.bool)
    >>> mask[:, :4] = True
    >>> x_hat[:, 4] = 1.0
    >>> float(vae_loss(x_hat, x, mu, None, mask=mask)[0])
    0.0

    A constant offset is continuum, not line: the line term ignores it.

    >>> x = torch.ones(1, 101)
    >>> float(vae_loss(x + 0.5, x, mu[:1], None, line_weight=1.0, line_window=11)[1])
    0.5

    A line drawn 2, 6 or 20 pixels off costs the pixel term the same; the
    coarse term grows with the offset, so it says which way to move the line.

    >>> line = lambda at: 1 - 0.5 * (torch.arange(101.0) == at)
    >>> x = line(50).reshape(1, -1)
    >>> [round(float(vae_loss(line(at).reshape(1, -1), x, mu[:1], None)[1]), 4)
    ...  for at in (52, 56, 70)]
    [0.0099, 0.0099, 0.0099]
    >>> [round(float(vae_loss(line(at).reshape(1, -1), x, mu[:1], None, coarse_weight=1.0,
    ...                       coarse_window=11)[1]), 4) for at in (52, 56, 70)]
    [0.0117, 0.0153, 0.0198]
    """
    check_choice(reconstruction, "reconstruction", ("l1", "mse", "chi2"))
    check_choice(kl_reduction, "kl_reduction", ("mean", "sum"))
    if x_hat.shape != x.shape:
        raise ValueError(
            f"x_hat and x must have the same shape, got {tuple(x_hat.shape)} and {tuple(x.shape)}"
        )
    n = x.shape[0]
    x_hat2, x2 = x_hat.reshape(n, -1), x.reshape(n, -1)
    valid = torch.isfinite(x2)
    if mask is not None:
        if mask.shape != x.shape:
            raise ValueError(
                f"mask must have the shape of x {tuple(x.shape)}, got {tuple(mask.shape)}"
            )
        valid = valid & ~mask.reshape(n, -1).to(torch.bool)
    line_weight = check_float(line_weight, "line_weight", minimum=0.0)
    diff = torch.where(valid, x_hat2 - torch.where(valid, x2, 0.0), 0.0)
    ivar2 = None
    if reconstruction == "chi2":
        if ivar is None:
            raise ValueError('ivar is required when reconstruction="chi2"')
        if ivar.shape != x.shape:
            raise ValueError(
                f"ivar must have the shape of x {tuple(x.shape)}, got {tuple(ivar.shape)}"
            )
        ivar2 = ivar.reshape(n, -1)
        valid = valid & torch.isfinite(ivar2) & (ivar2 > 0)
        ivar2 = torch.where(valid, ivar2, 0.0)
        diff = torch.where(valid, diff, 0.0)
    err = _pixel_error(diff, reconstruction, ivar2)
    if line_weight > 0:
        lines = diff - _running_mean(diff, valid, check_odd_int(line_window, "line_window"))
        line_err = _pixel_error(lines, reconstruction, ivar2)
        err = err + line_weight * torch.where(valid, line_err, 0.0)
    coarse_weight = check_float(coarse_weight, "coarse_weight", minimum=0.0)
    if coarse_weight > 0:
        coarse = _running_mean(diff, valid, check_odd_int(coarse_window, "coarse_window"))
        coarse_err = _pixel_error(coarse, reconstruction, ivar2)
        err = err + coarse_weight * torch.where(valid, coarse_err, 0.0)

    weight = _check_sample_weight(sample_weight, n, x_hat)
    n_valid = valid.sum(dim=1)
    per_sample = err.sum(dim=1) / n_valid.clamp_min(1)
    recon = _batch_mean(per_sample, weight * (n_valid > 0))

    if logvar is None:
        kl = _zero_like_graph(mu)
    else:
        if logvar.shape != mu.shape:
            raise ValueError(
                f"logvar must have the shape of mu {tuple(mu.shape)}, got {tuple(logvar.shape)}"
            )
        kl_per_latent = -0.5 * (1 + logvar - mu.square() - logvar.exp())
        kl_per_sample = (kl_per_latent.sum(dim=1) if kl_reduction == "sum"
                         else kl_per_latent.mean(dim=1))
        kl = _batch_mean(kl_per_sample, weight)
    return recon + beta * kl, recon, kl


def linear_warmup(iteration, start, stop, final_beta):
    """KL weight that ramps linearly from 0 to ``final_beta``.

    Parameters
    ----------
    iteration : int
        Current training iteration (optimiser step).
    start, stop : int
        The weight is 0 up to ``start`` and ``final_beta`` from ``stop`` on;
        Sedaghat et al. (2021) used 5,000 and 20,000.
    final_beta : float
        Final weight (0.3 in the paper).

    Returns
    -------
    beta : float

    Examples
    --------
    >>> [linear_warmup(i, 5000, 20000, 0.3) for i in (0, 5000, 12500, 20000, 30000)]
    [0.0, 0.0, 0.15, 0.3, 0.3]
    """
    final_beta = check_float(final_beta, "final_beta")
    if stop < start:
        raise ValueError(f"stop must be >= start, got start={start!r}, stop={stop!r}")
    if iteration <= start:
        return 0.0 if iteration < stop else final_beta
    if iteration >= stop:
        return final_beta
    return final_beta * (iteration - start) / (stop - start)


def class_balance_weights(counts, beta=0.999, method="effective_number"):
    """Class weights that up-weight rare label bins.

    Parameters
    ----------
    counts : array-like of int, shape (n_bins,)
        Number of training samples in each bin.
    beta : float, default=0.999
        In [0, 1). With ``method="effective_number"`` (Cui et al. 2019) the
        weight of a class is ``(1 - beta) / (1 - beta**count)``; ``beta -> 1``
        approaches inverse frequency, ``beta = 0`` gives equal weights.
    method : {"effective_number", "inverse_frequency"}, default="effective_number"

    Returns
    -------
    weights : Tensor, shape (n_bins,)
        Normalised to a mean of 1 over the bins that have samples; empty bins
        get the largest weight.

    Examples
    --------
    >>> class_balance_weights([10, 30], method="inverse_frequency")
    tensor([1.5000, 0.5000])
    """
    check_choice(method, "method", ("effective_number", "inverse_frequency"))
    beta = check_float(beta, "beta", minimum=0.0, maximum=1.0)
    if beta == 1.0:
        raise ValueError("beta must be < 1")
    counts = torch.as_tensor(counts, dtype=torch.float64)
    if counts.ndim != 1 or counts.numel() == 0:
        raise ValueError(
            f"counts must be a non-empty 1-D sequence, got shape {tuple(counts.shape)}"
        )
    if not torch.isfinite(counts).all() or (counts < 0).any():
        raise ValueError("counts must be finite and non-negative")
    seen = counts > 0
    if not seen.any():
        return torch.ones(counts.shape, dtype=torch.get_default_dtype())
    if method == "effective_number":
        weights = (1.0 - beta) / (1.0 - beta ** counts.clamp_min(1))
    else:
        weights = 1.0 / counts.clamp_min(1)
    weights = weights / weights[seen].mean()
    weights[~seen] = weights[seen].max()
    return weights.to(torch.get_default_dtype())


def distance_cost_matrix(n_bins, power=1.0):
    """Cost of predicting bin ``k`` when the truth is bin ``i``.

    Parameters
    ----------
    n_bins : int
    power : float, default=1.0

    Returns
    -------
    cost : Tensor, shape (n_bins, n_bins)
        ``(|i - k| / (n_bins - 1)) ** power``: zero on the diagonal, one for the
        two extreme bins.

    Examples
    --------
    >>> distance_cost_matrix(3)
    tensor([[0.0000, 0.5000, 1.0000],
            [0.5000, 0.0000, 0.5000],
            [1.0000, 0.5000, 0.0000]])
    """
    n_bins = check_int(n_bins, "n_bins")
    power = check_float(power, "power", minimum=0.0, inclusive=False)
    idx = torch.arange(n_bins, dtype=torch.get_default_dtype())
    distance = (idx[:, None] - idx[None, :]).abs() / max(n_bins - 1, 1)
    return distance**power


class FocalCostLoss(nn.Module):
    """Class-balanced focal loss plus an expected distance cost over label bins.

    For logits ``s`` of one label, probabilities ``p = softmax(s)`` and true
    bin ``t`` the loss of a sample is::

        -w[t] * (1 - p[t])**gamma * log p[t]  +  cost_weight * sum_k p[k] * C[t, k]

    averaged over the samples whose label is known. The first term (focal
    loss, Lin et al. 2017, with class weights) concentrates on hard and rare
    bins; the second penalises probability far from the true bin more than
    probability in a neighbouring bin.

    With ``label_smoothing`` (a standard deviation ``sigma`` in bins) the
    one-hot target becomes a discretised Gaussian around the true bin,
    ``q[k] ~ exp(-(k - t)**2 / (2 sigma**2))`` (renormalised inside the
    bins), and both terms are averaged over it::

        -sum_k q[k] w[k] (1 - p[k])**gamma log p[k]  +  cost_weight * sum_k p[k] (q @ C)[k]

    Labels are measurements with errors: a target as wide as the label
    uncertainty stops the network from learning the noise of a few hundred
    training labels, and spreads its probabilities the way the truth is
    spread.

    Parameters
    ----------
    n_bins : int
        Number of label bins (classes).
    gamma : float, default=2.0
        Focusing parameter; 0 gives (weighted) cross-entropy.
    class_weights : array-like, shape (n_bins,), default=None
        Weight ``w`` of each class, for example from `class_balance_weights`.
        Default: all ones.
    cost_matrix : "distance", array-like of shape (n_bins, n_bins), or None, default="distance"
        ``C[true, predicted]``. ``"distance"`` uses
        `distance_cost_matrix` with ``cost_power``; None drops the cost term.
    cost_power : float, default=1.0
        Exponent of the distance cost.
    cost_weight : float, default=1.0
        Weight of the cost term.
    label_smoothing : float, default=0.0
        Standard deviation, in bins, of the Gaussian soft target; 0 (the
        default) keeps the one-hot target.
    ignore_index : int, default=-1
        Target value that marks a missing label.

    Examples
    --------
    >>> import torch
    >>> loss = FocalCostLoss(4, gamma=0.0, cost_matrix=None)
    >>> logits = torch.tensor([[2.0, 0.0, 0.0, 0.0], [0.0, 0.0, 0.0, 0.0]])
    >>> target = torch.tensor([0, -1])
    >>> bool(torch.isclose(loss(logits, target),
    ...                    torch.nn.functional.cross_entropy(logits[:1], target[:1])))
    True

    A soft target one bin wide puts most of its weight on the true bin:

    >>> soft = FocalCostLoss(5, label_smoothing=1.0)
    >>> soft.soft_targets(torch.tensor([2]))
    tensor([[0.0545, 0.2442, 0.4026, 0.2442, 0.0545]])
    """

    def __init__(
        self,
        n_bins,
        gamma=2.0,
        class_weights=None,
        cost_matrix="distance",
        cost_power=1.0,
        cost_weight=1.0,
        label_smoothing=0.0,
        ignore_index=-1,
    ):
        super().__init__()
        self.n_bins = check_int(n_bins, "n_bins")
        self.gamma = check_float(gamma, "gamma", minimum=0.0)
        self.cost_weight = check_float(cost_weight, "cost_weight", minimum=0.0)
        self.label_smoothing = check_float(label_smoothing, "label_smoothing", minimum=0.0)
        self.ignore_index = int(ignore_index)
        if class_weights is None:
            class_weights = torch.ones(self.n_bins)
        class_weights = torch.as_tensor(class_weights, dtype=torch.get_default_dtype())
        if class_weights.shape != (self.n_bins,):
            raise ValueError(
                f"class_weights must have shape ({self.n_bins},), got {tuple(class_weights.shape)}"
            )
        if not torch.isfinite(class_weights).all() or (class_weights < 0).any():
            raise ValueError("class_weights must be finite and non-negative")
        self.register_buffer("class_weights", class_weights)
        if isinstance(cost_matrix, str):
            check_choice(cost_matrix, "cost_matrix", ("distance",))
            cost_matrix = distance_cost_matrix(self.n_bins, cost_power)
        if cost_matrix is not None:
            cost_matrix = torch.as_tensor(cost_matrix, dtype=torch.get_default_dtype())
            if cost_matrix.shape != (self.n_bins, self.n_bins):
                raise ValueError(
                    f"cost_matrix must have shape ({self.n_bins}, {self.n_bins}), "
                    f"got {tuple(cost_matrix.shape)}"
                )
        self.register_buffer("cost_matrix", cost_matrix)

    def forward(self, logits, target, mask=None, sample_weight=None):
        """Loss averaged over samples with a known label.

        Parameters
        ----------
        logits : Tensor, shape (B, n_bins)
        target : Tensor of int, shape (B,)
            True bin index, or ``ignore_index`` for a missing label.
        mask : Tensor of bool, shape (B,), default=None
            True marks a missing label (excluded), like ``ignore_index``.
        sample_weight : Tensor, shape (B,), default=None
            Non-negative weight of each sample in the mean.

        Returns
        -------
        loss : Tensor, scalar
            Zero (still attached to ``logits``) when no label is known.
        """
        if logits.ndim != 2 or logits.shape[1] != self.n_bins:
            raise ValueError(
                f"logits must have shape (batch, {self.n_bins}), got {tuple(logits.shape)}"
            )
        n = logits.shape[0]
        target = torch.as_tensor(target, device=logits.device)
        if target.shape != (n,) or target.is_floating_point():
            raise ValueError(
                f"target must be integers of shape ({n},), got {tuple(target.shape)} {target.dtype}"
            )
        valid = target != self.ignore_index
        if mask is not None:
            mask = torch.as_tensor(mask, device=logits.device)
            if mask.shape != (n,):
                raise ValueError(f"mask must have shape ({n},), got {tuple(mask.shape)}")
            valid = valid & ~mask.to(torch.bool)
        if ((target[valid] < 0) | (target[valid] >= self.n_bins)).any():
            raise ValueError(
                f"target must hold bin indices in [0, {self.n_bins}) or ignore_index="
                f"{self.ignore_index}"
            )
        weight = _check_sample_weight(sample_weight, n, logits) * valid
        safe_target = torch.where(valid, target, 0).long()

        log_p = F.log_softmax(logits, dim=1)
        if self.label_smoothing > 0:
            q = self.soft_targets(safe_target).to(log_p.dtype)
            focal = -(q * self.class_weights * (1.0 - log_p.exp()) ** self.gamma * log_p).sum(1)
            cost_rows = None if self.cost_matrix is None else q @ self.cost_matrix
        else:
            log_pt = log_p.gather(1, safe_target[:, None]).squeeze(1)
            focal = -self.class_weights[safe_target] * (1.0 - log_pt.exp()) ** self.gamma * log_pt
            cost_rows = None if self.cost_matrix is None else self.cost_matrix[safe_target]
        if cost_rows is not None and self.cost_weight > 0:
            focal = focal + self.cost_weight * (log_p.exp() * cost_rows).sum(dim=1)
        return _batch_mean(torch.where(valid, focal, 0.0), weight)

    def soft_targets(self, target):
        """Target distributions ``(B, n_bins)`` of bin indices ``target`` ``(B,)``.

        One-hot with ``label_smoothing=0``, else the renormalised discretised
        Gaussian of that standard deviation (in bins) around each target bin.
        """
        target = torch.as_tensor(target, device=self.class_weights.device).long()
        bins = torch.arange(self.n_bins, device=target.device)
        if self.label_smoothing == 0:
            return (bins[None, :] == target[:, None]).to(self.class_weights.dtype)
        offset = (bins[None, :] - target[:, None]).to(self.class_weights.dtype)
        q = torch.exp(-0.5 * (offset / self.label_smoothing).square())
        return q / q.sum(dim=1, keepdim=True)

    def extra_repr(self):
        return (
            f"n_bins={self.n_bins}, gamma={self.gamma}, cost_weight={self.cost_weight}, "
            f"label_smoothing={self.label_smoothing}, "
            f"cost={'none' if self.cost_matrix is None else 'matrix'}"
        )


def _label_distance(labels, label_scale):
    """RMS distance over the label dimensions both samples have (NaN = missing)."""
    if label_scale is not None:
        labels = labels / torch.as_tensor(label_scale, dtype=labels.dtype, device=labels.device)
    known = torch.isfinite(labels)
    values = torch.where(known, labels, 0.0)
    both = known[:, None, :] & known[None, :, :]
    sq = torch.where(both, (values[:, None, :] - values[None, :, :]).square(), 0.0)
    n_common = both.sum(dim=2)
    distance = (sq.sum(dim=2) / n_common.clamp_min(1)).sqrt()
    return distance, n_common > 0


def _embedding_distance(embeddings):
    sq_norm = embeddings.square().sum(dim=1)
    sq = sq_norm[:, None] + sq_norm[None, :] - 2.0 * embeddings @ embeddings.T
    # The clamp keeps the gradient of sqrt finite for (near-)identical embeddings.
    return sq.clamp_min(1e-12).sqrt()


def triplet_loss(
    embeddings,
    labels,
    *,
    margin=0.2,
    positive_threshold=0.1,
    negative_threshold=None,
    mining="batch_hard",
    label_scale=None,
):
    """Triplet margin loss with triplets mined online from continuous labels.

    Two spectra form a positive pair when their label distance is below
    ``positive_threshold`` and a negative pair when it is at least
    ``negative_threshold``. The label distance is the root-mean-square
    difference over the label dimensions both spectra have (NaN marks a
    missing label), after division by ``label_scale``.

    Parameters
    ----------
    embeddings : Tensor, shape (B, D)
        Embedding vectors (typically L2-normalised).
    labels : Tensor, shape (B,) or (B, n_labels)
        Normalised labels (for example bin index / (n_bins - 1), or
        standardised values); NaN where unknown.
    margin : float, default=0.2
        Required gap between the anchor-negative and anchor-positive distances.
    positive_threshold : float, default=0.1
        Largest label distance of a positive pair (exclusive).
    negative_threshold : float, default=None
        Smallest label distance of a negative pair; default
        ``positive_threshold``.
    mining : {"batch_hard", "batch_all"}, default="batch_hard"
        ``"batch_hard"`` (Hermans et al. 2017): for each anchor, its farthest
        positive and closest negative, averaged over anchors that have both.
        ``"batch_all"``: every valid triplet, averaged over those with a
        positive loss.
    label_scale : float or Tensor of shape (n_labels,), default=None
        Divides the labels before distances are computed.

    Returns
    -------
    loss : Tensor, scalar
        Zero (attached to ``embeddings``) when the batch holds no valid
        triplet.

    Examples
    --------
    >>> import torch
    >>> labels = torch.tensor([0.0, 0.05, 1.0, 1.05])
    >>> close = torch.tensor([[1.0, 0.0], [1.0, 0.0], [0.0, 1.0], [0.0, 1.0]])
    >>> float(triplet_loss(close, labels))
    0.0
    >>> float(triplet_loss(close.flip(0)[[0, 2, 1, 3]], labels)) > 0
    True
    """
    check_choice(mining, "mining", ("batch_hard", "batch_all"))
    margin = check_float(margin, "margin", minimum=0.0)
    positive_threshold = check_float(positive_threshold, "positive_threshold", minimum=0.0)
    if negative_threshold is None:
        negative_threshold = positive_threshold
    negative_threshold = check_float(
        negative_threshold, "negative_threshold", minimum=positive_threshold
    )
    if embeddings.ndim != 2:
        raise ValueError(f"embeddings must have shape (batch, dim), got {tuple(embeddings.shape)}")
    n = embeddings.shape[0]
    labels = torch.as_tensor(labels, device=embeddings.device)
    if labels.ndim == 1:
        labels = labels[:, None]
    if labels.ndim != 2 or labels.shape[0] != n:
        raise ValueError(
            f"labels must have shape ({n},) or ({n}, n_labels), got {tuple(labels.shape)}"
        )
    labels = labels.to(embeddings.dtype)

    label_dist, comparable = _label_distance(labels, label_scale)
    not_self = ~torch.eye(n, dtype=torch.bool, device=embeddings.device)
    positive = comparable & not_self & (label_dist < positive_threshold)
    negative = comparable & not_self & (label_dist >= negative_threshold)
    dist = _embedding_distance(embeddings)

    if mining == "batch_hard":
        anchors = positive.any(dim=1) & negative.any(dim=1)
        if not anchors.any():
            return _zero_like_graph(embeddings)
        hardest_positive = torch.where(positive, dist, float("-inf")).amax(dim=1)
        hardest_negative = torch.where(negative, dist, float("inf")).amin(dim=1)
        losses = F.relu(hardest_positive[anchors] - hardest_negative[anchors] + margin)
        return losses.mean()

    valid = positive[:, :, None] & negative[:, None, :]
    losses = F.relu(dist[:, :, None] - dist[:, None, :] + margin)
    active = valid & (losses > 0)
    if not active.any():
        return _zero_like_graph(embeddings)
    return losses[active].mean()
