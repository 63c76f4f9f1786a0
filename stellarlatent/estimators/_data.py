"""Where estimators get spectra from: arrays, Spectrum batches or a SpectralStore."""

import hashlib

import numpy as np
import torch
from specutils import Spectrum

from .._batch import as_flux_array
from ..preprocessing.airvac import recorded_medium

__all__ = ["SpectraSource", "as_source", "take_rows"]


class SpectraSource:
    """Spectra held in memory, served in batches of torch tensors.

    Parameters
    ----------
    flux : ndarray, shape (n, n_pixels), float32
        Masked pixels already set to zero.
    mask : ndarray of bool
        True marks a bad pixel.
    ivar : ndarray or None
        Inverse variance (zero at masked pixels).
    spectral_axis : `~astropy.units.Quantity` or None
    wavelength_medium : {"air", "vacuum"} or None
        The convention of ``spectral_axis`` when the input said.
    flux_unit : `~astropy.units.UnitBase` or None
        The unit of ``flux`` when the input had one.
    """

    def __init__(self, flux, mask, ivar=None, spectral_axis=None, wavelength_medium=None,
                 flux_unit=None):
        self.flux = torch.from_numpy(np.ascontiguousarray(flux, dtype=np.float32))
        self.mask = torch.from_numpy(np.ascontiguousarray(mask, dtype=bool))
        self.ivar = (None if ivar is None
                     else torch.from_numpy(np.ascontiguousarray(ivar, dtype=np.float32)))
        self.spectral_axis = spectral_axis
        self.wavelength_medium = wavelength_medium
        self.flux_unit = flux_unit

    def digest(self, ivar=True):
        """A SHA-256 of the spectra (see `digest_rows`)."""
        return digest_rows(self, ivar=ivar)

    def __len__(self):
        return self.flux.shape[0]

    @property
    def n_pixels(self):
        return self.flux.shape[1]

    def reversed(self):
        """The same spectra with their pixels (and spectral axis) in the opposite order."""
        return SpectraSource(
            self.flux.flip(1).numpy(), self.mask.flip(1).numpy(),
            None if self.ivar is None else self.ivar.flip(1).numpy(),
            None if self.spectral_axis is None else self.spectral_axis[::-1],
            self.wavelength_medium, self.flux_unit,
        )

    def in_unit(self, unit):
        """The same spectra with their flux (and inverse variance) converted to ``unit``."""
        factor = float(self.flux_unit.to(unit))
        return SpectraSource(
            (self.flux * factor).numpy(), self.mask.numpy(),
            None if self.ivar is None else (self.ivar / factor**2).numpy(),
            self.spectral_axis, self.wavelength_medium, unit,
        )

    def batch(self, indices):
        """Tensors ``flux``, ``mask`` (bool) and ``ivar`` (or None) of some spectra."""
        idx = torch.as_tensor(indices, dtype=torch.long)
        ivar = None if self.ivar is None else self.ivar[idx]
        return {"flux": self.flux[idx], "mask": self.mask[idx], "ivar": ivar}


class StoreSource:
    """Spectra streamed from a `~stellarlatent.datasets.SpectralStore`, batch by batch.

    Only the rows of each batch are read (one HDF5 read per run of
    consecutive rows) and nothing is cached, so memory does not grow with the
    store. The source keeps the store's path, not its open file: it pickles,
    and each process (a `~torch.utils.data.DataLoader` worker, forked or
    spawned) opens the file for itself on its first batch.
    """

    def __init__(self, store):
        self.path = str(store.path)
        self.spectral_axis = store.spectral_axis
        self.wavelength_medium = recorded_medium(store.meta)
        self.flux_unit = store.flux_unit
        self._n = len(store)
        self._n_pixels = store.n_pixels
        self.has_ivar = store.has_ivar
        self._dataset = store.to_torch_dataset()

    def __len__(self):
        return self._n

    @property
    def n_pixels(self):
        return self._n_pixels

    def batch(self, indices):
        """Tensors ``flux``, ``mask`` (bool) and ``ivar`` (or None) of some spectra, in order."""
        flux, bad, ivar = self._dataset.read_batch(np.asarray(indices, dtype=np.int64))
        return {
            "flux": torch.from_numpy(flux),
            "mask": torch.from_numpy(bad),
            "ivar": torch.from_numpy(ivar) if self.has_ivar else None,
        }

    def digest(self, ivar=True):
        """A SHA-256 of the spectra (see `digest_rows`), read in one streamed pass."""
        try:
            return digest_rows(self, ivar=ivar)
        finally:
            self.close()

    def close(self):
        """Close this process's handle on the file (it reopens on the next batch)."""
        self._dataset.close()


def digest_rows(source, chunk_bytes=2**25, ivar=True):
    """A SHA-256 of the flux, mask and inverse variance of every spectrum of ``source``,
    for checkpoint fingerprints.

    The spectra are read ``chunk_bytes`` of flux at a time, so a store larger
    than memory is hashed in one streamed pass (a read of each row, as one
    epoch of training makes). Spectra held in memory and the same spectra in
    a store give the same digest, so a checkpoint written while a store was
    streamed resumes when the store is read into memory (``fit-remap
    --jobs``), and the other way round. ``ivar=False`` leaves the inverse
    variance out, for an estimator that does not read it (a store streams
    unit weights for spectra without an uncertainty where the same spectra
    in memory have none at all).
    """
    n, n_pixels = len(source), source.n_pixels
    # one hash per array, so the digest does not depend on the chunks
    parts = {key: hashlib.sha256() for key in ("flux", "mask", "ivar")[:3 if ivar else 2]}
    step = max(1, chunk_bytes // (4 * n_pixels))
    for start in range(0, n, step):
        batch = source.batch(np.arange(start, min(n, start + step)))
        for key, part in parts.items():
            if batch[key] is not None:
                part.update(batch[key].numpy().tobytes())
    summary = f"{n}x{n_pixels}:" + ":".join(part.hexdigest() for part in parts.values())
    return hashlib.sha256(summary.encode()).hexdigest()


def _is_store(X):
    try:
        from ..datasets.store import SpectralStore, StoreSubset
    except ImportError:  # pragma: no cover - datasets always importable in a full install
        return False
    return isinstance(X, (SpectralStore, StoreSubset))


def as_source(X, name="X"):
    """Wrap arrays, a batch Spectrum, a list of Spectrum or a SpectralStore.

    Returns
    -------
    `SpectraSource` or `StoreSource`
    """
    if _is_store(X):
        if len(X) == 0:
            raise ValueError(f"{name} is an empty SpectralStore (or subset of one)")
        return StoreSource(X)
    flux, mask, ivar, axis = as_flux_array(X, name)
    medium = None
    if isinstance(X, (list, tuple)) and X:
        media = {recorded_medium(getattr(s, "meta", None)) for s in X}
        medium = media.pop() if len(media) == 1 else None
    else:
        medium = recorded_medium(getattr(X, "meta", None))
    # a list of spectra is stacked in the unit of its first
    first = X[0] if isinstance(X, (list, tuple)) and X else X
    unit = first.flux.unit if isinstance(first, Spectrum) else None
    return SpectraSource(flux, mask, ivar, axis, medium, unit)


def take_rows(X, rows):
    """The spectra ``rows`` of ``X``, in the form ``X`` has.

    A store or store subset gives a lazy `~stellarlatent.datasets.StoreSubset`,
    a batch Spectrum a batch Spectrum (mask, uncertainty and meta kept), a
    list a list, and an array (masked or not) the same kind of array.

    Examples
    --------
    >>> import numpy as np
    >>> flux = np.ma.masked_array([[1.0, 2.0], [3.0, 4.0], [5.0, 6.0]],
    ...                           mask=[[0, 1], [0, 0], [0, 0]])
    >>> picked = take_rows(flux, [2, 0])
    >>> picked.data.tolist(), picked.mask.tolist()
    ([[5.0, 6.0], [1.0, 2.0]], [[False, False], [False, True]])
    """
    rows = np.asarray(rows, dtype=np.int64)
    if _is_store(X):
        from ..datasets.store import StoreSubset

        if isinstance(X, StoreSubset):
            return StoreSubset(X.store, X.indices[rows])
        return X.subset(rows)
    if isinstance(X, (list, tuple)):
        return [X[i] for i in rows]
    from specutils import Spectrum

    if isinstance(X, Spectrum):
        uncertainty = None if X.uncertainty is None else X.uncertainty[rows]
        return Spectrum(flux=X.flux[rows], spectral_axis=X.spectral_axis,
                        mask=None if X.mask is None else X.mask[rows],
                        uncertainty=uncertainty, meta=dict(X.meta or {}),
                        spectral_axis_index=1)
    return np.asanyarray(X)[rows]
