"""``stellarlatent explore``: the explorer page of a saved SpectralVAE."""

import numpy as np
import pytest
from astropy.table import QTable

from stellarlatent.cli import main
from stellarlatent.datasets import SpectralStore
from stellarlatent.diagnostics import LatentExplorer
from stellarlatent.estimators import DeepREMAP

from .test_explorer import fitted_vae


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    """A store with labels and a filename column, a saved SpectralVAE and DeepREMAP."""
    folder = tmp_path_factory.mktemp("explore")
    vae, X, labels = fitted_vae()
    labels = QTable(labels)
    labels["filename"] = [f"star{i:03d}.fits" for i in range(len(labels))]
    store = folder / "spectra.h5"
    with SpectralStore.create(store, X.spectral_axis, labels=labels) as out:
        out.append(X, labels)
    vae.save(folder / "vae.pt")
    remap = DeepREMAP(labels=("teff", "logg"), n_bins=8, base_channels=4, n_stages=2,
                      embedding_dim=8, max_epochs=1, verbose=0, random_state=0, device="cpu")
    remap.fit(X, labels).save(folder / "remap.pt")
    table = QTable({"filename": labels["filename"][::-1], "teff": labels["teff"][::-1]})
    table.write(folder / "labels.ecsv")
    return folder


def _page(folder):
    return (folder / "explorer.html").read_text(encoding="utf-8")


def test_explore_writes_one_page_and_prints_one_line(files, tmp_path, capsys):
    out = tmp_path / "page"
    assert main(["explore", str(files / "vae.pt"), str(files / "spectra.h5"), "--out", str(out),
                 "--device", "cpu", "--quiet", "--neighbors", "3"]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("stellarlatent explore: 120 spectra")
    assert str(out / "explorer.html") in lines[0] and "latent space" in lines[0]
    page = _page(out)
    assert "http://" not in page and "https://" not in page
    assert '"names":["star000.fits"' in page  # the store's file names name the stars
    assert '"name":"teff","unit":"K"' in page and '"k":3' in page


def test_explore_of_a_few_spectra_shows_as_many_neighbours_as_there_are(files, tmp_path):
    from stellarlatent.datasets import SpectralStore

    with SpectralStore(files / "spectra.h5") as store:
        spectra, axis, meta = store[:3], store.spectral_axis, dict(store.meta)
    few = tmp_path / "few.h5"
    with SpectralStore.create(few, axis, meta=meta) as store:
        store.append(spectra)
    out = tmp_path / "page"
    assert main(["explore", str(files / "vae.pt"), str(few), "--out", str(out),
                 "--device", "cpu", "--quiet"]) == 0
    assert '"k":2' in _page(out)


def test_explore_with_a_label_table_and_a_remap(files, tmp_path, capsys):
    out = tmp_path / "page"
    assert main(["explore", str(files / "vae.pt"), str(files / "spectra.h5"),
                 "--labels", str(files / "labels.ecsv"), "--remap", str(files / "remap.pt"),
                 "--out", str(out), "--device", "cpu", "--quiet"]) == 0
    assert "neighbours in the DeepREMAP embedding" in capsys.readouterr().out
    page = _page(out)
    assert '"name":"teff"' in page and '"name":"logg"' not in page  # only the table's labels
    vae, X, labels = fitted_vae()
    remap = DeepREMAP.load(files / "remap.pt", device="cpu")
    expected = LatentExplorer.from_estimator(vae, X, remap=remap, max_spectra=0).neighbors
    start = page.index('"neighbors":')
    assert '"space":"DeepREMAP embedding"' in page[start:start + 200]
    import base64
    import json

    data = json.loads(page[page.index('id="explorer-data">') + 19:page.index("</script>")])
    got = np.frombuffer(base64.b64decode(data["neighbors"]["index"]), "<i4").reshape(120, 5)
    np.testing.assert_array_equal(got, expected)
    teff = np.frombuffer(base64.b64decode(data["labels"][0]["values"]), "<f4")
    np.testing.assert_allclose(teff, labels["teff"].value, rtol=1e-6)  # matched by filename


@pytest.mark.parametrize("args, message", [
    (["{remap}", "{store}"], "explore needs a SpectralVAE"),
    (["{vae}", "{store}", "--remap", "{vae}"], "--remap: "),
    (["{vae}", "{store}", "--neighbors", "0"], "--neighbors must be a positive integer"),
    (["{vae}", "{store}", "--neighbors", "500"], "--neighbors"),
    (["{vae}", "{store}", "--max-spectra", "-1"], "--max-spectra"),
    (["{vae}", "{store}", "--labels", "nope"], "nope"),
])
def test_explore_errors_are_one_line(files, tmp_path, capsys, args, message):
    names = {"vae": files / "vae.pt", "remap": files / "remap.pt", "store": files / "spectra.h5"}
    argv = [a.format(**names) for a in args]
    assert main(["explore", *argv, "--out", str(tmp_path / "page"), "--quiet"]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and message in err[0], err
    assert not (tmp_path / "page" / "explorer.html").exists()


def test_explore_has_help_with_examples(capsys):
    with pytest.raises(SystemExit):
        main(["explore", "--help"])
    out = capsys.readouterr().out
    assert "examples:" in out and "--remap" in out and "explorer.html" in out
