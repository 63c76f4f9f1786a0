"""Saved models and the spectra and labels given to them on the command line."""

from pathlib import Path

from .._logging import log
from .._preprocessing_spec import build
from .inputs import (UserError, expand_paths, is_store, labels_for_files, make_pipeline,
                     make_reader, open_store, read_label_table, read_spectra)

__all__ = ["load_model", "model_pipeline", "training_data", "model_data", "parse_labels",
           "select_labels"]

DEFAULT_LABELS = ("teff", "logg", "feh")


def load_model(path, device="auto"):
    """Load a SpectralVAE or DeepREMAP file, whichever it holds."""
    import torch

    from ..estimators import DeepREMAP, SpectralVAE

    path = Path(path)
    if not path.is_file():
        raise UserError(f"MODEL: no model file at {path}")
    try:
        kind = torch.load(path, map_location="cpu", weights_only=True).get("estimator")
    except Exception as exc:  # noqa: BLE001 - corrupt files raise many types
        raise UserError(f"MODEL: {path} is not a readable stellarlatent model file ({exc})") from None
    classes = {"SpectralVAE": SpectralVAE, "DeepREMAP": DeepREMAP}
    if kind not in classes:
        raise UserError(f"MODEL: {path} is not a SpectralVAE or DeepREMAP model file")
    return classes[kind].load(path, device=device)


def model_pipeline(model):
    """The preprocessing that turns raw files into the model's input, or None."""
    from ..preprocessing import Resampler

    spec = getattr(model, "preprocessing_", None)
    if spec is not None:
        return build(spec)
    axis = getattr(model, "spectral_axis_", None)
    if axis is not None:
        log.warning("the model carries no preprocessing: files are resampled onto its grid "
                    "but not normalised (retrain it from a store built by 'stellarlatent "
                    "prepare' to record the preprocessing)")
        return Resampler(axis)
    return None


def _read_files(paths, reader, pipeline, skips, quiet):
    files = expand_paths(paths, skips)
    batch, names = (None, []) if not files else read_spectra(
        files, reader, pipeline, skips, progress=not quiet)
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
    from .._preprocessing_spec import describe

    if len(args.data) == 1 and is_store(args.data[0]):
        store = open_store(args.data[0])
        spec = store.meta.get("preprocessing")
        names = _store_names(store)
        return store, names, store.labels, spec, store
    reader = make_reader(args.format, args.phoenix_wave)
    pipeline = make_pipeline(args.grid, args.grid_kind, args.normalize)
    batch, names, _ = _read_files(args.data, reader, pipeline, skips, args.quiet)
    return batch, names, None, describe(pipeline), None


def model_data(model, args, skips):
    """Spectra for a fitted model: a store as it is, raw files through its preprocessing.

    Returns ``(X, names, labels_source, n_files)``.
    """
    if len(args.data) == 1 and is_store(args.data[0]):
        store = open_store(args.data[0])
        if store.n_pixels != model.n_features_in_:
            raise UserError(
                f"DATA: the store has {store.n_pixels} pixels per spectrum but the model expects "
                f"{model.n_features_in_}; build it with the model's grid or give raw files")
        return store, _store_names(store), store.labels, len(store)
    reader = make_reader(args.format, args.phoenix_wave)
    batch, names, n_files = _read_files(args.data, reader, model_pipeline(model), skips, args.quiet)
    return batch, names, None, n_files


def _store_names(store):
    if "filename" in store.label_names:
        return [str(n) for n in store.labels["filename"]]
    return [f"{store.path.name}[{i}]" for i in range(len(store))]


def parse_labels(values, names, labels_source, default=None):
    """The label table and the label names asked for with ``--labels``.

    ``--labels`` is either names of store columns, or a table file followed by
    optional column names. Returns ``(table, names)``; ``table`` has one row per spectrum.
    """
    values = list(values or [])
    if values and (Path(values[0]).is_file() or Path(values[0]).suffix.lower() in
                   (".ecsv", ".csv", ".fits", ".fit", ".vot", ".xml", ".txt", ".dat")):
        table = labels_for_files(read_label_table(values[0]), names)
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

