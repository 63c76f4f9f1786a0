"""The built wheel ships the bundled models: installed (not editable) elsewhere,
they load and run."""

import os
import site
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

RUN_EVERY_MODEL = """
import sys
import astropy.units as u
import numpy as np
import stellarlatent
from stellarlatent import pretrained
from stellarlatent.datasets import make_synthetic_spectra

assert stellarlatent.__file__.startswith(sys.argv[1]), stellarlatent.__file__
spectra, _ = make_synthetic_spectra(3, teff=5800.0, logg=4.4, feh=0.0, snr=100, resolution=5000,
                                    rv=[-50, 10, 120] * u.km / u.s, random_state=0)
for name in pretrained.list_models()["name"]:
    model = pretrained.load(name, device="cpu")
    X = pretrained.pipeline(name).transform(spectra)
    out = model.predict(X) if hasattr(model, "predict") else model.transform(X)
    assert len(out) == 3, name
    print(name, "ok")
"""


def test_the_installed_wheel_loads_and_runs_every_bundled_model(tmp_path):
    dist = tmp_path / "dist"
    # a fixed version: in a working tree with changes setuptools_scm's own is not a valid one
    env = {**os.environ, "SETUPTOOLS_SCM_PRETEND_VERSION": "0.0.0"}
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", "-w", str(dist),
                    str(ROOT)], check=True, env=env)
    wheel, = dist.glob("stellarlatent-*.whl")
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    python = venv / "bin" / "python"
    purelib = Path(subprocess.check_output(
        [str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
        text=True).strip())
    # the dependencies come from this environment; a path in a .pth file does not run that
    # folder's own .pth files, so an editable install of stellarlatent there stays out
    (purelib / "dependencies.pth").write_text("\n".join(site.getsitepackages()) + "\n")
    subprocess.run([sys.executable, "-m", "pip", "--python", str(python), "install", "--quiet",
                    "--no-deps", "--no-index", str(wheel)], check=True)
    result = subprocess.run([str(python), "-c", RUN_EVERY_MODEL, str(purelib)], cwd=tmp_path,
                            capture_output=True, text=True)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "miles ok" in result.stdout and "miles-vae ok" in result.stdout
