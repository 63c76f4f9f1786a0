"""The ``stellarlatent`` command.

Exit codes: 0 on success, 1 when the work failed, 2 for a usage error. User
errors print one line that says what to fix; ``--debug`` shows the traceback.
"""

import argparse
import logging
import sys
import time
from pathlib import Path

__all__ = ["main"]

EXAMPLES = {
    "demo": """examples:
  stellarlatent demo                      # synthetic spectra, report in ./stellarlatent-demo
  stellarlatent demo --out report --miles ../shared/data/miles
  stellarlatent demo --quick --quiet      # a smaller, faster run
""",
    "info": """examples:
  stellarlatent info
""",
}


class UserError(Exception):
    """A problem the user can fix; reported in one line, exit code 1."""


def _common(parser):
    parser.add_argument("--device", default="auto", help="'auto' (CUDA when available), 'cpu' or 'cuda'")
    parser.add_argument("--seed", type=int, default=0, help="random seed (default: 0)")
    parser.add_argument("--quiet", action="store_true", help="print only the summary")
    parser.add_argument("--debug", action="store_true", help="show tracebacks and debug logging")


def build_parser():
    parser = argparse.ArgumentParser(
        prog="stellarlatent",
        description="Learn from large collections of stellar spectra.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=_version())
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True

    demo = sub.add_parser(
        "demo",
        help="train both models on the embedded default and write a report",
        description=(
            "The main job on the embedded default: generate synthetic spectra (or read MILES), "
            "preprocess them, train a SpectralVAE and a DeepREMAP, run the diagnostics and "
            "write a report folder (index.html, PNG figures, ECSV tables, saved models)."
        ),
        epilog=EXAMPLES["demo"],
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    demo.add_argument("--out", default="stellarlatent-demo", help="report folder (default: %(default)s)")
    demo.add_argument("--miles", metavar="DIR", help="use the MILES spectra in DIR instead of synthetic ones")
    demo.add_argument("--n-spectra", type=int, default=800, help="synthetic spectra to generate (default: %(default)s)")
    demo.add_argument("--quick", action="store_true", help="fewer spectra and epochs (for tests)")
    _common(demo)
    demo.set_defaults(func=_demo)

    info = sub.add_parser("info", help="versions and the compute device found",
                          epilog=EXAMPLES["info"], formatter_class=argparse.RawDescriptionHelpFormatter)
    _common(info)
    info.set_defaults(func=_info)
    return parser


def _version():
    from . import __version__

    return f"stellarlatent {__version__}"


def _info(args):
    import astropy
    import numpy
    import sklearn
    import specutils
    import torch

    from .estimators import resolve_device

    print(_version())
    for module in (numpy, astropy, specutils, sklearn, torch):
        print(f"{module.__name__:>12s} {module.__version__}")
    device = resolve_device(args.device)
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else "CPU"
    print(f"{'device':>12s} {device} ({name}); CUDA available: {torch.cuda.is_available()}")
    return 0


def _demo(args):
    from ._demo import run_demo

    run_demo(args)
    return 0


def main(argv=None):
    """Run the ``stellarlatent`` command; return its exit code."""
    parser = build_parser()
    args = parser.parse_args(argv)
    level = logging.DEBUG if args.debug else (logging.WARNING if args.quiet else logging.INFO)
    logging.basicConfig(level=level, format="%(message)s")
    logging.getLogger("stellarlatent").setLevel(level)
    try:
        return args.func(args)
    except KeyboardInterrupt:
        print("stellarlatent: interrupted", file=sys.stderr)
        return 1
    except (UserError, ValueError, TypeError, OSError, FloatingPointError) as exc:
        if args.debug:
            raise
        print(f"stellarlatent {args.command}: error: {exc}", file=sys.stderr)
        return 1


def _elapsed(start):
    return f"{time.perf_counter() - start:.0f} s"


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
