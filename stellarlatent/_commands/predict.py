"""``stellarlatent predict``: labels (DeepREMAP) or latents (SpectralVAE) of spectra."""

import time
from pathlib import Path

import numpy as np
from astropy.table import QTable

from .inputs import Skips, UserError
from .models import load_model, model_data

__all__ = ["run_predict"]


def run_predict(args):
    """Write the table; return the exit code."""
    from ..estimators import DeepREMAP

    started = time.perf_counter()
    out = Path(args.out)
    if out.exists() and not args.overwrite:
        raise UserError(f"--out: {out} exists; pass --overwrite to replace it")
    model = load_model(args.model, args.device)
    model.set_params(verbose=0)
    skips = Skips()
    X, names, _, n_inputs = model_data(model, args, skips)
    try:
        if isinstance(model, DeepREMAP):
            result = model.predict(X)
        else:
            Z = model.transform(X)
            result = QTable({f"z{i}": Z[:, i] for i in range(Z.shape[1])})
    finally:
        if hasattr(X, "label_names"):
            X.close()
    result.add_column(np.array(names, dtype=str), name="filename", index=0)
    result.meta["model"] = Path(args.model).name
    result.write(out, overwrite=True)
    kind = "labels" if isinstance(model, DeepREMAP) else "latents"
    print(f"stellarlatent predict: {kind} of {len(result)} spectra from {n_inputs} inputs "
          f"written to {out} in {time.perf_counter() - started:.0f} s; {len(skips)} skipped")
    for line in skips.summary():
        print(line)
    return 0
