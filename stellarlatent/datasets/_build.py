"""The batch-by-batch builder behind `SpectralStore.from_files`."""

import numpy as np
from astropy.table import QTable

from .._batch import from_batch
from .._logging import log
from ._io import same_grid, stack_spectra

__all__ = ["Builder"]


class Builder:
    """Turns batches of read spectra into appends for `SpectralStore.from_files`."""

    def __init__(self, cls, path, preprocess, labels, overwrite, create_kwargs):
        self.cls, self.path, self.preprocess = cls, path, preprocess
        self.labels, self.overwrite, self.create_kwargs = labels, overwrite, dict(create_kwargs)
        self.store = None
        self.fitted = preprocess is None or _is_fitted(preprocess)

    def _transform(self, spectra, names):
        """Preprocess a batch; on failure, one by one, skipping the spectra that fail."""
        if self.preprocess is None:
            return spectra, list(range(len(spectra)))
        if not self.fitted:
            with np.errstate(divide="ignore"):
                self.preprocess.fit(spectra)
            self.fitted = True
        try:
            with np.errstate(divide="ignore"):
                return [self.preprocess.transform(spectra)], list(range(len(spectra)))
        except Exception as exc:
            log.debug("batch preprocessing failed (%s); retrying file by file", exc)
        out, kept = [], []
        for k, spectrum in enumerate(spectra):
            try:
                with np.errstate(divide="ignore"):
                    out.append(self.preprocess.transform(spectrum))
            except Exception as exc:
                log.warning(
                    "%s skipped: preprocessing failed: %s: %s", names[k], type(exc).__name__, exc
                )
                continue
            kept.append(k)
        return out, kept

    def add(self, spectra, rows, files):
        """Append what can be appended; return the number of files skipped."""
        if not spectra:
            return 0
        names = [files[i].name for i in rows]
        transformed, kept = self._transform(spectra, names)
        skipped = len(spectra) - len(kept)
        if not transformed:
            return skipped
        batches, counts, keep_rows = [], [], []
        if self.preprocess is not None and len(transformed) == 1 and len(kept) == len(spectra):
            batch = stack_spectra(transformed[0], "spectra")
            per_file = batch.n_spectra // len(spectra)
            if per_file * len(spectra) != batch.n_spectra:
                raise ValueError(
                    f"preprocess returned {batch.n_spectra} spectra for {len(spectra)} files"
                )
            batches, counts, keep_rows = [batch], [per_file] * len(spectra), list(rows)
        else:
            for k, spectrum in zip(kept, transformed):
                try:
                    batch = stack_spectra(spectrum, "spectra")
                except (TypeError, ValueError) as exc:
                    log.warning("%s skipped: %s", names[k], exc)
                    skipped += 1
                    continue
                axis = batch.spectral_axis
                if self.store is not None and not same_grid(self.store.spectral_axis, axis):
                    log.warning(
                        "%s skipped: its grid differs from the store's (give preprocess="
                        "Resampler(grid=...) to put every file on one grid)",
                        names[k],
                    )
                    skipped += 1
                    continue
                if self.store is None:
                    self._create(batch)
                batches.append(batch)
                counts.append(batch.n_spectra)
                keep_rows.append(rows[k])
        if not batches:
            return skipped
        if self.store is None:
            self._create(batches[0])
        spectra_out = [from_batch(b) for b in batches]
        table = self._labels_for(keep_rows, counts, files)
        self.store.append(spectra_out if len(spectra_out) > 1 else spectra_out[0], table)
        return skipped

    def _create(self, batch):
        kwargs = dict(self.create_kwargs)
        kwargs.setdefault("ivar", batch.ivar is not None)
        kwargs.setdefault("flux_unit", batch.flux_unit)
        template = QTable() if self.labels is None else QTable(self.labels[:0])
        if "filename" not in template.colnames:
            template["filename"] = np.array([], dtype=str)
        self.store = self.cls.create(
            self.path,
            batch.spectral_axis,
            labels=template,
            overwrite=self.overwrite,
            **kwargs,
        )

    def _labels_for(self, rows, counts, files):
        repeat = np.repeat(np.asarray(rows, dtype=int), counts)
        table = QTable() if self.labels is None else QTable(self.labels[repeat])
        if "filename" not in table.colnames:
            table["filename"] = np.array([files[i].name for i in repeat], dtype=str)
        return table

    def finish(self):
        if self.store is None:
            raise ValueError(
                f"files: none of the files could be read; no store written at {self.path}"
            )
        return self.store

    def abort(self):
        if self.store is not None:
            self.store._abort()


def _is_fitted(estimator):
    from sklearn.exceptions import NotFittedError
    from sklearn.pipeline import Pipeline
    from sklearn.utils.validation import check_is_fitted

    if isinstance(estimator, Pipeline):
        # a pipeline counts as fitted by its last step only; every step must be
        return all(_is_fitted(step) for _, step in estimator.steps if step not in (None, "passthrough"))
    try:
        check_is_fitted(estimator)
    except NotFittedError:
        return False
    except TypeError:
        return True
    return True
