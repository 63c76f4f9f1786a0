"""Shared helpers of the diagnostic figures and displays; matplotlib is imported lazily."""

import inspect

import numpy as np

__all__ = ["import_pyplot", "axes_grid", "single_axes", "axis_label", "store_arguments"]


def store_arguments(display, arguments):
    """Store a display's constructor arguments under their names, unchanged.

    ``arguments`` is the constructor's ``locals()``; every parameter of
    ``type(display).__init__`` becomes an attribute of ``display``.
    """
    for name in list(inspect.signature(type(display).__init__).parameters)[1:]:
        setattr(display, name, arguments[name])


def import_pyplot():
    """Return `matplotlib.pyplot`, with a clear error when matplotlib is missing."""
    try:
        import matplotlib.pyplot as plt
    except ImportError as exc:  # pragma: no cover - matplotlib is a dependency
        raise ImportError("the diagnostic figures need matplotlib: pip install matplotlib") from exc
    return plt


def axes_grid(ax, nrows, ncols, name="ax", panel_size=(3.6, 2.8), **subplot_kw):
    """Return ``(figure, axes)`` with ``axes`` a 2-D array of shape (nrows, ncols).

    Parameters
    ----------
    ax : `~matplotlib.axes.Axes`, array-like of Axes, or None
        Existing axes (exactly ``nrows * ncols`` of them, in row-major order),
        or `None` to create a new figure.
    nrows, ncols : int
        Shape of the grid.
    name : str
        Name of the argument, for error messages.
    panel_size : tuple of float
        Size in inches of one panel of a new figure.
    """
    plt = import_pyplot()
    if ax is None:
        fig, axes = plt.subplots(
            nrows,
            ncols,
            figsize=(panel_size[0] * ncols, panel_size[1] * nrows),
            squeeze=False,
            layout="constrained",
            **subplot_kw,
        )
        return fig, axes
    from matplotlib.axes import Axes

    flat = np.array([ax], dtype=object) if isinstance(ax, Axes) else np.asarray(ax, dtype=object)
    flat = flat.ravel()
    if flat.size != nrows * ncols or not all(isinstance(a, Axes) for a in flat):
        raise ValueError(
            f"{name} must be None or {nrows * ncols} matplotlib Axes "
            f"({nrows} x {ncols}), got {flat.size} object(s)"
        )
    return flat[0].figure, flat.reshape(nrows, ncols)


def single_axes(ax, name="ax", figsize=(5.0, 3.8)):
    """Return ``(figure, ax)``, creating a figure when ``ax`` is None."""
    fig, axes = axes_grid(ax, 1, 1, name=name, panel_size=figsize)
    return fig, axes[0, 0]


def axis_label(name, unit=None):
    """``name [unit]``, or ``name`` when there is no unit."""
    if unit is None or str(unit) == "":
        return str(name)
    return f"{name} [{unit}]"
