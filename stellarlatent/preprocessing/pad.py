"""Pad spectra to a fixed length, for networks that halve the length repeatedly."""

from numbers import Integral

import numpy as np

from .._params import Interval, Options, Predicate, is_number
from ._base import SpectrumTransformer
from ._docs import fill_doc
from .grid import check_n_pixels

__all__ = ["Padder"]

_SIDES = ("right", "left", "both")


def grid_kind(values, rtol=1e-6):
    """Return ``"log"``, ``"linear"`` or ``"irregular"`` for increasing ``values``."""
    values = np.asarray(values, dtype=float)
    if values.size < 3:
        return "linear"
    step = np.diff(values)
    linear_spread = np.ptp(step) / np.abs(step).mean()
    if values[0] > 0:
        log_step = np.diff(np.log(values))
        log_spread = np.ptp(log_step) / np.abs(log_step).mean()
        if log_spread <= rtol and log_spread < linear_spread:
            return "log"
    if linear_spread <= rtol:
        return "linear"
    return "irregular"


def extend_axis(values, n_left, n_right):
    """Extend increasing pixel centres by ``n_left`` and ``n_right`` pixels.

    Log-uniform grids continue with their constant ratio, linear grids with
    their constant step, and other grids with the step of their end pixels.
    """
    values = np.asarray(values, dtype=float)
    kind = grid_kind(values)
    left = np.arange(-n_left, 0, dtype=float)
    right = np.arange(1, n_right + 1, dtype=float)
    if kind == "log":
        ratio = np.exp((np.log(values[-1]) - np.log(values[0])) / (values.size - 1))
        return np.concatenate(
            [values[0] * ratio**left, values, values[-1] * ratio**right]
        )
    if kind == "linear":
        step = (values[-1] - values[0]) / (values.size - 1)
        return np.concatenate([values[0] + step * left, values, values[-1] + step * right])
    return np.concatenate(
        [
            values[0] + (values[1] - values[0]) * left,
            values,
            values[-1] + (values[-1] - values[-2]) * right,
        ]
    )


@fill_doc
class Padder(SpectrumTransformer):
    """Pad spectra to a fixed length; the padding is masked.

    The convolutional autoencoder of Sedaghat et al. (2021) halves the length
    of its input many times, so its HARPS spectra of 312,501 pixels were padded
    to 327,680 = 5 * 2**16 pixels: ``Padder(multiple_of=2**16)``.

    Parameters
    ----------
    length : int, default=None
        Length of the padded spectra; must not be shorter than the input.
    multiple_of : int, default=None
        Pad to the smallest multiple of this number (a positive integer) that
        is at least the input length. Give exactly one of ``length`` and
        ``multiple_of``.
    value : float, default=0.0
        Flux of the padded pixels.
    side : {"right", "left", "both"}, default="right"
        Where to add pixels; ``"both"`` puts the odd pixel on the right.

    Notes
    -----
    The spectral axis is extended with the grid's own step: log-uniform grids
    keep their constant ratio, linear grids their constant step, and other
    grids continue with the step of their end pixels. Padded pixels are masked
    and have zero inverse variance.

    Padded lengths above `~stellarlatent.preprocessing.grid.MAX_PIXELS`
    (2**27 pixels) are refused before anything is allocated, and so is
    padding on the left that would extend the spectral axis to zero or
    negative coordinates (a linear grid padded by more than its start).

    Examples
    --------
    %(example_imports)s
    >>> from stellarlatent.preprocessing import Padder
    >>> spectrum = Spectrum(flux=np.ones(5) * u.one,
    ...                     spectral_axis=np.arange(5000.0, 5005.0) * u.AA)
    >>> padded = Padder(multiple_of=4).transform(spectrum)
    >>> padded.flux.shape
    (1, 8)
    >>> padded.spectral_axis[-3:]
    <SpectralAxis [5005., 5006., 5007.] Angstrom>
    >>> padded.mask
    array([[False, False, False, False, False,  True,  True,  True]])
    """

    _parameter_constraints = {
        "length": [Interval(Integral, 1, None, closed="left"), None],
        "multiple_of": [Interval(Integral, 1, None, closed="left"), None],
        "value": [Predicate(is_number, "a real number")],
        "side": [Options(*_SIDES)],
    }

    def __init__(self, length=None, multiple_of=None, value=0.0, side="right"):
        self.length = length
        self.multiple_of = multiple_of
        self.value = value
        self.side = side

    def _check_params(self):
        super()._check_params()
        if (self.length is None) == (self.multiple_of is None):
            raise ValueError(
                "give exactly one of length and multiple_of, got "
                f"length={self.length!r} and multiple_of={self.multiple_of!r}"
            )

    def _target_length(self, n_pixels):
        name = "length" if self.length is not None else "multiple_of"
        value = getattr(self, name)
        if self.length is not None:
            if self.length < n_pixels:
                raise ValueError(
                    f"length={self.length} is shorter than the spectra ({n_pixels} pixels); "
                    "Padder only adds pixels (trim with a Resampler first)"
                )
            target = int(self.length)
        else:
            target = -(-n_pixels // int(self.multiple_of)) * int(self.multiple_of)
        return check_n_pixels(target, name, f"spectra padded with {name}={value}")

    def _transform_batch(self, batch):
        n_pad = self._target_length(batch.n_pixels) - batch.n_pixels
        n_left = {"right": 0, "left": n_pad, "both": n_pad // 2}[self.side]
        n_right = n_pad - n_left
        widths = ((0, 0), (n_left, n_right))
        axis = extend_axis(batch.spectral_axis.value, n_left, n_right)
        if not axis[0] > 0:
            raise ValueError(
                f"side={self.side!r}: padding {n_left} pixels on the left extends the "
                f"spectral axis to {axis[0]:.6g} {batch.spectral_axis.unit}, which is not "
                "positive; pad on the right (side='right') or pad fewer pixels"
            )
        return batch.replace(
            flux=np.pad(batch.flux, widths, constant_values=float(self.value)),
            ivar=None if batch.ivar is None else np.pad(batch.ivar, widths),
            mask=np.pad(batch.mask, widths, constant_values=True),
            spectral_axis=axis * batch.spectral_axis.unit,
        )
