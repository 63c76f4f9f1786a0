"""Saved models and the spectra and labels given to them on the command line."""

import pickle
from pathlib import Path

from .._logging import log
from .._preprocessing_spec import build
from . import first_line as _first_line
from .inputs import (STORE_SUFFIXES, UserError, expand_paths, is_store, labels_for_files,
                     looks_like_store, make_pipeline, make_reader, open_store, read_label_table)
from .outputs import MODEL_SUFFIXES

__all__ = ["load_model", "is_remap", "quiet", "describe_model", "model_pipeline", "store_input",
           "training_data", "model_data", "early_labels", "parse_labels", "select_labels"]

DEFAULT_LABELS = ("teff", "logg", "feh")


def load_model(path, device="auto"):
    """Load a SpectralVAE, DeepREMAP or DeepREMAPEnsemble file, whichever it holds.

    Model files of every earlier version load: a DeepREMAP or SpectralVAE
    file names its class (``payload["estimator"]``), an ensemble file its
    format (``payload["format"] == "stellarlatent-ensemble"``).
    """
    import torch

    from ..estimators import DeepREMAP, DeepREMAPEnsemble, SpectralVAE

    path = Path(path)
    if not path.exists() and path.suffix == "" and len(path.parts) == 1:
        from .. import pretrained

        if str(path) in pretrained.list_models()["name"]:
            try:
                model = pretrained.load(str(path), device=device)
            except ValueError as exc:
                raise UserError(f"MODEL: {_first_line(exc, 300)}") from None
            quiet(model)
            return model
        names = ", ".join(pretrained.list_models()["name"]) or "none is installed"
        raise UserError(f"MODEL: no model file at {path}, and no bundled model of that name "
                        f"(bundled: {names})")
    if path.is_dir():
        raise UserError(f"MODEL: {path} is a folder; give a model file written by fit-vae or "
                        "fit-remap")
    if not path.is_file():
        raise UserError(f"MODEL: no model file at {path}")
    if is_store(path):
        raise UserError(f"MODEL: {path} is a store (HDF5), not a model file; the model comes "
                        "first: stellarlatent COMMAND MODEL DATA")
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
        kind = payload.get("estimator") or ENSEMBLE_FORMATS.get(payload.get("format"))
    except Exception as exc:  # noqa: BLE001 - corrupt files raise many types
        reason = _first_line(exc, 300)
        if "weights_only" in str(exc) or isinstance(exc, pickle.UnpicklingError):
            # torch's own words advise weights_only=False, which is never right for a file
            # that is not a model: say what the file is not instead
            reason = f"not a file that fit-vae or fit-remap wrote: {type(exc).__name__}"
        raise UserError(f"MODEL: {path} is not a readable stellarlatent model file "
                        f"({reason})") from None
    classes = {"SpectralVAE": SpectralVAE, "DeepREMAP": DeepREMAP,
               "DeepREMAPEnsemble": DeepREMAPEnsemble}
    if kind not in classes:
        raise UserError(f"MODEL: {path} is not a SpectralVAE, DeepREMAP or DeepREMAPEnsemble "
                        "model file")
    try:
        model = classes[kind].load(path, device=device)
    except (ValueError, KeyError, RuntimeError) as exc:
        message = _first_line(exc, 300)
        raise UserError(f"MODEL: {message if str(path.name) in message else f'{path}: {message}'}"
                        ) from None
    quiet(model)
    return model


#: the ``format`` of the files of models saved without an ``estimator`` entry
ENSEMBLE_FORMATS = {"stellarlatent-ensemble": "DeepREMAPEnsemble"}


def is_remap(model):
    """Whether the model predicts labels (a DeepREMAP or an ensemble of them)."""
    from ..estimators import DeepREMAP, DeepREMAPEnsemble

    return isinstance(model, (DeepREMAP, DeepREMAPEnsemble))


def quiet(model):
    """No progress bars from the model (or from each member of an ensemble)."""
    for member in getattr(model, "members_", None) or [model]:
        if "verbose" in member.get_params(deep=False):
            member.set_params(verbose=0)
    return model


def describe_model(model):
    """A few words on a model: its class, members and labels."""
    members = getattr(model, "members_", None)
    if members is not None:
        return f"an ensemble of {len(members)} DeepREMAP networks"
    return f"a {type(model).__name__}"


def model_pipeline(model):
    """The preprocessing that turns raw files into the model's input, or None.

    Always a `~sklearn.pipeline.Pipeline` (of one step for a model that
    records only its grid), so that the readers treat every model alike.
    """
    from sklearn.pipeline import make_pipeline as sk_make_pipeline

    from ..preprocessing import Resampler

    spec = getattr(model, "preprocessing_", None)
    if spec is not None:
        try:
            return build(spec)
        except (TypeError, ValueError, KeyError) as exc:
            raise UserError(f"MODEL: its recorded preprocessing cannot be rebuilt "
                            f"({_first_line(exc, 300)})") from None
    axis = getattr(model, "spectral_axis_", None)
    if axis is not None:
        log.warning("the model carries no preprocessing: files are resampled onto its grid "
                    "but not normalised (retrain it from a store built by 'stellarlatent "
                    "prepare' to record the preprocessing)")
        return sk_make_pipeline(Resampler(axis))
    return None


#: options of the raw-file reading and preprocessing: (attribute, default, flag)
RAW_FILE_OPTIONS = (("grid", None, "--grid"), ("grid_kind", "log", "--grid-kind"),
                    ("normalize", "median", "--normalize"),
                    ("continuum_smoothing", None, "--continuum-smoothing"),
                    ("mask_cosmic_rays", False, "--mask-cosmic-rays"),
                    ("format", "auto", "--format"), ("phoenix_wave", None, "--phoenix-wave"))


def store_input(args, what="DATA", options=RAW_FILE_OPTIONS):
    """The store named by ``args.data``, or None when the data are files.

    Refuses a misnamed or corrupt ``*.h5``, a store among files, and the
    options of raw files given with a store (they would be ignored).
    """
    paths = list(args.data)
    for path in paths:
        if Path(path).suffix.lower() in MODEL_SUFFIXES and Path(path).is_file():
            raise UserError(f"{what}: {path} is a model file, not spectra (the model comes "
                            "first, the spectra after it)")
        # one missing store is the whole input; among files it is skipped as any missing file
        if (len(paths) == 1 and Path(path).suffix.lower() in STORE_SUFFIXES
                and not Path(path).exists()):
            raise UserError(f"{what}: no store at {path} (no such file); build one with "
                            "'stellarlatent prepare', or give spectrum files and folders")
        if looks_like_store(path):
            raise UserError(f"{what}: {path} is not an HDF5 file, so not a store written by "
                            "'stellarlatent prepare' (corrupt, truncated or misnamed?)")
    stores = [path for path in paths if is_store(path)]
    if not stores:
        return None
    if len(paths) > 1:
        raise UserError(f"{what}: {stores[0]} is a store; give one store on its own, or "
                        "spectrum files and folders")
    given = [flag for attr, default, flag in options if getattr(args, attr, default) != default]
    if given:
        what_it_is = ("already on its grid and normalised" if {
            "--grid", "--normalize", "--grid-kind", "--continuum-smoothing"} & set(given)
            else "already read")
        raise UserError(f"{', '.join(given)} appl{'y' if len(given) > 1 else 'ies'} to raw files; "
                        f"{stores[0]} is a store, {what_it_is}: leave "
                        f"{'them' if len(given) > 1 else 'it'} out, or give the raw files")
    return stores[0]


def _read_files(paths, reader, pipeline, skips, quiet):
    """Read the files and folders named on the command line through the pipeline.

    Returns ``(batch, names, n_files)``; the files skipped go to ``skips``.
    """
    from ..datasets import read_spectra_files

    files = expand_paths(paths, skips)
    batch, names = None, []
    if files:
        batch, names, _ = read_spectra_files(files, reader, pipeline, progress=not quiet,
                                             on_skip=skips.on_skip)
    if batch is None:
        reasons = "; ".join(f"{n}: {r}" for n, r in skips.items[:3])
        raise UserError("no input could be read" + (f": {reasons}" if reasons else ""))
    return batch, names, len(files)


def training_data(args, skips):
    """Spectra to train on and the preprocessing description.

    Returns ``(X, names, labels_source, spec, store)``: a SpectralStore (streamed) or a
    batch Spectrum read from files with the ``prepare`` options; ``store`` is the
    open store or None.
    """
    from .._preprocessing_spec import describe, with_instrument

    path = store_input(args)
    if path is not None:
        store = open_store(path)
        # the resolution the files recorded goes with the model (predict matches to it)
        spec = with_instrument(store.meta.get("preprocessing"), store.meta)
        names = _store_names(store)
        return store, names, store.labels, spec, store
    reader = make_reader(args.format, args.phoenix_wave)
    pipeline = make_pipeline(args.grid, args.grid_kind, args.normalize,
                             smoothing=args.continuum_smoothing,
                             mask_cosmic_rays=args.mask_cosmic_rays)
    batch, names, _ = _read_files(args.data, reader, pipeline, skips, args.quiet)
    return batch, names, None, with_instrument(describe(pipeline), batch.meta), None


MODEL_RAW_OPTIONS = (*(o for o in RAW_FILE_OPTIONS if o[0] in ("format", "phoenix_wave")),
                     # what raw files go through before a model, never a store
                     ("resolution", None, "--resolution"), ("no_match", False, "--no-match"),
                     ("no_denoise", False, "--no-denoise"),
                     ("keep_cosmic_rays", False, "--keep-cosmic-rays"))


def model_data(model, args, skips, before=None, after=None):
    """Spectra for a fitted model: a store as it is, raw files through its preprocessing.

    ``before`` is a list of transformers applied to raw files ahead of the
    model's own preprocessing (bringing them to the model's instrument),
    ``after`` a list applied after it (a bundled model's denoiser).
    Returns ``(X, names, labels_source, n_files)``.
    """
    path = store_input(args, options=MODEL_RAW_OPTIONS)
    if path is not None:
        store = open_store(path)
        n_pixels = store.n_pixels
        if n_pixels != model.n_features_in_:
            store.close()
            raise UserError(
                f"DATA: the store has {n_pixels} pixels per spectrum but the model expects "
                f"{model.n_features_in_}; build it with the model's grid or give raw files")
        return store, _store_names(store), store.labels, len(store)
    reader = make_reader(args.format, args.phoenix_wave)
    pipeline = model_pipeline(model)
    if before or after:
        from sklearn.pipeline import make_pipeline as sk_make_pipeline

        from ..preprocessing.denoise import store_continuum_for_denoiser

        steps = [step for _, step in pipeline.steps] if pipeline is not None else []
        pipeline = sk_make_pipeline(
            *store_continuum_for_denoiser([*(before or []), *steps, *(after or [])]))
    batch, names, n_files = _read_files(args.data, reader, pipeline, skips, args.quiet)
    return batch, names, None, n_files


def _store_names(store):
    if "filename" in store.label_names:
        return [str(n) for n in store.labels["filename"]]
    return [f"{store.path.name}[{i}]" for i in range(len(store))]


_TABLE_SUFFIXES = (".ecsv", ".csv", ".fits", ".fit", ".vot", ".xml", ".txt", ".dat")


def label_table_arg(values):
    """Whether ``--labels`` names a table file (its first value), rather than columns."""
    values = list(values or [])
    return bool(values) and (Path(values[0]).is_file() or
                             Path(values[0]).suffix.lower() in _TABLE_SUFFIXES)


def early_labels(values, has_store):
    """Check ``--labels`` before the spectra are read; return the table it names, or None.

    A table file is read now (a bad one fails before any file is read), and
    raw files without a table are refused now.
    """
    if label_table_arg(values):
        values = list(values)
        table = read_label_table(values[0])
        missing = [name for name in values[1:] if name not in table.colnames]
        if missing:
            raise UserError(f"--labels: no column {missing[0]!r} in {values[0]}; its columns are "
                            f"{table.colnames}")
        return table
    if not has_store:
        given = "is not a table file" if values else "is needed for raw files"
        raise UserError(f"--labels {given}: give a table file (ECSV, FITS, CSV...) with one row "
                        "per file or a 'filename' column; only a store carries its own labels")
    return None


def parse_labels(values, names, labels_source, default=None, table=None):
    """The label table and the label names asked for with ``--labels``.

    ``--labels`` is either names of store columns, or a table file followed by
    optional column names. Returns ``(table, names)``; ``table`` has one row per spectrum.
    ``table`` is the table file already read by `early_labels`, if any.
    """
    values = list(values or [])
    if label_table_arg(values):
        if table is None:
            table = read_label_table(values[0])
        table = labels_for_files(table, names)
        wanted = values[1:]
    else:
        if labels_source is None:
            raise UserError("--labels: give a table file (ECSV, FITS, CSV...) with one row per "
                            "file or a 'filename' column; only a store carries its own labels")
        table, wanted = labels_source, values
    if not wanted:
        wanted = [n for n in (default or table.colnames) if n in table.colnames]
    missing = [n for n in wanted if n not in table.colnames]
    if missing:
        raise UserError(f"--labels: no column {missing[0]!r}; the labels are {table.colnames}")
    return table, list(wanted)


def select_labels(table, names):
    """The named columns of a label table, as a QTable."""
    from astropy.table import QTable

    return QTable({name: table[name] for name in names})
