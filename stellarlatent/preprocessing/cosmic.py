"""Find and mask cosmic rays: upward spikes narrower than any line a spectrograph records."""

import numbers

import numpy as np

from .._batch import per_spectrum, unknown_ivar_rows
from .._params import Interval
from ._base import SpectrumTransformer
from ._docs import fill_doc

__all__ = ["CosmicRayMasker", "find_cosmic_rays"]

#: the default height of a cosmic ray above its neighbours, in units of the noise
COSMIC_RAY_THRESHOLD = 10.0

#: A spectrograph samples its line-spread function with at least two pixels per FWHM
#: (Nyquist). On a Gaussian line of FWHM 2 pixels, the drop from the peak pixel to a
#: neighbour is at most 1.14 times the drop from that neighbour to the next one, on the
#: side where it is smaller; for the two pixels of a line centred between them, at most
#: 3.2 times. A spike must drop more steeply, on both sides, than these margins allow.
_SINGLE_STEEPNESS = 4.0
_PAIR_STEEPNESS = 8.0
#: pixels on each side (beyond the spike's neighbours) whose highest flux stands for the
#: continuum that absorption lines cannot rise above: five FWHM of a Nyquist-sampled line
_ENVELOPE_PIXELS = 10
#: which of them, from the highest, is taken as the continuum: the third, so that two
#: more spikes among them do not hide a spike
_ENVELOPE_RANK = 3
#: pixels of the blocks in which the noise is estimated from the flux
_NOISE_BLOCK = 256
#: DER_SNR (Stoehr et al. 2008): noise = this factor x median |2 f_i - f_(i-2) - f_(i+2)|
_DER_SNR = 1.482602 / np.sqrt(6.0)


def find_cosmic_rays(flux, mask=None, ivar=None, threshold=COSMIC_RAY_THRESHOLD):
    """Flag upward spikes of one or two pixels that no line-spread function can make.

    A pixel is flagged when three things hold:

    * it stands more than ``threshold`` times the noise above both its
      neighbours;
    * the flux drops from it to each neighbour more than 4 times as steeply
      as from that neighbour to the next pixel, that next drop counted one
      standard deviation of the noise larger than measured. The sharpest
      line of a Nyquist-sampled spectrum (FWHM of two pixels) drops at most
      1.14 times as steeply, on one side at least, so emission lines,
      however strong, are left alone;
    * it stands more than ``threshold`` times the noise above the
      continuum about it, the third highest of the pixels 2 to 11 pixels
      away on either side: a spike rises above the continuum, which the
      flux between two absorption lines cannot.

    Two adjacent pixels are flagged together when they pass the same tests
    with 8 for 4 (a line centred between them drops at most 3.2 times as
    steeply). Missed by design: spikes on the core of a line that do not
    reach the continuum, three or more adjacent pixels, and two spikes one
    pixel apart. Spectra sampled more coarsely than two pixels per FWHM are
    not what this test is for.

    The noise is the larger of the one the inverse variance states and the
    one the flux shows (DER_SNR of Stoehr et al. 2008, in blocks of 256
    pixels, leaving out the differences that are exactly zero, as runs of
    one value and integer counts give), so an underestimated uncertainty
    does not flag noise; where neither says anything, nothing is flagged.

    Parameters
    ----------
    flux : array-like, shape (n_spectra, n_pixels) or (n_pixels,)
        Spectra at their native sampling (before any resampling or
        broadening, which spreads a spike over several pixels); masked
        arrays keep their mask.
    mask : array of bool, the shape of ``flux`` or (n_pixels,), default=None
        ``True`` marks pixels to ignore; non-finite flux, and pixels whose
        inverse variance is not positive, are always ignored.
    ivar : array-like, the shape of ``flux``, default=None
        Inverse variance; None, or a row of all NaN (no uncertainty), has the
        noise estimated from the flux alone.
    threshold : float, default=10.0
        Height of a spike above its neighbours and above the continuum, in
        units of the noise.

    Returns
    -------
    ndarray of bool, the shape of ``flux``
        True where a cosmic ray (or another spike narrower than the
        line-spread function) was found.

    Examples
    --------
    >>> import numpy as np
    >>> rng = np.random.default_rng(0)
    >>> x = np.arange(400)
    >>> flux = 1 - 0.6 * np.exp(-0.5 * ((x - 200) / 1.5) ** 2) + rng.normal(0, 0.01, 400)
    >>> flux[[50, 120, 121]] += [3.0, 1.5, 2.0]     # one single and one double spike
    >>> np.flatnonzero(find_cosmic_rays(flux))
    array([ 50, 120, 121])
    >>> emission = 1 + 2.0 * np.exp(-0.5 * ((x - 300) / 0.85) ** 2)   # FWHM 2 pixels
    >>> find_cosmic_rays(emission + rng.normal(0, 0.01, 400)).any()
    np.False_
    """
    given_mask = np.ma.getmaskarray(flux) if np.ma.isMaskedArray(flux) else None
    flux = np.asarray(np.ma.getdata(flux), dtype=float)
    one = flux.ndim == 1
    flux = np.atleast_2d(flux)
    bad = np.zeros(flux.shape, bool)
    for extra in (given_mask, mask):
        if extra is not None:
            bad |= np.broadcast_to(np.asarray(extra, dtype=bool), flux.shape)
    unknown = np.ones(flux.shape[0], bool)
    if ivar is not None:
        ivar = np.broadcast_to(np.asarray(ivar, dtype=float), flux.shape)
        unknown = unknown_ivar_rows(ivar)
        with np.errstate(invalid="ignore"):
            bad |= ~(ivar > 0) & ~unknown[:, np.newaxis]
    found = np.zeros(flux.shape, bool)
    for k in range(flux.shape[0]):
        valid = np.flatnonzero(~bad[k] & np.isfinite(flux[k]))
        row_ivar = None if unknown[k] else ivar[k, valid]
        found[k, valid] = _spikes(flux[k, valid], row_ivar, threshold)
    return found[0] if one else found


def _spikes(f, ivar, threshold):
    """The spikes of one spectrum's valid pixels ``f`` (see `find_cosmic_rays`)."""
    n = f.size
    found = np.zeros(n, bool)
    if n < 8:
        return found
    sigma = _flux_noise(f)
    if ivar is not None:
        with np.errstate(divide="ignore", invalid="ignore"):
            stated = np.where(ivar > 0, 1.0 / np.sqrt(ivar), np.nan)
        sigma = np.fmax(sigma, stated)
    sigma = np.where(sigma > 0, sigma, np.nan)  # no noise known: nothing is judged
    # beyond the ends the flux is unknown: a pixel there is judged on its other side
    pad = _ENVELOPE_PIXELS + 3
    g = np.concatenate([np.full(pad, np.nan), f, np.full(pad, np.nan)])
    at = np.arange(n) + pad
    with np.errstate(invalid="ignore"):
        # one pixel: it stands high above both neighbours, which fall no further
        single = _steep(g[at] - g[at - 1], g[at - 1] - g[at - 2], g[at] - g[at + 1],
                        g[at + 1] - g[at + 2], sigma, threshold, _SINGLE_STEEPNESS)
        found |= single & _above_envelope(g, at, at, g[at], sigma, threshold)
        # two pixels i, i + 1 together, judged by the lower of the two
        top = np.minimum(g[at], g[at + 1])
        both = np.maximum(sigma, np.append(sigma[1:], np.nan))
        pair = _steep(top - g[at - 1], g[at - 1] - g[at - 2], top - g[at + 2],
                      g[at + 2] - g[at + 3], both, threshold, _PAIR_STEEPNESS)
        pair &= _above_envelope(g, at, at + 1, top, both, threshold)
    found |= pair
    found[1:] |= pair[:-1]
    return found


def _steep(first_left, second_left, first_right, second_right, sigma, threshold, steepness):
    """Whether a peak drops by more than ``threshold`` noise to each neighbour, and by more
    than ``steepness`` times what the flux drops one pixel further out (that drop counted
    one standard deviation of its noise larger, so that noise cannot make a line steep).

    At the ends of a spectrum a side may be missing (NaN): the sides that are there are
    judged, and at least one must be whole (both drops known).
    """
    slack = np.sqrt(2.0) * sigma
    ok = np.isfinite(sigma)
    whole = np.zeros(sigma.shape, bool)
    for first, second in ((first_left, second_left), (first_right, second_right)):
        known = np.isfinite(first)
        ok &= ~known | (first > threshold * sigma)
        full = known & np.isfinite(second)
        ok &= ~full | (first > steepness * (np.abs(second) + slack))
        whole |= full
    return ok & whole


def _above_envelope(g, first, last, height, sigma, threshold):
    """Whether ``height`` at pixels ``first``..``last`` of the padded flux ``g`` stands more
    than ``threshold`` noise above the continuum about them: the third highest of the pixels
    2 to ``_ENVELOPE_PIXELS + 1`` beyond them (two more spikes nearby do not hide it)."""
    near = [g[first - d] for d in range(2, _ENVELOPE_PIXELS + 2)]
    near += [g[last + d] for d in range(2, _ENVELOPE_PIXELS + 2)]
    near = np.stack(near)
    near[np.isnan(near)] = -np.inf  # beyond the ends
    envelope = np.sort(near, axis=0)[-_ENVELOPE_RANK]
    return height - envelope > threshold * sigma


def _flux_noise(f):
    """Noise per pixel from the flux (DER_SNR in blocks of `_NOISE_BLOCK` pixels)."""
    second = np.full(f.size, np.nan)
    second[2:-2] = np.abs(2.0 * f[2:-2] - f[:-4] - f[4:])
    second[second == 0] = np.nan  # runs of one value and integer counts say nothing of noise
    sigma = np.full(f.size, np.nan)
    starts = list(range(0, f.size, _NOISE_BLOCK))
    if len(starts) > 1 and f.size - starts[-1] < _NOISE_BLOCK:
        starts.pop()  # a short last block joins the one before
    for start, stop in zip(starts, starts[1:] + [f.size]):
        block = second[start:stop]
        if np.isfinite(block).any():
            sigma[start:stop] = _DER_SNR * np.nanmedian(block)
    return sigma


@fill_doc
class CosmicRayMasker(SpectrumTransformer):
    """Mask cosmic rays: upward spikes of one or two pixels, narrower than any line.

    Run it on spectra at their native sampling, before resampling or
    broadening spread a spike over its neighbours. The spikes are found by
    `find_cosmic_rays`; their pixels are masked (their flux kept, their
    inverse variance set to zero), or with ``interpolate`` given the flux
    interpolated between the pixels about them, and the number found in
    each spectrum is recorded as ``meta["cosmic_rays"]`` (added to what a
    masker before recorded).

    Parameters
    ----------
    threshold : float, default=10.0
        Height above the neighbours and the continuum, in units of the noise,
        from which a spike narrower than the line-spread function is masked.
    interpolate : bool, default=False
        Replace the flux of a cosmic ray by the linear interpolation between
        the nearest valid pixels on either side instead of masking it. Use
        it before broadening or resampling a spectrum much finer than the
        output: there a masked pixel of 0.01 Angstrom would mask a whole
        output pixel, while the interpolated one costs what it is worth.

    Examples
    --------
    %(example_imports)s
    >>> from stellarlatent.preprocessing import CosmicRayMasker
    >>> rng = np.random.default_rng(1)
    >>> flux = 1 + rng.normal(0, 0.02, (2, 300))
    >>> flux[1, 140] = 4.0
    >>> spectra = Spectrum(flux=flux * u.one, spectral_axis=np.linspace(5000, 5300, 300) * u.AA)
    >>> masked = CosmicRayMasker().fit_transform(spectra)
    >>> masked.meta["cosmic_rays"].tolist(), bool(masked.mask[1, 140])
    ([0, 1], True)
    """

    _parameter_constraints = {
        "threshold": [Interval(numbers.Real, 0, None, closed="neither",
                               description="a positive number")],
        "interpolate": ["boolean"],
    }

    def __init__(self, threshold=COSMIC_RAY_THRESHOLD, interpolate=False):
        self.threshold = threshold
        self.interpolate = interpolate

    @fill_doc
    def transform(self, spectra):
        """Mask (or interpolate over) the cosmic rays of spectra on any grids.

        %(each_grid)s
        """
        return self._transform_each_grid(spectra)

    def _transform_batch(self, batch):
        return masked_spikes(batch, self.threshold, interpolate=self.interpolate)


def masked_spikes(batch, threshold, skip=None, interpolate=False):
    """A `~stellarlatent._batch.SpectraBatch` with its spikes masked (or, with
    ``interpolate``, interpolated over) and counted in meta.

    ``skip`` (bool per spectrum) leaves those spectra unsearched: their
    count is NaN (the counts are then floats).
    """
    found = find_cosmic_rays(batch.flux, batch.mask, batch.ivar, threshold)
    counts = found.sum(axis=1)
    if skip is not None and np.any(skip):
        found[skip] = False
        counts = np.where(skip, np.nan, counts)
    earlier = batch.meta.get("cosmic_rays")
    if per_spectrum(earlier, batch.n_spectra):
        counts = counts + np.asarray(earlier)  # masked by a step before (the matcher)
    meta = {**batch.meta, "cosmic_rays": counts}
    if interpolate:
        return batch.replace(flux=_interpolated(batch.flux, batch.mask, found), meta=meta)
    ivar = None if batch.ivar is None else np.where(found, 0.0, batch.ivar)
    return batch.replace(mask=batch.mask | found, ivar=ivar, meta=meta)


def _interpolated(flux, mask, found):
    """``flux`` with the ``found`` pixels of each row interpolated linearly (in pixel index)
    between the nearest pixels on either side that are neither masked nor found."""
    flux = np.array(flux, dtype=float)
    pixels = np.arange(flux.shape[1])
    for k in np.flatnonzero(found.any(axis=1)):
        good = ~mask[k] & ~found[k] & np.isfinite(flux[k])
        flux[k, found[k]] = np.interp(pixels[found[k]], pixels[good], flux[k, good])
    return flux
