"""The package logger: every message of stellarlatent goes through it."""

import logging

__all__ = ["log"]

log = logging.getLogger("stellarlatent")
log.addHandler(logging.NullHandler())
