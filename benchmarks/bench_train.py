"""Training throughput of the two estimators, on CUDA when present and on CPU otherwise.

For the ``sedaghat2021`` SpectralVAE preset (HARPS spectra padded to 327,680
pixels, 6.8 million parameters) and for DeepREMAP with its default network
(here on 16,384-pixel spectra), the script trains a few epochs on spectra
streamed from a `~stellarlatent.datasets.SpectralStore` on local disk (the
way a large archive is read), and prints per configuration:

* throughput in spectra per second (median epoch after the first, which pays
  the warm-up and any compilation);
* peak memory: GPU memory allocated (CUDA) or resident memory (CPU);
* the bandwidth bound: bytes of spectra read per second (flux and mask, as the
  training loop reads them) against the device memory bandwidth measured in
  the same run with a large on-device copy. A ratio far below 1 means the
  time goes into computation (convolutions), not into moving the spectra.

Then it profiles one epoch of the first configuration with
`torch.profiler` and prints the operations that take the most time.

Configurations: float32; on CUDA ``bf16-mixed`` autocast (on CPU only with
``--bf16``: CPUs without native bfloat16 run it many times slower than
float32); DataLoader workers (``--workers``, pinned memory on CUDA); and
``torch.compile`` with ``--compile``. On CPU the peak memory is the process's
peak resident memory so far, so it only grows from one configuration to the
next.

Usage::

    python benchmarks/bench_train.py                      # CUDA if present, else CPU
    python benchmarks/bench_train.py --device cpu --n 32   # a short CPU run
    python benchmarks/bench_train.py --compile --workers 4

The last output line is one JSON object: ``device``, ``bandwidth_gb_s`` and,
per configuration, ``spectra_per_s``, ``peak_memory_mib`` and
``bandwidth_fraction``.
"""

import argparse
import json
import resource
import statistics
import tempfile
import time
from pathlib import Path

import astropy.units as u
import numpy as np
import torch
from astropy.table import Table

from stellarlatent.datasets import SpectralStore
from stellarlatent.estimators import DeepREMAP, SpectralVAE

VAE_PIXELS = 327_680
REMAP_PIXELS = 16_384


def write_store(path, n, n_pixels, seed):
    """A store of n continuum-normalised spectra with absorption lines and labels."""
    rng = np.random.default_rng(seed)
    axis = np.geomspace(3785.0, 6910.0, n_pixels) * u.AA
    store = SpectralStore.create(path, axis, labels=["teff", "logg", "feh"], ivar=False,
                                 overwrite=True)
    x = np.arange(n_pixels, dtype=np.float32)
    centres = rng.uniform(0, n_pixels, 400)
    for start in range(0, n, 16):
        m = min(16, n - start)
        flux = np.ones((m, n_pixels), dtype=np.float32)
        depth = rng.uniform(0.1, 0.6, (m, centres.size)).astype(np.float32)
        for j, centre in enumerate(centres):
            lo, hi = int(max(centre - 30, 0)), int(min(centre + 30, n_pixels))
            flux[:, lo:hi] -= depth[:, j:j + 1] * np.exp(-0.5 * ((x[lo:hi] - centre) / 4.0) ** 2)
        flux += rng.normal(0, 0.01, flux.shape).astype(np.float32)
        labels = {"teff": rng.uniform(4000, 7000, m), "logg": rng.uniform(1, 5, m),
                  "feh": rng.uniform(-2, 0.5, m)}
        store.append(flux, Table(labels))
    store.close()
    return SpectralStore(path)


def memory_bandwidth(device):
    """Bytes per second of a large on-device copy (read plus write)."""
    n = (1 << 28) if device.type == "cuda" else (1 << 26)  # 1 GiB / 256 MiB of float32
    a = torch.empty(n, dtype=torch.float32, device=device).fill_(1.0)
    b = torch.empty_like(a)
    for _ in range(2):
        b.copy_(a)
    repeats = 10
    if device.type == "cuda":
        torch.cuda.synchronize()
    start = time.perf_counter()
    for _ in range(repeats):
        b.copy_(a)
    if device.type == "cuda":
        torch.cuda.synchronize()
    elapsed = time.perf_counter() - start
    return 2 * a.numel() * a.element_size() * repeats / elapsed


def make_estimator(kind, device, args, **options):
    common = {"max_epochs": args.epochs, "device": device, "random_state": 0, "verbose": 0,
              "validation_fraction": 0.0, **options}
    if kind == "vae":
        return SpectralVAE.from_preset("sedaghat2021", batch_size=args.batch_size, **common)
    return DeepREMAP(batch_size=args.batch_size, swa_start=None, **common)


def fit(estimator, kind, store):
    if kind == "vae":
        return estimator.fit(store)
    return estimator.fit(store, store.labels)


def peak_memory_mib(device):
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device) / 2**20
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def run(kind, store, device, args, options):
    if device.type == "cuda":
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats(device)
    estimator = fit(make_estimator(kind, device, args, **options), kind, store)
    times = [record["time"] for record in estimator.history_]
    steady = statistics.median(times[1:]) if len(times) > 1 else times[0]
    rate = len(store) / steady
    bytes_per_spectrum = store.n_pixels * (4 + 1)  # float32 flux and a bool mask
    return {"spectra_per_s": rate, "epoch_s": steady, "first_epoch_s": times[0],
            "peak_memory_mib": peak_memory_mib(device),
            "read_gb_s": rate * bytes_per_spectrum / 1e9}


def profile(kind, store, device, args, options, rows=10):
    from torch.profiler import ProfilerActivity
    from torch.profiler import profile as torch_profile

    activities = [ProfilerActivity.CPU]
    if device.type == "cuda":
        activities.append(ProfilerActivity.CUDA)
    estimator = make_estimator(kind, device, args, **options).set_params(max_epochs=1)
    with torch_profile(activities=activities) as prof:
        fit(estimator, kind, store)
    key = "self_cuda_time_total" if device.type == "cuda" else "self_cpu_time_total"
    return prof.key_averages().table(sort_by=key, row_limit=rows)


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="auto", help="'auto', 'cpu' or 'cuda'")
    parser.add_argument("--n", type=int, default=None,
                        help="spectra per store (default 2048 on CUDA, 64 on CPU)")
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--workers", type=int, default=None,
                        help="DataLoader workers (default 4 on CUDA, 0 on CPU)")
    parser.add_argument("--compile", action="store_true", help="also time torch.compile")
    parser.add_argument("--bf16", action="store_true",
                        help="time bf16-mixed on CPU too (always timed on CUDA)")
    parser.add_argument("--estimators", nargs="+", choices=("vae", "remap"),
                        default=["vae", "remap"])
    parser.add_argument("--no-profile", action="store_true")
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads")
    parser.add_argument("--dir", help="folder for the temporary stores (default: a temp dir)")
    return parser.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.device == "auto":
        device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    else:
        device = torch.device(args.device)
    cuda = device.type == "cuda"
    n = args.n or (2048 if cuda else 64)
    workers = args.workers if args.workers is not None else (4 if cuda else 0)
    name = torch.cuda.get_device_name(device) if cuda else f"CPU, {torch.get_num_threads()} threads"
    bandwidth = memory_bandwidth(device)
    print(f"device: {name}; measured memory bandwidth {bandwidth / 1e9:.0f} GB/s; "
          f"torch {torch.__version__}; {n} spectra per store, batch {args.batch_size}, "
          f"{args.epochs} epochs")

    # bfloat16 autocast pays off on GPUs; CPUs without native bfloat16 emulate
    # it at a fraction of the float32 speed, so it is timed there only on request.
    precision = "bf16-mixed" if cuda or args.bf16 else "float32"
    configurations = {"float32": {}}
    if precision != "float32":
        configurations[precision] = {"precision": precision}
    if workers:
        configurations[f"{precision}, {workers} workers"] = {"precision": precision,
                                                             "num_workers": workers}
    if args.compile:
        configurations[f"{precision}, compiled"] = {"precision": precision, "compile": True,
                                                    "num_workers": workers}
    results = {}
    with tempfile.TemporaryDirectory(dir=args.dir) as tmp:
        for kind in args.estimators:
            n_pixels = VAE_PIXELS if kind == "vae" else REMAP_PIXELS
            started = time.perf_counter()
            store = write_store(Path(tmp) / f"{kind}.h5", n, n_pixels, seed=0)
            label = "SpectralVAE sedaghat2021" if kind == "vae" else "DeepREMAP default"
            print(f"{label}: {n} x {n_pixels} pixels "
                  f"({n * n_pixels * 4 / 2**30:.2f} GiB of flux) written in "
                  f"{time.perf_counter() - started:.0f} s")
            print(f"  {'configuration':28s} {'spectra/s':>10s} {'epoch [s]':>10s} "
                  f"{'1st [s]':>8s} {'peak MiB':>9s} {'read GB/s':>10s} {'of bound':>9s}")
            for config, options in configurations.items():
                result = run(kind, store, device, args, options)
                result["bandwidth_fraction"] = result["read_gb_s"] * 1e9 / bandwidth
                results[f"{kind}: {config}"] = result
                print(f"  {config:28s} {result['spectra_per_s']:10.1f} "
                      f"{result['epoch_s']:10.2f} {result['first_epoch_s']:8.2f} "
                      f"{result['peak_memory_mib']:9.0f} {result['read_gb_s']:10.4f} "
                      f"{result['bandwidth_fraction']:9.2e}", flush=True)
            if not args.no_profile and kind == args.estimators[0]:
                print(f"profile of one float32 epoch of {label}:")
                print(profile(kind, store, device, args, {}))
            store.close()
    print(json.dumps({"device": name, "bandwidth_gb_s": bandwidth / 1e9,
                      "results": {k: {m: round(v, 6) for m, v in r.items()}
                                  for k, r in results.items()}}))


if __name__ == "__main__":
    main()
