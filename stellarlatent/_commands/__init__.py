"""The subcommands of ``stellarlatent`` (private: the command line is the interface)."""

__all__ = ["UserError"]


class UserError(Exception):
    """A problem the user can fix; reported in one line, exit code 1."""
