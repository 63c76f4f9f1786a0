"""The spectral axis of a fitted model in its FITS file: one image extension, "WAVE"."""

import astropy.units as u
from astropy.io import fits

__all__ = ["axis_hdu", "read_axis"]


def axis_hdu(axis):
    """The ``WAVE`` extension holding ``axis`` (a Quantity), its unit in ``BUNIT``."""
    return fits.ImageHDU(axis.value, header=fits.Header({"BUNIT": axis.unit.to_string()}),
                         name="WAVE")


def read_axis(hdus):
    """The spectral axis of an open HDU list that `axis_hdu` wrote into."""
    wave = hdus["WAVE"]
    return wave.data.astype(float) * u.Unit(wave.header["BUNIT"])
