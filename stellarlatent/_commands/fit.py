"""``stellarlatent fit-vae`` and ``stellarlatent fit-remap``.

Everything that can be checked is checked before a spectrum is read: the
options (through the estimator's own parameter checks), ``--out`` and
``--checkpoint-dir``. A trained model is never lost: when ``--out`` cannot be
written it is written elsewhere (and the error says where); when training
diverges after complete epochs, the model of the last complete epoch is
written to ``--out`` and the exit code is 1.
"""

import re
import time
from pathlib import Path

import numpy as np

from .inputs import Skips, UserError, subset
from .models import (DEFAULT_LABELS, early_labels, parse_labels, select_labels, store_input,
                     training_data)
from .outputs import MODEL_SUFFIXES, check_out_file, check_out_folder, save_model

__all__ = ["run_fit_vae", "run_fit_remap"]

#: --beta of fit-vae
DEFAULT_BETA = 0.003

#: estimator parameters and the options that set them
OPTIONS = {
    "latent_dim": "--latent-dim", "beta": "--beta", "max_epochs": "--epochs",
    "batch_size": "--batch-size", "lr": "--lr", "validation_fraction": "--validation-fraction",
    "num_workers": "--workers", "precision": "--precision", "device": "--device",
    "random_state": "--seed", "n_bins": "--n-bins", "contrast_window": "--contrast-window",
    "label_smoothing": "--label-smoothing", "labels": "--labels",
}


def _check_out(args):
    out = check_out_file(args.out, suffixes=MODEL_SUFFIXES, kind="model file",
                         overwrite=args.overwrite)
    if args.checkpoint_dir is not None:
        folder = Path(args.checkpoint_dir)
        if folder.exists() and not folder.is_dir():
            raise UserError(f"--checkpoint-dir: {folder} is a file; give a folder (it is made "
                            "if missing)")
        check_out_folder(folder, what="--checkpoint-dir")
    return out


def _check_estimator(estimator, label_bins=None):
    """Run the estimator's parameter checks now; a refusal names the option."""
    try:
        estimator._check_params()
        if label_bins is not None and hasattr(estimator, "_check_network_size"):
            estimator._check_network_size(label_bins)
    except (TypeError, ValueError) as exc:
        raise UserError(option_message(str(exc))) from None


def option_message(message):
    """An estimator's message about a parameter, prefixed with the option that sets it."""
    message = message.replace(" (or a dict of them)", "").replace(" (or a dict)", "")
    match = re.match(r"([a-z_]+)", message)
    if match and match.group(1) in OPTIONS:
        return f"{OPTIONS[match.group(1)]}: {message}"
    if message.startswith("this network would need"):
        return f"--n-bins: {message}"
    return message


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


def _diverged(model, exc, out, spec, command):
    """The one-line error of a diverged training; writes the last complete epoch's model."""
    head = str(exc).split("; the weights")[0].strip().rstrip(".")
    advice = "lower --lr, check the input for extreme values, or normalise the flux"
    epochs = len(getattr(model, "history_", None) or [])
    if not epochs:
        return UserError(f"{head}; no epoch was completed, so no model was written: {advice}")
    model.preprocessing_ = spec
    save_model(model, out, command, note=f" (the model of epoch {epochs}, the last complete "
               f"one, after {head}: {advice})")
    return UserError(f"{head}; the model of epoch {epochs} (the last complete one) was "
                     f"written to {out}: {advice}")


def run_fit_vae(args):
    """Train a SpectralVAE; return the exit code."""
    from ..estimators import SpectralVAE
    from ..estimators._base import TrainingDivergedError

    started = time.perf_counter()
    reporting = _start_distributed()
    out = _check_out(args)
    if args.autoencoder and args.beta is not None:
        raise UserError("--beta weighs the KL term, which an --autoencoder does not have: "
                        "leave one out")
    vae = SpectralVAE(
        latent_dim=args.latent_dim, beta=DEFAULT_BETA if args.beta is None else args.beta,
        variational=not args.autoencoder,
        max_epochs=args.epochs, batch_size=args.batch_size, lr=args.lr,
        validation_fraction=args.validation_fraction, device=args.device,
        random_state=args.seed, verbose=0 if args.quiet else 1, **_speed_options(args),
    )
    _check_estimator(vae)
    skips = Skips()
    X, _, _, spec, store = training_data(args, skips)
    n_spectra = _count(X)
    try:
        vae.fit(X, checkpoint_dir=args.checkpoint_dir)
    except TrainingDivergedError as exc:
        raise _diverged(vae, exc, out, spec, "fit-vae") from None
    finally:
        if store is not None:
            store.close()
    vae.preprocessing_ = spec
    save_model(vae, out, "fit-vae")
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


def _labels_error(exc):
    """A UnitsError about ``y['teff']`` as a one-line error about the --labels column."""
    message = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
    if not re.search(r"\by\[", message):
        return UserError(message)
    return UserError("--labels: " + re.sub(r"\by\[('[^']*')\]", r"the label \1", message))


def run_fit_remap(args):
    """Train (and calibrate) a DeepREMAP; return the exit code."""
    import astropy.units as u

    from ..estimators import DeepREMAP
    from ..estimators._base import TrainingDivergedError

    started = time.perf_counter()
    reporting = _start_distributed()
    out = _check_out(args)
    if not 0 <= args.calibration_fraction < 1:
        raise UserError(f"--calibration-fraction must be in [0, 1), got {args.calibration_fraction}")
    options = dict(
        n_bins=args.n_bins, contrast_window=args.contrast_window,
        label_smoothing=args.label_smoothing, max_epochs=args.epochs,
        batch_size=args.batch_size, lr=args.lr, validation_fraction=args.validation_fraction,
        device=args.device, random_state=args.seed, verbose=0 if args.quiet else 1,
        **_speed_options(args),
    )
    guess = [v for v in (args.labels or []) if not Path(v).suffix] or list(DEFAULT_LABELS)
    _check_estimator(DeepREMAP(labels=tuple(guess), **options),
                     label_bins={label: args.n_bins for label in guess})
    table_file = early_labels(args.labels, has_store=store_input(args) is not None)
    skips = Skips()
    X, names, source, spec, store = training_data(args, skips)
    try:
        table, labels = parse_labels(args.labels, names, source, default=DEFAULT_LABELS,
                                     table=table_file)
        if not labels:
            raise UserError(f"--labels: none of {list(DEFAULT_LABELS)} is a label column; "
                            f"name the columns to predict (the labels are {table.colnames})")
        y = select_labels(table, labels)
        n = _count(X)
        rng = np.random.default_rng(args.seed)
        n_cal = int(round(args.calibration_fraction * n))
        remap = DeepREMAP(labels=tuple(labels), **options)
        _check_estimator(remap)
        calibrated = "; not calibrated"
        try:
            if n_cal >= 2 and n - n_cal >= 2:
                order = rng.permutation(n)
                calibration, train = np.sort(order[:n_cal]), np.sort(order[n_cal:])
                read = store.subset if store is not None else (lambda rows: subset(X, rows))
                remap.fit(read(train), y[train], checkpoint_dir=args.checkpoint_dir)
                try:
                    remap.calibrate(read(calibration), y[calibration])
                except Exception as exc:  # noqa: BLE001 - keep the trained model
                    remap.preprocessing_ = spec
                    reason = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
                    save_model(remap, out, "fit-remap", note=" (uncalibrated)")
                    raise UserError(f"the calibration on {n_cal} held-out spectra failed "
                                    f"({reason}); the uncalibrated model was written to {out}"
                                    ) from None
                calibrated = f"; calibrated on {n_cal} held-out spectra"
            else:
                remap.fit(X, y, checkpoint_dir=args.checkpoint_dir)
        except TrainingDivergedError as exc:
            raise _diverged(remap, exc, out, spec, "fit-remap") from None
        except u.UnitsError as exc:
            raise _labels_error(exc) from None
    finally:
        if store is not None:
            store.close()
    remap.preprocessing_ = spec
    save_model(remap, out, "fit-remap")
    if not reporting:
        return 0
    print(f"stellarlatent fit-remap: {', '.join(labels)} from {n} spectra in "
          f"{time.perf_counter() - started:.0f} s ({_losses(remap)}{calibrated}); model: {out}")
    for line in skips.summary():
        print(line)
    return 0
