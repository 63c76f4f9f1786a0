"""The beta study of Sedaghat et al. (2021) as a tool: how many latents survive each beta.

The paper trained networks with 8 and 128 latents over a range of
disentanglement weights and read the number of informative latents (MAD
above 0.02) off each: too small a beta leaves every latent in use, too large a
beta collapses them all, and at a well-chosen beta both sizes keep the same
few (six in the paper), which is the sign that those few are the factors of
the data rather than an artefact of the network's size.
"""

import numbers
from dataclasses import dataclass

import numpy as np
from astropy.table import Table

from ._plotting import axes_grid
from .disentanglement import latent_mad

__all__ = ["BetaSweep", "BetaSweepDisplay", "beta_sweep"]

#: A network whose final loss exceeds the lowest of its beta by this factor is flagged: it
#: most likely stopped near the mean spectrum, with weak latents that jitter around the
#: threshold, and its count says nothing about the data.
STUCK_LOSS_RATIO = 1.25


@dataclass
class BetaSweep:
    """MAD of every latent of networks fitted at several betas and sizes.

    Attributes
    ----------
    table : `~astropy.table.Table`
        One row per fitted network: ``beta``, ``latent_dim``,
        ``n_informative``, ``mad`` (the MAD of each latent, sorted in
        decreasing order, NaN-padded to the largest size) and ``loss`` (the
        validation loss, or the training loss without a validation split,
        of the weights the fit kept: the last epoch's, or the best epoch's
        when early stopping restored them).
    threshold : float
        MAD above which a latent counts as informative.
    chosen_beta : float
        The smallest beta at which the informative counts of all sizes agree
        within one and the largest network pruned some of its latents; when
        no beta does, the one where the counts are closest.
    agreed : bool
        Whether ``chosen_beta`` meets that agreement.
    estimators : list
        The fitted estimators, in the rows' order (None when not kept).
    """

    table: Table
    threshold: float
    chosen_beta: float
    agreed: bool
    estimators: list

    def counts(self):
        """``{latent_dim: [n_informative at each beta]}``, betas in increasing order."""
        out = {}
        for dim in sorted(set(self.table["latent_dim"])):
            rows = self.table[self.table["latent_dim"] == dim]
            rows.sort("beta")
            out[int(dim)] = [int(n) for n in rows["n_informative"]]
        return out

    @property
    def betas(self):
        return np.unique(np.asarray(self.table["beta"], dtype=float))

    def stuck(self):
        """``[(beta, latent_dim, ratio)]`` of networks whose loss is far above their beta's best.

        A network that stopped near the mean spectrum (it never learned to
        pass the spectra through its latents) ends at a much higher loss
        than another size at the same beta, and the jitter of its unused
        latents can cross the MAD threshold: its informative count is not a
        property of the data. Refit it with another ``random_state``, or
        sweep with ``n_init=2``.

        Examples
        --------
        >>> from astropy.table import Table
        >>> table = Table({"beta": [0.01, 0.01], "latent_dim": [8, 32],
        ...                "n_informative": [4, 3], "loss": [0.058, 0.033]})
        >>> [(beta, size, round(ratio, 2))
        ...  for beta, size, ratio in BetaSweep(table, 0.02, 0.01, True, [None] * 2).stuck()]
        [(0.01, 8, 1.76)]
        """
        if "loss" not in self.table.colnames:
            return []
        out = []
        for beta in self.betas:
            rows = self.table[self.table["beta"] == beta]
            losses = np.asarray(rows["loss"], dtype=float)
            if not np.isfinite(losses).any():
                continue
            best = np.nanmin(losses)
            for row, loss in zip(rows, losses):
                if best > 0 and loss > STUCK_LOSS_RATIO * best:
                    out.append((float(beta), int(row["latent_dim"]), float(loss / best)))
        return out

    def summary(self):
        """The informative counts of each size at each beta, and the choice, in one sentence.

        Examples
        --------
        >>> from astropy.table import Table
        >>> table = Table({"beta": [0.1, 0.1, 1.0, 1.0], "latent_dim": [8, 32, 8, 32],
        ...                "n_informative": [8, 20, 5, 6]})
        >>> print(BetaSweep(table, 0.02, 1.0, True, [None] * 4).summary())
        ... # doctest: +NORMALIZE_WHITESPACE
        informative latents (MAD > 0.02) at beta 0.1, 1: 8 latents: 8, 5;
        32 latents: 20, 6; chosen beta 1 (the sizes agree there)
        """
        counts = "; ".join(f"{size} latents: " + ", ".join(map(str, n))
                           for size, n in self.counts().items())
        verdict = ("the sizes agree there" if self.agreed else
                   "no beta made the sizes agree within one with pruning: this is the "
                   "closest, so widen the betas or train longer")
        stuck = "".join(f"; {size} latents at beta {beta:g} ended at {ratio:.2f} times the "
                        "lowest loss of that beta: it may have stopped near the mean spectrum "
                        "(refit it with another random_state, or sweep with n_init=2)"
                        for beta, size, ratio in self.stuck())
        at_chosen = self.table[np.isclose(np.asarray(self.table["beta"], dtype=float),
                                          self.chosen_beta, rtol=1e-6, atol=0)]
        collapsed = sorted(int(row["latent_dim"]) for row in at_chosen
                           if int(row["n_informative"]) == 0)
        networks = ("networks" if len(collapsed) > 1 else "network")
        collapsed = (f"; at the chosen beta the {'- and '.join(map(str, collapsed))}-latent "
                     f"{networks} collapsed (no informative latent): lower beta or train longer"
                     if collapsed else "")
        return (f"informative latents (MAD > {self.threshold:g}) at beta "
                f"{', '.join(f'{b:g}' for b in self.betas)}: {counts}; "
                f"chosen beta {self.chosen_beta:g} ({verdict}){collapsed}{stuck}")


def _starts(random_state, n_init):
    """``n_init`` random states: ``random_state + i`` for an int, fresh ones otherwise."""
    if n_init == 1:
        return [random_state]
    if random_state is None:
        return [None] * n_init
    if isinstance(random_state, numbers.Integral) and not isinstance(random_state, bool):
        return [int(random_state) + i for i in range(n_init)]
    from sklearn.utils import check_random_state

    rng = check_random_state(random_state)
    return [int(seed) for seed in rng.randint(np.iinfo(np.int32).max, size=n_init)]


def _fit_one(estimator, X, X_eval, beta, latent_dim, keep, threads, random_state):
    if threads is not None:
        import torch

        torch.set_num_threads(threads)
    model = estimator.set_params(beta=beta, latent_dim=latent_dim, random_state=random_state)
    model.fit(X)
    Z = model.transform(X if X_eval is None else X_eval)
    return latent_mad(Z), _kept_loss(model), (model if keep else None)


def _kept_loss(model):
    """The monitored loss of the weights the fit kept: the last epoch's, or the best one's
    when early stopping restored the best weights."""
    monitored = [record.get("val_loss", record.get("train_loss", np.nan))
                 for record in model.history_]
    if not monitored:
        return float("nan")
    restored = (getattr(model, "n_iter_no_change", None) is not None
                and "val_loss" in model.history_[-1])
    return float(np.nanmin(monitored) if restored else monitored[-1])


def _choose(table, sizes):
    betas = np.unique(np.asarray(table["beta"], dtype=float))
    largest = max(sizes)
    gaps, prunes, penalties = [], [], []
    for beta in betas:
        rows = table[table["beta"] == beta]
        counts = {int(r["latent_dim"]): int(r["n_informative"]) for r in rows}
        values = [counts[s] for s in sizes]
        gaps.append(max(values) - min(values))
        prunes.append(0 < counts[largest] < largest and min(values) > 0)
        # a collapsed network learned nothing: worse than a gap, and two worse than one
        penalties.append(largest * sum(v == 0 for v in values)
                         + (largest if counts[largest] == largest else 0))
    for beta, gap, pruned in zip(betas, gaps, prunes):
        if gap <= 1 and pruned:
            return float(beta), True
    best = int(np.argmin(np.add(gaps, penalties)))
    return float(betas[best]), False


def beta_sweep(estimator, X, betas, latent_dims=(8, 32), *, X_eval=None, threshold=0.02,
               n_jobs=None, keep_estimators=False, n_init=1):
    """Fit the estimator at every beta and latent size; count the informative latents.

    Parameters
    ----------
    estimator : `~stellarlatent.estimators.SpectralVAE`
        The settings of every network (cloned; ``beta`` and ``latent_dim``
        are replaced).
    X : spectra
        Training spectra, as for ``estimator.fit``.
    betas : sequence of float
        Disentanglement weights, each >= 0.
    latent_dims : sequence of int, default=(8, 32)
        Network sizes to compare (the paper used 8 and 128).
    X_eval : spectra, default=None
        Spectra whose latents give the MAD (default ``X``).
    threshold : float, default=0.02
        MAD above which a latent is informative.
    n_jobs : int, default=None
        Networks fitted at once in separate processes (one torch thread
        each); None fits them one after another.
    keep_estimators : bool, default=False
        Keep the fitted networks in the result.
    n_init : int, default=1
        Fits of every network from different random starts (the
        estimator's ``random_state`` plus 0, 1, ...; fresh ones when it is
        not an int); the fit with the lowest final loss is kept, as
        scikit-learn's ``KMeans`` keeps its best start. A network that
        stopped near the mean spectrum ends at a much higher loss than one
        that learned (see `BetaSweep.stuck`), so a second start guards its
        count. The cost grows in proportion.

    Returns
    -------
    `BetaSweep`

    Examples
    --------
    >>> import numpy as np
    >>> from stellarlatent.estimators import SpectralVAE
    >>> rng = np.random.default_rng(0)
    >>> x = np.linspace(0, 1, 64)
    >>> depth = rng.uniform(0.1, 0.8, (80, 1))
    >>> X = 1 - depth * np.exp(-0.5 * ((x - 0.5) / 0.05) ** 2) + 0.01 * rng.normal(size=(80, 64))
    >>> vae = SpectralVAE(max_epochs=2, batch_size=16, verbose=0, random_state=0)
    >>> sweep = beta_sweep(vae, X, betas=[0.0, 1.0], latent_dims=(2, 4))
    >>> sweep.table["beta", "latent_dim", "n_informative"].colnames
    ['beta', 'latent_dim', 'n_informative']
    """
    from sklearn.base import clone

    given = betas
    try:
        betas = [float(b) for b in np.atleast_1d(np.asarray(betas, dtype=float)).ravel()]
    except (TypeError, ValueError):
        betas = None
    if not betas or not all(np.isfinite(b) and b >= 0 for b in betas):
        raise ValueError(f"betas must be a non-empty sequence of numbers >= 0, got {given!r}")
    sizes = [latent_dims] if isinstance(latent_dims, numbers.Integral) else latent_dims
    try:
        sizes = list(sizes)
    except TypeError:
        sizes = []
    if not sizes or not all(isinstance(s, numbers.Integral) and not isinstance(s, bool) and s >= 1
                            for s in sizes):
        raise ValueError(f"latent_dims must be positive integers (the network sizes to compare), "
                         f"got {latent_dims!r}")
    if isinstance(threshold, bool) or not isinstance(threshold, numbers.Real) or \
            not threshold >= 0:
        raise ValueError(f"threshold must be a non-negative number, got {threshold!r}")
    if n_jobs is not None and (isinstance(n_jobs, bool) or not isinstance(n_jobs, numbers.Integral)
                               or n_jobs == 0 or n_jobs < -1):
        raise ValueError(f"n_jobs must be None, -1 or a positive integer, got {n_jobs!r}")
    if isinstance(n_init, bool) or not isinstance(n_init, numbers.Integral) or n_init < 1:
        raise ValueError(f"n_init must be a positive integer, got {n_init!r}")
    grid = [(beta, int(size)) for beta in sorted(set(betas)) for size in sorted(set(sizes))]
    starts = _starts(estimator.get_params().get("random_state"), int(n_init))
    tasks = [(b, s, start) for b, s in grid for start in starts]
    if n_jobs in (None, 1):
        fits = [_fit_one(clone(estimator), X, X_eval, b, s, keep_estimators, None, start)
                for b, s, start in tasks]
    else:
        from joblib import Parallel, delayed

        fits = Parallel(n_jobs=n_jobs)(
            delayed(_fit_one)(clone(estimator), X, X_eval, b, s, keep_estimators, 1, start)
            for b, s, start in tasks
        )
    results = []
    for first in range(0, len(fits), len(starts)):
        group = fits[first:first + len(starts)]
        losses = [loss if np.isfinite(loss) else np.inf for _, loss, _ in group]
        results.append(group[int(np.argmin(losses))])
    largest = max(size for _, size in grid)
    mads = np.full((len(grid), largest), np.nan)
    counts = []
    for row, (mad, _, _) in enumerate(results):
        mads[row, : mad.size] = np.sort(mad)[::-1]
        counts.append(int(np.sum(mad > threshold)))
    table = Table({
        "beta": [b for b, _ in grid],
        "latent_dim": [s for _, s in grid],
        "n_informative": counts,
        "mad": mads,
        "loss": [loss for _, loss, _ in results],
    })
    chosen, agreed = _choose(table, sorted(set(sizes)))
    table.meta.update(threshold=threshold, chosen_beta=chosen, agreed=agreed)
    return BetaSweep(table=table, threshold=float(threshold), chosen_beta=chosen, agreed=agreed,
                     estimators=[est for _, _, est in results])


class BetaSweepDisplay:
    """MAD of each latent against beta for each network size (Sedaghat et al. 2021, Fig. 4).

    Build it with `from_sweep` (or `from_estimator`, which runs the sweep),
    then call `plot`.

    Parameters
    ----------
    sweep : `BetaSweep`

    Attributes
    ----------
    figure_ : `~matplotlib.figure.Figure`
    axes_ : ndarray of `~matplotlib.axes.Axes`
        One panel per network size.

    Examples
    --------
    >>> from astropy.table import Table
    >>> import numpy as np
    >>> table = Table({"beta": [0.0, 0.0, 1.0, 1.0], "latent_dim": [2, 4, 2, 4],
    ...                "n_informative": [2, 4, 1, 1],
    ...                "mad": np.array([[0.5, 0.3, np.nan, np.nan], [0.5, 0.4, 0.3, 0.2],
    ...                                 [0.4, 0.01, np.nan, np.nan], [0.4, 0.01, 0.0, 0.0]])})
    >>> sweep = BetaSweep(table, 0.02, chosen_beta=1.0, agreed=True, estimators=[None] * 4)
    >>> display = BetaSweepDisplay.from_sweep(sweep).plot()
    >>> len(display.axes_)
    2
    """

    def __init__(self, sweep):
        self.sweep = sweep

    @classmethod
    def from_sweep(cls, sweep):
        return cls(sweep)

    @classmethod
    def from_estimator(cls, estimator, X, betas, latent_dims=(8, 32), **kwargs):
        """Run `beta_sweep` and wrap its result (``kwargs`` go to `beta_sweep`)."""
        return cls(beta_sweep(estimator, X, betas, latent_dims, **kwargs))

    def plot(self, *, ax=None):
        """Draw one panel per size: each latent's MAD (sorted) against beta.

        Parameters
        ----------
        ax : array-like of `~matplotlib.axes.Axes`, default=None
            One per network size.

        Returns
        -------
        self
        """
        table = self.sweep.table
        sizes = sorted(set(int(s) for s in table["latent_dim"]))
        fig, axes = axes_grid(ax, 1, len(sizes), panel_size=(4.2, 3.2))
        betas = self.sweep.betas
        positive = betas[betas > 0]
        floor = positive.min() / 3 if positive.size else 1.0
        for panel, size in zip(axes[0], sizes):
            rows = table[table["latent_dim"] == size]
            rows.sort("beta")
            x = np.where(rows["beta"] > 0, rows["beta"], floor)
            mads = np.asarray(rows["mad"])[:, :size]
            for k in range(size):
                panel.plot(x, mads[:, k], marker="o", ms=2.5, lw=0.8)
            panel.axhline(self.sweep.threshold, color="k", ls="--", lw=0.8)
            panel.set_xscale("log")
            panel.set_yscale("symlog", linthresh=1e-3)
            panel.set_ylim(bottom=0)  # a MAD is never negative
            panel.set_xlabel("beta" + (" (0 drawn at the left)"
                                       if np.any(rows["beta"] == 0) else ""))
            panel.set_ylabel("MAD of each latent")
            counts = ", ".join(str(int(n)) for n in rows["n_informative"])
            panel.set_title(f"{size} latents: informative {counts}", fontsize=9)
            chosen = self.sweep.chosen_beta
            panel.axvline(chosen if chosen > 0 else floor, color="tab:red", lw=0.8, alpha=0.7)
        self.figure_, self.axes_ = fig, axes[0]
        return self
