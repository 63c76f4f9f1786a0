"""stellarlatent.pretrained: bundled models, checked by SHA-256, used by name."""

import hashlib
import json

import numpy as np
import pytest
from astropy.table import QTable

from stellarlatent import pretrained
from stellarlatent.cli import main
from stellarlatent.estimators import DeepREMAP


@pytest.fixture()
def registry(tmp_path):
    rng = np.random.default_rng(0)
    flux = 1 + 0.01 * rng.standard_normal((40, 32))
    teff = rng.uniform(4000, 7000, 40)
    flux[:, 10] -= (teff - 3000) / 8000
    model = DeepREMAP(labels=("teff",), n_bins=8, base_channels=4, n_stages=2, embedding_dim=8,
                      max_epochs=1, verbose=0, random_state=0).fit(flux, {"teff": teff})
    path = model.save(tmp_path / "tiny.pt")
    entry = {"kind": "DeepREMAP", "file": "tiny.pt",
             "sha256": hashlib.sha256(path.read_bytes()).hexdigest(),
             "training_data": "made up", "wavelength_range": "-", "resolution": "-",
             "medium": "air", "label_ranges": "Teff 4000-7000 K", "precision": "none"}
    file = tmp_path / "registry.json"
    file.write_text(json.dumps({"tiny": entry}))
    return file, flux


def test_list_and_load_a_registered_model(registry):
    file, flux = registry
    table = pretrained.list_models(file)
    assert list(table["name"]) == ["tiny"] and table["kind"][0] == "DeepREMAP"
    model = pretrained.load("tiny", device="cpu", registry=file)
    assert model.predict(flux[:2])["teff"].unit == "K"


def test_a_damaged_file_and_an_unknown_name_are_refused(registry):
    file, _ = registry
    with pytest.raises(ValueError, match="name must be the name of a bundled model .tiny"):
        pretrained.load("nope", registry=file)
    model_file = file.parent / "tiny.pt"
    model_file.write_bytes(model_file.read_bytes()[:-10] + b"0123456789")
    with pytest.raises(ValueError, match="SHA-256 .* damaged or was replaced"):
        pretrained.load("tiny", registry=file)
    model_file.unlink()
    with pytest.raises(ValueError, match="is missing: reinstall"):
        pretrained.load("tiny", registry=file)


def test_the_bundled_registry_lists_every_file_it_ships():
    table = pretrained.list_models()
    for name in table["name"]:
        assert pretrained.model_path(name).is_file()  # its SHA-256 checked


def test_models_command_and_an_unknown_name(capsys, tmp_path):
    assert main(["models"]) == 0
    out = capsys.readouterr().out
    for name in pretrained.list_models()["name"]:
        assert f"{name}:" in out
    assert main(["predict", "no-such-model", str(tmp_path), "--out",
                 str(tmp_path / "p.ecsv"), "--quiet"]) == 1
    assert "no bundled model of that name" in capsys.readouterr().err


@pytest.mark.skipif("miles" not in pretrained.list_models()["name"],
                    reason="the bundled 'miles' model is not built")
def test_predict_with_the_bundled_miles_model_on_raw_files(miles_dir, tmp_path):
    files = sorted(miles_dir.glob("*.fits"))[:3]
    out = tmp_path / "labels.ecsv"
    assert main(["predict", "miles", *map(str, files), "--out", str(out), "--quiet",
                 "--device", "cpu"]) == 0
    table = QTable.read(out)
    assert len(table) == 3 and {"teff", "teff_err", "logg", "feh"} <= set(table.colnames)
    assert np.all((table["teff"].value > 2500) & (table["teff"].value < 40000))
