"""Latent traversals: what moving along one latent dimension does to a spectrum."""

import astropy.units as u
import numpy as np

from .._batch import check_spectral_axis, to_batch
from ._plotting import axes_grid, axis_label, store_arguments
from .disentanglement import check_latents, informative_dimensions

__all__ = ["LatentTraversalDisplay"]

_MAX_DEFAULT_PANELS = 16


def _check_values(values, name="values"):
    values = np.atleast_1d(np.asarray(values, dtype=float))
    if values.ndim != 1 or values.size == 0 or not np.all(np.isfinite(values)):
        raise ValueError(f"{name} must be a non-empty 1-D array of finite numbers")
    return values


class LatentTraversalDisplay:
    """Spectra decoded while one latent dimension sweeps a range of values.

    Build it with `from_estimator` (which calls ``vae.traverse``) or
    `from_predictions` (precomputed spectra), then call `plot`.

    Parameters
    ----------
    spectral_axis : `~astropy.units.Quantity`, shape (n_pixels,)
        Strictly increasing spectral coordinates.
    traversals : dict
        Maps each latent dimension to an array (n_values, n_pixels) of
        decoded flux, NaN at masked pixels.
    values : dict
        Maps each latent dimension to the latent values (n_values,) of its rows.
    steps : ndarray, default=None
        The sweep common to all dimensions (for example in units of each
        latent's MAD), used for the colour bar; `None` when the dimensions
        were swept over different values.
    spectral_range : `~astropy.units.Quantity`, shape (2,), default=None
        Part of the spectrum to draw.
    flux_unit : `~astropy.units.UnitBase`, default=None
        Unit of the flux, for the axis label.

    Attributes
    ----------
    figure_ : `~matplotlib.figure.Figure`
    axes_ : ndarray of `~matplotlib.axes.Axes`, shape (nrows, ncols)
    lines_ : dict
        Maps each dimension to its list of `~matplotlib.lines.Line2D`.
    colorbar_ : `~matplotlib.colorbar.Colorbar` or None

    Examples
    --------
    >>> import numpy as np
    >>> import astropy.units as u
    >>> from stellarlatent.diagnostics import LatentTraversalDisplay
    >>> wave = np.linspace(5000, 5100, 50) * u.AA
    >>> values = np.linspace(-3, 3, 7)
    >>> line = np.exp(-0.5 * ((wave.value - 5050) / 3) ** 2)
    >>> display = LatentTraversalDisplay.from_predictions(
    ...     wave, {0: 1 - 0.1 * (values[:, None] + 3) * line}, values)
    >>> display.dims
    [0]
    """

    def __init__(
        self, spectral_axis, traversals, values, steps=None, spectral_range=None, flux_unit=None
    ):
        store_arguments(self, locals())

    @property
    def dims(self):
        """The traversed latent dimensions, in drawing order."""
        return list(self.traversals)

    @classmethod
    def from_estimator(
        cls,
        vae,
        x,
        dims=None,
        values=np.linspace(-3, 3, 7),
        scale=None,
        latents=None,
        spectral_range=None,
    ):
        """Traverse the latents of a fitted autoencoder around one spectrum.

        Parameters
        ----------
        vae : estimator
            A fitted `~stellarlatent.estimators.SpectralVAE` (anything with
            ``latent_dim`` and ``traverse(x, dim, values) -> Spectrum`` whose
            2-D flux has one row per value).
        x : `~specutils.Spectrum` or array-like
            The spectrum to start from, as accepted by ``vae.traverse``.
        dims : sequence of int, default=None
            Dimensions to traverse. Default: the informative dimensions of
            ``latents`` when given, otherwise every dimension (allowed up to
            16 dimensions).
        values : array-like
            The sweep. With ``scale=None`` these are the latent values passed
            to ``vae.traverse``; otherwise they are steps in units of each
            latent's spread about its median.
        scale : {None, "mad", "std"}
            With ``"mad"`` (or ``"std"``) the values of dimension ``d`` are
            ``median(Z[:, d]) + values * MAD(Z[:, d])`` (or the standard
            deviation), computed from ``latents``.
        latents : array-like of shape (n_samples, latent_dim), default=None
            Latent vectors of a data set (``vae.transform(X)``), needed by
            ``scale`` and for the default ``dims``.
        spectral_range : `~astropy.units.Quantity`, shape (2,), default=None
            Part of the spectrum to draw.

        Returns
        -------
        `LatentTraversalDisplay`
        """
        steps = _check_values(values)
        latent_dim = int(vae.latent_dim)
        Z = None if latents is None else check_latents(latents, name="latents")
        if Z is not None and Z.shape[1] != latent_dim:
            raise ValueError(
                f"latents has {Z.shape[1]} columns but vae.latent_dim is {latent_dim}"
            )
        if dims is None:
            if Z is not None:
                dims = informative_dimensions(Z)
                if dims.size == 0:
                    raise ValueError(
                        "latents has no informative dimension (MAD > 0.02); pass dims"
                    )
            elif latent_dim <= _MAX_DEFAULT_PANELS:
                dims = np.arange(latent_dim)
            else:
                raise ValueError(
                    f"dims is required when latent_dim > {_MAX_DEFAULT_PANELS} and no latents "
                    "are given (pass dims, or latents to select the informative dimensions)"
                )
        dims = [int(d) for d in np.atleast_1d(dims)]
        if any(not 0 <= d < latent_dim for d in dims):
            raise ValueError(f"dims must be in [0, {latent_dim}), got {dims}")
        if scale not in (None, "mad", "std"):
            raise ValueError(f"scale must be None, 'mad' or 'std', got {scale!r}")
        if scale is not None and Z is None:
            raise ValueError(f"scale={scale!r} needs latents (the latent vectors of a data set)")
        traversals, values_by_dim = {}, {}
        axis, flux_unit = None, None
        for d in dims:
            if scale is None:
                sweep = steps
            else:
                column = Z[:, d][np.isfinite(Z[:, d])]
                centre = np.median(column)
                spread = (
                    np.median(np.abs(column - centre)) if scale == "mad" else np.std(column)
                )
                sweep = centre + steps * spread
            name = f"vae.traverse(x, {d}, values)"
            batch = to_batch(vae.traverse(x, d, sweep), name=name)
            if batch.n_spectra != sweep.size:
                raise ValueError(
                    f"{name} returned {batch.n_spectra} spectra; expected one per value "
                    f"({sweep.size})"
                )
            if axis is None:
                axis, flux_unit = batch.spectral_axis, batch.flux_unit
            elif batch.spectral_axis.shape != axis.shape or not np.allclose(
                batch.spectral_axis.to_value(axis.unit, u.spectral()), axis.value
            ):
                raise ValueError(
                    f"{name} returned a different spectral axis from dimension {dims[0]}"
                )
            traversals[d] = np.where(batch.mask, np.nan, batch.flux)
            values_by_dim[d] = sweep
        return cls(
            axis,
            traversals,
            values_by_dim,
            steps=steps,
            spectral_range=spectral_range,
            flux_unit=flux_unit,
        )

    @classmethod
    def from_predictions(cls, spectral_axis, traversals, values, spectral_range=None):
        """Display precomputed traversals.

        Parameters
        ----------
        spectral_axis : `~astropy.units.Quantity`, shape (n_pixels,)
            Spectral coordinates of the decoded spectra (monotonic).
        traversals : dict
            Maps each latent dimension to a 2-D array (n_values, n_pixels) of
            flux (a Quantity gives the flux unit).
        values : array-like or dict
            The latent values of the rows: one array shared by all dimensions,
            or a dict by dimension.
        spectral_range : `~astropy.units.Quantity`, shape (2,), default=None
            Part of the spectrum to draw.

        Returns
        -------
        `LatentTraversalDisplay`
        """
        axis, flipped = check_spectral_axis(spectral_axis, name="spectral_axis")
        if not isinstance(traversals, dict) or not traversals:
            raise TypeError("traversals must be a non-empty dict {dim: 2-D flux array}")
        shared = None if isinstance(values, dict) else _check_values(values)
        flux_by_dim, values_by_dim, flux_unit = {}, {}, None
        for d, flux in traversals.items():
            if isinstance(flux, u.Quantity):
                flux_unit = flux.unit if flux_unit is None else flux_unit
                flux = flux.to_value(flux_unit)
            flux = np.asarray(flux, dtype=float)
            sweep = shared
            if sweep is None:
                if d not in values:
                    raise ValueError(f"values has no entry for dimension {d}")
                sweep = _check_values(values[d], name=f"values[{d}]")
            if flux.ndim != 2 or flux.shape != (sweep.size, axis.size):
                raise ValueError(
                    f"traversals[{d}] must have shape (n_values, n_pixels) = "
                    f"({sweep.size}, {axis.size}), got {flux.shape}"
                )
            flux_by_dim[int(d)] = flux[:, ::-1] if flipped else flux
            values_by_dim[int(d)] = sweep
        return cls(
            axis,
            flux_by_dim,
            values_by_dim,
            steps=shared,
            spectral_range=spectral_range,
            flux_unit=flux_unit,
        )

    def _pixels(self):
        if self.spectral_range is None:
            return np.ones(self.spectral_axis.size, dtype=bool)
        limits = self.spectral_range
        if not isinstance(limits, u.Quantity) or limits.shape != (2,):
            raise ValueError("spectral_range must be a Quantity of two spectral coordinates")
        axis = self.spectral_axis.to_value(limits.unit, equivalencies=u.spectral())
        lo, hi = np.sort(limits.value)
        pixels = (axis >= lo) & (axis <= hi)
        if pixels.sum() < 2:
            raise ValueError(
                f"spectral_range {limits} holds fewer than two pixels of the spectral axis"
            )
        return pixels

    def plot(self, *, ax=None, kind="spectra", cmap="coolwarm", ncols=3, colorbar=True):
        """Draw one panel per latent dimension, spectra coloured by latent value.

        Parameters
        ----------
        ax : `~matplotlib.axes.Axes` or array of Axes, default=None
            One Axes per dimension; a new figure when `None`.
        kind : {"spectra", "difference"}, default="spectra"
            Draw the decoded spectra, or their difference from the spectrum
            at the centre of the sweep (the value closest to the median).
        cmap : str or `~matplotlib.colors.Colormap`, default="coolwarm"
            Colour map of the sweep, from its lowest to its highest value.
        ncols : int, default=3
            Panels per row of a new figure.
        colorbar : bool, default=True
            Add a colour bar of the sweep.

        Returns
        -------
        self
        """
        from matplotlib import colormaps
        from matplotlib.cm import ScalarMappable
        from matplotlib.colors import Colormap, Normalize

        if kind not in ("spectra", "difference"):
            raise ValueError(f"kind must be 'spectra' or 'difference', got {kind!r}")
        dims = self.dims
        n = len(dims)
        if ax is None:
            ncols = max(1, min(int(ncols), n))
            nrows = int(np.ceil(n / ncols))
        else:
            nrows, ncols = 1, n
        fig, axes = axes_grid(ax, nrows, ncols, name="ax", panel_size=(4.2, 2.8))
        colormap = cmap if isinstance(cmap, Colormap) else colormaps[cmap]
        pixels = self._pixels()
        wave = self.spectral_axis.value[pixels]
        self.lines_ = {}
        flat = axes.ravel()
        for panel, d in zip(flat, dims):
            flux = self.traversals[d][:, pixels]
            sweep = self.values[d]
            order = np.argsort(sweep)
            if kind == "difference":
                flux = flux - flux[np.argmin(np.abs(sweep - np.median(sweep)))]
            position = np.empty(sweep.size)
            position[order] = np.linspace(0, 1, sweep.size) if sweep.size > 1 else 0.5
            self.lines_[d] = [
                panel.plot(wave, row, color=colormap(p), lw=0.8)[0]
                for row, p in zip(flux, position)
            ]
            panel.set_title(f"latent {d}")
            panel.set_xlabel(axis_label("spectral axis", self.spectral_axis.unit))
            ylabel = "flux" if kind == "spectra" else "flux - centre"
            panel.set_ylabel(axis_label(ylabel, self.flux_unit))
        for panel in flat[n:]:
            panel.set_visible(False)
        self.colorbar_ = None
        if colorbar:
            if self.steps is not None:
                norm = Normalize(self.steps.min(), self.steps.max())
                label = "latent value" if np.array_equal(self.steps, self.values[dims[0]]) else (
                    "step (latent spread)"
                )
            else:
                norm, label = Normalize(0, 1), "position in sweep"
            mappable = ScalarMappable(norm=norm, cmap=colormap)
            self.colorbar_ = fig.colorbar(mappable, ax=list(flat[:n]), label=label)
        self.figure_, self.axes_ = fig, axes
        return self
