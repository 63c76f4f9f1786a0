"""``stellarlatent prepare``: files -> resampled, normalised SpectralStore."""

import contextlib
import time
import warnings

from .._logging import log
from .._preprocessing_spec import describe
from .inputs import (Skips, UserError, expand_paths, labels_for_files, make_pipeline,
                     make_reader, read_label_table)
from .outputs import STORE_SUFFIXES, check_out_file

__all__ = ["run_prepare"]


def run_prepare(args):
    """Build the store; return the exit code."""
    from ..datasets import SpectralStore

    started = time.perf_counter()
    # every option and --out are checked before the first file is read
    out = check_out_file(args.out, suffixes=STORE_SUFFIXES, kind="store (HDF5)",
                         overwrite=args.overwrite)
    if args.batch_size < 1:
        raise UserError(f"--batch-size must be a positive integer, got {args.batch_size}")
    pipeline = make_pipeline(args.grid, args.grid_kind, args.normalize, args.resample,
                             args.pad_multiple_of, smoothing=args.continuum_smoothing,
                             mask_cosmic_rays=args.mask_cosmic_rays)
    scheduler, workers = _scheduler(args)
    reader = make_reader(args.format, args.phoenix_wave)
    table = read_label_table(args.labels) if args.labels else None
    skips = Skips()
    files = expand_paths(args.files, skips)
    if not files:
        raise UserError(_nothing_read(skips))
    labels = None
    if table is not None:
        from ..datasets._io import spectrum_names

        labels = labels_for_files(table, spectrum_names(files))

    meta = {"preprocessing": None, "created_by": "stellarlatent prepare"}
    # reader threads cannot catch their warnings themselves (catch_warnings is
    # process-wide, see make_reader): with threads they are kept here, for --debug
    threads = scheduler == "threads"
    with (warnings.catch_warnings(record=True) if threads
          else contextlib.nullcontext([])) as caught:
        if threads:
            warnings.simplefilter("always")
        try:
            store = SpectralStore.from_files(
                files, out, reader=reader, preprocess=pipeline, labels=labels,
                batch_size=args.batch_size, progress=not args.quiet, overwrite=args.overwrite,
                scheduler=scheduler, n_workers=workers, on_skip=skips.on_skip, meta=meta,
            )
        except ValueError as exc:
            if "none of the files could be read" in str(exc):
                raise UserError(_nothing_read(skips)) from None
            raise
        except ImportError as exc:
            raise UserError(str(exc)) from None
        except OSError as exc:
            # the store is written under a hidden temporary name: name --out instead
            raise UserError(
                f"--out: could not write {out} "
                f"({exc.strerror or (str(exc).splitlines() or [type(exc).__name__])[0]})"
            ) from None
    for message in dict.fromkeys(str(w.message) for w in caught):
        log.debug("while reading: %s", message)
    n, n_pixels, axis = len(store), store.n_pixels, store.spectral_axis
    store.close()
    # written after the build: from_files takes meta before it has seen a file
    _record_preprocessing(out, describe(pipeline))
    on = "" if scheduler == "serial" else f" with dask ({_where(scheduler, workers)})"
    return skips.finish(
        f"stellarlatent prepare: {n} spectra x {n_pixels} pixels "
        f"({axis[0]:.6g} to {axis[-1]:.6g}) written to {out} from {len(files)} files "
        f"in {time.perf_counter() - started:.0f} s{on}; {len(skips)} skipped")


def _scheduler(args):
    """``scheduler`` and ``n_workers`` of `SpectralStore.from_files` for the options."""
    scheduler = args.dask_address or args.scheduler or "serial"
    if args.workers is not None:
        if args.workers < 1:
            raise UserError(f"--workers must be a positive integer, got {args.workers}")
        if scheduler in ("serial", "synchronous"):
            raise UserError("--workers needs --scheduler threads or processes (or --dask-address)")
    return scheduler, args.workers


def _where(scheduler, workers):
    if scheduler in ("threads", "processes"):
        return f"{scheduler}, {workers or 'one per CPU core'} workers"
    return scheduler


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
