"""The package's layers point one way: base -> plan -> train -> analyses -> report.

Every import of every bnlab module (lazy ones inside functions included) is
read with bnlab.codegraph; a module may import only from its own layer or a
lower one. Training (bnlab.train) therefore imports nothing from the analyses
or the report, and every module has to be given a layer here.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from bnlab import codegraph

# Lowest first. "pkg.*" is the package pkg and everything under it; other entries are single modules.
LAYERS = [
    ("base", ["bnlab", "bnlab.errors", "bnlab.params", "bnlab.schedules", "bnlab.lr_picks", "bnlab.search", "bnlab.provenance", "bnlab.runfolder", "bnlab.codegraph", "bnlab.warm",
              "bnlab.model_inputs", "bnlab.snakemake_private",
              "bnlab.data.*", "bnlab.models.*"]),
    ("plan", ["bnlab.config", "bnlab.schema", "bnlab.cells", "bnlab.claims", "bnlab.fusion", "bnlab.instruments", "bnlab.studies", "bnlab.setting"]),
    ("train", ["bnlab.train.*", "bnlab.cost", "bnlab.step_times"]),
    # figures draw what analyses computed: below them, so no figure imports an analysis (no cycle can come back)
    ("figures", ["bnlab.figures.*"]),
    ("analyses", ["bnlab.analyses.*", "bnlab.analysis.*"]),
    ("report", ["bnlab.report.*", "bnlab.workflow"]),
]
RANK = {name: i for i, (name, _) in enumerate(LAYERS)}


def layer_of(module: str) -> str | None:
    """The layer of a module name, or None when the table does not cover it."""
    for name, entries in LAYERS:
        for entry in entries:
            if entry.endswith(".*"):
                package = entry[:-2]
                if module == package or module.startswith(package + "."):
                    return name
            elif module == entry:
                return name
    return None


def walk(root: Path = codegraph.ROOT) -> tuple[list[str], list[tuple[str, str, str]]]:
    """Every module under root, and every (importer, imported, 'file:line') import between bnlab modules."""
    modules = codegraph.all_modules(root=root)
    edges = []
    for module in modules:
        path = codegraph.module_file(module, root=root)
        for imp in codegraph.imports(module, root=root):
            if imp.module != module:
                edges.append((module, imp.module, f"{path}:{imp.line}"))
    return modules, edges


def layer_problems(modules, edges) -> list[str]:
    """What breaks the layering: modules the table does not cover, and imports from a higher layer."""
    problems = [f"unassigned module {m}: give it a layer in tests/test_layers.py LAYERS"
                for m in modules if layer_of(m) is None]
    for importer, imported, where in edges:
        low, high = layer_of(importer), layer_of(imported)
        if low is None:
            continue  # reported above
        if high is None:
            problems.append(f"{where}: {importer} ({low}) imports {imported}, an unassigned module")
        elif RANK[high] > RANK[low]:
            problems.append(f"{where}: back-edge: {importer} (layer {low}) imports {imported} (layer {high})")
    return problems


def test_no_back_edges_and_every_module_has_a_layer():
    modules, edges = walk()
    problems = layer_problems(modules, edges)
    assert not problems, "layering broken:\n" + "\n".join(problems)


def import_cycles(edges) -> list[list[str]]:
    """Groups of modules that import each other, directly or round a loop (lazy imports count too)."""
    graph: dict[str, set[str]] = {}
    for importer, imported, _ in edges:
        graph.setdefault(importer, set()).add(imported)
    reach = {}
    for start in graph:  # modules reachable from start (the package is small: a search from each)
        seen, todo = set(), [start]
        while todo:
            for nxt in graph.get(todo.pop(), ()):
                if nxt not in seen:
                    seen.add(nxt)
                    todo.append(nxt)
        reach[start] = seen
    cycles = {tuple(sorted(m for m in graph if m == start or (m in reach[start] and start in reach[m])))
              for start in graph if start in reach[start]}
    return sorted(list(c) for c in cycles)


def test_no_import_cycles():
    modules, edges = walk()
    assert import_cycles(edges) == []
    # the check finds one: the two imports that made the last cycle (config <-> studies)
    planted = edges + [("bnlab.studies", "bnlab.config", "planted"), ("bnlab.config", "bnlab.studies", "planted")]
    assert ["bnlab.config", "bnlab.studies"] in import_cycles(planted)


def test_the_walk_sees_the_package():
    """The walker must not pass by finding nothing: known modules, edges and code closures."""
    modules, edges = walk()
    known = {"bnlab", "bnlab.train.loop", "bnlab.train.probes", "bnlab.models.accounting", "bnlab.codegraph"}
    assert known <= set(modules)
    assert len(edges) > 50
    assert "bnlab.train.probes" in codegraph.bnlab_imports("bnlab.train.steppers")
    assert "bnlab.models.accounting" in codegraph.bnlab_imports("bnlab.train.memory")
    closure = codegraph.code_closure("bnlab.train.memory")
    assert codegraph.ROOT / "models" / "accounting.py" in closure
    assert codegraph.ROOT / "train" / "memory.py" in closure
    # train's closure holds no analyses or report code (the point of the layering)
    run_closure = codegraph.closure("bnlab.train.run")
    assert "bnlab.train.probes" in run_closure and "bnlab.config" in run_closure
    assert all(RANK[layer_of(m)] <= RANK["train"] for m in run_closure), run_closure


def test_layer_table():
    assert layer_of("bnlab") == "base" and layer_of("bnlab.data") == "base" and layer_of("bnlab.models.vgg") == "base"
    assert layer_of("bnlab.config") == "plan" and layer_of("bnlab.train") == "train"
    assert layer_of("bnlab.analyses.runner") == "analyses" and layer_of("bnlab.workflow") == "report"
    assert layer_of("bnlab.configs") is None and layer_of("bnlab.trainer") is None and layer_of("bnlab.new") is None


def test_a_back_edge_and_an_unassigned_module_fail():
    problems = layer_problems(["bnlab.train.loop", "bnlab.report.render", "bnlab.extra"],
                              [("bnlab.train.loop", "bnlab.report.render", "loop.py:3"),
                               ("bnlab.report.render", "bnlab.train.loop", "render.py:5")])  # downward: fine
    assert problems == [
        "unassigned module bnlab.extra: give it a layer in tests/test_layers.py LAYERS",
        "loop.py:3: back-edge: bnlab.train.loop (layer train) imports bnlab.report.render (layer report)",
    ]


def test_a_lazy_back_edge_in_a_package_on_disk_is_found(tmp_path):
    root = tmp_path / "bnlab"
    for rel, text in {
        "__init__.py": "",
        "params.py": "",
        "train/__init__.py": "from .loop import train_loop\n",
        "train/loop.py": "from bnlab import params\n\ndef train_loop():\n    from ..analyses import band\n",
        "analyses/__init__.py": "from bnlab.train import train_loop\n",
        "analyses/band.py": "",
    }.items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_text(text)
    modules, edges = walk(root)
    assert modules == ["bnlab", "bnlab.analyses", "bnlab.analyses.band", "bnlab.params", "bnlab.train",
                       "bnlab.train.loop"]
    assert layer_problems(modules, edges) == [
        f"{root / 'train' / 'loop.py'}:4: back-edge: bnlab.train.loop (layer train) imports "
        "bnlab.analyses.band (layer analyses)"]


@pytest.mark.parametrize("module", ["bnlab.train", "bnlab.train.run", "bnlab.train.loop", "bnlab.train.memory"])
def test_training_code_uses_no_analyses_report_or_figures_code(module):
    bad = [m for m in codegraph.closure(module)
           if m.split(".")[1:2] and m.split(".")[1] in ("analyses", "analysis", "report", "figures", "workflow")]
    assert not bad, f"{module} runs {bad}"
