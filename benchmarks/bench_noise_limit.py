"""How much Teff, log g and [Fe/H] the noise alone must cost at a given S/N: the Cramer-Rao bound.

On the training stars of the bundled models (the held-out fifth of
``build_pretrained.py`` is left out) with Teff 4000-7000 K, on the models'
grid and normalisation, a quadratic model of every pixel in (Teff, log g,
[Fe/H]) (a cubic term in Teff; as The Cannon does;
`~stellarlatent.estimators.QuadraticSpectrumModel`) gives the derivatives of
the spectrum with respect to each label. With white noise of standard
deviation ``median flux / snr`` per pixel of the instrument's grid
(69 km/s pixels in ``bench_transfer.py``, averaged into the model's
99.6 km/s pixels), the Fisher matrix of each star is ``J^T J / sigma^2``,
and the square roots of the diagonal of its inverse bound the scatter that
the noise alone adds for any unbiased estimator, the three labels fitted
together. The script prints the median bound over the stars, and the bound
added in quadrature to an undegraded scatter (``--scatter``, by default
``"miles-normalized"``'s on the held-out FGK stars through
``bench_transfer.py``) as the growth the noise alone must cost. The
quadratic model's own residual per pixel is printed too: it is the part of
the spectra this model of their derivatives does not follow.

It then measures what a least-squares fit of that model to each star
actually loses to the noise: the stars are resampled, given S/N ``--snr``
noise, normalised and fitted by a
`~stellarlatent.estimators.QuadraticSpectrumModel` (labels started at the
true ones; each pixel weighted by the model's own residual variance and
the noise it finds), and the
robust scatter of the change of each label between the noisy and the
noise-free fit is printed next to the bound, for the running quantile
of the models (``smoothing`` None) and for a continuum estimated from
flux smoothed over ``--smoothing`` (`~stellarlatent.preprocessing.ContinuumNormalizer`).
An upper quantile of noisy flux follows the noise peaks, so the continuum
itself moves with the noise; the continuum ratio (noisy over noise-free:
its mean and its rms along each spectrum) is printed too.

The last line is JSON.

Usage::

    python benchmarks/bench_noise_limit.py               # about 80 s
    python benchmarks/bench_noise_limit.py --snr 10 --normalize median
"""

import argparse
import json
import sys
import time
from pathlib import Path

import astropy.units as u
import numpy as np
from specutils import Spectrum

from stellarlatent.estimators import QuadraticSpectrumModel
from stellarlatent.preprocessing import ContinuumNormalizer

sys.path.insert(0, str(Path(__file__).parent))
from build_pretrained import held_out_split, labelled_miles, pipeline  # noqa: E402

#: Pixel steps (km/s) of the degraded grid of bench_transfer.py and of the models' grid
INSTRUMENT_STEP, MODEL_STEP = 69.0, 99.6
FGK = (4000.0, 7000.0)


def bounds(normalised, y, snr):
    """Per-star Cramer-Rao bounds (n_stars, 3) and the model's rms residual per pixel.

    ``normalised``: the stars on the models' grid and normalisation, pixels
    invalid in any of them masked in all (they carry no information here).
    """
    model = QuadraticSpectrumModel().fit(normalised, y)
    flux = np.asarray(normalised.flux.value, float)
    good = ~np.asarray(normalised.mask)[0]
    residual = float(np.sqrt(np.mean((flux - model.model_spectra(y))[:, good] ** 2)))
    jacobian = model.model_derivatives(y)[:, good]
    sigma = np.median(flux[:, good], axis=1) / snr / np.sqrt(MODEL_STEP / INSTRUMENT_STEP)
    fisher = np.einsum("npi,npj->nij", jacobian, jacobian) / sigma[:, None, None] ** 2
    return np.sqrt(np.diagonal(np.linalg.inv(fisher), axis1=1, axis2=2)), residual


def fitted_noise(raw, y, snr, smoothing, seed=0):
    """What a fit of the quadratic model loses to the noise with one continuum estimate.

    ``raw``: spectra on the models' grid before normalisation. A
    `~stellarlatent.estimators.QuadraticSpectrumModel` normalised by the
    running quantile (of flux smoothed over ``smoothing``, or not) is fitted
    to them and labels them with and without noise, starting from the true
    labels. Returns the robust scatter of each label's change (noisy fit
    minus noise-free fit), and the mean and rms (along each spectrum,
    median over spectra) of the continuum of the noisy spectra over that
    of the noise-free ones.
    """
    normalizer = ContinuumNormalizer(method="running_quantile", smoothing=smoothing)
    flux = np.asarray(raw.flux.value, float)
    sigma = np.nanmedian(flux, axis=1, keepdims=True) / snr / np.sqrt(MODEL_STEP / INSTRUMENT_STEP)
    noisy = flux + sigma * np.random.default_rng(seed).standard_normal(flux.shape)
    clean, noisy = (Spectrum(flux=values * u.one, spectral_axis=raw.spectral_axis,
                             mask=raw.mask, spectral_axis_index=1) for values in (flux, noisy))
    model = QuadraticSpectrumModel(continuum=normalizer).fit(clean, y)
    fits = [model.predict(spectra, start=y) for spectra in (clean, noisy)]
    change = np.column_stack([np.asarray(fits[1][name].value - fits[0][name].value)
                              for name in model.labels])
    scatter = 1.4826 * np.median(np.abs(change - np.median(change, axis=0)), axis=0)
    continua = [ContinuumNormalizer(method="running_quantile", smoothing=smoothing,
                                    store_continuum=True).transform(spectra).meta["continuum"]
                for spectra in (clean, noisy)]
    ratio = (continua[1] / continua[0]).value
    return scatter, float(np.nanmedian(np.nanmean(ratio, axis=1))), float(
        np.nanmedian(np.nanstd(ratio, axis=1)))


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--miles", help="MILES folder (default: find_data_dir('miles'))")
    parser.add_argument("--snr", type=float, default=30.0, help="S/N per instrument pixel")
    parser.add_argument("--normalize", choices=("running_quantile", "median"),
                        default="running_quantile",
                        help="the normalisation of the bound (the least-squares fits compare "
                             "two running-quantile continua whatever it is)")
    parser.add_argument("--scatter", type=float, nargs=3, default=(83.0, 0.193, 0.121),
                        metavar=("TEFF", "LOGG", "FEH"),
                        help="undegraded robust scatter to add the bound to (default: "
                             "miles-normalized on the held-out FGK stars, bench_transfer.py)")
    parser.add_argument("--smoothing", type=float, default=900.0, metavar="KM_S",
                        help="running mean (km/s) of the flux from which the smoothed "
                             "continuum is estimated (default: %(default)s, about 9 pixels)")
    args = parser.parse_args(argv)
    if args.smoothing <= 0:
        parser.error(f"--smoothing must be positive, got {args.smoothing}")
    if args.snr <= 0:
        parser.error(f"--snr must be positive, got {args.snr}")
    started = time.perf_counter()
    spectra, table, y = labelled_miles(args.miles)
    _, train = held_out_split(table)
    stars = train[(y[train, 0] >= FGK[0]) & (y[train, 0] <= FGK[1])]
    prepare = pipeline(args.normalize)
    raw = prepare[0].fit_transform(spectra[stars])
    normalised = prepare[1].transform(raw)
    flux = np.asarray(normalised.flux.value, float)
    invalid = ~np.all(np.isfinite(flux) & ~np.asarray(normalised.mask), axis=0)
    normalised = Spectrum(flux=flux * u.one, spectral_axis=normalised.spectral_axis,
                          mask=np.broadcast_to(invalid, flux.shape).copy(),
                          spectral_axis_index=1)
    per_star, residual = bounds(normalised, y[stars], args.snr)
    bound = np.median(per_star, axis=0)
    scatter = np.asarray(args.scatter)
    growth = np.sqrt(scatter ** 2 + bound ** 2) / scatter
    print(f"{len(stars)} training FGK stars, {int((~invalid).sum())} pixels, "
          f"S/N {args.snr:g}: "
          f"bound {bound[0]:.1f} K, {bound[1]:.3f} dex, {bound[2]:.3f} dex; added to "
          f"{scatter[0]:g} K, {scatter[1]:g}, {scatter[2]:g} dex: growth "
          f"x{growth[0]:.3f}, x{growth[1]:.3f}, x{growth[2]:.3f}; quadratic model's rms "
          f"residual {residual:.4f} per pixel")
    fits = {}
    for label, smoothing in (("running_quantile", None),
                             ("smoothed", args.smoothing * u.km / u.s)):
        scatter, bias, wiggle = fitted_noise(raw, y[stars], args.snr, smoothing)
        fits[label] = {"fit_noise": scatter.tolist(), "continuum_bias": bias - 1.0,
                       "continuum_rms": wiggle}
        print(f"least-squares fit, continuum {label}"
              + (f" ({args.smoothing:g} km/s)" if smoothing is not None else "")
              + f": the noise moves the labels by {scatter[0]:.1f} K, {scatter[1]:.3f} dex, "
              f"{scatter[2]:.3f} dex (x{scatter[0] / bound[0]:.1f}, "
              f"x{scatter[1] / bound[1]:.1f}, x{scatter[2] / bound[2]:.1f} the bound); "
              f"noisy continuum {100 * (bias - 1):+.1f}% on average, "
              f"{100 * wiggle:.1f}% rms along the spectrum")
    print(json.dumps({"snr": args.snr, "normalize": args.normalize, "n_stars": int(len(stars)),
                      "bound": bound.tolist(), "growth": growth.tolist(),
                      "model_residual": residual, "least_squares": fits,
                      "seconds": round(time.perf_counter() - started, 1)}))


if __name__ == "__main__":
    main()
