"""Conversion between air and vacuum wavelengths (IAU standard)."""

import astropy.units as u
import numpy as np

__all__ = ["air_to_vacuum", "vacuum_to_air"]

#: Wavelengths below this (in Angstrom) are vacuum wavelengths by IAU convention.
_AIR_LIMIT = 2000.0


def recorded_medium(meta):
    """``meta["wavelength_medium"]`` as ``"air"`` or ``"vacuum"``, or None when unknown.

    Examples
    --------
    >>> recorded_medium({"wavelength_medium": "vacuum"}), recorded_medium({}), recorded_medium(None)
    ('vacuum', None, None)
    """
    try:
        medium = (meta or {}).get("wavelength_medium")
    except AttributeError:
        return None
    return medium if medium in ("air", "vacuum") else None


def _refractive_index(vacuum_aa):
    """Refractive index of standard air at vacuum wavelengths in Angstrom.

    The dispersion formula of Birch & Downs (1994, Metrologia 31, 315) for dry
    air at 15 C, 101 325 Pa and 450 ppm CO2, as adopted by Morton (2000, ApJS
    130, 403, eq. 8) and used by VALD.
    """
    s2 = (1e4 / vacuum_aa) ** 2
    return 1.0 + 8.34254e-5 + 2.406147e-2 / (130.0 - s2) + 1.5998e-4 / (38.9 - s2)


def _wavelength_in_aa(wavelength, name):
    if not isinstance(wavelength, u.Quantity):
        raise TypeError(
            f"{name} must be an astropy Quantity with length units, "
            f"got {type(wavelength).__name__}"
        )
    if not wavelength.unit.is_equivalent(u.AA):
        raise u.UnitsError(
            f"{name} must have length units (air and vacuum differ only for "
            f"wavelengths), got '{wavelength.unit}'"
        )
    values = np.asarray(wavelength.to_value(u.AA), dtype=float)
    if np.any(values[np.isfinite(values)] <= 0):
        raise ValueError(f"{name} must be positive")
    return values


def _convert(wavelength, convert):
    """``wavelength`` converted by ``convert`` (of values in Angstrom), in its own unit."""
    values = _wavelength_in_aa(wavelength, "wavelength")
    with np.errstate(invalid="ignore"):
        converted = convert(values)
    return (converted * u.AA).to(wavelength.unit)


def _vacuum_to_air_aa(vacuum):
    """Air wavelengths of vacuum ones in Angstrom, ``vacuum / n(vacuum)`` from 2000 Angstrom."""
    return np.where(vacuum >= _AIR_LIMIT, vacuum / _refractive_index(vacuum), vacuum)


def _air_to_vacuum_aa(air):
    """Vacuum wavelengths of air ones in Angstrom (from 2000 Angstrom): the closed-form inverse of
    N. Piskunov (VALD), then three fixed-point iterations of ``vacuum = air * n(vacuum)``."""
    s2 = (1e4 / air) ** 2
    vacuum = air * (
        1.0
        + 8.336624212083e-5
        + 2.408926869968e-2 / (130.1065924522 - s2)
        + 1.599740894897e-4 / (38.92568793293 - s2)
    )
    for _ in range(3):
        vacuum = air * _refractive_index(vacuum)
    return np.where(air >= _AIR_LIMIT, vacuum, air)


def vacuum_to_air(wavelength):
    """Convert vacuum wavelengths to air wavelengths.

    Uses the IAU standard: the Birch & Downs (1994) refractive index of
    standard air as given by Morton (2000) and used by VALD,
    ``air = vacuum / n(vacuum)``. Following the IAU convention, wavelengths
    below 2000 Angstrom are always given in vacuum and are returned unchanged.

    Parameters
    ----------
    wavelength : `~astropy.units.Quantity`
        Vacuum wavelengths (any length unit, any shape).

    Returns
    -------
    `~astropy.units.Quantity`
        Air wavelengths in the unit of ``wavelength``.

    See Also
    --------
    air_to_vacuum : the inverse, exact to better than 1e-12 relative.

    Examples
    --------
    >>> import astropy.units as u
    >>> from stellarlatent.preprocessing import vacuum_to_air
    >>> vacuum_to_air(6564.61 * u.AA).round(2)
    <Quantity 6562.8 Angstrom>
    """
    return _convert(wavelength, _vacuum_to_air_aa)


def air_to_vacuum(wavelength):
    """Convert air wavelengths to vacuum wavelengths.

    Inverts `vacuum_to_air` exactly: starting from the closed-form inverse of
    N. Piskunov (VALD), three fixed-point iterations of
    ``vacuum = air * n(vacuum)`` make the round trip exact to better than
    1e-12 relative. Wavelengths below 2000 Angstrom are returned unchanged
    (IAU convention). Because the limit applies to the input of each function,
    the round trip through the 0.65 Angstrom-wide band of vacuum wavelengths
    just above 2000 Angstrom, whose air wavelengths fall below 2000 Angstrom,
    is not exact.

    Parameters
    ----------
    wavelength : `~astropy.units.Quantity`
        Air wavelengths (any length unit, any shape).

    Returns
    -------
    `~astropy.units.Quantity`
        Vacuum wavelengths in the unit of ``wavelength``.

    Examples
    --------
    >>> import astropy.units as u
    >>> from stellarlatent.preprocessing import air_to_vacuum
    >>> air_to_vacuum(6562.80 * u.AA).round(2)
    <Quantity 6564.61 Angstrom>
    """
    return _convert(wavelength, _air_to_vacuum_aa)
