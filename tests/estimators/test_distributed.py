"""Distributed data-parallel training: two gloo processes on CPU under torchrun."""

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.distributed as dist

from stellarlatent.estimators import DeepREMAP, SpectralVAE

JOB = Path(__file__).with_name("distributed_job.py")

pytestmark = pytest.mark.skipif(
    not (dist.is_available() and dist.is_gloo_available()),
    reason="torch.distributed with the gloo backend is not available",
)


def _run(out, kind, n_processes):
    out.mkdir()
    env = dict(os.environ, OMP_NUM_THREADS="1")
    if n_processes == 1:
        command = [sys.executable, str(JOB), str(out), kind]
    else:
        command = [sys.executable, "-m", "torch.distributed.run", "--standalone",
                   f"--nproc_per_node={n_processes}", str(JOB), str(out), kind]
    done = subprocess.run(command, capture_output=True, text=True, env=env, timeout=300)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    return out


@pytest.fixture(scope="module")
def vae_runs(tmp_path_factory):
    root = tmp_path_factory.mktemp("ddp_vae")
    return _run(root / "single", "vae", 1), _run(root / "two", "vae", 2)


def _state(path):
    return torch.load(path, map_location="cpu", weights_only=True)


def test_two_processes_train_the_same_network_as_one(vae_runs):
    single, two = vae_runs
    rank0, rank1 = _state(two / "state_rank0.pt"), _state(two / "state_rank1.pt")
    alone = _state(single / "state_rank0.pt")
    assert rank0.keys() == alone.keys()
    for name in rank0:
        # DDP keeps the replicas identical; against one process only the order
        # of the gradient reduction differs.
        torch.testing.assert_close(rank0[name], rank1[name], rtol=0, atol=0)
        torch.testing.assert_close(rank0[name], alone[name], rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(np.load(two / "result_rank0.npy"),
                               np.load(single / "result_rank0.npy"), rtol=1e-4, atol=1e-5)


def test_history_is_global_and_identical_on_every_rank(vae_runs):
    single, two = vae_runs
    history = [json.loads((two / f"history_rank{r}.json").read_text()) for r in (0, 1)]
    alone = json.loads((single / "history_rank0.json").read_text())
    assert history[0]["world_size"] == 2 and alone["world_size"] == 1
    for key in ("train_loss", "val_loss"):
        ours = [record[key] for record in history[0]["history"]]
        assert ours == [record[key] for record in history[1]["history"]]
        np.testing.assert_allclose(ours, [record[key] for record in alone["history"]], rtol=1e-5)


def test_rank_zero_writes_a_model_that_loads(vae_runs):
    single, two = vae_runs
    model = SpectralVAE.load(two / "model.pt", device="cpu")
    spec = importlib.util.spec_from_file_location("distributed_job", JOB)
    job = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(job)
    X, _ = job.data()
    np.testing.assert_allclose(model.transform(X[:5]), np.load(two / "result_rank0.npy"),
                               rtol=1e-5, atol=1e-6)


def test_deep_remap_with_checkpoints_under_two_processes(tmp_path):
    two = _run(tmp_path / "two", "remap-checkpoint", 2)
    rank0, rank1 = _state(two / "state_rank0.pt"), _state(two / "state_rank1.pt")
    for name in rank0:
        # Batch-norm statistics are averaged over the processes after every
        # epoch, so every replica ends identical.
        torch.testing.assert_close(rank0[name], rank1[name], rtol=0, atol=0)
    assert (two / "checkpoints" / "checkpoint.pt").is_file()
    model = DeepREMAP.load(two / "model.pt", device="cpu")
    assert model.history_[-1]["epoch"] == 3
    np.testing.assert_array_equal(np.load(two / "result_rank0.npy"),
                                  np.load(two / "result_rank1.npy"))


def test_fit_vae_command_under_torchrun_reports_once(tmp_path):
    import astropy.units as u

    from stellarlatent.datasets import SpectralStore

    spec = importlib.util.spec_from_file_location("distributed_job", JOB)
    job = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(job)
    X, _ = job.data()
    store = SpectralStore.create(tmp_path / "train.h5",
                                 np.linspace(5000, 5100, X.shape[1]) * u.AA, ivar=False)
    store.append(X)
    store.close()
    model = tmp_path / "vae.pt"
    env = dict(os.environ, OMP_NUM_THREADS="1")
    done = subprocess.run(
        [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2",
         "-m", "stellarlatent.cli", "fit-vae", str(tmp_path / "train.h5"), "--out", str(model),
         "--latent-dim", "2", "--epochs", "2", "--batch-size", "8", "--device", "cpu",
         "--quiet"],
        capture_output=True, text=True, env=env, timeout=300,
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert done.stdout.count("stellarlatent fit-vae:") == 1  # rank 0 only
    assert SpectralVAE.load(model).history_[-1]["epoch"] == 2
