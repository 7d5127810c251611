"""Imports flow one way (arena.LAYERS, drawn in the package docstring): no module imports from a layer above its own,
and no two modules import each other, directly or round a circle; kit imports sit at the top of each file."""

import ast
from pathlib import Path

import arena

ROOT = Path(arena.__file__).parent


def _module_files() -> dict[str, Path]:
    """``{module name relative to arena: file}``; the package itself is ``""``, a sub-package its folder name."""
    files = {}
    for path in ROOT.rglob("*.py"):
        parts = path.relative_to(ROOT).with_suffix("").parts
        files[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    return files


def kit_imports(files: dict[str, Path]) -> dict[str, set[str]]:
    """``{module: {kit modules it imports}}``, module names relative to ``arena`` (``methods.quantized``)."""
    graph = {}
    for name, path in files.items():
        package = name.split(".")[:-1] if path.name != "__init__.py" else name.split(".")
        deps = set()
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and (node.level or (node.module or "").startswith("arena")):
                if node.level:
                    base = package[:len(package) - (node.level - 1)] + ([node.module] if node.module else [])
                else:
                    base = node.module.split(".")[1:]
                target = ".".join(base)
                for alias in node.names:
                    sub = f"{target}.{alias.name}".lstrip(".")
                    deps.add(sub if sub in files else target)
            elif isinstance(node, ast.Import):
                deps |= {a.name.removeprefix("arena.") for a in node.names if a.name.startswith("arena.")}
        graph[name] = {d for d in deps if d in files and d != name}
    return graph


def upward_imports(graph: dict[str, set[str]], layers: dict[int, tuple]) -> list[str]:
    layer_of = {m: k for k, mods in layers.items() for m in mods}
    return [f"{m} (layer {layer_of[m]}) imports {d} (layer {layer_of[d]})"
            for m, deps in graph.items() for d in sorted(deps) if layer_of[d] > layer_of[m]]


def circles(graph: dict[str, set[str]]) -> list[list[str]]:
    state, found = {}, []

    def visit(node, path):
        state[node] = "open"
        for dep in sorted(graph[node]):
            if state.get(dep) == "open":
                found.append(path[path.index(dep):] + [dep])
            elif dep not in state:
                visit(dep, path + [dep])
        state[node] = "done"

    for node in sorted(graph):
        if node not in state:
            visit(node, [node])
    return found


def test_every_module_has_a_layer():
    named = {m for mods in arena.LAYERS.values() for m in mods}
    files = set(_module_files()) - {""}  # "" is the package itself
    assert files == named, f"without a layer: {sorted(files - named)}; gone: {sorted(named - files)}"


def test_imports_flow_one_way_with_no_circle():
    graph = {m: deps - {""} for m, deps in kit_imports(_module_files()).items() if m}
    assert upward_imports(graph, arena.LAYERS) == []
    assert circles(graph) == []


def test_the_check_catches_a_planted_circle_and_an_upward_import():
    graph = {"stats": {"report"}, "report": {"stats"}, "spectra": set()}
    layers = {0: ("stats", "spectra"), 7: ("report",)}
    assert upward_imports(graph, layers) == ["stats (layer 0) imports report (layer 7)"]
    assert circles(graph) == [["report", "stats", "report"]]


def test_kit_imports_sit_at_the_top_of_each_file():
    """The graph is readable from each file's head: no kit import hides inside a function (third-party ones may)."""
    hidden = []
    for name, path in _module_files().items():
        for fn in ast.walk(ast.parse(path.read_text())):
            if isinstance(fn, (ast.FunctionDef, ast.AsyncFunctionDef)):
                hidden += [f"{path.relative_to(ROOT)}:{node.lineno} in {fn.name}" for node in ast.walk(fn)
                           if isinstance(node, ast.ImportFrom)
                           and (node.level or (node.module or "").startswith("arena"))]
    assert hidden == []
