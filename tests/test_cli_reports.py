"""The folders that ``stellarlatent diagnose`` and ``explore`` write, and a report without labels.

An earlier report is never mixed with a new one nor silently replaced: as
every other command, these refuse an ``--out`` that holds what they write
unless ``--overwrite`` is given, and then replace it cleanly.
"""

import re

import numpy as np
import pytest
from astropy.table import QTable

from stellarlatent.cli import main

from . import test_cli as _cli_tests

# the fixtures of test_cli (assigned, not imported, so that pyflakes sees them used)
models, spectra_dir, store = _cli_tests.models, _cli_tests.spectra_dir, _cli_tests.store

CPU = ["--device", "cpu", "--quiet"]


def _one_line_error(capsys, *expected):
    err = capsys.readouterr().err
    lines = err.strip().splitlines()
    assert "Traceback" not in err and len(lines) == 1, err
    for text in expected:
        assert text in lines[0], (text, lines[0])
    return lines[0]


@pytest.fixture
def no_spectra(monkeypatch):
    """Fail if diagnose or explore reads a spectrum (the refusals come before)."""
    from stellarlatent._commands import diagnose, explore

    def model_data(*args, **kwargs):
        raise AssertionError("spectra read before --out was checked")

    for module in (diagnose, explore):
        monkeypatch.setattr(module, "model_data", model_data)


def _local_links(page):
    return {ref for ref in re.findall(r'(?:href|src)="([^"#]+)"', page.read_text())
            if not ref.startswith(("data:", "http"))}


def test_diagnose_refuses_a_folder_with_a_report_and_overwrite_replaces_it_cleanly(
        models, store, tmp_path, capsys, monkeypatch):
    from stellarlatent._commands import diagnose

    out = tmp_path / "report"
    assert main(["diagnose", str(models[1]), str(store), "--out", str(out), *CPU]) == 0
    remap_files = {"index.html", "predictions.ecsv", "accuracy.ecsv", "coverage.ecsv",
                   "calibration.png"}
    assert remap_files <= {p.name for p in out.iterdir()}
    (out / "notes.txt").write_text("mine")  # the astronomer's own files
    (out / "old").mkdir()
    (out / "old" / "index.html").write_text("an older report, kept aside")
    capsys.readouterr()

    # the SpectralVAE's report would mix with the DeepREMAP's: refused before any spectrum
    before = {p.name: p.read_bytes() for p in out.iterdir() if p.is_file()}
    with monkeypatch.context() as patch:
        patch.setattr(diagnose, "model_data", lambda *a, **k: pytest.fail("spectra read"))
        assert main(["diagnose", str(models[0]), str(store), "--out", str(out), *CPU]) == 1
    _one_line_error(capsys, "--out", str(out), "--overwrite")
    assert {p.name: p.read_bytes() for p in out.iterdir() if p.is_file()} == before

    # --overwrite: the earlier report's files go, the astronomer's stay
    assert main(["diagnose", str(models[0]), str(store), "--out", str(out), "--overwrite",
                 *CPU]) == 0
    left = {p.name for p in out.iterdir()}
    assert not left & (remap_files - {"index.html"}), left
    assert {"index.html", "disentanglement.ecsv", "latent_mad.png", "notes.txt", "old"} <= left
    assert (out / "notes.txt").read_text() == "mine"
    assert (out / "old" / "index.html").read_text() == "an older report, kept aside"
    # every file of the report is one the page links to (nothing stale beside it)
    assert left - {"notes.txt", "old"} == _local_links(out / "index.html") | {"index.html"}


def test_every_file_a_diagnose_report_writes_is_one_overwrite_removes(models, store, tmp_path):
    from stellarlatent._commands.diagnose import REPORT_FILES

    for k, model in enumerate(models):
        out = tmp_path / f"report{k}"
        assert main(["diagnose", str(model), str(store), "--out", str(out), *CPU]) == 0
        written = {p.name for p in out.iterdir()}
        assert written <= set(REPORT_FILES), written - set(REPORT_FILES)


def test_diagnose_writes_into_an_empty_or_unrelated_folder_without_overwrite(
        models, store, tmp_path):
    empty = tmp_path / "empty"
    empty.mkdir()
    assert main(["diagnose", str(models[0]), str(store), "--out", str(empty), *CPU]) == 0
    assert (empty / "index.html").is_file()
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "notes.txt").write_text("mine")
    assert main(["diagnose", str(models[0]), str(store), "--out", str(mine), *CPU]) == 0
    assert (mine / "index.html").is_file() and (mine / "notes.txt").read_text() == "mine"


def test_explore_refuses_to_replace_its_page_unless_overwrite(
        models, store, tmp_path, capsys, no_spectra):
    out = tmp_path / "explore"
    out.mkdir()
    (out / "explorer.html").write_text("the page of an earlier run")
    assert main(["explore", str(models[0]), str(store), "--out", str(out), *CPU]) == 1
    _one_line_error(capsys, "--out", "explorer.html", "--overwrite")
    assert (out / "explorer.html").read_text() == "the page of an earlier run"


def test_explore_overwrite_replaces_the_page_and_a_report_folder_takes_it(
        models, store, tmp_path, capsys):
    out = tmp_path / "explore"
    out.mkdir()
    (out / "explorer.html").write_text("the page of an earlier run")
    assert main(["explore", str(models[0]), str(store), "--out", str(out), "--overwrite",
                 *CPU]) == 0
    assert "window.explorer" in (out / "explorer.html").read_text()
    # a diagnose report and the explorer page go together without --overwrite
    report = tmp_path / "report"
    assert main(["diagnose", str(models[0]), str(store), "--out", str(report), *CPU]) == 0
    assert main(["explore", str(models[0]), str(store), "--out", str(report), *CPU]) == 0
    assert (report / "explorer.html").is_file() and (report / "index.html").is_file()


def test_diagnose_of_a_vae_on_files_without_labels_reports_what_needs_none(
        models, spectra_dir, tmp_path, capsys, monkeypatch):
    from stellarlatent.estimators import SpectralVAE

    def two_informative(self, X):  # a network that learned two latents, whatever the epochs
        n = len(self._check_X(X))
        Z = np.random.default_rng(0).normal(0, 0.001, (n, self.latent_dim))
        Z[:, 0] = np.linspace(-1, 1, n)
        Z[:, 2] = np.linspace(-1, 1, n) ** 2
        return Z

    monkeypatch.setattr(SpectralVAE, "transform", two_informative)
    files = sorted(spectra_dir.glob("*.fits"))[:16]
    out = tmp_path / "report"
    assert main(["diagnose", str(models[0]), *map(str, files), "--out", str(out), *CPU]) == 0
    printed = capsys.readouterr().out
    assert "no labels" in printed and "2 informative latents of 3" in printed
    page = (out / "index.html").read_text()
    assert "No labels were given" in page
    assert "latent_dependence" in page  # the dependence of the latents, which needs none
    written = {p.name for p in out.iterdir()}
    assert {"disentanglement.ecsv", "latent_mad.png", "latent_traversals.png",
            "pairwise_latents.png"} <= written
    assert "mutual_information.png" not in written
    table = QTable.read(out / "disentanglement.ecsv")
    assert table.colnames == ["dim", "mad"] and sorted(table["dim"]) == [0, 2]


def test_diagnose_without_labels_is_still_refused_where_labels_are_needed(
        models, spectra_dir, tmp_path, capsys):
    paths = sorted(spectra_dir.glob("*.fits"))[:3]
    files = [str(f) for f in paths]
    out = str(tmp_path / "report")
    # a DeepREMAP is judged against the truth
    assert main(["diagnose", str(models[1]), *files, "--out", out, *CPU]) == 1
    _one_line_error(capsys, "--labels")
    # a table given for the SpectralVAE with none of the labels it compares with
    table = tmp_path / "other.ecsv"
    QTable({"filename": [f.name for f in paths], "mass": [1.0, 2.0, 3.0]}).write(table)
    assert main(["diagnose", str(models[0]), *files, "--labels", str(table), "--out", out,
                 *CPU]) == 1
    _one_line_error(capsys, "--labels", "leave --labels out")
