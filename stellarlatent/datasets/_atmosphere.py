"""The one-layer LTE atmosphere behind `make_synthetic_spectra`.

An Eddington grey temperature law fixes the temperature of a
continuum-forming and a line-forming layer (`_Layer`); hydrostatic equilibrium
with H-minus, hydrogen and electron-scattering opacities gives their gas and
electron pressures; Saha-Boltzmann populations set the strength of the atomic
lines and molecular bands, and a curve of growth their equivalent widths
(`_Model`). See `stellarlatent.datasets.synthetic` for what it reproduces and
what it does not.
"""

import astropy.units as u
import numpy as np
from scipy.special import i0e, i1e

from ..preprocessing.airvac import air_to_vacuum
from ._lines import ALPHA_ELEMENTS, ELEMENTS, LINES, MOLECULAR_BANDS, hydrogen_lines


_C_KMS = 299792.458
_C_AA = 2.99792458e18  # Angstrom / s
_K_B = 1.380649e-16  # erg / K
_HC_K = 1.438777e8  # h c / k in Angstrom K
_AMU = 1.66053907e-24  # g
_SIGMA_T = 6.6524587e-25  # cm^2
_LINE_CONST = 8.85282e-21  # pi e^2 / (m_e c^2) in cm, times 1e-16 (A^2 -> cm^2) and 1e8 (cm -> A)
_FWHM_PER_SIGMA = 2.0 * np.sqrt(2.0 * np.log(2.0))

#: Optical depths of the layer that forms the continuum and of the one that
#: forms lines, on the Rosseland scale of the grey Eddington atmosphere.
_TAU_CONTINUUM = 2.0 / 3.0
_TAU_LINES = 0.3
_TAU_HYDROGEN = 1.2
#: Scale of the weak-line equivalent widths, tuned so that the Sun gets
#: realistic strengths (Fe I 5250 A about 60 mA, Mg b about 1 A).
_C_METALS = 0.35
_C_HYDROGEN = 0.03
#: Half width at half maximum (A) of the Stark profile of H-beta at an
#: electron density of 1e14 cm^-3, scaled as (n_u**2 - n_l**2) lambda**2 Ne**(2/3).
_STARK_HBETA = 0.5
_LOG_GAMMA6_DEFAULT = -7.6
#: Calibration of the molecular bands: a reference star and the optical
#: depth of the molecule's strongest band head in it.
_BAND_REFERENCE = {
    "TiO": ((3500.0, 4.7, 0.0), 8.0),
    "CH": ((5000.0, 4.5, 0.0), 1.5),
    "CN": ((4500.0, 2.0, 0.0), 0.6),
    "MgH": ((4000.0, 4.7, 0.0), 0.4),
}
#: Unresolved weak metal lines (a smooth "haze" rising to the blue), as the
#: optical depth at 4000 A of the Sun.
_HAZE_SUN_4000 = 0.15
#: The haze saturates: unresolved lines never blanket more than this fraction.
_HAZE_MAX_COVER = 0.7


_EL = list(ELEMENTS)
_LOGEPS = np.array([ELEMENTS[e][0] for e in _EL])
_MASS = np.array([ELEMENTS[e][1] for e in _EL])
_CHI_ION = np.array([[ELEMENTS[e][2], ELEMENTS[e][3]] for e in _EL])
_PART = np.array([ELEMENTS[e][4:7] for e in _EL])
_SCALED = np.array([e not in ("H", "He") for e in _EL])
_ALPHA = np.array([e in ALPHA_ELEMENTS for e in _EL])
_IH = _EL.index("H")


# --------------------------------------------------------------------------- physics
def _abundances(feh, alpha_fe):
    """Number abundances relative to hydrogen, shape (n_stars, n_elements)."""
    log_eps = (
        _LOGEPS
        - 12.0
        + feh[:, None] * _SCALED
        + alpha_fe[:, None] * _ALPHA
    )
    return 10.0**log_eps


def _saha_factors(T):
    """Saha factors Phi_I and Phi_II (dyn cm^-2) of every element: (n_stars, n_elements)."""
    theta = 5040.0 / T[:, None]
    logT = np.log10(T)[:, None]
    phi1 = 0.6665 * _PART[:, 1] / _PART[:, 0] * 10 ** (2.5 * logT - theta * _CHI_ION[:, 0])
    phi2 = 0.6665 * _PART[:, 2] / _PART[:, 1] * 10 ** (2.5 * logT - theta * _CHI_ION[:, 1])
    return phi1, phi2


def _ion_fractions(T, Pe, factors=None):
    """Fractions of each element in stages I, II and III: (n_stars, n_elements, 3)."""
    phi1, phi2 = _saha_factors(T) if factors is None else factors
    r1 = phi1 / Pe[:, None]
    r2 = phi2 / Pe[:, None]
    denom = 1.0 + r1 + r1 * r2
    return np.stack([1.0 / denom, r1 / denom, r1 * r2 / denom], axis=-1)


def _electron_pressure(T, Pg, abund, guess=None, iterations=60):
    """Electron pressure in charge balance with the gas pressure (bisection in log Pe).

    With ``guess`` the bisection starts within a factor 100 of it (and only
    falls back to the full range where the root is not bracketed).
    """
    eps = abund / abund.sum(axis=1, keepdims=True)
    phi1, phi2 = _saha_factors(T)

    def excess(log_pe):
        Pe = np.exp(log_pe)[:, None]
        r1 = phi1 / Pe
        r2 = phi2 / Pe
        electrons = np.sum(eps * (r1 + 2.0 * r1 * r2) / (1.0 + r1 + r1 * r2), axis=1)
        return Pe[:, 0] - (Pg - Pe[:, 0]) * electrons

    lo = np.log(Pg) - 40.0
    hi = np.log(Pg)
    if guess is not None:
        glo = np.maximum(np.log(guess) - 4.6, lo)
        ghi = np.minimum(np.log(guess) + 4.6, hi)
        bracketed = (excess(glo) <= 0) & (excess(ghi) > 0)
        lo = np.where(bracketed, glo, lo)
        hi = np.where(bracketed, ghi, hi)
        if bracketed.all():
            iterations = 24
    for _ in range(iterations):
        mid = 0.5 * (lo + hi)
        too_high = excess(mid) > 0
        hi = np.where(too_high, mid, hi)
        lo = np.where(too_high, lo, mid)
    return np.exp(0.5 * (lo + hi))


def _hminus_bf_cross_section(wave):
    """H-minus bound-free cross-section (cm^2) from the fit of Gray (2005, eq. 8.11)."""
    coeffs = [1.99654, -1.18267e-5, 2.64243e-6, -4.40524e-10, 3.23992e-14,
              -1.39568e-18, 2.78701e-23]
    alpha = np.polynomial.polynomial.polyval(wave, coeffs) * 1e-18
    return np.where(wave < 16419.0, np.clip(alpha, 0.0, None), 0.0)


def _hminus_ff_coeffs(wave):
    lw = np.log10(wave)
    f0 = -2.2763 - 1.6850 * lw + 0.76661 * lw**2 - 0.053346 * lw**3
    f1 = 15.2827 - 9.2846 * lw + 1.99381 * lw**2 - 0.142631 * lw**3
    f2 = -197.789 + 190.266 * lw - 67.9775 * lw**2 + 10.6913 * lw**3 - 0.625151 * lw**4
    return f0, f1, f2


class _Layer:
    """Temperature, pressures and populations of one atmospheric layer per star."""

    def __init__(self, teff, logg, abund, tau):
        self.T = teff * (0.75 * (tau + 2.0 / 3.0)) ** 0.25
        self.theta = 5040.0 / self.T
        self.abund = abund
        g = 10.0**logg
        mass_per_h = np.sum(abund * _MASS, axis=1) * _AMU
        Pg = 10.0 ** (4.0 + 0.6 * (logg - 4.44)) * np.ones_like(teff)
        self.Pe = None
        for _ in range(16):
            self._set_pressures(Pg)
            kappa = self.rosseland_mean() / mass_per_h
            Pg = np.sqrt(Pg * g * tau / kappa)
        self._set_pressures(Pg)

    def _set_pressures(self, Pg):
        self.Pg = Pg
        self.Pe = _electron_pressure(self.T, Pg, self.abund, guess=self.Pe)
        self.frac = _ion_fractions(self.T, self.Pe)
        self.fH0 = self.frac[:, _IH, 0]
        eps_h = 1.0 / self.abund.sum(axis=1)
        self.P_H = (Pg - self.Pe) * eps_h
        self.n_H = self.P_H / (_K_B * self.T)
        self.n_e = self.Pe / (_K_B * self.T)
        self.ne_per_H = self.Pe / self.P_H

    def kappa(self, wave):
        """Continuous opacity per hydrogen nucleus (cm^2); ``wave`` (m,) or (n, m) in A."""
        wave = np.asarray(wave, dtype=float)
        col = (slice(None), None)
        theta, Pe = self.theta[col], self.Pe[col]
        stim = 1.0 - 10.0 ** (-12398.4 / wave * theta / 1.0)
        hm_bf = 4.158e-10 * _hminus_bf_cross_section(wave) * Pe * theta**2.5
        hm_bf = hm_bf * 10.0 ** (0.754 * theta) * stim
        f0, f1, f2 = _hminus_ff_coeffs(wave)
        lt = np.log10(theta)
        hm_ff = 1e-26 * Pe * 10.0 ** (f0 + f1 * lt + f2 * lt**2)
        # neutral hydrogen bound-free from the lowest three open levels, plus the
        # integral over higher levels and free-free (Gray 2005, eq. 8.8)
        n0 = np.ceil(np.sqrt(wave / 911.267)).astype(int)
        hbf = np.zeros(np.broadcast_shapes(theta.shape, wave.shape))
        for k in range(3):
            n = n0 + k
            chi_n = 13.598 * (1.0 - 1.0 / n**2)
            hbf = hbf + 10.0 ** (-theta * chi_n) / n**3
        chi_top = 13.598 * (1.0 - 1.0 / (n0 + 3) ** 2)
        loge_over = np.log10(np.e) / (2.0 * theta * 13.598)
        hbf = hbf + loge_over * (10.0 ** (-theta * chi_top) - 10.0 ** (-theta * 13.598))
        hff = loge_over * 10.0 ** (-theta * 13.598)
        h = 1.0449e-26 * wave**3 * (hbf + hff) * stim
        return self.fH0[col] * (hm_bf + hm_ff + h) + _SIGMA_T * self.ne_per_H[col]

    def rosseland_mean(self):
        wave = np.geomspace(1500.0, 40000.0, 48)
        x = _HC_K / (wave * self.T[:, None])
        weight = x**2 * np.exp(-x) / np.expm1(-x) ** 2 / wave**4 * wave  # dB/dT dlnlambda
        weight = np.nan_to_num(weight)
        inv = np.sum(weight / self.kappa(wave), axis=1) / np.sum(weight, axis=1)
        return 1.0 / inv

    def level_fraction(self, element, stage, chi):
        """Population per H nucleus of a level of excitation ``chi`` (with its g in gf)."""
        j = _EL.index(element)
        frac = self.frac[:, j, stage] * self.abund[:, j]
        return frac / _PART[j, stage] * 10.0 ** (-self.theta * chi)

    def source_gradient(self, wave):
        """d ln B / d ln tau of the grey atmosphere: how deep weak lines get."""
        x = _HC_K / (wave * self.T[:, None])
        return 0.25 * x / -np.expm1(-x)


def _doppler_cog_table():
    log_tau = np.linspace(-5.0, 10.0, 601)
    x = np.linspace(0.0, 12.0, 4001)
    integrand = -np.expm1(-(10.0 ** log_tau[:, None]) * np.exp(-x[None, :] ** 2))
    return log_tau, 2.0 * np.trapezoid(integrand, x, axis=1)


_COG_LOG_TAU, _COG_F = _doppler_cog_table()


def _equivalent_width(S, sigma, gamma):
    """Voigt curve of growth (Rodgers & Williams 1974 combination), all in A.

    ``S`` is the integrated optical depth of the line, ``sigma`` the Gaussian
    standard deviation and ``gamma`` the Lorentzian half width.
    """
    tau_d = S / (np.sqrt(2.0 * np.pi) * sigma)
    w_d = np.sqrt(2.0) * sigma * np.where(
        tau_d < 1e-5,
        np.sqrt(np.pi) * tau_d,
        np.interp(np.log10(np.maximum(tau_d, 1e-300)), _COG_LOG_TAU, _COG_F),
    )
    x = S / (2.0 * np.pi * gamma)
    w_l = 2.0 * np.pi * gamma * x * (i0e(x) + i1e(x))
    return np.sqrt(np.clip(w_d**2 + w_l**2 - (w_d * w_l / S) ** 2, 0.0, None))


def _matching_strength(W, S, sigma, gamma):
    """Strength S' whose curve of growth with width ``sigma`` gives ``W`` (bisection)."""
    lo = np.log(np.maximum(W, 1e-300))
    hi = np.log(np.maximum(S, 1e-300))
    for _ in range(11):
        mid = 0.5 * (lo + hi)
        high = _equivalent_width(np.exp(mid), sigma, gamma) > W
        hi = np.where(high, mid, hi)
        lo = np.where(high, lo, mid)
    return np.exp(0.5 * (lo + hi))


def _pseudo_voigt(x, sigma, gamma):
    """Area-normalised pseudo-Voigt (Thompson, Cox & Hastings 1987)."""
    fg = _FWHM_PER_SIGMA * sigma
    fl = 2.0 * gamma
    f = (fg**5 + 2.69269 * fg**4 * fl + 2.42843 * fg**3 * fl**2 + 4.47163 * fg**2 * fl**3
         + 0.07842 * fg * fl**4 + fl**5) ** 0.2
    r = fl / f
    eta = 1.36603 * r - 0.47719 * r**2 + 0.11116 * r**3
    half = 0.5 * f
    lorentz = half / (np.pi * (x**2 + half**2))
    s = f / _FWHM_PER_SIGMA
    gauss = np.exp(-0.5 * (x / s) ** 2) / (np.sqrt(2.0 * np.pi) * s)
    return eta * lorentz + (1.0 - eta) * gauss


def _holtsmark_like(x, width):
    """Area-normalised profile with Stark-like |x|**-2.5 wings."""
    return 1.0 / (2.6424 * width * (1.0 + np.abs(x / width) ** 2.5))


def _carbon_monoxide_fractions(layer):
    """Fractions of carbon and oxygen left free by CO (dissociation equilibrium).

    ``K_p = P_C P_O / P_CO`` from statistical mechanics (D0 = 11.09 eV,
    partition functions near 5000 K); CO takes most carbon in K and M stars,
    which weakens the CH and CN bands there.
    """
    T = layer.T
    k_p = 1.6e13 * (T / 5000.0) ** 2.5 * 10.0 ** (-11.09 * layer.theta)
    c_tot = layer.abund[:, _EL.index("C")] * layer.P_H
    o_tot = layer.abund[:, _EL.index("O")] * layer.P_H
    c_free, o_free = c_tot, o_tot
    for _ in range(30):
        c_free = c_tot / (1.0 + o_free / k_p)
        o_free = o_tot / (1.0 + c_free / k_p)
    return c_free / c_tot, o_free / o_tot


def _molecule_density(layer, molecule):
    """Molecules per hydrogen nucleus, up to a constant (dissociation equilibrium)."""
    d0, (a, b), _ = MOLECULAR_BANDS[molecule]
    free_c, free_o = _carbon_monoxide_fractions(layer)
    free = {"C": free_c, "O": free_o}
    na = layer.level_fraction(a, 0, 0.0) * _PART[_EL.index(a), 0] * free.get(a, 1.0)
    nb = layer.level_fraction(b, 0, 0.0) * _PART[_EL.index(b), 0] * free.get(b, 1.0)
    return na * nb * layer.n_H * layer.T**-1.5 * 10.0 ** (d0 * layer.theta)


_BAND_SCALE = {}


def _band_scale(molecule):
    if molecule not in _BAND_SCALE:
        (teff, logg, feh), tau = _BAND_REFERENCE[molecule]
        abund = _abundances(np.array([feh]), np.array([0.0]))
        layer = _Layer(np.array([teff]), np.array([logg]), abund, _TAU_LINES)
        head, _, _, strength = max(MOLECULAR_BANDS[molecule][2], key=lambda b: b[3])
        raw = _molecule_density(layer, molecule) / layer.kappa(np.array([head]))[:, 0]
        _BAND_SCALE[molecule] = tau / (strength * raw[0])
    return _BAND_SCALE[molecule]


def _haze_strength(layer, wave):
    """Optical depth of unresolved weak metal lines (a smooth function of wavelength)."""
    fe_neutral = layer.level_fraction("Fe", 0, 2.5)[:, None]
    fe_ion = layer.level_fraction("Fe", 1, 3.0)[:, None] * 0.05
    blue = np.exp(-(wave - 4000.0) / 250.0)
    return (fe_neutral + fe_ion) * wave**2 * blue / layer.kappa(wave)


_HAZE_SCALE = {}


def _haze_scale():
    if "sun" not in _HAZE_SCALE:
        layer = _Layer(np.array([5772.0]), np.array([4.44]),
                       _abundances(np.array([0.0]), np.array([0.0])), _TAU_LINES)
        _HAZE_SCALE["sun"] = _HAZE_SUN_4000 / _haze_strength(layer, np.array([4000.0]))[0, 0]
    return _HAZE_SCALE["sun"]


# --------------------------------------------------------------------------- spectra
class _Model:
    """Doppler-shifted spectra of a chunk of stars on an internal log-uniform grid.

    Lines are placed at their shifted wavelengths and the continuum is evaluated
    at rest-frame wavelengths, so the relativistic shift is exact.
    """

    #: Margin (pixels) on both sides of the line optical-depth array.
    pad = 2000

    def __init__(self, wave, air):
        self.wave = wave
        self.log_step = np.log(wave[-1] / wave[0]) / (wave.size - 1)
        self.wave_padded = wave[0] * np.exp(
            self.log_step * np.arange(-self.pad, wave.size + self.pad)
        )
        lo, hi = wave[0], wave[-1]
        lines = LINES[(LINES["wave"] > lo - 150) & (LINES["wave"] < hi + 150)]
        hydrogen = hydrogen_lines()
        h_wave = hydrogen["wave"]
        if air:
            h_wave = _vacuum_to_air_aa(h_wave)
            self.line_wave = lines["wave"]
            self.band_shift = 1.0
        else:
            self.line_wave = air_to_vacuum(lines["wave"] * u.AA).to_value(u.AA)
            self.band_shift = 1.000277
        keep = (h_wave > lo - 400) & (h_wave < hi + 400)
        self.lines = lines
        self.hydrogen = hydrogen[keep]
        self.h_wave = h_wave[keep]

    def spectra(self, teff, logg, feh, alpha_fe, factor):
        abund = _abundances(feh, alpha_fe)
        cont_layer = _Layer(teff, logg, abund, _TAU_CONTINUUM)
        line_layer = _Layer(teff, logg, abund, _TAU_LINES)
        rest = self.wave[None, :] / factor[:, None]
        # Balmer lines are so sensitive to temperature that their deeper, hotter
        # layers dominate: they get a layer of their own
        hydrogen_layer = _Layer(teff, logg, abund, _TAU_HYDROGEN)
        tau = self._lines(line_layer, hydrogen_layer, teff, logg, factor)
        tau += self._bands(line_layer, rest)
        haze = -np.expm1(-self._haze(line_layer, rest) / _HAZE_MAX_COVER) * _HAZE_MAX_COVER
        continuum, residual = self._continuum(cont_layer, teff, rest)
        return continuum * (1.0 - haze) * (residual + (1.0 - residual) * np.exp(-tau))

    def _continuum(self, layer, teff, rest):
        """Continuum flux and the residual flux of saturated lines, per pixel.

        The continuum is the Planck function at the temperature where the
        continuum optical depth is 2/3 (Eddington-Barbier); a saturated line
        still shows the Planck function at the boundary temperature of the
        grey atmosphere, 2**-0.25 Teff. Both are smooth but for the hydrogen
        edges, so they are computed on a coarse grid that resolves the edges
        and interpolated (in logarithm).
        """
        coarse = np.geomspace(rest.min() * 0.999, rest.max() * 1.001, 800)
        edges = 911.267 * np.arange(2, 5) ** 2
        coarse = np.sort(np.concatenate([coarse, edges - 1e-3, edges + 1e-3]))
        ratio = layer.rosseland_mean()[:, None] / layer.kappa(coarse)
        temp = teff[:, None] * (0.5 * (ratio + 1.0)) ** 0.25
        x_cont = _HC_K / (coarse * temp)
        x_top = _HC_K / (coarse * teff[:, None] * 0.5**0.25)
        log_flux = 5.0 * np.log(5000.0 / coarse) - np.log(np.expm1(x_cont))
        log_residual = np.log(np.expm1(x_cont)) - np.log(np.expm1(x_top))
        flux = np.stack([np.interp(r, coarse, f) for r, f in zip(rest, log_flux)])
        residual = np.stack([np.interp(r, coarse, f) for r, f in zip(rest, log_residual)])
        return np.exp(flux), np.exp(np.minimum(residual, 0.0))

    def _deposit(self, tau, centre, profile, half_width):
        """Add ``profile(dx)`` around ``centre`` (A, per star) within ``half_width`` pixels.

        ``tau`` is padded by ``self.pad`` pixels on both sides; one dense block
        spans the windows of all stars (they differ only by their Doppler shifts).
        """
        pix = np.log(centre / self.wave[0]) / self.log_step
        first = int(np.floor(pix.min())) - half_width + self.pad
        last = int(np.floor(pix.max())) + half_width + 2 + self.pad
        first, last = max(first, 0), min(last, tau.shape[1])
        if first >= last:
            return
        dx = (self.wave_padded[None, first:last] - centre[:, None]).astype(np.float32)
        tau[:, first:last] += profile(dx)

    def _lines(self, layer, hydrogen_layer, teff, logg, factor):
        n = teff.size
        step = self.log_step
        tau = np.zeros((n, self.wave.size + 2 * self.pad), dtype=np.float32)
        T = layer.T
        xi = np.clip(1.0 + 0.35 * (4.5 - logg), 0.8, 3.0)  # microturbulence, km/s
        pressure = layer.n_H * (T / 1e4) ** 0.3
        depth_factor = layer.source_gradient(self.line_wave) / layer.kappa(self.line_wave)
        for k, (line, wave0) in enumerate(zip(self.lines, self.line_wave)):
            j = _EL.index(line["element"])
            pop = layer.level_fraction(line["element"], line["stage"], line["chi"])
            S = (_C_METALS * depth_factor[:, k] * _LINE_CONST
                 * wave0**2 * 10.0 ** line["loggf"] * pop)
            if np.all(S < 1e-5):
                continue
            v_dopp = np.sqrt(2 * _K_B * T / (_MASS[j] * _AMU) / 1e10 + xi**2)
            sigma = wave0 * v_dopp / _C_KMS / np.sqrt(2.0)
            g6 = line["loggamma6"] if np.isfinite(line["loggamma6"]) else _LOG_GAMMA6_DEFAULT
            gamma_rad = 2.223e15 / wave0**2
            gamma = (gamma_rad + 10.0**g6 * pressure) * wave0**2 / (4 * np.pi * _C_AA)
            W = _equivalent_width(S, sigma, gamma)
            sigma_dep = np.maximum(sigma, 0.7 * wave0 * step)
            S_dep = S.copy()
            # lines far from saturation keep their strength whatever the core width
            redo = (sigma_dep > sigma) & (S > 0.05 * sigma)
            if redo.any():
                S_dep[redo] = _matching_strength(W[redo], S[redo], sigma_dep[redo], gamma[redo])
            wing = np.sqrt(S_dep * gamma / (np.pi * 2e-3))
            reach = np.max(np.minimum(5 * sigma_dep + wing, 60.0))
            half = int(np.ceil(reach / (wave0 * step))) + 1
            self._deposit(
                tau, wave0 * factor,
                lambda dx: S_dep[:, None].astype(np.float32) * _pseudo_voigt(
                    dx, sigma_dep[:, None].astype(np.float32), gamma[:, None].astype(np.float32)
                ),
                min(half, self.pad - 2),
            )
        self._hydrogen(tau, hydrogen_layer, factor)
        return tau[:, self.pad : self.pad + self.wave.size].astype(float)

    def _hydrogen(self, tau, layer, factor):
        T = layer.T
        step = self.log_step
        depth_factor = layer.source_gradient(self.h_wave) / layer.kappa(self.h_wave)
        for k, (line, wave0) in enumerate(zip(self.hydrogen, self.h_wave)):
            nl, nu = line["lower"], line["upper"]
            chi = 13.598 * (1.0 - 1.0 / nl**2)
            pop = layer.fH0 * 10.0 ** (-layer.theta * chi) / 2.0
            S = (_C_HYDROGEN * depth_factor[:, k] * _LINE_CONST
                 * wave0**2 * 10.0 ** line["loggf"] * pop)
            stark = (_STARK_HBETA / 12.0 * (nu**2 - nl**2) * (wave0 / 4861.35) ** 2
                     * (layer.n_e / 1e14) ** (2.0 / 3.0))
            resonance = 10.0**-6.3 * layer.n_H * wave0**2 / (4 * np.pi * _C_AA)
            sigma = wave0 * np.sqrt(2 * _K_B * T / (1.008 * _AMU) / 1e10) / _C_KMS / np.sqrt(2)
            sigma = np.maximum(sigma, 0.7 * wave0 * step)
            width = np.hypot(stark + resonance, sigma)
            reach = np.max(np.minimum(width * (S / (2.6424 * width * 3e-3)) ** 0.4, 200.0))
            half = int(np.ceil(reach / (wave0 * step))) + 1
            self._deposit(
                tau, wave0 * factor,
                lambda dx: S[:, None].astype(np.float32)
                * _holtsmark_like(dx, width[:, None].astype(np.float32)),
                min(half, self.pad - 2),
            )

    def _bands(self, layer, rest):
        tau = np.zeros(rest.shape)
        for molecule, (_, _, bands) in MOLECULAR_BANDS.items():
            density = _band_scale(molecule) * _molecule_density(layer, molecule)
            for head, direction, length, strength in bands:
                head = head * self.band_shift
                depth = density * strength / layer.kappa(np.array([head]))[:, 0]
                rows = np.flatnonzero(depth >= 1e-4)
                if rows.size == 0:
                    continue
                # the band covers 12 e-folding lengths beyond its head (6e-6 of its depth)
                reach = np.log(np.max(depth[rows]) / 1e-4) * length
                far = head + direction * reach
                lo, hi = min(head, far) - 10.0, max(head, far) + 10.0
                cols = slice(
                    np.searchsorted(self.wave, lo * 0.998), np.searchsorted(self.wave, hi * 1.002)
                )
                if cols.start >= cols.stop:
                    continue
                offset = (rest[rows, cols] - head) * direction
                shape = np.exp(-np.where(offset >= 0, offset / length, -offset / 1.0))
                tau[rows, cols] += depth[rows, None] * shape
        return tau

    def _haze(self, layer, rest):
        coarse = np.geomspace(rest.min() * 0.999, rest.max() * 1.001, 200)
        strength = _haze_scale() * _haze_strength(layer, coarse)
        return np.stack([np.interp(r, coarse, s) for r, s in zip(rest, strength)])


def _vacuum_to_air_aa(wave):
    s2 = (1e4 / wave) ** 2
    n = 1.0 + 8.34254e-5 + 2.406147e-2 / (130.0 - s2) + 1.5998e-4 / (38.9 - s2)
    return wave / n
