"""``stellarlatent explore``: the interactive latent explorer of a SpectralVAE, as one page."""

import time
from pathlib import Path

from .inputs import Skips, UserError
from .models import (MODEL_RAW_OPTIONS, early_labels, load_model, model_data, parse_labels,
                     store_input)
from .outputs import check_report_folder
from .transfer import transfer_steps

__all__ = ["run_explore"]

PAGE = "explorer.html"

#: similar spectra shown per star unless --neighbors says
DEFAULT_NEIGHBORS = 5


def _close(X):
    if X is not None and hasattr(X, "label_names"):
        X.close()


def run_explore(args):
    """Write DIR/explorer.html; return the exit code."""
    from ..diagnostics import LatentExplorer
    from ..estimators import DeepREMAP, DeepREMAPEnsemble, SpectralVAE

    started = time.perf_counter()
    # an earlier page is replaced only with --overwrite; a report folder takes the page
    out = check_report_folder(args.out, (PAGE,), kind="a latent explorer page",
                              overwrite=getattr(args, "overwrite", False))
    if args.neighbors is not None and args.neighbors < 1:
        raise UserError(f"--neighbors must be a positive integer, got {args.neighbors}")
    if args.max_spectra < 0:
        raise UserError(f"--max-spectra must be a non-negative integer, got {args.max_spectra}")
    has_store = store_input(args, options=MODEL_RAW_OPTIONS) is not None
    vae = load_model(args.model, args.device)
    if not isinstance(vae, SpectralVAE):
        raise UserError(f"MODEL: {args.model} holds a {type(vae).__name__}; explore needs a "
                        "SpectralVAE (written by fit-vae); give a DeepREMAP with --remap")
    remap = None
    if args.remap is not None:
        remap = load_model(args.remap, args.device)
        if not isinstance(remap, (DeepREMAP, DeepREMAPEnsemble)):
            raise UserError(f"--remap: {args.remap} holds a {type(remap).__name__}; give a "
                            "DeepREMAP or ensemble written by fit-remap")
    for model in [vae, remap] + list(getattr(remap, "members_", None) or []):
        if model is not None and "verbose" in model.get_params(deep=False):
            model.set_params(verbose=0)
    table_file = early_labels(args.labels, has_store) if args.labels else None
    skips = Skips()
    X = remap_X = None
    try:
        # raw files are brought to each model's instrument, as predict does
        before, after = (None, None) if has_store else transfer_steps(vae, args)
        X, names, source, n_inputs = model_data(vae, args, skips, before=before, after=after)
        if args.labels:
            table, wanted = parse_labels(args.labels, names, source, table=table_file)
            labels = table[wanted]
        else:
            # a store's own labels (none when it has no label column), or none for files
            labels = source if source is not None and len(source.colnames) else None
        if remap is not None:
            before, after = (None, None) if has_store else transfer_steps(remap, args,
                                                                          args.remap)
            remap_X, remap_names, _, _ = model_data(remap, args, Skips(), before=before,
                                                    after=after)
            if list(remap_names) != list(names):
                raise UserError("--remap: the spectra read through the DeepREMAP's preprocessing "
                                "are not those read through the SpectralVAE's (some files failed "
                                "for one model only)")
        neighbors = args.neighbors if args.neighbors is not None else max(1, min(
            DEFAULT_NEIGHBORS, len(names) - 1))
        try:
            explorer = LatentExplorer.from_estimator(
                vae, X, labels, remap=remap, remap_X=remap_X, n_neighbors=neighbors,
                names=names, max_spectra=args.max_spectra,
                title=f"stellarlatent explore: {Path(args.model).name}")
        except ValueError as exc:
            if "n_neighbors" in str(exc):
                raise UserError(f"--neighbors: {exc}") from None
            raise
    finally:
        _close(X)
        _close(remap_X)
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise UserError(f"--out: cannot make the folder {out} ({exc.strerror or exc})") from None
    path = explorer.save(out / PAGE)
    n = explorer.latents.shape[0]
    space = "latent space" if explorer.neighbor_space == "latent" else explorer.neighbor_space
    return skips.finish(
        f"stellarlatent explore: {n} spectra of {n_inputs} inputs, sliders for latents "
        f"{', '.join(map(str, explorer.dims))}, neighbours in the {space}; page: {path} "
        f"({path.stat().st_size / 1e6:.1f} MB, {time.perf_counter() - started:.0f} s)")
