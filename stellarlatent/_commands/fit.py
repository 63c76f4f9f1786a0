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
from functools import partial
from pathlib import Path

import astropy.units as u
import numpy as np

from .._logging import log
from .inputs import Skips, UserError
from .models import (DEFAULT_LABELS, early_labels, parse_labels, select_labels, store_input,
                     training_data)
from .outputs import MODEL_SUFFIXES, check_out_file, check_out_folder, save_model
from .recipe import (CALIBRATE_BY, CALIBRATION_CV, CALIBRATION_FRACTION, EPOCHS_PRETRAINED,
                     EPOCHS_SCRATCH, VAE_DEFAULTS, contrast_window, parse_calibrate_by,
                     recipe_member)

__all__ = ["run_fit_vae", "run_fit_remap"]

#: estimator parameters and the options that set them
OPTIONS = {
    "latent_dim": "--latent-dim", "beta": "--beta", "max_epochs": "--epochs",
    "batch_size": "--batch-size", "lr": "--lr", "validation_fraction": "--validation-fraction",
    "num_workers": "--workers", "precision": "--precision", "device": "--device",
    "random_state": "--seed", "n_bins": "--n-bins", "contrast_window": "--contrast-window",
    "label_smoothing": "--label-smoothing", "labels": "--labels",
    "line_weight": "--line-weight", "coarse_weight": "--coarse-weight",
    "coarse_window": "--coarse-window", "kl_reduction": "--kl-reduction",
    "lr_schedule": "--lr-schedule",
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


def _epochs(n):
    return f"{n} epoch{'' if n == 1 else 's'}"


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
    from ..estimators._base import TrainingDivergedError

    started = time.perf_counter()
    reporting = _start_distributed()
    out = _check_out(args)
    if args.autoencoder and (args.beta is not None or args.beta_sweep):
        raise UserError("--beta and --beta-sweep weigh the KL term, which an --autoencoder does "
                        "not have: leave one out")
    if args.beta is not None and args.beta_sweep:
        raise UserError("--beta-sweep chooses beta: leave out --beta")
    vae = _vae_from_options(args)
    _check_estimator(vae)
    sweep_sizes = _sweep_sizes(args, vae.latent_dim)
    skips = Skips()
    X, _, _, spec, store = training_data(args, skips)
    n_spectra = _count(X)
    sweep = None
    try:
        if args.beta_sweep:
            vae, sweep = _run_beta_sweep(vae, X, args, sweep_sizes, in_memory=store is None)
        else:
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
    lines = [] if sweep is None else _sweep_lines(sweep, out, vae.latent_dim)
    return skips.finish(
        *lines,
        f"stellarlatent fit-vae: {_epochs(len(vae.history_))} on {n_spectra} spectra x {n} "
        f"pixels{_monitored(vae, n_spectra)} in {time.perf_counter() - started:.0f} s "
        f"({_losses(vae)}); model: {out}")


def _monitored(model, n):
    """``" (K of them held out to monitor the loss)"``, as the estimator's split holds them out."""
    member = model.members_[0] if hasattr(model, "members_") else model
    held = len(member._split(n, 0)[1])  # the estimator's own rule
    return f" ({held} of them held out to monitor the loss)" if held else ""


def _vae_from_options(args):
    """The SpectralVAE of fit-vae's options: a preset (or fit-vae's defaults) and what was given."""
    from ..estimators import SpectralVAE

    given = {name: value for name, value in (
        ("latent_dim", args.latent_dim), ("beta", args.beta), ("line_weight", args.line_weight),
        ("coarse_weight", args.coarse_weight), ("coarse_window", args.coarse_window),
        ("kl_reduction", args.kl_reduction), ("lr_schedule", args.lr_schedule),
        ("max_epochs", args.epochs), ("batch_size", args.batch_size), ("lr", args.lr),
        ("validation_fraction", args.validation_fraction),
    ) if value is not None}
    if args.autoencoder:
        given["variational"] = False
    common = dict(device=args.device, random_state=args.seed, verbose=0 if args.quiet else 1,
                  **_speed_options(args))
    if args.preset is not None:
        return SpectralVAE.from_preset(args.preset, **given, **common)
    return SpectralVAE(**{**VAE_DEFAULTS, **given}, **common)


def _sweep_sizes(args, latent_dim):
    """The network sizes of --beta-sweep, --latent-dim first; checked before any reading."""
    if not args.beta_sweep:
        if args.n_init != 1:
            raise UserError("--n-init restarts the networks of --beta-sweep: add --beta-sweep")
        return None
    if any(not beta >= 0 or beta == float("inf") for beta in args.beta_sweep):
        raise UserError(f"--beta-sweep: expected numbers >= 0, got {args.beta_sweep}")
    if any(size < 1 for size in args.sweep_latent_dims):
        raise UserError(f"--sweep-latent-dims: expected positive integers, got "
                        f"{args.sweep_latent_dims}")
    if args.jobs < 1:
        raise UserError(f"--jobs must be a positive integer, got {args.jobs}")
    if args.n_init < 1:
        raise UserError(f"--n-init must be a positive integer, got {args.n_init}")
    if args.checkpoint_dir is not None:
        raise UserError("--checkpoint-dir is for one network; --beta-sweep fits several")
    return sorted({latent_dim, *args.sweep_latent_dims})


def _sweep_files(out):
    out = Path(out)
    return out.with_name(out.stem + "-beta-sweep.ecsv"), out.with_name(out.stem + "-beta-sweep.png")


def _run_beta_sweep(vae, X, args, sizes, in_memory):
    """Fit the sweep, write its table and figure next to --out; the chosen network and the sweep."""
    from ..diagnostics import BetaSweepDisplay, beta_sweep

    n_jobs = args.jobs if in_memory and args.jobs > 1 else None
    sweep = beta_sweep(vae.set_params(verbose=0), X, args.beta_sweep, latent_dims=sizes,
                       n_jobs=n_jobs, keep_estimators=True, n_init=args.n_init)
    table_file, figure_file = _sweep_files(args.out)
    sweep.table.write(table_file, format="ascii.ecsv", overwrite=True)
    display = BetaSweepDisplay.from_sweep(sweep).plot()
    display.figure_.savefig(figure_file, dpi=110, bbox_inches="tight")
    import matplotlib.pyplot as plt

    plt.close(display.figure_)
    rows = zip(sweep.table["beta"], sweep.table["latent_dim"], sweep.estimators)
    chosen = next(est for beta, size, est in rows
                  if beta == sweep.chosen_beta and size == vae.latent_dim)
    return chosen, sweep


def _sweep_lines(sweep, out, latent_dim):
    table_file, figure_file = _sweep_files(out)
    # one clause a line: the summary of a sweep with stuck networks runs to hundreds of characters
    first, *rest = sweep.summary().split("; ")
    return ([f"beta sweep: {first}"] + [f"  {clause}" for clause in rest]
            + [f"  the {latent_dim}-latent network at that beta is the model",
               f"beta sweep: {table_file} and {figure_file}"])


def _count(X):
    return len(X) if hasattr(X, "label_names") else X.flux.shape[0]


def _labels_error(exc):
    """A UnitsError about ``y['teff']`` as a one-line error about the --labels column."""
    message = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
    if not re.search(r"\by\[", message):
        return UserError(message)
    return UserError("--labels: " + re.sub(r"\by\[('[^']*')\]", r"the label \1", message))


# -- fit-remap: the recommended recipe ------------------------------------------------

OPTIONS.update({
    "n_members": "--members", "n_jobs": "--jobs", "fine_tune_epochs": "--epochs",
    "fine_tune_lr": "--lr", "base_channels": "--base-channels", "n_stages": "--n-stages",
})


def _check_pretraining_covers(pretrain, train, labels, most_outside=0.01):
    """Refuse pre-training labels whose ranges miss the training stars'.

    The bins are set on the pre-training labels: a training star beyond
    them lands in an edge bin, and a model whose bins miss most of its
    stars predicts the edge for every one of them.
    """
    from .pretrain import said_range

    for j, label in enumerate(labels):
        known = pretrain[:, j][np.isfinite(pretrain[:, j])]
        values = train[:, j][np.isfinite(train[:, j])]
        if not known.size or not values.size:
            continue
        outside = (values < known.min()) | (values > known.max())
        if outside.mean() > most_outside:
            raise UserError(
                f"--pretrain: its {label} spans {said_range(known.min(), known.max())}, but "
                f"{int(outside.sum())} of {values.size} training stars lie outside "
                f"({said_range(values.min(), values.max())}); the bins are set on the "
                "pre-training labels, so give pre-training spectra that cover the training "
                "stars, or --pretrain synthetic")


def _say_shared_stars(pretraining, X, y, labels, calibrated):
    """Warn when training stars are pre-training spectra too (a --pretrain DIR of the same library).

    Harmless for the fit, but a calibration then judges networks on stars
    their pre-training saw, and its intervals come out too narrow.
    """
    from .pretrain import shared_stars

    shared = shared_stars(pretraining.X, _values(pretraining.y, labels), X, _values(y, labels))
    if not shared.size:
        return
    said = (f"--pretrain: {shared.size} of the {_count(X)} training spectra are also "
            "pre-training spectra (the same labels and flux)")
    if calibrated:
        log.warning("%s; the networks saw them before fine-tuning, so the calibration judges "
                    "them on stars they know and its intervals come out too narrow: pre-train "
                    "on other stars, or on synthetic spectra", said)
    else:
        log.info("%s", said)


def _values(y, labels):
    """The labels as floats (NaN where missing), in the units of the synthetic generator."""
    from .pretrain import SYNTHETIC_LABELS
    from .sections import label_values

    from ..estimators._binning import _convert

    columns = []
    for label in labels:
        column = y[label]
        unit = SYNTHETIC_LABELS.get(label, (None,))[0]
        given = getattr(column, "unit", None)
        values = label_values({label: column}, label)
        if isinstance(given, u.UnrecognizedUnit):
            given = None  # the estimator says what it makes of it
        if given is not None and unit is not None:
            # as the estimator converts them (Celsius to kelvin too), before any training
            try:
                values = _convert(values, u.Unit(given), unit, f"the label '{label}'")
            except u.UnitsError as exc:
                raise UserError(f"--labels: {exc}") from None
        columns.append(values)
    return np.column_stack(columns) if columns else np.empty((len(y), 0))


def _history_losses(model):
    member = model.members_[0] if hasattr(model, "members_") else model
    history = getattr(member, "fine_tune_history_", None) or getattr(member, "history_", None)
    last = history[-1] if history else {}
    parts = [f"{k} {last[k]:.4g}" for k in ("train_loss", "val_loss") if k in last]
    return ", ".join(parts)


def _check_recipe(args, template, guess):
    """The recipe's options and the estimator's checks, before anything is read."""
    from ..estimators import DeepREMAPEnsemble
    from .pretrain import check_source

    given = args.calibration_cv
    if given is not None and (given < 0 or given == 1):
        raise UserError(f"--calibration-cv must be 0 or at least 2, got {given}")
    if given:
        if args.calibration_fraction is not None:
            raise UserError("--calibration-cv calibrates on out-of-fold predictions of every "
                            "star: leave out --calibration-fraction")
        if not _can_cross_calibrate(args):
            raise UserError("--calibration-cv refits the ensemble's pre-trained networks on "
                            "each fold: it needs --members 2 or more and a --pretrain source")
    fraction = _calibration_fraction(args, 0)
    if not 0 <= fraction < 1:
        raise UserError(f"--calibration-fraction must be in [0, 1), got {fraction}")
    by = _calibrate_by(args)  # None when not given: no labels to check the default against
    if by is not None:
        label, _ = by
        if guess and label not in guess:
            raise UserError(f"--calibrate-by: {label!r} is not a label of the model "
                            f"({', '.join(guess)})")
        if args.members < 2:
            raise UserError("--calibrate-by calibrates the types of an ensemble: give "
                            "--members 2 or more")
        if not given and args.calibration_fraction == 0:
            raise UserError("--calibrate-by needs a calibration: leave out "
                            "--calibration-fraction 0")
    for flag, value, least in (("--pretrain-epochs", args.pretrain_epochs, 1),
                               ("--n-synthetic", args.n_synthetic, 2),
                               ("--members", args.members, 1)):
        if value < least:
            raise UserError(f"{flag} must be at least {least}, got {value}")
    if args.jobs == 0 or args.jobs < -1:
        raise UserError(f"--jobs must be a positive integer or -1, got {args.jobs}")
    if args.epochs is not None and args.epochs < 1:
        raise UserError(f"--epochs must be a positive integer, got {args.epochs}")
    check_source(args.pretrain)
    n_bins = template.n_bins
    _check_estimator(template, label_bins=None if isinstance(n_bins, (dict, str))
                     else {label: n_bins for label in guess})
    if args.members > 1:
        try:
            DeepREMAPEnsemble(template, n_members=args.members, n_jobs=args.jobs,
                              random_state=args.seed)._template()
        except (TypeError, ValueError) as exc:
            raise UserError(option_message(str(exc))) from None


def _can_cross_calibrate(args):
    return args.members >= 2 and args.pretrain != "none"


def _calibration_folds(args, n):
    """Folds of the cross-calibration, or 0 to hold out --calibration-fraction instead.

    By default an ensemble with a pre-training is cross-calibrated on
    `CALIBRATION_CV` folds when there are at least two spectra per fold;
    --calibration-fraction (or --calibration-cv 0) holds stars out instead.
    """
    if args.calibration_cv is not None:
        if args.calibration_cv > n:
            # said now, not after every network has trained
            raise UserError(f"--calibration-cv {args.calibration_cv} folds need at least as many "
                            f"training stars, got {n}")
        return args.calibration_cv
    if (args.calibration_fraction is None and _can_cross_calibrate(args)
            and n >= 2 * CALIBRATION_CV):
        return CALIBRATION_CV
    return 0


def _by_keyword(args, model):
    """``{"by": ...}`` for the ensemble's calibration, or nothing."""
    by = _calibrate_by(args, tuple(getattr(model, "bin_edges_", ())))
    return {} if by is None else {"by": by}


def _calibrate_by(args, labels=()):
    """``--calibrate-by LABEL EDGE [EDGE ...]`` as ``(label, [edges])``, or None.

    Not given: the recipe's `CALIBRATE_BY` for an ensemble whose ``labels``
    include its label; ``none``: None.
    """
    if args.calibrate_by is None:
        label, edges = CALIBRATE_BY
        return (label, list(edges)) if args.members > 1 and label in labels else None
    try:
        return parse_calibrate_by(args.calibrate_by)
    except ValueError as exc:
        raise UserError(str(exc)) from None


def _calibration_fraction(args, folds):
    """The fraction of stars held out to calibrate: none when cross-calibrating."""
    if folds:
        return 0.0
    given = args.calibration_fraction
    return CALIBRATION_FRACTION if given is None else given


def _member_template(args, labels, spectral_axis=None):
    template = recipe_member(labels)
    given = {"n_bins": args.n_bins, "label_smoothing": args.label_smoothing, "lr": args.lr,
             "batch_size": args.batch_size, "validation_fraction": args.validation_fraction,
             "base_channels": args.base_channels, "n_stages": args.n_stages}
    template.set_params(**{k: v for k, v in given.items() if v is not None})
    window = args.contrast_window
    if window == "auto":
        window = template.contrast_window if spectral_axis is None else contrast_window(
            spectral_axis)
        if spectral_axis is None and window is None:
            window = 33  # checked as the recipe's; the grid sets it later
    template.set_params(contrast_window=window, device=args.device, random_state=args.seed,
                        verbose=0 if args.quiet else 1, **_speed_options(args))
    return template


def run_fit_remap(args):
    """Train the recommended DeepREMAP ensemble (or one DeepREMAP); return the exit code."""
    from ..estimators._base import TrainingDivergedError
    from ..estimators._data import take_rows
    from .pretrain import SYNTHETIC, pretraining_data

    started = time.perf_counter()
    reporting = _start_distributed()
    out = _check_out(args)
    guess = [v for v in (args.labels or []) if not Path(v).suffix] or list(DEFAULT_LABELS)
    _check_recipe(args, _member_template(args, guess), guess)
    table_file = early_labels(args.labels, has_store=store_input(args) is not None)
    skips = Skips()
    X, names, source, spec, store = training_data(args, skips)
    pretraining = None
    try:
        table, labels = parse_labels(args.labels, names, source, default=DEFAULT_LABELS,
                                     table=table_file)
        if not labels:
            raise UserError(f"--labels: none of {list(DEFAULT_LABELS)} is a label column; "
                            f"name the columns to predict (the labels are {table.colnames})")
        y = select_labels(table, labels)
        n = _count(X)
        axis = X.spectral_axis
        meta = store.meta if store is not None else getattr(X, "meta", None)
        template = _member_template(args, labels, axis)
        _check_estimator(template)
        in_memory = args.jobs != 1 and args.members > 1
        try:
            pretraining = pretraining_data(
                args.pretrain, n_synthetic=args.n_synthetic, labels=labels,
                values=_values(y, labels), spectral_axis=axis, meta=meta, spec=spec,
                seed=args.seed, in_memory=in_memory)
        except u.UnitsError as exc:
            raise _labels_error(exc) from None
        if pretraining is not None and args.pretrain != SYNTHETIC:
            # synthetic spectra span the training stars' labels (within what the generator draws)
            _check_pretraining_covers(_values(pretraining.y, labels), _values(y, labels), labels)
        epochs = args.epochs or (EPOCHS_SCRATCH if pretraining is None else EPOCHS_PRETRAINED)

        rng = np.random.default_rng(args.seed)
        folds = _calibration_folds(args, n)
        n_cal = int(round(_calibration_fraction(args, folds) * n))
        calibrate = n_cal >= 2 and n - n_cal >= 2
        if pretraining is not None and args.pretrain != SYNTHETIC:
            _say_shared_stars(pretraining, X, y, labels, calibrated=bool(folds or calibrate))
        if calibrate:
            order = rng.permutation(n)
            calibration, train = np.sort(order[:n_cal]), np.sort(order[n_cal:])
        else:
            calibration, train = None, np.arange(n)
        # X is the store itself when it is streamed
        read = store.read if store is not None and in_memory else partial(take_rows, X)
        whole = (store.read() if in_memory else X) if not calibrate else None
        X_train = whole if whole is not None else read(train)
        y_train = y if whole is not None else y[train]
        try:
            model = _train_recipe(args, template, pretraining, epochs, X_train, y_train)
        except TrainingDivergedError as exc:
            if args.members == 1:  # the template is the network
                raise _diverged(template, exc, out, spec, "fit-remap") from None
            head = str(exc).split("; the weights")[0].strip().rstrip(".")
            raise UserError(f"{head}; no model was written: lower --lr, check the input for "
                            "extreme values, or normalise the flux") from None
        except u.UnitsError as exc:
            raise _labels_error(exc) from None
        _record_preprocessing(model, spec)
        calibrated = "; not calibrated"
        by = _by_keyword(args, model)
        if folds:
            calibrated = _calibrate(
                model, out, args, f"the {folds}-fold cross-calibration",
                lambda: model.cross_calibrate(
                    X_train, y_train, cv=folds, method=args.calibration_method,
                    checkpoint_dir=_step_folder(args, "cross_calibrate"), **by),
                f"out-of-fold predictions of {folds} folds")
        elif calibrate:
            calibrated = _calibrate(
                model, out, args, f"the calibration on {n_cal} held-out spectra",
                lambda: model.calibrate(read(calibration), y[calibration],
                                        method=args.calibration_method, **by),
                f"{n_cal} held-out spectra")
    finally:
        if pretraining is not None:
            pretraining.close()
        if store is not None:
            store.close()
    save_model(model, out, "fit-remap")
    if not reporting:
        return 0
    what = (f"an ensemble of {args.members} DeepREMAP networks" if args.members > 1
            else "a DeepREMAP")
    how = (f"pre-trained on {pretraining.description} for {_epochs(args.pretrain_epochs)}, "
           f"fine-tuned for {_epochs(epochs)}" if pretraining is not None
           else f"trained from scratch for {_epochs(epochs)}")
    return skips.finish(
        f"stellarlatent fit-remap: {what} ({how}) on {len(train)} of {n} spectra"
        f"{_monitored(model, len(train))}: "
        f"{', '.join(labels)} in {time.perf_counter() - started:.0f} s "
        f"({_history_losses(model)}{calibrated}); model: {out}")


def _calibrate(model, out, args, what, run, on):
    """Run a calibration; if it fails, write the uncalibrated model and say so."""
    try:
        run()
    except Exception as exc:  # noqa: BLE001 - keep the trained model
        reason = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        save_model(model, out, "fit-remap", note=" (uncalibrated)")
        raise UserError(f"{what} failed ({reason}); the uncalibrated model was written to "
                        f"{out}") from None
    return f"; calibrated ({args.calibration_method}) on {on}{_said_types(model)}"


def _said_types(model):
    """How many types of star got a calibration of their own (those with too few stars keep
    the overall one: their width factors stay 1)."""
    from ..estimators.ensemble import MIN_TYPE_SPECTRA

    by = getattr(model, "calibrated_by_", None)
    if by is None:
        return ""
    scales = np.array(list(getattr(model, "type_scales_", {}).values()), dtype=float)
    n_types = len(by[1]) + 1
    own = int(np.any(scales != 1.0, axis=0).sum()) if scales.size else 0
    edges = ", ".join(f"{v:g}" for v in by[1])
    if own == n_types:
        return f", each type of star by {by[0]} ({edges}) on its own"
    if own == 0:
        return (f"; no type of star by {by[0]} ({edges}) had {MIN_TYPE_SPECTRA} calibration "
                "stars of its own, so all share one calibration")
    return (f", by {by[0]} ({edges}): {own} of {n_types} types of star on their own (the "
            f"others had fewer than {MIN_TYPE_SPECTRA} calibration stars and keep the overall "
            "calibration)")


def _record_preprocessing(model, spec):
    """Give the model (and each member, which the ensemble file keeps) the preprocessing."""
    for member in getattr(model, "members_", ()):
        member.preprocessing_ = spec
    model.preprocessing_ = spec


def _train_recipe(args, template, pretraining, epochs, X, y):
    """Pre-train (unless --pretrain none) and fit one network or an ensemble."""
    from ..estimators import DeepREMAPEnsemble

    if args.members == 1:
        remap = template
        if pretraining is None:
            remap.set_params(max_epochs=epochs)
            return remap.fit(X, y, checkpoint_dir=args.checkpoint_dir)
        remap.set_params(max_epochs=args.pretrain_epochs)
        remap.fit(pretraining.X, pretraining.y, checkpoint_dir=_step_folder(args, "pretrain"))
        return remap.fine_tune(X, y, max_epochs=epochs, lr=remap.lr,
                               checkpoint_dir=_step_folder(args, "fine_tune"))
    ensemble = DeepREMAPEnsemble(
        template, n_members=args.members, fine_tune_epochs=epochs, n_jobs=args.jobs,
        random_state=args.seed)
    if pretraining is None:
        template.set_params(max_epochs=epochs)
        return ensemble.fit(X, y, checkpoint_dir=_step_folder(args, "fit"))
    template.set_params(max_epochs=args.pretrain_epochs)
    ensemble.pretrain(pretraining.X, pretraining.y,
                      checkpoint_dir=_step_folder(args, "pretrain"))
    return ensemble.fit(X, y, checkpoint_dir=_step_folder(args, "fine_tune"))


def _step_folder(args, step):
    """The checkpoint folder of one training step (one folder per member below it), or None."""
    return None if args.checkpoint_dir is None else Path(args.checkpoint_dir) / step
