"""Trained models shipped with the package: label spectra without training.

Each model is a saved estimator inside the package, listed in
``registry.json`` with what it was trained on, the spectra it expects and the
precision measured when it was built, and checked against the SHA-256 recorded
there before it is loaded (with ``torch.load(weights_only=True)``). Every model
carries its preprocessing (``preprocessing_``), so `stellarlatent predict`
puts raw files on its grid and normalises them as its training spectra were.
``benchmarks/build_pretrained.py`` rebuilds the files from the MILES library
with fixed seeds and prints the numbers the registry records.

Examples
--------
>>> from stellarlatent import pretrained
>>> table = pretrained.list_models()
>>> "name" in table.colnames and "precision" in table.colnames
True
"""

import hashlib
import json
from pathlib import Path

from astropy.table import Table

# the readers of real archive files, registered with specutils: the models label such files
from .. import datasets as _datasets  # noqa: F401

__all__ = ["list_models", "load", "model_path", "instrument_matcher", "read_rv_templates",
           "denoiser", "pipeline", "REGISTRY_FILE"]

_HERE = Path(__file__).parent
#: The registry of the bundled models (name -> description, file and SHA-256).
REGISTRY_FILE = _HERE / "registry.json"
_COLUMNS = ("name", "kind", "training_data", "wavelength_range", "resolution", "medium",
            "label_ranges", "precision", "recipe")


def _registry(registry=None):
    path = Path(registry) if registry is not None else REGISTRY_FILE
    if not path.is_file():
        return {}
    try:
        entries = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise ValueError(f"the registry of pretrained models {path} is unreadable: {exc}") from exc
    if not isinstance(entries, dict):
        raise ValueError(f"the registry of pretrained models {path} is not a JSON object")
    return entries


def list_models(registry=None):
    """The bundled models, one row each.

    Returns
    -------
    `~astropy.table.Table`
        Columns ``name``, ``kind`` (the estimator class), ``training_data``,
        ``wavelength_range``, ``resolution``, ``medium`` (air or vacuum
        wavelengths), ``label_ranges``, ``precision`` (as measured by the
        build script on stars it was not trained on) and ``recipe`` (how it
        was trained and calibrated: for instance whether each type of star
        got its own calibration).
    """
    rows = [[name] + [str(entry.get(column, "")) for column in _COLUMNS[1:]]
            for name, entry in sorted(_registry(registry).items())]
    if not rows:
        return Table(names=_COLUMNS, dtype=[str] * len(_COLUMNS))
    return Table(rows=rows, names=_COLUMNS)


def _entry(name, registry=None):
    entries = _registry(registry)
    if not isinstance(name, str) or name not in entries:
        known = ", ".join(sorted(entries)) or "none are installed"
        raise ValueError(f"name must be the name of a bundled model ({known}), got {name!r}")
    return entries[name]


def _checked_file(name, filename, digest, registry, what):
    folder = Path(registry).parent if registry is not None else _HERE
    path = folder / filename
    if not path.is_file():
        raise ValueError(f"the {what} of the pretrained model {name!r} ({path}) is missing: "
                         "reinstall stellarlatent")
    found = hashlib.sha256(path.read_bytes()).hexdigest()
    if found != digest:
        raise ValueError(f"the {what} of the pretrained model {name!r} ({path}) has SHA-256 "
                         f"{found[:16]}..., not the {digest[:16]}... the package "
                         "recorded: it is damaged or was replaced; reinstall stellarlatent")
    return path


def model_path(name, registry=None):
    """The file of the bundled model ``name``, checked against its recorded SHA-256.

    Raises
    ------
    ValueError
        If ``name`` is unknown, or the file is missing or differs from the
        one the registry records.
    """
    entry = _entry(name, registry)
    return _checked_file(name, entry["file"], entry["sha256"], registry, "file")


def load(name, device="auto", registry=None):
    """A fitted estimator: the bundled model ``name``.

    Parameters
    ----------
    name : str
        A name of `list_models`.
    device : str, default="auto"
    registry : path, default=None
        Another registry file (its model files lie beside it).

    Returns
    -------
    `~stellarlatent.estimators.DeepREMAPEnsemble`, `~stellarlatent.estimators.DeepREMAP` or `~stellarlatent.estimators.SpectralVAE`
        With its preprocessing in ``preprocessing_``.
    """  # noqa: E501 - a numpydoc type is one line
    from ..estimators import DeepREMAP, DeepREMAPEnsemble, SpectralVAE

    entry = _entry(name, registry)
    classes = {"DeepREMAPEnsemble": DeepREMAPEnsemble, "DeepREMAP": DeepREMAP,
               "SpectralVAE": SpectralVAE}
    kind = entry.get("kind")
    if kind not in classes:
        raise ValueError(f"the pretrained model {name!r} is of unknown kind {kind!r}")
    return classes[kind].load(model_path(name, registry), device=device)


def instrument_matcher(name, *, input_resolution=None, input_fwhm=None, remove_rv=None,
                       rescale=False, registry=None):
    """A fitted `~stellarlatent.preprocessing.InstrumentMatcher` for the bundled model ``name``.

    It brings spectra of another instrument to the model's: its wavelength
    range (pixels far beyond it left out), its wavelength medium, its
    line-spread function (finer spectra broadened, coarser ones flagged) and
    the rest frame, with radial velocities measured against
    the model's own templates (median spectra of its training stars in bins
    of Teff, checked against their recorded SHA-256); their uncertainties
    include the error the templates add (``rv_systematic``, measured on the
    training stars, which are at rest).

    Parameters
    ----------
    name : str
        A name of `list_models` whose model records its instrument.
    input_resolution : float, default=None
        Resolving power of the spectra, when their files do not record it.
    input_fwhm : `~astropy.units.Quantity`, default=None
        Their FWHM instead.
    remove_rv : bool, default=None
        Whether to measure the radial velocities and shift the spectra to
        the rest frame; None: as the model records (the DeepREMAP models
        do; ``"miles-vae"`` does not, since one of its latents reads the
        velocity).
    rescale : bool, default=False
        Divide each spectrum by its median flux (see
        `~stellarlatent.preprocessing.InstrumentMatcher`).
    registry : path, default=None

    Returns
    -------
    `~stellarlatent.preprocessing.InstrumentMatcher`

    Examples
    --------
    >>> from stellarlatent import pretrained
    >>> matcher = pretrained.instrument_matcher("miles", input_resolution=1800)
    >>> matcher.fwhm, matcher.medium, len(matcher.rv_estimators_)
    (<Quantity 2.5 Angstrom>, 'air', 8)
    """
    import astropy.units as u

    from ..preprocessing import InstrumentMatcher

    entry = _entry(name, registry)
    instrument = entry.get("instrument")
    if not isinstance(instrument, dict):
        raise ValueError(f"the pretrained model {name!r} records no instrument to match")
    if remove_rv is None:
        remove_rv = bool(instrument.get("remove_rv", True))
    templates = None
    if remove_rv and instrument.get("rv_templates"):
        path = _checked_file(name, instrument["rv_templates"], instrument["rv_templates_sha256"],
                             registry, "radial-velocity templates")
        templates = read_rv_templates(path, instrument.get("medium"))
    wavelength_range = instrument.get("wavelength_range")
    if wavelength_range is not None:
        wavelength_range = u.Quantity([u.Quantity(v) for v in wavelength_range])
    matcher = InstrumentMatcher(fwhm=u.Quantity(instrument["fwhm"]),
                                medium=instrument.get("medium"),
                                input_resolution=input_resolution, input_fwhm=input_fwhm,
                                rv_templates=templates, remove_rv=remove_rv, rescale=rescale,
                                rv_systematic=u.Quantity(instrument.get("rv_systematic",
                                                                        0 * u.km / u.s)),
                                wavelength_range=wavelength_range)
    return matcher.fit()


def read_rv_templates(path, medium="air"):
    """The radial-velocity templates a bundled model's registry names, as one batch Spectrum.

    The file holds the templates' flux in its primary HDU and their
    wavelengths (Angstrom) in ``WAVE``; ``medium`` is recorded in ``meta``.

    Examples
    --------
    >>> from stellarlatent import pretrained
    >>> templates = pretrained.read_rv_templates(pretrained.REGISTRY_FILE.parent
    ...                                          / "miles-rv-templates.fits")
    >>> templates.flux.shape[1] == templates.spectral_axis.size, templates.meta
    (True, {'wavelength_medium': 'air'})
    """
    import astropy.units as u
    from astropy.io import fits
    from specutils import Spectrum

    with fits.open(path, memmap=False) as hdus:
        flux, wave = hdus[0].data.astype(float), hdus["WAVE"].data.astype(float)
    return Spectrum(flux=flux * u.one, spectral_axis=wave * u.AA,
                    meta={"wavelength_medium": medium}, spectral_axis_index=1)


def denoiser(name, registry=None):
    """The fitted `~stellarlatent.preprocessing.PCADenoiser` of the bundled model ``name``.

    Its prior was learned from the model's training stars, on the model's
    grid and after its preprocessing; it removes the noise that a spectrum
    carries beyond theirs (checked against its recorded SHA-256), with the
    ``noise_exponent`` the registry records (0 where it records none).

    Returns
    -------
    `~stellarlatent.preprocessing.PCADenoiser` or None
        None when the model records no denoiser.

    Examples
    --------
    >>> from stellarlatent import pretrained
    >>> prior = pretrained.denoiser("miles-normalized")
    >>> prior.components_.shape
    (64, 2048)
    """
    from ..preprocessing import PCADenoiser

    entry = _entry(name, registry)
    if not entry.get("denoiser"):
        return None
    path = _checked_file(name, entry["denoiser"], entry["denoiser_sha256"], registry, "denoiser")
    return PCADenoiser(prior_file=path,
                       noise_exponent=float(entry.get("denoiser_noise_exponent", 0.0))).fit()


def pipeline(name, *, input_resolution=None, input_fwhm=None, match=True, denoise=True,
             registry=None):
    """The preprocessing from raw spectra of any instrument to the input of model ``name``.

    `instrument_matcher` (when the model records its instrument and ``match``
    is true; each spectrum divided by its median, so that files in
    different flux units make one batch), then the model's own
    preprocessing (resampling onto its grid, normalisation), then its
    `denoiser` (when it records one and ``denoise`` is true), as
    ``stellarlatent predict`` applies them.

    Parameters
    ----------
    name : str
        A name of `list_models`.
    input_resolution, input_fwhm : optional
        The spectra's resolution, where their ``meta`` does not record it
        (see `instrument_matcher`).
    match : bool, default=True
        Whether to bring the spectra to the model's instrument first.
    denoise : bool, default=True
        Whether to remove the noise in excess of the model's training
        spectra last (spectra as noisy as those come through unchanged).
    registry : path, default=None

    Returns
    -------
    `~sklearn.pipeline.Pipeline`
        Fitted; ``transform`` takes `~specutils.Spectrum` objects on any grids.

    Examples
    --------
    >>> import astropy.units as u
    >>> from stellarlatent import pretrained
    >>> from stellarlatent.datasets import make_synthetic_spectra
    >>> spectra, _ = make_synthetic_spectra(3, teff=5800.0, logg=4.4, feh=0.0, snr=100,
    ...                                     rv=[-50, 10, 120] * u.km / u.s, resolution=5000,
    ...                                     air=False, random_state=0)
    >>> X = pretrained.pipeline("miles").transform(spectra)  # vacuum, R = 5000, moving
    >>> X.flux.shape, X.meta["resolution_status"].tolist(), X.meta["rv"].round(-1)
    ((3, 2048), ['matched', 'matched', 'matched'], <Quantity [-50.,  10., 120.] km / s>)
    >>> labels = pretrained.load("miles").predict(X)
    """
    import astropy.units as u
    import numpy as np
    from sklearn.pipeline import make_pipeline
    from specutils import Spectrum

    from .._preprocessing_spec import build
    from ..preprocessing.denoise import store_continuum_for_denoiser

    entry = _entry(name, registry)
    model = load(name, device="cpu", registry=registry)
    spec = getattr(model, "preprocessing_", None)
    if spec is None:
        raise ValueError(f"the pretrained model {name!r} records no preprocessing")
    own = build(spec)
    # the model's steps learn nothing from spectra (a fixed grid, a per-spectrum
    # normalisation): fitted on one flat spectrum on its grid
    axis = model.spectral_axis_
    own.fit(Spectrum(flux=np.ones(axis.shape) * u.one, spectral_axis=axis))
    steps = [step for _, step in own.steps]
    if match and isinstance(entry.get("instrument"), dict):
        # the models divide by the median or a running quantile, blind to the flux scale:
        # rescaled, spectra in different flux units make one batch
        steps.insert(0, instrument_matcher(name, input_resolution=input_resolution,
                                           input_fwhm=input_fwhm, rescale=True,
                                           registry=registry))
    prior = denoiser(name, registry) if denoise else None
    if prior is not None:
        steps.append(prior)
    return make_pipeline(*store_continuum_for_denoiser(steps))
