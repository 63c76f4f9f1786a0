"""``stellarlatent prepare``: files -> resampled, normalised SpectralStore."""

import time
from pathlib import Path

from .._preprocessing_spec import describe
from .inputs import (Skips, UserError, expand_paths, labels_for_files, make_pipeline,
                     make_reader, read_label_table)

__all__ = ["run_prepare"]


def run_prepare(args):
    """Build the store; return the exit code."""
    from ..datasets import SpectralStore

    started = time.perf_counter()
    out = Path(args.out)
    if out.exists() and not args.overwrite:
        raise UserError(f"--out: {out} exists; pass --overwrite to replace it")
    skips = Skips()
    files = expand_paths(args.files, skips)
    if not files:
        raise UserError(_nothing_read(skips))
    reader = make_reader(args.format, args.phoenix_wave)
    pipeline = make_pipeline(args.grid, args.grid_kind, args.normalize, args.resample,
                             args.pad_multiple_of)
    labels = None
    if args.labels:
        labels = labels_for_files(read_label_table(args.labels), [f.name for f in files])

    meta = {"preprocessing": None, "created_by": "stellarlatent prepare"}
    with skips.capture():
        try:
            store = SpectralStore.from_files(
                files, out, reader=reader, preprocess=pipeline, labels=labels,
                batch_size=args.batch_size, progress=not args.quiet, overwrite=args.overwrite,
                meta=meta,
            )
        except ValueError as exc:
            if "none of the files could be read" in str(exc):
                raise UserError(_nothing_read(skips)) from None
            raise
    n, n_pixels, axis = len(store), store.n_pixels, store.spectral_axis
    store.close()
    # written after the build: from_files takes meta before it has seen a file
    _record_preprocessing(out, describe(pipeline))
    print(f"stellarlatent prepare: {n} spectra x {n_pixels} pixels "
          f"({axis[0]:.6g} to {axis[-1]:.6g}) written to {out} from {len(files)} files "
          f"in {time.perf_counter() - started:.0f} s; {len(skips)} skipped")
    for line in skips.summary():
        print(line)
    return 0


def _record_preprocessing(path, spec):
    import json

    import h5py

    with h5py.File(path, "a") as f:
        meta = json.loads(f.attrs.get("meta", "{}"))
        meta["preprocessing"] = spec
        f.attrs["meta"] = json.dumps(meta)


def _nothing_read(skips):
    reasons = "; ".join(f"{name}: {reason}" for name, reason in skips.items[:3])
    more = f" (and {len(skips) - 3} more)" if len(skips) > 3 else ""
    return f"no input could be read{': ' + reasons + more if reasons else ''}"
