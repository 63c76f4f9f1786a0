"""Out-of-core training: peak memory of one epoch from a SpectralStore of N and 10N spectra.

The script writes two `~stellarlatent.datasets.SpectralStore` files of
synthetic spectra (``--n`` and ten times as many, ``--n-pixels`` float32
pixels each, with inverse variances and Teff, log g and [Fe/H] labels). The
spectra are noisy copies of a few hundred spectra from
`~stellarlatent.datasets.make_synthetic_spectra`, so that writing 10N spectra
takes seconds. Then, for each estimator (``SpectralVAE``, ``DeepREMAP`` or
both) and each store, a fresh Python process (so that the peaks of two runs
never mix) opens the store, trains a small network for one epoch
(``max_epochs=1``, one torch thread, CPU) and then applies it to every
spectrum of the store (``transform`` or ``predict``). The child reports its
peak resident memory (``getrusage(RUSAGE_SELF).ru_maxrss``), its resident
memory once the libraries are imported and the store opened (the baseline),
and the time taken. The estimators read the store in the training process
itself (no DataLoader workers), so the peak of that process is the measure;
the peak of its own child processes (``RUSAGE_CHILDREN``) is reported
apart, and is not added: on Linux a forked child starts with the RSS of its
parent at the fork, so even the ``uname -p`` that `platform.uname` runs shows
up there as a "child" of several hundred MiB. With ``--num-workers`` the
estimators read batches in DataLoader worker processes; the measure is then
the peak of the summed proportional set size (PSS, which counts the pages a
forked worker shares with its parent once) of the process and its workers,
sampled every 20 ms.

The target of the "out of core" issue is a 10N run using at most 1.2 times
the peak memory of the N run. With the defaults (N = 2000, 4096 pixels) the
flux of the 10N store alone is 330 MB (660 MB with its inverse variances), so
a full read of the store would show plainly; ``--control`` adds a run that
does read it all (``store.read_arrays()``) before training, to show that the
measurement sees it.

The last line printed is a JSON object: ``peak_rss_ratio`` (10N over N, the
worse of the estimators run), ``peak_rss_n_mib`` and ``peak_rss_10n_mib`` (of
that estimator), and per-estimator details.

Usage::

    python benchmarks/bench_memory.py [--n 2000] [--n-pixels 4096]
        [--estimator vae|remap|both] [--batch-size 64] [--num-workers 0]
        [--workdir DIR] [--keep] [--control]
"""

import argparse
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

# Set before numpy/torch load their thread pools (in the children too).
for _name in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
    os.environ.setdefault(_name, "1")

LABELS = ("teff", "logg", "feh")


def _mib(kib):
    return kib / 1024.0


def _proc_kib(path, key):
    """The KiB of the line starting with ``key`` of a Linux /proc file (0 elsewhere)."""
    try:
        with open(path) as f:
            for line in f:
                if line.startswith(key):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


def current_rss_kib():
    """Resident memory of this process now, in KiB (Linux /proc; 0 elsewhere)."""
    return _proc_kib("/proc/self/status", "VmRSS:")


def peak_rss_kib():
    """Peak resident memory of this process and of its waited-for children, in KiB."""
    scale = 1 if sys.platform.startswith("linux") else 1 / 1024  # macOS reports bytes
    own = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * scale
    children = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss * scale
    return own, children


def _descendants(pid):
    out, todo = [], [pid]
    while todo:
        parent = todo.pop()
        try:
            for task in os.listdir(f"/proc/{parent}/task"):
                with open(f"/proc/{parent}/task/{task}/children") as f:
                    kids = [int(k) for k in f.read().split()]
                out.extend(kids)
                todo.extend(kids)
        except OSError:
            pass
    return out


def _pss_kib(pid):
    return _proc_kib(f"/proc/{pid}/smaps_rollup", "Pss:")


class TreeSampler:
    """Peak of the summed proportional set size (PSS) of this process and its children.

    Sampled every ``interval`` seconds in a thread; PSS shares the pages that
    forked DataLoader workers have in common with their parent, so the sum is
    the memory the whole tree really uses.
    """

    def __init__(self, interval=0.02):
        import threading

        self.peak = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, args=(interval,), daemon=True)
        self._thread.start()

    def _run(self, interval):
        me = os.getpid()
        while not self._stop.is_set():
            total = sum(_pss_kib(pid) for pid in [me] + _descendants(me))
            self.peak = max(self.peak, total)
            self._stop.wait(interval)

    def stop(self):
        self._stop.set()
        self._thread.join()
        return self.peak


# -- writing the stores ---------------------------------------------------------------


def write_store(path, n, n_pixels, seed, n_base=256, chunk=512):
    """Write ``n`` noisy copies of ``n_base`` synthetic spectra, ``chunk`` at a time."""
    import astropy.units as u
    import numpy as np
    from astropy.table import QTable

    from stellarlatent.datasets import SpectralStore, make_synthetic_spectra
    from stellarlatent.preprocessing import SpectralGrid

    grid = SpectralGrid.log_uniform(4000 * u.AA, 6800 * u.AA, n_pixels)
    base, table = make_synthetic_spectra(n_base, grid, snr=(1e4, 1e4), random_state=seed)
    base_flux = np.asarray(base.flux.value, dtype=np.float32)
    base_labels = np.stack([np.asarray(u.Quantity(table[name]).value) for name in LABELS], 1)
    rng = np.random.default_rng(seed)
    with SpectralStore.create(
        path, base.spectral_axis, labels={"teff": u.K, "logg": u.dex, "feh": u.dex},
        overwrite=True,
    ) as store:
        for start in range(0, n, chunk):
            m = min(chunk, n - start)
            pick = rng.integers(0, n_base, m)
            snr = rng.uniform(20, 200, m).astype(np.float32)[:, None]
            flux = base_flux[pick] + rng.standard_normal((m, n_pixels), np.float32) / snr
            ivar = np.broadcast_to(snr**2, flux.shape)
            labels = QTable({name: base_labels[pick, j] for j, name in enumerate(LABELS)})
            labels["teff"].unit, labels["logg"].unit, labels["feh"].unit = u.K, u.dex, u.dex
            store.append(flux, labels, ivar=ivar)
    return path


# -- one measured run (child process) -------------------------------------------------


def child(args):
    import numpy as np
    import torch

    torch.set_num_threads(1)
    from stellarlatent.datasets import SpectralStore
    from stellarlatent.estimators import DeepREMAP, SpectralVAE

    common = dict(max_epochs=1, batch_size=args.batch_size, device="cpu", random_state=0,
                  verbose=0, validation_fraction=0.1)
    if args.num_workers:
        common["num_workers"] = args.num_workers
    sampler = TreeSampler() if args.num_workers else None
    with SpectralStore(args.store) as store:
        n = len(store)
        held = None
        if args.control:  # deliberately hold the whole store in memory
            held = store.read_arrays()
        baseline = current_rss_kib()
        started = time.perf_counter()
        if args.child == "vae":
            model = SpectralVAE(
                latent_dim=8, beta=0.1, channels=(4, 4, 4, 8, 8, 8, 8, 8),
                kernel_sizes=(7, 5, 5, 3, 3, 3, 3, 3), strides=(2,) * 7 + (1,), **common,
            )
            model.fit(store)
            fitted = time.perf_counter()
            after_fit = peak_rss_kib()[0]
            out = model.transform(store)
        else:
            model = DeepREMAP(
                LABELS, n_bins=16, base_channels=4, n_stages=2, blocks_per_stage=1,
                embedding_dim=16, **common,
            )
            model.fit(store)
            fitted = time.perf_counter()
            after_fit = peak_rss_kib()[0]
            out = model.predict(store)
        done = time.perf_counter()
        assert len(out) == n
        del held
    own, children = peak_rss_kib()
    tree = None if sampler is None else sampler.stop()
    print(json.dumps({
        "estimator": args.child, "n": n, "control": bool(args.control),
        # with DataLoader workers, the measure is the summed PSS of the process tree
        "peak_rss_kib": own if tree is None else tree, "peak_rss_self_kib": own,
        "peak_pss_tree_kib": tree, "peak_rss_children_kib": children, "peak_rss_fit_kib": after_fit,
        "baseline_rss_kib": baseline, "fit_s": fitted - started, "apply_s": done - fitted,
        "n_iter": int(model.n_iter_), "out_finite": bool(np.all(np.isfinite(
            out if isinstance(out, np.ndarray) else out[LABELS[0]].value))),
    }))


def run_child(script, estimator, store, batch_size, control=False, num_workers=0):
    command = [sys.executable, script, "--child", estimator, "--store", str(store),
               "--batch-size", str(batch_size), "--num-workers", str(num_workers)]
    if control:
        command.append("--control")
    proc = subprocess.run(command, capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        sys.stderr.write(proc.stdout + proc.stderr)
        raise RuntimeError(f"the {estimator} run on {store} failed (exit {proc.returncode})")
    return json.loads(proc.stdout.strip().splitlines()[-1])


# -- the whole benchmark ---------------------------------------------------------------


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=2000, help="spectra of the small store")
    parser.add_argument("--n-pixels", type=int, default=4096)
    parser.add_argument("--estimator", choices=("vae", "remap", "both"), default="both")
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--num-workers", type=int, default=0,
                        help="DataLoader worker processes of the estimators (default 0); "
                        "with workers, the peak is the summed PSS of the process tree")
    parser.add_argument("--workdir", help="where to write the stores (default: a temp dir)")
    parser.add_argument("--keep", action="store_true", help="keep the stores afterwards")
    parser.add_argument("--control", action="store_true",
                        help="also run with the whole 10N store read into memory")
    parser.add_argument("--child", choices=("vae", "remap"), help=argparse.SUPPRESS)
    parser.add_argument("--store", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        return child(args)

    workdir = Path(args.workdir or tempfile.mkdtemp(prefix="bench_memory_"))
    workdir.mkdir(parents=True, exist_ok=True)
    sizes = {"n": args.n, "10n": 10 * args.n}
    estimators = ("vae", "remap") if args.estimator == "both" else (args.estimator,)
    try:
        stores = {}
        for key, n in sizes.items():
            path = workdir / f"store_{n}x{args.n_pixels}.h5"
            started = time.perf_counter()
            if not path.exists():
                write_store(path, n, args.n_pixels, seed=1)
            stores[key] = path
            print(f"store of {n} x {args.n_pixels}: {path.stat().st_size / 2**20:.0f} MiB "
                  f"on disk ({time.perf_counter() - started:.1f} s)", flush=True)

        script = os.path.abspath(__file__)
        results = {}
        header = (f"{'estimator':<10}{'spectra':>9}{'baseline MiB':>14}{'peak fit MiB':>14}"
                  f"{'peak MiB':>10}{'fit s':>8}{'apply s':>9}")
        print(header)
        print("-" * len(header))
        runs = [(e, k, False) for e in estimators for k in sizes]
        if args.control:
            runs.append((estimators[0], "10n", True))
        for estimator, key, control in runs:
            r = run_child(script, estimator, stores[key], args.batch_size, control,
                          args.num_workers)
            results[(estimator, key, control)] = r
            name = estimator + (" (full read)" if control else "")
            print(f"{name:<10}{r['n']:>9}{_mib(r['baseline_rss_kib']):>14.0f}"
                  f"{_mib(r['peak_rss_fit_kib']):>14.0f}{_mib(r['peak_rss_kib']):>10.0f}"
                  f"{r['fit_s']:>8.1f}{r['apply_s']:>9.1f}", flush=True)

        summary = {}
        for estimator in estimators:
            small, large = results[(estimator, "n", False)], results[(estimator, "10n", False)]
            summary[estimator] = {
                "peak_rss_ratio": round(large["peak_rss_kib"] / small["peak_rss_kib"], 3),
                "peak_rss_n_mib": round(_mib(small["peak_rss_kib"]), 1),
                "peak_rss_10n_mib": round(_mib(large["peak_rss_kib"]), 1),
                "growth_above_baseline_n_mib": round(
                    _mib(small["peak_rss_kib"] - small["baseline_rss_kib"]), 1),
                "growth_above_baseline_10n_mib": round(
                    _mib(large["peak_rss_kib"] - large["baseline_rss_kib"]), 1),
                "peak_rss_children_10n_mib": round(_mib(large["peak_rss_children_kib"]), 1),
                "seconds_n": round(small["fit_s"] + small["apply_s"], 1),
                "seconds_10n": round(large["fit_s"] + large["apply_s"], 1),
            }
        worst = max(estimators, key=lambda e: summary[e]["peak_rss_ratio"])
        out = {
            "peak_rss_ratio": summary[worst]["peak_rss_ratio"],
            "peak_rss_n_mib": summary[worst]["peak_rss_n_mib"],
            "peak_rss_10n_mib": summary[worst]["peak_rss_10n_mib"],
            "worst_estimator": worst,
            "target_ratio": 1.2,
            "n": args.n,
            "n_pixels": args.n_pixels,
            "batch_size": args.batch_size,
            "num_workers": args.num_workers,
            "measure": "summed PSS of the process tree" if args.num_workers
            else "ru_maxrss of the training process",
            "flux_10n_mib": round(10 * args.n * args.n_pixels * 4 / 2**20, 1),
            "estimators": summary,
        }
        if args.control:
            control = results[(estimators[0], "10n", True)]
            out["control_full_read_10n_mib"] = round(_mib(control["peak_rss_kib"]), 1)
        print(json.dumps(out))
    finally:
        if not args.keep and not args.workdir:
            shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    main()
