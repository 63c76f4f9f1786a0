"""DeepREMAP: stellar labels with calibrated uncertainties (Gilda 2025, arXiv:2510.09362)."""

import hashlib
import math
import numbers

import astropy.units as u
import numpy as np
import torch
from astropy.table import QTable
from sklearn.utils.validation import check_is_fitted
from torch.nn.modules.batchnorm import _BatchNorm

from .._logging import log
from .._params import Converted, Interval, InvalidParameterError, Predicate, validate_params
from ..nn import (
    DeepREMAPNet,
    FocalCostLoss,
    TemperatureScaler,
    class_balance_weights,
    triplet_loss,
)
from ._base import (
    TorchEstimator,
    TrainingDivergedError,
    _check_positive_int,
    resolve_device,
)
from ._binning import (
    binned_summaries,
    coverage_temperature,
    digitize,
    make_edges,
    read_labels,
)
from ._data import _is_store
from ._reference import ReferenceSet
from ._swa import CosineSWA

__all__ = ["DeepREMAP"]

_DEFAULT_N_BINS = "auto"
# What "auto" gives a label without a known resolution: bins over its range.
_FALLBACK_N_BINS = 50
# The bin widths of "auto" (in the binning space: Teff in dex with log_teff):
# about the precision of good spectroscopic labels, so that the bins stay as
# fine on 2800-36000 K as on 4000-7000 K.
_AUTO_WIDTH = {"teff": 65.0, "log_teff": 0.005, "logg": 0.09, "feh": 0.065, "mh": 0.065,
               "m_h": 0.065, "alpha": 0.03, "afe": 0.03, "alpha_fe": 0.03}
# "auto" keeps every label between these numbers of bins.
_AUTO_BINS = (20, 500)
# contrast_window="auto": 33 pixels of the 2048-pixel log-uniform grid over
# 3700-7300 Angstrom (about 55 Angstrom at 5000), as a velocity.
_CONTRAST_KMS = 33 * 299792.458 * math.log(7300.0 / 3700.0) / 2047
# weights, optimiser state and cost matrices of one network; more is a typo, not a model
_MAX_NETWORK_BYTES = 16 * 2**30
# a cost matrix of n_bins**2 entries; far beyond any label's resolution
_MAX_BINS = 10_000

# Named settings of DeepREMAP.from_preset. Literals only: _commands/recipe.py
# reads them from this file without importing torch (the command's help).
_PRESETS = {
    # The recommended recipe, which the constructor defaults are: a small residual CNN
    # for ~2000-pixel spectra (MILES: 3700-7300 Angstrom at 2.5 Angstrom FWHM) and a few
    # hundred to a few thousand training stars, on a CPU; the contrast channel 55
    # Angstrom wide, "auto" bins of a fixed width per label, Gaussian soft targets one
    # bin wide for the errors of observed labels, no held-out monitoring set.
    "miles": {
        "base_channels": 8,
        "n_stages": 4,
        "blocks_per_stage": 1,
        "kernel_size": 7,
        "standardize": True,
        "class_balance": False,
        "label_smoothing": 1.0,
        "lr": 3e-3,
        "batch_size": 32,
        "validation_fraction": 0.0,
        "contrast_window": "auto",
        "n_bins": "auto",
        "log_teff": True,
        "max_epochs": 40,
    },
}

# What a label left out of a per-label dict gets.
_PER_LABEL_DEFAULTS = {"margin": 0.05, "gamma": 2.0, "label_smoothing": 0.0}


def _is_real(value):
    return isinstance(value, numbers.Real) and not isinstance(value, (bool, np.bool_))


def _is_int(value):
    return isinstance(value, numbers.Integral) and not isinstance(value, (bool, np.bool_))


def _per_label(value, labels, name, default):
    """Expand a scalar-or-dict parameter to one value per label."""
    if isinstance(value, dict):
        unknown = [k for k in value if k not in labels]
        if unknown:
            raise ValueError(
                f"{name} names labels {unknown} that are not in labels {list(labels)}"
            )
        return {label: value.get(label, default) for label in labels}
    return {label: value for label in labels}


def _label_names(labels, name="labels"):
    """The label names as a tuple; raise naming ``name`` if they are not valid names."""
    if isinstance(labels, str) or not hasattr(labels, "__iter__"):
        raise TypeError(
            f"{name} must be a sequence of label names such as ('teff',), got {labels!r}"
        )
    labels = tuple(labels)
    if not labels:
        raise ValueError(f"{name} must name at least one label")
    for label in labels:
        if not isinstance(label, str) or not label or "." in label:
            raise ValueError(f"{name} must be non-empty strings without '.', got {label!r}")
    if len(set(labels)) != len(labels):
        raise ValueError(f"{name} has duplicated names: {list(labels)}")
    return labels


def _each_label(value):
    """``(label, value)`` of a per-label dict, or ``(None, value)`` of a scalar."""
    return value.items() if isinstance(value, dict) else [(None, value)]


def _for(label):
    return "" if label is None else f" for '{label}'"


def _check_n_bins(value, name):
    for label, n in _each_label(value):
        if not (_is_auto(n) or (_is_int(n) and 3 <= n <= _MAX_BINS)):
            raise InvalidParameterError(
                f"{name} must be 'auto' or an integer in [3, {_MAX_BINS}] (or a dict of them), "
                f"got {n!r}{_for(label)}")


def _check_per_label_number(value, name):
    for label, number in _each_label(value):
        if not (_is_real(number) and 0 <= number < math.inf):
            raise InvalidParameterError(
                f"{name} must be a non-negative number (or a dict), got {number!r}{_for(label)}")


def _check_bin_width(value, name):
    if not isinstance(value, dict):
        raise InvalidParameterError(f"{name} must be None or a dict {{label: width}}, "
                                    f"got {value!r}")


def _is_auto(value):
    return isinstance(value, str) and value == "auto"


def _is_odd(value, low):
    return _is_int(value) and value >= low and value % 2 == 1


_NON_NEGATIVE = Interval(numbers.Real, 0, None, closed="left")
_POSITIVE_INT = Interval(numbers.Integral, 1, None, closed="left")
_PER_LABEL_NUMBER = Converted(_check_per_label_number, "a non-negative number or a dict of them")
_PROBABILITY = Interval(numbers.Real, 0, 1, closed="right")


class DeepREMAP(TorchEstimator):
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
    bin_width : dict, optional
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
        A label is flagged out of range when its first or last bin (in the
        margin, where no training star lies) holds more probability.
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
    num_workers : int
        Background processes reading batches (a `torch.utils.data.DataLoader`
        with prefetching; batches go to pinned memory when the network is on
        a GPU). 0 reads in the training process, best for data in memory;
        a few workers keep a GPU fed from a `~stellarlatent.datasets.SpectralStore`.
    precision : {"float32", "bf16-mixed"}
        ``"bf16-mixed"`` runs the training forward passes under bfloat16
        autocast (weights and optimiser stay float32): about twice the
        throughput on recent GPUs, for a small loss of precision.
    compile : bool
        Compile the training network with `torch.compile` (worth it for long
        GPU runs; the first epoch pays the compilation).
    verbose : int
        0 for silence, 1 for a progress bar.

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

    _parameter_constraints = {
        "labels": [Converted(lambda value, name: _label_names(value, name),
                             "a sequence of label names such as ('teff',)")],
        "n_bins": [Converted(_check_n_bins, f"'auto', an integer in [3, {_MAX_BINS}] "
                                            "or a dict {label: n_bins}")],
        "bin_width": [None, Converted(_check_bin_width, "a dict {label: width}")],
        "margin": [_PER_LABEL_NUMBER],
        "log_teff": ["boolean"],
        "gamma": [_PER_LABEL_NUMBER],
        "class_balance": ["boolean"],
        "cost_weight": [_NON_NEGATIVE],
        "label_smoothing": [_PER_LABEL_NUMBER],
        "triplet_weight": [_NON_NEGATIVE],
        "triplet_margin": [_NON_NEGATIVE],
        "positive_threshold": [Interval(numbers.Real, 0, None, closed="neither")],
        "base_channels": [_POSITIVE_INT],
        "n_stages": [_POSITIVE_INT],
        "blocks_per_stage": [_POSITIVE_INT],
        "kernel_size": [Predicate(lambda value: _is_odd(value, 1), "an odd positive integer")],
        "contrast_window": [None, Predicate(_is_auto, "'auto'"),
                            Predicate(lambda value: _is_odd(value, 3), "an odd integer >= 3")],
        "embedding_dim": [_POSITIVE_INT],
        "dropout": [Interval(numbers.Real, 0, 1, closed="left")],
        "standardize": ["boolean"],
        "restart_period": [None, _POSITIVE_INT],
        "swa_start": [None, Interval(numbers.Real, 0, 1, closed="left",
                                     description="a fraction in [0, 1) of the epochs"),
                      Interval(numbers.Integral, 0, None, closed="left",
                               description="an epoch number")],
        "swa_lr": [None, Interval(numbers.Real, 0, None, closed="neither")],
        "edge_probability": [_PROBABILITY],
        "novelty_quantile": [_PROBABILITY],
    }

    def __init__(
        self,
        labels=("teff", "logg", "feh"),
        *,
        n_bins=_DEFAULT_N_BINS,
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
        self.labels = labels
        self.n_bins = n_bins
        self.bin_width = bin_width
        self.margin = margin
        self.log_teff = log_teff
        self.gamma = gamma
        self.class_balance = class_balance
        self.cost_weight = cost_weight
        self.label_smoothing = label_smoothing
        self.triplet_weight = triplet_weight
        self.triplet_margin = triplet_margin
        self.positive_threshold = positive_threshold
        self.base_channels = base_channels
        self.n_stages = n_stages
        self.blocks_per_stage = blocks_per_stage
        self.kernel_size = kernel_size
        self.contrast_window = contrast_window
        self.embedding_dim = embedding_dim
        self.dropout = dropout
        self.standardize = standardize
        self.max_epochs = max_epochs
        self.batch_size = batch_size
        self.lr = lr
        self.weight_decay = weight_decay
        self.restart_period = restart_period
        self.swa_start = swa_start
        self.swa_lr = swa_lr
        self.edge_probability = edge_probability
        self.novelty_quantile = novelty_quantile
        self.validation_fraction = validation_fraction
        self.n_iter_no_change = n_iter_no_change
        self.device = device
        self.random_state = random_state
        self.verbose = verbose
        self.num_workers = num_workers
        self.precision = precision
        self.compile = compile

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
        if not isinstance(name, str) or name not in _PRESETS:
            raise ValueError(f"name must be one of {sorted(_PRESETS)}, got {name!r}")
        params = dict(_PRESETS[name])
        params.update(overrides)
        return cls(**params)

    # -- parameters ------------------------------------------------------------------

    def _check_params(self):
        """Check every parameter against the declared constraints (those of the base too).

        Returns the label names; a per-label dict must name labels of ``labels``.

        Raises
        ------
        `~stellarlatent._params.InvalidParameterError`
            A ValueError and TypeError naming the parameter.
        """
        validate_params(self)
        labels = tuple(self.labels)
        for name in ("n_bins", "bin_width", *_PER_LABEL_DEFAULTS):
            value = getattr(self, name)
            if isinstance(value, dict):
                _per_label(value, labels, name, None)
        return labels

    def _per_label_number(self, name, labels):
        """``{label: float}`` of the (checked) scalar-or-dict parameter ``name``."""
        values = _per_label(getattr(self, name), labels, name, _PER_LABEL_DEFAULTS[name])
        return {label: float(value) for label, value in values.items()}

    def _width(self, label, unit):
        """The bin width of ``label`` as a float in the binning space, or None."""
        if self.bin_width is None or label not in self.bin_width:
            return None
        width = self.bin_width[label]
        name = f"bin_width['{label}']"
        if isinstance(width, str):
            try:
                width = u.Quantity(width)
            except (TypeError, ValueError) as exc:
                raise ValueError(f"{name} must be a number or a Quantity, got {width!r}") from exc
        log_space = label == "teff" and self.log_teff
        if isinstance(width, u.Quantity):
            if log_space:
                if width.unit not in (u.dex, u.dimensionless_unscaled):
                    raise u.UnitsError(
                        f"{name} is in '{width.unit}', but with log_teff=True the width is in "
                        "dex of Teff (e.g. 0.005)"
                    )
                width = width.value
            else:
                try:
                    width = width.to_value(unit)
                except u.UnitConversionError as exc:
                    raise u.UnitsError(
                        f"{name} is in '{width.unit}', which cannot be converted to '{unit}'"
                    ) from exc
        if not (_is_real(width) and 0 < width < math.inf):
            raise ValueError(f"{name} must be a positive number, got {width!r}")
        return float(width)

    # -- labels ----------------------------------------------------------------------

    def _read_y(self, X, y, n, labels, units=None, name="y"):
        if y is None:
            if _is_store(X):
                missing = [label for label in labels if label not in X.label_names]
                if missing:
                    raise ValueError(
                        f"y is None and the SpectralStore has no label columns {missing} "
                        f"(it has {X.label_names}); pass y"
                    )
                y = X.labels
            else:
                raise ValueError(
                    "y is required: a Table, dict or 2-D array of labels "
                    f"{list(labels)} (only a SpectralStore carries its own labels)"
                )
        return read_labels(y, labels, n, units=units, name=name)

    def _binning_space(self, values):
        values = np.array(values, dtype=float)
        if self._log_teff and "teff" in self._labels:
            j = self._labels.index("teff")
            with np.errstate(invalid="ignore", divide="ignore"):
                values[:, j] = np.where(values[:, j] > 0, np.log10(values[:, j]), np.nan)
        return values

    def _scaled(self, values):
        """Labels standardised with the training location and scale (for the triplet loss)."""
        return ((self._binning_space(values) - self._label_loc) / self._label_scale).astype(
            np.float32
        )

    def _set_targets(self, values, clip):
        targets = np.empty(values.shape, dtype=np.int64)
        for j, label in enumerate(self._labels):
            targets[:, j], n_outside = digitize(values[:, j], self.bin_edges_[label], clip=clip)
            if n_outside:
                edges = self.bin_edges_[label]
                log.warning(
                    "%d values of '%s' lie outside the bins [%g, %g] %s; they count in the edge "
                    "bins", n_outside, label, edges[0], edges[-1], self.label_units_[label],
                )
        self._targets = targets
        self._scaled_labels = self._scaled(values)
        self._training_values = values

    # -- network and optimisation ----------------------------------------------------

    def _check_network_size(self, label_bins):
        """Refuse a network whose weights, optimiser state and cost matrices cannot fit.

        The count is exact for the convolutions and the heads up to biases and
        batch norms; training holds about four copies (weights, gradients and
        Adam's two moments).
        """
        k = self.kernel_size
        in_channels = 2 + (self.contrast_window is not None)  # "auto" is a window too
        n_params = k * in_channels * self.base_channels
        channels = self.base_channels
        for stage in range(self.n_stages):
            out = self.base_channels * 2**stage
            for _ in range(self.blocks_per_stage):
                n_params += k * channels * out + k * out * out + channels * out
                channels = out
        n_params += channels * self.embedding_dim + channels * sum(label_bins.values())
        n_cost = sum(n * n for n in label_bins.values())
        needed = 4 * (4 * n_params + n_cost)
        if needed > _MAX_NETWORK_BYTES:
            raise ValueError(
                f"this network would need about {needed / 2**30:.3g} GiB to train "
                f"({n_params:.3g} weights from base_channels={self.base_channels}, "
                f"n_stages={self.n_stages}, blocks_per_stage={self.blocks_per_stage}, and "
                f"{n_cost:.3g} cost-matrix entries from n_bins={dict(label_bins)}); expected at "
                f"most {_MAX_NETWORK_BYTES / 2**30:.0f} GiB: lower n_stages, base_channels or n_bins"
            )

    def _build_module(self, n_pixels, label_bins):
        return DeepREMAPNet(
            n_pixels,
            label_bins,
            in_channels=2,
            contrast_window=self._contrast_window(),
            base_channels=self.base_channels,
            n_stages=self.n_stages,
            blocks_per_stage=self.blocks_per_stage,
            kernel_size=self.kernel_size,
            embedding_dim=self.embedding_dim,
            dropout=self.dropout,
        )

    def _contrast_window(self):
        """The contrast window in pixels (``contrast_window_`` once fitted)."""
        if hasattr(self, "contrast_window_"):
            return self.contrast_window_
        return None if self.contrast_window == "auto" else self.contrast_window

    def _resolve_contrast_window(self, source):
        window = self.contrast_window
        if not (isinstance(window, str) and window == "auto"):
            return window
        n = source.n_pixels
        axis = source.spectral_axis
        step = None
        if axis is not None and n >= 2:
            wave = np.asarray(getattr(axis, "value", axis), dtype=float)
            middle = max(1, n // 2)
            if wave[middle] > 0 and wave[middle - 1] > 0:
                step = 299792.458 * abs(math.log(wave[middle] / wave[middle - 1]))
        window = round(_CONTRAST_KMS / step) if step else round(33 * n / 2048)
        window = min(int(window), n // 4)
        window = window if window % 2 else window - 1
        return max(3, window)

    def _auto_width(self, label, values):
        """The bin width of ``n_bins="auto"``, in the binning space (None: 50 bins)."""
        space = values
        key = label
        if label == "teff" and self.log_teff:
            space = np.log10(values[values > 0])
            key = "log_teff"
        space = space[np.isfinite(space)]
        if key not in _AUTO_WIDTH or space.size < 2:
            return None
        span = float(space.max() - space.min())
        if span <= 0:
            return None
        low, high = _AUTO_BINS
        return float(np.clip(_AUTO_WIDTH[key], span / high, span / low))

    def _setup_training(self, train_idx, n_epochs, lr):
        device = self.device_
        self._losses = {}
        smoothing = self._per_label_number("label_smoothing", self._labels)
        gammas = self._per_label_number("gamma", self._labels)
        for j, label in enumerate(self._labels):
            n_bins = len(self.bin_edges_[label]) - 1
            weights = None
            if self.class_balance:
                known = self._targets[train_idx, j]
                counts = np.bincount(known[known >= 0], minlength=n_bins)
                weights = class_balance_weights(counts)
            self._losses[label] = FocalCostLoss(
                n_bins, gamma=gammas[label], class_weights=weights,
                cost_weight=self.cost_weight, label_smoothing=smoothing[label],
            ).to(device)
        params = [p for p in self.module_.parameters() if p.requires_grad]
        self.optimizer_ = torch.optim.AdamW(params, lr=lr, weight_decay=self.weight_decay)
        self._schedule = CosineSWA(
            self.optimizer_, self.module_, n_epochs, swa_start=self.swa_start,
            swa_lr=lr / 10 if self.swa_lr is None else self.swa_lr,
            restart_period=self.restart_period,
        )

    def _clear_training_state(self):
        for name in ("optimizer_", "_schedule", "_losses", "_targets", "_scaled_labels",
                     "_training_values"):
            if hasattr(self, name):
                delattr(self, name)

    # -- training hooks --------------------------------------------------------------

    def _inputs(self, batch):
        flux, mask = batch["flux"], batch["mask"]
        if self.standardize:
            good = (~mask).to(flux.dtype)
            n = good.sum(dim=1, keepdim=True).clamp_min(1.0)
            mean = (flux * good).sum(dim=1, keepdim=True) / n
            var = ((flux - mean).square() * good).sum(dim=1, keepdim=True) / n
            flux = (flux - mean) / var.sqrt().clamp_min(1e-6)
        return flux, mask

    def _losses_of(self, batch, indices, network=None):
        network = self.module_ if network is None else network
        out = network(*self._inputs(batch))
        targets = torch.from_numpy(self._targets[indices]).to(self.device_)
        focal = {
            label: self._losses[label](out.logits[label], targets[:, j])
            for j, label in enumerate(self._labels)
        }
        if self.triplet_weight > 0:
            labels = torch.from_numpy(self._scaled_labels[indices]).to(self.device_)
            triplet = triplet_loss(
                out.embedding, labels, margin=self.triplet_margin,
                positive_threshold=self.positive_threshold,
            )
        else:
            triplet = out.embedding.sum() * 0.0
        total_focal = sum(focal.values())
        return total_focal + self.triplet_weight * triplet, total_focal, focal, triplet

    def _training_step(self, batch, indices):
        loss, total_focal, focal, triplet = self._losses_of(
            batch, indices, network=self._training_network())
        record = {"loss": loss, "focal": total_focal.detach(), "triplet": triplet.detach()}
        record.update({f"focal_{label}": value.detach() for label, value in focal.items()})
        return record

    def _evaluate(self, source, indices):
        sums = {}
        self.module_.eval()
        with torch.no_grad():
            for idx, batch in self._batches(source, indices):
                loss, total_focal, focal, triplet = self._losses_of(batch, idx)
                values = {"loss": loss, "focal": total_focal, "triplet": triplet}
                values.update({f"focal_{label}": v for label, v in focal.items()})
                for key, value in values.items():
                    sums[key] = sums.get(key, 0.0) + float(value) * len(idx)
        return {k: v / len(indices) for k, v in sums.items()}

    def _after_epoch(self, epoch):
        self._schedule.step(epoch, self.module_)
        return {"swa_n": self._schedule.n_averaged}

    def _swa_ran(self):
        schedule = getattr(self, "_schedule", None)
        return schedule is not None and schedule.n_averaged > 0

    def _restore_best(self):
        return self.n_iter_no_change is not None and not self._swa_ran()

    def _finish_training(self, source, train_idx):
        if self._swa_ran():
            network = self._schedule.averaged_module
            self._update_batchnorm(network, source, train_idx)
            self.module_ = network
        self.module_.eval()
        self._set_reference(source)
        self._clear_training_state()

    def _update_batchnorm(self, network, source, indices):
        """Recompute the batch-norm statistics of ``network`` on the training spectra.

        The same as `torch.optim.swa_utils.update_bn`, for inputs of flux and
        mask; batch-norm layers of frozen blocks (which stay in evaluation
        mode) keep their statistics.
        """
        network.train()
        layers = [m for m in network.modules() if isinstance(m, _BatchNorm) and m.training]
        momenta = {}
        for layer in layers:
            layer.reset_running_stats()
            momenta[layer] = layer.momentum
            layer.momentum = None
        if layers:
            with torch.no_grad():
                for _, batch in self._batches(source, indices):
                    network(*self._inputs(batch))
        for layer, momentum in momenta.items():
            layer.momentum = momentum
        network.eval()

    def _extra_state(self):
        return self._schedule.state_dict()

    def _load_extra_state(self, extra):
        self._schedule.load_state_dict(extra)

    def _encoded_params(self):
        params = self.get_params()
        if isinstance(params.get("bin_width"), dict):
            params["bin_width"] = {
                k: (v.to_string() if isinstance(v, u.Quantity) else v)
                for k, v in params["bin_width"].items()
            }
        return params

    def _fingerprint_extra(self):
        digest = hashlib.sha256(np.ascontiguousarray(self._targets).tobytes())
        for label in self._labels:
            digest.update(np.asarray(self.bin_edges_[label], dtype=float).tobytes())
        return {"stage": self._stage, "labels": digest.hexdigest()}

    # -- fitting ---------------------------------------------------------------------

    def fit(self, X, y=None, sample_weight=None, *, checkpoint_dir=None):
        """Bin the labels and train the network.

        Parameters
        ----------
        X : array-like (n_spectra, n_pixels), `~specutils.Spectrum` batch, list of Spectrum on one grid, or `~stellarlatent.datasets.SpectralStore`
            Training spectra on one grid (see `stellarlatent.preprocessing`);
            masked and NaN pixels are allowed. A store is streamed.
        y : `~astropy.table.Table`, `~astropy.table.QTable`, dict or array-like, optional
            The labels named in ``labels``, one row per spectrum: table
            columns or dict entries by name (Quantities are converted, e.g.
            Teff to K), or a 2-D array whose columns follow ``labels``.
            NaN or masked values leave that label (only) out of the loss.
            None reads them from the label columns of a SpectralStore ``X``.
        sample_weight : array-like of shape (n_spectra,), optional
            Relative sampling weights of the spectra (batches are drawn with
            replacement in proportion).
        checkpoint_dir : str or `pathlib.Path`, optional
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
        n_bins = _per_label(self.n_bins, labels, "n_bins", _DEFAULT_N_BINS)
        margins = self._per_label_number("margin", labels)
        self.bin_edges_ = {}
        for j, label in enumerate(labels):
            width, count = self._width(label, units[label]), n_bins[label]
            if width is None and count == "auto":
                width = self._auto_width(label, values[:, j])
            self.bin_edges_[label] = make_edges(
                values[:, j], n_bins=_FALLBACK_N_BINS if count == "auto" else int(count),
                width=width, margin=float(margins[label]),
                log=(label == "teff" and bool(self.log_teff)), name=label,
            )
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
        self.contrast_window_ = self._resolve_contrast_window(source)
        label_bins = {label: len(edges) - 1 for label, edges in self.bin_edges_.items()}
        self._check_network_size(label_bins)
        self.module_ = self._build_module(source.n_pixels, label_bins).to(self.device_)
        self.n_iter_ = 0
        train_idx, val_idx = self._split(n, seed)
        self._stage = "fit"
        self._setup_training(train_idx, self.max_epochs, self.lr)
        self.history_ = []
        self._train(source, train_idx, val_idx, sample_weight, checkpoint_dir, seed,
                    self.max_epochs, self.history_)
        return self

    def _train(self, source, train_idx, val_idx, sample_weight, checkpoint_dir, seed, n_epochs,
               history):
        try:
            self._run_training(
                source, train_idx, val_idx, n_epochs=n_epochs, history=history,
                sample_weight=sample_weight, checkpoint_dir=checkpoint_dir, seed=seed,
            )
        except TrainingDivergedError:
            # the last good weights were kept: leave a usable model behind
            self.module_.eval()
            self._set_reference(source)
            self._clear_training_state()
            raise

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
        max_epochs : int, optional
            Default: the estimator's ``max_epochs``.
        lr : float, optional
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
        elif not (_is_real(lr) and 0 < lr < math.inf):
            raise ValueError(f"lr must be a positive number, got {lr!r}")
        n_blocks = len(self.module_.blocks)
        if freeze is None:
            n_frozen = 0
        elif isinstance(freeze, str):
            if freeze != "backbone":
                raise ValueError(f"freeze must be None, 'backbone' or an integer, got {freeze!r}")
            n_frozen = n_blocks
        elif (isinstance(freeze, numbers.Integral) and not isinstance(freeze, bool)
              and 0 <= freeze <= n_blocks):
            n_frozen = int(freeze)
        else:
            raise ValueError(
                f"freeze must be None, 'backbone' or an integer in [0, {n_blocks}], got {freeze!r}"
            )
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
        self._setup_training(train_idx, n_epochs, float(lr))
        history = []
        try:
            self._train(source, train_idx, val_idx, sample_weight, checkpoint_dir, seed,
                        n_epochs, history)
        finally:
            self.module_.unfreeze()
            self.fine_tune_history_ = history
            self._stage = "fit"
        self.temperatures_ = {label: 1.0 for label in labels}
        return self

    # -- reference set ---------------------------------------------------------------

    def _set_reference(self, source):
        """Embed every spectrum of ``source`` as the reference set; set the novelty threshold.

        The threshold is a quantile of the distances from reference spectra
        to their nearest other reference spectrum, in the unnormalised
        embedding (`ReferenceSet.threshold`).
        """
        raw = np.concatenate([raw for _, _, raw in self._outputs(source)])
        self._adopt_reference(ReferenceSet(raw, self._training_values, self._labels,
                                           self.label_units_))
        self.novelty_threshold_ = self._reference.threshold(self.novelty_quantile,
                                                            device=self.device_)

    def _adopt_reference(self, reference):
        self._reference = reference
        self.reference_labels_ = reference.table

    @property
    def reference_embeddings_(self):
        """L2-normalised embeddings of the reference spectra, shape (n_reference, embedding_dim)."""
        return self._reference.normalized_embeddings

    # -- using the model -------------------------------------------------------------

    def _outputs(self, source):
        """Yield ``(logits, embedding, raw embedding)`` of each batch as float64 arrays.

        ``logits`` is ``{label: (b, n_bins)}``; the raw embedding is the
        embedding layer's output before the L2 normalisation of the forward
        pass (caught with a forward hook).
        """
        network = self.module_
        network.eval()
        raw = []
        hook = network.embedding.register_forward_hook(
            lambda module, args, output: raw.append(output)
        )
        try:
            with torch.no_grad():
                for _, batch in self._batches(source):
                    raw.clear()
                    out = network(*self._inputs(batch))
                    logits = {k: v.double().cpu().numpy() for k, v in out.logits.items()}
                    yield (logits, out.embedding.double().cpu().numpy(),
                           raw[0].double().cpu().numpy())
        finally:
            hook.remove()

    def _logits(self, source):
        parts = [logits for logits, _, _ in self._outputs(source)]
        return {label: np.concatenate([p[label] for p in parts]) for label in self.bin_edges_}

    def _probabilities(self, logits):
        proba = {}
        for label, values in logits.items():
            scaled = torch.from_numpy(values) / self.temperatures_[label]
            proba[label] = torch.softmax(scaled, dim=1).numpy()
        return proba

    def _edges(self, label):
        edges = np.asarray(self.bin_edges_[label], dtype=float)
        unit = self.label_units_[label]
        return edges if unit == u.dimensionless_unscaled else edges * unit

    def predict_proba(self, X):
        """Probability of each label bin.

        Parameters
        ----------
        X : array-like (n_spectra, n_pixels), `~specutils.Spectrum` or `~stellarlatent.datasets.SpectralStore`
            Spectra on the training grid.

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

        Parameters
        ----------
        X : array-like (n_spectra, n_pixels), `~specutils.Spectrum` or `~stellarlatent.datasets.SpectralStore`
            Spectra on the training grid.

        Returns
        -------
        `~astropy.table.QTable`
            One row per spectrum. For each label ``L``: ``L`` (posterior
            mean), ``L_err`` (posterior standard deviation), ``L_p16`` and
            ``L_p84`` (percentiles of the binned distribution, linear inside
            a bin), in K for Teff, dex for log g and [Fe/H] (Quantity
            columns; plain columns for dimensionless labels), and
            ``L_out_of_range`` (bool): more than ``edge_probability`` in the
            first or last bin, or an embedding farther from every training
            spectrum than ``novelty_threshold_``. Last,
            ``embedding_distance``: the distance to the nearest training
            spectrum in the unnormalised embedding (see
            ``novelty_quantile``).
        """
        check_is_fitted(self)
        columns, units, piled, raws = {}, {}, {}, []
        for logits, _, raw in self._outputs(self._check_X(X)):
            raws.append(raw.astype(np.float32))
            for label, proba in self._probabilities(logits).items():
                unit = self.label_units_[label]
                unit = None if unit == u.dimensionless_unscaled else unit
                piled.setdefault(label, []).append(
                    np.maximum(proba[:, 0], proba[:, -1]) > self.edge_probability)
                for suffix, value in zip(("", "_err", "_p16", "_p84"),
                                         binned_summaries(proba, self.bin_edges_[label])):
                    columns.setdefault(label + suffix, []).append(value)
                    units[label + suffix] = unit
                columns.setdefault(label + "_out_of_range", [])
        # One search for every spectrum: its distance buffers are allocated once.
        distance = self._reference.query(np.concatenate(raws), 1, device=self.device_)[0][:, 0]
        novel = distance > self.novelty_threshold_
        for label, parts in piled.items():
            columns[label + "_out_of_range"] = [np.concatenate(parts) | novel]
        columns["embedding_distance"] = [distance]
        table = QTable()
        for name, parts in columns.items():
            values = np.concatenate(parts)
            table[name] = values if units.get(name) is None else values * units[name]
        return table

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
        X : array-like (n_spectra, n_pixels), `~specutils.Spectrum` or `~stellarlatent.datasets.SpectralStore`
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

    def calibrate(self, X, y=None, *, method="nll", level=0.6827):
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
        columns of `predict` for the default level; see
        `stellarlatent.diagnostics.interval_coverage`). It needs a few dozen
        held-out spectra at least.

        Parameters
        ----------
        X : spectra, as in `predict`
            Spectra not used in training.
        y : `~astropy.table.Table`, dict or array-like, optional
            Their labels, as in `fit`.
        method : {"nll", "coverage"}
            What the temperature is fitted to.
        level : float
            Credible level of the intervals matched by ``method="coverage"``.

        Returns
        -------
        self
        """
        check_is_fitted(self)
        if method not in ("nll", "coverage"):
            raise ValueError(f"method must be 'nll' or 'coverage', got {method!r}")
        if not (_is_real(level) and 0 < level < 1):
            raise ValueError(f"level must be a probability in (0, 1), got {level!r}")
        labels = tuple(self.bin_edges_)
        source = self._check_X(X)
        values, _ = self._read_y(X, y, len(source), labels, units=self.label_units_)
        logits = self._logits(source)
        temperatures = {}
        for j, label in enumerate(labels):
            bins, _ = digitize(values[:, j], self.bin_edges_[label], clip=True)
            if not np.any(bins >= 0):
                log.warning("calibrate: no known value of '%s'; its temperature stays 1", label)
                temperatures[label] = 1.0
                continue
            if method == "coverage":
                temperatures[label] = coverage_temperature(
                    logits[label], self.bin_edges_[label], values[:, j], level=float(level))
                continue
            scaler = TemperatureScaler().fit(
                torch.from_numpy(logits[label]), torch.from_numpy(bins)
            )
            temperatures[label] = float(scaler.temperature[0])
        self.temperatures_ = temperatures
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
        threshold = self.novelty_threshold_
        metadata["remap"] = {
            "labels": list(self.bin_edges_),
            "bin_edges": {
                k: np.asarray(v, dtype=float).tolist() for k, v in self.bin_edges_.items()
            },
            "label_units": {k: v.to_string() for k, v in self.label_units_.items()},
            "temperatures": dict(self.temperatures_),
            "label_loc": np.asarray(self._label_loc, dtype=float).tolist(),
            "label_scale": np.asarray(self._label_scale, dtype=float).tolist(),
            "log_teff": self._log_teff,
            "contrast_window": self._contrast_window(),
            "novelty_threshold": None if not math.isfinite(threshold) else threshold,
            "fine_tune_history": self.fine_tune_history_,
        }
        return metadata

    def _tensors(self):
        return {
            "reference_embeddings": torch.from_numpy(self._reference.embeddings),
            "reference_values": torch.from_numpy(np.ascontiguousarray(self._reference.values)),
        }

    def _restore(self, metadata, tensors):
        self._restore_common(metadata)
        remap = metadata["remap"]
        self._labels = tuple(remap["labels"])
        self.bin_edges_ = {k: np.asarray(v, dtype=float) for k, v in remap["bin_edges"].items()}
        self.label_units_ = {k: u.Unit(v) for k, v in remap["label_units"].items()}
        self.temperatures_ = {k: float(v) for k, v in remap["temperatures"].items()}
        self._label_loc = np.asarray(remap["label_loc"], dtype=float)
        self._label_scale = np.asarray(remap["label_scale"], dtype=float)
        self._log_teff = bool(remap["log_teff"])
        # files before contrast_window="auto" had the window in their parameters
        window = remap.get("contrast_window", self.contrast_window)
        self.contrast_window_ = None if window is None else int(window)
        threshold = remap["novelty_threshold"]
        self.novelty_threshold_ = math.inf if threshold is None else float(threshold)
        self.fine_tune_history_ = remap["fine_tune_history"]
        self._adopt_reference(ReferenceSet(tensors["reference_embeddings"].numpy(),
                                           tensors["reference_values"].numpy(),
                                           self._labels, self.label_units_))
        label_bins = {label: len(edges) - 1 for label, edges in self.bin_edges_.items()}
        if tuple(self.bin_edges_) != self._labels or set(self.label_units_) != set(self._labels):
            raise ValueError(f"the bins ({list(self.bin_edges_)}) and units "
                             f"({list(self.label_units_)}) do not cover the labels {list(self._labels)}")
        widths = self.bin_width or {}
        for label, n in _per_label(self.n_bins, self._labels, "n_bins", _DEFAULT_N_BINS).items():
            if label not in widths and n != "auto" and int(n) != label_bins[label]:
                raise ValueError(
                    f"its parameters say n_bins={n} for '{label}' but its bin edges make "
                    f"{label_bins[label]} bins"
                )
        self.module_ = self._build_module(self.n_features_in_, label_bins)
