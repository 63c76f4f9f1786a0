"""Ctrl-C: exit code 130 and one line on standard error, wherever the command is."""

import signal
import subprocess
import sys

import pytest

from stellarlatent import cli
from stellarlatent._commands import fit
from stellarlatent.cli import main


def _interrupt(*args, **kwargs):
    raise KeyboardInterrupt


def _one_line(capsys):
    err = capsys.readouterr().err
    assert "Traceback" not in err
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    return lines[0]


def test_an_interrupted_command_exits_130_with_one_line(monkeypatch, capsys):
    monkeypatch.setattr(cli, "_info", _interrupt)
    assert main(["info", "--device", "cpu"]) == 130
    assert _one_line(capsys) == "stellarlatent info: interrupted"


@pytest.mark.parametrize("where, line", [("build_parser", "stellarlatent: interrupted"),
                                         ("_common_options", "stellarlatent info: interrupted")])
def test_an_interrupt_as_the_command_starts_exits_130(monkeypatch, capsys, where, line):
    monkeypatch.setattr(cli, where, _interrupt)
    assert main(["info", "--device", "cpu"]) == 130
    assert _one_line(capsys) == line


def test_an_error_that_an_interrupt_became_is_an_interrupt(monkeypatch, capsys):
    """Python turns an interrupt within __set_name__ (importing specutils) into a RuntimeError."""
    class Descriptor:
        def __set_name__(self, owner, name):
            raise KeyboardInterrupt

    def import_specutils(args):
        class NDCube:
            plotter = Descriptor()

    monkeypatch.setattr(cli, "_info", import_specutils)
    assert main(["info", "--device", "cpu"]) == 130
    assert _one_line(capsys) == "stellarlatent info: interrupted"


@pytest.mark.parametrize("command, function", [("fit-remap", "run_fit_remap"),
                                               ("fit-vae", "run_fit_vae")])
def test_an_interrupted_fit_says_whether_running_it_again_resumes(monkeypatch, capsys, tmp_path,
                                                                  command, function):
    monkeypatch.setattr(fit, function, _interrupt)
    argv = [command, str(tmp_path / "train.h5"), "--out", str(tmp_path / "m.pt"),
            "--device", "cpu"]
    assert main([*argv, "--checkpoint-dir", str(tmp_path / "ckpt")]) == 130
    line = _one_line(capsys)
    assert line.startswith(f"stellarlatent {command}: interrupted")
    assert line.endswith(f"no epoch had ended, so {tmp_path / 'ckpt'} holds no checkpoint yet")
    (tmp_path / "ckpt" / "pretrain" / "member-0").mkdir(parents=True)
    (tmp_path / "ckpt" / "pretrain" / "member-0" / "checkpoint.pt").write_bytes(b"")
    assert main([*argv, "--checkpoint-dir", str(tmp_path / "ckpt")]) == 130
    line = _one_line(capsys)
    assert "run the same command again to resume" in line and str(tmp_path / "ckpt") in line
    assert main(argv) == 130
    line = _one_line(capsys)
    assert line.startswith(f"stellarlatent {command}: interrupted") and "--checkpoint-dir" in line
    if command == "fit-vae":  # a sweep fits several networks, which --checkpoint-dir cannot
        assert main([*argv, "--beta-sweep", "0.001", "0.01"]) == 130
        assert _one_line(capsys) == "stellarlatent fit-vae: interrupted"


def test_other_commands_say_nothing_of_resuming(monkeypatch, capsys, tmp_path):
    monkeypatch.setattr(cli, "_demo", _interrupt)
    assert main(["demo", "--out", str(tmp_path / "demo"), "--device", "cpu"]) == 130
    assert _one_line(capsys) == "stellarlatent demo: interrupted"


def test_debug_shows_the_traceback_of_an_interrupt(monkeypatch, capsys):
    monkeypatch.setattr(cli, "_info", _interrupt)
    assert main(["info", "--device", "cpu", "--debug"]) == 130
    err = capsys.readouterr().err
    assert "Traceback" in err and "KeyboardInterrupt" in err
    assert err.strip().splitlines()[-1] == "stellarlatent info: interrupted"


@pytest.mark.skipif(sys.platform == "win32", reason="POSIX signals")
def test_sigint_ends_the_process_with_130_and_one_line():
    """A real SIGINT to a running command, as Ctrl-C sends: the exit status the shell sees."""
    script = ("import sys, time; from stellarlatent import cli\n"
              "def wait(args):\n"
              "    print('running', flush=True)\n"
              "    time.sleep(60)\n"
              "cli._info = wait\n"
              "sys.exit(cli.main(['info', '--device', 'cpu']))\n")
    process = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, text=True)
    try:
        assert process.stdout.readline() == "running\n"
        process.send_signal(signal.SIGINT)
        out, err = process.communicate(timeout=30)
    finally:
        process.kill()
    assert process.returncode == 130, err
    assert err == "stellarlatent info: interrupted\n"
