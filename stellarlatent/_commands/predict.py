"""``stellarlatent predict``: labels (DeepREMAP) or latents (SpectralVAE) of spectra."""

import time
from pathlib import Path

import numpy as np
from astropy.table import QTable

from .inputs import Skips
from .models import MODEL_RAW_OPTIONS, is_remap, load_model, model_data, store_input
from .outputs import check_table_out, write_table
from .transfer import add_transfer_columns, lowest_training_snr, transfer_steps

__all__ = ["run_predict"]


def run_predict(args):
    """Write the table; return the exit code."""
    started = time.perf_counter()
    # checked before the work: the extension names a format astropy writes, the folder takes files
    out, fmt = check_table_out(args.out, overwrite=args.overwrite)
    # a corrupt *.h5, or a store among files, fails now
    store_input(args, options=MODEL_RAW_OPTIONS)
    model = load_model(args.model, args.device)
    skips = Skips()
    raw = store_input(args, options=MODEL_RAW_OPTIONS) is None
    before, after = transfer_steps(model, args) if raw else (None, None)
    X, names, _, n_inputs = model_data(model, args, skips, before=before, after=after)
    judged = dict(min_coverage=args.min_coverage, lowest_snr=lowest_training_snr(args.model))
    try:
        if is_remap(model):
            result = model.predict(X)
            add_transfer_columns(result, X, **judged)
        else:
            Z = model.transform(X)
            result = QTable({f"z{i}": Z[:, i] for i in range(Z.shape[1])})
            # latents of a spectrum that covers a tenth of the grid are no better than labels
            add_transfer_columns(result, X, **judged)
    finally:
        if hasattr(X, "label_names"):
            X.close()
    result.add_column(np.array(names, dtype=str), name="filename", index=0)
    result.meta["model"] = Path(args.model).name
    write_table(result, out, fmt)
    kind = "labels" if is_remap(model) else "latents"
    return skips.finish(
        f"stellarlatent predict: {kind} of {len(result)} spectra from {n_inputs} inputs "
        f"written to {out} in {time.perf_counter() - started:.0f} s; {len(skips)} skipped")
