"""Spectrum-in, Spectrum-out transformers that build one training batch.

Every class here is a scikit-learn transformer: ``fit`` returns ``self`` (and
learns what there is to learn), ``transform`` returns a batch
`~specutils.Spectrum` whose flux is 2-D with the spectral axis last.
"""

from .airvac import air_to_vacuum, vacuum_to_air
from .augment import InstrumentAugmenter, ccm89_extinction
from .broaden import Broadener, gaussian_broaden, rotational_broaden, rotational_profile
from .cosmic import CosmicRayMasker, find_cosmic_rays
from .denoise import PCADenoiser
from .doppler import DopplerShift, doppler_factor
from .grid import SpectralGrid
from .instrument import InstrumentMatcher
from .mask import Masker
from .noise import NoiseAugmenter
from .normalize import ContinuumNormalizer
from .pad import Padder
from .radial_velocity import RadialVelocityEstimator
from .resample import Resampler

__all__ = [
    "SpectralGrid",
    "Resampler",
    "ContinuumNormalizer",
    "DopplerShift",
    "RadialVelocityEstimator",
    "InstrumentMatcher",
    "doppler_factor",
    "Broadener",
    "gaussian_broaden",
    "rotational_broaden",
    "rotational_profile",
    "Masker",
    "CosmicRayMasker",
    "find_cosmic_rays",
    "Padder",
    "NoiseAugmenter",
    "PCADenoiser",
    "InstrumentAugmenter",
    "ccm89_extinction",
    "air_to_vacuum",
    "vacuum_to_air",
]

# the readers of real archive files, registered with specutils: spectra to preprocess come from them
from .. import datasets as _datasets  # noqa: E402,F401
