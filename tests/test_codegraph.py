"""bnlab.codegraph on a small package written to disk: which import statement gives which edge."""

from __future__ import annotations

import pytest

from bnlab import codegraph

PACKAGE = {
    "__init__.py": "__version__ = '1'\n",
    "runfolder.py": "import json\n",
    "params.py": "from bnlab import __version__\n",
    "plain.py": "import bnlab.models.layers\nimport bnlab\n",
    "models/__init__.py": "from .layers import Layer\nfrom . import zoo\n",
    "models/layers.py": "from ..params import *\n\nclass Layer:\n    pass\n",
    "models/zoo.py": "from bnlab.models.layers import Layer\n",
    "train/__init__.py": "",
    "train/run.py": ("from __future__ import annotations\n"
                     "from typing import TYPE_CHECKING\n"
                     "from bnlab import runfolder, __version__\n"
                     "from bnlab.models import Layer, zoo\n"
                     "if TYPE_CHECKING:\n"
                     "    import bnlab.params\n"
                     "def f():\n"
                     "    from .loop import step\n"
                     "    from .. import models\n"
                     "    import numpy, os.path\n"
                     "    return step\n"),
    "train/loop.py": "def step():\n    from . import run  # a cycle\n",
    "broken.py": "from bnlab.nowhere import thing\n",
    "data/raw.txt": "not python\n",
    "__pycache__/stale.cpython-311.py": "",
}


@pytest.fixture
def root(tmp_path):
    root = tmp_path / "bnlab"
    for rel, text in PACKAGE.items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_text(text)
    return root


def test_all_modules_and_files(root):
    assert codegraph.all_modules(root=root) == [
        "bnlab", "bnlab.broken", "bnlab.models", "bnlab.models.layers", "bnlab.models.zoo", "bnlab.params",
        "bnlab.plain", "bnlab.runfolder", "bnlab.train", "bnlab.train.loop", "bnlab.train.run"]
    assert codegraph.module_file("bnlab", root=root) == root / "__init__.py"
    assert codegraph.module_file("bnlab.models", root=root) == root / "models" / "__init__.py"
    assert codegraph.module_file("bnlab.train.run", root=root) == root / "train" / "run.py"
    with pytest.raises(ModuleNotFoundError):
        codegraph.module_file("bnlab.nowhere", root=root)
    with pytest.raises(ValueError):
        codegraph.module_file("numpy", root=root)


def test_every_import_statement_counts(root):
    imports = lambda m: codegraph.bnlab_imports(m, root=root)  # noqa: E731
    # submodule vs name of a package; TYPE_CHECKING and function-level imports; relative imports
    assert imports("bnlab.train.run") == {"bnlab", "bnlab.runfolder", "bnlab.models", "bnlab.models.zoo",
                                          "bnlab.params", "bnlab.train.loop"}
    assert imports("bnlab.params") == {"bnlab"}
    assert imports("bnlab.plain") == {"bnlab", "bnlab.models.layers"}
    # in an __init__.py, "." is the package itself
    assert imports("bnlab.models") == {"bnlab.models.layers", "bnlab.models.zoo"}
    assert imports("bnlab.models.layers") == {"bnlab.params"}
    assert imports("bnlab.train.loop") == {"bnlab.train.run"}
    assert imports("bnlab.runfolder") == set() and imports("bnlab.train") == set()
    assert imports("bnlab.broken") == {"bnlab.nowhere"}  # reported as named, even though it does not exist
    lines = [(i.module, i.line) for i in codegraph.imports("bnlab.train.run", root=root)]
    assert ("bnlab.params", 6) in lines and ("bnlab.train.loop", 8) in lines and ("bnlab.models", 9) in lines


def test_code_closure_is_transitive_and_sorted(root):
    closure = codegraph.code_closure("bnlab.train.loop", root=root)
    assert closure == sorted(closure)
    assert closure == sorted([root / "__init__.py", root / "runfolder.py", root / "params.py",
                              root / "models" / "__init__.py", root / "models" / "layers.py",
                              root / "models" / "zoo.py", root / "train" / "loop.py", root / "train" / "run.py"])
    assert codegraph.code_closure("bnlab.runfolder", root=root) == [root / "runfolder.py"]
    with pytest.raises(ModuleNotFoundError, match="bnlab.broken imports bnlab.nowhere"):
        codegraph.code_closure("bnlab.broken", root=root)


def test_an_edited_file_and_a_new_submodule_are_seen_though_parses_are_cached(root):
    # the parse is cached by the file's text; an edit is a new text, and whether `from bnlab import x`
    # names a submodule is looked up on every call
    assert codegraph.bnlab_imports("bnlab.models.zoo", root=root) == {"bnlab.models.layers"}
    (root / "models" / "zoo.py").write_text("from bnlab import runfolder, extra\n")
    assert codegraph.bnlab_imports("bnlab.models.zoo", root=root) == {"bnlab.runfolder", "bnlab"}
    (root / "extra.py").write_text("")
    assert codegraph.bnlab_imports("bnlab.models.zoo", root=root) == {"bnlab.runfolder", "bnlab.extra"}


def test_relative_import_above_the_package_is_an_error(root):
    (root / "models" / "bad.py").write_text("from ... import x\n")
    with pytest.raises(ImportError, match="beyond the top-level package"):
        codegraph.bnlab_imports("bnlab.models.bad", root=root)


def test_the_real_package():
    assert codegraph.ROOT.name == "bnlab" and (codegraph.ROOT / "codegraph.py").is_file()
    assert codegraph.bnlab_imports("bnlab.codegraph") == set()
    assert codegraph.code_closure("bnlab.codegraph") == [codegraph.ROOT / "codegraph.py"]
