"""DeepREMAPEnsemble: several DeepREMAP networks, each pre-trained and trained with its own seed."""

import copy
import json
import math
import numbers
from pathlib import Path

import numpy as np
import torch
from astropy.table import QTable
from sklearn.base import clone
from sklearn.model_selection import GroupKFold, KFold
from sklearn.utils.validation import check_is_fitted

from .. import __version__
from .._logging import log
from .._params import Interval, Predicate, validate_params
from ._base import (SeededEstimator, checkpoint_folder, from_saved_params, resolve_device,
                    saved_params)
from ._binning import binned_summaries
from ._calibration import (COVERAGE_LEVELS, check_method, fit_scale, fit_tail,
                           fit_temperature, fit_temperatures, mixture, product, softmax, widen)
from ._data import take_rows
from ._docs import fill_doc
from ._files import read_payload, writable_path, write_atomically
from ._ridge import RidgeExpert, ridge_flux
from ._tables import edges_with_unit, label_summaries, prediction_table
from .remap import DeepREMAP

__all__ = ["DeepREMAPEnsemble"]

_FORMAT = "stellarlatent-ensemble"
#: 2 added the ridge expert; files of version 1 (networks only) still load.
_FORMAT_VERSION = 2
#: Seeds of the members are spread by a prime, so that member m of one
#: ensemble never shares a seed with member m + 1 of an ensemble seeded one higher.
_SEED_STEP = 7919
#: Shares of the ridge expert in the product tried by `calibrate` (0.5: a plain product).
_RIDGE_SHARES = np.linspace(0.0, 1.0, 11)
#: Fewest spectra with a known value that a type needs to be calibrated on its own
MIN_TYPE_SPECTRA = 20


@fill_doc
class DeepREMAPEnsemble(SeededEstimator):
    """Several DeepREMAP networks whose log-probabilities are averaged.

    Each member is a clone of ``estimator`` with its own ``random_state``,
    so members differ in their initial weights, their batches and, after
    `pretrain`, their own pre-training. Their log-probabilities are averaged
    per label (a product of experts, whose width follows the members'
    agreement), and `calibrate` fits one temperature per label to the
    combined distribution. Gilda (2025) recommends pre-training on synthetic
    spectra and fine-tuning on observed ones: call `pretrain` on synthetic
    spectra (`~stellarlatent.datasets.make_synthetic_spectra` on the grid of
    the observed spectra, or a PHOENIX grid), then `fit` on the observed
    spectra, which fine-tunes each pre-trained member.

    With ``ridge_expert`` (the default), `fit` also fits ridge regression of
    each label on the same spectra (`RidgeExpert`: penalty by leave-one-out
    cross-validation, a Student-t error law as wide as its leave-one-out
    residuals) and multiplies its bin probabilities into the networks'. A
    product of experts leans on whichever expert is sharper for each star,
    so the ensemble keeps the precision of ridge regression where the
    networks are weak (few training stars, labels with a nearly linear
    spectral response) and the networks' where ridge is. `calibrate` then
    fits, per label on the held-out spectra, the temperature of the
    networks' combined distribution, the share of the ridge expert in the
    product (the one whose posterior means have the smallest median
    absolute error) and the temperature of the product.

    Parameters
    ----------
    estimator : `DeepREMAP`, default=None
        The settings of every member (``DeepREMAP.from_preset("miles")`` when
        None, the recommended recipe); its ``random_state`` is replaced by
        each member's seed.
    n_members : int, default=3
        Number of networks.
    fine_tune_epochs : int, default=None
        Epochs of `fit` after `pretrain` (``estimator.max_epochs`` when None).
    fine_tune_lr : float, default=None
        Initial learning rate of `fit` after `pretrain` (``estimator.lr``
        when None).
    n_jobs : int, default=None
        Members trained at once, in separate processes (each with one torch
        thread); None or 1 trains them one after another in this process.
    random_state : int, default=None
        Seed of member 0; member m gets ``random_state + 7919 * m``.
    ridge_expert : bool, default=True
        Multiply the probabilities of a ridge regression fitted by `fit`
        into the networks' (see above). False: the networks alone.

    Attributes
    ----------
    members_ : list of `DeepREMAP`
        The fitted networks.
    pretrained_members_ : list of `DeepREMAP`
        The networks after `pretrain`, before `fit` (absent without it).
        A fitted attribute, so `sklearn.base.clone` (and with it
        cross-validation and grid searches) drops it: a clone's `fit` trains
        from scratch. Cross-validate a pre-trained ensemble by calling `fit`
        on each fold's stars yourself (`fit` may be called again from the
        same pre-training), as ``benchmarks/bench_parameters.py`` does.
    temperatures_ : dict
        ``{label: temperature}`` of the combined distributions (1 before
        `calibrate`).
    network_temperatures_ : dict
        ``{label: temperature}`` of the networks' averaged log-probabilities
        before the ridge expert's are added (1 before `calibrate`).
    ridge_shares_ : dict
        ``{label: share}`` of the ridge expert in the product, in [0, 1]:
        the log-probabilities are ``2 (1 - share)`` times the networks' plus
        ``2 share`` times the ridge expert's (0.5, a plain product, before
        `calibrate`).
    tail_weights_ : dict
        ``{label: weight}`` of the wide component of the calibrated
        distributions: the probabilities are ``(1 - weight)`` times the
        distribution at ``temperatures_`` plus ``weight`` times the same at
        a four times higher temperature, chosen with the temperature to match
        every coverage level (0 before `calibrate`, and with ``tail=False``
        or ``method="nll"``).
    calibrated_by_ : tuple or None
        ``(label, edges)`` when `calibrate` or `cross_calibrate` was given
        ``by``: the spectra are sorted into types by their predicted value
        of ``label`` (the posterior mean under the overall calibration)
        between ``edges``, and the distributions of each type are widened
        or narrowed about their means by a factor of its own
        (`type_scales_`). None: one calibration for every spectrum.
    type_scales_ : dict
        ``{label: [one factor per type]}`` with ``by``: the overall
        distributions of a type are stretched about their means by it (see
        `calibrate`; 1 for a type with fewer than `MIN_TYPE_SPECTRA`
        calibration spectra); empty without.
    ridge_ : `RidgeExpert` or None
        The ridge expert fitted by `fit` (None with ``ridge_expert=False``
        or before `fit`).
    bin_edges_, label_units_, spectral_axis_, n_features_in_
        Those of the members (they share their bins: the bins are set by
        `pretrain`, or by `fit` without it).

    Examples
    --------
    >>> import numpy as np
    >>> from astropy.table import Table
    >>> rng = np.random.default_rng(0)
    >>> x = np.linspace(0, 1, 64)
    >>> teff = rng.uniform(4000, 7000, 60)
    >>> flux = 1 - 0.5 * (teff[:, None] - 3000) / 4000 * np.exp(-0.5 * ((x - 0.5) / 0.05) ** 2)
    >>> member = DeepREMAP(labels=("teff",), n_bins=10, base_channels=4, n_stages=2,
    ...                    embedding_dim=8, max_epochs=2, verbose=0)
    >>> ensemble = DeepREMAPEnsemble(member, n_members=2, random_state=0)
    >>> ensemble = ensemble.fit(flux, Table({"teff": teff}))
    >>> table = ensemble.predict(flux[:3])
    >>> table.colnames[:4]
    ['teff', 'teff_err', 'teff_p16', 'teff_p84']
    """

    _parameter_constraints = {
        "estimator": [None, Predicate(lambda v: isinstance(v, DeepREMAP), "a DeepREMAP estimator")],
        "n_members": [Interval(numbers.Integral, 1, 100, closed="both")],
        "fine_tune_epochs": [None, Interval(numbers.Integral, 1, None, closed="left")],
        "fine_tune_lr": [None, Interval(numbers.Real, 0, None, closed="neither")],
        "n_jobs": [None, Interval(numbers.Integral, -1, None, closed="left")],
        "random_state": [None, Interval(numbers.Integral, 0, 2**32 - 1, closed="both")],
        "ridge_expert": ["boolean"],
    }

    def __init__(self, estimator=None, n_members=3, *, fine_tune_epochs=None, fine_tune_lr=None,
                 n_jobs=None, random_state=None, ridge_expert=True):
        self._store_params(locals())

    # -- parameters ------------------------------------------------------------------

    def _template(self):
        validate_params(self)
        if self.n_jobs == 0:
            raise ValueError("n_jobs must be None, -1 or a positive integer, got 0")
        if self.estimator is not None:
            return self.estimator
        return DeepREMAP.from_preset("miles")

    def _seeds(self):
        base = self.random_state
        if base is None:
            base = int(np.random.SeedSequence().generate_state(1)[0]) % (2**31)
        return [int(base) + _SEED_STEP * m for m in range(self.n_members)]

    # -- training --------------------------------------------------------------------

    def pretrain(self, X, y=None, sample_weight=None, *, checkpoint_dir=None):
        """Train every member from scratch, typically on synthetic spectra.

        The bins of the labels are set here, from the range of ``y``: give
        the synthetic spectra a range that covers the stars to be labelled.
        `fit` then fine-tunes a copy of each pre-trained member, so `fit`
        may be called again (on other observed spectra) from the same
        pre-training.

        %(ensemble_fit_parameters)s
        """
        jobs = self._from_scratch(self._template(), self._seeds())
        self.pretrained_members_ = self._run(jobs, X, y, sample_weight, checkpoint_dir)
        self._adopt(self.pretrained_members_)
        self.ridge_ = None
        log.info("DeepREMAPEnsemble: pre-trained %d members", len(self.pretrained_members_))
        return self

    def fit(self, X, y=None, sample_weight=None, *, checkpoint_dir=None):
        """Fit every member: fine-tune the pre-trained ones, or train from scratch.

        After `pretrain`, each member is a copy of its pre-trained network,
        fine-tuned for ``fine_tune_epochs`` at ``fine_tune_lr`` (see
        `DeepREMAP.fine_tune`); without it each member is fitted from
        scratch. With ``ridge_expert`` a ridge regression of each label is
        fitted on the same spectra. The temperatures are reset to 1: call
        `calibrate` on held-out spectra.

        %(ensemble_fit_parameters)s
        """
        template = self._template()
        seeds = self._seeds()
        pretrained = getattr(self, "pretrained_members_", None)
        if pretrained is None:
            jobs = self._from_scratch(template, seeds)
        else:
            if len(pretrained) != self.n_members:
                raise ValueError(
                    f"n_members={self.n_members} but {len(pretrained)} members were pre-trained; "
                    "call pretrain again"
                )
            lr = template.lr if self.fine_tune_lr is None else self.fine_tune_lr
            epochs = template.max_epochs if self.fine_tune_epochs is None else self.fine_tune_epochs
            jobs = []
            for seed, member in zip(seeds, pretrained):
                member = copy.deepcopy(member).set_params(random_state=seed + 1)
                jobs.append((member, "fine_tune", {"max_epochs": epochs, "lr": lr}))
        self._adopt(self._run(jobs, X, y, sample_weight, checkpoint_dir))
        self.ridge_ = self._fit_ridge(X, y) if self.ridge_expert else None
        return self

    def _flux(self, X):
        """Flux as the ridge expert reads it (`ridge_flux`)."""
        return ridge_flux(self.members_[0]._check_X(X))

    def _fit_ridge(self, X, y, also=None):
        """The ridge expert fitted on ``X``; ``also``, (spectra, label values), joins them."""
        first = self.members_[0]
        labels = tuple(self.bin_edges_)
        flux = self._flux(X)
        values, _ = first._read_y(X, y, flux.shape[0], labels, units=self.label_units_)
        if also is not None:
            flux = np.concatenate([flux, self._flux(also[0])])
            values = np.concatenate([values, also[1]])
        ridge = RidgeExpert().fit(flux, first._binning_space(values))
        log.info("DeepREMAPEnsemble: ridge expert with penalties %s", dict(
            zip(labels, np.round(ridge.alpha_, 3).tolist())))
        return ridge

    def fine_tune(self, X, y=None, sample_weight=None, *, checkpoint_dir=None, **kwargs):
        """Fine-tune every fitted member further (see `DeepREMAP.fine_tune` for ``kwargs``).

        The ridge expert (with ``ridge_expert``) is refitted on ``X`` and the
        temperatures are reset to 1. ``checkpoint_dir`` is as in `fit`.

        Returns
        -------
        self
        """
        check_is_fitted(self)
        # copies: an interrupted fine-tuning leaves every member as it was, to resume
        jobs = [(copy.deepcopy(member), "fine_tune", kwargs) for member in self.members_]
        calibrated = (any(t != 1.0 for t in self.temperatures_.values())
                      or getattr(self, "calibrated_by_", None) is not None)
        self._adopt(self._run(jobs, X, y, sample_weight, checkpoint_dir))
        if calibrated:
            log.warning("DeepREMAPEnsemble.fine_tune: the calibration of the ensemble before "
                        "no longer holds and is dropped; calibrate (or cross_calibrate) again")
        self.ridge_ = self._fit_ridge(X, y) if self.ridge_expert else None
        return self

    @staticmethod
    def _from_scratch(template, seeds):
        """Jobs that fit a clone of ``template`` with each seed from scratch."""
        return [(clone(template).set_params(random_state=seed), "fit", {}) for seed in seeds]

    def _run(self, jobs, X, y, sample_weight, checkpoint_dir=None):
        """Run each ``(member, method, kwargs)`` job; member m checkpoints in DIR/member-m."""
        if checkpoint_dir is not None:
            if self.random_state is None:
                raise ValueError("checkpoint_dir needs a fixed random_state: members with "
                                 "fresh random seeds never match their checkpoints")
            folder = checkpoint_folder(checkpoint_dir)
            jobs = [(member, method, {**kwargs, "checkpoint_dir": folder / f"member-{m}"})
                    for m, (member, method, kwargs) in enumerate(jobs)]
        n_jobs = self.n_jobs
        if n_jobs in (None, 1) or len(jobs) == 1:
            return [_train_member(member, method, X, y, sample_weight, kwargs, None)
                    for member, method, kwargs in jobs]
        from joblib import Parallel, delayed

        return Parallel(n_jobs=n_jobs)(
            delayed(_train_member)(member, method, X, y, sample_weight, kwargs, 1)
            for member, method, kwargs in jobs
        )

    def _adopt(self, members):
        first = members[0]
        for m, member in enumerate(members[1:], start=1):
            for label, edges in first.bin_edges_.items():
                if not np.array_equal(edges, member.bin_edges_[label]):
                    raise ValueError(f"member {m} has other bins for '{label}' than member 0")
        self.members_ = list(members)
        self.temperatures_ = dict.fromkeys(first.bin_edges_, 1.0)
        self.network_temperatures_ = dict.fromkeys(first.bin_edges_, 1.0)
        self.ridge_shares_ = dict.fromkeys(first.bin_edges_, 0.5)
        self.tail_weights_ = dict.fromkeys(first.bin_edges_, 0.0)
        self._clear_types()
        self._copy_member_state()

    def _clear_types(self):
        self.calibrated_by_ = None
        self.type_scales_ = {}

    def _copy_member_state(self):
        first = self.members_[0]
        self.bin_edges_ = first.bin_edges_
        self.label_units_ = first.label_units_
        self.spectral_axis_ = first.spectral_axis_
        self.wavelength_medium_ = getattr(first, "wavelength_medium_", None)
        self.n_features_in_ = first.n_features_in_
        self.preprocessing_ = getattr(first, "preprocessing_", None)

    # -- prediction ------------------------------------------------------------------

    def _log_proba(self, X):
        """``{label: mean over members of log p}`` (the members' own temperatures applied)."""
        return self._mean_log([member.predict_proba(X) for member in self.members_])

    def _mean_log(self, probas):
        """``{label: mean of log p}`` over the members' ``{label: proba or (proba, edges)}``."""
        total = {}
        for member_proba in probas:
            for label, proba in member_proba.items():
                proba = proba[0] if isinstance(proba, tuple) else proba
                logp = np.log(np.clip(proba, 1e-300, None))
                total[label] = total.get(label, 0.0) + logp
        return {label: value / len(self.members_) for label, value in total.items()}

    def _ridge_log_mass(self, X, ridge=None, predicted=None):
        """``{label: log bin mass}`` of the ridge expert, or None without one.

        ``ridge`` and its ``predicted`` labels of ``X`` replace the fitted expert
        and its predictions when given.
        """
        ridge = getattr(self, "ridge_", None) if ridge is None else ridge
        if ridge is None:
            return None
        first = self.members_[0]
        if predicted is None:
            predicted = ridge.predict(self._flux(X))
        out = {}
        for j, label in enumerate(self.bin_edges_):
            edges = np.asarray(self.bin_edges_[label], dtype=float)
            if label == "teff" and first._log_teff:
                edges = np.log10(edges)
            out[label] = ridge.log_bin_mass(None, j, edges, predicted=predicted[:, j])
        return out

    def _joined(self, log_proba, ridge_mass, shares=None):
        """The networks' log-probabilities at their temperatures times the ridge expert's."""
        if ridge_mass is None:
            return log_proba
        shares = self.ridge_shares_ if shares is None else shares
        return {label: product(logp / self.network_temperatures_[label], ridge_mass[label],
                               shares[label])
                for label, logp in log_proba.items()}

    def _combined_log_proba(self, X):
        return self._joined(self._log_proba(X), self._ridge_log_mass(X))

    def _overall(self, log_proba):
        """The distributions at the overall temperatures and tail weights."""
        return {label: mixture(logp, self.temperatures_[label], self.tail_weights_[label])
                for label, logp in log_proba.items()}

    def _proba(self, log_proba):
        overall = self._overall(log_proba)
        if getattr(self, "calibrated_by_", None) is None:
            return overall
        types = self._types(overall)
        proba = {}
        for label, p in overall.items():
            proba[label] = p.copy()
            for k, scale in enumerate(self.type_scales_[label]):
                rows = types == k
                if scale != 1.0 and rows.any():
                    proba[label][rows] = widen(p[rows], self.bin_edges_[label], scale)
        return proba

    def _types(self, overall):
        """The type of each spectrum: its predicted ``by`` label between the ``by`` edges."""
        label, edges = self.calibrated_by_
        mean = binned_summaries(overall[label], self.bin_edges_[label])[0]
        return np.searchsorted(np.asarray(edges, dtype=float), mean, side="right")

    def _edges(self, label):
        return edges_with_unit(self.bin_edges_[label], self.label_units_[label])

    def predict_proba(self, X):
        """Probability of each label bin, combined over the members and calibrated.

        Returns
        -------
        dict
            ``{label: (proba, bin_edges)}`` as from `DeepREMAP.predict_proba`.
        """
        check_is_fitted(self)
        proba = self._proba(self._combined_log_proba(X))
        return {label: (p, self._edges(label)) for label, p in proba.items()}

    def predict(self, X):
        """Labels with uncertainties and an out-of-range flag, as `DeepREMAP.predict`.

        The columns are those of `DeepREMAP.predict`, from the combined
        distributions. ``L_out_of_range`` is set when the combined
        distribution puts more than the members' ``edge_probability`` outside
        the range of the labels they were trained on (their
        ``reference_labels_``), or when more than half of the members find
        the spectrum farther from their training spectra than their novelty
        threshold;
        ``embedding_distance`` is the median over the members of their
        distances to the nearest training spectrum.

        Returns
        -------
        `~astropy.table.QTable`
        """
        check_is_fitted(self)
        # one pass of each member gives its probabilities and its embedding distances
        passes = [member._proba_and_distance(X) for member in self.members_]
        log_proba = self._mean_log([proba for proba, _ in passes])
        proba = self._proba(self._joined(log_proba, self._ridge_log_mass(X)))
        distances = [distance for _, distance in passes]
        novel = np.mean([distance > member.novelty_threshold_
                         for member, distance in zip(self.members_, distances)], axis=0) > 0.5
        edge_probability = self.members_[0].edge_probability
        summaries = {label: label_summaries(proba[label], self.bin_edges_[label], edge_probability,
                                            self._training_range(label))
                     for label in self.bin_edges_}
        return prediction_table(summaries, self.label_units_, novel, np.median(distances, axis=0))

    def _training_range(self, label):
        """The lowest and highest known ``label`` among the members' training spectra."""
        ranges = [member._training_range(label) for member in self.members_]
        ranges = [r for r in ranges if r is not None]
        if not ranges:
            return None
        return min(r[0] for r in ranges), max(r[1] for r in ranges)

    def embed(self, X):
        """The members' embeddings side by side, scaled to unit length.

        Returns
        -------
        ndarray, shape (n_spectra, n_members * embedding_dim)
        """
        check_is_fitted(self)
        return np.hstack([member.embed(X) for member in self.members_]) / math.sqrt(
            len(self.members_))

    def set_reference(self, X, y=None):
        """Make ``X`` the reference set of every member (see `DeepREMAP.set_reference`).

        Returns
        -------
        self
        """
        check_is_fitted(self)
        for member in self.members_:
            member.set_reference(X, y)
        return self

    def _reference_embeddings(self):
        return np.hstack([m.reference_embeddings_ for m in self.members_]) / math.sqrt(
            len(self.members_))

    def kneighbors(self, X, n_neighbors=5):
        """The training spectra closest to each spectrum in the combined embedding.

        Returns
        -------
        distances, indices, labels
            As from `DeepREMAP.kneighbors`, in the space of `embed`.
        """
        check_is_fitted(self)
        reference = self._reference_embeddings()
        n_reference = reference.shape[0]
        if (isinstance(n_neighbors, bool) or not isinstance(n_neighbors, numbers.Integral)
                or not 1 <= n_neighbors <= n_reference):
            raise ValueError(
                f"n_neighbors must be an integer in [1, {n_reference}] (the training spectra), "
                f"got {n_neighbors!r}"
            )
        from sklearn.neighbors import NearestNeighbors

        search = NearestNeighbors(n_neighbors=int(n_neighbors)).fit(reference)
        distances, indices = search.kneighbors(self.embed(X))
        reference_labels = self.members_[0].reference_labels_
        table = QTable()
        for label in reference_labels.colnames:
            table[label] = reference_labels[label][indices]
        return distances, indices, table

    def calibrate(self, X, y=None, *, method="coverage", level=COVERAGE_LEVELS,
                  ridge_train=None, tail=True, by=None):
        """Fit the temperatures of each label to the distributions of held-out spectra.

        First the temperature of the networks' averaged log-probabilities;
        then, with a ridge expert, for each share of it in the product (0,
        0.1, ..., 1) the temperature of the product, keeping the share whose
        posterior means have the smallest median absolute error on these
        spectra (`ridge_shares_`). Last, with ``tail`` and the coverage of
        several levels, the final temperature is fitted again together with
        a tail weight (`tail_weights_`).

        With ``ridge_train``, the spectra the ensemble was fitted on, the
        ridge expert is refitted on them and on these spectra together, so
        that it learns from every labelled star; the shares and temperatures
        are then fitted with its leave-one-out predictions of these spectra,
        which are out-of-sample like the networks'. Each calibration spectrum
        must then be of a star of its own: a second spectrum of the same star
        (a repeat exposure, an augmented copy) among the calibration or
        training spectra makes its leave-one-out prediction in-sample.

        Parameters
        ----------
        X, y
            Spectra not used in training, and their labels.
        method : {"coverage", "nll"}, default="coverage"
            Fit the central ``level`` credible intervals to hold that
            fraction of the true values, or minimise the negative
            log-likelihood of the true bins (see `DeepREMAP.calibrate`).
        level : float or sequence of float, default=(0.6827, 0.9545)
            Credible level(s) of the intervals the coverage fit matches (see
            `DeepREMAP.calibrate`).
        ridge_train : tuple (X_train, y_train), default=None
            The training spectra and labels of `fit` (``y_train`` None when
            ``X_train`` carries them); needs ``ridge_expert=True``.
        tail : bool, default=True
            With ``method="coverage"`` and several levels, fit a tail weight
            (``tail_weights_``) together with the temperature of each label,
            so that every level is matched where one temperature can only
            share the miss between them: the residuals of real stars have
            heavier tails than the networks' distributions. False: the
            temperature alone.
        by : tuple (label, edges), default=None
            Calibrate each type of star on its own: the spectra are sorted
            into types by their predicted ``label`` (the posterior mean under
            the overall calibration) between ``edges`` (for example
            ``("teff", [4000, 7000])``: cool, FGK and hot stars). After the
            overall calibration, the distributions of each type are
            stretched (or narrowed) about their means by a factor fitted to
            its calibration spectra as the temperatures are, by ``method``
            and ``level`` (`type_scales_`). One calibration for
            every type makes the intervals too wide for the easy stars and
            too narrow for the rare ones; the stretch changes their widths
            and leaves the labels, the posterior means, where the overall
            calibration put them (a temperature of each type would move
            them: a high one pulls them towards the middle of the bins). A
            type with fewer than `MIN_TYPE_SPECTRA` calibration spectra
            keeps the overall calibration (factor 1).

        Returns
        -------
        self

        Examples
        --------
        >>> import numpy as np
        >>> from stellarlatent.estimators import DeepREMAP, DeepREMAPEnsemble
        >>> rng = np.random.default_rng(0)
        >>> y = {"teff": rng.uniform(4000, 7000, 60)}
        >>> x = np.linspace(0, 1, 64)
        >>> X = 1 - (y["teff"][:, None] / 1e4) * np.exp(-0.5 * ((x - 0.5) / 0.05) ** 2)
        >>> member = DeepREMAP(labels=("teff",), n_bins=8, base_channels=2, n_stages=1,
        ...                    max_epochs=2, batch_size=16, validation_fraction=0.0)
        >>> ensemble = DeepREMAPEnsemble(member, n_members=2, random_state=0)
        >>> fitted = ensemble.fit(X[:45], {"teff": y["teff"][:45]})
        >>> calibrated = ensemble.calibrate(X[45:], {"teff": y["teff"][45:]},
        ...                                 ridge_train=(X[:45], {"teff": y["teff"][:45]}))
        >>> calibrated.ridge_.coef_.shape   # refitted on the 60 spectra
        (1, 64)

        Each type of star on its own (here two, split at 5500 K; with 15
        calibration spectra neither reaches `MIN_TYPE_SPECTRA`, so both keep
        the overall calibration):

        >>> typed = ensemble.calibrate(X[45:], {"teff": y["teff"][45:]}, by=("teff", [5500]))
        >>> typed.calibrated_by_, typed.type_scales_["teff"]
        (('teff', [5500.0]), [1.0, 1.0])
        """
        check_is_fitted(self)
        levels = check_method(method, level)
        by = self._check_by(by)
        if ridge_train is not None:
            if not self.ridge_expert:
                raise ValueError("ridge_train refits the ridge expert: it needs "
                                 "ridge_expert=True")
            if not isinstance(ridge_train, (tuple, list)) or len(ridge_train) != 2:
                raise ValueError("ridge_train must be a tuple (X_train, y_train), got "
                                 f"{type(ridge_train).__name__}")
        first = self.members_[0]
        labels = tuple(self.bin_edges_)
        source = first._check_X(X)
        values, _ = first._read_y(X, y, len(source), labels, units=self.label_units_)
        log_proba = self._log_proba(X)
        ridge = None
        if ridge_train is None:
            ridge_mass = self._ridge_log_mass(X)
        else:
            ridge = self._fit_ridge(*ridge_train, also=(X, values))
            n_train = len(ridge.loo_predictions_) - len(values)
            ridge_mass = self._ridge_log_mass(X, ridge, ridge.loo_predictions_[n_train:])
        self._fit_calibration(log_proba, ridge_mass, values, method, levels, tail, by)
        if ridge is not None:
            self.ridge_ = ridge
        return self

    def cross_calibrate(self, X, y=None, sample_weight=None, *, cv=5, groups=None,
                        method="coverage", level=COVERAGE_LEVELS, tail=True, by=None,
                        checkpoint_dir=None):
        """Fit the temperatures to out-of-fold predictions of the training spectra.

        Call it after `fit` on the same spectra, instead of holding some of
        them out for `calibrate`. The spectra are split into ``cv`` folds;
        for each fold a copy of the ensemble is fitted as `fit` fitted this
        one (the pre-trained members fine-tuned, the ridge expert refitted)
        on the other folds and predicts the fold. The temperatures and ridge
        shares are then fitted, as `calibrate` fits them, to these
        out-of-fold distributions of every spectrum (with the tail weights,
        as `calibrate` fits them), while the members and
        the ridge expert stay those fitted on all of them. This is the
        ``ensemble=False`` strategy of scikit-learn's
        `~sklearn.calibration.CalibratedClassifierCV`: every labelled star
        both trains the model and calibrates it, at the cost of ``cv`` more
        fits. With a few dozen held-out stars the temperatures vary from one
        draw of them to the next by more than the coverage targets allow;
        out-of-fold predictions of all stars steady them. The copies are
        fitted on fewer spectra than the ensemble, so the intervals err
        on the wide side.

        Parameters
        ----------
        X, y, sample_weight
            The spectra, labels and weights `fit` was given.
        cv : int, default=5
            Number of folds, at least 2.
        groups : array-like of shape (n_spectra,), default=None
            Spectra of one group (the same star observed twice, or a star and
            its augmented copies) stay in one fold, so that no prediction is
            of a star the copy was trained on. None: every spectrum is its
            own group, and the folds are drawn with ``random_state``.
        method, level, tail, by
            As in `calibrate`.
        checkpoint_dir : str or `pathlib.Path`, default=None
            Checkpoint the copy of fold k in ``checkpoint_dir/fold-k`` (one
            folder per member, as in `fit`), so that an interrupted
            cross-calibration resumes where it stopped.

        Returns
        -------
        self

        Raises
        ------
        ValueError
            If the ensemble was not pre-trained (`pretrain` fixes the bins
            that every fold's copy must share; a loaded ensemble has no
            pre-trained members either): calibrate it on held-out spectra
            with `calibrate` instead.

        Examples
        --------
        >>> import numpy as np
        >>> from stellarlatent.estimators import DeepREMAP, DeepREMAPEnsemble
        >>> rng = np.random.default_rng(0)
        >>> x = np.linspace(0, 1, 64)
        >>> def spectra(teff):
        ...     return 1 - (teff[:, None] / 1e4) * np.exp(-0.5 * ((x - 0.5) / 0.05) ** 2)
        >>> synthetic = {"teff": rng.uniform(3800, 7200, 80)}
        >>> observed = {"teff": rng.uniform(4000, 7000, 40)}
        >>> member = DeepREMAP(labels=("teff",), n_bins=8, base_channels=2, n_stages=1,
        ...                    max_epochs=2, batch_size=16, validation_fraction=0.0)
        >>> ensemble = DeepREMAPEnsemble(member, n_members=2, fine_tune_epochs=2,
        ...                              random_state=0)
        >>> ensemble = ensemble.pretrain(spectra(synthetic["teff"]), synthetic)
        >>> ensemble = ensemble.fit(spectra(observed["teff"]), observed)
        >>> ensemble = ensemble.cross_calibrate(spectra(observed["teff"]), observed, cv=3)
        >>> sorted(ensemble.temperatures_)
        ['teff']
        """
        check_is_fitted(self)
        levels = check_method(method, level)
        by = self._check_by(by)
        if isinstance(cv, (bool, np.bool_)) or not isinstance(cv, numbers.Integral) or cv < 2:
            raise ValueError(f"cv must be an integer of at least 2, got {cv!r}")
        pretrained = getattr(self, "pretrained_members_", None)
        if pretrained is None:
            raise ValueError(
                "cross_calibrate fits a copy of the ensemble on each fold, and the copies "
                "must share its bins, which pretrain fixes; this ensemble was not "
                "pre-trained (or was loaded from a file): calibrate it on held-out spectra "
                "with calibrate")
        first = self.members_[0]
        labels = tuple(self.bin_edges_)
        n = len(first._check_X(X))
        values, _ = first._read_y(X, y, n, labels, units=self.label_units_)
        weights = first._check_sample_weight(sample_weight, n)
        if groups is None:
            if cv > n:
                raise ValueError(f"cv={cv} folds need at least {cv} spectra, got {n}")
            folds = KFold(cv, shuffle=True, random_state=self.random_state).split(np.arange(n))
        else:
            groups = np.asarray(groups)
            if groups.shape != (n,):
                raise ValueError(f"groups must have one entry per spectrum ({n}), "
                                 f"got shape {groups.shape}")
            if cv > len(np.unique(groups)):
                raise ValueError(f"cv={cv} folds need at least {cv} groups, got "
                                 f"{len(np.unique(groups))}")
            folds = GroupKFold(cv).split(np.arange(n), groups=groups)
        # the copies fine-tune the same pre-trained members, so they share the bins
        log_proba = {label: np.empty((n, len(edges) - 1))
                     for label, edges in self.bin_edges_.items()}
        ridge_mass = ({label: np.empty_like(logp) for label, logp in log_proba.items()}
                      if self.ridge_expert else None)
        for k, (train, test) in enumerate(folds):
            copy_ = clone(self)
            copy_.pretrained_members_ = pretrained
            copy_.fit(take_rows(X, train), {label: values[train, j]
                                            for j, label in enumerate(labels)},
                      None if weights is None else weights[train],
                      checkpoint_dir=None if checkpoint_dir is None
                      else Path(checkpoint_dir) / f"fold-{k}")
            held = take_rows(X, test)
            for label, logp in copy_._log_proba(held).items():
                log_proba[label][test] = logp
            for label, logm in (copy_._ridge_log_mass(held) or {}).items():
                ridge_mass[label][test] = logm
            log.info("DeepREMAPEnsemble: cross_calibrate fold %d of %d done", k + 1, cv)
        self._fit_calibration(log_proba, ridge_mass, values, method, levels, tail, by)
        return self

    def _check_by(self, by):
        """``by`` as ``(label, edges)`` with the edges a list of increasing floats, or None."""
        if by is None:
            return None
        message = ("by must be None or a (label, edges) pair: a label of the model "
                   f"({', '.join(self.bin_edges_)}) and the increasing values that separate "
                   f"the types, got {by!r}")
        try:
            label, edges = by
            edges = np.atleast_1d(np.asarray(getattr(edges, "value", edges), dtype=float))
        except (TypeError, ValueError):
            raise ValueError(message) from None
        if (label not in self.bin_edges_ or edges.ndim != 1 or not edges.size
                or not np.all(np.isfinite(edges)) or np.any(np.diff(edges) <= 0)):
            raise ValueError(message)
        return str(label), edges.tolist()

    def _fit_calibration(self, log_proba, ridge_mass, values, method, levels, tail, by=None):
        """Temperatures, ridge shares and tail weights fitted to out-of-sample distributions
        and their true ``values`` (n, n_labels); ``ridge_mass`` None without a ridge expert.
        With ``by``, then a width factor for each type."""
        self._fit_overall(log_proba, ridge_mass, values, method, levels, tail)
        self._clear_types()
        if by is None:
            return
        overall = self._overall(self._joined(log_proba, ridge_mass))
        self.calibrated_by_ = by
        types = self._types(overall)
        for j, label in enumerate(self.bin_edges_):
            self.type_scales_[label] = []
            for k in range(len(by[1]) + 1):
                rows = (types == k) & np.isfinite(values[:, j])
                scale = 1.0
                if rows.sum() >= MIN_TYPE_SPECTRA:
                    scale = fit_scale(overall[label][rows], self.bin_edges_[label],
                                      values[rows, j], method, levels)
                self.type_scales_[label].append(scale)
        log.info("DeepREMAPEnsemble: calibrated by %s types of %s: %s", len(by[1]) + 1, by[0],
                 np.bincount(types, minlength=len(by[1]) + 1).tolist())

    def _fit_overall(self, log_proba, ridge_mass, values, method, levels, tail):
        """The overall temperatures, ridge shares and tail weights."""
        labels = tuple(self.bin_edges_)
        self.network_temperatures_ = fit_temperatures(log_proba, labels, self.bin_edges_,
                                                      values, method, levels)
        self.tail_weights_ = dict.fromkeys(labels, 0.0)
        if ridge_mass is None:
            self.temperatures_ = dict(self.network_temperatures_)
        else:
            self._fit_shares(log_proba, ridge_mass, values, method, levels)
        if not (tail and method == "coverage" and len(levels) > 1):
            return
        joined = self._joined(log_proba, ridge_mass)
        for j, label in enumerate(labels):
            if np.isfinite(values[:, j]).any():
                self.temperatures_[label], self.tail_weights_[label] = fit_tail(
                    joined[label], self.bin_edges_[label], values[:, j], levels)

    def _fit_shares(self, log_proba, ridge_mass, values, method, levels):
        """The ridge expert's share in the product of each label, and its temperature."""
        labels = tuple(self.bin_edges_)
        shares, temperatures = {}, {}
        for j, label in enumerate(labels):
            networks = log_proba[label] / self.network_temperatures_[label]
            edges = self.bin_edges_[label]
            known = np.isfinite(values[:, j])
            best = None
            for share in _RIDGE_SHARES:
                joined = product(networks, ridge_mass[label], share)
                temperature = fit_temperature(joined, edges, values[:, j], method,
                                              levels, label)
                if not known.any():
                    shares[label], temperatures[label] = 0.5, temperature
                    break
                mean = binned_summaries(softmax(joined / temperature), edges)[0]
                error = float(np.median(np.abs(mean[known] - values[known, j])))
                # on a tie, the share nearest a plain product
                key = (error, abs(share - 0.5))
                if best is None or key < best[0]:
                    best = (key, float(share), temperature)
            else:
                shares[label], temperatures[label] = best[1], best[2]
        self.ridge_shares_ = shares
        self.temperatures_ = temperatures

    # -- persistence -----------------------------------------------------------------

    def save(self, path):
        """Save the ensemble to one file (read back with ``torch.load(weights_only=True)``).

        Parameters
        ----------
        path : str or `pathlib.Path`

        Returns
        -------
        `pathlib.Path`
        """
        check_is_fitted(self)
        path = writable_path(path)
        members = [_member_bytes(member) for member in self.members_]
        params = {k: v for k, v in self.get_params(deep=False).items() if k != "estimator"}
        # the template of the members, so that a loaded ensemble refits as the saved one did
        params["estimator"] = None if self.estimator is None else saved_params(self.estimator)
        payload = {
            "format": _FORMAT,
            "format_version": _FORMAT_VERSION,
            "version": __version__,
            "metadata": json.dumps({"params": params, "temperatures": self.temperatures_,
                                    "network_temperatures": self.network_temperatures_,
                                    "ridge_shares": self.ridge_shares_,
                                    "tail_weights": self.tail_weights_,
                                    "calibrated_by": self.calibrated_by_,
                                    "type_scales": self.type_scales_}),
            "members": members,
        }
        if getattr(self, "ridge_", None) is not None:
            payload["ridge"] = self.ridge_.state_dict()
        return write_atomically(payload, path, "the ensemble")

    @classmethod
    def load(cls, path, device="auto"):
        """Load an ensemble written by `save`.

        Raises
        ------
        ValueError
            If the file is not a readable DeepREMAPEnsemble.
        """
        path = Path(path)
        resolve_device(device)  # a bad device is the caller's error, not the file's
        payload = read_payload(path, _FORMAT, _FORMAT_VERSION, "a DeepREMAPEnsemble file")
        try:
            metadata = json.loads(payload["metadata"])
            members = [_member_from_bytes(blob, device) for blob in payload["members"]]
            params = dict(metadata["params"])
            # files of version 1 had no ridge expert
            params.setdefault("ridge_expert", False)
            # files written before the template was saved have none
            template = params.pop("estimator", None)
            if template is not None:
                params["estimator"] = from_saved_params(DeepREMAP, template)
            ensemble = cls(**params)
            if not members:
                raise ValueError("it holds no member")
            ensemble._adopt(members)
            ensemble.temperatures_ = {k: float(v) for k, v in metadata["temperatures"].items()}
            ensemble.network_temperatures_ = {
                k: float(v) for k, v in metadata.get(
                    "network_temperatures", ensemble.temperatures_).items()}
            ensemble.ridge_shares_ = {k: float(v) for k, v in metadata.get(
                "ridge_shares", ensemble.ridge_shares_).items()}
            # files written before the tail weights have none
            ensemble.tail_weights_ = {k: float(v) for k, v in metadata.get(
                "tail_weights", ensemble.tail_weights_).items()}
            # files written before the calibration by type have none
            by = metadata.get("calibrated_by")
            ensemble.calibrated_by_ = (None if by is None
                                       else (str(by[0]), [float(v) for v in by[1]]))
            ensemble.type_scales_ = {k: [float(x) for x in v] for k, v in metadata.get(
                "type_scales", {}).items()}
            if ensemble.calibrated_by_ is not None and set(ensemble.type_scales_) != set(
                    ensemble.bin_edges_):
                raise ValueError("it is calibrated by type without a width factor for "
                                 "every label")
            ridge = payload.get("ridge")
            ensemble.ridge_ = None if ridge is None else RidgeExpert.from_state_dict(ridge)
            if ensemble.ridge_ is not None and ensemble.ridge_.coef_.shape != (
                    len(ensemble.bin_edges_), ensemble.n_features_in_):
                raise ValueError("its ridge expert does not match its labels and pixels")
        except (KeyError, TypeError, ValueError) as exc:
            raise ValueError(f"{path} is not a readable DeepREMAPEnsemble: {exc}") from exc
        return ensemble


def _train_member(member, method, X, y, sample_weight, kwargs, threads):
    if threads is not None:
        torch.set_num_threads(threads)
    getattr(member, method)(X, y, sample_weight=sample_weight, **kwargs)
    return member


def _member_bytes(member):
    """A member's saved file, as a uint8 tensor (what ``weights_only`` loading accepts)."""
    import tempfile

    with tempfile.TemporaryDirectory() as folder:
        file = member.save(Path(folder) / "member.pt")
        return torch.frombuffer(bytearray(file.read_bytes()), dtype=torch.uint8)


def _member_from_bytes(blob, device):
    import tempfile

    if not torch.is_tensor(blob) or blob.dtype != torch.uint8:
        raise ValueError("a member is not a saved DeepREMAP")
    with tempfile.TemporaryDirectory() as folder:
        file = Path(folder) / "member.pt"
        file.write_bytes(blob.numpy().tobytes())
        return DeepREMAP.load(file, device=device)
