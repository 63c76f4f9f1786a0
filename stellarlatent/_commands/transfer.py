"""Bringing raw files of other instruments to a model's, and saying how well they fit it."""

from pathlib import Path

import astropy.units as u
import numpy as np

from .._batch import per_spectrum
from .._logging import log
from . import UserError

__all__ = ["transfer_steps", "instrument_step", "denoise_step", "lowest_training_snr",
           "add_transfer_columns"]

#: the reasons of ``out_of_range_reason``, joined with "; "
_REASONS = {
    "labels": "{labels} at the edge of the training range or unlike the training spectra",
    "coverage": "covers {coverage:.0%} of the model's wavelengths (less than {minimum:.0%})",
    "coarser": "its FWHM ({fwhm:.2f} A at its middle pixel) is coarser than the model's "
               "resolution; it cannot be sharpened",
    "rv": "no radial velocity found in the search range; the spectrum was left unshifted",
    "noise": "noisier than the training spectra (S/N about {snr:.1f} at the median continuum, "
             "below {minimum:.0f}); the denoiser pulls such spectra towards the training stars",
}


def transfer_steps(model, args, model_arg=None):
    """``(before, after)`` for `model_data`: what raw files go through around the model's own
    preprocessing (the instrument matcher, a bundled model's denoiser), each a list or None.

    ``model_arg`` is the command-line name of ``model`` (default ``args.model``).
    """
    model_arg = args.model if model_arg is None else model_arg
    matcher = instrument_step(model, args, model_arg)
    denoiser = denoise_step(args, model_arg)
    return (None if matcher is None else [matcher]), (None if denoiser is None else [denoiser])


def instrument_step(model, args, model_arg):
    """The `~stellarlatent.preprocessing.InstrumentMatcher` that raw files go through, or None.

    A bundled model carries its instrument (resolution, medium, velocity
    templates, wavelength range); a model file its wavelength medium, its
    grid and, when its training files all stated one, their resolution: its
    files are cut to near that grid, converted to that medium, broadened to
    that resolution, and otherwise left as they are.
    """
    from .. import pretrained
    from .._preprocessing_spec import instrument_of
    from ..preprocessing import InstrumentMatcher

    if getattr(args, "no_match", False):
        if args.resolution is not None:
            raise UserError("--resolution: the spectra are matched to the model's resolution, "
                            "which --no-match turns off; leave one out")
        if getattr(args, "keep_cosmic_rays", False):
            raise UserError("--keep-cosmic-rays: the cosmic rays are masked as the spectra are "
                            "matched to the model's instrument, which --no-match turns off; "
                            "leave one out")
        return None
    keep = getattr(args, "keep_cosmic_rays", False)
    name = _bundled_name(model_arg)
    if name is not None:
        try:
            return pretrained.instrument_matcher(
                name, input_resolution=args.resolution, rescale=True).set_params(
                    mask_cosmic_rays=not keep)
        except ValueError as exc:
            if "records no instrument" not in str(exc):
                raise UserError(f"MODEL: {exc}") from None
    # a model trained by fit-vae or fit-remap records the resolution its files stated
    instrument = instrument_of(getattr(model, "preprocessing_", None))
    if args.resolution is not None and not instrument:
        log.warning("--resolution: the model file %s records no resolution of its own, so the "
                    "spectra are not broadened to it",
                    Path(str(model_arg)).name)
    medium = getattr(model, "wavelength_medium_", None)
    axis = getattr(model, "spectral_axis_", None)
    # fit-vae and fit-remap read their files without the matching: the flux stays as given
    return InstrumentMatcher(fwhm=instrument.get("fwhm"), resolution=instrument.get("resolution"),
                             medium=medium, remove_rv=False, input_resolution=args.resolution,
                             flux_density=None, mask_cosmic_rays=not keep,
                             wavelength_range=None if axis is None else axis[[0, -1]]).fit()


def _bundled_name(model_arg):
    from .. import pretrained

    name = str(model_arg)
    if not Path(name).exists() and name in pretrained.list_models()["name"]:
        return name
    return None


def denoise_step(args, model_arg):
    """The bundled model's `~stellarlatent.preprocessing.PCADenoiser`, or None.

    None for a model file, a model that records no denoiser, or ``--no-denoise``.
    """
    from .. import pretrained

    name = _bundled_name(model_arg)
    if name is None or getattr(args, "no_denoise", False):
        return None
    try:
        return pretrained.denoiser(name)
    except ValueError as exc:
        raise UserError(f"MODEL: {exc}") from None


def lowest_training_snr(model_arg):
    """The lowest S/N of the spectra the bundled model ``model_arg`` was trained on, or None.

    As its registry entry records it (``lowest_training_snr``, written by
    ``benchmarks/build_pretrained.py`` from the S/N ranges it draws the noise
    of its training spectra from); None for a model file, and where no
    noise was drawn (the training stars as observed) or the entry records none.
    """
    from .. import pretrained

    name = _bundled_name(model_arg)
    value = None if name is None else pretrained._entry(name).get("lowest_training_snr")
    return None if value is None else float(value)


def add_transfer_columns(table, X, *, min_coverage, lowest_snr=None):
    """Add ``coverage``, the matching's columns, ``out_of_range`` and its reason to ``table``.

    ``coverage`` is the fraction of the model's pixels with a valid flux;
    ``rv``/``rv_err`` the velocities removed, ``input_medium`` the
    wavelength convention each file stated (or ``"unknown"``), ``input_fwhm`` and
    ``resolution_status`` what was done to the resolution (where the
    matching recorded them), ``cosmic_rays`` the pixels it interpolated over as cosmic
    rays, ``excess_noise`` the noise a bundled model's
    denoiser found beyond its training spectra's (in units of the
    normalised flux at the median continuum; where it ran).
    ``out_of_range`` is true when a label is out of the training range, the
    coverage is below ``min_coverage``, the spectrum is coarser than the
    model, no radial velocity was found where the matching looked for one,
    or the denoiser found more noise than the training spectra had (an S/N
    below ``lowest_snr``, the lowest of theirs, `lowest_training_snr`; None
    judges no noise); ``out_of_range_reason`` says which.
    """
    n = len(table)
    table["coverage"] = _valid_fraction(X)
    meta = getattr(X, "meta", None) or {}
    # a velocity the matching measured comes with its error; a file's header value does not
    measured = per_spectrum(meta.get("rv_err"), n)
    for key in ("rv", "rv_err", "input_medium", "input_fwhm", "resolution_status",
                "cosmic_rays", "excess_noise"):
        column = meta.get(key)
        if per_spectrum(column, n) and (measured or key not in ("rv", "rv_err")):
            table[key] = column
    flags = [name for name in table.colnames if name.endswith("_out_of_range")]
    status = table["resolution_status"] if "resolution_status" in table.colnames else None
    # the denoiser's excess noise, judged against the noisiest training spectra where the
    # model records them
    noise = np.asarray(table["excess_noise"] if "excess_noise" in table.colnames else np.zeros(n),
                       dtype=float)
    noisier = (np.zeros(n, dtype=bool) if lowest_snr is None
               else noise > 1.0 / float(lowest_snr))
    reasons = []
    for k in range(n):
        why = []
        labels = [name[: -len("_out_of_range")] for name in flags if table[name][k]]
        if labels:
            why.append(_REASONS["labels"].format(labels=", ".join(labels)))
        if table["coverage"][k] < min_coverage:
            why.append(_REASONS["coverage"].format(coverage=table["coverage"][k],
                                                   minimum=min_coverage))
        if status is not None and status[k] == "coarser":
            fwhm = table["input_fwhm"][k]
            why.append(_REASONS["coarser"].format(fwhm=float(u.Quantity(fwhm, u.AA).value)))
        if measured and not np.isfinite(float(u.Quantity(table["rv"][k]).value)):
            why.append(_REASONS["rv"])
        if noisier[k]:
            why.append(_REASONS["noise"].format(snr=1.0 / noise[k], minimum=float(lowest_snr)))
        reasons.append("; ".join(why))
    table["out_of_range"] = np.array([bool(r) for r in reasons])
    table["out_of_range_reason"] = np.array(reasons, dtype=str)
    if table["out_of_range"].any():
        log.warning("%d of %d spectra are out of the model's range (see out_of_range_reason)",
                    int(table["out_of_range"].sum()), n)


def _valid_fraction(X, chunk=1024):
    """The fraction of valid pixels of each spectrum of a batch or a store (read by chunks)."""
    if hasattr(X, "read_arrays"):
        parts = []
        for start in range(0, len(X), chunk):
            flux, mask, _ = X.read_arrays(np.arange(start, min(start + chunk, len(X))))
            parts.append((~mask & np.isfinite(flux)).mean(axis=1))
        return np.concatenate(parts)
    mask = np.asarray(X.mask, dtype=bool) if X.mask is not None else np.zeros(X.flux.shape, bool)
    return (~mask & np.isfinite(np.asarray(X.flux.value))).mean(axis=1)
