"""Flux-conserving resampling: stellarlatent against specutils, in one run.

Two cases:

* real MILES spectra (4300 pixels, linear 0.9 A grid) onto a 4096-pixel
  log-uniform grid;
* HARPS-size spectra (312,501 pixels, 0.01 A from 3785 A) onto a 262,144-pixel
  log-uniform grid.

For each, the script prints the time per spectrum (the median of ``--repeats``
runs, 3 by default, for both) of specutils'
``FluxConservingResampler`` (one spectrum at a time, on a subset, because it is
slow) and of stellarlatent's ``Resampler`` (a fresh one in every run, so the
sparse-matrix build is included), given either a list of Spectrum (one per file) or the same
spectra as one batch Spectrum, the ratios, and the largest relative difference
between the two on every pixel inside the input coverage. The last line is a
JSON summary.

Usage::

    python benchmarks/bench_resample.py [--miles DIR] [--n-miles 300] [--n-harps 16] [--repeats 3]
"""

import argparse
import json
import time

import astropy.units as u
import numpy as np
from astropy.nddata import InverseVariance
from specutils import Spectrum
from specutils.manipulation import FluxConservingResampler

from stellarlatent.datasets._paths import find_data_dir
from stellarlatent.preprocessing import Resampler, SpectralGrid


def _spectrum(wave, flux):
    """A dimensionless spectrum on ``wave`` [Angstrom] with an inverse variance of 1e4."""
    return Spectrum(
        flux=flux * u.dimensionless_unscaled,
        spectral_axis=wave * u.AA,
        uncertainty=InverseVariance(np.full(flux.size, 1e4)),
    )


def read_miles_spectra(directory, n):
    from astropy.io import fits

    spectra = []
    for path in sorted(directory.glob("MILES_res2.50_star_m*V.fits"))[:n]:
        header = fits.getheader(path)
        flux = fits.getdata(path).astype(float)
        wave = header["CRVAL1"] + header["CDELT1"] * (
            np.arange(header["NAXIS1"]) + 1 - header["CRPIX1"]
        )
        spectra.append(_spectrum(wave, flux))
    return spectra


def harps_like_spectra(n, seed=0):
    rng = np.random.default_rng(seed)
    wave = 3785.0 + 0.01 * np.arange(312_501)
    out = []
    for _ in range(n):
        lines = rng.uniform(3800, 6900, 400)
        flux = np.ones(wave.size)
        for center in lines:
            sel = slice(int((center - 3785 - 1) / 0.01), int((center - 3785 + 1) / 0.01))
            flux[sel] -= 0.5 * np.exp(-0.5 * ((wave[sel] - center) / 0.05) ** 2)
        flux += 0.01 * rng.standard_normal(wave.size)
        out.append(_spectrum(wave, flux))
    return out


def as_batch(spectra):
    """The same spectra as one batch Spectrum (what a reader of many files returns)."""
    flux = np.vstack([s.flux.value for s in spectra])
    ivar = np.vstack([s.uncertainty.array for s in spectra])
    return Spectrum(
        flux=flux * spectra[0].flux.unit,
        spectral_axis=spectra[0].spectral_axis,
        uncertainty=InverseVariance(ivar),
        spectral_axis_index=1,
    )


def timed(function, repeats):
    """``(median seconds over repeats, result of the last call)``."""
    seconds = []
    for _ in range(repeats):
        start = time.perf_counter()
        result = function()
        seconds.append(time.perf_counter() - start)
    return float(np.median(seconds)), result


def time_ours(inputs, grid, n_spectra, repeats):
    """Seconds per spectrum of a fresh Resampler (matrix build included), median of repeats."""
    seconds, batch = timed(lambda: Resampler(grid).fit(inputs).transform(inputs), repeats)
    return seconds / n_spectra, batch


def compare(name, spectra, grid, n_reference, repeats=3):
    ours_list, batch = time_ours(spectra, grid, len(spectra), repeats)
    ours_batch, batch_b = time_ours(as_batch(spectra), grid, len(spectra), repeats)
    assert np.array_equal(batch.flux.value, batch_b.flux.value, equal_nan=True)

    reference = FluxConservingResampler()
    worst = 0.0
    seconds, expected = timed(
        lambda: [reference(s, grid.spectral_axis) for s in spectra[:n_reference]], repeats)
    theirs = seconds / n_reference
    for i, exp in enumerate(expected):
        good = ~batch.mask[i] & np.isfinite(exp.flux.value)
        diff = np.abs(batch.flux.value[i, good] - exp.flux.value[good])
        worst = max(worst, float(np.max(diff / np.abs(exp.flux.value[good]))))
    print(
        f"{name}: {len(spectra)} spectra x {spectra[0].flux.size} px -> {len(grid)} px\n"
        f"  specutils FluxConservingResampler: {theirs * 1e3:10.2f} ms/spectrum "
        f"(one at a time, {n_reference} spectra)\n"
        f"  stellarlatent, list of Spectrum:   {ours_list * 1e3:10.3f} ms/spectrum "
        f"-> {theirs / ours_list:7.0f}x faster\n"
        f"  stellarlatent, one batch Spectrum: {ours_batch * 1e3:10.3f} ms/spectrum "
        f"-> {theirs / ours_batch:7.0f}x faster\n"
        f"  max relative difference inside the coverage: {worst:.2e}"
    )
    return {
        "specutils_ms_per_spectrum": theirs * 1e3,
        "list_ms_per_spectrum": ours_list * 1e3,
        "batch_ms_per_spectrum": ours_batch * 1e3,
        "speedup_list": theirs / ours_list,
        "speedup_batch": theirs / ours_batch,
        "max_rel_diff": worst,
        "n_spectra": len(spectra),
    }


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--miles", help="MILES folder (default: the shared data folder)")
    parser.add_argument("--n-miles", type=int, default=300)
    parser.add_argument("--n-miles-reference", type=int, default=20)
    parser.add_argument("--n-harps", type=int, default=16)
    parser.add_argument("--n-harps-reference", type=int, default=1)
    parser.add_argument("--repeats", type=int, default=3,
                        help="runs of each timing; the median is reported (default: 3)")
    args = parser.parse_args(argv)

    from pathlib import Path

    miles = Path(args.miles) if args.miles else find_data_dir("miles")
    if miles is None:
        raise SystemExit("MILES data not found: pass --miles DIR or set STELLARLATENT_DATA")
    results = {}
    spectra = read_miles_spectra(miles, args.n_miles)
    grid = SpectralGrid.log_uniform(3545 * u.AA, 7405 * u.AA, 4096)
    results["miles"] = compare("MILES", spectra, grid, args.n_miles_reference, args.repeats)

    spectra = harps_like_spectra(args.n_harps)
    grid = SpectralGrid.log_uniform(3790 * u.AA, 6900 * u.AA, 262_144)
    results["harps"] = compare("HARPS-size", spectra, grid, args.n_harps_reference, args.repeats)
    print(json.dumps(results))


if __name__ == "__main__":
    main()
