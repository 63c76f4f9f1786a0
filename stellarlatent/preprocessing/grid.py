"""Spectral grids: the common axis every spectrum of a batch is put on."""

import numbers

import astropy.constants as const
import astropy.units as u
import numpy as np

from .._batch import check_spectral_axis
from ._docs import fill_doc

__all__ = ["SpectralGrid", "bin_edges", "MAX_PIXELS", "check_n_pixels"]

_C_KMS = const.c.to_value(u.km / u.s)

MAX_PIXELS = 2**27
"""Largest number of pixels of a grid that stellarlatent builds: 134,217,728.

That is 85 times the 1.57 million pixels of a full PHOENIX HiRes spectrum,
and 1 GiB for the axis alone in float64 (more again for each spectrum on it).
Grids, padding and kernels that would need more are refused before anything
is allocated. Such sizes come from a wrong unit or a typo (a velocity step in
m/s given as km/s, a resolution of 1e-6), not from a real spectrograph.
"""


def _format_bytes(n_bytes):
    """``n_bytes`` with an SI prefix, for example ``2.9 PB``."""
    for unit in ("kB", "MB", "GB", "TB", "PB"):
        n_bytes /= 1000
        if n_bytes < 1000:
            return f"{n_bytes:.2g} {unit}"
    return f"{n_bytes / 1000:.2g} EB"


def check_n_pixels(n, name, what="the grid"):
    """Refuse a number of pixels above `MAX_PIXELS`, with the figure it would need.

    Parameters
    ----------
    n : int or float
        The number of pixels asked for (a float for counts too large for an
        int, or infinite).
    name : str
        The argument the count comes from, used in the message.
    what : str
        What would have that many pixels, used in the message.

    Returns
    -------
    int
        ``n``, when it is at most `MAX_PIXELS`.
    """
    if not n <= MAX_PIXELS:
        size = "an infinite number of" if not np.isfinite(n) else f"{float(n):.2g}"
        memory = "" if not np.isfinite(n) else f" ({_format_bytes(8.0 * n)} in float64)"
        raise ValueError(
            f"{name}: {what} would need {size} pixels{memory}; expected at most "
            f"{MAX_PIXELS:,} (2**27) pixels (stellarlatent.preprocessing.grid.MAX_PIXELS)"
        )
    return int(n)


def bin_edges(centers):
    """Pixel edges from pixel centres, as specutils defines them.

    Interior edges are midpoints between neighbouring centres; the two outer
    edges extrapolate the first and last steps. This is the convention of
    `specutils.SpectralAxis.bin_edges`, which flux-conserving resampling
    relies on.

    Parameters
    ----------
    centers : ndarray, shape (n,)

    Returns
    -------
    ndarray, shape (n + 1,)

    Examples
    --------
    >>> bin_edges(np.array([1.0, 2.0, 4.0]))
    array([0.5, 1.5, 3. , 5. ])
    """
    centers = np.asarray(centers, dtype=float)
    a = np.insert(centers, 0, 2 * centers[0] - centers[1])
    b = np.append(centers, 2 * centers[-1] - centers[-2])
    return (a + b) / 2


def _as_quantity(value, unit, name):
    if isinstance(value, u.Quantity):
        if not value.unit.is_equivalent(u.AA, equivalencies=u.spectral()):
            raise u.UnitsError(f"{name} must have spectral units, got '{value.unit}'")
        return value
    if unit is None:
        raise TypeError(
            f"{name} must be an astropy Quantity (for example 4000 * u.AA), or give unit="
        )
    return u.Quantity(value, unit)


@fill_doc
class SpectralGrid:
    """A strictly increasing spectral axis that spectra are resampled onto.

    Build one with `log_uniform` (constant step in log wavelength, that is a
    constant velocity step, the natural grid for convolutional networks and
    Doppler shifts), `linear` or `from_velocity_step`, or wrap any increasing
    `~astropy.units.Quantity`.

    Parameters
    ----------
    spectral_axis : `~astropy.units.Quantity`
        Pixel centres in any spectral unit; decreasing values are reversed.
    kind : {"custom", "log_uniform", "linear"}, default="custom"
        How the grid was built; informational.

    Notes
    -----
    The constructors refuse grids of more than `MAX_PIXELS` (2**27) pixels
    before allocating them, with the number of pixels and the memory they
    would need.

    Examples
    --------
    >>> import astropy.units as u
    >>> grid = SpectralGrid.log_uniform(4000 * u.AA, 7000 * u.AA, 4096)
    >>> len(grid), grid.kind
    (4096, 'log_uniform')
    >>> grid.velocity_step  # doctest: +FLOAT_CMP
    <Quantity 40.96901843 km / s>
    """

    def __init__(self, spectral_axis, kind="custom"):
        axis, _ = check_spectral_axis(spectral_axis, "spectral_axis")
        self.spectral_axis = axis
        self.kind = kind

    @classmethod
    def log_uniform(cls, start, stop, n, *, unit=None):
        """A grid with a constant step in the logarithm of the spectral coordinate.

        Parameters
        ----------
        %(spaced_parameters)s

        Examples
        --------
        >>> import astropy.units as u
        >>> SpectralGrid.log_uniform(
        ...     4000 * u.AA, 4010 * u.AA, 3).spectral_axis  # doctest: +FLOAT_CMP
        <Quantity [4000.        , 4004.99687695, 4010.        ] Angstrom>
        """
        return cls._spaced(np.geomspace, start, stop, n, unit, "log_uniform")

    @classmethod
    def linear(cls, start, stop, n, *, unit=None):
        """A grid with a constant step in the spectral coordinate.

        Parameters
        ----------
        %(spaced_parameters)s

        Examples
        --------
        >>> import astropy.units as u
        >>> SpectralGrid.linear(3540.5 * u.AA, 3542.3 * u.AA, 3).spectral_axis
        <Quantity [3540.5, 3541.4, 3542.3] Angstrom>
        """
        return cls._spaced(np.linspace, start, stop, n, unit, "linear")

    @classmethod
    def _spaced(cls, space, start, stop, n, unit, kind):
        """The grid of ``space(start, stop, n)`` (`numpy.geomspace`, `numpy.linspace`)."""
        start, stop, n = cls._check_range(start, stop, n, unit)
        values = space(start.value, stop.to_value(start.unit), n)
        return cls(values * start.unit, kind=kind)

    @classmethod
    def from_velocity_step(cls, start, stop, step, *, unit=None):
        """A log-uniform grid whose neighbouring pixels differ by ``step`` in velocity.

        Pixel ``i`` sits at ``start * exp(i * step / c)``; the grid ends at the
        last pixel not beyond ``stop``.

        Parameters
        ----------
        start, stop : `~astropy.units.Quantity`
            Spectral range in a wavelength unit.
        step : `~astropy.units.Quantity`
            Velocity step per pixel, for example ``2 * u.km / u.s``.
        unit : `~astropy.units.UnitBase`, default=None
            Unit of ``start`` and ``stop`` when they are plain numbers.

        Examples
        --------
        >>> import astropy.units as u
        >>> grid = SpectralGrid.from_velocity_step(5000 * u.AA, 5001 * u.AA, 10 * u.km / u.s)
        >>> len(grid)
        6
        """
        start = _as_quantity(start, unit, "start")
        stop = _as_quantity(stop, unit, "stop")
        if not isinstance(step, u.Quantity) or not step.unit.is_equivalent(u.km / u.s):
            raise u.UnitsError(
                f"step must be a velocity Quantity (for example 2 * u.km / u.s), got {step!r}"
            )
        if step.ndim != 0:
            raise ValueError(f"step must be a scalar velocity, got shape {step.shape}")
        for name, value in (("start", start), ("stop", stop)):
            if not value.unit.is_equivalent(u.AA):
                raise u.UnitsError(
                    f"{name} must be a wavelength for a velocity-step grid, got '{value.unit}'"
                )
            if np.ndim(value) != 0:
                raise ValueError(f"{name} must be a scalar wavelength, got shape {value.shape}")
        if not (np.isfinite(start.value) and start.value > 0):
            raise ValueError(f"start must be positive and finite, got {start}")
        if not np.isfinite(stop.value):
            raise ValueError(f"stop must be finite, got {stop}")
        dlog = step.to_value(u.km / u.s) / _C_KMS
        if not dlog > 0:
            raise ValueError(f"step must be positive, got {step}")
        ratio = np.log(stop.to_value(start.unit) / start.value) if stop.value > 0 else -1.0
        if not ratio > 0:
            raise ValueError(f"stop must be greater than start, got start={start}, stop={stop}")
        with np.errstate(over="ignore"):
            n = np.floor(ratio / dlog * (1 + 1e-12)) + 1
        n = check_n_pixels(n, "step", f"a grid from {start} to {stop} in steps of {step}")
        if n < 2:
            raise ValueError(f"step {step} is larger than the range from {start} to {stop}")
        values = start.value * np.exp(dlog * np.arange(n))
        return cls(values * start.unit, kind="log_uniform")

    @staticmethod
    def _check_range(start, stop, n, unit):
        start = _as_quantity(start, unit, "start")
        stop = _as_quantity(stop, unit, "stop").to(start.unit, equivalencies=u.spectral())
        if (
            isinstance(n, (bool, np.bool_))
            or not isinstance(n, numbers.Real)
            or not np.isfinite(n)
            or n != np.floor(n)
            or n < 2
        ):
            raise ValueError(f"n must be an integer of at least 2, got {n!r}")
        n = SpectralGrid._check_size(n, "n")
        if not (np.isfinite(start.value) and np.isfinite(stop.value)) or start.value <= 0:
            raise ValueError(f"start must be positive and finite, got {start}")
        if not stop.value > start.value:
            raise ValueError(f"stop must be greater than start, got start={start}, stop={stop}")
        return start, stop, n

    @staticmethod
    def _check_size(n, name):
        return check_n_pixels(n, name)

    @property
    def unit(self):
        """The unit of the spectral axis."""
        return self.spectral_axis.unit

    @property
    def edges(self):
        """Pixel edges (`bin_edges` of the centres), a Quantity of length ``n + 1``."""
        return bin_edges(self.spectral_axis.value) * self.unit

    @property
    def velocity_step(self):
        """Velocity step per pixel of a log-uniform wavelength grid, else ``None``."""
        if self.kind != "log_uniform":
            return None
        values = self.spectral_axis.value
        return (np.log(values[-1] / values[0]) / (len(values) - 1)) * _C_KMS * u.km / u.s

    def to_dict(self):
        """A JSON-serialisable description that `from_dict` restores exactly."""
        return {
            "kind": self.kind,
            "unit": self.unit.to_string(),
            "values": self.spectral_axis.value.tolist(),
        }

    @classmethod
    def from_dict(cls, data):
        """Rebuild a grid written by `to_dict`."""
        try:
            return cls(np.asarray(data["values"], float) * u.Unit(data["unit"]), kind=data["kind"])
        except (KeyError, TypeError) as exc:
            raise ValueError(f"not a SpectralGrid description: {exc}") from exc

    def __len__(self):
        return self.spectral_axis.size

    def __eq__(self, other):
        if not isinstance(other, SpectralGrid):
            return NotImplemented
        return len(self) == len(other) and np.array_equal(
            self.spectral_axis.value,
            other.spectral_axis.to_value(self.unit, equivalencies=u.spectral()),
        )

    __hash__ = None

    def __repr__(self):
        axis = self.spectral_axis
        return (
            f"<SpectralGrid {self.kind}: {len(self)} pixels from {axis[0]:.6g} to {axis[-1]:.6g}>"
        )

    @classmethod
    def coerce(cls, grid, name="grid"):
        """Return ``grid`` as a `SpectralGrid` (it may already be one, or a Quantity)."""
        if isinstance(grid, cls):
            return grid
        if isinstance(grid, u.Quantity):
            return cls(u.Quantity(grid), kind="custom")
        raise TypeError(
            f"{name} must be a SpectralGrid or a Quantity of spectral coordinates, "
            f"got {type(grid).__name__}"
        )
