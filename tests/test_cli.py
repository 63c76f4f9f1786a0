import re
import subprocess
import sys
from pathlib import Path

import pytest

from stellarlatent.cli import main


def test_info_prints_versions_and_device(capsys):
    assert main(["info", "--device", "cpu"]) == 0
    out = capsys.readouterr().out
    assert "stellarlatent" in out and "torch" in out and "device cpu" in out


def test_usage_errors_exit_2(capsys):
    with pytest.raises(SystemExit) as excinfo:
        main(["no-such-command"])
    assert excinfo.value.code == 2
    with pytest.raises(SystemExit) as excinfo:
        main(["demo", "--n-spectra", "many"])
    assert excinfo.value.code == 2


def test_every_subcommand_has_help_with_examples(capsys):
    for command in ("demo", "info"):
        with pytest.raises(SystemExit) as excinfo:
            main([command, "--help"])
        assert excinfo.value.code == 0
        assert "examples:" in capsys.readouterr().out


def test_user_error_is_one_line_without_traceback(tmp_path, capsys):
    code = main(["demo", "--quick", "--quiet", "--miles", str(tmp_path / "missing"),
                 "--out", str(tmp_path / "out")])
    assert code == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "--miles" in err[0] and "Traceback" not in err[0]


def test_console_script_runs():
    result = subprocess.run([sys.executable, "-m", "stellarlatent.cli", "info", "--device", "cpu"],
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr


def test_demo_writes_report_that_references_only_existing_files(tmp_path, capsys):
    out = tmp_path / "report"
    assert main(["demo", "--quick", "--quiet", "--device", "cpu", "--out", str(out)]) == 0
    summary = capsys.readouterr().out
    assert "informative latents" in summary and "DeepREMAP" in summary
    page = out / "index.html"
    html = page.read_text()
    for name in ("models/spectral_vae.pt", "models/deep_remap.pt", "predictions.ecsv",
                 "coverage.ecsv", "disentanglement.ecsv", "latent_mad.png", "calibration.png"):
        assert (out / name).is_file(), name
    references = re.findall(r'(?:href|src)="([^"#]+)"', html)
    local = [r for r in references if not r.startswith(("data:", "http"))]
    assert local, "the report links its files"
    for ref in local:
        assert (out / ref).is_file(), f"index.html references missing file {ref}"
    assert html.count("data:image/png;base64,") >= 3
    from stellarlatent.estimators import DeepREMAP, SpectralVAE

    SpectralVAE.load(out / "models" / "spectral_vae.pt")
    DeepREMAP.load(out / "models" / "deep_remap.pt")
