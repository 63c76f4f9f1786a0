"""How much the latents of a model depend on each other: the sign of failed disentanglement.

Sedaghat et al. (2021, Fig. 5) read failed disentanglement off the pairwise
scatter plots of the informative latents: independent nodes fill a cloud,
entangled ones lie on thin curves. `latent_dependence` puts numbers on those
panels (rank correlation, normalised mutual information and a total
correlation) and says in words what they mean.
"""

from dataclasses import dataclass, field

import numpy as np
from scipy.special import ndtri
from scipy.stats import rankdata

from .disentanglement import _MIN_SAMPLES, _check_dims, check_latents, latent_mad

__all__ = ["LatentDependence", "latent_dependence"]


@dataclass
class LatentDependence:
    """Pairwise dependence between latents, and a verdict in words.

    Attributes
    ----------
    dims : ndarray of int
        The latents compared (the informative ones by default).
    abs_spearman : ndarray, shape (len(dims), len(dims))
        Absolute Spearman rank correlation of each pair (1 on the diagonal).
    nmi : ndarray, shape (len(dims), len(dims))
        Mutual information of each pair from an equal-frequency 2-D
        histogram, bias-corrected and divided by the entropy of the
        marginals: 0 for independent latents, 1 when one determines the
        other (1 on the diagonal).
    total_correlation : float
        Total correlation of the compared latents under a Gaussian copula,
        ``-0.5 log det R`` of their normal scores, in nats: 0 when they are
        independent.
    mad : ndarray
        Median absolute deviation of every latent (see `latent_mad`).
    threshold : float
        The MAD above which a latent counts as informative.
    rho_threshold, nmi_threshold : float
        A pair is entangled when its ``abs_spearman`` or its ``nmi`` exceed these.
    n_samples : int
        The spectra the latents came from; with fewer than five nothing is
        measured (``abs_spearman`` and ``nmi`` are NaN off the diagonal) and
        the verdict says the dependence was not judged.
    """

    dims: np.ndarray
    abs_spearman: np.ndarray
    nmi: np.ndarray
    total_correlation: float
    mad: np.ndarray
    threshold: float
    rho_threshold: float = 0.5
    nmi_threshold: float = 0.5
    informative: np.ndarray = field(default_factory=lambda: np.array([], dtype=int))
    n_samples: int = None

    @property
    def too_few(self):
        """Whether there were too few spectra (fewer than 5) to measure any dependence."""
        return self.n_samples is not None and self.n_samples < _MIN_SAMPLES

    @property
    def max_pair_abs_rho(self):
        """The largest ``abs_spearman`` of two different latents (0 with fewer than two; NaN
        with too few spectra to measure it)."""
        if len(self.dims) < 2:
            return 0.0
        if self.too_few:
            return float("nan")
        off = ~np.eye(len(self.dims), dtype=bool)
        return float(np.max(self.abs_spearman[off]))

    def entangled_pairs(self):
        """``[(dim_a, dim_b, abs_spearman, nmi), ...]`` above either threshold, worst first."""
        pairs = []
        for i in range(len(self.dims)):
            for j in range(i + 1, len(self.dims)):
                rho, nmi = self.abs_spearman[i, j], self.nmi[i, j]
                if rho > self.rho_threshold or nmi > self.nmi_threshold:
                    pairs.append((int(self.dims[i]), int(self.dims[j]), float(rho), float(nmi)))
        return sorted(pairs, key=lambda p: max(p[2], p[3]), reverse=True)

    @property
    def disentangled(self):
        """True when some latents are informative, some pruned, and no pair is entangled."""
        n = len(self.mad)
        k = len(self.informative)
        if self.too_few and len(self.dims) >= 2:
            return False
        return 0 < k and not (k == n and n > 2) and not self.entangled_pairs()

    def verdict(self):
        """What the numbers say, as a list of sentences (the first is the summary).

        Examples
        --------
        >>> import numpy as np
        >>> rng = np.random.default_rng(0)
        >>> a = rng.normal(size=500)
        >>> Z = np.column_stack([a, a ** 3 + 0.05 * rng.normal(size=500), rng.normal(size=500),
        ...                      np.full(500, 1e-4)])
        >>> for sentence in latent_dependence(Z).verdict():
        ...     print(sentence)  # doctest: +NORMALIZE_WHITESPACE
        entangled: 1 pair of informative latents depend on each other
        latents 0 and 1 share 0.74 of their information (|Spearman| 0.98): raise beta,
        or use fewer latents
        3 of 4 latents are informative (MAD > 0.02); latent 3 is unused (collapsed to its prior)
        """
        n, k = len(self.mad), len(self.informative)
        pairs = self.entangled_pairs()
        sentences = []
        if k == 0:
            sentences.append("collapsed: no latent is informative")
            sentences.append(
                f"every latent has MAD <= {self.threshold:g}: the posterior collapsed to the "
                "prior; lower beta, lengthen the warm-up or train longer"
            )
            return sentences
        if self.too_few and len(self.dims) >= 2:
            sentences.append(
                f"not judged: {self.n_samples} spectra are too few to tell whether the {k} "
                f"informative latents depend on one another (at least {_MIN_SAMPLES} needed)")
        elif pairs:
            sentences.append(
                f"entangled: {len(pairs)} pair{'s' if len(pairs) > 1 else ''} of informative "
                "latents depend on each other"
            )
        elif k == n and n > 2:
            sentences.append("not pruned: every latent is informative")
        elif k == 1:
            sentences.append(
                f"disentangled: latent {int(self.informative[0])} is the only informative one, "
                "so no pair can depend on each other"
            )
        else:
            sentences.append(
                f"disentangled: no pair of the {k} informative latents depends on another "
                f"(largest |Spearman| {self.max_pair_abs_rho:.2f})"
            )
        for a, b, rho, nmi in pairs:
            sentences.append(
                f"latents {a} and {b} share {nmi:.2f} of their information "
                f"(|Spearman| {rho:.2f}): raise beta, or use fewer latents"
            )
        unused = [int(d) for d in np.flatnonzero(self.mad <= self.threshold)]
        count = f"{k} of {n} latents are informative (MAD > {self.threshold:g})"
        if not unused:
            sentences.append(
                count + ": nothing was pruned; raise beta until the uninformative latents "
                "collapse (Sedaghat et al. found 6 of 128)" if n > 2 else count
            )
        else:
            listed = ", ".join(map(str, unused[:10])) + (" ..." if len(unused) > 10 else "")
            if len(unused) == 1:
                sentences.append(f"{count}; latent {listed} is unused (collapsed to its prior)")
            else:
                sentences.append(f"{count}; latents {listed} are unused (collapsed to their prior)")
        return sentences


def _normal_scores(Z):
    n = Z.shape[0]
    return ndtri(rankdata(Z, axis=0) / (n + 1))


def _pair_nmi(a_bins, b_bins, n_bins):
    n = a_bins.size
    counts = np.zeros((n_bins, n_bins))
    np.add.at(counts, (a_bins, b_bins), 1.0)
    joint = counts / n
    pa, pb = joint.sum(axis=1), joint.sum(axis=0)
    nonzero = joint > 0
    mi = np.sum(joint[nonzero] * np.log(joint[nonzero] / np.outer(pa, pb)[nonzero]))
    # Miller-Madow: independent variables give (B - 1)^2 / 2n on average
    mi -= (n_bins - 1) ** 2 / (2.0 * n)
    h = np.sqrt(_entropy(pa) * _entropy(pb))
    return float(np.clip(mi / h, 0.0, 1.0)) if h > 0 else 0.0


def _entropy(p):
    p = p[p > 0]
    return float(-np.sum(p * np.log(p)))


def latent_dependence(Z, dims=None, threshold=0.02, n_bins=None, rho_threshold=0.5,
                      nmi_threshold=0.5):
    """Pairwise dependence between latents, a total correlation, and a verdict.

    Parameters
    ----------
    Z : array-like of shape (n_samples, latent_dim)
        Latent vectors (for a VAE, the means of ``transform``).
    dims : sequence of int, default=None
        Latents to compare; by default the informative ones (MAD above
        ``threshold``, see `informative_dimensions`).
    threshold : float, default=0.02
        MAD above which a latent is informative (the paper's value).
    n_bins : int, default=None
        Equal-frequency bins per latent of the mutual-information histogram;
        by default ``sqrt(n_samples / 5)`` within [4, 20].
    rho_threshold, nmi_threshold : float, default=0.5
        A pair is entangled above either.

    Returns
    -------
    `LatentDependence`

    Examples
    --------
    >>> import numpy as np
    >>> from stellarlatent.diagnostics import latent_dependence
    >>> rng = np.random.default_rng(1)
    >>> independent = latent_dependence(rng.normal(size=(2000, 3)))
    >>> round(independent.max_pair_abs_rho, 2), round(independent.total_correlation, 3)
    (0.05, 0.003)
    >>> independent.verdict()[0]
    'not pruned: every latent is informative'
    """
    Z = check_latents(Z)
    if isinstance(threshold, bool) or not isinstance(threshold, (int, float)) or \
            not threshold >= 0:
        raise ValueError(f"threshold must be a non-negative number, got {threshold!r}")
    for name, value in (("rho_threshold", rho_threshold), ("nmi_threshold", nmi_threshold)):
        if isinstance(value, bool) or not isinstance(value, (int, float)) or \
                not 0 <= value <= 1:
            raise ValueError(f"{name} must be a number in [0, 1] (it is compared with an "
                             f"absolute correlation or a normalised MI), got {value!r}")
    mad = latent_mad(Z)
    informative = np.flatnonzero(mad > threshold)
    dims = informative if dims is None else _check_dims(dims, Z.shape[1])
    n = Z.shape[0]
    if n_bins is None:
        n_bins = int(np.clip(np.sqrt(n / 5.0), 4, 20))
    elif isinstance(n_bins, bool) or not isinstance(n_bins, (int, np.integer)) or n_bins < 2:
        raise ValueError(f"n_bins must be an integer >= 2, got {n_bins!r}")
    k = len(dims)
    rho = np.eye(k)
    nmi = np.eye(k)
    total = 0.0
    if k >= 2 and n >= _MIN_SAMPLES:
        Zd = Z[:, dims]
        ranks = rankdata(Zd, axis=0)
        centred = ranks - ranks.mean(axis=0)
        norm = np.sqrt((centred**2).sum(axis=0))
        with np.errstate(invalid="ignore", divide="ignore"):
            rho = np.abs(centred.T @ centred / np.outer(norm, norm))
        rho = np.nan_to_num(np.clip(rho, 0.0, 1.0))
        np.fill_diagonal(rho, 1.0)
        bins = np.minimum(((ranks - 1) * n_bins / n).astype(int), n_bins - 1)
        for i in range(k):
            for j in range(i + 1, k):
                nmi[i, j] = nmi[j, i] = _pair_nmi(bins[:, i], bins[:, j], n_bins)
        scores = _normal_scores(Zd)
        corr = np.corrcoef(scores, rowvar=False)
        sign, logdet = np.linalg.slogdet(corr + 1e-9 * np.eye(k))
        total = float(max(0.0, -0.5 * logdet)) if sign > 0 else float("inf")
    elif k >= 2:  # too few spectra: unknown, not independent
        rho[~np.eye(k, dtype=bool)] = np.nan
        nmi[~np.eye(k, dtype=bool)] = np.nan
        total = float("nan")
    return LatentDependence(
        dims=np.asarray(dims, dtype=int), abs_spearman=rho, nmi=nmi, total_correlation=total,
        mad=mad, threshold=float(threshold), rho_threshold=float(rho_threshold),
        nmi_threshold=float(nmi_threshold), informative=informative, n_samples=int(n),
    )
