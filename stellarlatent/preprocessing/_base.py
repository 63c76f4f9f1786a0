"""Shared behaviour of the Spectrum-in, Spectrum-out transformers."""

from numbers import Integral

import astropy.units as u
import numpy as np
from sklearn.base import BaseEstimator, TransformerMixin
from sklearn.utils import check_random_state, metadata_routing
from sklearn.utils.validation import check_is_fitted

from .._batch import from_batch, iter_batches, to_batch
from .._params import Interval, validate_params
from ._docs import fill_doc

__all__ = ["SpectrumTransformer", "RANDOM_STATE", "GENERATOR_RANDOM_STATE", "legacy_rng",
           "generator_rng"]

#: None, a seed, a RandomState or a Generator: every random transformer takes each (a seed
#: of a Generator-based one may exceed the 2**32 - 1 of `legacy_rng`: see `generator_rng`)
RANDOM_STATE = [None, Interval(Integral, 0, 2**32 - 1, closed="both"), np.random.RandomState,
                np.random.Generator]
GENERATOR_RANDOM_STATE = [None, Interval(Integral, 0, None, closed="left"),
                          np.random.RandomState, np.random.Generator]


def legacy_rng(random_state):
    """A `numpy.random.RandomState` for ``random_state`` (a Generator seeds a new one).

    Examples
    --------
    >>> legacy_rng(0).randint(100) == legacy_rng(0).randint(100)
    True
    >>> isinstance(legacy_rng(np.random.default_rng(0)), np.random.RandomState)
    True
    """
    if isinstance(random_state, np.random.Generator):
        return np.random.RandomState(int(random_state.integers(2**32)))
    return check_random_state(random_state)


def generator_rng(random_state):
    """A `numpy.random.Generator` for ``random_state`` (a RandomState seeds a new one).

    Examples
    --------
    >>> isinstance(generator_rng(np.random.RandomState(0)), np.random.Generator)
    True
    """
    if isinstance(random_state, np.random.RandomState):
        return np.random.default_rng(int(random_state.randint(2**32, dtype=np.int64)))
    return np.random.default_rng(random_state)


class _PickledSpectrum(dict):
    """The parts of a `~specutils.Spectrum` that pickle (see `SpectrumTransformer.__getstate__`)."""


def _picklable(value):
    from specutils import Spectrum

    if isinstance(value, Spectrum):
        uncertainty = value.uncertainty
        # an uncertainty refers to its parent Spectrum: it travels as its class and numbers
        if uncertainty is not None:
            uncertainty = (type(uncertainty), np.asarray(uncertainty.array), uncertainty.unit)
        return _PickledSpectrum(
            flux=u.Quantity(value.flux), spectral_axis=u.Quantity(value.spectral_axis),
            uncertainty=uncertainty,
            mask=value.mask, meta=_picklable_meta(value.meta), redshift=value.redshift,
            spectral_axis_index=getattr(value, "spectral_axis_index", value.flux.ndim - 1))
    if isinstance(value, (list, tuple)):
        return type(value)(_picklable(v) for v in value)
    return value


def _picklable_meta(meta):
    """``meta`` without what cannot pickle: a slice of a Spectrum keeps its WCS there
    (``original_wcs``), made on the fly like the Spectrum's own."""
    import pickle

    kept = {}
    for key, value in (meta or {}).items():
        try:
            pickle.dumps(value)
        except Exception:  # noqa: BLE001 - unpicklable objects raise many types
            continue
        kept[key] = value
    return kept


def _unpickled(value):
    from specutils import Spectrum

    if isinstance(value, _PickledSpectrum):
        parts = dict(value)
        if parts["uncertainty"] is not None:
            kind, array, unit = parts["uncertainty"]
            parts["uncertainty"] = kind(array, unit=unit)
        return Spectrum(**parts)
    if isinstance(value, (list, tuple)):
        return type(value)(_unpickled(v) for v in value)
    return value


@fill_doc
class SpectrumTransformer(TransformerMixin, BaseEstimator):
    """Base class for transformers that take and return `~specutils.Spectrum`.

    Subclasses implement ``_transform_batch(batch) -> SpectraBatch`` for spectra
    that share one grid. ``fit`` learns nothing unless a subclass overrides it,
    but it validates the input and returns ``self`` so that every transformer
    composes with `sklearn.pipeline.make_pipeline`. A transformer with nothing
    to learn counts as fitted from the start, so ``transform`` works without
    ``fit``; subclasses that learn name in ``_fitted_attribute`` the
    attribute that ``fit`` sets, and then need ``fit`` before ``transform``.

    Each subclass declares its parameters in ``_parameter_constraints`` (see
    `stellarlatent._params`); `_check_params` checks them at the start of
    ``fit`` and ``transform``, and subclasses extend it with the checks that
    relate several parameters. Only checks that need the data (one value
    per spectrum, a width against the grid) are made later.
    """

    _parameter_constraints = {}
    #: the attribute ``fit`` sets in a subclass that learns; None: nothing to learn
    _fitted_attribute = None

    # ``spectra`` is the data, not metadata to route
    __metadata_request__fit = {"spectra": metadata_routing.UNUSED}
    __metadata_request__transform = {"spectra": metadata_routing.UNUSED}

    def __getstate__(self):
        # specutils makes the WCS class of a Spectrum on the fly, so pickle cannot find
        # it: a Spectrum held (a template, fitted or given) travels as its parts
        return {key: _picklable(value) for key, value in super().__getstate__().items()}

    def __setstate__(self, state):
        super().__setstate__({key: _unpickled(value) for key, value in state.items()})

    def fit(self, spectra, y=None):
        """Validate ``spectra``; nothing is learned.

        %(fit_sections)s
        """
        self._check_params()
        iter_batches(spectra, "spectra")
        return self

    def _check_params(self):
        """Check every parameter against its declared constraints.

        Subclasses extend it with the checks that relate several parameters.

        Raises
        ------
        `~stellarlatent._params.InvalidParameterError`
            A ValueError and TypeError naming the parameter, or the specific
            error of a `~stellarlatent._params.Converted` constraint.
        """
        validate_params(self)

    def __sklearn_is_fitted__(self):
        return self._fitted_attribute is None or hasattr(self, self._fitted_attribute)

    def transform(self, spectra):
        """Apply the transformation to spectra that share one grid.

        Parameters
        ----------
        spectra : `~specutils.Spectrum` or list of `~specutils.Spectrum`
            One spectrum, a batch (2-D flux, spectral axis last), or a list of
            spectra on one grid.

        Returns
        -------
        `~specutils.Spectrum`
            A batch: flux of shape ``(n_spectra, n_pixels)``.
        """
        check_is_fitted(self)
        self._check_params()
        return from_batch(self._transform_batch(to_batch(spectra, "spectra")))

    def _transform_each_grid(self, spectra):
        """`_transform_batch` of each grid's batch: one Spectrum, or a list of one per grid
        (for transformers that run before the `Resampler` and take spectra on any grids)."""
        check_is_fitted(self)
        self._check_params()
        out = [from_batch(self._transform_batch(b)) for b in iter_batches(spectra, "spectra")]
        return out[0] if len(out) == 1 else out

    def _transform_batch(self, batch):  # pragma: no cover - abstract
        raise NotImplementedError

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.requires_fit = self._fitted_attribute is not None
        tags.input_tags.two_d_array = False
        tags.input_tags.one_d_array = False
        return tags
