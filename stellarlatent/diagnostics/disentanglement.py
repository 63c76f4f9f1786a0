"""What the latent dimensions of an autoencoder carry.

Sedaghat et al. (2021) read the 128 latents of their beta-VAE in three steps:
the median absolute deviation (MAD) of each latent over the data separates
the few *informative* dimensions (MAD > 0.02) from the collapsed ones; the
mutual information between each latent and known labels (radial velocity,
Teff, log g, [M/H]) tells what each informative dimension encodes; and rank
correlations give the sense of the relation. These functions compute those
numbers from a latent array ``Z`` of shape (n_samples, latent_dim).
"""

import numpy as np
from astropy.stats import sigma_clip as _astropy_sigma_clip
from astropy.table import Table
from scipy.stats import median_abs_deviation, rankdata

from .._logging import log
from ._labels import as_2d_floats, label_columns

__all__ = [
    "latent_mad",
    "informative_dimensions",
    "mutual_information",
    "latent_correlation",
]

#: Bin counts of the 2-D histograms of Sedaghat et al. (2021).
PAPER_BINS = (5, 10, 20, 40, 80, 160)

_MIN_SAMPLES = 5
# Bound the memory of the vectorised histograms: samples x latents per chunk.
_CHUNK_ELEMENTS = 2_000_000


def check_latents(Z, name="Z"):
    """Return ``Z`` as a 2-D float array of latents (n_samples, latent_dim), checked.

    Shared by the diagnostics of this subpackage (not part of the public API:
    it is not in ``__all__``).
    """
    Z = as_2d_floats(Z, name, "latents", "(n_samples, latent_dim)")
    if Z.shape[0] == 0 or Z.shape[1] == 0:
        raise ValueError(f"{name} is empty (shape {Z.shape})")
    return Z


def _check_dims(dims, latent_dim, name="dims"):
    if dims is None:
        return np.arange(latent_dim)
    dims = np.atleast_1d(np.asarray(dims))
    if dims.ndim != 1 or dims.size == 0 or dims.dtype.kind not in "iu":
        raise ValueError(f"{name} must be a non-empty 1-D sequence of latent indices")
    if dims.min() < -latent_dim or dims.max() >= latent_dim:
        raise ValueError(
            f"{name} must hold indices in [0, {latent_dim}) for latent_dim={latent_dim}, "
            f"got {dims.tolist()}"
        )
    dims = dims % latent_dim
    if np.unique(dims).size != dims.size:
        raise ValueError(f"{name} has duplicated indices: {dims.tolist()}")
    return dims


def latent_mad(Z):
    """Median absolute deviation of each latent dimension.

    The MAD is unscaled (``scale=1`` in `scipy.stats.median_abs_deviation`)
    as in Sedaghat et al. (2021); NaN latents are ignored.

    Parameters
    ----------
    Z : array-like of shape (n_samples, latent_dim)
        Latent vectors, for example ``vae.transform(X)``.

    Returns
    -------
    mad : ndarray of shape (latent_dim,)

    Examples
    --------
    >>> import numpy as np
    >>> from stellarlatent.diagnostics import latent_mad
    >>> Z = np.array([[0.0, 1.0], [1.0, 1.0], [2.0, 1.01], [10.0, 1.0]])
    >>> latent_mad(Z)  # doctest: +FLOAT_CMP
    array([1., 0.])
    """
    Z = check_latents(Z)
    return np.asarray(median_abs_deviation(Z, axis=0, scale=1.0, nan_policy="omit"), dtype=float)


def informative_dimensions(Z, threshold=0.02):
    """Indices of the latent dimensions whose MAD exceeds ``threshold``.

    Parameters
    ----------
    Z : array-like of shape (n_samples, latent_dim)
        Latent vectors.
    threshold : float
        MAD above which a dimension counts as informative (0.02 in Sedaghat
        et al. 2021, where 6 of 128 dimensions passed it).

    Returns
    -------
    dims : ndarray of int
        Increasing indices of the informative dimensions (possibly empty).

    Examples
    --------
    >>> import numpy as np
    >>> from stellarlatent.diagnostics import informative_dimensions
    >>> rng = np.random.default_rng(0)
    >>> Z = rng.normal(scale=[1.0, 0.001, 0.5, 0.001], size=(500, 4))
    >>> informative_dimensions(Z)
    array([0, 2])
    """
    given = threshold
    try:
        threshold = float(threshold)
    except (TypeError, ValueError):
        threshold = np.nan
    if isinstance(given, (bool, str)) or not np.isfinite(threshold) or threshold < 0:
        raise ValueError(f"threshold must be a finite non-negative number, got {given!r}")
    return np.flatnonzero(latent_mad(Z) > threshold)


def _bin_indices(x, keep, n_bins):
    """Equal-width bin index of each value, the range being that of the kept values.

    ``x`` and ``keep`` have shape (n, k); each column is binned on its own
    range, like `numpy.histogram2d` with ``bins=n_bins`` (the maximum falls in
    the last bin; a constant column falls in bin 0).
    """
    lo = np.min(np.where(keep, x, np.inf), axis=0)
    hi = np.max(np.where(keep, x, -np.inf), axis=0)
    width = hi - lo
    scale = np.divide(n_bins, width, out=np.zeros_like(width), where=width > 0)
    with np.errstate(invalid="ignore"):
        idx = np.floor((x - lo) * scale)
    idx = np.where(keep, idx, 0).astype(np.intp)
    np.clip(idx, 0, n_bins - 1, out=idx)
    return idx


def _row_entropies(cells, weights, cells_per_row, n_rows, total):
    """Plug-in entropy (nats) of each row's histogram, from the cell of every sample.

    ``cells`` holds each sample's flat cell index (row ``r`` owns cells
    ``r * cells_per_row`` to ``(r + 1) * cells_per_row - 1``); most cells
    of a fine histogram are empty, so only occupied ones are summed.
    """
    counts = np.bincount(cells, weights, minlength=n_rows * cells_per_row)
    occupied = np.flatnonzero(counts)
    rows = occupied // cells_per_row
    p = counts[occupied] / np.where(total > 0, total, 1)[rows]
    return -np.bincount(rows, weights=p * np.log(p), minlength=n_rows)


def _histogram_mi(Zv, y, keep, bins):
    """Mutual information (nats) of each column of ``Zv`` with ``y``.

    Returns ``(mi, nmi)`` averaged over the bin counts, ``nmi`` being
    ``MI / sqrt(H(z) H(y))`` of each bin count before averaging.
    """
    n, k = Zv.shape
    total = keep.sum(axis=0).astype(float)
    all_kept = bool(keep.all())
    if all_kept:
        y2, y_keep, weights = y[:, np.newaxis], np.ones((n, 1), dtype=bool), None
    else:
        y2, y_keep = np.broadcast_to(y[:, np.newaxis], (n, k)), keep
        weights = keep.ravel().astype(float)
    mi = np.zeros((len(bins), k))
    nmi = np.zeros((len(bins), k))
    for i, b in enumerate(bins):
        iz = _bin_indices(Zv, keep, b)
        iy = _bin_indices(y2, y_keep, b)
        row = np.arange(k)
        hz = _row_entropies((iz + row * b).ravel(), weights, b, k, total)
        hy = _row_entropies((np.broadcast_to(iy, (n, k)) + row * b).ravel(), weights, b, k, total)
        hzy = _row_entropies((iz * b + iy + row * (b * b)).ravel(), weights, b * b, k, total)
        mi_b = np.maximum(hz + hy - hzy, 0.0)
        denominator = np.sqrt(hz * hy)
        mi[i] = mi_b
        nmi[i] = np.divide(mi_b, denominator, out=np.zeros(k), where=denominator > 0)
    return mi.mean(axis=0), np.clip(nmi.mean(axis=0), 0.0, 1.0)


def _ksg_mi(Zv, y, keep, n_neighbors, random_state):
    from sklearn.feature_selection import mutual_info_regression

    if keep.all():
        return mutual_info_regression(
            Zv, y, n_neighbors=n_neighbors, random_state=random_state
        )
    mi = np.full(Zv.shape[1], np.nan)
    for j in range(Zv.shape[1]):
        rows = keep[:, j]
        if rows.sum() > n_neighbors:
            mi[j] = mutual_info_regression(
                Zv[rows, j : j + 1], y[rows], n_neighbors=n_neighbors, random_state=random_state
            )[0]
    return mi


def _clip_mask(x, sigma, axis=0):
    """``True`` where ``x`` survives iterative sigma clipping."""
    clipped = _astropy_sigma_clip(x, sigma=sigma, maxiters=5, axis=axis, masked=True)
    return ~np.ma.getmaskarray(clipped)


def _valid_rows(Z, y, label, name):
    valid = np.isfinite(y) & np.all(np.isfinite(Z), axis=1)
    dropped = y.size - int(valid.sum())
    if dropped:
        log.debug("%s: dropping %d samples with a missing value", label, dropped)
    if valid.sum() < _MIN_SAMPLES:
        log.warning(
            "%s: only %d valid samples of '%s' (need %d); its values are NaN",
            name,
            int(valid.sum()),
            label,
            _MIN_SAMPLES,
        )
        return None
    return valid


_NORMALIZATIONS = (None, False, True, "max", "entropy", "linfoot")


def mutual_information(
    Z,
    labels,
    method="histogram",
    bins=PAPER_BINS,
    normalize=True,
    sigma_clip=None,
    random_state=None,
    dims=None,
    names=None,
    n_neighbors=3,
):
    """Mutual information between each latent dimension and each label.

    Parameters
    ----------
    Z : array-like of shape (n_samples, latent_dim)
        Latent vectors.
    labels : `~astropy.table.Table`, dict, or array-like
        The labels: a table (floating-point columns are used), a dict of 1-D arrays,
        or a 1-D or 2-D array named by ``names``. NaN and masked entries are
        dropped label by label; samples with a non-finite latent are dropped.
    method : {"histogram", "ksg"}
        ``"histogram"``: the plug-in estimator of Sedaghat et al. (2021).
        For each bin count ``b`` in ``bins`` the 2-D histogram of
        (latent, label) with ``b`` x ``b`` equal-width bins over the data's
        range gives ``MI_b = H(z) + H(y) - H(z, y)`` in nats; the result is
        the mean of ``MI_b`` over the bin counts. ``"ksg"``: the
        Kraskov-Stoegbauer-Grassberger k-nearest-neighbour estimator of
        `sklearn.feature_selection.mutual_info_regression` (nats).
    bins : sequence of int
        Bin counts of the histogram method (the paper's 5 to 160 by default).
    normalize : bool or {"max", "entropy", "linfoot"}
        How to scale the mutual information:

        * `False` or `None`: mutual information in nats.
        * `True` or ``"max"``: each row (latent) divided by its maximum over
          the labels, as in the figures of Sedaghat et al. (2021): the
          latent's best label gets 1. A row whose maximum is 0 stays 0. This
          ranks the labels of one latent but is **not** comparable between
          latents.
        * ``"entropy"`` (histogram method only): for each bin count,
          ``MI_b / sqrt(H_b(z) H_b(y))`` with the plug-in entropies of the same
          histogram, then the mean over the bin counts. It lies in [0, 1] and
          is comparable between latents and labels.
        * ``"linfoot"``: the information coefficient of correlation
          ``sqrt(1 - exp(-2 MI))`` of Linfoot (1957), in [0, 1] and comparable
          between latents; it equals ``|rho|`` for Gaussian variables with
          correlation ``rho``. Meant for the KSG estimator: the plug-in
          histogram estimate is biased upwards at large bin counts, which
          this transform amplifies.
    sigma_clip : float, default=None
        If given, samples further than ``sigma_clip`` standard deviations
        (iterative clipping with `astropy.stats.sigma_clip`) in the latent or
        in the label are dropped from that latent-label pair.
    random_state : int, `numpy.random.RandomState` or None
        Seed of the small noise that the KSG estimator adds; unused by the
        (deterministic) histogram method.
    dims : sequence of int, default=None
        Latent dimensions to use (default all).
    names : sequence of str, default=None
        Labels to use from a table or dict, or names of the columns of an
        array.
    n_neighbors : int
        Number of neighbours of the KSG estimator.

    Returns
    -------
    `~astropy.table.Table`
        One row per latent, with the integer column ``dim`` and one float
        column per label. ``meta`` records ``method``, ``normalize``,
        ``bins`` and the number of samples used per label (``n_samples``).
        Labels with fewer than 5 valid samples give NaN.

    Examples
    --------
    >>> import numpy as np
    >>> from stellarlatent.diagnostics import mutual_information
    >>> rng = np.random.default_rng(1)
    >>> teff = rng.uniform(4000, 7000, 2000)
    >>> Z = np.column_stack([(teff - 5500) / 900 + rng.normal(0, 0.1, 2000),
    ...                      rng.normal(size=2000)])
    >>> mi = mutual_information(Z, {"teff": teff}, normalize="entropy")
    >>> mi["dim"].tolist()
    [0, 1]
    >>> np.round(mi["teff"], 2).tolist()  # latent 0 carries Teff
    [0.64, 0.13]
    """
    Z = check_latents(Z)
    if method not in ("histogram", "ksg"):
        raise ValueError(f"method must be 'histogram' or 'ksg', got {method!r}")
    if normalize not in _NORMALIZATIONS:
        raise ValueError(
            "normalize must be False, True, 'max', 'entropy' or 'linfoot', "
            f"got {normalize!r}"
        )
    if normalize == "entropy" and method != "histogram":
        raise ValueError(
            "normalize='entropy' needs method='histogram' (the KSG estimator has no "
            "discrete entropies); use normalize='linfoot' for a comparable scale"
        )
    bins = tuple(int(b) for b in np.atleast_1d(bins))
    if not bins or min(bins) < 2:
        raise ValueError(f"bins must be a non-empty sequence of integers >= 2, got {bins}")
    if sigma_clip is not None and not (np.isfinite(sigma_clip) and sigma_clip > 0):
        raise ValueError(f"sigma_clip must be a positive number or None, got {sigma_clip}")
    dims = _check_dims(dims, Z.shape[1])
    columns = label_columns(labels, Z.shape[0], names=names)
    Zd = Z[:, dims]
    raw, scaled, n_used = {}, {}, {}
    for label, (y, _) in columns.items():
        raw[label] = np.full(dims.size, np.nan)
        scaled[label] = np.full(dims.size, np.nan)
        n_used[label] = 0
        valid = _valid_rows(Zd, y, label, "mutual_information")
        if valid is None:
            continue
        Zv, yv = Zd[valid], y[valid]
        keep = np.ones(Zv.shape, dtype=bool)
        if sigma_clip is not None:
            keep = _clip_mask(Zv, sigma_clip) & _clip_mask(yv, sigma_clip)[:, np.newaxis]
        n_used[label] = int(valid.sum())
        if method == "histogram":
            step = max(1, _CHUNK_ELEMENTS // Zv.shape[0])
            for start in range(0, dims.size, step):
                part = slice(start, start + step)
                raw[label][part], scaled[label][part] = _histogram_mi(
                    Zv[:, part], yv, keep[:, part], bins
                )
        else:
            raw[label] = _ksg_mi(Zv, yv, keep, n_neighbors, random_state)
    values = np.column_stack([raw[label] for label in columns])
    if normalize == "entropy":
        values = np.column_stack([scaled[label] for label in columns])
    elif normalize == "linfoot":
        values = np.sqrt(1.0 - np.exp(-2.0 * np.maximum(values, 0.0)))
    elif normalize in (True, "max"):
        with np.errstate(invalid="ignore"):
            row_max = np.nanmax(np.where(np.isnan(values), -np.inf, values), axis=1)
        row_max = np.where(np.isfinite(row_max) & (row_max > 0), row_max, np.inf)
        values = values / row_max[:, np.newaxis]
    table = Table()
    table["dim"] = dims
    for i, label in enumerate(columns):
        table[label] = values[:, i]
    table.meta.update(
        method=method,
        normalize="max" if normalize is True else (normalize or None),
        bins=list(bins) if method == "histogram" else None,
        n_samples=n_used,
        sigma_clip=sigma_clip,
    )
    return table


def latent_correlation(Z, labels, method="spearman", dims=None, names=None):
    """Rank (or linear) correlation between each latent dimension and each label.

    Parameters
    ----------
    Z : array-like of shape (n_samples, latent_dim)
        Latent vectors.
    labels : `~astropy.table.Table`, dict, or array-like
        As in `mutual_information`; NaN and masked entries are dropped label by
        label.
    method : {"spearman", "pearson"}
        Spearman's rank correlation (default) or Pearson's correlation.
    dims : sequence of int, default=None
        Latent dimensions to use (default all).
    names : sequence of str, default=None
        Labels to use, or names of the columns of an array.

    Returns
    -------
    `~astropy.table.Table`
        One row per latent (column ``dim``) and one column per label. A
        constant latent or label, or fewer than 5 valid samples, gives NaN.

    Examples
    --------
    >>> import numpy as np
    >>> from stellarlatent.diagnostics import latent_correlation
    >>> Z = np.array([[0.1, 3.0], [0.2, 1.0], [0.4, 2.0], [0.8, 6.0], [1.6, 4.0],
    ...               [3.2, 5.0], [6.4, 0.0]])
    >>> rho = latent_correlation(Z, {"logg": [1.0, 2.0, 3.0, 4.0, 5.0, 6.0, np.nan]})
    >>> rho["logg"].round(3).tolist()
    [1.0, 0.657]
    """
    Z = check_latents(Z)
    if method not in ("spearman", "pearson"):
        raise ValueError(f"method must be 'spearman' or 'pearson', got {method!r}")
    dims = _check_dims(dims, Z.shape[1])
    columns = label_columns(labels, Z.shape[0], names=names)
    Zd = Z[:, dims]
    table = Table()
    table["dim"] = dims
    for label, (y, _) in columns.items():
        rho = np.full(dims.size, np.nan)
        valid = _valid_rows(Zd, y, label, "latent_correlation")
        if valid is not None:
            a, b = Zd[valid], y[valid]
            if method == "spearman":
                a, b = rankdata(a, axis=0), rankdata(b)
            a = a - a.mean(axis=0)
            b = b - b.mean()
            denominator = np.sqrt((a**2).sum(axis=0) * (b**2).sum())
            rho = np.divide(
                b @ a, denominator, out=np.full(dims.size, np.nan), where=denominator > 0
            )
            rho = np.clip(rho, -1.0, 1.0)
        table[label] = rho
    table.meta.update(method=method)
    return table
