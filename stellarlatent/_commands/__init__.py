"""The subcommands of ``stellarlatent`` (private: the command line is the interface)."""

__all__ = ["UserError", "first_line"]


class UserError(Exception):
    """A problem the user can fix; reported in one line, exit code 1."""


def first_line(exc, limit=None):
    r"""The first line of an exception's message (its type's name when it has none).

    Examples
    --------
    >>> first_line(ValueError("bad value\nmore detail"))
    'bad value'
    >>> first_line(KeyError()), first_line(OSError("x" * 10), limit=4)
    ('KeyError', 'xxxx...')
    """
    text = (str(exc).strip().splitlines() or [type(exc).__name__])[0].strip()
    return text if limit is None or len(text) <= limit else text[:limit] + "..."
