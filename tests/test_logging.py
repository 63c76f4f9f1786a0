"""The progress bar and the user's logging: messages print beside the bar, and each console
handler keeps its level and filters."""

import logging
import sys

from stellarlatent._logging import log, progress_bar


def test_console_handlers_keep_their_levels_and_filters_while_a_bar_shows(capsys):
    root = logging.getLogger()
    saved = root.level, list(root.handlers), log.level
    out = logging.StreamHandler(sys.stdout)
    out.setLevel(logging.INFO)
    out.addFilter(lambda record: record.levelno < logging.WARNING)
    err = logging.StreamHandler(sys.stderr)
    err.setLevel(logging.WARNING)
    try:
        root.setLevel(logging.DEBUG)
        log.setLevel(logging.NOTSET)  # the commands set it; here the root's level rules
        root.handlers[:] = [out, err]
        with progress_bar(total=2, unit="file", desc="spectra") as bar:
            logging.getLogger("another.library").debug("debug of another library")
            log.info("an info")
            log.warning("a warning")
            bar.update(2)
        assert out.stream is sys.stdout and err.stream is sys.stderr
    finally:
        root.setLevel(saved[0])
        root.handlers[:] = saved[1]
        log.setLevel(saved[2])
    captured = capsys.readouterr()
    assert captured.out.splitlines() == ["an info"]
    assert "a warning\n" in captured.err and "an info" not in captured.err
    assert "debug of another library" not in captured.out + captured.err


def test_warnings_reach_standard_error_where_no_logging_is_configured(tmp_path):
    # a script that configures no logging: a folder without its label table is said
    import subprocess

    import astropy.units as u
    import numpy as np
    from astropy.table import QTable
    from specutils import Spectrum

    from stellarlatent.datasets import write_miles

    wave = (3540.5 + 0.9 * np.arange(40)) * u.AA
    write_miles(tmp_path, Spectrum(flux=np.ones((2, 40)) * u.one, spectral_axis=wave,
                                   spectral_axis_index=1), QTable({"miles_id": [1, 2]}))
    (tmp_path / "paramsMILES_v9.1.txt").unlink()
    script = ("from stellarlatent.datasets import read_miles\n"
              f"spectra, labels = read_miles({str(tmp_path)!r})\n"
              "print(len(labels))\n")
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                          timeout=120, check=True)
    assert done.stdout.strip() == "2"
    assert "no parameter table paramsMILES_v9.1.txt" in done.stderr


def test_the_last_resort_writes_over_the_bar_and_is_put_back():
    # where no logging is configured, Python's last resort prints warnings: over a bar, too
    last_resort = logging.lastResort
    with progress_bar(total=1, enabled=True) as bar:
        assert type(logging.lastResort.stream).__name__ == "_BarSafe"
        assert logging.lastResort.level == last_resort.level
        bar.update(1)
    assert logging.lastResort is last_resort
