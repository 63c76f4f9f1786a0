"""One object that gathers the disentanglement diagnostics of a latent space."""

from collections import namedtuple

import numpy as np
from astropy.table import Table

from .._logging import log
from ._labels import label_columns
from ._plotting import axes_grid, axis_label, import_pyplot, single_axes, store_arguments
from .dependence import latent_dependence
from .disentanglement import (
    _MIN_SAMPLES,
    PAPER_BINS,
    check_latents,
    informative_dimensions,
    latent_correlation,
    latent_mad,
    mutual_information,
)
from .traversal import LatentTraversalDisplay

__all__ = ["DisentanglementReport", "BestDimension"]

BestDimension = namedtuple("BestDimension", ["dim", "spearman", "mi"])
BestDimension.__doc__ = """The latent dimension that carries a label best.

Attributes
----------
dim : int
    Index of the latent dimension.
spearman : float
    Spearman correlation of that dimension with the label.
mi : float
    Normalised mutual information of that dimension with the label (the
    report's ``normalized_mutual_information``, comparable between
    dimensions).
"""


class DisentanglementReport:
    """MAD, informative dimensions, mutual information and correlations of latents.

    Build it with `from_estimator` or `from_latents`; the constructor only
    stores precomputed parts.

    Parameters
    ----------
    latents : ndarray of shape (n_samples, latent_dim)
    labels : dict
        ``{name: (values, unit)}`` of the labels, NaN where missing (empty
        when the report was made without labels).
    mad : ndarray of shape (latent_dim,)
    informative : ndarray of int
    threshold : float
    mutual_information : `~astropy.table.Table`
        Mutual information in nats (one row per analysed dimension).
    normalized_mutual_information : `~astropy.table.Table`
        Normalised mutual information, comparable between dimensions.
    correlation : `~astropy.table.Table`
        Spearman correlations.
    estimator : object, default=None
        The autoencoder the latents came from.

    Attributes
    ----------
    mutual_information : `~astropy.table.Table`
        Mutual information in nats, one row per analysed dimension (``dim``),
        one column per label.
    normalized_mutual_information : `~astropy.table.Table`
        The same in [0, 1], comparable between dimensions and labels: with
        the histogram method ``MI / sqrt(H(z) H(label))`` per bin count,
        averaged (``normalize="entropy"`` of `mutual_information`); with the
        KSG method the Linfoot coefficient ``sqrt(1 - exp(-2 MI))``.
    relative_mutual_information : `~astropy.table.Table`
        Each row divided by its maximum, the convention of the figures of
        Sedaghat et al. (2021): it ranks the labels of one dimension only.

    Examples
    --------
    >>> import numpy as np
    >>> from stellarlatent.diagnostics import DisentanglementReport
    >>> rng = np.random.default_rng(0)
    >>> teff = rng.uniform(4000, 7000, 1000)
    >>> logg = rng.uniform(1, 5, 1000)
    >>> Z = rng.normal(0, 0.005, (1000, 8))  # collapsed dimensions
    >>> Z[:, 2] = (teff - 5500) / 1000 + rng.normal(0, 0.05, 1000)
    >>> Z[:, 5] = -(logg - 3) + rng.normal(0, 0.05, 1000)
    >>> report = DisentanglementReport.from_latents(Z, {"teff": teff, "logg": logg})
    >>> report.informative.tolist()
    [2, 5]
    >>> report.summary["best_label"].tolist()
    ['logg', 'teff']
    >>> dim, rho, mi = report.best_dimension("logg")
    >>> dim, round(rho, 2)
    (5, -1.0)
    """

    def __init__(
        self,
        latents,
        labels,
        mad,
        informative,
        threshold,
        mutual_information,
        normalized_mutual_information,
        correlation,
        estimator=None,
    ):
        store_arguments(self, locals())
        self._chance_levels = {}

    @classmethod
    def from_latents(
        cls,
        Z,
        labels,
        threshold=0.02,
        dims="informative",
        method="histogram",
        bins=PAPER_BINS,
        sigma_clip=None,
        random_state=None,
        names=None,
        estimator=None,
    ):
        """Compute the diagnostics of latent vectors.

        Parameters
        ----------
        Z : array-like of shape (n_samples, latent_dim)
            Latent vectors.
        labels : `~astropy.table.Table`, dict, array-like or None
            Labels of the same samples (see
            `~stellarlatent.diagnostics.mutual_information`); NaN and masked
            values are dropped label by label. None for spectra without
            labels: the report then has what needs none (the MAD, the
            informative dimensions, their `dependence`, the traversals), and
            its mutual information and correlation tables only a ``dim``
            column.
        threshold : float
            MAD above which a dimension is informative.
        dims : {"informative", "all"} or sequence of int
            Dimensions whose mutual information and correlations are computed.
        method, bins, sigma_clip, random_state
            Passed to `~stellarlatent.diagnostics.mutual_information`.
        names : sequence of str, default=None
            Labels to use, or names of the columns of an array.
        estimator : object, default=None
            Kept for `plot_traversals`.

        Returns
        -------
        `DisentanglementReport`
        """
        Z = check_latents(Z)
        columns = {} if labels is None else label_columns(labels, Z.shape[0], names=names)
        mad = latent_mad(Z)
        informative = informative_dimensions(Z, threshold)
        if isinstance(dims, str):
            if dims not in ("informative", "all"):
                raise ValueError(f"dims must be 'informative', 'all' or indices, got {dims!r}")
            dims = informative if dims == "informative" else np.arange(Z.shape[1])
        dims = np.asarray(dims, dtype=int)
        values = {key: value for key, (value, _) in columns.items()}
        if dims.size and values:
            kwargs = dict(method=method, bins=bins, sigma_clip=sigma_clip, dims=dims)
            raw = mutual_information(
                Z, values, normalize=False, random_state=random_state, **kwargs
            )
            if method == "histogram":
                scaled = mutual_information(Z, values, normalize="entropy", **kwargs)
            else:
                scaled = raw.copy()
                for key in values:
                    scaled[key] = np.sqrt(1.0 - np.exp(-2.0 * np.maximum(raw[key], 0.0)))
                scaled.meta["normalize"] = "linfoot"
            correlation = latent_correlation(Z, values, dims=dims)
        else:
            if not dims.size:
                log.warning(
                    "no latent dimension has MAD > %g; the report has no mutual information",
                    threshold,
                )
            # without labels, the analysed dimensions and no label column
            raw = Table({"dim": dims, **{k: np.zeros(0) for k in values}})
            scaled, correlation = raw.copy(), raw.copy()
        return cls(
            Z,
            columns,
            mad,
            informative,
            float(threshold),
            raw,
            scaled,
            correlation,
            estimator=estimator,
        )

    @classmethod
    def from_estimator(cls, vae, X, labels, threshold=0.02, **kwargs):
        """Encode ``X`` with a fitted autoencoder and compute the diagnostics.

        Parameters
        ----------
        vae : estimator
            A fitted `~stellarlatent.estimators.SpectralVAE` (anything with
            ``transform(X) -> (n_samples, latent_dim)``).
        X : `~specutils.Spectrum` or array-like
            Spectra, as accepted by ``vae.transform``.
        labels : `~astropy.table.Table`, dict, array-like or None
            Labels of the spectra; None when they have none (see `from_latents`).
        threshold : float
            MAD above which a dimension is informative.
        **kwargs
            Passed to `from_latents`.

        Returns
        -------
        `DisentanglementReport`
        """
        Z = np.asarray(vae.transform(X), dtype=float)
        latent_dim = getattr(vae, "latent_dim", None)
        if Z.ndim != 2 or (latent_dim is not None and Z.shape[1] != int(latent_dim)):
            raise ValueError(
                f"vae.transform(X) returned shape {Z.shape}; expected (n_samples, {latent_dim})"
            )
        return cls.from_latents(Z, labels, threshold=threshold, estimator=vae, **kwargs)

    def __repr__(self):
        return (
            f"<{type(self).__name__}: {self.informative.size} of {self.mad.size} latent "
            f"dimensions informative (MAD > {self.threshold:g}); labels: "
            f"{', '.join(self.label_names) or 'none'}; {self.dependence.verdict()[0]}>"
        )

    @property
    def dependence(self):
        """`~stellarlatent.diagnostics.LatentDependence` of the informative latents."""
        if getattr(self, "_dependence", None) is None:
            self._dependence = latent_dependence(self.latents, threshold=self.threshold)
        return self._dependence

    @property
    def dependence_table(self):
        """One row per pair of informative latents, most dependent first.

        Columns: ``dim_a``, ``dim_b``, ``abs_spearman``, ``nmi`` (see
        `~stellarlatent.diagnostics.latent_dependence`) and ``entangled``.
        """
        dep = self.dependence
        rows = []
        for i in range(len(dep.dims)):
            for j in range(i + 1, len(dep.dims)):
                rho, nmi = dep.abs_spearman[i, j], dep.nmi[i, j]
                rows.append((int(dep.dims[i]), int(dep.dims[j]), float(rho), float(nmi),
                             bool(rho > dep.rho_threshold or nmi > dep.nmi_threshold)))
        rows.sort(key=lambda r: max(r[2], r[3]), reverse=True)
        table = Table(rows=rows if rows else None,
                      names=["dim_a", "dim_b", "abs_spearman", "nmi", "entangled"],
                      dtype=[int, int, float, float, bool])
        table.meta["total_correlation"] = dep.total_correlation
        return table

    @property
    def verdict(self):
        """Is the latent space disentangled? A list of sentences, the summary first.

        It flags pairs of informative latents that depend on each other
        (the thin curves of the pairwise panels of Sedaghat et al. 2021,
        Fig. 5), latent spaces where nothing was pruned or everything
        collapsed, and labels whose best latent is the same.

        Examples
        --------
        >>> import numpy as np
        >>> rng = np.random.default_rng(0)
        >>> teff = rng.uniform(4000, 7000, 1000)
        >>> Z = rng.normal(0, 0.005, (1000, 6))
        >>> Z[:, 1] = (teff - 5500) / 1000 + rng.normal(0, 0.05, 1000)
        >>> Z[:, 4] = np.tanh(Z[:, 1]) + rng.normal(0, 0.02, 1000)  # the same factor again
        >>> report = DisentanglementReport.from_latents(Z, {"teff": teff})
        >>> report.verdict[:2]  # doctest: +ELLIPSIS +NORMALIZE_WHITESPACE
        ['entangled: 1 pair of informative latents depend on each other',
         'latents 1 and 4 share ...']
        """
        sentences = list(self.dependence.verdict())
        factor = self._same_factor()
        best, uncarried = {}, []
        for label in self.label_names:
            try:
                found = self.best_dimension(label)
            except ValueError:
                continue
            if found.mi <= self.chance_level(label):
                # weaker than the estimate's bias; a rank correlation may still show it
                if not self._rank_correlated(label):
                    uncarried.append(label)
                continue
            best.setdefault(found.dim, {}).setdefault(factor[label], label)
        for dim, labels in best.items():
            if len(labels) > 1:
                sentences.append(
                    f"labels {' and '.join(labels.values())} are carried best by the same "
                    f"latent {dim}: they are not separated"
                )
        if uncarried:
            one = len(uncarried) == 1
            sentences.append(
                f"{'label' if one else 'labels'} {', '.join(uncarried)}: no informative latent "
                f"carries {'it' if one else 'them'} beyond chance (no more mutual information "
                f"than with {'it' if one else 'them'} shuffled, no significant rank correlation)"
            )
        return sentences

    def _rank_correlated(self, label, dims=None, p_value=1e-3):
        """Whether the Spearman correlation of a latent of ``dims`` with ``label`` is significant.

        ``dims`` defaults to the informative latents; the test of each is at
        ``p_value`` divided by the number of informative latents (Bonferroni),
        whichever are asked about, so that the verdict and the summary agree.
        """
        from scipy.stats import t as student_t

        table = self.correlation
        searched = self.informative if dims is None else dims
        rows = np.isin(np.asarray(table["dim"], dtype=int), searched)
        rho = np.abs(np.asarray(table[label], dtype=float)[rows])
        rho = rho[np.isfinite(rho)]
        n = int(np.isfinite(np.asarray(self.labels[label][0], dtype=float)).sum())
        if rho.size == 0 or n < 4:
            return False
        r = min(float(rho.max()), 1 - 1e-12)
        t = r * np.sqrt((n - 2) / (1 - r * r))
        return bool(2 * student_t.sf(t, n - 2) < p_value / max(len(self.informative), 1))

    def chance_level(self, label, among="informative", n_permutations=19, random_state=0):
        """How much normalised mutual information ``label`` reaches by chance.

        The plug-in histogram estimate is biased upwards (with a few hundred
        spectra and the paper's bins up to 160, an independent label gets
        0.3-0.4), so a label's best latent is not evidence that any latent
        carries it. This shuffles the label ``n_permutations`` times, finds
        the best latent of each shuffled copy as `best_dimension` does (same
        estimator, same dimensions), and returns the mean of these values
        plus three times their standard deviation: a label whose best latent
        exceeds it is carried beyond chance (about one false alarm in a
        thousand if the shuffled values scatter as a Gaussian).

        Parameters
        ----------
        label : str
            Name of the label.
        among : {"informative", "all"}
            The dimensions searched, as in `best_dimension`.
        n_permutations : int
            Number of shufflings (at least 2 for a spread).
        random_state : int, default=0
            Seed of the shufflings.

        Returns
        -------
        float
            NaN when no dimension is searched or the label has fewer than
            five known values. Computed once per set of arguments and kept.

        Examples
        --------
        >>> import numpy as np
        >>> rng = np.random.default_rng(0)
        >>> teff, vsini = rng.uniform(4000, 7000, 300), rng.uniform(0, 30, 300)
        >>> Z = rng.normal(0, 0.005, (300, 4))
        >>> Z[:, 2] = (teff - 5500) / 1000 + rng.normal(0, 0.05, 300)
        >>> Z[:, 0] = rng.normal(0, 1, 300)
        >>> report = DisentanglementReport.from_latents(Z, {"teff": teff, "vsini": vsini})
        >>> nmi = report.best_dimension("vsini").mi
        >>> bool(nmi > 0.2), bool(nmi <= report.chance_level("vsini"))
        (True, True)
        >>> bool(report.best_dimension("teff").mi > report.chance_level("teff"))
        True
        """
        key = (label, among, n_permutations, random_state)
        if key not in self._chance_levels:
            self._chance_levels[key] = self._chance_level(*key)
        return self._chance_levels[key]

    def _chance_level(self, label, among, n_permutations, random_state):
        if label not in self.labels:
            raise ValueError(f"label must be one of {self.label_names}, got {label!r}")
        if among not in ("informative", "all"):
            raise ValueError(f"among must be 'informative' or 'all', got {among!r}")
        if isinstance(n_permutations, bool) or not isinstance(n_permutations, (int, np.integer)) \
                or n_permutations < 2:
            raise ValueError(f"n_permutations must be an integer >= 2, got {n_permutations!r}")
        table = self.normalized_mutual_information
        dims = np.asarray(table["dim"], dtype=int)
        if among == "informative":
            dims = dims[np.isin(dims, self.informative)]
        known = int(np.isfinite(np.asarray(self.labels[label][0], dtype=float)).sum())
        if dims.size == 0 or known < _MIN_SAMPLES:
            return float("nan")
        meta = table.meta
        rng = np.random.default_rng(random_state)
        values = np.asarray(self.labels[label][0], dtype=float)
        shuffled = {f"shuffle{k}": rng.permutation(values) for k in range(int(n_permutations))}
        chance = mutual_information(
            self.latents, shuffled, method=meta.get("method", "histogram"),
            bins=meta.get("bins") or PAPER_BINS, normalize=meta.get("normalize", "entropy"),
            sigma_clip=meta.get("sigma_clip"), random_state=random_state, dims=dims,
        )
        best = np.array([np.nanmax(chance[key]) for key in shuffled])
        return float(best.mean() + 3.0 * best.std(ddof=1))

    def _same_factor(self, min_abs_rho=0.99):
        """The first label of each label's group of labels that are one factor in other forms.

        Teff and log Teff (or any two labels that rise or fall together
        almost exactly, abs(Spearman rho) above ``min_abs_rho``) are one
        factor: sharing a latent does not make them entangled.
        """
        from scipy.stats import spearmanr

        factor = {}
        for k, label in enumerate(self.label_names):
            factor[label] = label
            a = np.asarray(self.labels[label][0], dtype=float)
            for other in self.label_names[:k]:
                b = np.asarray(self.labels[other][0], dtype=float)
                both = np.isfinite(a) & np.isfinite(b)
                if both.sum() < 10 or np.ptp(a[both]) == 0 or np.ptp(b[both]) == 0:
                    continue
                if abs(spearmanr(a[both], b[both]).statistic) > min_abs_rho:
                    factor[label] = factor[other]
                    break
        return factor

    @property
    def label_names(self):
        """Names of the labels."""
        return list(self.labels)

    @property
    def relative_mutual_information(self):
        """Mutual information with each row divided by its maximum (the paper's figures)."""
        table = self.mutual_information.copy()
        values = (np.column_stack([table[k] for k in self.label_names])
                  if len(table) and self.label_names else None)
        if values is not None:
            with np.errstate(invalid="ignore"):
                top = np.nanmax(np.where(np.isnan(values), -np.inf, values), axis=1)
            top = np.where(np.isfinite(top) & (top > 0), top, np.inf)
            for i, key in enumerate(self.label_names):
                table[key] = values[:, i] / top
        table.meta["normalize"] = "max"
        return table

    def _row(self, table, dim):
        return int(np.flatnonzero(np.asarray(table["dim"]) == dim)[0])

    @property
    def summary(self):
        """One row per informative dimension, by decreasing MAD.

        Columns: ``dim``, ``mad``, ``best_label`` (the label of largest mutual
        information), ``mi`` (its mutual information in nats), ``nmi`` (its
        normalised mutual information, comparable between rows),
        ``spearman`` (its Spearman correlation) and ``beyond_chance`` (whether
        the latent carries that label beyond chance: more normalised mutual
        information than `chance_level`, or a significant rank correlation;
        otherwise the best label is only the closest). A report without
        labels has ``dim`` and ``mad`` only.
        """
        names = self.label_names
        if not names:
            order = self.informative[np.argsort(-self.mad[self.informative], kind="stable")]
            return Table({"dim": np.asarray(order, dtype=int),
                          "mad": np.asarray(self.mad[order], dtype=float)})
        rows = []
        analysed = set(np.asarray(self.mutual_information["dim"]).tolist())
        for dim in self.informative[np.argsort(-self.mad[self.informative], kind="stable")]:
            if dim not in analysed:
                continue
            i = self._row(self.mutual_information, dim)
            mi = np.array([self.mutual_information[k][i] for k in names], dtype=float)
            if np.all(np.isnan(mi)):
                rows.append((dim, self.mad[dim], "", np.nan, np.nan, np.nan, False))
                continue
            best = names[int(np.nanargmax(mi))]
            nmi = self.normalized_mutual_information[best][i]
            rows.append(
                (
                    dim,
                    self.mad[dim],
                    best,
                    mi[names.index(best)],
                    nmi,
                    self.correlation[best][i],
                    bool(nmi > self.chance_level(best) or self._rank_correlated(best, [dim])),
                )
            )
        return Table(
            rows=rows if rows else None,
            names=["dim", "mad", "best_label", "mi", "nmi", "spearman", "beyond_chance"],
            dtype=[int, float, str, float, float, float, bool],
        )

    def best_dimension(self, label, among="informative"):
        """The dimension with the largest normalised mutual information with ``label``.

        Parameters
        ----------
        label : str
            Name of the label.
        among : {"informative", "all"}
            Search the informative dimensions, or every analysed dimension.

        Returns
        -------
        `BestDimension`
            ``(dim, spearman, mi)`` with ``mi`` the normalised mutual
            information (comparable between dimensions).
        """
        if label not in self.labels:
            raise ValueError(f"label must be one of {self.label_names}, got {label!r}")
        if among not in ("informative", "all"):
            raise ValueError(f"among must be 'informative' or 'all', got {among!r}")
        table = self.normalized_mutual_information
        dims = np.asarray(table["dim"])
        candidates = np.isin(dims, self.informative) if among == "informative" else dims >= 0
        scores = np.where(candidates, np.asarray(table[label], dtype=float), np.nan)
        known = int(np.isfinite(np.asarray(self.labels[label][0], dtype=float)).sum())
        if known < _MIN_SAMPLES:
            raise ValueError(
                f"label '{label}' has {known} known value{'' if known == 1 else 's'} (NaN or "
                f"masked everywhere else; the mutual information needs {_MIN_SAMPLES}): no "
                "dimension can be compared with it")
        if not np.any(np.isfinite(scores)):
            raise ValueError(
                f"no {'informative ' if among == 'informative' else ''}dimension has a mutual "
                f"information with '{label}'"
                + (" (use among='all')" if among == "informative" else ""))
        i = int(np.nanargmax(scores))
        return BestDimension(int(dims[i]), float(self.correlation[label][i]), float(scores[i]))

    def plot_mad(self, *, ax=None):
        """Bar chart of the MAD of every dimension, with the threshold.

        Parameters
        ----------
        ax : `~matplotlib.axes.Axes`, default=None
            Where to draw; a new figure when None.

        Returns
        -------
        `~matplotlib.axes.Axes`
        """
        fig, ax = single_axes(ax)
        dims = np.arange(self.mad.size)
        informative = np.isin(dims, self.informative)
        height = np.where(self.mad > 0, self.mad, np.nan)
        ax.bar(dims[~informative], height[~informative], color="0.7", label="collapsed")
        ax.bar(dims[informative], height[informative], color="C3", label="informative")
        ax.axhline(self.threshold, color="k", ls="--", lw=1, label=f"MAD = {self.threshold:g}")
        if np.any(self.mad > 0):
            ax.set_yscale("log")
        ax.set_xlabel("latent dimension")
        ax.set_ylabel("median absolute deviation")
        ax.legend(loc="best", fontsize="small")
        return ax

    def plot_mutual_information(self, *, ax=None, normalize="max", annotate=True, cmap="viridis"):
        """Heat map of the mutual information, dimensions by labels.

        Parameters
        ----------
        ax : `~matplotlib.axes.Axes`, default=None
            Where to draw; a new figure when None.
        normalize : {"max", "nmi", None}, default="max"
            ``"max"``: each row divided by its maximum (the paper's figures);
            ``"nmi"``: the normalised mutual information, with each label's
            `chance_level` under its name and the cells that do not exceed
            it hatched (with few spectra the plug-in estimate is biased
            upwards: 32 latents of pure noise reach 0.7); `None`: nats.
        annotate : bool, default=True
            Write the value in each cell.
        cmap : str, default="viridis"
            Colour map.

        Returns
        -------
        `~matplotlib.axes.Axes`
        """
        if not self.label_names:
            raise ValueError("the report has no mutual information to draw (made without labels)")
        tables = {
            "max": self.relative_mutual_information,
            "nmi": self.normalized_mutual_information,
            None: self.mutual_information,
        }
        if normalize not in tables:
            raise ValueError(f"normalize must be 'max', 'nmi' or None, got {normalize!r}")
        table = tables[normalize]
        if len(table) == 0:
            raise ValueError("the report has no mutual information to draw (no analysed dims)")
        values = np.column_stack([np.asarray(table[k], dtype=float) for k in self.label_names])
        fig, ax = single_axes(ax, figsize=(1.2 * values.shape[1] + 2.5, 0.4 * len(table) + 1.5))
        image = ax.imshow(values, aspect="auto", cmap=cmap, interpolation="nearest")
        names = list(self.label_names)
        if normalize == "nmi":
            from matplotlib.patches import Rectangle

            chance = np.array([self.chance_level(k, among="all") for k in self.label_names])
            names = [f"{k}\n{c:.2f}" if np.isfinite(c) else k for k, c in zip(names, chance)]
            for (i, j), value in np.ndenumerate(values):
                if np.isfinite(chance[j]) and not value > chance[j]:
                    ax.add_patch(Rectangle((j - 0.5, i - 0.5), 1, 1, fill=False, hatch="///",
                                           edgecolor="0.6", linewidth=0))
        ax.set_xticks(np.arange(values.shape[1]), names)
        ax.set_yticks(np.arange(len(table)), [str(d) for d in table["dim"]])
        ax.set_xlabel("label" + (" (its chance level)" if normalize == "nmi" else ""))
        ax.set_ylabel("latent dimension")
        if annotate:
            for (i, j), value in np.ndenumerate(values):
                if np.isfinite(value):
                    ax.text(j, i, f"{value:.2f}", ha="center", va="center", fontsize="small",
                            color="w" if value < np.nanmax(values) / 2 else "k")
        label = {"max": "MI / row maximum", "nmi": "normalised MI", None: "MI [nats]"}[normalize]
        fig.colorbar(image, ax=ax, label=label)
        return ax

    def plot_pairwise(self, label, dims=None, s=4, cmap="viridis"):
        """Pairwise scatter of latent dimensions coloured by a label.

        Parameters
        ----------
        label : str or None
            Label that colours the points; None draws them in one colour
            (a report without labels).
        dims : sequence of int, default=None
            Dimensions to pair (default the informative ones).
        s : float
            Marker size.
        cmap : str
            Colour map.

        Returns
        -------
        `~matplotlib.figure.Figure`
            A grid with the histogram of each dimension on the diagonal and
            scatter plots below it.
        """
        if label is not None and label not in self.labels:
            raise ValueError(f"label must be one of {self.label_names}, got {label!r}")
        dims = self.informative if dims is None else np.atleast_1d(np.asarray(dims, dtype=int))
        if dims.size == 0:
            raise ValueError("dims is empty (the report has no informative dimension)")
        if dims.min() < 0 or dims.max() >= self.mad.size:
            raise ValueError(f"dims must be in [0, {self.mad.size}), got {dims.tolist()}")
        import_pyplot()
        if label is None:
            Z, colour = self.latents, {"color": "0.2"}
        else:
            values, unit = self.labels[label]
            order = np.argsort(np.where(np.isnan(values), -np.inf, values))
            Z, colour = self.latents[order], {"c": values[order], "cmap": cmap}
        k = dims.size
        fig, axes = axes_grid(None, k, k, panel_size=(2.2, 2.2))
        scatter = None
        for i, di in enumerate(dims):
            for j, dj in enumerate(dims):
                panel = axes[i, j]
                if j > i:
                    panel.set_visible(False)
                    continue
                if i == j:
                    panel.hist(Z[:, di][np.isfinite(Z[:, di])], bins=40, color="0.5")
                else:
                    scatter = panel.scatter(Z[:, dj], Z[:, di], s=s, plotnonfinite=True,
                                            linewidths=0, **colour)
                if i == k - 1:
                    panel.set_xlabel(f"z{dj}")
                if j == 0 and i > 0:
                    panel.set_ylabel(f"z{di}")
        if scatter is not None and label is not None:
            fig.colorbar(scatter, ax=axes.ravel().tolist(), label=axis_label(label, unit))
        return fig

    def plot_traversals(self, x, vae=None, dims=None, values=np.linspace(-3, 3, 7),
                        scale="mad", ax=None, **kwargs):
        """Latent traversals of the informative dimensions around the spectrum ``x``.

        Parameters
        ----------
        x : `~specutils.Spectrum` or array-like
            The spectrum to start from.
        vae : estimator, default=None
            The autoencoder (default the one given to `from_estimator`).
        dims : sequence of int, default=None
            Dimensions to traverse (default the informative ones).
        values : array-like
            Steps, in units of each latent's MAD about its median when
            ``scale="mad"``.
        scale : {"mad", "std", None}
            See `LatentTraversalDisplay.from_estimator`.
        ax : Axes or array of Axes, default=None
        **kwargs
            Passed to `LatentTraversalDisplay.plot`.

        Returns
        -------
        `LatentTraversalDisplay`
        """
        vae = self.estimator if vae is None else vae
        if vae is None:
            raise ValueError("vae is required: this report was not built from an estimator")
        dims = self.informative if dims is None else dims
        display = LatentTraversalDisplay.from_estimator(
            vae, x, dims=dims, values=values, scale=scale, latents=self.latents
        )
        return display.plot(ax=ax, **kwargs)
