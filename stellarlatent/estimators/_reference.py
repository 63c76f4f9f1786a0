"""The reference set of DeepREMAP: embeddings of known spectra, searched for neighbours.

`ReferenceSet` holds the embeddings of the training spectra (as the network's
embedding layer gives them, before the L2 normalisation) and their labels. It
finds the reference spectra nearest any query (`ReferenceSet.query`), in the
raw or in the L2-normalised embedding, and sets the novelty threshold: a
quantile of the distances from reference spectra to their nearest other
reference spectrum (`ReferenceSet.threshold`).
"""

import math
import numbers

import astropy.units as u
import numpy as np
import torch
from astropy.table import QTable

__all__ = ["ReferenceSet"]

# Entries of each distance buffer of the nearest-neighbour search (16 MiB of float64).
_DISTANCE_BLOCK = 2**21
# Reference spectra queried to set the novelty threshold: enough for a 99th
# percentile, few enough to stay fast for millions of training spectra.
_NOVELTY_SAMPLE = 2000


class ReferenceSet:
    """Embeddings of known spectra with their labels, and a nearest-neighbour search.

    Parameters
    ----------
    embeddings : array-like, shape (n_reference, embedding_dim)
        The unnormalised embeddings (stored as float32).
    values : array-like, shape (n_reference, n_labels)
        The labels of the reference spectra (NaN where unknown), columns in
        the order of ``labels``, in ``units``.
    labels : sequence of str
    units : dict
        ``{label: astropy unit}``; ``dimensionless_unscaled`` gives a plain column.

    Attributes
    ----------
    embeddings : ndarray of float32, shape (n_reference, embedding_dim)
    values : ndarray, shape (n_reference, n_labels)
    table : `~astropy.table.QTable`
        The labels, one row per reference spectrum (Quantity columns when the
        label has a unit).

    Examples
    --------
    >>> import numpy as np
    >>> import astropy.units as u
    >>> reference = ReferenceSet([[0.0, 0.0], [3.0, 4.0], [0.0, 1.0]],
    ...                          [[5000.0], [6000.0], [5500.0]], ["teff"], {"teff": u.K})
    >>> distances, indices = reference.query([[0.0, 0.9]], 2)
    >>> indices.tolist(), np.round(distances, 6).tolist()
    ([[2, 0]], [[0.1, 0.9]])
    >>> reference.table["teff"][indices[0, 0]]
    <Quantity 5500. K>
    >>> reference.threshold(1.0)
    4.242640687119285
    """

    def __init__(self, embeddings, values, labels, units):
        self.embeddings = np.ascontiguousarray(np.asarray(embeddings, dtype=np.float32))
        self.values = np.asarray(values)
        self.labels = tuple(labels)
        self.units = dict(units)
        if self.embeddings.ndim != 2 or self.values.shape != (len(self), len(self.labels)):
            raise ValueError(
                f"embeddings of shape {self.embeddings.shape} and values of shape "
                f"{self.values.shape} do not describe the same {len(self.labels)} labels")
        self.table = self._table()

    def __len__(self):
        return self.embeddings.shape[0]

    def _table(self):
        table = QTable()
        for j, label in enumerate(self.labels):
            unit = self.units[label]
            values = self.values[:, j]
            table[label] = values if unit == u.dimensionless_unscaled else values * unit
        return table

    @property
    def normalized_embeddings(self):
        """The L2-normalised embeddings, shape (n_reference, embedding_dim)."""
        raw = self.embeddings
        return raw / np.maximum(np.linalg.norm(raw, axis=1, keepdims=True), 1e-12)

    def check_k(self, k, name="n_neighbors"):
        """``k`` as an int; raise a ValueError naming ``name`` unless it is in [1, n_reference]."""
        n_ref = len(self)
        if isinstance(k, bool) or not isinstance(k, numbers.Integral) or not 1 <= k <= n_ref:
            raise ValueError(
                f"{name} must be an integer in [1, {n_ref}] (the training spectra), got {k!r}"
            )
        return int(k)

    def query(self, queries, k, *, normalized=False, device="cpu", name="n_neighbors"):
        """Distances and indices of the ``k`` reference spectra nearest each query.

        Parameters
        ----------
        queries : array-like, shape (n_queries, embedding_dim)
        k : int
            Neighbours per query, in [1, n_reference].
        normalized : bool
            Search the L2-normalised embeddings (the queries are taken as
            given) instead of the raw ones.
        device : str or `torch.device`
            Where the distances are computed: in float64 on a CPU (the
            distance of a spectrum to itself comes out as 0), float32 on a GPU.
        name : str
            The name of ``k`` in the error message.

        Returns
        -------
        distances : ndarray of float64, shape (n_queries, k)
            Euclidean distances, increasing along a row.
        indices : ndarray of int, shape (n_queries, k)
            Rows of the reference set.
        """
        k = self.check_k(k, name)
        n_ref = len(self)
        device = torch.device(device)
        dtype = torch.float32 if device.type == "cuda" else torch.float64
        reference = self.normalized_embeddings if normalized else self.embeddings
        reference = torch.as_tensor(reference, device=device).to(dtype)
        queries = torch.as_tensor(np.asarray(queries), device=device).to(dtype)
        chunk = max(1, min(queries.shape[0], _DISTANCE_BLOCK // max(1, n_ref)))
        ref_sq = reference.square().sum(dim=1)
        # Two buffers reused for every block: fresh ones per block fragment the
        # heap, and the memory then grows with the number of queries.
        block = torch.empty((2, chunk, n_ref), dtype=dtype, device=device)
        distances, indices = [], []
        for start in range(0, queries.shape[0], chunk):
            q = queries[start : start + chunk]
            total, sq = block[0, : q.shape[0]], block[1, : q.shape[0]]
            torch.add(q.square().sum(dim=1)[:, None], ref_sq[None, :], out=total)
            torch.mm(q, reference.T, out=sq)
            torch.sub(total, sq, alpha=2.0, out=sq).clamp_min_(0.0)
            d, i = torch.topk(sq, k, dim=1, largest=False)
            distances.append(d.sqrt().cpu())
            indices.append(i.cpu())
        return torch.cat(distances).double().numpy(), torch.cat(indices).numpy()

    def threshold(self, quantile, *, device="cpu", sample=_NOVELTY_SAMPLE, seed=0):
        """The novelty threshold: a quantile of the nearest-other-reference distances.

        For (at most ``sample``) reference spectra drawn with ``seed``, the
        distance in the raw embedding to the nearest other reference
        spectrum; infinity with fewer than two reference spectra.

        Parameters
        ----------
        quantile : float
            In (0, 1].
        device : str or `torch.device`
            As in `query`.
        sample : int
            Reference spectra queried.
        seed : int
            Seed of the draw.

        Returns
        -------
        float
        """
        n = len(self)
        if n < 2:
            return math.inf
        rows = np.random.default_rng(seed).choice(n, size=min(n, sample), replace=False)
        distances = self.query(self.embeddings[np.sort(rows)], 2, device=device)[0]
        return float(np.quantile(distances[:, 1], quantile))
