"""Spectrum-in, Spectrum-out transformers that build one training batch.

Every class here is a scikit-learn transformer: ``fit`` returns ``self`` (and
learns what there is to learn), ``transform`` returns a batch
`~specutils.Spectrum` whose flux is 2-D with the spectral axis last.
"""

from .grid import SpectralGrid
from .resample import Resampler

__all__ = ["SpectralGrid", "Resampler"]
