"""Write tests/data/deep_remap_v0.1.dev95.pt: a DeepREMAP file of the format fit-remap wrote
before it trained ensembles (stellarlatent 0.1.dev95, commit d231fc1).

Run from a checkout of that commit: ``python tests/data/make_deep_remap_fixture.py OUT``.
"""
import sys

import astropy.units as u
from sklearn.pipeline import make_pipeline

from stellarlatent._preprocessing_spec import describe
from stellarlatent.datasets import make_synthetic_spectra
from stellarlatent.estimators import DeepREMAP
from stellarlatent.preprocessing import ContinuumNormalizer, Resampler, SpectralGrid


def main(out):
    grid = SpectralGrid.log_uniform(4800 * u.AA, 5400 * u.AA, 64)
    pipeline = make_pipeline(Resampler(grid), ContinuumNormalizer(method="median"))
    spectra, labels = make_synthetic_spectra(40, grid, teff=(4500.0, 6500.0), random_state=3)
    X = pipeline.fit_transform(spectra)
    remap = DeepREMAP(("teff", "logg", "feh"), n_bins=6, base_channels=2, n_stages=1,
                      blocks_per_stage=1, embedding_dim=4, max_epochs=1, batch_size=16,
                      validation_fraction=0.0, random_state=0, verbose=0, device="cpu")
    remap.fit(X[:30], labels[:30])
    remap.calibrate(X[30:], labels[30:])
    remap.preprocessing_ = describe(pipeline)
    print(remap.save(out))


if __name__ == "__main__":
    main(sys.argv[1])
