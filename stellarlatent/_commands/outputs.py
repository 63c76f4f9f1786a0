"""What the subcommands write: checked before the work, written so that it is never lost.

Every ``--out`` is checked before any spectrum is read or any network is
trained: the folder it goes into exists and takes new files, it is not a
folder (or, for a report, not a file), and its extension says what it is.
What is there already is replaced only with ``--overwrite``: a file, or the
files of an earlier report in a report folder (`check_report_folder`, which
names them; `clear_report` removes those and nothing else).
Tables are written to a temporary file beside ``--out`` and moved into place,
so an interrupted write never leaves half a table; a model that cannot be
written where asked is written somewhere else, and the error says where.
"""

import os
import re
import tempfile
import warnings
from pathlib import Path

from .._logging import log
from . import UserError
from . import first_line as _first_line

__all__ = ["check_out_file", "check_out_folder", "check_report_folder", "clear_report",
           "check_table_out", "write_table", "save_model", "MODEL_SUFFIXES", "STORE_SUFFIXES"]

#: extensions of a model file written by fit-vae and fit-remap
MODEL_SUFFIXES = (".pt", ".pth")
#: extensions of a store written by prepare
STORE_SUFFIXES = (".h5", ".hdf5")
#: table formats astropy writes only when told (not identified from the file name)
_TABLE_FORMATS = {".vot": "votable", ".votable": "votable", ".xml": "votable"}
_TABLE_HINT = ".ecsv, .fits, .csv, .vot, .html"


def _probe(folder, what):
    """Refuse a folder that does not take new files (read-only, /proc, no permission)."""
    try:
        with tempfile.NamedTemporaryFile(dir=folder, prefix=".stellarlatent-", suffix=".probe"):
            pass
    except OSError as exc:
        raise UserError(f"{what}: cannot create files in {folder} "
                        f"({exc.strerror or type(exc).__name__}); "
                        "choose a writable folder") from None


def check_out_file(path, *, what="--out", suffixes=None, kind="file", overwrite=False):
    """Check before the work that ``path`` can be written; return it as a Path.

    Parameters
    ----------
    suffixes : tuple of str, default=None
        The extensions allowed (lower case, with the dot).
    kind : str
        What the file is, for the messages ("model file", "store"...).
    overwrite : bool
        Whether an existing file may be replaced.
    """
    out = Path(path)
    if out.is_dir():
        example = out / f"out{suffixes[0] if suffixes else ''}"
        raise UserError(f"{what}: {out} is a folder; give the {kind} to write, e.g. {example}")
    if suffixes and not str(out.name).lower().endswith(tuple(suffixes)):
        raise UserError(f"{what}: {out} must end in {' or '.join(suffixes)} (a {kind})")
    if out.exists() and not overwrite:
        raise UserError(f"{what}: {out} exists; pass --overwrite to replace it")
    parent = out.parent
    if not parent.exists():
        raise UserError(f"{what}: the folder {parent} does not exist; create it first")
    if not parent.is_dir():
        raise UserError(f"{what}: {parent} is not a folder")
    _probe(parent, what)
    return out


def check_out_folder(path, *, what="--out"):
    """Check before the work that a folder can be made (or written into) at ``path``."""
    out = Path(path)
    if out.exists() and not out.is_dir():
        raise UserError(f"{what}: {out} is a file; give a folder for the report")
    existing = out
    while not existing.exists():
        if existing.parent == existing:
            break
        existing = existing.parent
    if not existing.is_dir():
        raise UserError(f"{what}: cannot make the folder {out}: {existing} is a file")
    _probe(existing, what)
    return out


def check_report_folder(path, files, *, what="--out", kind="a report", overwrite=False):
    """Check before the work a folder that a command writes ``files`` into; return it.

    A new folder, an empty one or one of other files is fine; a folder that
    holds one of ``files`` (the names of everything the command may write
    there) holds an earlier run's output, which the new one would replace or
    mix with: refused unless ``overwrite``.

    Parameters
    ----------
    files : sequence of str
        Names of the files the command may write in the folder (no subfolders).
    kind : str
        What the files are, for the message ("a report", "a latent explorer page").
    overwrite : bool
        Whether the earlier files may be replaced (remove them with `clear_report`).
    """
    out = check_out_folder(path, what=what)
    for name in files:
        if (out / name).is_dir():
            raise UserError(f"{what}: {out / name} is a folder, not a file of {kind}; give "
                            "another folder")
    found = _written(out, files)
    if found and not overwrite:
        listed = ", ".join(found[:3]) + (f" and {len(found) - 3} more" if len(found) > 3 else "")
        raise UserError(f"{what}: {out} already holds {kind} ({listed}); pass --overwrite to "
                        "replace it, or give another folder")
    return out


def _written(folder, files):
    """The names of ``files`` there are in ``folder`` (as files or links)."""
    if not folder.is_dir():
        return []
    return [name for name in files if (folder / name).is_file() or (folder / name).is_symlink()]


def clear_report(folder, files, *, what="--out"):
    """Remove from ``folder`` the files named ``files`` of an earlier run; nothing else.

    Other files and the subfolders are left alone, so that a report replaced
    with ``--overwrite`` leaves none of its files behind (an old table or
    figure beside the new page would look current) and no file of the
    astronomer's is lost.
    """
    folder = Path(folder)
    for name in _written(folder, files):
        try:
            (folder / name).unlink()
        except OSError as exc:
            raise UserError(f"{what}: cannot remove {folder / name} of the earlier report "
                            f"({exc.strerror or exc})") from None


def check_table_out(path, *, what="--out", overwrite=False):
    """Check a table ``--out`` before the work; return ``(path, format)``.

    The format comes from the extension; a small table is written in that
    format to a temporary file beside ``path``, so a format that needs a
    package that is missing (parquet) fails here, not after the predictions.
    """
    from astropy.io.registry import identify_format
    from astropy.table import QTable

    out = check_out_file(path, what=what, kind="table", overwrite=overwrite)
    suffix = out.suffix.lower()
    fmt = _TABLE_FORMATS.get(suffix)
    if fmt is None:
        found = identify_format("write", QTable, str(out), None, [], {})
        if len(found) != 1:
            raise UserError(
                f"{what}: cannot tell a table format from the extension of {out.name}; "
                f"use one of {_TABLE_HINT}"
            )
        fmt = found[0]
    probe = _temporary(out)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # what the writer says of the table comes later
            _write(QTable({"filename": ["x"], "value": [1.0]}), probe, fmt)
    except Exception as exc:  # noqa: BLE001 - astropy's writers raise many types
        raise UserError(f"{what}: cannot write a {fmt} table at {out} ({_first_line(exc)}); "
                        f"use one of {_TABLE_HINT}") from None
    finally:
        probe.unlink(missing_ok=True)
    return out, fmt


def _temporary(out):
    handle, name = tempfile.mkstemp(dir=out.parent, prefix=f".{out.name}.", suffix=".partial")
    os.close(handle)
    return Path(name)


def _write(table, path, fmt):
    kwargs = {"path": "table"} if fmt == "hdf5" else {}
    table.write(path, format=fmt, overwrite=True, **kwargs)


def write_table(table, out, fmt, what="--out"):
    """Write ``table`` at ``out`` through a temporary file (never half a table)."""
    out = Path(out)
    tmp = _temporary(out)
    try:
        _write(table, tmp, fmt)
        os.replace(tmp, out)
    except OSError as exc:
        raise UserError(f"{what}: could not write {out} "
                        f"({exc.strerror or _first_line(exc)})") from None
    finally:
        tmp.unlink(missing_ok=True)
    return out


def save_model(model, out, command, note=""):
    """Save a fitted estimator at ``out``; if that fails, somewhere it can be written.

    Raises
    ------
    UserError
        When ``out`` could not be written; the message says where the model went.
    """
    out = Path(out)
    stray = out.with_name(out.name + ".tmp")
    had_stray = stray.exists()
    try:
        model.save(out)
        return out
    except (OSError, RuntimeError) as exc:
        reason = _save_reason(exc)
        if not had_stray:
            try:
                stray.unlink(missing_ok=True)
            except OSError:
                pass
    elsewhere = _save_elsewhere(model, command, out.suffix or ".pt")
    if elsewhere is None:
        raise UserError(f"--out: could not write {out} ({reason}), nor a copy in the current "
                        f"folder or {tempfile.gettempdir()}; the model is lost{note}")
    raise UserError(f"--out: could not write {out} ({reason}); the model was saved to "
                    f"{elsewhere} instead{note}")


def _save_elsewhere(model, command, suffix):
    for folder in (Path.cwd(), Path(tempfile.gettempdir())):
        try:
            handle, name = tempfile.mkstemp(dir=folder, prefix=f"stellarlatent-{command}-",
                                            suffix=suffix)
            os.close(handle)
        except OSError:
            continue
        path = Path(name)
        try:
            model.save(path)
        except (OSError, RuntimeError) as exc:
            log.debug("could not save the model to %s either: %s", path, exc)
            path.unlink(missing_ok=True)
            continue
        return path
    return None


def _save_reason(exc):
    """Why a save failed, in a few words: the system's reason rather than torch's wrapping."""
    for error in (exc, exc.__cause__, exc.__context__):
        if error is None:
            continue
        found = re.search(r"strerror:\s*([^\n]+)", str(error))
        if found:
            return found.group(1).strip().rstrip(".")
        if isinstance(error, OSError) and error.strerror:
            return error.strerror
    return _first_line(exc)
