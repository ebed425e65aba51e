"""The import graph of shared/ and functions/, built from `ast`: every import goes down a layer, never up or to a
sibling (except the declared seams), and no two folders import each other.

Imports count wherever they are (module level, inside functions, under TYPE_CHECKING), and so do import paths
written as "package.module:Name" strings, which a registry imports later (the backend specs).
"""

from __future__ import annotations

import ast
import re
import textwrap
from graphlib import CycleError, TopologicalSorter
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
# Lowest first; folders on one line are siblings, and import neither each other nor anything above. The README's
# "How it fits together" draws the same order.
LAYERS: list[set[str]] = [
    {"shared.errors"},
    {"shared.foundation"},
    {"shared.core", "shared.learning"},
    {"shared.pipeline"},
    {"shared.evaluation"},
    {"shared.monitoring"},
    {"shared.cli", "functions"},
]
# The documented exceptions, as exact (importer, imported) module pairs.
SEAMS: set[tuple[str, str]] = {
    # the trained tier is handed its embedder and head stores by learning: the backend spec names the class by
    # import path (shared/core/backends.py, shared/learning/serving.py)
    ("shared.core.backends", "shared.learning.serving"),
}
IMPORT_PATH = re.compile(r"^([A-Za-z_]\w*(?:\.\w+)+):\w+$")


def module_name(path: Path, root: Path) -> str:
    parts = list(path.relative_to(root).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imports_of(path: Path, root: Path, packages: tuple[str, ...]) -> set[str]:
    """The modules of `packages` that the file at `path` imports (or names by import path)."""
    name = module_name(path, root)
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            found.add(target)
            # `from package import module` imports the module
            found.update(f"{target}.{alias.name}" for alias in node.names
                         if (root / Path(*f"{target}.{alias.name}".split("."))).with_suffix(".py").exists())
        elif isinstance(node, ast.Constant) and isinstance(node.value, str) and (match := IMPORT_PATH.match(node.value)):
            found.add(match.group(1))
    return {target for target in found if target.split(".")[0] in packages}


def import_graph(root: Path, packages: tuple[str, ...]) -> dict[str, set[str]]:
    return {module_name(path, root): imports_of(path, root, packages)
            for package in packages for path in sorted((root / package).rglob("*.py"))}


def folder_of(module: str, layers: list[set[str]]) -> str | None:
    """The layer folder a module belongs to (its longest declared prefix); None for a package root."""
    folders = [f for layer in layers for f in layer if module == f or module.startswith(f + ".")]
    return max(folders, key=len) if folders else None


def layer_violations(graph: dict[str, set[str]], layers: list[set[str]],
                     seams: set[tuple[str, str]]) -> list[str]:
    """Every import that goes up a layer or to a sibling folder (seams aside), every module in no layer, and a
    cycle between folders."""
    rank = {folder: i for i, layer in enumerate(layers) for folder in layer}
    problems, folder_graph = [], {}
    for importer, targets in sorted(graph.items()):
        here = folder_of(importer, layers)
        if here is None:
            if "." in importer:  # a package root (shared/__init__.py) belongs to no folder
                problems.append(f"{importer}: in no layer (declare its folder in LAYERS)")
            continue
        for target in sorted(targets):
            there = folder_of(target, layers)
            if there is None or there == here:
                continue
            folder_graph.setdefault(here, set()).add(there)
            if rank[there] >= rank[here] and (importer, target) not in seams:
                way = "a sibling of" if rank[there] == rank[here] else "a higher layer than"
                problems.append(f"{importer} imports {target}: {there} is {way} {here}")
    try:
        tuple(TopologicalSorter(folder_graph).static_order())
    except CycleError as exc:
        problems.append(f"folders import each other: {' -> '.join(exc.args[1])}")
    return problems


def test_no_import_goes_up_a_layer_or_between_siblings_and_no_folder_cycle():
    graph = import_graph(ROOT, ("shared", "functions"))
    assert layer_violations(graph, LAYERS, SEAMS) == []


def test_every_declared_seam_is_an_import_that_exists():
    graph = import_graph(ROOT, ("shared", "functions"))
    assert [(a, b) for a, b in SEAMS if b not in graph.get(a, set())] == []


def _tree(root: Path, files: dict[str, str]) -> None:
    for name, text in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(text), encoding="utf-8")


SYNTHETIC_LAYERS = [{"app.base"}, {"app.left", "app.right"}, {"app.top"}]
SYNTHETIC = {
    "app/__init__.py": "",
    "app/base/__init__.py": "",
    "app/base/things.py": "X = 1\n",
    "app/left/__init__.py": "",
    "app/left/a.py": "from app.base.things import X\n",
    "app/right/__init__.py": "",
    "app/right/b.py": "from ..base import things\n",
    "app/top/__init__.py": "",
    "app/top/c.py": "from app.left.a import X\nfrom app.right import b\n",
}


def test_checker_passes_a_tree_that_only_imports_down(tmp_path):
    _tree(tmp_path, SYNTHETIC)
    assert layer_violations(import_graph(tmp_path, ("app",)), SYNTHETIC_LAYERS, set()) == []


def test_checker_fails_an_injected_upward_import_inside_a_function(tmp_path):
    _tree(tmp_path, {**SYNTHETIC, "app/base/things.py": "def late():\n    from app.top import c\n"})
    problems = layer_violations(import_graph(tmp_path, ("app",)), SYNTHETIC_LAYERS, set())
    assert "app.base.things imports app.top.c: app.top is a higher layer than app.base" in problems
    assert any(p.startswith("folders import each other") for p in problems)


def test_checker_fails_a_sibling_import_unless_it_is_a_declared_seam(tmp_path):
    _tree(tmp_path, {**SYNTHETIC, "app/left/a.py": "X = 'app.right.b:Thing'\n"})
    graph = import_graph(tmp_path, ("app",))
    assert layer_violations(graph, SYNTHETIC_LAYERS, set()) == [
        "app.left.a imports app.right.b: app.right is a sibling of app.left"]
    assert layer_violations(graph, SYNTHETIC_LAYERS, {("app.left.a", "app.right.b")}) == []


def test_checker_fails_a_folder_in_no_layer(tmp_path):
    _tree(tmp_path, {**SYNTHETIC, "app/extra/__init__.py": "", "app/extra/d.py": "from app.base import things\n"})
    assert layer_violations(import_graph(tmp_path, ("app",)), SYNTHETIC_LAYERS, set()) == [
        "app.extra: in no layer (declare its folder in LAYERS)", "app.extra.d: in no layer (declare its folder in LAYERS)"]


def test_each_rule_is_defined_in_exactly_one_module():
    """"Which tier is the frontier", "are two answers the same" and "what a backend costs" have one home each."""
    homes = {"frontier_of": "shared.core.policy", "same_answer": "shared.foundation.answers",
             "fields_correct": "shared.foundation.answers", "BACKENDS": "shared.core.backends"}
    found: dict[str, list[str]] = {name: [] for name in homes}
    for path in sorted((ROOT / "shared").rglob("*.py")):
        for node in ast.parse(path.read_text(encoding="utf-8")).body:
            names = ([node.name] if isinstance(node, (ast.FunctionDef, ast.ClassDef)) else
                     [t.id for t in getattr(node, "targets", [getattr(node, "target", None)]) if isinstance(t, ast.Name)])
            for name in set(names) & homes.keys():
                found[name].append(module_name(path, ROOT))
    assert found == {name: [home] for name, home in homes.items()}
