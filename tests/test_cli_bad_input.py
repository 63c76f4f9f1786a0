"""The ``stellarlatent`` command on bad input: one line on stderr, exit code 1, nothing lost.

Every subcommand is run on missing files, garbage files and bad option values;
a model trained to the end is never lost to an unwritable ``--out``; one bad
file never stops a run; checks come before the expensive work.
"""

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import astropy.units as u
import numpy as np
import pytest
from astropy.io import fits
from astropy.table import QTable

from stellarlatent.cli import build_parser, main

from . import test_cli as _cli_tests
from .test_cli import TINY_REMAP, TINY_VAE, check_demo_models

# the fixtures of test_cli (assigned, not imported, so that pyflakes sees them used)
models, spectra_dir, store = _cli_tests.models, _cli_tests.spectra_dir, _cli_tests.store

CPU = ["--device", "cpu", "--quiet"]
GRID = ["--grid", "4600", "5900", "64"]


@pytest.fixture
def no_reading(monkeypatch):
    """Record every spectrum file read (the expensive part the checks come before)."""
    from stellarlatent._commands import inputs, models as model_inputs, prepare

    read = []
    original = inputs.make_reader

    def make_reader(*args, **kwargs):
        reader = original(*args, **kwargs)

        def record(path):
            read.append(path)
            return reader(path)

        return record

    for module in (inputs, model_inputs, prepare):
        monkeypatch.setattr(module, "make_reader", make_reader)
    return read


def _one_line_error(capsys, *expected):
    """The single stderr line of a failed command; it contains every ``expected`` text."""
    err = capsys.readouterr().err
    lines = err.strip().splitlines()
    assert "Traceback" not in err, err
    assert len(lines) == 1, err
    assert "error:" in lines[0], lines[0]
    for text in expected:
        assert text in lines[0], (text, lines[0])
    return lines[0]


def _subcommands():
    parser = build_parser()
    action = next(a for a in parser._actions if a.dest == "command")
    return set(action.choices)


@pytest.fixture(scope="module")
def bad(tmp_path_factory, store):  # noqa: F811
    """Bad inputs: garbage files, a truncated store, unreadable and wrong label tables."""
    folder = tmp_path_factory.mktemp("bad")
    paths = {"dir": folder, "missing": folder / "missing.fits", "missing_pt": folder / "nope.pt"}
    paths["garbage"] = folder / "garbage.fits"
    paths["garbage"].write_bytes(b"this is not a FITS file\x00\x01" * 20)
    paths["garbage_h5"] = folder / "garbage.h5"
    paths["garbage_h5"].write_bytes(b"not HDF5 at all" * 50)
    paths["garbage_pt"] = folder / "garbage.pt"
    paths["garbage_pt"].write_bytes(b"not a torch file" * 50)
    paths["truncated_h5"] = folder / "truncated.h5"
    paths["truncated_h5"].write_bytes(Path(store).read_bytes()[:3000])
    paths["garbage_labels"] = folder / "labels.ecsv"
    paths["garbage_labels"].write_bytes(b"\x00\x01\x02 binary junk \xff\xfe" * 30)
    paths["plain_file"] = folder / "a_file"
    paths["plain_file"].write_text("x")
    from stellarlatent.datasets import SpectralStore

    with SpectralStore(store) as s:
        names = [str(n) for n in s.labels["filename"]]
    paths["metres"] = folder / "metres.ecsv"
    QTable({"filename": names, "teff": np.linspace(4000, 6000, len(names)) * u.m}).write(
        paths["metres"])
    return paths


# -- 5. every subcommand, bad input: one line, exit 1, no traceback ------------------------------


def _cases(p, store, vae, remap, files, labels):
    """(subcommand, argv, expected text) for missing files, garbage files and bad values."""
    out_h5, out_pt = str(p["dir"] / "out.h5"), str(p["dir"] / "out.pt")
    out_table, report = str(p["dir"] / "p.ecsv"), str(p["dir"] / "report")
    f = [str(x) for x in files]
    cases = [
        ("prepare", [str(p["missing"]), *GRID, "--out", out_h5], "missing.fits"),
        ("prepare", [str(p["garbage"]), *GRID, "--out", out_h5], "garbage.fits"),
        ("prepare", [*f, "--grid", "4600", "5900", "100.5", "--out", out_h5], "integer"),
        ("prepare", [*f, *GRID, "--pad-multiple-of", "0", "--out", out_h5], "--pad-multiple-of"),
        ("prepare", [*f, *GRID, "--batch-size", "0", "--out", out_h5], "--batch-size"),
        ("prepare", [*f, *GRID, "--out", str(p["dir"] / "no" / "x.h5")], "--out"),
        ("prepare", [*f, *GRID, "--out", str(p["dir"] / "x.txt")], ".h5"),
        ("prepare", [*f, *GRID, "--labels", str(p["garbage_labels"]), "--out", out_h5],
         "could not read the label table"),
        ("prepare", [*f, *GRID, "--format", "nonsense", "--out", out_h5], "--format"),
        ("prepare", [*f, *GRID, "--format", "MILES", "--phoenix-wave", str(p["garbage"]),
                     "--out", out_h5], "--phoenix-wave"),
        ("prepare", [*f, *GRID, "--phoenix-wave", str(p["garbage"]), "--out", out_h5],
         "could not read"),
        ("prepare", [*f, "--grid-kind", "linear", "--out", out_h5], "--grid-kind linear needs"),
        ("prepare", [*f, *GRID, "--continuum-smoothing", "900", "--out", out_h5],
         "--normalize median estimates none"),
        ("prepare", [*f, *GRID, "--normalize", "running_quantile", "--continuum-smoothing", "-5",
                     "--out", out_h5], "--continuum-smoothing must be a positive"),
        ("fit-vae", [store, "--continuum-smoothing", "900", "--out", out_pt],
         "--continuum-smoothing applies to raw files"),
        ("fit-vae", [str(p["missing"]), "--out", out_pt], "missing.fits"),
        ("fit-vae", [str(p["garbage_h5"]), "--out", out_pt], "garbage.h5"),
        ("fit-vae", [str(p["truncated_h5"]), "--out", out_pt], "truncated.h5"),
        ("fit-vae", [store, *GRID, "--out", out_pt], "--grid applies to raw files"),
        ("fit-vae", [store, "--epochs", "0", "--out", out_pt], "--epochs"),
        ("fit-vae", [store, "--device", "cuda:x", "--out", out_pt], "--device"),
        ("fit-vae", [store, "--lr", "-1", "--out", out_pt], "--lr"),
        ("fit-vae", [store, "--latent-dim", "0", "--out", out_pt], "--latent-dim"),
        ("fit-vae", [store, "--validation-fraction", "1", "--out", out_pt],
         "--validation-fraction"),
        ("fit-vae", [store, "--checkpoint-dir", str(p["plain_file"]), "--out", out_pt],
         "--checkpoint-dir"),
        ("fit-vae", [store, "--out", str(p["dir"])], "is a folder"),
        ("fit-vae", [*f, "--grid", "4600", "5900", "1.5", "--out", out_pt], "integer"),
        ("fit-vae", [*f, "--grid", "5900", "4600", "64", "--out", out_pt], "START < STOP"),
        ("fit-vae", [store, "--autoencoder", "--beta", "0.1", "--out", out_pt], "--beta"),
        ("fit-vae", [*f, *GRID, "--workers", "-1", "--out", out_pt], "--workers"),
        ("fit-vae", [store, "--coarse-window", "4", "--out", out_pt], "--coarse-window:"),
        ("fit-vae", [store, "--coarse-weight", "-1", "--out", out_pt], "--coarse-weight:"),
        ("fit-vae", [store, "--line-weight", "-1", "--out", out_pt], "--line-weight:"),
        ("fit-remap", [str(p["garbage"]), "--out", out_pt], "--labels is needed for raw files"),
        ("fit-remap", [str(p["garbage_h5"]), "--out", out_pt], "garbage.h5"),
        ("fit-remap", [store, "--n-bins", "10000000", "--out", out_pt], "--n-bins"),
        ("fit-remap", [store, "--labels", str(p["garbage_labels"]), "--out", out_pt],
         "could not read the label table"),
        ("fit-remap", [store, "--calibration-fraction", "1", "--out", out_pt],
         "--calibration-fraction"),
        ("fit-remap", [store, "--normalize", "none", "--out", out_pt], "--normalize"),
        ("fit-remap", [*f, *GRID, "--labels", labels, "nope", "--out", out_pt], "'nope'"),
        ("fit-remap", [store, "--contrast-window", "4", "--out", out_pt], "--contrast-window"),
        ("fit-remap", [store, "--label-smoothing", "-1", "--out", out_pt], "--label-smoothing"),
        ("diagnose", [str(p["missing_pt"]), store, "--out", report], "MODEL"),
        ("diagnose", [str(p["garbage_pt"]), store, "--out", report], "garbage.pt"),
        ("diagnose", [store, store, "--out", report], "is a store"),
        ("diagnose", [vae, str(p["garbage_h5"]), "--out", report], "garbage.h5"),
        ("diagnose", [vae, store, "--out", str(p["plain_file"])], "--out"),
        ("diagnose", [remap, store, "--labels", str(p["garbage_labels"]), "--out", report],
         "could not read the label table"),
        ("diagnose", [remap, *f, "--labels", str(p["metres"]), "--out", report], "lacks"),
        # a SpectralVAE needs none
        ("diagnose", [remap, *f, "--out", report], "--labels is needed for raw files"),
        ("predict", [remap, store, "--out", str(p["dir"] / "p.xyz")], "--out"),
        ("predict", [remap, str(p["missing"]), "--out", out_table], "missing.fits"),
        ("predict", [remap, str(p["garbage"]), "--out", out_table], "garbage.fits"),
        ("predict", [remap, str(p["truncated_h5"]), "--out", out_table], "truncated.h5"),
        ("predict", [remap, store, "--format", "MILES", "--out", out_table], "--format"),
        ("predict", [remap, store, *f[:1], "--out", out_table], "store"),
        ("predict", [str(p["garbage_h5"]), store, "--out", out_table], "MODEL"),
        ("predict", [str(p["garbage_labels"]), store, "--out", out_table],
         "not a file that fit-vae or fit-remap wrote"),
        ("predict", [remap, store, "--device", "gpu", "--out", out_table], "got 'gpu'"),
        ("explore", [str(p["missing_pt"]), store, "--out", report], "MODEL"),
        ("explore", [remap, store, "--out", report], "explore needs a SpectralVAE"),
        ("explore", [vae, store, "--remap", vae, "--out", report], "--remap"),
        ("explore", [vae, str(p["garbage_h5"]), "--out", report], "garbage.h5"),
        ("explore", [vae, store, "--out", str(p["plain_file"])], "--out"),
        ("explore", [vae, store, "--neighbors", "0", "--out", report], "--neighbors"),
        ("explore", [vae, store, "--labels", str(p["garbage_labels"]), "--out", report],
         "could not read the label table"),
        ("demo", ["--n-spectra", "5", "--out", report], "--n-spectra"),
        ("demo", ["--out", str(p["plain_file"])], "--out"),
        ("demo", ["--miles", str(p["missing"]), "--out", report], "--miles"),
        ("info", ["--device", "nonsense"], "device"),
        ("info", ["--threads", "0"], "--threads"),
        ("models", ["--threads", "0"], "--threads"),
        ("info", ["--seed", "-1"], "--seed"),
    ]
    if Path("/proc").is_dir():
        cases.append(("fit-vae", [store, "--out", "/proc/v.pt"], "/proc"))
    return cases


def test_every_subcommand_refuses_bad_input_in_one_line(bad, store, models,  # noqa: F811
                                                        spectra_dir, capsys, monkeypatch):
    """Each case: exit code 1, one line on stderr naming what to fix, no traceback, and
    no training (the estimators' fit is never reached)."""
    from stellarlatent.estimators import DeepREMAP, SpectralVAE

    fitted = []
    for cls in (SpectralVAE, DeepREMAP):
        monkeypatch.setattr(cls, "fit", lambda self, *a, **k: fitted.append(self) or self)
    files = sorted(spectra_dir.glob("*.fits"))[:3]
    cases = _cases(bad, str(store), str(models[0]), str(models[1]), files,
                   str(spectra_dir.parent / "harps_labels.ecsv"))
    assert {command for command, _, _ in cases} == _subcommands(), "a subcommand has no case"
    for command, argv, expected in cases:
        code = main([command, *argv, *(["--quiet"] if command != "info" else [])])
        line = _one_line_error(capsys, expected)
        assert code == 1, (command, argv, line)
        assert not fitted, (command, argv, "trained before refusing")
    for name in ("out.h5", "out.pt", "p.ecsv", "x.h5", "x.txt", "p.xyz"):
        assert not (bad["dir"] / name).exists(), name
    assert not list(bad["dir"].glob(".*partial*")) and not list(bad["dir"].glob("*.tmp"))


def test_unexpected_errors_are_one_line(models, store, tmp_path, capsys, monkeypatch):  # noqa: F811
    """MemoryError, a torch RuntimeError of many lines, astropy's IORegistryError."""
    from astropy.io.registry import IORegistryError

    from stellarlatent._commands import predict
    from stellarlatent.estimators import SpectralVAE

    argv = ["predict", str(models[0]), str(store), "--out", str(tmp_path / "z.ecsv"), *CPU]

    def raiser(exc):
        def raise_(*args, **kwargs):
            raise exc
        return raise_

    monkeypatch.setattr(predict, "model_data", raiser(MemoryError()))
    assert main(argv) == 1
    _one_line_error(capsys, "out of memory", "--batch-size")
    monkeypatch.undo()
    monkeypatch.setattr(SpectralVAE, "transform", raiser(
        RuntimeError("CUDA error: device-side assert triggered\nCUDA kernel errors might be "
                     "asynchronously reported\nFor debugging consider CUDA_LAUNCH_BLOCKING=1")))
    assert main(argv) == 1
    _one_line_error(capsys, "RuntimeError: CUDA error: device-side assert triggered")
    monkeypatch.undo()
    monkeypatch.setattr(SpectralVAE, "transform", raiser(IORegistryError("No writer\n" * 55)))
    assert main(argv) == 1
    _one_line_error(capsys, "IORegistryError: No writer")
    monkeypatch.undo()
    monkeypatch.setattr(SpectralVAE, "transform", raiser(KeyboardInterrupt()))
    assert main(argv) == 130
    assert "interrupted" in capsys.readouterr().err
    assert not (tmp_path / "z.ecsv").exists()


def test_labels_in_the_wrong_unit_are_one_line(bad, store, tmp_path, capsys):  # noqa: F811
    """astropy's UnitsError (Teff in metres), raised as the fit starts."""
    out = tmp_path / "r.pt"
    assert main(["fit-remap", str(store), "--labels", str(bad["metres"]), "--out", str(out),
                 *CPU, *TINY_REMAP]) == 1
    _one_line_error(capsys, "--labels", "'teff'", "'m'", "'K'")
    assert not out.exists()


def test_error_line_of_a_cuda_out_of_memory():
    import torch

    from stellarlatent.cli import error_line

    error = torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 20.00 GiB (GPU 0; "
                                   "79.1 GiB total capacity)\nmore details")
    assert error_line(error) == ("out of memory (tried to allocate 20.00 gib): lower "
                                 "--batch-size, or use fewer or shorter spectra")


# -- 1. a trained model is never lost to --out ----------------------------------------------------


@pytest.mark.parametrize("command", ["fit-vae", "fit-remap"])
def test_an_unsaveable_model_is_saved_elsewhere(command, store, tmp_path, capsys,  # noqa: F811
                                                monkeypatch):
    """--out passes the checks but the write fails after training: the model goes to the
    current folder, the one-line error says where, the exit code is 1."""
    from stellarlatent.estimators import DeepREMAP, SpectralVAE

    cls = SpectralVAE if command == "fit-vae" else DeepREMAP
    out = tmp_path / "model.pt"
    original = cls.save

    def save(self, path):
        if Path(path) == out:
            raise OSError(f"could not write the model to {path}: [enforce fail at "
                          "inline_container.cc:747] . open file failed with strerror: "
                          "No space left on device")
        return original(self, path)

    monkeypatch.setattr(cls, "save", save)
    work = tmp_path / "cwd"
    work.mkdir()
    monkeypatch.chdir(work)
    tiny = TINY_VAE if command == "fit-vae" else TINY_REMAP
    assert main([command, str(store), "--out", str(out), *CPU, *tiny]) == 1
    line = _one_line_error(capsys, "--out", str(out), "No space left on device", "saved to")
    saved = list(work.glob(f"stellarlatent-{command}-*.pt"))
    assert len(saved) == 1 and str(saved[0].name) in line
    model = cls.load(saved[0])
    assert model.preprocessing_ is not None  # the store's preprocessing went with it
    assert not out.exists() and not list(tmp_path.glob("*.tmp"))


def test_out_is_checked_before_the_spectra_are_read(spectra_dir, tmp_path, capsys,  # noqa: F811
                                                    no_reading):
    """A bad --out fails before any file is read (reading is the expensive part)."""
    files = [str(f) for f in sorted(spectra_dir.glob("*.fits"))[:3]]
    for argv in (["prepare", *files, *GRID, "--out", str(tmp_path / "no" / "s.h5")],
                 ["fit-vae", *files, *GRID, "--out", str(tmp_path / "no" / "v.pt")],
                 ["fit-vae", *files, *GRID, "--out", str(tmp_path / "v.pickle")]):
        assert main([*argv, "--quiet"]) == 1
        _one_line_error(capsys, "--out")
    assert not no_reading
    # the control: a good --out reads the files
    assert main(["prepare", *files, *GRID, "--out", str(tmp_path / "s.h5"), "--quiet"]) == 0
    assert len(no_reading) == 3


def test_prepare_out_in_a_missing_folder_names_out_not_the_partial_file(spectra_dir,  # noqa: F811
                                                                        tmp_path, capsys):
    files = [str(f) for f in sorted(spectra_dir.glob("*.fits"))[:3]]
    out = tmp_path / "missing" / "s.h5"
    assert main(["prepare", *files, *GRID, "--out", str(out), "--quiet"]) == 1
    line = _one_line_error(capsys, "--out", str(out.parent))
    assert ".partial" not in line


def test_predict_writes_its_table_atomically(models, store, tmp_path, capsys,  # noqa: F811
                                             monkeypatch):
    """A write that fails half-way leaves the old table as it was and no temporary file."""
    from stellarlatent._commands import outputs

    out = tmp_path / "p.ecsv"
    assert main(["predict", str(models[1]), str(store), "--out", str(out), *CPU]) == 0
    before = out.read_bytes()
    original = outputs._write

    def half_write(table, path, fmt):
        if len(table) > 1:  # the predictions, not the probe of --out
            Path(path).write_text("# %ECSV 1.0\n# half a table")
            raise OSError(28, "No space left on device")
        return original(table, path, fmt)

    monkeypatch.setattr(outputs, "_write", half_write)
    assert main(["predict", str(models[1]), str(store), "--out", str(out), "--overwrite",
                 *CPU]) == 1
    _one_line_error(capsys, "--out", "No space left on device")
    assert out.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["p.ecsv"]


@pytest.mark.parametrize("suffix", [
    ".csv",
    pytest.param(".fits", marks=pytest.mark.filterwarnings("ignore:The unit 'dex' could not be")),
    pytest.param(".vot", marks=pytest.mark.filterwarnings("ignore:.*Invalid unit string 'dex'")),
])
def test_predict_writes_the_table_format_of_the_extension(suffix, models, store,  # noqa: F811
                                                          tmp_path):
    out = tmp_path / f"p{suffix}"
    assert main(["predict", str(models[1]), str(store), "--out", str(out), *CPU]) == 0
    table = QTable.read(out, format="votable" if suffix == ".vot" else None)
    assert len(table) == 48 and "teff" in table.colnames


# -- 2. one bad file never stops a run ------------------------------------------------------------


@pytest.fixture(scope="module")
def miles_with_a_nan_file(miles_dir, tmp_path_factory):
    """Six real MILES files and a copy of a seventh with every flux value NaN."""
    folder = tmp_path_factory.mktemp("miles_nan")
    originals = sorted(Path(miles_dir).glob("MILES_res2.50_star_m*V.fits"))
    for path in originals[:6]:
        shutil.copy(path, folder / path.name)
    with fits.open(originals[6]) as hdul:
        hdul[0].data = np.full(hdul[0].data.shape, np.nan, dtype=np.float32)
        hdul.writeto(folder / originals[6].name)
    return folder, originals[6].name


@pytest.mark.parametrize("batch_size", ["64", "2"])
def test_prepare_skips_a_file_with_no_valid_pixel_by_name(miles_with_a_nan_file, tmp_path,
                                                          capsys, batch_size):
    """In the first batch (where the preprocessing is fitted) or a later one."""
    from stellarlatent.datasets import SpectralStore

    folder, nan_file = miles_with_a_nan_file
    out = tmp_path / "miles.h5"
    assert main(["prepare", str(folder), "--format", "MILES", "--grid", "3700", "7300", "128",
                 "--batch-size", batch_size, "--out", str(out), "--quiet"]) == 0
    summary = capsys.readouterr().out
    assert "6 spectra" in summary and "1 skipped" in summary
    assert f"{nan_file}: no valid pixel" in summary
    assert "spectra[" not in summary
    with SpectralStore(out) as s:
        assert len(s) == 6 and nan_file not in list(s.labels["filename"])


def test_predict_and_fit_skip_a_file_with_no_valid_pixel_by_name(  # noqa: F811
        miles_with_a_nan_file, models, tmp_path, capsys):
    folder, nan_file = miles_with_a_nan_file
    out = tmp_path / "p.ecsv"
    assert main(["predict", str(models[1]), str(folder), "--out", str(out), *CPU]) == 0
    summary = capsys.readouterr().out
    assert "of 6 spectra from 7 inputs" in summary and "1 skipped" in summary
    assert f"{nan_file}: no valid pixel" in summary
    assert len(QTable.read(out)) == 6
    vae = tmp_path / "vae.pt"
    assert main(["fit-vae", str(folder), "--grid", "3700", "7300", "64", "--out", str(vae),
                 *CPU, *TINY_VAE]) == 0
    assert f"{nan_file}: no valid pixel" in capsys.readouterr().out


# -- 3. a diverged training ------------------------------------------------------------------------


def test_divergence_in_the_first_epoch_says_no_model_was_written(store, tmp_path,  # noqa: F811
                                                                 capsys):
    out = tmp_path / "vae.pt"
    assert main(["fit-vae", str(store), "--out", str(out), "--lr", "1e12", *CPU,
                 "--latent-dim", "3", "--epochs", "2", "--batch-size", "16"]) == 1
    line = _one_line_error(capsys, "no epoch was completed", "no model was written", "--lr")
    assert "were kept" not in line
    assert not out.exists()


@pytest.mark.parametrize("command", ["fit-vae", "fit-remap"])
def test_divergence_after_an_epoch_writes_that_epochs_model(command, store, tmp_path,  # noqa: F811
                                                            capsys):
    """One optimiser step per epoch (a batch larger than the data): epoch 1 completes,
    epoch 2 diverges; the model of epoch 1 is written to --out, exit code 1."""
    from stellarlatent.estimators import DeepREMAP, SpectralVAE

    out = tmp_path / "model.pt"
    extra = ["--latent-dim", "3"] if command == "fit-vae" else ["--n-bins", "8", "--members", "1",
                                                                "--pretrain", "none",
                                                                "--calibration-fraction", "0"]
    assert main([command, str(store), "--out", str(out), "--lr", "1e12", "--epochs", "3",
                 "--batch-size", "64", *CPU, *extra]) == 1
    _one_line_error(capsys, "epoch 2", "the model of epoch 1", f"written to {out}", "--lr")
    model = (SpectralVAE if command == "fit-vae" else DeepREMAP).load(out)
    assert len(model.history_) == 1 and model.preprocessing_ is not None


# -- 4. models whose preprocessing is one step, and the demo's models -----------------------------


@pytest.mark.parametrize("which", [0, 1])
@pytest.mark.parametrize("recorded", ["none", "one step"])
def test_predict_with_a_model_whose_preprocessing_is_one_resampler(which, recorded,  # noqa: F811
                                                                   models, spectra_dir, tmp_path,
                                                                   caplog):
    """A model that records only its grid (preprocessing_ None: files are resampled onto
    spectral_axis_), or whose recorded preprocessing is one Resampler step."""
    from stellarlatent._preprocessing_spec import describe
    from stellarlatent.estimators import DeepREMAP, SpectralVAE
    from stellarlatent.preprocessing import Resampler, SpectralGrid

    model = (SpectralVAE, DeepREMAP)[which].load(models[which])
    model.preprocessing_ = (None if recorded == "none" else
                            describe(Resampler(SpectralGrid(model.spectral_axis_))))
    path = tmp_path / "model.pt"
    model.save(path)
    out = tmp_path / "p.ecsv"
    files = [str(f) for f in sorted(spectra_dir.glob("*.fits"))[:4]]
    assert main(["predict", str(path), *files, "--out", str(out), *CPU]) == 0
    assert len(QTable.read(out)) == 4
    if recorded == "none":
        assert "carries no preprocessing" in caplog.text


def test_the_demos_models_predict_a_raw_miles_file(miles_dir, tmp_path, monkeypatch, capsys):
    """The demo in a tiny configuration; its saved models read a raw MILES file."""
    from stellarlatent import _demo

    monkeypatch.setattr(_demo, "_settings", lambda args: {
        "n_spectra": 60, "n_pixels": 128, "vae_epochs": 1, "remap_epochs": 1, "latent_dim": 2,
        "n_members": 2, "n_synthetic": 40, "pretrain_epochs": 1})
    report = tmp_path / "demo"
    assert main(["demo", "--out", str(report), *CPU]) == 0
    capsys.readouterr()
    remap = check_demo_models(report / "models", miles_dir, tmp_path, capsys)
    assert all(member.preprocessing_ == remap.preprocessing_ for member in remap.members_)


# -- 6. messages that name the argument or file ---------------------------------------------------


def test_a_corrupt_store_is_named(bad, models, capsys):  # noqa: F811
    for argv in (["fit-vae", str(bad["truncated_h5"]), "--out", str(bad["dir"] / "v.pt")],
                 ["predict", str(models[0]), str(bad["truncated_h5"]),
                  "--out", str(bad["dir"] / "z.ecsv")],
                 ["diagnose", str(models[0]), str(bad["garbage_h5"]),
                  "--out", str(bad["dir"] / "r")]):
        assert main([*argv, "--quiet"]) == 1
        line = _one_line_error(capsys, "DATA")
        assert "truncated.h5" in line or "garbage.h5" in line


def test_an_unreadable_label_table_is_one_line(bad, store, spectra_dir, capsys):  # noqa: F811
    files = [str(f) for f in sorted(spectra_dir.glob("*.fits"))[:3]]
    assert main(["prepare", *files, *GRID, "--labels", str(bad["garbage_labels"]),
                 "--out", str(bad["dir"] / "l.h5"), "--quiet"]) == 1
    line = _one_line_error(capsys, f"could not read the label table {bad['garbage_labels']}",
                           "ECSV", "MILES parameter file")
    assert len(line) < 300


def test_raw_file_options_with_a_store_are_refused(store, tmp_path, capsys):  # noqa: F811
    for option in (GRID, ["--grid-kind", "linear"], ["--format", "MILES"]):
        assert main(["fit-vae", str(store), *option, "--out", str(tmp_path / "v.pt"),
                     "--quiet"]) == 1
        _one_line_error(capsys, f"{option[0]} applies to raw files", str(store))


def test_n_bins_is_refused_before_the_spectra_are_read(spectra_dir, tmp_path, capsys,  # noqa: F811
                                                       no_reading):
    labels = str(spectra_dir.parent / "harps_labels.ecsv")
    for value in ("10000000", "2"):
        assert main(["fit-remap", str(spectra_dir), *GRID, "--labels", labels, "--n-bins", value,
                     "--out", str(tmp_path / "r.pt"), "--quiet"]) == 1
        _one_line_error(capsys, "--n-bins", value)
    assert not no_reading


def test_a_label_table_is_read_before_the_spectra(bad, spectra_dir, tmp_path, capsys,  # noqa: F811
                                                  no_reading):
    for argv in (["fit-remap", str(spectra_dir), *GRID, "--labels", str(bad["garbage_labels"])],
                 ["fit-remap", str(spectra_dir), *GRID]):  # raw files need a table
        assert main([*argv, "--out", str(tmp_path / "r.pt"), "--quiet"]) == 1
        _one_line_error(capsys, "--labels")
    assert not no_reading


def test_checkpoint_dir_that_is_a_file_is_refused(store, bad, tmp_path, capsys):  # noqa: F811
    assert main(["fit-vae", str(store), "--checkpoint-dir", str(bad["plain_file"]),
                 "--out", str(tmp_path / "v.pt"), "--quiet"]) == 1
    _one_line_error(capsys, "--checkpoint-dir", str(bad["plain_file"]), "is a file")
    assert not os.path.exists(tmp_path / "v.pt")


def test_a_folder_of_folders_names_the_subfolders_it_does_not_search(models, spectra_dir,  # noqa: F811,E501
                                                                     tmp_path, capsys):
    parent = spectra_dir.parent
    assert main(["predict", str(models[1]), str(parent), "--out", str(tmp_path / "p.ecsv"),
                 *CPU]) == 1
    _one_line_error(capsys, "folder holds no FITS files", "subfolders are not searched",
                    f"({spectra_dir.name})", f"{parent}/*/*.fits")


def test_a_text_file_that_is_no_spectrum_says_so(models, tmp_path, capsys):  # noqa: F811
    text = tmp_path / "notes.txt"
    text.write_text("observing log\nnight 1: clouds\n")
    assert main(["predict", str(models[1]), str(text), "--out", str(tmp_path / "p.ecsv"),
                 *CPU]) == 1
    _one_line_error(capsys, "notes.txt", "not a spectrum any reader recognises", "--format")


def test_a_skipped_file_is_reported_on_a_line_of_its_own_beside_the_progress_bar(
        spectra_dir, tmp_path):  # noqa: F811
    folder = tmp_path / "files"
    folder.mkdir()
    for path in sorted(spectra_dir.glob("*.fits"))[:3]:
        shutil.copy(path, folder)
    (folder / "ADP.broken.fits").write_bytes(b"not a FITS file" * 20)
    result = subprocess.run(
        [sys.executable, "-m", "stellarlatent.cli", "prepare", str(folder), *GRID,
         "--out", str(tmp_path / "s.h5")],
        capture_output=True, text=True, timeout=300,
    )
    assert result.returncode == 0, result.stderr
    assert "spectra: 100%" in result.stderr  # the bar is shown
    lines = re.split(r"[\r\n]", result.stderr)
    assert sum(line.startswith("ADP.broken.fits skipped") for line in lines) == 1, result.stderr


@pytest.mark.parametrize("command", ["predict", "explore"])
def test_a_store_on_another_grid_names_both_pixel_counts(command, models, spectra_dir,  # noqa: F811
                                                         tmp_path, capsys):
    other = tmp_path / "other.h5"
    assert main(["prepare", str(spectra_dir), *GRID, "--out", str(other), "--quiet"]) == 0
    assert main([command, str(models[0]), str(other), "--out", str(tmp_path / "o.ecsv"),
                 *CPU]) == 1
    _one_line_error(capsys, "DATA: the store has 64 pixels", "the model expects 256")


@pytest.mark.parametrize("command", ["fit-remap", "fit-vae", "predict"])
def test_a_missing_store_is_named(command, models, tmp_path, capsys):  # noqa: F811
    model = [] if command.startswith("fit") else [str(models[1])]
    out = tmp_path / ("o.pt" if command.startswith("fit") else "o.ecsv")
    assert main([command, *model, str(tmp_path / "nosuch.h5"), "--out", str(out), *CPU]) == 1
    _one_line_error(capsys, "DATA: no store at", "nosuch.h5")


def test_the_demo_runs_on_miles_spectra_with_injected_velocities(
        miles_dir, tmp_path, monkeypatch, capsys):
    """--miles gives a list of spectra, each on its own shifted grid (it raised on them)."""
    from stellarlatent import _demo

    monkeypatch.setattr(_demo, "_settings", lambda args: {
        "n_spectra": 60, "n_pixels": 128, "vae_epochs": 1, "remap_epochs": 1, "latent_dim": 2,
        "n_members": 2, "n_synthetic": 40, "pretrain_epochs": 1})
    report = tmp_path / "demo"
    assert main(["demo", "--miles", str(miles_dir), "--out", str(report), *CPU]) == 0
    assert "MILES spectra with injected radial velocities" in (report / "index.html").read_text()


def test_resolution_for_a_model_without_one_names_the_model(models, spectra_dir,  # noqa: F811
                                                            tmp_path, caplog):
    import logging

    files = [str(p) for p in sorted(spectra_dir.glob("*.fits"))[:2]]
    with caplog.at_level(logging.WARNING, logger="stellarlatent"):
        assert main(["predict", str(models[1]), *files, "--resolution", "2000", "--out",
                     str(tmp_path / "p.ecsv"), *CPU]) == 0
    assert "the model file remap.pt records no resolution of its own" in caplog.text


def test_files_of_one_name_in_two_folders_keep_their_own_labels(models, spectra_dir,  # noqa: F811
                                                                tmp_path, capsys, caplog):
    first, second = sorted(spectra_dir.glob("*.fits"))[:2]
    for folder, source in (("starA", first), ("starB", second)):
        (tmp_path / "obs" / folder).mkdir(parents=True)
        shutil.copy(source, tmp_path / "obs" / folder / "spectrum.fits")
    (tmp_path / "obs" / "starC").mkdir()
    (tmp_path / "obs" / "starC" / "spectrum.fits").write_bytes(b"")
    out = tmp_path / "p.ecsv"
    assert main(["predict", str(models[1]), str(tmp_path / "obs" / "starA"),
                 str(tmp_path / "obs" / "starB"), str(tmp_path / "obs" / "starC"),
                 "--out", str(out), *CPU]) == 0
    assert "starC/spectrum.fits: ValueError: the file is empty" in capsys.readouterr().out
    table = QTable.read(out)
    assert table["filename"].tolist() == ["starA/spectrum.fits", "starB/spectrum.fits"]
    assert table["teff"][0] != table["teff"][1]
    from stellarlatent._commands.inputs import labels_for_files

    # matched by the path the table holds, each to its own row
    matched = labels_for_files(table, ["starB/spectrum.fits", "starA/spectrum.fits"])
    assert matched["teff"].tolist() == [table["teff"][1].value, table["teff"][0].value]
    # a bare file name that two rows share is not given either row's labels
    with caplog.at_level("WARNING", logger="stellarlatent"):
        matched = labels_for_files(table, ["spectrum.fits", "starA/spectrum.fits"])
    assert matched["teff"].mask.tolist() == [True, False]
    assert "does not tell them apart" in caplog.text
    # one row of a bare name, two files of that name: neither gets it
    one = QTable({"filename": ["spectrum.fits", "other.fits"], "teff": [5200.0, 1.0] * u.K})
    matched = labels_for_files(one, ["starA/spectrum.fits", "starB/spectrum.fits", "other.fits"])
    assert matched["teff"].mask.tolist() == [True, True, False]
    from stellarlatent._commands import UserError

    with pytest.raises(UserError, match="does not tell apart the files of one name"):
        labels_for_files(one, ["starA/spectrum.fits", "starB/spectrum.fits"])
    # a name with two rows: the first is used, and said to be
    twice = QTable({"filename": ["a.fits", "a.fits"], "teff": [5200.0, 9999.0] * u.K})
    caplog.clear()
    with caplog.at_level("WARNING", logger="stellarlatent"):
        assert labels_for_files(twice, ["a.fits"])["teff"].tolist() == [5200.0]
    assert "1 file names have more than one row in the table (such as a.fits)" in caplog.text
    # a table of the paths as typed, longer than the names: matched by their ends
    typed = QTable({"filename": ["obs/starA/spectrum.fits", "obs/starB/spectrum.fits"],
                    "teff": [5200.0, 4200.0] * u.K})
    matched = labels_for_files(typed, ["starB/spectrum.fits", "starA/spectrum.fits"])
    assert matched["teff"].tolist() == [4200.0, 5200.0]


def test_a_folder_is_searched_for_fits_files_in_any_case_and_says_what_it_leaves(
        models, spectra_dir, tmp_path, capsys, caplog):  # noqa: F811
    import gzip

    source = sorted(spectra_dir.glob("*.fits"))[0]
    folder = tmp_path / "obs"
    (folder / "night2").mkdir(parents=True)
    data = source.read_bytes()
    for name in ("A.FITS", "b.Fit", "night2/c.fits"):
        (folder / name).write_bytes(data)
    (folder / "d.FITS.GZ").write_bytes(gzip.compress(data))
    (folder / "._A.FITS").write_bytes(b"\0" * 4096)  # what macOS copies leave beside a file
    (folder / "notes.txt").write_text("seeing 1.2 arcsec\n")
    out = tmp_path / "p.ecsv"
    with caplog.at_level("INFO", logger="stellarlatent"):
        assert main(["predict", str(models[1]), str(folder), "--out", str(out),
                     "--device", "cpu"]) == 0
    assert sorted(QTable.read(out)["filename"]) == ["A.FITS", "b.Fit", "d.FITS.GZ"]
    assert "its subfolders are not searched (night2)" in caplog.text
    assert "1 files not read, not being FITS by their names (notes.txt)" in caplog.text
    assert "._A.FITS" not in caplog.text


@pytest.mark.parametrize("option", [["--resolution", "500"], ["--no-match"], ["--no-denoise"]])
def test_matching_options_with_a_store_are_refused(option, models, store, tmp_path,  # noqa: F811
                                                   capsys):
    assert main(["predict", str(models[1]), str(store), *option,
                 "--out", str(tmp_path / "p.ecsv"), *CPU]) == 1
    _one_line_error(capsys, f"{option[0]} applies to raw files", str(store))


def test_an_empty_and_a_truncated_file_are_said_to_be_so(
        models, spectra_dir, tmp_path, capsys):  # noqa: F811
    good = sorted(spectra_dir.glob("*.fits"))[0]
    (tmp_path / "empty.fits").write_bytes(b"")
    data = good.read_bytes()
    (tmp_path / "cut.fits").write_bytes(data[:len(data) * 3 // 4])
    out = tmp_path / "p.ecsv"
    assert main(["predict", str(models[1]), str(good), str(tmp_path / "empty.fits"),
                 str(tmp_path / "cut.fits"), "--out", str(out), "--device", "cpu"]) == 0
    summary = capsys.readouterr()
    assert "empty.fits: ValueError: the file is empty (0 bytes)" in summary.out + summary.err
    assert "cut.fits: ValueError: the file is truncated or damaged" in summary.out + summary.err


def test_training_labels_in_other_units_are_converted_or_refused_before_any_training():
    from stellarlatent._commands import UserError
    from stellarlatent._commands.fit import _values

    celsius = QTable({"teff": [4726.85, 5726.85] * u.deg_C, "logg": [4.0, 2.5] * u.dex})
    np.testing.assert_allclose(_values(celsius, ("teff", "logg")), [[5000.0, 4.0], [6000.0, 2.5]])
    cgs = QTable({"teff": [5000.0, 6000.0] * u.K, "logg": [1e4, 300.0] * u.cm / u.s**2})
    with pytest.raises(UserError, match="the label 'logg' is in 'cm / s2'"):
        _values(cgs, ("teff", "logg"))


def test_more_calibration_folds_than_stars_are_refused_before_training(
        store, tmp_path, capsys):  # noqa: F811
    assert main(["fit-remap", str(store), "--members", "2", "--calibration-cv", "100",
                 "--out", str(tmp_path / "r.pt"), *CPU]) == 1
    _one_line_error(capsys, "--calibration-cv 100 folds need at least as many training stars")
    assert not (tmp_path / "r.pt").exists()  # nothing trained, nothing written


def test_a_model_given_as_data_is_named(models, tmp_path, capsys):  # noqa: F811
    for command, extra in (("predict", []), ("diagnose", []), ("explore", [])):
        out = tmp_path / ("p.ecsv" if command == "predict" else command)
        assert main([command, str(models[0]), str(models[1]), "--out", str(out), *extra,
                     *CPU]) == 1
        _one_line_error(capsys, f"DATA: {models[1]} is a model file, not spectra")
    from stellarlatent.estimators import SpectralVAE

    (tmp_path / "s.h5").write_bytes(b"\x89HDF\r\n\x1a\n" + b"\0" * 64)
    with pytest.raises(ValueError, match="is an HDF5 file .*, not a SpectralVAE file"):
        SpectralVAE.load(tmp_path / "s.h5")


def test_a_missing_value_code_in_a_label_table_is_said(tmp_path, caplog):
    from stellarlatent._commands.inputs import read_label_table

    QTable({"filename": ["a.fits", "b.fits"], "logg": [4.4, -9999.0],
            "teff": [5800.0, 9999.5]}).write(tmp_path / "labels.ecsv")
    with caplog.at_level("WARNING", logger="stellarlatent"):
        read_label_table(tmp_path / "labels.ecsv")
    assert "1 values of 'logg' are -9999, a code for 'unknown'?" in caplog.text
    assert "'teff'" not in caplog.text


def test_the_summary_counts_the_spectra_held_out_to_monitor_the_loss(
        store, tmp_path, capsys):  # noqa: F811
    assert main(["fit-vae", str(store), "--out", str(tmp_path / "v.pt"), *TINY_VAE,
                 "--validation-fraction", "0.25", "--device", "cpu"]) == 0
    said = capsys.readouterr().out
    assert "on 48 spectra x 256 pixels (12 of them held out to monitor the loss)" in said, said
