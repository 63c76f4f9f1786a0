"""stellarlatent.nn must stay pure PyTorch: no astropy, scikit-learn or specutils."""

import ast
import subprocess
import sys
from pathlib import Path

import stellarlatent.nn

FORBIDDEN = {"astropy", "sklearn", "specutils"}
NN_DIR = Path(stellarlatent.nn.__file__).parent


def _imported_modules(path):
    tree = ast.parse(path.read_text(), filename=str(path))
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield 0, alias.name
        elif isinstance(node, ast.ImportFrom):
            yield node.level, node.module or ""


def test_nn_sources_do_not_import_astropy_sklearn_specutils():
    sources = sorted(NN_DIR.glob("*.py"))
    assert len(sources) >= 4
    offenders = []
    for path in sources:
        for level, module in _imported_modules(path):
            top = module.split(".")[0]
            # A relative import that leaves the nn package (level > 1) could pull in
            # modules such as stellarlatent._batch, which import astropy.
            if (level == 0 and top in FORBIDDEN) or level > 1:
                offenders.append(f"{path.name}: {'.' * level}{module}")
    assert offenders == []


def test_importing_nn_adds_no_forbidden_module():
    code = (
        "import sys\n"
        "import stellarlatent\n"
        "before = set(sys.modules)\n"
        "import stellarlatent.nn\n"
        "new = set(sys.modules) - before\n"
        "bad = sorted(m for m in new if m.split('.')[0] in {'astropy', 'sklearn', 'specutils'})\n"
        "bad += sorted(m for m in sys.modules if m.split('.')[0] in {'sklearn', 'specutils'})\n"
        "print(','.join(bad))\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=True
    )
    assert result.stdout.strip() == ""
