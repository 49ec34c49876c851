"""The layout rules a newcomer relies on: no import cycles between modules, and no module much over
400 lines without the reason written at its top."""

from __future__ import annotations

import ast

from tests.support.paths import REPO_ROOT

PACKAGES = ("lrclr", "train")
LONG = 410  # "~400 lines": a few lines over is not a second concern
REASON = "over 400 lines on purpose"


def _modules() -> dict[str, ast.Module]:
    modules = {}
    for root in PACKAGES:
        for path in (REPO_ROOT / root).rglob("*.py"):
            name = ".".join(path.relative_to(REPO_ROOT).with_suffix("").parts).removesuffix(".__init__")
            modules[name] = ast.parse(path.read_text(encoding="utf-8"))
    return modules


def _runtime_imports(name: str, tree: ast.Module, known: set[str]) -> set[str]:
    """Modules ``name`` imports when it is imported: top-level statements only (imports inside
    functions are deliberate lazy ones, ``if TYPE_CHECKING`` blocks never run)."""
    found = set()
    for node in tree.body:
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            for alias in node.names:
                target = f"{node.module}.{alias.name}"
                found.add(target if target in known else node.module)
        elif isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
    return {m for m in found if m in known and m != name}


def test_no_module_imports_itself_through_others():
    modules = _modules()
    graph = {name: _runtime_imports(name, tree, set(modules)) for name, tree in modules.items()}
    state: dict[str, int] = {}
    path: list[str] = []
    cycles: list[list[str]] = []

    def visit(module: str) -> None:
        state[module] = 1
        path.append(module)
        for target in sorted(graph[module]):
            if state.get(target) == 1:
                cycles.append(path[path.index(target):] + [target])
            elif target not in state:
                visit(target)
        path.pop()
        state[module] = 2

    for module in sorted(graph):
        if module not in state:
            visit(module)
    assert not cycles, "import cycles:\n" + "\n".join(" -> ".join(c) for c in cycles)


def test_long_modules_say_why_at_their_top():
    unexplained = []
    for root in (*PACKAGES, "pages"):
        for path in (REPO_ROOT / root).rglob("*.py"):
            text = path.read_text(encoding="utf-8")
            docstring = ast.get_docstring(ast.parse(text)) or ""
            if text.count("\n") > LONG and REASON not in " ".join(docstring.split()):
                unexplained.append(f"{path.relative_to(REPO_ROOT)} ({text.count(chr(10))} lines)")
    assert not unexplained, f"over {LONG} lines with no reason at the top: {unexplained}"
