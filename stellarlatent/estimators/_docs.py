"""Parameter descriptions that several estimators share, filled into their docstrings."""

import re

__all__ = ["fill_doc"]

_SNIPPETS = {
    # the training loop's runtime options (TorchEstimator)
    "runtime_parameters": """\
verbose : int, default=1
    0 for silence, 1 for a progress bar.
num_workers : int, default=0
    Background processes reading batches (a `torch.utils.data.DataLoader`
    with prefetching; batches go to pinned memory when the network is on
    a GPU). 0 reads in the training process, best for data in memory;
    a few workers keep a GPU fed from a `~stellarlatent.datasets.SpectralStore`.
precision : {"float32", "bf16-mixed"}, default="float32"
    ``"bf16-mixed"`` runs the training forward passes under bfloat16
    autocast (weights and optimiser stay float32): about twice the
    throughput on recent GPUs, for a small loss of precision.
compile : bool, default=False
    Compile the training network with `torch.compile` (worth it for long
    GPU runs; the first epoch pays the compilation).
""",
}


def fill_doc(obj):
    """Replace each docstring line ``%(name)s`` by the shared text ``name``, indented like it.

    Examples
    --------
    >>> @fill_doc
    ... class Example:
    ...     '''An example.
    ...
    ...     Parameters
    ...     ----------
    ...     %(runtime_parameters)s
    ...     '''
    >>> print(Example.__doc__.splitlines()[4])
        verbose : int, default=1
    """
    def snippet(match):
        indent = match.group(1)
        return "".join(indent + line + "\n" for line in _SNIPPETS[match.group(2)].splitlines())

    obj.__doc__ = re.sub(r"^([ \t]*)%\((\w+)\)s\n", snippet, obj.__doc__, flags=re.MULTILINE)
    return obj
