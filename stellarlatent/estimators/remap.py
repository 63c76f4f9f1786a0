"""DeepREMAP: stellar labels with calibrated uncertainties (Gilda 2025, arXiv:2510.09362).

The estimator and its public methods; the parameter table (`_remap_params`),
the binning of the labels (`_remap_bins`), the network, its training hooks
and the reference set of embeddings (`_remap_network`), the tables of
`DeepREMAP.predict` (`_tables`), temperature scaling (`_calibration`) and
the saved file's layout (`_remap_io`) have modules of their own.
"""

import copy
import math

import astropy.units as u
import numpy as np
import torch
from astropy.table import QTable
from sklearn.utils.validation import check_is_fitted

from .._logging import log
from ._base import TorchEstimator, TrainingDivergedError, _check_positive_int, resolve_device
from ._binning import digitize
from ._calibration import COVERAGE_LEVELS, check_method, fit_temperatures
from ._docs import fill_doc
from ._presets import PRESETS
from ._remap_bins import bin_edges, binning_space, contrast_window, read_y
from ._remap_io import remap_metadata, remap_tensors, restore_remap
from ._remap_params import (
    CONSTRAINTS,
    DEFAULT_N_BINS,
    PER_LABEL_DEFAULTS,
    check_network_size,
    frozen_blocks,
    is_real,
    per_label,
)
from ._remap_network import RemapNetwork, weights_digest
from ._tables import (concatenated, edges_with_unit, label_summaries, prediction_table,
                      training_range)

__all__ = ["DeepREMAP"]

# the presets of from_preset, under the name they have always had here
_PRESETS = PRESETS


@fill_doc
class DeepREMAP(RemapNetwork, TorchEstimator):
    """Stellar labels as probabilities over bins, from a residual 1-D CNN (deep-REMAP).

    Each label (Teff, log g, [Fe/H], or any other the user names) is binned
    over its training range plus a margin and predicted as a classification
    over the bins (Gilda 2025). The network (`stellarlatent.nn.DeepREMAPNet`)
    is a residual 1-D CNN of identity blocks and stride-2 projection blocks
    whose channels double as the length halves, with global pooling, an
    embedding head and one classification head per label; it reads the flux
    and the bad-pixel mask as two input channels, so masked and NaN pixels
    are harmless. The loss, per label, is a class-balanced focal loss plus a
    distance-aware cost (`stellarlatent.nn.FocalCostLoss`); a triplet loss on
    the embedding (`stellarlatent.nn.triplet_loss`, positives mined online by
    standardised label distance) makes similar stars neighbours, which
    `kneighbors` and the out-of-range flag use. AdamW is driven by a cosine
    schedule (with warm restarts if ``restart_period`` is set) and stochastic
    weight averaging over the final epochs. `calibrate` fits one temperature
    per label on held-out spectra; `fine_tune` adapts a network trained on
    synthetic spectra to a few observed ones (transfer learning).

    Parameters
    ----------
    labels : sequence of str
        Names of the labels to predict. ``"teff"`` is in K, ``"logg"``,
        ``"feh"``, ``"mh"`` and ``"alpha"`` in dex, ``"rv"`` and ``"vsini"``
        in km/s; other labels keep the unit they are given with (or none).
    n_bins : int, "auto" or dict, default="auto"
        Number of bins (at least 3) of every label, or ``{label: n_bins}``
        (labels not in the dict get "auto"). ``"auto"`` gives the known
        labels bins of a fixed width, about the precision of good
        spectroscopic labels, whatever their range: 0.005 dex of Teff with
        ``log_teff`` (65 K without), 0.09 dex in log g, 0.065 dex in
        [Fe/H] and [M/H], 0.03 dex in [alpha/Fe]; between 20 and 500 bins
        over the range. Other labels get 50 bins over their range.
    bin_width : dict, default=None
        ``{label: width}`` overriding ``n_bins``: a Quantity (``50 * u.K``),
        a string (``"50 K"``) or a number in the label's unit. With
        ``log_teff`` the width of ``"teff"`` is in dex of Teff (e.g. 0.005).
    margin : float or dict
        Fraction of each label's training range added below its minimum and
        above its maximum before binning; at least one bin, so that the first
        and last bins hold no training star.
    log_teff : bool, default=True
        Bin Teff uniformly in log10(Teff), so the bins are as wide in
        relative terms for an M dwarf as for a B star. Predictions are in K
        either way.
    gamma : float or dict
        Focusing parameter of the focal loss (0 is cross-entropy), or
        ``{label: gamma}`` (labels not in the dict get 2).
    class_balance : bool
        Weight each bin by its effective number of training samples
        (`stellarlatent.nn.class_balance_weights`), so rare labels count.
    cost_weight : float
        Weight of the expected distance cost (``|i - k| / (n_bins - 1)``).
    label_smoothing : float or dict
        Standard deviation, in bins, of the Gaussian soft target that
        replaces the one-hot true bin (`stellarlatent.nn.FocalCostLoss`),
        or ``{label: sigma}`` (labels not in the dict get 0). About the label
        uncertainty divided by the bin width: training labels of observed
        stars carry errors, and a soft target keeps the network from fitting
        them. 0 keeps one-hot targets.
    triplet_weight : float
        Weight of the triplet loss on the embedding; 0 disables it.
    triplet_margin : float
        Margin of the triplet loss (embeddings are L2-normalised).
    positive_threshold : float
        Two spectra are positives when the RMS difference of their
        standardised labels is below this (and negatives otherwise).
    base_channels, n_stages, blocks_per_stage, kernel_size : int
        Backbone layout (see `stellarlatent.nn.ResNet1D`).
    contrast_window : int, "auto" or None, default="auto"
        Odd width in pixels of the running mean that the network subtracts
        from the flux to read, as one more input channel, the lines without
        the continuum (`stellarlatent.nn.DeepREMAPNet`). On MILES spectra
        (2.5 Angstrom FWHM) about 55 Angstrom worked well: 33 pixels of a
        2048-pixel log-uniform grid over 3700-7300 Angstrom. ``"auto"``
        takes that velocity width on the training grid (from its spectral
        axis, or 33/2048 of the spectrum without one), at least 3 pixels
        and at most a quarter of the spectrum (`contrast_window_`). None
        reads the flux and mask only.
    embedding_dim : int
        Size of the embedding.
    dropout : float
        Dropout before the embedding and the heads.
    standardize : bool
        Standardise each spectrum (zero mean, unit standard deviation over its
        good pixels) before the network sees it. False feeds the flux as
        given: normalise it with `stellarlatent.preprocessing` first.
    max_epochs : int
        Passes over the training spectra.
    batch_size : int
        Spectra per optimiser step.
    lr : float
        Initial learning rate of AdamW.
    weight_decay : float
        Decoupled weight decay of AdamW.
    restart_period : int or None
        Epochs of the first cycle of `~torch.optim.lr_scheduler.CosineAnnealingWarmRestarts`;
        None anneals once (`~torch.optim.lr_scheduler.CosineAnnealingLR`)
        from ``lr`` to ``swa_lr`` until SWA starts. Both are stepped once per
        epoch and floor at ``swa_lr``.
    swa_start : float, int or None
        When stochastic weight averaging starts: a fraction in [0, 1) of the
        epochs, or an epoch number (averaging after every later epoch);
        None disables SWA. The weights are averaged after each epoch from
        then on (`torch.optim.swa_utils.AveragedModel`, with
        `~torch.optim.swa_utils.SWALR` holding the learning rate at
        ``swa_lr``), and the batch-norm statistics of the average are
        recomputed on the training spectra at the end.
    swa_lr : float or None
        Learning rate during SWA and floor of the cosine schedule; default
        ``lr / 10``.
    edge_probability : float
        A label is flagged out of range when its distribution puts more
        probability than this below the lowest or above the highest known
        label of the training spectra (``reference_labels_``; the bins'
        margin when fewer than two distinct values are known), the first
        and last bins always counted as outside.
    novelty_quantile : float
        A spectrum is flagged out of range (every label) when its embedding is
        farther from its nearest training spectrum than this quantile of the
        training spectra's distances to their nearest other training
        spectrum. Distances are measured between the unnormalised
        embeddings (the embedding layer's output before the L2
        normalisation), whose length grows for unfamiliar inputs.
    validation_fraction : float
        Fraction of the spectra held out to monitor the loss.
    n_iter_no_change : int or None
        Early stopping on the validation loss (best weights kept unless SWA
        has started).
    device : str or `torch.device`
        ``"auto"`` (CUDA when available), ``"cpu"``, ``"cuda"``...
    random_state : int or None
        Seed of the weights, the split and the batches; the same seed gives
        the same result on CPU.
    %(runtime_parameters)s

    Attributes
    ----------
    module_ : `stellarlatent.nn.DeepREMAPNet`
        The trained network (the SWA average when SWA ran), in eval mode.
    bin_edges_ : dict
        ``{label: ndarray (n_bins + 1,)}`` in ``label_units_[label]``.
    label_units_ : dict
        ``{label: astropy unit}`` (``dimensionless_unscaled`` for none).
    contrast_window_ : int or None
        The contrast window in pixels (``contrast_window`` with ``"auto"``
        resolved on the training grid).
    temperatures_ : dict
        ``{label: float}`` set by `calibrate` (1 before).
    reference_embeddings_ : ndarray, shape (n_reference, embedding_dim)
        L2-normalised embeddings of the spectra of the last `fit` (or
        `fine_tune`), in their order, searched by `kneighbors`.
    reference_labels_ : `~astropy.table.QTable`
        Their labels (NaN where unknown).
    novelty_threshold_ : float
        Embedding distance above which a spectrum is flagged out of range.
    n_features_in_ : int
    spectral_axis_ : `~astropy.units.Quantity` or None
    flux_unit_ : `~astropy.units.UnitBase` or None
        The flux unit of the training spectra, when they were Spectrum
        objects or a store: spectra in another unit of the same quantity are
        converted to it, others refused (nothing is checked for a
        dimensionless, normalised flux).
    history_ : list of dict
        Per-epoch ``train_loss``, ``train_focal``, ``train_focal_<label>``,
        ``train_triplet``, ``swa_n``, ``val_...``, ``lr`` and ``time``.
    fine_tune_history_ : list of dict
        The same for the last `fine_tune` (empty before).
    n_iter_ : int

    Notes
    -----
    The training loss is ``sum over labels of FocalCostLoss + triplet_weight
    * triplet_loss``; a label that is NaN or masked for a star leaves only
    that label of that star out. Predictions are summaries of the binned
    distribution, taken to be uniform inside each bin: Teff in K (also when
    binned in log space), log g and [Fe/H] in dex. `score` is the negative
    mean negative log-likelihood of the true bins.

    Every parameter is declared in ``_parameter_constraints`` (with the
    training parameters shared with `SpectralVAE`) and checked when `fit` or
    `fine_tune` starts: a value of the wrong kind or range (``n_bins=2``,
    ``random_state=True``) raises a ValueError naming the parameter.

    Examples
    --------
    >>> import numpy as np
    >>> rng = np.random.default_rng(0)
    >>> x = np.linspace(0, 1, 64)
    >>> teff = rng.uniform(4000, 7000, 48)
    >>> X = 1 - (teff[:, None] / 8000) * np.exp(-0.5 * ((x - 0.5) / 0.05) ** 2)
    >>> remap = DeepREMAP(["teff"], n_bins=12, base_channels=4, n_stages=2,
    ...                   blocks_per_stage=1, max_epochs=2, verbose=0, random_state=0)
    >>> table = remap.fit(X, {"teff": teff}).predict(X[:3])
    >>> table.colnames
    ['teff', 'teff_err', 'teff_p16', 'teff_p84', 'teff_out_of_range', 'embedding_distance']
    >>> table["teff"].unit
    Unit("K")
    >>> proba, edges = remap.predict_proba(X[:3])["teff"]
    >>> proba.shape, edges.shape
    ((3, 12), (13,))
    """

    _parameter_constraints = CONSTRAINTS

    def __init__(
        self,
        labels=("teff", "logg", "feh"),
        *,
        n_bins=DEFAULT_N_BINS,
        bin_width=None,
        margin=0.05,
        log_teff=True,
        gamma=2.0,
        class_balance=False,
        cost_weight=0.5,
        label_smoothing=1.0,
        triplet_weight=0.1,
        triplet_margin=0.2,
        positive_threshold=0.3,
        base_channels=8,
        n_stages=4,
        blocks_per_stage=1,
        kernel_size=7,
        contrast_window="auto",
        embedding_dim=64,
        dropout=0.1,
        standardize=True,
        max_epochs=40,
        batch_size=32,
        lr=3e-3,
        weight_decay=1e-4,
        restart_period=None,
        swa_start=0.75,
        swa_lr=None,
        edge_probability=0.25,
        novelty_quantile=0.99,
        validation_fraction=0.0,
        n_iter_no_change=None,
        device="auto",
        random_state=None,
        verbose=1,
        num_workers=0,
        precision="float32",
        compile=False,
    ):
        self._store_params(locals())

    @classmethod
    def from_preset(cls, name, **overrides):
        """Build an estimator with a named configuration.

        Parameters
        ----------
        name : {"miles"}
            ``"miles"``: the recommended recipe, also the constructor's
            defaults: a residual CNN of 4 stride-2 stages of one block from
            8 channels (kernel 7) on standardised spectra with a contrast
            channel about 55 Angstrom wide, ``"auto"`` bins (Teff binned in
            log), Gaussian soft targets one bin wide, no class balancing,
            AdamW at lr 3e-3 on batches of 32 for 40 epochs, no held-out
            monitoring set. Written for MILES-like spectra (about 2000
            pixels over 3700-7300 Angstrom) and a few hundred to a few
            thousand training stars.
        **overrides
            Parameters that replace the preset's.

        Examples
        --------
        >>> remap = DeepREMAP.from_preset("miles", labels=("teff", "logg"), max_epochs=5)
        >>> remap.labels, remap.max_epochs, remap.base_channels, remap.contrast_window
        (('teff', 'logg'), 5, 8, 'auto')
        """
        if not isinstance(name, str) or name not in PRESETS:
            raise ValueError(f"name must be one of {sorted(PRESETS)}, got {name!r}")
        params = dict(PRESETS[name])
        params.update(overrides)
        return cls(**params)

    # -- parameters ------------------------------------------------------------------

    def _check_params(self):
        """Check the parameters as `TorchEstimator._check_params` does; return the label names.

        A per-label dict must name labels of ``labels``.
        """
        super()._check_params()
        labels = tuple(self.labels)
        for name in ("n_bins", "bin_width", *PER_LABEL_DEFAULTS):
            value = getattr(self, name)
            if isinstance(value, dict):
                per_label(value, labels, name, None)
        return labels

    def _per_label_number(self, name, labels):
        """``{label: float}`` of the (checked) scalar-or-dict parameter ``name``."""
        values = per_label(getattr(self, name), labels, name, PER_LABEL_DEFAULTS[name])
        return {label: float(value) for label, value in values.items()}

    # -- labels ----------------------------------------------------------------------

    def _read_y(self, X, y, n, labels, units=None, name="y"):
        return read_y(X, y, n, labels, units=units, name=name)

    def _binning_space(self, values):
        return binning_space(values, self._labels, self._log_teff)

    def _encoded_params(self):
        params = self.get_params()
        if isinstance(params.get("bin_width"), dict):
            params["bin_width"] = {
                k: (v.to_string() if isinstance(v, u.Quantity) else v)
                for k, v in params["bin_width"].items()
            }
        return params

    # -- fitting ---------------------------------------------------------------------

    def fit(self, X, y=None, sample_weight=None, *, checkpoint_dir=None):
        """Bin the labels and train the network.

        Parameters
        ----------
        X : array-like (n_spectra, n_pixels), Spectrum, list of Spectrum or SpectralStore
            A batch `~specutils.Spectrum`, a list of them on one grid, or a
            `~stellarlatent.datasets.SpectralStore`.
            Training spectra on one grid (see `stellarlatent.preprocessing`);
            masked and NaN pixels are allowed. A store is streamed.
        y : `~astropy.table.Table`, `~astropy.table.QTable`, dict or array-like, default=None
            The labels named in ``labels``, one row per spectrum: table
            columns or dict entries by name (Quantities are converted, e.g.
            Teff to K), or a 2-D array whose columns follow ``labels``.
            NaN or masked values leave that label (only) out of the loss.
            None reads them from the label columns of a SpectralStore ``X``.
        sample_weight : array-like of shape (n_spectra,), default=None
            Relative sampling weights of the spectra (batches are drawn with
            replacement in proportion).
        checkpoint_dir : str or `pathlib.Path`, default=None
            Write a checkpoint after every epoch and resume from one written
            for the same data and hyperparameters (to the same result).

        Returns
        -------
        self
        """
        labels = self._check_params()
        source = self._source(X)
        n = len(source)
        values, units = self._read_y(X, y, n, labels)
        sample_weight = self._check_sample_weight(sample_weight, n)
        self._labels = labels
        self._log_teff = bool(self.log_teff)
        self.label_units_ = units
        n_bins = per_label(self.n_bins, labels, "n_bins", DEFAULT_N_BINS)
        self.bin_edges_ = bin_edges(values, labels, units, n_bins, self.bin_width,
                                    self._per_label_number("margin", labels), bool(self.log_teff))
        space = self._binning_space(values)
        self._label_loc = np.nanmean(space, axis=0)
        self._label_scale = np.nanstd(space, axis=0)
        self._set_targets(values, clip=False)
        self.temperatures_ = {label: 1.0 for label in labels}
        self.fine_tune_history_ = []

        seed = self._rng()
        torch.manual_seed(seed)
        self.device_ = resolve_device(self.device)
        self._record_grid(source)
        self.contrast_window_ = contrast_window(self.contrast_window, source)
        label_bins = {label: len(edges) - 1 for label, edges in self.bin_edges_.items()}
        check_network_size(self, label_bins)
        self.module_ = self._build_module(source.n_pixels, label_bins).to(self.device_)
        self.n_iter_ = 0
        train_idx, val_idx = self._split(n, seed)
        self._stage = "fit"
        self._setup_training(train_idx, self.max_epochs, self.lr)
        self.history_ = []
        self._train(source, train_idx, val_idx, sample_weight, checkpoint_dir, seed,
                    self.max_epochs, self.history_)
        return self

    def fine_tune(self, X, y=None, sample_weight=None, *, freeze=None, max_epochs=None, lr=None,
                  checkpoint_dir=None):
        """Continue training the fitted network on a few (observed) spectra.

        This is the transfer-learning step of deep-REMAP: a network trained on
        synthetic spectra is adapted to observed ones. The bins stay those of
        `fit`; labels outside them count in the edge bins (with a warning).
        The class-balancing weights are recomputed from the new spectra, the
        schedule (cosine, then SWA from ``swa_start``) restarts over the
        fine-tuning epochs, the calibration is reset (call `calibrate`
        again), and the new spectra become the reference set of
        `kneighbors` and of the out-of-range flag.

        Parameters
        ----------
        X, y, sample_weight, checkpoint_dir
            As in `fit`.
        freeze : None, "backbone" or int
            Keep the whole convolutional backbone (``"backbone"``) or its first
            ``freeze`` units (stem first, see
            `stellarlatent.nn.DeepREMAPNet.blocks`) fixed, batch-norm
            statistics included; None trains everything.
        max_epochs : int, default=None
            Default: the estimator's ``max_epochs``.
        lr : float, default=None
            Initial learning rate; default ``lr / 10``. Without ``swa_lr``
            the SWA learning rate is a tenth of it.

        Returns
        -------
        self
        """
        check_is_fitted(self)
        labels = self._check_params()
        if tuple(labels) != tuple(self.bin_edges_):
            raise ValueError(
                f"labels {list(labels)} differ from those the model was fitted with "
                f"{list(self.bin_edges_)}"
            )
        n_epochs = self.max_epochs if max_epochs is None else _check_positive_int(
            max_epochs, "max_epochs")
        if lr is None:
            lr = self.lr / 10
        elif not (is_real(lr) and 0 < lr < math.inf):
            raise ValueError(f"lr must be a positive number, got {lr!r}")
        n_frozen = frozen_blocks(freeze, len(self.module_.blocks))
        source = self._check_X(X)
        n = len(source)
        values, _ = self._read_y(X, y, n, labels, units=self.label_units_)
        sample_weight = self._check_sample_weight(sample_weight, n)
        self._labels = labels
        self._set_targets(values, clip=True)

        seed = self._rng()
        torch.manual_seed(seed)
        self.device_ = resolve_device(self.device)
        self.module_.to(self.device_)
        self.module_.freeze(n_frozen)
        train_idx, val_idx = self._split(n, seed)
        self._stage = "fine_tune"
        start = copy.deepcopy(self.module_.state_dict())
        # a checkpoint resumes only the fine-tuning of these weights with these settings
        self._fine_tune_start = {"lr": float(lr), "frozen": n_frozen,
                                 "weights": weights_digest(self.module_)}
        self._setup_training(train_idx, n_epochs, float(lr))
        history = []
        try:
            self._train(source, train_idx, val_idx, sample_weight, checkpoint_dir, seed,
                        n_epochs, history)
        except TrainingDivergedError:
            raise  # the last good weights are kept, as `_train` says
        except BaseException:
            # interrupted: the network it started from, so that the same call resumes
            self.module_.load_state_dict(start)
            raise
        finally:
            self.module_.unfreeze()
            self.fine_tune_history_ = history
            self._stage = "fit"
        if any(t != 1.0 for t in getattr(self, "temperatures_", {}).values()):
            log.warning("DeepREMAP.fine_tune: the calibration of the network before (its "
                        "temperatures) no longer holds and is dropped; calibrate again")
        self.temperatures_ = {label: 1.0 for label in labels}
        return self

    # -- reference set ---------------------------------------------------------------

    def set_reference(self, X, y=None):
        """Make ``X`` the reference set: what `kneighbors` returns, and novelty is measured on.

        `fit` and `fine_tune` make their own training spectra the reference
        set. Replace it when those are not the spectra to compare with: a
        model fine-tuned on degraded copies of its training stars (data
        augmentation) should find the stars themselves, not their copies, and
        a library of labelled spectra can be searched without training on it.
        The novelty threshold is recomputed from the new set.

        Parameters
        ----------
        X : array-like (n_spectra, n_pixels), Spectrum or SpectralStore
            On the model's grid: an array, a batch `~specutils.Spectrum` or a
            `~stellarlatent.datasets.SpectralStore`.
        y : dict, structured array or `~astropy.table.Table`, default=None
            The labels of ``X``, as in `fit` (a store's label columns when None).

        Returns
        -------
        self

        Examples
        --------
        >>> import numpy as np
        >>> from stellarlatent.estimators import DeepREMAP
        >>> rng = np.random.default_rng(0)
        >>> teff = rng.uniform(4000, 7000, 60)
        >>> flux = 1 + 0.01 * rng.standard_normal((60, 32))
        >>> flux[:, 10] -= (teff - 3000) / 8000
        >>> model = DeepREMAP(labels=("teff",), n_bins=8, base_channels=4, n_stages=2,
        ...                   embedding_dim=8, max_epochs=1, verbose=0, random_state=0)
        >>> model = model.fit(flux, {"teff": teff}).set_reference(flux[:20], {"teff": teff[:20]})
        >>> len(model.reference_labels_), int(model.kneighbors(flux[:2], 3)[1].max()) < 20
        (20, True)
        """
        check_is_fitted(self)
        source = self._check_X(X)
        labels = list(self.bin_edges_)
        values, _ = self._read_y(X, y, len(source), labels, units=self.label_units_)
        self._labels, self._training_values = labels, values
        try:
            self._set_reference(source)
        finally:
            del self._training_values
        return self

    @property
    def reference_embeddings_(self):
        """L2-normalised embeddings of the reference spectra, shape (n_reference, embedding_dim)."""
        return self._reference.normalized_embeddings

    # -- using the model -------------------------------------------------------------

    def _edges(self, label):
        return edges_with_unit(self.bin_edges_[label], self.label_units_[label])

    def predict_proba(self, X):
        """Probability of each label bin.

        %(X_parameters)s

        Returns
        -------
        dict
            ``{label: (proba, bin_edges)}``: ``proba`` an ndarray of shape
            (n_spectra, n_bins) whose rows sum to one (temperature-scaled
            after `calibrate`), ``bin_edges`` of shape (n_bins + 1,), a
            Quantity in the label's unit (a plain ndarray for a
            dimensionless label). The form `stellarlatent.diagnostics`
            expects.
        """
        check_is_fitted(self)
        logits = self._logits(self._check_X(X))
        return {label: (p, self._edges(label)) for label, p in self._probabilities(logits).items()}

    def predict(self, X):
        """Labels with uncertainties and an out-of-range flag.

        The binned distribution is taken to be uniform inside each bin (in
        the label's unit, also when Teff is binned in log space).

        %(X_parameters)s

        Returns
        -------
        `~astropy.table.QTable`
            One row per spectrum. For each label ``L``: ``L`` (the mean of
            the binned distribution), ``L_err`` (half its central 68%
            interval: the calibrated distributions have a wide tail that
            would swell a standard deviation), ``L_p16`` and ``L_p84`` (its
            percentiles, linear inside a bin), in K for Teff, dex for log g and [Fe/H] (Quantity
            columns; plain columns for dimensionless labels), and
            ``L_out_of_range`` (bool): more than ``edge_probability`` outside
            the range of the training labels (those of ``reference_labels_``:
            the spectra of the last fit or fine-tuning), or an embedding farther from every training
            spectrum than ``novelty_threshold_``. Last,
            ``embedding_distance``: the distance to the nearest training
            spectrum in the unnormalised embedding (see
            ``novelty_quantile``).
        """
        check_is_fitted(self)
        ranges = {label: self._training_range(label) for label in self.bin_edges_}
        parts, raws = [], []
        for proba, raw in self._predicted(self._check_X(X)):
            raws.append(raw)
            parts.append({label: label_summaries(p, self.bin_edges_[label], self.edge_probability,
                                                 ranges[label])
                          for label, p in proba.items()})
        distance = self._nearest_distance(raws)
        return prediction_table(concatenated(parts), self.label_units_,
                                distance > self.novelty_threshold_, distance)

    def _training_range(self, label):
        """The lowest and highest known ``label`` of the reference spectra, or None."""
        return training_range(self.reference_labels_, label, self.label_units_[label])

    def embed(self, X):
        """Embedding vectors (L2-normalised) of spectra.

        Returns
        -------
        ndarray, shape (n_spectra, embedding_dim)
        """
        check_is_fitted(self)
        return np.concatenate([embedding for _, embedding, _ in self._outputs(self._check_X(X))])

    def kneighbors(self, X, n_neighbors=5):
        """The training spectra closest to each spectrum in the embedding.

        Parameters
        ----------
        X : array-like (n_spectra, n_pixels), Spectrum or SpectralStore
            An array, a batch `~specutils.Spectrum` or a
            `~stellarlatent.datasets.SpectralStore` on the model's grid.
        n_neighbors : int

        Returns
        -------
        distances : ndarray, shape (n_spectra, n_neighbors)
            Euclidean distances between embeddings, increasing along a row.
        indices : ndarray of int, shape (n_spectra, n_neighbors)
            Rows of the spectra given to the last `fit` (or `fine_tune`).
        labels : `~astropy.table.QTable`
            One row per spectrum; each label column has shape
            (n_spectra, n_neighbors) and holds the neighbours' labels (NaN
            where unknown), in the label's unit.
        """
        check_is_fitted(self)
        reference = self._reference
        n_neighbors = reference.check_k(n_neighbors)  # before the spectra are embedded
        distances, indices = reference.query(self.embed(X), n_neighbors, normalized=True,
                                             device=self.device_)
        table = QTable()
        for label in self.reference_labels_.colnames:
            table[label] = self.reference_labels_[label][indices]
        return distances, indices, table

    def calibrate(self, X, y=None, *, method="nll", level=COVERAGE_LEVELS):
        """Fit one temperature per label on held-out spectra (temperature scaling).

        Each label's logits are divided by a temperature fitted on spectra
        not used in training; values outside the bins count in the edge
        bins. The most probable bin, hence the ranking of the bins, does not
        change. `predict` and `predict_proba` apply the temperatures.

        With ``method="nll"`` (the default) the temperature minimises the
        negative log-likelihood of the true bins (Guo et al. 2017), which
        calibrates the probability of the most probable bin. The likelihood
        is dominated by the few stars far from their predicted bins, so when
        the errors have heavier tails than the predicted distributions (as on
        observed spectra), it widens every distribution for their sake and
        the central credible intervals over-cover. ``method="coverage"``
        fits the temperature to the intervals instead: on the held-out
        spectra, a fraction ``level`` of the true values lies inside the
        central ``level`` credible intervals (the ``L_p16``, ``L_p84``
        columns of `predict` for 0.6827; see
        `stellarlatent.diagnostics.interval_coverage`). With several levels
        (the default: the 68% and the 95% intervals) the temperature brings
        each as near its level as one temperature can; where the errors have
        heavier tails than the predicted distributions, fitting the 68%
        intervals alone leaves the 95% intervals short. It needs a few dozen
        held-out spectra at least.

        Parameters
        ----------
        X : spectra, as in `predict`
            Spectra not used in training.
        y : `~astropy.table.Table`, dict or array-like, default=None
            Their labels, as in `fit`.
        method : {"nll", "coverage"}
            What the temperature is fitted to.
        level : float or sequence of float, default=(0.6827, 0.9545)
            Credible level(s) of the intervals matched by ``method="coverage"``.

        Returns
        -------
        self
        """
        check_is_fitted(self)
        levels = check_method(method, level)
        labels = tuple(self.bin_edges_)
        source = self._check_X(X)
        values, _ = self._read_y(X, y, len(source), labels, units=self.label_units_)
        self.temperatures_ = fit_temperatures(self._logits(source), labels, self.bin_edges_,
                                              values, method, levels)
        return self

    def score(self, X, y=None):
        """Negative mean negative log-likelihood of the true bins: higher is better.

        For each label, the mean over the spectra whose value is known of
        ``log p(true bin)`` (values outside the bins count in the edge bins,
        probabilities floored at 1e-12), then the mean over labels.
        """
        check_is_fitted(self)
        labels = tuple(self.bin_edges_)
        source = self._check_X(X)
        values, _ = self._read_y(X, y, len(source), labels, units=self.label_units_)
        logits = self._logits(source)
        proba = self._probabilities(logits)
        means = []
        for j, label in enumerate(labels):
            bins, _ = digitize(values[:, j], self.bin_edges_[label], clip=True)
            known = bins >= 0
            if known.any():
                p = proba[label][np.flatnonzero(known), bins[known]]
                means.append(np.mean(np.log(np.clip(p, 1e-12, None))))
        if not means:
            raise ValueError("y has no known label value to score against")
        return float(np.mean(means))

    # -- persistence -----------------------------------------------------------------

    def _metadata(self):
        saved = self.bin_width
        self.bin_width = self._encoded_params()["bin_width"]
        try:
            metadata = super()._metadata()
        finally:
            self.bin_width = saved
        metadata["remap"] = remap_metadata(self)
        return metadata

    def _tensors(self):
        return remap_tensors(self)

    def _restore(self, metadata, tensors):
        self._restore_common(metadata)
        label_bins = restore_remap(self, metadata, tensors)
        self.module_ = self._build_module(self.n_features_in_, label_bins)
