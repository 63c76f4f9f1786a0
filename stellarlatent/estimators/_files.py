"""Model files: written whole or not at all, read back with ``weights_only`` checks."""

import os
from pathlib import Path

import torch

__all__ = ["read_payload", "writable_path", "write_atomically"]


def writable_path(path):
    """``path`` as a Path, refused early when it names a folder or sits in a missing one."""
    path = Path(path)
    if path.is_dir():
        raise IsADirectoryError(f"path {path} is a folder; expected a file name such as "
                                f"{path / 'model.pt'}")
    if not path.parent.is_dir():
        raise FileNotFoundError(
            f"cannot save to {path}: the folder {path.parent} does not exist; create it first"
        )
    return path


def write_atomically(payload, path, what):
    """`torch.save` ``payload`` to a temporary file renamed to ``path``; return ``path``.

    Raises
    ------
    OSError
        If the file cannot be written (naming ``what``, e.g. "the model");
        nothing is left behind.
    """
    tmp = path.with_name(path.name + ".tmp")
    try:
        torch.save(payload, tmp)
        os.replace(tmp, path)
    except (OSError, RuntimeError) as exc:
        # torch reports a failed write as a RuntimeError from its zip writer
        tmp.unlink(missing_ok=True)
        raise OSError(f"could not write {what} to {path}: {exc}") from exc
    return path


#: the estimator that writes each other file format, to name in a refusal
_OTHER_FORMATS = {"stellarlatent-ensemble": "DeepREMAPEnsemble",
                  "stellarlatent-model": "DeepREMAP"}


def read_payload(path, file_format, format_version, description):
    """The dict saved at ``path`` (read with ``weights_only=True``), checked for its format.

    Raises
    ------
    FileNotFoundError
        If there is no file.
    ValueError
        If it cannot be read, is not of ``file_format`` (``f"{path} is not
        {description}"``) or comes from a newer ``format_version``.
    """
    if not path.is_file():
        raise FileNotFoundError(f"no model file at {path}")
    with open(path, "rb") as handle:
        if handle.read(8) == b"\x89HDF\r\n\x1a\n":
            raise ValueError(f"{path} is an HDF5 file (a SpectralStore?), not {description}")
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 - corrupt files raise many types
        raise ValueError(f"{path} is not a readable stellarlatent model file ({exc})") from exc
    if not isinstance(payload, dict) or payload.get("format") != file_format:
        other = None
        if isinstance(payload, dict) and payload.get("format") in _OTHER_FORMATS:
            other = payload.get("estimator") or _OTHER_FORMATS[payload["format"]]
        if other is not None:
            raise ValueError(f"{path} holds a {other}, not {description}; use {other}.load")
        raise ValueError(f"{path} is not {description}")
    if payload.get("format_version", 0) > format_version:
        raise ValueError(
            f"{path} was written by a newer stellarlatent ({payload.get('version')}); "
            "upgrade the package to read it"
        )
    return payload
