"""Train a small estimator under torchrun (or alone) and dump what each rank ends with.

Used by test_distributed.py: ``python -m torch.distributed.run --nproc_per_node 2
distributed_job.py OUT KIND`` or ``python distributed_job.py OUT KIND``.
"""

import json
import sys
from pathlib import Path

import numpy as np
import torch

from stellarlatent.estimators import DeepREMAP, SpectralVAE
from stellarlatent.estimators._distributed import init_from_environment, rank, world_size

torch.set_num_threads(1)


def data():
    rng = np.random.default_rng(3)
    n, n_pixels = 48, 128
    teff = rng.uniform(4000, 7000, n)
    logg = rng.uniform(1, 5, n)
    x = np.linspace(-1, 1, n_pixels)
    depth = (teff[:, None] - 3500) / 4000 * np.exp(-0.5 * ((x - 0.2) / 0.05) ** 2)
    flux = 1.0 - depth - 0.05 * logg[:, None] * np.exp(-0.5 * ((x + 0.4) / 0.1) ** 2)
    flux += 0.01 * rng.standard_normal(flux.shape)
    return flux.astype(np.float32), np.column_stack([teff, logg])


def main(out, kind):
    init_from_environment()
    out = Path(out)
    X, y = data()
    checkpoint_dir = out / "checkpoints" if "checkpoint" in kind else None
    if kind.startswith("vae"):
        model = SpectralVAE(latent_dim=3, variational=False, max_epochs=3, batch_size=12,
                            validation_fraction=0.25, random_state=0, verbose=0)
        model.fit(X, checkpoint_dir=checkpoint_dir)
        result = model.transform(X[:5])
    else:
        model = DeepREMAP(("teff", "logg"), n_bins=8, base_channels=4, n_stages=2,
                          blocks_per_stage=1, embedding_dim=8, max_epochs=3, batch_size=12,
                          validation_fraction=0.25, random_state=0, verbose=0)
        model.fit(X, y, checkpoint_dir=checkpoint_dir)
        result = np.column_stack([np.asarray(model.predict(X[:5])[name].value)
                                  for name in ("teff", "logg")])
    torch.save(model.module_.state_dict(), out / f"state_rank{rank()}.pt")
    np.save(out / f"result_rank{rank()}.npy", result)
    model.save(out / "model.pt")
    (out / f"history_rank{rank()}.json").write_text(json.dumps(
        {"world_size": world_size(), "history": model.history_}))


if __name__ == "__main__":
    main(*sys.argv[1:3])
