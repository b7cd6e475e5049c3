"""Which bnlab modules a bnlab module imports, read from the source with ast (nothing is imported).

    bnlab_imports("bnlab.train.steppers")   # {"bnlab.schedules", "bnlab.train.probes", ...}
    code_closure("bnlab.train.memory")      # [.../bnlab/models/accounting.py, .../bnlab/train/memory.py]
    all_modules()                           # every module under bnlab/, e.g. "bnlab", "bnlab.train.loop"

Every import statement counts, at module level or inside a function (a lazy
import is still a dependency), under `if TYPE_CHECKING:` or in a try block.
Relative imports are resolved against the importing module's package. In
`from bnlab.x import y`, y is the submodule bnlab.x.y when that module exists
and a name of bnlab.x otherwise. A package is the module of its __init__.py.

An edge goes to the module an import names. Importing bnlab.x.y also runs the
__init__ of bnlab and bnlab.x; those are not added as edges (their own imports
are followed when something imports the package itself, e.g.
`from bnlab.train import execute_run`).

code_closure is meant for Snakemake: the code inputs of a rule whose script
runs a module, so that editing any bnlab code the module uses re-runs the rule.

This module imports nothing from bnlab, so any layer may use it.
"""

from __future__ import annotations

import ast
from functools import lru_cache
from pathlib import Path
from typing import NamedTuple

PACKAGE = "bnlab"
ROOT = Path(__file__).resolve().parent  # the bnlab/ folder


class Import(NamedTuple):
    """One bnlab module named by an import statement, and the statement's line."""

    module: str
    line: int


def _parts(module: str) -> list[str]:
    parts = module.split(".")
    if parts[0] != PACKAGE or not all(parts):
        raise ValueError(f"{module!r} is not a {PACKAGE} module name")
    return parts[1:]


def _find(module: str, root: Path) -> Path | None:
    rest = _parts(module)
    base = root.joinpath(*rest)
    for path in (base / "__init__.py", base.with_suffix(".py") if rest else None):
        if path is not None and path.is_file():
            return path
    return None


def module_file(module: str, *, root: Path = ROOT) -> Path:
    """The source file of a bnlab module (a package's __init__.py); ModuleNotFoundError if there is none."""
    path = _find(module, root)
    if path is None:
        raise ModuleNotFoundError(f"no source file for module {module!r} under {root}", name=module)
    return path


def is_module(module: str, *, root: Path = ROOT) -> bool:
    """True if `module` names a bnlab module with a source file."""
    try:
        return _find(module, root) is not None
    except ValueError:
        return False


def all_modules(*, root: Path = ROOT) -> list[str]:
    """Every module under bnlab/ (packages by their __init__.py), sorted."""
    out = []
    for path in root.rglob("*.py"):
        rel = path.relative_to(root)
        if any(p == "__pycache__" or p.startswith(".") for p in rel.parts):
            continue
        parts = [PACKAGE, *rel.with_suffix("").parts]
        if parts[-1] == "__init__":
            parts.pop()
        if all(p.isidentifier() for p in parts):
            out.append(".".join(parts))
    return sorted(out)


def _package_of(module: str, root: Path) -> str:
    """The package a module's relative imports are resolved against: itself for an __init__.py."""
    path = module_file(module, root=root)
    return module if path.name == "__init__.py" else module.rpartition(".")[0]


def imports(module: str, *, root: Path = ROOT) -> list[Import]:
    """The bnlab modules `module` imports directly, with the line of each import, in source order.

    A module named by an import need not exist (a broken import is reported
    as what it names); check with is_module.
    """
    return _imports_in(module_file(module, root=root), _package_of(module, root).split("."), root)


def file_imports(path: str | Path, *, root: Path = ROOT) -> list[Import]:
    """The bnlab modules a source file outside the package imports (an analysis plug-in, say)."""
    return _imports_in(Path(path), None, root)


class _Statement(NamedTuple):
    """One import statement as written: `import a, b` (level 0, module None) or `from .x import y` (level 1)."""

    line: int
    level: int
    module: str | None
    names: tuple[str, ...]


@lru_cache(maxsize=4096)
def _statements(text: str, filename: str) -> tuple[_Statement, ...]:
    """The import statements of a source text, parsed once per distinct text.

    Planning a workflow asks for the closures of about a hundred rules' modules, which read the same
    files thousands of times; parsing each time took most of `snakemake -n`'s 21 s for the default
    config. Keyed by the text, an edited file is parsed afresh.
    """
    found = []
    for node in ast.walk(ast.parse(text, filename=filename)):
        if isinstance(node, ast.Import):
            found.append(_Statement(node.lineno, 0, None, tuple(a.name for a in node.names)))
        elif isinstance(node, ast.ImportFrom):
            found.append(_Statement(node.lineno, node.level, node.module, tuple(a.name for a in node.names)))
    return tuple(found)


def _imports_in(path: Path, package: list[str] | None, root: Path) -> list[Import]:
    """Imports of bnlab modules in one file; `package` resolves relative imports (None: a file outside bnlab)."""
    found: list[Import] = []

    def add(name: str, line: int) -> None:
        if name == PACKAGE or name.startswith(PACKAGE + "."):
            found.append(Import(name, line))

    # which names are submodules is looked up on every call: the files that exist may change, the text may not
    for st in _statements(path.read_text(encoding="utf-8"), str(path)):
        if st.module is None and st.level == 0:  # import a, b
            for name in st.names:
                add(name, st.line)
            continue
        if st.level:
            if package is None:
                continue  # relative to something that is not bnlab
            if st.level - 1 >= len(package):
                raise ImportError(f"{path}:{st.line}: relative import beyond the top-level package")
            base = package[: len(package) - (st.level - 1)]
            target = ".".join(base + ([st.module] if st.module else []))
        else:
            target = st.module or ""
        if not (target == PACKAGE or target.startswith(PACKAGE + ".")):
            continue
        named = False  # does the statement import a name (not a submodule) of `target`?
        for name in st.names:
            sub = f"{target}.{name}"
            if name != "*" and is_module(sub, root=root):
                add(sub, st.line)
            else:
                named = True
        if named:
            add(target, st.line)
    return sorted(found, key=lambda i: (i.line, i.module))


def bnlab_imports(module: str, *, root: Path = ROOT) -> set[str]:
    """The bnlab modules `module` imports directly (all import statements, lazy ones included)."""
    return {i.module for i in imports(module, root=root) if i.module != module}


def closure(module: str, *, root: Path = ROOT) -> list[str]:
    """`module` and every bnlab module it imports transitively, sorted; ModuleNotFoundError on a broken import."""
    seen, todo = {module}, [module]
    while todo:
        current = todo.pop()
        for imp in imports(current, root=root):
            if imp.module in seen:
                continue
            if not is_module(imp.module, root=root):
                raise ModuleNotFoundError(f"{module_file(current, root=root)}:{imp.line}: {current} imports "
                                          f"{imp.module}, which has no source file", name=imp.module)
            seen.add(imp.module)
            todo.append(imp.module)
    return sorted(seen)


def code_closure(module: str, *, root: Path = ROOT) -> list[Path]:
    """The source files of `module` and of every bnlab module it imports transitively, sorted."""
    return sorted(module_file(m, root=root) for m in closure(module, root=root))
