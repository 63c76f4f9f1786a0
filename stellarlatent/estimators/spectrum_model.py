"""A quadratic model of every pixel in the labels, fitted to each spectrum by least squares.

The Cannon (Ness et al. 2015) models the normalised flux of each pixel as a
polynomial of second order in the stellar labels, learned from training
spectra with known labels, and labels a new spectrum by the labels whose
model spectrum fits it best. A fit of three labels to two thousand pixels
averages the noise: on MILES FGK stars at S/N 30 it loses about 2.6 times
the Cramer-Rao bound to the noise when the continuum is estimated from
smoothed flux, 5-7 times with the plain running quantile
(``benchmarks/bench_noise_limit.py``). Its errors on noise-free spectra are
those of a quadratic model over the whole label range (``docs/parameters.rst``).
"""

import json
from numbers import Integral
from pathlib import Path

import astropy.units as u
import numpy as np
from astropy.io import fits
from astropy.table import QTable
from sklearn.base import BaseEstimator
from sklearn.pipeline import make_pipeline
from sklearn.utils.validation import check_is_fitted
from specutils import Spectrum

from .._batch import _same_axis, to_batch, unknown_ivar_rows
from .._fits import axis_hdu, read_axis
from .._params import Interval, Predicate, validate_params
from .._preprocessing_spec import build, describe
from ._binning import label_unit, read_labels

__all__ = ["QuadraticSpectrumModel"]

_FORMAT = "stellarlatent-quadratic-spectrum-model"
#: Spectra fitted at a time when a start is searched among the training labels.
_CHUNK = 256


def _is_normalizer(value):
    from ..preprocessing import ContinuumNormalizer

    return isinstance(value, ContinuumNormalizer)


def _terms(z, cubic):
    """Design matrix (n, n_terms) of standardised labels ``z``: 1, linear, quadratic (+cubic)."""
    n, k = z.shape
    columns = [np.ones(n)] + [z[:, i] for i in range(k)]
    columns += [z[:, i] * z[:, j] for i in range(k) for j in range(i, k)]
    if cubic is not None:
        columns.append(z[:, cubic] ** 3)
    return np.column_stack(columns)


def _derivatives(z, cubic):
    """d terms / d z_i for each label: a list of (n, n_terms) arrays."""
    n, k = z.shape
    out = []
    for m in range(k):
        columns = [np.zeros(n)] + [np.full(n, float(i == m)) for i in range(k)]
        for i in range(k):
            for j in range(i, k):
                columns.append((i == m) * z[:, j] + (j == m) * z[:, i])
        if cubic is not None:
            columns.append(3 * z[:, cubic] ** 2 * (cubic == m))
        out.append(np.column_stack(columns))
    return out


def _solve_coefficients(terms, flux, good):
    """Per-pixel weighted least squares: coefficients (n_terms, n_pixels)."""
    weights = good.astype(float)
    gram = np.einsum("np,ni,nj->pij", weights, terms, terms, optimize=True)
    rhs = np.einsum("np,ni->pi", weights * np.where(good, flux, 0.0), terms, optimize=True)
    trace = np.trace(gram, axis1=1, axis2=2)
    # a pixel valid in no training spectrum gets zero coefficients (and infinite variance)
    gram += np.where(trace > 0, 1e-9 * trace, 1.0)[:, None, None] * np.eye(terms.shape[1])
    return np.linalg.solve(gram, rhs[..., np.newaxis])[..., 0].T


class QuadraticSpectrumModel(BaseEstimator):
    """Labels from a quadratic model of every pixel (The Cannon), fitted by least squares.

    `fit` learns, for each pixel, the flux as a second-order polynomial of
    the standardised labels (and the cube of the first label, Teff by
    default, whose effect on the lines is the strongest and least
    quadratic), and the variance per pixel of what that model misses on a
    spectrum not used to learn it (two-fold cross-fitting). `predict` finds
    the labels whose model spectrum fits each spectrum best: Gauss-Newton
    from the best-fitting training star's labels, each pixel weighted by
    the inverse of its model variance plus the spectrum's noise (its
    uncertainty where it has one, else the part of its residual that the
    model variance does not explain).

    Parameters
    ----------
    labels : sequence of str, default=("teff", "logg", "feh")
    cubic : bool, default=True
        Add the cube of the first label.
    n_iter : int, default=10
        Gauss-Newton steps of `predict`.
    continuum : `~stellarlatent.preprocessing.ContinuumNormalizer`, default=None
        Applied to the spectra in `fit` and `predict` (also to spectra
        normalised already: dividing by a second, smoother continuum
        estimate replaces the first). None takes the spectra as they are.

    Attributes
    ----------
    coefficients_ : ndarray, shape (n_terms, n_pixels)
    model_variance_ : ndarray, shape (n_pixels,)
        Variance per pixel of the model's residual on spectra left out of its
        fit (infinite where no training spectrum had a valid pixel).
    label_loc_, label_scale_ : ndarray, shape (n_labels,)
        The labels are standardised as ``(y - loc) / scale``.
    label_min_, label_max_ : ndarray, shape (n_labels,)
        The range of the training labels; fitted labels stay within it,
        widened by a tenth of it on each side.
    error_scale_ : ndarray, shape (n_labels,)
        Factor of the formal errors (from the curvature of the chi-square),
        set so that the standardised errors of the cross-fitted training
        stars have a robust spread of one: the model's residuals are
        correlated along the spectrum, so the formal errors alone are too
        small. The two half-models of the cross-fit are worse than the
        model fitted on every star, so the errors err on the wide side
        (measured on synthetic spectra: 1.2-2 times the scatter with 60-200
        training stars).
    training_labels_ : ndarray, shape (n_train, n_labels)
        Where `predict` starts from.
    label_units_ : dict
    spectral_axis_ : `~astropy.units.Quantity`

    Notes
    -----
    The spectra must be continuum-normalised the same way in `fit` and
    `predict`, on the same grid; for noisy spectra, a continuum estimated
    from smoothed flux (`~stellarlatent.preprocessing.ContinuumNormalizer`'s
    ``smoothing``) keeps the noise from moving the continuum, which costs a
    fit more than the noise itself (``benchmarks/bench_noise_limit.py``).
    A spectrum coarser than the training spectra is fitted by the model
    broadened to its resolution: give ``input_fwhm`` and ``model_fwhm`` to
    `predict`.

    Examples
    --------
    >>> import astropy.units as u
    >>> import numpy as np
    >>> from stellarlatent.datasets import make_synthetic_spectra
    >>> from stellarlatent.estimators import QuadraticSpectrumModel
    >>> kw = dict(teff=(5000.0, 6500.0), logg=(3.8, 4.6), feh=(-0.8, 0.3), snr=200,
    ...           rv=0 * u.km / u.s)
    >>> train, y_train = make_synthetic_spectra(300, random_state=0, **kw)
    >>> test, y_test = make_synthetic_spectra(20, random_state=1, **kw)
    >>> model = QuadraticSpectrumModel().fit(train, y_train)
    >>> table = model.predict(test)
    >>> error = table["teff"].value - y_test["teff"].value
    >>> bool(np.median(np.abs(error)) < 50)
    True
    """

    _parameter_constraints = {
        "labels": [list, tuple],
        "cubic": ["boolean"],
        "n_iter": [Interval(Integral, 1, None, closed="left")],
        "continuum": [None, Predicate(_is_normalizer, "a ContinuumNormalizer")],
    }

    def __init__(self, labels=("teff", "logg", "feh"), cubic=True, n_iter=10, continuum=None):
        self.labels = labels
        self.cubic = cubic
        self.n_iter = n_iter
        self.continuum = continuum

    def _normalised(self, X):
        if self.continuum is not None:
            if not isinstance(X, (Spectrum, list, tuple)):
                raise TypeError(
                    f"X must be a specutils.Spectrum or a list of them when continuum is set "
                    f"(the continuum is estimated on the spectral axis), got {type(X).__name__}"
                )
            X = self.continuum.transform(X)
        return to_batch(X, "X")

    def _check_params(self):
        validate_params(self)
        labels = tuple(self.labels)
        if not labels or not all(isinstance(label, str) for label in labels) or len(
                set(labels)) != len(labels):
            raise ValueError(f"labels must be distinct label names, got {self.labels!r}")
        return labels

    # -- fitting ------------------------------------------------------------------------

    def fit(self, X, y):
        """Learn the model of every pixel from spectra with known labels.

        Parameters
        ----------
        X : `~specutils.Spectrum` or list of `~specutils.Spectrum`
            Continuum-normalised spectra on one grid.
        y : `~astropy.table.Table`, dict or array-like
            The labels of each spectrum (see ``labels``); spectra with an
            unknown label are left out.

        Returns
        -------
        self
        """
        labels = self._check_params()
        batch = self._normalised(X)
        values, units = read_labels(y, labels, batch.n_spectra)
        known = np.all(np.isfinite(values), axis=1)
        n_terms = _terms(np.zeros((1, len(labels))), 0 if self.cubic else None).shape[1]
        if known.sum() < 2 * n_terms:
            raise ValueError(
                f"y must give every label of at least {2 * n_terms} spectra (twice the "
                f"{n_terms} terms of the model per pixel), got {int(known.sum())}"
            )
        flux = np.asarray(batch.flux, dtype=float)[known]
        good = (~batch.mask & np.isfinite(batch.flux))[known]
        values = values[known]
        self.label_loc_ = np.median(values, axis=0)
        self.label_scale_ = np.where(np.std(values, axis=0) > 0, np.std(values, axis=0), 1.0)
        self.label_min_, self.label_max_ = values.min(axis=0), values.max(axis=0)
        self.label_units_ = units
        self.spectral_axis_ = batch.spectral_axis
        terms = _terms(self._standard(values), self._cubic())
        self.coefficients_ = _solve_coefficients(terms, flux, good)
        # what the model misses on a spectrum it was not fitted to
        halves = np.arange(len(values)) % 2 == 0
        squares, counts, cross = np.zeros(flux.shape[1]), np.zeros(flux.shape[1]), []
        for fitted, left in ((halves, ~halves), (~halves, halves)):
            coef = _solve_coefficients(terms[fitted], flux[fitted], good[fitted])
            residual = np.where(good[left], flux[left] - terms[left] @ coef, 0.0)
            squares += (residual ** 2).sum(axis=0)
            counts += good[left].sum(axis=0)
            cross.append((left, coef))
        with np.errstate(invalid="ignore", divide="ignore"):
            self.model_variance_ = np.where(counts > 0, squares / counts, np.inf)
        self.training_labels_ = values
        self.error_scale_ = np.ones(len(labels))
        z_scores = []
        for left, coef in cross:
            # started from the other half's stars, as a new star would be
            start = self._starts(flux[left], good[left], coef, self.model_variance_,
                                 values[~left])
            fitted_labels, errors, _, _ = self._fit_labels(flux[left], good[left], coef,
                                                           self.model_variance_, None, start)
            z_scores.append((fitted_labels - values[left]) / errors)
        z_scores = np.concatenate(z_scores)
        spread = 1.4826 * np.nanmedian(np.abs(z_scores - np.nanmedian(z_scores, axis=0)),
                                       axis=0)
        self.error_scale_ = np.where(np.isfinite(spread) & (spread > 0), spread, 1.0)
        return self

    def _cubic(self):
        return 0 if self.cubic else None

    def _standard(self, values):
        return (values - self.label_loc_) / self.label_scale_

    # -- prediction -----------------------------------------------------------------------

    def model_spectra(self, y):
        """The model's flux for labels ``y``, shape (n, n_pixels).

        Parameters
        ----------
        y : `~astropy.table.Table`, dict or array-like

        Examples
        --------
        >>> import astropy.units as u
        >>> from stellarlatent.datasets import make_synthetic_spectra
        >>> kw = dict(teff=(5000.0, 6500.0), logg=(3.8, 4.6), feh=(-0.8, 0.3), snr=None,
        ...           rv=0 * u.km / u.s)
        >>> train, y_train = make_synthetic_spectra(100, random_state=0, **kw)
        >>> model = QuadraticSpectrumModel().fit(train, y_train)
        >>> model.model_spectra(y_train[:2]).shape
        (2, 4300)
        """
        check_is_fitted(self, "coefficients_")
        values, _ = read_labels(y, self.labels, _n_rows(y), units=self.label_units_)
        return _terms(self._standard(values), self._cubic()) @ self.coefficients_

    def model_derivatives(self, y):
        """Derivatives of the model's flux with respect to each label at labels ``y``.

        With the noise per pixel they give the Fisher information of a
        spectrum about its labels (``benchmarks/bench_noise_limit.py``).

        Parameters
        ----------
        y : `~astropy.table.Table`, dict or array-like

        Returns
        -------
        ndarray, shape (n, n_pixels, n_labels)
            Flux per unit of each label (``label_units_``).

        Examples
        --------
        >>> import astropy.units as u
        >>> from stellarlatent.datasets import make_synthetic_spectra
        >>> kw = dict(teff=(5000.0, 6500.0), logg=(3.8, 4.6), feh=(-0.8, 0.3), snr=None,
        ...           rv=0 * u.km / u.s)
        >>> train, y_train = make_synthetic_spectra(100, random_state=0, **kw)
        >>> model = QuadraticSpectrumModel().fit(train, y_train)
        >>> model.model_derivatives(y_train[:2]).shape
        (2, 4300, 3)
        """
        check_is_fitted(self, "coefficients_")
        values, _ = read_labels(y, self.labels, _n_rows(y), units=self.label_units_)
        derivatives = _derivatives(self._standard(values), self._cubic())
        return np.stack([d @ self.coefficients_ for d in derivatives], axis=-1) / self.label_scale_

    def predict(self, X, *, start=None, input_fwhm=None, model_fwhm=None):
        """Labels of spectra on the training grid, with their uncertainties.

        Parameters
        ----------
        X : `~specutils.Spectrum` or list of `~specutils.Spectrum`
            Continuum-normalised like the training spectra, on their grid.
        start : `~astropy.table.Table`, dict or array-like, optional
            Labels to start each fit from (for example a network's
            prediction). Default: the training star whose model spectrum
            fits best.
        input_fwhm, model_fwhm : `~astropy.units.Quantity`, optional
            The line-spread FWHM of the spectra (a scalar or one per
            spectrum; NaN where unknown) and of the training spectra: a
            spectrum coarser than the training spectra is fitted by the
            model broadened to its resolution.

        Returns
        -------
        `~astropy.table.QTable`
            For each label ``L``: ``L`` and ``L_err`` (the formal error times
            ``error_scale_``), and ``chi2`` (per valid pixel, against the
            model variance and the noise) and ``noise`` (the per-pixel
            noise used).
        """
        check_is_fitted(self, "coefficients_")
        batch = self._normalised(X)
        if not _same_axis(batch.spectral_axis, self.spectral_axis_):
            raise ValueError(
                "X must be on the grid the model was fitted on "
                f"({self.spectral_axis_.size} pixels from {self.spectral_axis_[0]:.6g} to "
                f"{self.spectral_axis_[-1]:.6g}); resample it first with "
                "stellarlatent.preprocessing.Resampler"
            )
        n = batch.n_spectra
        flux = np.asarray(batch.flux, dtype=float)
        good = ~batch.mask & np.isfinite(flux) & np.isfinite(self.model_variance_)
        noise = None
        if batch.ivar is not None:
            ivar = np.asarray(batch.ivar, dtype=float)
            # spectra stacked without an uncertainty keep their noise found from the data
            known = ~unknown_ivar_rows(ivar)
            if np.any(ivar[good & known[:, np.newaxis]] > 0):
                with np.errstate(divide="ignore", invalid="ignore"):
                    noise = np.where(ivar > 0, 1.0 / ivar, np.nan)
                noise[~known] = np.nan
                good &= (ivar > 0) | ~known[:, np.newaxis]
        starts = None
        if start is not None:
            starts, _ = read_labels(start, self.labels, n, units=self.label_units_,
                                    name="start")
        fitted = np.empty((n, len(self.labels)))
        errors = np.empty_like(fitted)
        chi2, used_noise = np.empty(n), np.empty(n)
        for rows, coef in self._coefficients_at(input_fwhm, model_fwhm, n):
            fitted[rows], errors[rows], chi2[rows], used_noise[rows] = self._fit_labels(
                flux[rows], good[rows], coef, self.model_variance_,
                None if noise is None else noise[rows],
                None if starts is None else starts[rows])
        table = QTable()
        for j, label in enumerate(self.labels):
            unit = self.label_units_[label]
            table[label] = fitted[:, j] * unit
            table[f"{label}_err"] = errors[:, j] * unit
        table["chi2"] = chi2
        table["noise"] = used_noise
        return table

    def _coefficients_at(self, input_fwhm, model_fwhm, n):
        """(rows, coefficients) pairs: the model's, and the model broadened for coarser rows."""
        rows = np.arange(n)
        if (input_fwhm is None) != (model_fwhm is None):
            raise ValueError("input_fwhm and model_fwhm go together: give both (the spectra's "
                             "and the training spectra's FWHM) or neither")
        if input_fwhm is None:
            return [(rows, self.coefficients_)]
        from specutils import Spectrum

        from ..preprocessing import Broadener

        values = {}
        for name, value in (("input_fwhm", input_fwhm), ("model_fwhm", model_fwhm)):
            if not (isinstance(value, u.Quantity) and value.unit.is_equivalent(u.AA)):
                raise u.UnitsError(f"{name} must be a wavelength Quantity (a FWHM), "
                                   f"got {value!r}")
            values[name] = value.to_value(u.AA)
        if np.ndim(values["input_fwhm"]) > 0 and np.size(values["input_fwhm"]) != n:
            raise ValueError(f"input_fwhm must be one value or one per spectrum ({n}), got "
                             f"{np.size(values['input_fwhm'])}")
        if not (np.ndim(values["model_fwhm"]) == 0 and values["model_fwhm"] > 0):
            raise ValueError(f"model_fwhm must be one positive FWHM, got {model_fwhm!r}")
        fwhm = np.broadcast_to(values["input_fwhm"], (n,))
        base = float(values["model_fwhm"])
        coarser = np.isfinite(fwhm) & (fwhm > base * 1.01)
        pairs = [(rows[~coarser], self.coefficients_)] if (~coarser).any() else []
        model = Spectrum(flux=self.coefficients_ * u.one, spectral_axis=self.spectral_axis_,
                         spectral_axis_index=1)
        for value in np.unique(np.round(fwhm[coarser], 2)):
            broadened = Broadener(fwhm=value * u.AA, input_fwhm=base * u.AA).transform(model)
            pairs.append((rows[coarser & (np.round(fwhm, 2) == value)],
                          np.asarray(broadened.flux.value, dtype=float)))
        return pairs

    def _starts(self, flux, good, coef, variance, candidates=None):
        """The labels among ``candidates`` (the training labels) whose model fits best."""
        candidates = self.training_labels_ if candidates is None else candidates
        models = _terms(self._standard(candidates), self._cubic()) @ coef
        best = np.empty(len(flux), dtype=int)
        weights = np.where(good, 1.0 / variance, 0.0)
        for chunk in np.array_split(np.arange(len(flux)), max(1, -(-len(flux) // _CHUNK))):
            w = weights[chunk]
            x = np.where(good[chunk], flux[chunk], 0.0)
            # sum_p w (x - m)^2 = sum w x^2 - 2 (w x) m + w m^2
            cost = (-2 * (w * x) @ models.T + w @ (models ** 2).T)
            best[chunk] = np.argmin(cost, axis=1)
        return candidates[best]

    def _fit_labels(self, flux, good, coef, variance, noise, start=None):
        """Gauss-Newton fits of each spectrum: labels, errors (times error_scale_), chi2, noise."""
        n, k = len(flux), len(self.labels)
        cubic = self._cubic()
        lower = self._standard(self.label_min_ - 0.1 * (self.label_max_ - self.label_min_))
        upper = self._standard(self.label_max_ + 0.1 * (self.label_max_ - self.label_min_))
        finite = np.where(np.isfinite(variance), variance, 1.0)
        if start is None:
            start = self._starts(flux, good, coef, finite)
        z = np.clip(self._standard(np.where(np.isfinite(start), start, self.label_loc_)),
                    lower, upper)
        excess = np.zeros(n)
        out_z, out_err = np.empty((n, k)), np.empty((n, k))
        chi2, used = np.empty(n), np.empty(n)
        for i in range(n):
            ok = good[i]
            if ok.sum() <= k:
                out_z[i], out_err[i], chi2[i], used[i] = np.nan, np.nan, np.nan, np.nan
                continue
            x, s2 = flux[i, ok], finite[ok]
            c = coef[:, ok]
            # a spectrum stacked without an uncertainty: its noise is found from the data
            given = None if noise is None or not np.isfinite(noise[i, ok]).any() else noise[i, ok]
            zi = z[i].copy()
            for step in range(self.n_iter):
                design = _terms(zi[np.newaxis], cubic)
                residual = x - (design @ c)[0]
                if given is not None:
                    total = s2 + given
                else:
                    # the noise in excess of what the model misses on a star it was not
                    # fitted to, from the residual at the current labels
                    excess[i] = max(0.0, float(np.mean(residual ** 2 - s2)))
                    total = s2 + excess[i]
                w = 1.0 / total
                jacobian = np.column_stack([(d @ c)[0] for d in _derivatives(zi[np.newaxis],
                                                                             cubic)])
                hessian = jacobian.T @ (jacobian * w[:, None]) + 1e-9 * np.eye(k)
                gradient = jacobian.T @ (residual * w)
                zi = np.clip(zi + np.linalg.solve(hessian, gradient), lower, upper)
            residual = x - (_terms(zi[np.newaxis], cubic) @ c)[0]
            chi2[i] = float(np.mean(residual ** 2 * w))
            used[i] = float(np.sqrt(excess[i])) if given is None else float(
                np.sqrt(np.median(total - s2)))
            out_z[i] = zi
            out_err[i] = np.sqrt(np.diag(np.linalg.inv(hessian)))
        labels = out_z * self.label_scale_ + self.label_loc_
        errors = out_err * self.label_scale_ * self.error_scale_
        return labels, errors, chi2, used

    # -- files ----------------------------------------------------------------------------

    def write(self, path, overwrite=False):
        """Save the fitted model to a FITS file (read it back with `read`).

        Parameters
        ----------
        path : str or path-like
        overwrite : bool, default=False

        Examples
        --------
        >>> import tempfile
        >>> from pathlib import Path
        >>> import astropy.units as u
        >>> from stellarlatent.datasets import make_synthetic_spectra
        >>> train, y_train = make_synthetic_spectra(60, snr=None, rv=0 * u.km / u.s,
        ...                                         random_state=0)
        >>> model = QuadraticSpectrumModel().fit(train, y_train)
        >>> with tempfile.TemporaryDirectory() as folder:
        ...     model.write(Path(folder) / "cannon.fits")
        ...     again = QuadraticSpectrumModel.read(Path(folder) / "cannon.fits")
        >>> bool((again.coefficients_ == model.coefficients_).all())
        True
        """
        check_is_fitted(self, "coefficients_")
        header = fits.Header({"FORMAT": _FORMAT, "CUBIC": bool(self.cubic),
                              "NITER": int(self.n_iter)})
        labels = fits.BinTableHDU.from_columns([
            fits.Column(name="label", format="16A", array=np.array(self.labels)),
            fits.Column(name="unit", format="16A",
                        array=np.array([self.label_units_[n].to_string() for n in self.labels])),
            fits.Column(name="loc", format="D", array=self.label_loc_),
            fits.Column(name="scale", format="D", array=self.label_scale_),
            fits.Column(name="min", format="D", array=self.label_min_),
            fits.Column(name="max", format="D", array=self.label_max_),
            fits.Column(name="error_scale", format="D", array=self.error_scale_),
        ], name="LABELS")
        continuum = json.dumps(None if self.continuum is None
                               else describe(make_pipeline(self.continuum)))
        continuum = fits.BinTableHDU.from_columns(
            [fits.Column(name="json", format=f"{len(continuum)}A", array=np.array([continuum]))],
            name="CONTINUUM")
        fits.HDUList([
            fits.PrimaryHDU(self.coefficients_, header=header),
            continuum,
            fits.ImageHDU(self.model_variance_, name="VARIANCE"),
            fits.ImageHDU(self.training_labels_, name="TRAINING"),
            labels,
            axis_hdu(self.spectral_axis_),
        ]).writeto(Path(path), overwrite=overwrite)

    @classmethod
    def read(cls, path):
        """A fitted `QuadraticSpectrumModel` from a file that `write` wrote.

        Raises
        ------
        ValueError
            If ``path`` is not such a file.
        """
        with fits.open(Path(path), memmap=False) as hdus:
            header = hdus[0].header
            if header.get("FORMAT") != _FORMAT:
                raise ValueError(f"path {str(path)!r} is not a QuadraticSpectrumModel file "
                                 f"(FORMAT {header.get('FORMAT')!r})")
            table = hdus["LABELS"].data
            labels = tuple(str(v).strip() for v in table["label"])
            spec = json.loads(str(hdus["CONTINUUM"].data["json"][0]))
            continuum = None if spec is None else build(spec)[0]
            model = cls(labels=labels, cubic=bool(header["CUBIC"]), n_iter=int(header["NITER"]),
                        continuum=continuum)
            model.coefficients_ = hdus[0].data.astype(float)
            model.model_variance_ = hdus["VARIANCE"].data.astype(float)
            model.training_labels_ = hdus["TRAINING"].data.astype(float)
            model.label_units_ = {label: label_unit(label, u.Unit(str(unit).strip()))
                                  for label, unit in zip(labels, table["unit"])}
            for name, column in (("label_loc_", "loc"), ("label_scale_", "scale"),
                                 ("label_min_", "min"), ("label_max_", "max"),
                                 ("error_scale_", "error_scale")):
                setattr(model, name, np.asarray(table[column], dtype=float))
            model.spectral_axis_ = read_axis(hdus)
        return model


def _n_rows(y):
    """Number of rows of a label table, dict or array."""
    if hasattr(y, "colnames"):
        return len(y)
    if isinstance(y, dict):
        return len(np.atleast_1d(next(iter(y.values()))))
    return len(np.asarray(y))
