"""``stellarlatent fit-vae`` and ``stellarlatent fit-remap``."""

import time
from pathlib import Path

import numpy as np

from .inputs import Skips, UserError, subset
from .models import DEFAULT_LABELS, parse_labels, select_labels, training_data

__all__ = ["run_fit_vae", "run_fit_remap"]


def _check_out(args):
    out = Path(args.out)
    if out.exists() and not args.overwrite:
        raise UserError(f"--out: {out} exists; pass --overwrite to replace it")
    if not out.parent.is_dir():
        raise UserError(f"--out: no folder {out.parent}")
    return out


def _speed_options(args):
    """Estimator keywords of --workers, --precision and --compile."""
    if args.workers < 0:
        raise UserError(f"--workers must be 0 or more, got {args.workers}")
    return {"num_workers": args.workers, "precision": args.precision, "compile": args.compile}


def _start_distributed():
    """Join torchrun's process group when launched by it; True on the process that reports."""
    from ..estimators._distributed import init_from_environment, rank

    init_from_environment()
    return rank() == 0


def _losses(model):
    last = model.history_[-1] if model.history_ else {}
    parts = [f"{k} {last[k]:.4g}" for k in ("train_loss", "val_loss") if k in last]
    return ", ".join(parts)


def run_fit_vae(args):
    """Train a SpectralVAE; return the exit code."""
    from ..estimators import SpectralVAE

    started = time.perf_counter()
    reporting = _start_distributed()
    out = _check_out(args)
    skips = Skips()
    X, _, _, spec, store = training_data(args, skips)
    n_spectra = _count(X)
    vae = SpectralVAE(
        latent_dim=args.latent_dim, beta=args.beta, variational=not args.autoencoder,
        max_epochs=args.epochs, batch_size=args.batch_size, lr=args.lr,
        validation_fraction=args.validation_fraction, device=args.device,
        random_state=args.seed, verbose=0 if args.quiet else 1, **_speed_options(args),
    )
    try:
        vae.fit(X, checkpoint_dir=args.checkpoint_dir)
    finally:
        if store is not None:
            store.close()
    vae.preprocessing_ = spec
    vae.save(out)
    if not reporting:
        return 0
    n = vae.n_features_in_
    print(f"stellarlatent fit-vae: {len(vae.history_)} epochs on {n_spectra} spectra x {n} "
          f"pixels in {time.perf_counter() - started:.0f} s ({_losses(vae)}); model: {out}")
    for line in skips.summary():
        print(line)
    return 0


def _count(X):
    return len(X) if hasattr(X, "label_names") else X.flux.shape[0]


def run_fit_remap(args):
    """Train (and calibrate) a DeepREMAP; return the exit code."""
    from ..estimators import DeepREMAP

    started = time.perf_counter()
    reporting = _start_distributed()
    out = _check_out(args)
    if not 0 <= args.calibration_fraction < 1:
        raise UserError(f"--calibration-fraction must be in [0, 1), got {args.calibration_fraction}")
    skips = Skips()
    X, names, source, spec, store = training_data(args, skips)
    try:
        table, labels = parse_labels(args.labels, names, source, default=DEFAULT_LABELS)
        if not labels:
            raise UserError(f"--labels: none of {list(DEFAULT_LABELS)} is a label column; "
                            f"name the columns to predict (the labels are {table.colnames})")
        y = select_labels(table, labels)
        n = _count(X)
        rng = np.random.default_rng(args.seed)
        n_cal = int(round(args.calibration_fraction * n))
        remap = DeepREMAP(
            labels=tuple(labels), n_bins=args.n_bins, contrast_window=args.contrast_window,
            label_smoothing=args.label_smoothing, max_epochs=args.epochs,
            batch_size=args.batch_size, lr=args.lr, validation_fraction=args.validation_fraction,
            device=args.device, random_state=args.seed, verbose=0 if args.quiet else 1,
            **_speed_options(args),
        )
        if n_cal >= 2 and n - n_cal >= 2:
            order = rng.permutation(n)
            calibration, train = np.sort(order[:n_cal]), np.sort(order[n_cal:])
            read = store.subset if store is not None else (lambda rows: subset(X, rows))
            remap.fit(read(train), y[train], checkpoint_dir=args.checkpoint_dir)
            remap.calibrate(read(calibration), y[calibration])
            calibrated = f"; calibrated on {n_cal} held-out spectra"
        else:
            remap.fit(X, y, checkpoint_dir=args.checkpoint_dir)
            calibrated = "; not calibrated"
    finally:
        if store is not None:
            store.close()
    remap.preprocessing_ = spec
    remap.save(out)
    if not reporting:
        return 0
    print(f"stellarlatent fit-remap: {', '.join(labels)} from {n} spectra in "
          f"{time.perf_counter() - started:.0f} s ({_losses(remap)}{calibrated}); model: {out}")
    for line in skips.summary():
        print(line)
    return 0
