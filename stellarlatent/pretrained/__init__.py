"""Trained models shipped with the package: label spectra without training.

Each model is a saved estimator inside the package, listed in
``registry.json`` with what it was trained on, the spectra it expects and the
precision measured when it was built, and checked against the SHA-256 recorded
there before it is loaded (with ``torch.load(weights_only=True)``). Every model
carries its preprocessing (``preprocessing_``), so `stellarlatent predict`
puts raw files on its grid and normalises them as its training spectra were.
``benchmarks/build_pretrained.py`` rebuilds the files from the MILES library
with fixed seeds and prints the numbers the registry records.

Examples
--------
>>> from stellarlatent import pretrained
>>> table = pretrained.list_models()
>>> "name" in table.colnames and "precision" in table.colnames
True
"""

import hashlib
import json
from pathlib import Path

from astropy.table import Table

__all__ = ["list_models", "load", "model_path", "REGISTRY_FILE"]

_HERE = Path(__file__).parent
#: The registry of the bundled models (name -> description, file and SHA-256).
REGISTRY_FILE = _HERE / "registry.json"
_COLUMNS = ("name", "kind", "training_data", "wavelength_range", "resolution", "medium",
            "label_ranges", "precision")


def _registry(registry=None):
    path = Path(registry) if registry is not None else REGISTRY_FILE
    if not path.is_file():
        return {}
    try:
        entries = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise ValueError(f"the registry of pretrained models {path} is unreadable: {exc}") from exc
    if not isinstance(entries, dict):
        raise ValueError(f"the registry of pretrained models {path} is not a JSON object")
    return entries


def list_models(registry=None):
    """The bundled models, one row each.

    Returns
    -------
    `~astropy.table.Table`
        Columns ``name``, ``kind`` (the estimator class), ``training_data``,
        ``wavelength_range``, ``resolution``, ``medium`` (air or vacuum
        wavelengths), ``label_ranges`` and ``precision`` (as measured by the
        build script on stars it was not trained on).
    """
    rows = [[name] + [str(entry.get(column, "")) for column in _COLUMNS[1:]]
            for name, entry in sorted(_registry(registry).items())]
    if not rows:
        return Table(names=_COLUMNS, dtype=[str] * len(_COLUMNS))
    return Table(rows=rows, names=_COLUMNS)


def _entry(name, registry=None):
    entries = _registry(registry)
    if not isinstance(name, str) or name not in entries:
        known = ", ".join(sorted(entries)) or "none are installed"
        raise ValueError(f"name must be the name of a bundled model ({known}), got {name!r}")
    return entries[name]


def model_path(name, registry=None):
    """The file of the bundled model ``name``, checked against its recorded SHA-256.

    Raises
    ------
    ValueError
        If ``name`` is unknown, or the file is missing or differs from the
        one the registry records.
    """
    entry = _entry(name, registry)
    folder = Path(registry).parent if registry is not None else _HERE
    path = folder / entry["file"]
    if not path.is_file():
        raise ValueError(f"the file of the pretrained model {name!r} ({path}) is missing: "
                         "reinstall stellarlatent")
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    if digest != entry["sha256"]:
        raise ValueError(f"the file of the pretrained model {name!r} ({path}) has SHA-256 "
                         f"{digest[:16]}..., not the {entry['sha256'][:16]}... the package "
                         "recorded: it is damaged or was replaced; reinstall stellarlatent")
    return path


def load(name, device="auto", registry=None):
    """A fitted estimator: the bundled model ``name``.

    Parameters
    ----------
    name : str
        A name of `list_models`.
    device : str, default="auto"
    registry : path, optional
        Another registry file (its model files lie beside it).

    Returns
    -------
    `~stellarlatent.estimators.DeepREMAPEnsemble`, `~stellarlatent.estimators.DeepREMAP` or `~stellarlatent.estimators.SpectralVAE`
        With its preprocessing in ``preprocessing_``.
    """
    from ..estimators import DeepREMAP, DeepREMAPEnsemble, SpectralVAE

    entry = _entry(name, registry)
    classes = {"DeepREMAPEnsemble": DeepREMAPEnsemble, "DeepREMAP": DeepREMAP,
               "SpectralVAE": SpectralVAE}
    kind = entry.get("kind")
    if kind not in classes:
        raise ValueError(f"the pretrained model {name!r} is of unknown kind {kind!r}")
    return classes[kind].load(model_path(name, registry), device=device)
