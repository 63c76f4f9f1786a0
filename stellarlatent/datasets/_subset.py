"""A view on some rows of a `~stellarlatent.datasets.SpectralStore`, read lazily."""

import numpy as np

__all__ = ["StoreSubset"]


def _from_store(name):
    """A read-only attribute that is the store's attribute ``name``."""
    return property(lambda self: getattr(self.store, name), doc=f"The store's ``{name}``.")


class StoreSubset:
    """Some rows of a `SpectralStore`, read lazily (see `SpectralStore.subset`).

    It has the store's grid, pixels and label names, its own length and
    labels, and it streams into the estimators like the store itself. It
    reads through the store, which must stay open while it is used.

    Parameters
    ----------
    store : `SpectralStore`
    indices : array-like of int or bool
    """

    def __init__(self, store, indices):
        n = len(store)
        rows = np.asarray(indices)
        if rows.dtype == bool:
            if rows.shape != (n,):
                raise ValueError(
                    f"indices: a boolean mask must have the store's length {n}, got {rows.shape}")
            rows = np.flatnonzero(rows)
        if rows.ndim != 1 or not (rows.size == 0 or np.issubdtype(rows.dtype, np.integer)):
            raise ValueError("indices must be a 1-D array of integer rows or a boolean mask")
        if rows.size and (rows.min() < -n or rows.max() >= n):
            raise IndexError(f"indices: rows must lie in [0, {n}), got {rows.min()}..{rows.max()}")
        self.store = store
        self.indices = np.asarray(rows % n if n else rows, dtype=np.int64)
        self._labels = None

    def __len__(self):
        return int(self.indices.size)

    def __repr__(self):
        return f"<StoreSubset of {len(self)} spectra of {self.store!r}>"

    path = _from_store("path")
    spectral_axis = _from_store("spectral_axis")
    n_pixels = _from_store("n_pixels")
    has_ivar = _from_store("has_ivar")
    flux_unit = _from_store("flux_unit")
    label_names = _from_store("label_names")
    meta = _from_store("meta")

    @property
    def labels(self):
        """Label columns of the subset's spectra (`~astropy.table.QTable`)."""
        if self._labels is None:
            self._labels = self.store.read_labels(self.indices)
        return self._labels

    def read(self, indices=None):
        """The subset's spectra (or some of them) as one batch `~specutils.Spectrum`."""
        return self.store.read(self._rows(indices))

    def to_torch_dataset(self, indices=None, *, labels=None):
        """The store's lazy torch dataset over the subset's rows."""
        return self.store.to_torch_dataset(self._rows(indices), labels=labels)

    def _rows(self, indices):
        """The store's rows of ``indices`` (positions in the subset; None: all of them)."""
        return self.indices if indices is None else self.indices[np.asarray(indices)]
