"""A JSON description of a preprocessing pipeline, kept with stores and models.

A store built by ``stellarlatent prepare`` keeps the description in its
``meta["preprocessing"]``, and a model trained on it keeps it in its saved
file (the estimator attribute ``preprocessing_``), so that spectra read from
raw files later can be put through the same steps (resampled onto the
model's grid, normalised the same way) before the model sees them.

The description is a dict::

    {"format": "stellarlatent-preprocessing", "version": 1,
     "steps": [{"class": "Resampler", "params": {...}}, ...],
     "instrument": {"fwhm": {"Quantity": 2.5, "unit": "Angstrom"}}}

``"instrument"`` (optional) is the resolution of the spectra before the
steps, when every one recorded the same and it is coarser than a pixel of
the grid (`with_instrument`): a model keeps it, and spectra of finer
instruments are broadened to it before prediction.

Only steps that are deterministic at prediction time are described:
`~stellarlatent.preprocessing.Resampler` (its fitted grid),
`~stellarlatent.preprocessing.ContinuumNormalizer`,
`~stellarlatent.preprocessing.Masker`,
`~stellarlatent.preprocessing.CosmicRayMasker` and
`~stellarlatent.preprocessing.Padder`. Quantities and grids are written as
plain values with their units.
"""

import astropy.units as u
import numpy as np

__all__ = ["describe", "build", "grid_of", "with_instrument", "instrument_of"]

_FORMAT = "stellarlatent-preprocessing"
_VERSION = 1
_CLASSES = ("CosmicRayMasker", "Resampler", "ContinuumNormalizer", "Masker", "Padder")


def _encode(value, where):
    from .preprocessing import SpectralGrid

    if value is None or isinstance(value, (bool, str)):
        return value
    if isinstance(value, (int, np.integer)):
        return int(value)
    if isinstance(value, (float, np.floating)):
        return float(value)
    if isinstance(value, SpectralGrid):
        return {"SpectralGrid": value.to_dict()}
    if isinstance(value, u.Quantity):
        return {"Quantity": np.asarray(value.value).tolist(), "unit": value.unit.to_string()}
    if isinstance(value, (list, tuple)):
        return [_encode(v, where) for v in value]
    raise TypeError(
        f"{where} is a {type(value).__name__}, which cannot be recorded in a preprocessing "
        "description; use numbers, Quantities or lists of them"
    )


def _decode(value):
    from .preprocessing import SpectralGrid

    if isinstance(value, dict):
        if "SpectralGrid" in value:
            return SpectralGrid.from_dict(value["SpectralGrid"])
        if "Quantity" in value:
            return np.asarray(value["Quantity"], dtype=float) * u.Unit(value["unit"])
        raise ValueError(f"unknown value in a preprocessing description: {value!r}")
    if isinstance(value, list):
        return [_decode(v) for v in value]
    return value


def _steps_of(pipeline):
    if hasattr(pipeline, "steps"):
        return [step for _, step in pipeline.steps if step not in (None, "passthrough")]
    if isinstance(pipeline, (list, tuple)):
        return list(pipeline)
    return [pipeline]


def describe(pipeline):
    """The JSON-serialisable description of a pipeline (or one transformer).

    Parameters
    ----------
    pipeline : `~sklearn.pipeline.Pipeline`, transformer or list of transformers
        Steps among Resampler (fitted, or with an explicit grid),
        ContinuumNormalizer, Masker and Padder.

    Returns
    -------
    dict

    Raises
    ------
    TypeError
        If a step is of another class or has a parameter that cannot be
        written as JSON.

    Examples
    --------
    >>> import json
    >>> import astropy.units as u
    >>> from sklearn.pipeline import make_pipeline
    >>> from stellarlatent.preprocessing import ContinuumNormalizer, Resampler, SpectralGrid
    >>> grid = SpectralGrid.log_uniform(5000 * u.AA, 5100 * u.AA, 8)
    >>> spec = describe(make_pipeline(Resampler(grid), ContinuumNormalizer()))
    >>> [step["class"] for step in spec["steps"]]
    ['Resampler', 'ContinuumNormalizer']
    >>> rebuilt = build(json.loads(json.dumps(spec)))
    >>> len(grid_of(spec)), rebuilt.steps[0][1].grid == grid
    (8, True)
    """
    steps = []
    for step in _steps_of(pipeline):
        name = type(step).__name__
        if name not in _CLASSES or type(step).__module__.split(".")[0] != "stellarlatent":
            raise TypeError(
                f"pipeline: a {name} step cannot be recorded; the steps that can are {_CLASSES}"
            )
        params = step.get_params(deep=False)
        if name == "Resampler":
            grid = getattr(step, "grid_", None)
            if grid is None and params["grid"] is None:
                raise TypeError("pipeline: fit the Resampler (or give it a grid) "
                                "before describing it")
            from .preprocessing import SpectralGrid

            params["grid"] = grid if grid is not None else SpectralGrid.coerce(params["grid"])
        steps.append({"class": name,
                      "params": {k: _encode(v, f"{name}.{k}") for k, v in params.items()}})
    return {"format": _FORMAT, "version": _VERSION, "steps": steps}


def _check(spec):
    if not isinstance(spec, dict) or spec.get("format") != _FORMAT:
        raise ValueError("not a stellarlatent preprocessing description")
    if int(spec.get("version", 0)) > _VERSION:
        raise ValueError(
            f"preprocessing description version {spec['version']} is newer than this "
            "stellarlatent reads; upgrade the package"
        )
    return spec["steps"]


def build(spec):
    """An unfitted `~sklearn.pipeline.Pipeline` from a description by `describe`.

    Fit it on the spectra to transform (``fit_transform``): the steps learn
    nothing, but the Resampler must be fitted before it transforms.
    """
    from sklearn.pipeline import make_pipeline

    from . import preprocessing

    steps = []
    for step in _check(spec):
        name = step["class"]
        if name not in _CLASSES:
            raise ValueError(f"unknown preprocessing step {name!r}")
        params = {k: _decode(v) for k, v in step["params"].items()}
        steps.append(getattr(preprocessing, name)(**params))
    if not steps:
        raise ValueError("the preprocessing description has no steps")
    return make_pipeline(*steps)


def grid_of(spec):
    """The output grid of the first Resampler of a description (a `SpectralGrid`), or None."""
    for step in _check(spec):
        if step["class"] == "Resampler":
            return _decode(step["params"]["grid"])
    return None


def with_instrument(spec, meta):
    """``spec`` with the resolution that ``meta`` records (``"fwhm"`` or ``"resolution"``).

    ``meta`` is a store's or a batch's meta; without a resolution in it, or
    without ``spec``, ``spec`` is returned as it is.

    Examples
    --------
    >>> spec = {"format": "stellarlatent-preprocessing", "version": 1, "steps": []}
    >>> instrument_of(with_instrument(spec, {"fwhm": "2.5 Angstrom"}))
    {'fwhm': <Quantity 2.5 Angstrom>}
    >>> instrument_of(with_instrument(spec, {"resolution": 1800.0}))
    {'resolution': 1800.0}
    """
    if not isinstance(spec, dict) or not meta:
        return spec
    instrument = {}
    fwhm = meta.get("fwhm")
    if fwhm is not None:
        try:
            fwhm = u.Quantity(fwhm, u.AA) if not isinstance(fwhm, u.Quantity) else fwhm.to(u.AA)
        except (TypeError, ValueError, u.UnitsError):
            fwhm = None
        if fwhm is not None and fwhm.isscalar and np.isfinite(fwhm.value) and fwhm.value > 0:
            instrument["fwhm"] = fwhm
    resolution = meta.get("resolution")
    if not instrument and isinstance(resolution, (int, float)) and np.isfinite(resolution) \
            and resolution > 0:
        instrument["resolution"] = float(resolution)
    if not instrument or _finer_than_a_pixel(instrument, grid_of(spec)):
        return spec
    return dict(spec, instrument={k: _encode(v, k) for k, v in instrument.items()})


def _finer_than_a_pixel(instrument, grid):
    """Whether a line-spread function is narrower than a pixel at the middle of ``grid``.

    The grid then sets the resolution of the spectra a model sees (as it
    did before any matching): a finer spectrum is not broadened, nor a
    coarser one that is still finer than a pixel flagged.
    """
    if grid is None:
        return False
    axis = grid.spectral_axis.to(u.AA, equivalencies=u.spectral())
    axis = np.sort(axis.value)
    middle = len(axis) // 2
    pixel = axis[middle] - axis[middle - 1]
    fwhm = (instrument["fwhm"].to_value(u.AA) if "fwhm" in instrument
            else axis[middle] / instrument["resolution"])
    return fwhm < pixel


def instrument_of(spec):
    """``{"fwhm": Quantity}`` or ``{"resolution": R}`` recorded by `with_instrument`, or ``{}``."""
    if not isinstance(spec, dict):
        return {}
    return {key: _decode(value) for key, value in (spec.get("instrument") or {}).items()
            if key in ("fwhm", "resolution")}
