"""The torch view of a `~stellarlatent.datasets.SpectralStore` (imported lazily)."""

import os

import h5py
import numpy as np
import torch
from torch.utils.data import Dataset

from ._io import read_rows

__all__ = ["StoreDataset"]


class StoreDataset(Dataset):
    """Spectra of a store, read from the HDF5 file when they are asked for.

    Built by `SpectralStore.to_torch_dataset`. The file is opened on first
    use in each process (and reopened after a fork), so the dataset can be
    handed to ``DataLoader(num_workers > 0)``; pickling drops the open file.
    """

    def __init__(self, path, indices, has_ivar, labels=None):
        self.path = str(path)
        self.indices = np.asarray(indices, dtype=np.int64)
        self.has_ivar = bool(has_ivar)
        self.labels = labels
        self._file = None
        self._pid = None

    def _h5(self):
        pid = os.getpid()
        if self._file is None or self._pid != pid:
            self._file = h5py.File(self.path, "r")
            self._pid = pid
        return self._file

    def __len__(self):
        return int(self.indices.size)

    def __getitem__(self, item):
        return self.__getitems__([item])[0]

    def __getitems__(self, items):
        positions = np.asarray(items, dtype=np.int64)
        if positions.size and (positions.min() < -len(self) or positions.max() >= len(self)):
            raise IndexError(f"index out of range for a dataset of {len(self)} spectra")
        rows = self.indices[positions]
        f = self._h5()
        flux = read_rows(f["flux"], rows)
        bad = read_rows(f["mask"], rows).astype(bool) | ~np.isfinite(flux)
        flux = np.where(bad, 0.0, flux).astype(np.float32)
        if self.has_ivar:
            ivar = np.where(bad, 0.0, read_rows(f["ivar"], rows)).astype(np.float32)
        else:
            ivar = (~bad).astype(np.float32)
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
        if self._file is not None:
            self._file.close()
        self._file = None
        self._pid = None

    def __getstate__(self):
        state = dict(self.__dict__)
        state["_file"] = None
        state["_pid"] = None
        return state
