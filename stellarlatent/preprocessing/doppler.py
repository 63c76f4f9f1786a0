"""Relativistic Doppler shifts: to the rest frame, or injected for augmentation."""

import astropy.units as u
import numpy as np
from astropy.constants import c
from astropy.nddata import InverseVariance
from sklearn.utils.validation import check_is_fitted
from specutils import Spectrum

from .._batch import from_batch, iter_batches, merged_meta, row_meta, stack_ivar
from .._params import Converted
from ._base import RANDOM_STATE, SpectrumTransformer, legacy_rng
from ._docs import fill_doc

__all__ = ["DopplerShift", "doppler_factor"]

_C_KMS = c.to_value(u.km / u.s)


def doppler_factor(rv):
    """Relativistic Doppler factor ``sqrt((1 + beta) / (1 - beta))``, ``beta = rv / c``.

    Observed wavelengths are rest wavelengths times this factor; a positive
    radial velocity (receding source) gives a factor above one.

    Parameters
    ----------
    rv : `~astropy.units.Quantity`
        Radial velocities, any shape, with ``|rv| < c``.

    Returns
    -------
    ndarray
        Dimensionless factors, the shape of ``rv``.

    Examples
    --------
    >>> import astropy.units as u
    >>> from stellarlatent.preprocessing import doppler_factor
    >>> float(doppler_factor(300 * u.km / u.s))  # doctest: +FLOAT_CMP
    1.0010011683461166
    """
    beta = _velocity(rv, "rv") / _C_KMS
    if np.any(np.abs(beta) >= 1):
        raise ValueError("rv must be smaller than the speed of light in absolute value")
    return np.sqrt((1.0 + beta) / (1.0 - beta))


def _velocity(value, name, below_c=False):
    if not isinstance(value, u.Quantity):
        raise TypeError(
            f"{name} must be an astropy Quantity with velocity units, "
            f"got {type(value).__name__}"
        )
    if not value.unit.is_equivalent(u.km / u.s):
        raise u.UnitsError(f"{name} must have velocity units, got '{value.unit}'")
    values = np.asarray(value.to_value(u.km / u.s), dtype=float)
    if not np.all(np.isfinite(values)):
        raise ValueError(f"{name} must be finite")
    if below_c and np.any(np.abs(values) >= _C_KMS):
        worst = float(values.flat[np.argmax(np.abs(values))])
        raise ValueError(
            f"{name} must be smaller than the speed of light ({_C_KMS:.6g} km/s) in absolute "
            f"value, got {worst:.6g} km/s (were the values meant in m/s?)"
        )
    return values


def _check_rv(value, name):
    """A velocity Quantity, finite and slower than light (its length needs the data)."""
    _velocity(value, name, below_c=True)


def _rv_bounds(value, name):
    """The (low, high) bounds in km/s of a velocity range, checked."""
    try:
        bounds = _velocity(u.Quantity(value), name, below_c=True)
    except TypeError:
        raise TypeError(f"{name} must be a (low, high) velocity Quantity, got {value!r}") from None
    if bounds.shape != (2,) or not bounds[0] <= bounds[1]:
        raise ValueError(
            f"{name} must be a (low, high) velocity Quantity with low <= high, got {value!r}"
        )
    return bounds


def _shift_axis(axis, factor):
    """Multiply wavelengths by ``factor`` (frequencies, energies, wavenumbers divide)."""
    if axis.unit.is_equivalent(u.AA):
        return axis * factor
    return axis / factor


@fill_doc
class DopplerShift(SpectrumTransformer):
    """Shift spectra to their rest frame, or inject radial velocities.

    The spectral axis is scaled by the exact relativistic Doppler factor
    `doppler_factor`; fluxes are not changed (pixels keep their values and
    only move).

    Parameters
    ----------
    rv : `~astropy.units.Quantity`, default=None
        Radial velocity: a scalar, or one value per spectrum. Without
        ``inject``, the spectra are shifted to the rest frame
        (wavelengths divided by the Doppler factor); ``None`` uses each
        input Spectrum's ``radial_velocity``. With ``inject``, the given
        velocities are applied (wavelengths multiplied by the factor).
    inject : bool, default=False
        Inject radial velocities (augmentation) instead of removing them.
    rv_range : (low, high) `~astropy.units.Quantity`, default=None
        With ``inject=True`` and ``rv=None``: one velocity per spectrum is
        drawn uniformly from this range; None is ``(-300, 300) km/s``. Both
        bounds must be finite, ``low <= high``, and smaller than the speed of
        light in absolute value (checked before drawing, so the answer does
        not depend on ``random_state``). Giving both ``rv`` and ``rv_range``
        is an error.
    random_state : int, `~numpy.random.RandomState`, `~numpy.random.Generator` or None, default=None
        Seed of the drawn velocities; an int draws the same velocities at
        every call.

    Attributes
    ----------
    rv_applied_ : `~astropy.units.Quantity`
        Velocity shifts applied by the last call of ``transform``, one per
        spectrum: output wavelengths are input wavelengths times
        ``doppler_factor(rv_applied_)``. Injected velocities are positive for a
        redshift; a shift to the rest frame applies minus the radial velocity.

    Notes
    -----
    Shifting changes the spectral axis. When every spectrum moves by the same
    factor and the input shares one grid, the output is one batch. Otherwise
    the spectra end on different grids and the output is a list of 1-D
    `~specutils.Spectrum` (one per input spectrum, in order); put them back on
    one grid with `~stellarlatent.preprocessing.Resampler`, which accepts such
    lists and resamples them flux-conservingly, for example
    ``make_pipeline(DopplerShift(inject=True), Resampler(grid))``. The applied
    velocities (as ``rv_applied_``) are also stored in ``meta["rv"]`` of the
    output spectra; an int ``random_state`` makes the injected velocities
    reproducible when a later step drops the metadata.

    Examples
    --------
    %(example_imports)s
    >>> from stellarlatent.preprocessing import DopplerShift
    >>> spectrum = Spectrum(flux=np.ones(3) * u.one,
    ...                     spectral_axis=[5000.0, 5001.0, 5002.0] * u.AA)
    >>> rest = DopplerShift(rv=30 * u.km / u.s).transform(spectrum)
    >>> rest.spectral_axis.round(3)
    <SpectralAxis [4999.5  , 5000.5  , 5001.499] Angstrom>
    >>> shifted = DopplerShift(inject=True, random_state=0).transform([spectrum, spectrum])
    >>> len(shifted), shifted[0].meta["rv"].round(1)
    (2, <Quantity 29.3 km / s>)
    >>> rest.meta["rv"]
    <Quantity [-30.] km / s>
    """

    _parameter_constraints = {
        "rv": [None, Converted(_check_rv, "a velocity Quantity: a scalar or one value per "
                                          "spectrum, slower than light")],
        "inject": ["boolean"],
        "rv_range": [None, Converted(_rv_bounds, "a (low, high) velocity Quantity with "
                                                 "low <= high, slower than light")],
        "random_state": RANDOM_STATE,
    }

    def __init__(self, rv=None, inject=False, rv_range=None, random_state=None):
        self.rv = rv
        self.inject = inject
        self.rv_range = rv_range
        self.random_state = random_state

    def _check_params(self):
        super()._check_params()
        if self.rv is not None and self.rv_range is not None:
            raise ValueError(
                "give rv or rv_range, not both: rv_range draws the velocities that rv "
                f"would give (got rv={self.rv!r}, rv_range={self.rv_range!r})"
            )
        if self.rv_range is not None and not self.inject:
            raise ValueError("rv_range is used only with inject=True")

    def _velocities(self, batches, spectra):
        n_total = sum(b.n_spectra for b in batches)
        if self.rv is not None:
            rv = _velocity(self.rv, "rv", below_c=True)
            if rv.ndim == 0:
                return np.full(n_total, float(rv))
            if rv.shape != (n_total,):
                raise ValueError(
                    f"rv must be a scalar or have one value per spectrum ({n_total}), "
                    f"got shape {rv.shape}"
                )
            return rv
        if self.inject:
            rv_range = (-300, 300) * u.km / u.s if self.rv_range is None else self.rv_range
            bounds = _rv_bounds(rv_range, "rv_range")
            rng = legacy_rng(self.random_state)
            return rng.uniform(bounds[0], bounds[1], size=n_total)
        items = [spectra] if isinstance(spectra, Spectrum) else list(spectra)
        return np.concatenate(
            [
                np.full(
                    b.n_spectra,
                    float(
                        _velocity(
                            s.radial_velocity,
                            "spectra.radial_velocity"
                            if len(items) == 1
                            else f"spectra[{i}].radial_velocity",
                            below_c=True,
                        )
                    ),
                )
                for i, (s, b) in enumerate(zip(items, batches))
            ]
        )

    def transform(self, spectra):
        """Shift the spectra.

        Parameters
        ----------
        spectra : `~specutils.Spectrum` or list of `~specutils.Spectrum`
            One spectrum, a batch, or a list of spectra on any grids.

        Returns
        -------
        `~specutils.Spectrum` or list of `~specutils.Spectrum`
            One batch when all output spectra share a grid, else a list of
            1-D spectra (see Notes).
        """
        check_is_fitted(self)
        self._check_params()
        batches = iter_batches(spectra, "spectra")
        velocities = self._velocities(batches, spectra)
        applied = velocities if self.inject else -velocities
        self.rv_applied_ = applied * (u.km / u.s)
        factors = doppler_factor(self.rv_applied_)
        first = batches[0]
        if np.all(factors == factors[0]) and all(
            b.spectral_axis.unit == first.spectral_axis.unit
            and np.array_equal(b.spectral_axis.value, first.spectral_axis.value)
            and b.flux_unit == first.flux_unit
            for b in batches[1:]
        ):
            merged = first.replace(
                flux=np.concatenate([b.flux for b in batches]),
                ivar=stack_ivar(batches),
                mask=np.concatenate([b.mask for b in batches]),
                spectral_axis=_shift_axis(first.spectral_axis, factors[0]),
                meta=dict(merged_meta(batches), rv=self.rv_applied_),
            )
            return from_batch(merged)
        out = []
        row = 0
        for batch in batches:
            for k in range(batch.n_spectra):
                uncertainty = None
                if batch.ivar is not None:
                    uncertainty = InverseVariance(batch.ivar[k], unit=batch.flux_unit**-2)
                out.append(
                    Spectrum(
                        flux=batch.flux[k] * batch.flux_unit,
                        spectral_axis=_shift_axis(batch.spectral_axis, factors[row]),
                        uncertainty=uncertainty,
                        mask=batch.mask[k].copy(),
                        meta=dict(row_meta(batch.meta, batch.n_spectra, k),
                                  rv=self.rv_applied_[row]),
                    )
                )
                row += 1
        return out
