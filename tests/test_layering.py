"""The subpackages form layers with no dependency circle (docs/DESIGN.md, "Layers"):

    base modules (ir, kinds, golden, atomic, errors) < training < interop < host < generator < sim

Each may import only from layers below it (the `flipflow` CLI entry point,
cli.py, sits above all). Imports inside functions count too."""

from __future__ import annotations

import ast
from pathlib import Path

import flipflow

LAYERS = ["base", "training", "interop", "host", "generator", "sim"]
SUBPACKAGES = set(LAYERS[1:])


def _layer_of_module(dotted: str) -> str:
    parts = dotted.split(".")
    return parts[1] if len(parts) > 1 and parts[1] in SUBPACKAGES else "base"


def _imports(path: Path) -> set[str]:
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.split(".")[0] == "flipflow":
            found |= {f"{node.module}.{alias.name}" for alias in node.names}
        elif isinstance(node, ast.Import):
            found |= {a.name for a in node.names if a.name.split(".")[0] == "flipflow"}
    return found


def test_no_module_imports_a_higher_layer():
    root = Path(flipflow.__file__).parent
    wrong = []
    for path in sorted(root.glob("*.py")) + sorted(p for pkg in SUBPACKAGES for p in (root / pkg).glob("*.py")):
        if path.name == "cli.py" and path.parent == root:
            continue
        layer = path.parent.name if path.parent != root else "base"
        for target in _imports(path):
            if LAYERS.index(_layer_of_module(target)) > LAYERS.index(layer):
                wrong.append(f"{path.relative_to(root)} ({layer}) imports {target} ({_layer_of_module(target)})")
    assert not wrong, "imports against the layer order:\n" + "\n".join(wrong)


def test_the_scan_sees_function_level_imports(tmp_path):
    module = tmp_path / "m.py"
    module.write_text("def f():\n    from flipflow.sim import rtl\n")
    assert _imports(module) == {"flipflow.sim.rtl"}
