"""Mask spectral regions and invalid pixels."""

import astropy.units as u
import numpy as np
from specutils import SpectralRegion

from .._batch import unknown_ivar_rows
from .._params import Converted
from ._base import SpectrumTransformer
from ._docs import fill_doc

__all__ = ["Masker"]

#: What `region_bounds` accepts, in words.
REGIONS = "a SpectralRegion or a list of (low, high) Quantity pairs"


def region_bounds(regions, name="regions"):
    """Return spectral regions as a list of ``(low, high)`` Quantity pairs.

    Parameters
    ----------
    regions : `~specutils.SpectralRegion`, a ``(low, high)`` pair of Quantity, or a list of them
        ``None`` gives an empty list.
    name : str, default="regions"
        Name of the argument, used in error messages.

    Returns
    -------
    list of tuple of `~astropy.units.Quantity`
    """
    if regions is None:
        return []
    if isinstance(regions, SpectralRegion):
        return [(u.Quantity(lo), u.Quantity(hi)) for lo, hi in regions.subregions]
    if isinstance(regions, u.Quantity):
        if regions.ndim == 1 and regions.size == 2:
            regions = [regions]
        elif regions.ndim == 2 and regions.shape[1] == 2:
            regions = list(regions)
        else:
            raise ValueError(
                f"{name} as a Quantity must have shape (2,) or (n, 2), got {regions.shape}"
            )
    elif (
        isinstance(regions, (tuple, list))
        and len(regions) == 2
        and all(isinstance(v, u.Quantity) and v.ndim == 0 for v in regions)
    ):
        regions = [regions]
    try:
        pairs = list(regions)
    except TypeError:
        raise TypeError(
            f"{name} must be a specutils.SpectralRegion or a list of (low, high) "
            f"Quantity pairs, got {type(regions).__name__}"
        ) from None
    bounds = []
    for i, pair in enumerate(pairs):
        try:
            lo, hi = pair
        except (TypeError, ValueError):
            raise TypeError(
                f"{name}[{i}] must be a (low, high) pair of Quantity, got {pair!r}"
            ) from None
        for value in (lo, hi):
            if not isinstance(value, u.Quantity) or value.ndim != 0:
                raise TypeError(
                    f"{name}[{i}] must be a (low, high) pair of scalar Quantity with "
                    f"spectral units, got {pair!r}"
                )
            if not value.unit.is_equivalent(u.AA, equivalencies=u.spectral()):
                raise u.UnitsError(
                    f"{name}[{i}] must have spectral units, got '{value.unit}'"
                )
        bounds.append((lo, hi))
    return bounds


def region_mask(spectral_axis, bounds):
    """Boolean array, True for pixel centres inside any of the closed ``bounds``."""
    inside = np.zeros(spectral_axis.shape, dtype=bool)
    for lo, hi in bounds:
        a = lo.to_value(spectral_axis.unit, equivalencies=u.spectral())
        b = hi.to_value(spectral_axis.unit, equivalencies=u.spectral())
        a, b = min(a, b), max(a, b)
        inside |= (spectral_axis.value >= a) & (spectral_axis.value <= b)
    return inside


@fill_doc
class Masker(SpectrumTransformer):
    """Mask spectral regions (telluric bands, CCD gaps) and invalid pixels.

    Masked pixels keep their flux values; only the mask changes (``True`` marks
    a bad pixel) and their inverse variance is set to zero.

    Parameters
    ----------
    regions : `~specutils.SpectralRegion` or list of (low, high) Quantity pairs, default=None
        Closed intervals to mask, in any spectral unit (converted to the unit
        of each spectrum's axis); None masks no region.
    mask_nonfinite : bool, default=True
        Mask pixels whose flux is NaN or infinite.
    mask_nonpositive_uncertainty : bool, default=True
        Mask pixels whose inverse variance is not positive and finite.
    mask_nonpositive_flux : bool, default=False
        Also mask pixels whose flux is zero or negative (for example the
        zero-valued end pixels of some MILES spectra).

    Notes
    -----
    The conversion of every `~specutils.Spectrum` into a batch already masks
    non-finite flux and non-positive inverse variance (see
    `stellarlatent._batch`), so setting ``mask_nonfinite`` or
    ``mask_nonpositive_uncertainty`` to False does not unmask those pixels;
    the options state the behaviour explicitly in a pipeline.

    Examples
    --------
    %(example_imports)s
    >>> from stellarlatent.preprocessing import Masker
    >>> spectrum = Spectrum(flux=np.ones(6) * u.one,
    ...                     spectral_axis=np.arange(5300, 5360, 10.0) * u.AA)
    >>> Masker(regions=[(5303.6 * u.AA, 5338.0 * u.AA)]).transform(spectrum).mask
    array([[False,  True,  True,  True, False, False]])
    """

    _parameter_constraints = {
        "regions": [None, Converted(region_bounds, REGIONS)],
        "mask_nonfinite": ["boolean"],
        "mask_nonpositive_uncertainty": ["boolean"],
        "mask_nonpositive_flux": ["boolean"],
    }

    def __init__(
        self,
        regions=None,
        mask_nonfinite=True,
        mask_nonpositive_uncertainty=True,
        mask_nonpositive_flux=False,
    ):
        self.regions = regions
        self.mask_nonfinite = mask_nonfinite
        self.mask_nonpositive_uncertainty = mask_nonpositive_uncertainty
        self.mask_nonpositive_flux = mask_nonpositive_flux

    def _transform_batch(self, batch):
        bounds = region_bounds(self.regions, "regions")
        mask = batch.mask | region_mask(batch.spectral_axis, bounds)[np.newaxis, :]
        with np.errstate(invalid="ignore"):
            if self.mask_nonfinite:
                mask |= ~np.isfinite(batch.flux)
            if self.mask_nonpositive_flux:
                mask |= ~(batch.flux > 0)
            if self.mask_nonpositive_uncertainty and batch.ivar is not None:
                # spectra stacked without an uncertainty have none to judge their pixels by
                known = ~unknown_ivar_rows(batch.ivar)[:, np.newaxis]
                mask |= ~(np.isfinite(batch.ivar) & (batch.ivar > 0)) & known
        ivar = None if batch.ivar is None else np.where(mask, 0.0, batch.ivar)
        return batch.replace(mask=mask, ivar=ivar)
