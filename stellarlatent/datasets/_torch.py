"""The torch view of a `~stellarlatent.datasets.SpectralStore` (imported lazily)."""

import os

import h5py
import numpy as np
import torch
from torch.utils.data import Dataset

from .._batch import unknown_ivar_rows
from ._io import read_rows

__all__ = ["StoreDataset"]


class StoreDataset(Dataset):
    """Spectra of a store, read from the HDF5 file when they are asked for.

    Built by `SpectralStore.to_torch_dataset`. The file is opened on first
    use in each process (and reopened after a fork, never shared with the
    parent), and pickling drops the open file, so the dataset can be handed
    to ``DataLoader(num_workers > 0)`` with the ``fork``, ``spawn`` and
    ``forkserver`` start methods alike. Nothing of the flux is kept between
    reads: memory does not grow with the store.

    Parameters
    ----------
    path : str or path-like
        The store's HDF5 file.
    indices : array of int or None
        The store rows served, in order (None: every row, without an index
        array).
    has_ivar : bool
        Whether the store has inverse variances.
    labels : ndarray or None, shape (n_store_rows, n_labels)
        Label values by store row, served with each spectrum.
    n_rows : int, default=None
        Rows of the store (needed when ``indices`` is None).
    """

    def __init__(self, path, indices, has_ivar, labels=None, n_rows=None):
        self.path = str(path)
        if indices is None:
            if n_rows is None:
                with h5py.File(self.path, "r") as f:
                    n_rows = f["flux"].shape[0]
            self.indices = None
            self._n = int(n_rows)
        else:
            self.indices = np.asarray(indices, dtype=np.int64)
            self._n = int(self.indices.size)
        self.has_ivar = bool(has_ivar)
        self.labels = labels
        self._file = None
        self._pid = None

    def _h5(self):
        pid = os.getpid()
        if self._file is None or self._pid != pid:
            # After a fork the parent's handle is left alone (not even closed):
            # closing it here would flush or release state the parent owns.
            self._file = h5py.File(self.path, "r")
            self._pid = pid
        return self._file

    def __len__(self):
        return self._n

    def rows(self, positions):
        """Store rows of dataset positions (negative positions count from the end)."""
        positions = np.asarray(positions, dtype=np.int64).ravel()
        n = len(self)
        if positions.size and (positions.min() < -n or positions.max() >= n):
            raise IndexError(f"index out of range for a dataset of {n} spectra")
        positions = np.where(positions < 0, positions + n, positions)
        return positions if self.indices is None else self.indices[positions]

    def read_batch(self, positions):
        """Flux, mask and inverse variance of some spectra, in the order asked.

        One HDF5 read per run of consecutive store rows, and only of the rows
        asked for.

        Returns
        -------
        flux : ndarray, shape (n, n_pixels), float32
            Zero at bad pixels.
        bad : ndarray of bool
            True at bad pixels (masked or not finite).
        ivar : ndarray, float32
            Inverse variances (unit weights when the store or the spectrum has none), zero
            at bad pixels.
        """
        rows = self.rows(positions)
        f = self._h5()
        flux = read_rows(f["flux"], rows)
        bad = read_rows(f["mask"], rows).astype(bool)
        bad |= ~np.isfinite(flux)
        flux[bad] = 0.0
        if self.has_ivar:
            ivar = read_rows(f["ivar"], rows)
            ivar[bad] = 0.0
            # spectra stored without an uncertainty: unit weights, as in a store without any
            unknown = unknown_ivar_rows(ivar)
            ivar[unknown] = (~bad[unknown]).astype(ivar.dtype)
        else:
            ivar = (~bad).astype(np.float32)
        return flux.astype(np.float32, copy=False), bad, ivar.astype(np.float32, copy=False)

    def __getitem__(self, item):
        return self.__getitems__([item])[0]

    def __getitems__(self, items):
        rows = self.rows(items)
        flux, bad, ivar = self.read_batch(items)
        mask = bad.astype(np.float32)
        out = []
        for k in range(rows.size):
            item = (torch.from_numpy(flux[k]), torch.from_numpy(mask[k]), torch.from_numpy(ivar[k]))
            if self.labels is not None:
                item = item + (torch.from_numpy(self.labels[rows[k]]),)
            out.append(item)
        return out

    def close(self):
        """Close the file of this process (it reopens on the next item)."""
        if self._file is not None and self._pid == os.getpid():
            self._file.close()
        self._file = None
        self._pid = None

    def __getstate__(self):
        state = dict(self.__dict__)
        state["_file"] = None
        state["_pid"] = None
        return state
