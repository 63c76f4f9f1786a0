"""The ``stellarlatent`` command.

Exit codes: 0 on success, 1 when the work failed, 2 for a usage error, 130
when interrupted (Ctrl-C). User
errors print one line that says what to fix; ``--debug`` shows the traceback.

Subcommands: ``prepare`` (files -> SpectralStore), ``fit-vae``, ``fit-remap``,
``diagnose`` (HTML report), ``predict`` (ECSV table), ``explore`` (interactive
latent explorer page), ``demo`` and ``info``.
A model saved by ``fit-vae`` or ``fit-remap`` carries the preprocessing of
its training spectra, so ``predict`` and ``diagnose`` put raw files through it.
"""

import argparse
import logging
import sys
from pathlib import Path

__all__ = ["main"]

EXAMPLES = {
    "demo": """examples:
  stellarlatent demo                      # synthetic spectra, report in ./stellarlatent-demo
  stellarlatent demo --out report --miles ../shared/data/miles
  stellarlatent demo --quick --quiet      # a smaller, faster run
""",
    "info": """examples:
  stellarlatent info
""",
    "models": """examples:
  stellarlatent models                    # the bundled models
  stellarlatent predict miles spectra/ --out labels.ecsv   # use one by its name
""",
    "prepare": """examples:
  stellarlatent prepare harps/ --grid 3800 6800 16384 --out harps.h5
  stellarlatent prepare ../shared/data/miles --format MILES --grid 3600 7400 4096 \\
      --labels labels.ecsv --out miles.h5
  stellarlatent prepare lte*.fits --phoenix-wave WAVE_PHOENIX-ACES-AGSS-COND-2011.fits \\
      --grid 4000 7000 8192 --grid-kind linear --normalize running_quantile --out phoenix.h5
  stellarlatent prepare harps/ --grid 3800 6800 16384 --scheduler processes --workers 2 \\
      --out harps.h5                      # read and preprocess on 2 processes with dask
  stellarlatent prepare /shared/harps/ --grid 3800 6800 16384 \\
      --dask-address tcp://10.0.0.5:8786 --out harps.h5   # on a dask.distributed cluster
""",
    "fit-vae": """examples:
  stellarlatent fit-vae harps.h5 --out vae.pt
  stellarlatent fit-vae miles.h5 --preset miles --out vae.pt   # the recipe chosen on MILES
  stellarlatent fit-vae harps.h5 --latent-dim 16 --beta 0.01 --epochs 100 --out vae.pt
  stellarlatent fit-vae miles.h5 --beta-sweep 0.001 0.003 0.01 0.03 --jobs 2 --out vae.pt
  stellarlatent fit-vae spectra/ --grid 3800 6800 4096 --out vae.pt   # from raw files
  torchrun --nproc_per_node 4 -m stellarlatent.cli fit-vae harps.h5 --out vae.pt  # 4 GPUs
""",
    "fit-remap": """examples:
  stellarlatent fit-remap miles.h5 --out remap.pt               # labels teff logg feh of the store
  stellarlatent fit-remap miles.h5 --labels teff logg --epochs 60 --out remap.pt
  stellarlatent fit-remap spectra/ --grid 3800 6800 4096 --labels labels.ecsv --out remap.pt
  stellarlatent fit-remap miles.h5 --contrast-window 33 --label-smoothing 1 --out remap.pt
""",
    "diagnose": """examples:
  stellarlatent diagnose vae.pt miles.h5 --out vae-report        # labels from the store
  stellarlatent diagnose remap.pt test/ --labels test_labels.ecsv --out remap-report
""",
    "predict": """examples:
  stellarlatent predict remap.pt new_spectra/ --out labels.ecsv
  stellarlatent predict vae.pt a.fits b.fits --out latents.ecsv
  stellarlatent predict remap.pt test.h5 --out labels.ecsv       # a store is used as it is
""",
    "explore": """examples:
  stellarlatent explore vae.pt harps.h5 --out explorer               # labels of the store
  stellarlatent explore vae.pt spectra/ --labels labels.ecsv --remap remap.pt --out explorer
  # then open explorer/explorer.html (one file, works offline)
""",
}

PREPROCESSING_NOTE = (
    "Raw files are resampled flux-conservingly onto the grid (Angstrom; log-uniform by "
    "default) and divided by a continuum estimate; without --grid, the grid is learned "
    "from the first files. Unreadable files are reported and skipped."
)
MODEL_INPUT_NOTE = (
    "The spectra are a store built by 'prepare' (used as it is) or files and folders, which "
    "go through the preprocessing recorded in the model (resampling onto its grid and its "
    "normalisation). Unreadable files are reported and skipped; when none can be read the "
    "exit code is 1."
)


from ._commands import UserError  # noqa: E402 - re-exported for the subcommands

#: --scheduler of ``prepare`` (the names of stellarlatent.datasets._parallel.SCHEDULERS)
SCHEDULERS = ("serial", "synchronous", "threads", "processes")


def _common(parser, func):
    """The options of every subcommand, last in its help; ``func(args)`` runs it."""
    parser.add_argument("--device", default="auto",
                        help="'auto' (CUDA when available), 'cpu', 'cuda' or 'cuda:N'")
    parser.add_argument("--seed", type=int, default=0, help="random seed (default: 0)")
    parser.add_argument("--quiet", action="store_true", help="print only the summary")
    parser.add_argument("--debug", action="store_true", help="show tracebacks and debug logging")
    parser.add_argument("--threads", type=int, default=None,
                        help="CPU threads for torch (default: torch's choice; 'demo' uses 1, "
                             "fastest for its small networks, above all on a busy machine)")
    parser.set_defaults(func=func)


def _parse_intermixed(parser, argv):
    """``parser.parse_args(argv)``, with files named after an option taken as files too.

    argparse ends a positional list at the first option, so in ``predict
    miles a.fits --resolution 2000 b.fits`` it would call ``b.fits`` an
    unrecognised argument. Left-over arguments that are not options join the
    command's list of files (``data`` or ``files``); anything else is the
    usual usage error.
    """
    args, extras = parser.parse_known_args(argv)
    files = next((name for name in ("data", "files")
                  if isinstance(getattr(args, name, None), list)), None)
    if extras and files is not None and not any(e.startswith("-") for e in extras):
        getattr(args, files).extend(extras)
        return args
    return parser.parse_args(argv)


def build_parser():
    parser = argparse.ArgumentParser(
        prog="stellarlatent",
        description="Learn from large collections of stellar spectra.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=_version())
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True

    demo = sub.add_parser(
        "demo",
        help="train both models on the embedded default and write a report",
        description=(
            "The main job on the embedded default: generate synthetic spectra (or read MILES), "
            "preprocess them, train a SpectralVAE and the recommended DeepREMAP ensemble "
            "(pre-trained on synthetic spectra, with its ridge expert, calibrated on held-out "
            "spectra), compare it with ridge regression on the same spectra, run the "
            "diagnostics and write a report folder (index.html, the latent explorer page, PNG "
            "figures, ECSV tables, saved models that 'predict' applies to raw files). About a "
            "minute and a half on 2 CPU cores; --quick is a smaller run of well under a minute."
        ),
        epilog=EXAMPLES["demo"],
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    demo.add_argument("--out", default="stellarlatent-demo",
                      help="report folder (default: %(default)s)")
    demo.add_argument("--miles", metavar="DIR",
                      help="use the MILES spectra in DIR instead of synthetic ones")
    demo.add_argument("--n-spectra", type=int, default=None,
                      help="synthetic spectra to generate (default: 800; not with --miles)")
    demo.add_argument("--quick", action="store_true", help="fewer spectra and epochs (for tests)")
    _common(demo, _demo)

    _add_prepare(sub)
    _add_fit_vae(sub)
    _add_fit_remap(sub)
    _add_diagnose(sub)
    _add_predict(sub)
    _add_explore(sub)

    models = sub.add_parser("models", help="the trained models bundled with the package",
                            description="List the trained models bundled with the package "
                            "(name, training data, wavelength range, resolution, air/vacuum, "
                            "label ranges, measured precision). Give a name instead of a model "
                            "file to predict, diagnose or explore.",
                            epilog=EXAMPLES["models"],
                            formatter_class=argparse.RawDescriptionHelpFormatter)
    _common(models, _models)

    info = sub.add_parser("info", help="versions and the compute device found",
                          epilog=EXAMPLES["info"],
                          formatter_class=argparse.RawDescriptionHelpFormatter)
    _common(info, _info)
    return parser


def _parser(sub, name, help, description):
    return sub.add_parser(name, help=help, description=description, epilog=EXAMPLES[name],
                          formatter_class=argparse.RawDescriptionHelpFormatter)


def _model_parser(sub, name, help, description, model_help):
    """The parser of a command that applies a saved model (MODEL, then DATA), and MODEL."""
    p = _parser(sub, name, help, description + MODEL_INPUT_NOTE)
    p.add_argument("model", metavar="MODEL", help=model_help)
    return p


def _data(parser, metavar="DATA", help="a store (*.h5) or spectrum files/folders"):
    parser.add_argument("data", nargs="+", metavar=metavar, help=help)


def _labels(parser, help):
    parser.add_argument("--labels", nargs="+", metavar="LABEL", help=help)


def _table_labels(parser, default):
    """``--labels`` of a command that reads label columns, or a table file and its columns."""
    _labels(parser, "label columns of the store, or a table file followed by optional column "
                    f"names (default: {default})")


def _out(parser, help, metavar=None, overwrite=True):
    """``--out`` (required) and, unless ``overwrite`` is False, ``--overwrite``."""
    parser.add_argument("--out", required=True, metavar=metavar, help=help)
    if overwrite:
        parser.add_argument("--overwrite", action="store_true", help="replace an existing --out")


def _reading(parser):
    parser.add_argument("--format", default="auto",
                        help="file format: auto (detected), HARPS-ADP, HARPS-s1d, LAMOST-LRS, "
                             "LAMOST-MRS, MILES, PHOENIX, columns (a text or FITS table of "
                             "wavelength, flux and error columns; tried when nothing else "
                             "reads a file) or any format specutils reads "
                             "(default: %(default)s)")
    parser.add_argument("--phoenix-wave", metavar="FILE",
                        help="the PHOENIX wavelength file (WAVE_PHOENIX-ACES-AGSS-COND-2011.fits), "
                             "needed to read PHOENIX spectra")


def _grid(parser, required=False):
    parser.add_argument("--grid", nargs=3, type=float, metavar=("START", "STOP", "N"),
                        required=required,
                        help="output grid: first and last pixel in Angstrom, number of pixels")
    parser.add_argument("--grid-kind", choices=("log", "linear"), default="log",
                        help="log-uniform (constant velocity step) or linear grid "
                             "(default: %(default)s)")
    parser.add_argument("--normalize", choices=("median", "running_quantile", "polynomial", "none"),
                        default="median", help="continuum normalisation (default: %(default)s)")
    parser.add_argument("--mask-cosmic-rays", action="store_true",
                        help="interpolate over cosmic rays (spikes of one or two pixels sharper "
                             "than any line) at the files' own sampling, before resampling; "
                             "recorded "
                             "with the preprocessing (predict repairs them in any case)")
    parser.add_argument("--continuum-smoothing", type=float, metavar="KM_S",
                        help="estimate the running_quantile or polynomial continuum from flux "
                             "smoothed over this width (km/s; ~900 for R ~ 2000): the "
                             "continuum of noisy spectra then moves far less with the noise")


def _training(parser, epochs, batch_size, lr, validation=0.1, recipe=None):
    """The training options; ``recipe`` gives the help of defaults left to the recipe (None)."""
    recipe = recipe or {}

    def default(name):
        return recipe.get(name, "%(default)s")

    parser.add_argument("--epochs", type=int, default=epochs,
                        help=f"training epochs (default: {default('epochs')})")
    parser.add_argument("--batch-size", type=int, default=batch_size,
                        help=f"spectra per optimiser step (default: {default('batch_size')})")
    parser.add_argument("--lr", type=float, default=lr,
                        help=f"learning rate (default: {default('lr')})")
    parser.add_argument("--validation-fraction", type=float, default=validation,
                        help="spectra held out to monitor the loss (default: "
                             f"{default('validation_fraction')})")
    parser.add_argument("--checkpoint-dir", metavar="DIR",
                        help="checkpoint after every epoch and resume from a checkpoint there "
                             "(run the same command again to resume)")
    parser.add_argument("--workers", type=int, default=0, metavar="N",
                        help="background processes reading batches (default: %(default)s)")
    parser.add_argument("--precision", choices=("float32", "bf16-mixed"), default="float32",
                        help="bf16-mixed: bfloat16 autocast, faster on recent GPUs "
                             "(default: %(default)s)")
    parser.add_argument("--compile", action="store_true",
                        help="compile the network with torch.compile (long GPU runs)")
    _out(parser, "the model file to write (*.pt)")


def _add_prepare(sub):
    p = _parser(sub, "prepare", "read, resample and normalise spectrum files into a store",
                "Read spectrum files (HARPS ADP 1-D, PHOENIX HiRes, MILES, anything specutils "
                "reads), resample them onto one grid, normalise them and write a SpectralStore "
                "(HDF5) for training. " + PREPROCESSING_NOTE + " The store records the "
                "preprocessing, and models trained on it carry it on.")
    p.add_argument("files", nargs="+", metavar="FILES",
                   help="spectrum files or folders of FITS files")
    _grid(p)
    p.add_argument("--resample", choices=("flux_conserving", "linear", "spline"),
                   default="flux_conserving", help="resampling method (default: %(default)s)")
    p.add_argument("--pad-multiple-of", type=int, metavar="N",
                   help="pad (masked) to a multiple of N pixels")
    _reading(p)
    p.add_argument("--labels", metavar="TABLE",
                   help="a table of labels (ECSV, FITS, CSV...) with a 'filename' column, or "
                        "one row per file in order; stored with the spectra")
    p.add_argument("--batch-size", type=int, default=64,
                   help="files processed at a time (default: %(default)s)")
    parallel = p.add_argument_group(
        "parallel preparation (needs: pip install 'stellarlatent[dask]')",
        "Read and preprocess batches of files with dask while this process writes the\n"
        "store in the order of the files: every scheduler writes the same store.")
    where = parallel.add_mutually_exclusive_group()
    where.add_argument("--scheduler", choices=SCHEDULERS, default=None,
                       help="serial (this process, no dask; the default), synchronous (dask, one "
                            "batch at a time), threads or processes (dask on this machine)")
    where.add_argument("--dask-address", metavar="ADDRESS",
                       help="the address of a running dask.distributed scheduler, e.g. "
                            "tcp://10.0.0.5:8786 (started with 'dask scheduler' and "
                            "'dask worker ADDRESS'); the workers must see the files at the "
                            "same paths")
    parallel.add_argument("--workers", type=int, metavar="N",
                          help="threads or processes for --scheduler threads/processes "
                               "(default: the number of CPU cores)")
    _out(p, "the store to write (*.h5)")
    _common(p, _run("prepare", "run_prepare"))


def _add_fit_vae(sub):
    p = _parser(sub, "fit-vae", "train a SpectralVAE on a store or on files",
                "Train a convolutional beta-VAE (Sedaghat et al. 2021) on the spectra of a store "
                "built by 'prepare' (streamed from disk) or on files, read and preprocessed with "
                "the options of 'prepare'. " + PREPROCESSING_NOTE)
    _data(p, metavar="STORE_OR_FILES")
    from ._commands.recipe import VAE_DEFAULTS as d
    p.add_argument("--preset", choices=("miles", "sedaghat2021"),
                   help="start from SpectralVAE.from_preset(NAME) and change only the options "
                        "given: 'miles' is the recipe chosen on MILES-like spectra (R ~ 2000, "
                        "median-normalised; beta 0.005 summed, line term, 450 epochs, cosine), "
                        "'sedaghat2021' the paper's network for HARPS")
    p.add_argument("--latent-dim", type=int, default=None,
                   help=f"number of latents (default: the preset's, or {d['latent_dim']})")
    p.add_argument("--beta", type=float, default=None,
                   help=f"weight of the KL term (default: the preset's, or {d['beta']:g}; "
                        "not with --autoencoder)")
    p.add_argument("--autoencoder", action="store_true",
                   help="a deterministic autoencoder (no KL term)")
    p.add_argument("--line-weight", type=float, default=None,
                   help="weight of a second reconstruction term on the lines alone (the flux "
                        "minus a running mean); makes Doppler shifts count where the continuum "
                        f"dominates the error (default: the preset's, or {d['line_weight']:g})")
    p.add_argument("--coarse-weight", type=float, default=None,
                   help="weight of a reconstruction term on the residual averaged over "
                        "--coarse-window pixels: at high resolving power it lets a latent learn "
                        "velocities that move the lines by many times their width (default: "
                        "the preset's, or none)")
    p.add_argument("--coarse-window", type=int, default=None,
                   help="width in pixels (odd) of that average, about the largest Doppler "
                        "shift in pixels (default: the preset's, or 129)")
    p.add_argument("--kl-reduction", choices=("mean", "sum"), default=None,
                   help="average the KL term over the latents (Sedaghat et al. 2021) or sum it "
                        "(the beta-VAE): with sum, the penalty per latent does not depend on "
                        f"--latent-dim (default: the preset's, or {d['kl_reduction']})")
    p.add_argument("--lr-schedule", choices=("constant", "cosine"), default=None,
                   help="cosine: anneal the learning rate to 0 over the epochs, so that the "
                        "means of unused latents settle at 0 (default: the preset's, or "
                        f"{d['lr_schedule']})")
    p.add_argument("--beta-sweep", type=float, nargs="+", metavar="BETA",
                   help="fit networks of --latent-dim and of each --sweep-latent-dims at every "
                        "BETA, write the informative latents against beta (Sedaghat et al. 2021, "
                        "Fig. 4) next to --out, and keep the --latent-dim network at the beta "
                        "where the sizes agree (not with --beta)")
    p.add_argument("--sweep-latent-dims", type=int, nargs="+", default=[32], metavar="N",
                   help="the other network sizes of --beta-sweep (default: 32)")
    p.add_argument("--jobs", type=int, default=1,
                   help="networks of --beta-sweep fitted at once, one process each, for spectra "
                        "held in memory (default: %(default)s)")
    p.add_argument("--n-init", type=int, default=1, metavar="N",
                   help="fits of every network of --beta-sweep from N random starts, keeping "
                        "the one with the lowest final loss: a network that stopped near the "
                        "mean spectrum has a count that says nothing (default: %(default)s)")
    _training(p, epochs=None, batch_size=None, lr=None, validation=None, recipe={
        "epochs": f"the preset's, or {d['max_epochs']}",
        "batch_size": f"the preset's, or {d['batch_size']}",
        "lr": f"the preset's, or {d['lr']:g}",
        "validation_fraction": f"{d['validation_fraction']:g}"})
    _grid(p)
    _reading(p)
    _common(p, _run("fit", "run_fit_vae"))


def _positive_float(value):
    """A number above zero (``--resolution``)."""
    try:
        number = float(value)
    except ValueError:
        number = float("nan")
    if not number > 0 or number == float("inf"):
        raise argparse.ArgumentTypeError(f"expected a positive number, got {value!r}")
    return number


def _fraction(value):
    """A number in [0, 1] (``--min-coverage``)."""
    try:
        number = float(value)
    except ValueError:
        number = float("nan")
    if not 0 <= number <= 1:
        raise argparse.ArgumentTypeError(f"expected a number from 0 to 1, got {value!r}")
    return number


def _window_option(value):
    """``--contrast-window``: auto, off or a number of pixels (checked by the estimator)."""
    text = str(value).strip().lower()
    if text == "auto":
        return "auto"
    if text in ("off", "none", "0"):
        return None
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected auto, off or an odd number of pixels, got {value!r}") from None


def _recipe_options(p):
    """The options of ``fit-remap`` that choose the recipe (defaults: the recommended one)."""
    from ._commands import recipe as r

    g = p.add_argument_group(
        "the recipe (defaults: the recommended one)",
        "An ensemble of --members DeepREMAP networks, each pre-trained on --pretrain spectra\n"
        "with its own seed for --pretrain-epochs, fine-tuned on DATA for --epochs, their\n"
        "log-probabilities averaged and calibrated on held-out stars. --members 1\n"
        "--pretrain none trains one DeepREMAP from scratch.")
    g.add_argument("--members", type=int, default=r.MEMBERS, metavar="N",
                   help="networks in the ensemble; 1 writes a single DeepREMAP "
                        "(default: %(default)s)")
    g.add_argument("--pretrain", default="synthetic", metavar="SOURCE",
                   help="pre-training spectra: 'synthetic' (made on the grid, wavelengths and "
                        "resolution of DATA over its label ranges), a store (*.h5) on the same "
                        "grid with the same labels, a folder of PHOENIX HiRes models or of "
                        "MILES spectra, or 'none' (default: %(default)s)")
    g.add_argument("--pretrain-epochs", type=int, default=r.PRETRAIN_EPOCHS, metavar="N",
                   help="pre-training epochs of each network (default: %(default)s)")
    g.add_argument("--n-synthetic", type=int, default=r.N_SYNTHETIC, metavar="N",
                   help="synthetic spectra made for --pretrain synthetic (default: %(default)s)")
    g.add_argument("--calibration-method", choices=("coverage", "nll"), default="coverage",
                   help="coverage: the 68%% intervals hold 68%% of the held-out stars; nll: "
                        "temperature scaling by likelihood (default: %(default)s)")
    g.add_argument("--jobs", type=int, default=1, metavar="N",
                   help="networks trained at once in separate processes (one torch thread "
                        "each; -1: one per CPU core); above 1 a store is read into memory "
                        "(default: %(default)s)")
    net = p.add_argument_group("network size (default: the recipe's)")
    net.add_argument("--base-channels", type=int, default=None, metavar="N",
                     help=f"channels of the first convolutional stage "
                          f"(recipe: {r.RECIPE['base_channels']})")
    net.add_argument("--n-stages", type=int, default=None, metavar="N",
                     help=f"stride-2 stages of the residual CNN (recipe: {r.RECIPE['n_stages']})")
    return r


def _add_fit_remap(sub):
    p = _parser(sub, "fit-remap", "train the recommended DeepREMAP ensemble on labelled spectra",
                "Train the recommended recipe (Gilda 2025): an ensemble of DeepREMAP networks, "
                "each pre-trained with its own seed on synthetic spectra made like DATA (its "
                "grid, air or vacuum wavelengths and resolution, over its label ranges), then "
                "fine-tuned on every star of DATA; their log-probabilities are averaged, "
                "joined by a ridge expert and calibrated on the out-of-fold predictions of "
                "--calibration-cv more fine-tunings (or on a held-out --calibration-fraction "
                "of the stars). The labels are store columns "
                "(teff logg feh by default) or a table file. A store is streamed from disk "
                "(read into memory with --jobs above 1). " + PREPROCESSING_NOTE)
    _data(p)
    _labels(p, "label columns of the store to predict, or a table file (one row per file, or a "
               "'filename' column) followed by optional column names (default: teff logg feh)")
    r = _recipe_options(p)
    p.add_argument("--n-bins", type=int, default=None,
                   help="bins per label (default: bins of a fixed width per known label, "
                        "0.005 dex of Teff, 0.09 dex in log g, 0.065 dex in [Fe/H])")
    p.add_argument("--contrast-window", type=_window_option, default="auto", metavar="N",
                   help="also feed the network the flux minus its running mean over N pixels "
                        "(odd; the lines without the continuum); auto: about 55 Angstrom, "
                        "33 pixels of a 2048-pixel MILES grid; off: none (default: auto)")
    p.add_argument("--label-smoothing", type=float, default=None, metavar="SIGMA",
                   help="Gaussian soft targets SIGMA bins wide, for labels with errors; 0 is "
                        "one-hot (default: the recipe's, 1)")
    p.add_argument("--calibration-cv", type=int, default=None, metavar="K",
                   help="train on every star and calibrate on out-of-fold predictions of K "
                        "more fine-tunings of the ensemble, each on all but a K-th of the "
                        "stars (needs --members 2 or more and a pre-training); 0: hold out "
                        f"--calibration-fraction instead (default: {r.CALIBRATION_CV} for an "
                        f"ensemble with a pre-training and at least {2 * r.CALIBRATION_CV} "
                        "spectra, else 0)")
    p.add_argument("--calibration-fraction", type=float, default=None,
                   help="stars held out to calibrate the probabilities instead of "
                        f"--calibration-cv; 0: no calibration (default: "
                        f"{r.CALIBRATION_FRACTION} when not cross-calibrating)")
    by = f"{r.CALIBRATE_BY[0]} " + " ".join(f"{v:g}" for v in r.CALIBRATE_BY[1])
    p.add_argument("--calibrate-by", nargs="+", default=None, metavar="LABEL_OR_EDGE",
                   help="calibrate each type of star on its own: LABEL then the values of it "
                        "that separate the types, sorted by the predicted LABEL (the intervals "
                        "of cool, FGK and hot stars are each widened or narrowed by a factor "
                        "of their own, the labels unchanged; a type with fewer than 20 "
                        "calibration stars keeps the overall calibration); 'none': "
                        f"one calibration for every star (default: '{by}' for an ensemble that "
                        "predicts teff, else none)")
    _training(p, epochs=None, batch_size=None, lr=None, validation=None, recipe={
        "epochs": f"{r.EPOCHS_PRETRAINED} of fine-tuning after pre-training, "
                  f"{r.EPOCHS_SCRATCH} from scratch",
        "batch_size": "the recipe's, 32", "lr": "the recipe's, 0.003, also for fine-tuning",
        "validation_fraction": "the recipe's, 0"})
    _grid(p)
    _reading(p)
    _common(p, _run("fit", "run_fit_remap"))


def _add_diagnose(sub):
    p = _model_parser(sub, "diagnose", "write a report on a saved model and labelled spectra",
                      "Write a report folder: index.html (self-contained, figures embedded), the "
                      "figures as PNG and the tables as ECSV. For a SpectralVAE: informative "
                      "latents, their mutual information with the labels, traversals. For a "
                      "DeepREMAP: accuracy, interval coverage and reliability against the true "
                      "labels. ", "a model file written by fit-vae or fit-remap")
    _data(p)
    _table_labels(p, "the model's labels, or every known label")
    _reading(p)
    _matching(p)
    _out(p, "the report folder")
    _common(p, _run("diagnose", "run_diagnose"))


def _matching(p):
    """The options that bring raw files to a model's instrument (predict, diagnose, explore)."""
    p.add_argument("--resolution", type=_positive_float, default=None, metavar="R",
                   help="resolving power of the spectra, where their files do not record it "
                        "(a bundled model broadens finer spectra to its own resolution)")
    p.add_argument("--no-match", action="store_true",
                   help="do not bring the spectra to the model's instrument (wavelength medium, "
                        "resolution, rest frame) first")
    p.add_argument("--keep-cosmic-rays", action="store_true",
                   help="leave cosmic rays as they are (spikes of one or two pixels sharper "
                        "than any line, otherwise interpolated over before the spectra are "
                        "broadened and counted in the output's cosmic_rays)")
    p.add_argument("--no-denoise", action="store_true",
                   help="do not remove the noise that spectra carry beyond the bundled model's "
                        "training spectra (its PCADenoiser, which takes photon noise and "
                        "removes no more than a file's uncertainty reports; spectra as clean "
                        "as those are unchanged either way)")


def _add_predict(sub):
    p = _model_parser(sub, "predict", "labels (DeepREMAP) or latents (SpectralVAE) of spectra",
                      "Predict labels with uncertainties (a DeepREMAP model) or latents (a "
                      "SpectralVAE model) and write a table with a 'filename' column. ",
                      "a model file written by fit-vae or fit-remap, or the name of a bundled "
                      "model ('stellarlatent models' lists them)")
    _data(p, metavar="FILES", help="spectrum files/folders, or a store (*.h5)")
    _reading(p)
    _out(p, "the table to write (*.ecsv, *.fits, *.csv...)")
    _matching(p)
    p.add_argument("--min-coverage", type=_fraction, default=0.8, metavar="F",
                   help="spectra covering less of the model's wavelengths are flagged "
                        "out_of_range (default: %(default)s)")
    _common(p, _run("predict", "run_predict"))


def _add_explore(sub):
    p = _model_parser(sub, "explore", "an interactive page to explore a SpectralVAE's latents",
                      "Write DIR/explorer.html, one self-contained page (opens offline): a slider "
                      "per informative latent redraws the decoded spectrum; a scatter of any two "
                      "latents coloured by any label selects a star, whose spectrum, "
                      "reconstruction, labels and most similar spectra (in the latents, or in the "
                      "embedding of --remap) are shown; spectra zoom on a wavelength range. ",
                      "a SpectralVAE file written by fit-vae")
    _data(p)
    _table_labels(p, "every label of the store; none for files")
    p.add_argument("--remap", metavar="MODEL2",
                   help="a DeepREMAP (or ensemble) file: similar spectra are the nearest in its "
                        "embedding rather than in the latents")
    p.add_argument("--neighbors", type=int, default=None, metavar="K",
                   help="similar spectra shown per star (default: 5, or one fewer than the "
                        "spectra when they are fewer than 6)")
    p.add_argument("--max-spectra", type=int, default=500, metavar="N",
                   help="observed spectra stored in the page; the others show their "
                        "reconstruction (default: %(default)s)")
    _reading(p)
    _matching(p)
    _out(p, "the folder of explorer.html", metavar="DIR")
    _common(p, _run("explore", "run_explore"))


def _common_options(args):
    """Check --threads and --seed (one line, exit code 1, as any bad value); set the threads."""
    threads = args.threads if args.threads is not None else (1 if args.command == "demo" else None)
    if threads is not None:
        if threads < 1:
            raise UserError(f"--threads must be a positive integer, got {threads}")
        import torch

        torch.set_num_threads(threads)
    if not 0 <= args.seed < 2**32:
        raise UserError(f"--seed must be an integer in [0, 2**32), got {args.seed}")


def _run(module, function):
    def run(args):
        import importlib

        _seed(args.seed)
        _check_device(args.device)
        return getattr(importlib.import_module(f"._commands.{module}", __package__), function)(args)

    return run


def _check_device(device):
    """Refuse a ``--device`` this machine cannot give before any work (not as a damaged model)."""
    from .estimators import resolve_device

    try:
        resolve_device(device)
    except (TypeError, ValueError) as exc:
        raise UserError(f"--device: {exc}") from None


def _seed(seed):
    import numpy as np
    import torch

    np.random.seed(seed)
    torch.manual_seed(seed)


def _version():
    from . import __version__

    return f"stellarlatent {__version__}"


def _info(args):
    import astropy
    import numpy
    import sklearn
    import specutils
    import torch

    from .estimators import resolve_device

    print(_version())
    for module in (numpy, astropy, specutils, sklearn, torch):
        print(f"{module.__name__:>12s} {module.__version__}")
    device = resolve_device(args.device)
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else "CPU"
    print(f"{'device':>12s} {device} ({name}); CUDA available: {torch.cuda.is_available()}")
    return 0


def _demo(args):
    from ._demo import run_demo

    run_demo(args)
    return 0


def main(argv=None):
    """Run the ``stellarlatent`` command; return its exit code.

    0 on success, 1 when the work failed (one line on standard error), 2 for
    a usage error (from the parser) and 130, the convention for SIGINT, when
    interrupted (Ctrl-C), at any point of the command, its start-up included:
    one line on standard error, the traceback only with ``--debug``.
    """
    args = None
    try:
        parser = build_parser()
        args = _parse_intermixed(parser, argv)
        level = logging.DEBUG if args.debug else (logging.WARNING if args.quiet else logging.INFO)
        logging.basicConfig(level=level, format="%(message)s")
        logging.getLogger("stellarlatent").setLevel(level)
        try:
            _common_options(args)
            return args.func(args)
        except Exception as exc:  # noqa: BLE001 - every failure is one line (--debug: traceback)
            # an error that an interrupt became is an interrupt: Python turns one raised in
            # a class's __set_name__ (specutils' import) into a RuntimeError
            link, links = exc, 0
            while link is not None and not isinstance(link, KeyboardInterrupt) and links < 50:
                link, links = link.__cause__ or link.__context__, links + 1
            if isinstance(link, KeyboardInterrupt):
                raise KeyboardInterrupt from exc
            if args.debug:
                raise
            print(f"stellarlatent {args.command}: error: {error_line(exc)}", file=sys.stderr)
            return 1
    except KeyboardInterrupt:
        if getattr(args, "debug", False):
            import traceback

            traceback.print_exc()
        # torch's loggers are quiet once its import completes; interrupted before, one of
        # them would log its cache statistics at exit through the INFO root logger
        torch_log = logging.getLogger("torch")
        if torch_log.level == logging.NOTSET:
            torch_log.setLevel(logging.WARNING)
        command = getattr(args, "command", None)
        line = f"stellarlatent {command}: interrupted" if command else "stellarlatent: interrupted"
        if command in ("fit-vae", "fit-remap") and not getattr(args, "beta_sweep", None):
            folder = getattr(args, "checkpoint_dir", None)
            if folder is None:
                line += " (with --checkpoint-dir DIR, a fit run again resumes where it stopped)"
            elif any(Path(folder).rglob("checkpoint.pt")):
                line += f"; run the same command again to resume from its checkpoints in {folder}"
            else:
                line += f"; no epoch had ended, so {folder} holds no checkpoint yet"
        print(line, file=sys.stderr)
        return 130


#: the exceptions whose message is addressed to the user as it is
_PLAIN = (UserError, ValueError, TypeError, OSError, FloatingPointError, LookupError)


def error_line(exc):
    """The one line that reports ``exc``: its message, the first line of a long one.

    Other than the errors of bad input (`UserError`, ValueError, OSError...),
    the exception's type comes first; out-of-memory errors say what to lower.
    """
    import re

    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    text = lines[0] if lines else ""
    if len(lines) > 1:
        text = text.rstrip(":") + " (--debug shows the rest)"
    memory = isinstance(exc, MemoryError) or type(exc).__name__ == "OutOfMemoryError"
    if memory:
        found = re.search(r"Tried to allocate [\d.]+ \w+", text)
        return ("out of memory" + (f" ({found.group(0).lower()})" if found else "")
                + ": lower --batch-size, or use fewer or shorter spectra")
    if isinstance(exc, _PLAIN) and not type(exc).__module__.startswith("torch"):
        return text or type(exc).__name__
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def _models(args):
    from . import pretrained

    table = pretrained.list_models()
    if not len(table):
        print("stellarlatent models: no bundled model is installed")
        return 0
    for row in table:
        print(f"{row['name']}: {row['kind']}")
        for column in table.colnames[2:]:
            if row[column]:
                print(f"    {column.replace('_', ' ')}: {row[column]}")
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
