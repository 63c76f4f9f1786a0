"""Parallel preparation: ``SpectralStore.from_files`` serial against dask threads and processes.

The question: how much faster does ``stellarlatent prepare --scheduler ...``
turn thousands of files into a store on a small machine, and is the store the
same?

The real MILES files (797 spectra, 4300 pixels each) are listed ``--copies``
times (4 by default: 3188 files) and prepared as ``stellarlatent prepare
--format MILES --grid 3600 7400 4096`` does (read, flux-conserving resampling
onto a 4096-pixel log-uniform grid, median normalisation; batches of 64 files)
three ways:

* serially, in this process (no dask);
* with dask's ``"threads"`` scheduler and ``--workers`` threads;
* with dask's ``"processes"`` scheduler and ``--workers`` processes, their
  start-up (importing astropy, specutils, scikit-learn) included.

Every store is compared with the serial one, array by array (flux, inverse
variance, mask, labels, grid): they must be identical. The script prints the
wall-clock time of each (the best of ``--repeat`` runs), the speed-ups over
serial and, last, one JSON line.

Usage::

    python benchmarks/bench_prepare.py [--miles DIR] [--copies 4] [--workers 2] [--repeat 1]
"""

import argparse
import json
import os
import tempfile
import time
from pathlib import Path

import h5py
import numpy as np

from stellarlatent._commands.inputs import make_pipeline, make_reader
from stellarlatent.datasets import SpectralStore, find_data_dir


def arrays(path):
    """Every dataset of an HDF5 file."""
    with h5py.File(path, "r") as f:
        names = []
        f.visit(names.append)
        return {n: f[n][()] for n in names if isinstance(f[n], h5py.Dataset)}


def same_store(a, b):
    a, b = arrays(a), arrays(b)
    return a.keys() == b.keys() and all(
        a[k].dtype == b[k].dtype and np.array_equal(a[k], b[k]) for k in a)


def build(files, out, scheduler, workers, batch_size, fmt):
    """Wall-clock seconds of one build, as ``stellarlatent prepare`` does it."""
    reader = make_reader(fmt)
    pipeline = make_pipeline((3600, 7400, 4096))
    if out.exists():
        out.unlink()
    started = time.perf_counter()
    store = SpectralStore.from_files(files, out, reader=reader, preprocess=pipeline,
                                     batch_size=batch_size, progress=False,
                                     scheduler=scheduler,
                                     n_workers=None if scheduler == "serial" else workers)
    elapsed = time.perf_counter() - started
    n = len(store)
    store.close()
    return elapsed, n


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--miles", type=Path, default=None,
                        help="MILES folder (default: find_data_dir('miles'))")
    parser.add_argument("--copies", type=int, default=4,
                        help="times the MILES file list is repeated (default: %(default)s)")
    parser.add_argument("--workers", type=int, default=2,
                        help="dask threads or processes (default: %(default)s)")
    parser.add_argument("--batch-size", type=int, default=64,
                        help="files per batch (default: %(default)s)")
    parser.add_argument("--format", default="MILES",
                        help="--format of prepare; 'auto' lets specutils try every loader "
                             "(slower per file) (default: %(default)s)")
    parser.add_argument("--repeat", type=int, default=1,
                        help="runs of each; the best is kept (default: %(default)s)")
    args = parser.parse_args()

    miles = args.miles or find_data_dir("miles")
    if miles is None:
        raise SystemExit("no MILES folder: give --miles DIR or set STELLARLATENT_DATA")
    files = sorted(Path(miles).glob("MILES_res2.50_star_m*V.fits")) * args.copies
    print(f"{len(files)} files ({args.copies} x the MILES library), batches of "
          f"{args.batch_size}, --format {args.format}, {args.workers} workers; "
          f"{os.cpu_count()} CPU cores, load average {os.getloadavg()[0]:.1f}")

    times, stores = {}, {}
    with tempfile.TemporaryDirectory() as tmp:
        for scheduler in ("serial", "threads", "processes"):
            out = Path(tmp) / f"{scheduler}.h5"
            runs = [build(files, out, scheduler, args.workers, args.batch_size, args.format)
                    for _ in range(args.repeat)]
            times[scheduler] = min(t for t, _ in runs)
            stores[scheduler] = out
            print(f"{scheduler:>10s}: {times[scheduler]:7.2f} s  "
                  f"({1e3 * times[scheduler] / len(files):.2f} ms per file, {runs[0][1]} spectra)",
                  flush=True)
        identical = {s: same_store(stores["serial"], stores[s]) for s in ("threads", "processes")}
    for scheduler in ("threads", "processes"):
        print(f"{scheduler:>10s}: speed-up {times['serial'] / times[scheduler]:.2f}x, "
              f"store identical to serial: {identical[scheduler]}")
    if not all(identical.values()):
        raise SystemExit("a parallel store differs from the serial one")
    print(json.dumps({
        "serial_s": round(times["serial"], 2),
        "threads_s": round(times["threads"], 2),
        "processes_s": round(times["processes"], 2),
        "speedup_threads": round(times["serial"] / times["threads"], 2),
        "speedup_processes": round(times["serial"] / times["processes"], 2),
        "n_files": len(files),
        "workers": args.workers,
        "identical": all(identical.values()),
    }))


if __name__ == "__main__":
    main()
