"""A view on some rows of a `~stellarlatent.datasets.SpectralStore`, read lazily."""

import numpy as np

__all__ = ["StoreSubset"]


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

    @property
    def path(self):
        return self.store.path

    @property
    def spectral_axis(self):
        return self.store.spectral_axis

    @property
    def n_pixels(self):
        return self.store.n_pixels

    @property
    def has_ivar(self):
        return self.store.has_ivar

    @property
    def label_names(self):
        return self.store.label_names

    @property
    def meta(self):
        return self.store.meta

    @property
    def labels(self):
        """Label columns of the subset's spectra (`~astropy.table.QTable`)."""
        if self._labels is None:
            self._labels = self.store.read_labels(self.indices)
        return self._labels

    def read(self, indices=None):
        """The subset's spectra (or some of them) as one batch `~specutils.Spectrum`."""
        rows = self.indices if indices is None else self.indices[np.asarray(indices)]
        return self.store.read(rows)

    def to_torch_dataset(self, indices=None, *, labels=None):
        """The store's lazy torch dataset over the subset's rows."""
        rows = self.indices if indices is None else self.indices[np.asarray(indices)]
        return self.store.to_torch_dataset(rows, labels=labels)
