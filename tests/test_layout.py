"""The package's shape: no import cycles among its modules (imports anywhere in a file count),
click and rich only in the command-line layer, one home for each public name."""

from __future__ import annotations

import ast
from pathlib import Path

import tfdenoise

PACKAGE_DIR = Path(tfdenoise.__file__).parent
CLI_PACKAGE = "tfdenoise.cli"


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE_DIR.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def all_modules() -> dict[str, Path]:
    return {module_name(path): path for path in PACKAGE_DIR.rglob("*.py")}


def imported_names(path: Path) -> list[str]:
    """Every module a file imports, at any depth (functions included), as dotted names; for
    `from a import b` both `a.b` (when it is a module) and `a` are candidates."""
    names = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names += [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names += [f"{node.module}.{alias.name}" for alias in node.names] + [node.module]
    return names


def import_graph() -> dict[str, set[str]]:
    modules = all_modules()
    graph: dict[str, set[str]] = {}
    for name, path in modules.items():
        targets = set()
        for imported in imported_names(path):
            if imported in modules and imported != name:
                targets.add(imported)
        graph[name] = targets
    return graph


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    state: dict[str, int] = {}  # 1 visiting, 2 done
    stack: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        stack.append(node)
        for target in sorted(graph[node]):
            if state.get(target) == 1:
                return stack[stack.index(target) :] + [target]
            if target not in state and (cycle := visit(target)):
                return cycle
        stack.pop()
        state[node] = 2
        return None

    for node in sorted(graph):
        if node not in state and (cycle := visit(node)):
            return cycle
    return None


def test_the_import_graph_has_no_cycle():
    graph = import_graph()
    assert len(graph) > 30, "the walk found too few modules to mean anything"
    assert find_cycle(graph) is None, " -> ".join(find_cycle(graph))


def test_the_cycle_finder_finds_a_cycle():
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": set()}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": set()}) is None


def test_only_the_command_line_layer_imports_click_or_rich():
    offenders = [
        name
        for name, path in all_modules().items()
        if not (name == CLI_PACKAGE or name.startswith(CLI_PACKAGE + "."))
        and any(imported.split(".")[0] in ("click", "rich") for imported in imported_names(path))
    ]
    assert offenders == []


def test_no_library_module_imports_the_command_line():
    offenders = [
        name
        for name, path in all_modules().items()
        if not name.startswith(CLI_PACKAGE)
        and name != "tfdenoise.__main__"
        and name != "tfdenoise.predict.__main__"
        and any(imported.startswith(CLI_PACKAGE) for imported in imported_names(path))
    ]
    assert offenders == []


def test_public_classes_and_constants_have_one_home():
    """Two public classes or constants of one name in different modules read as one thing."""
    homes: dict[str, list[str]] = {}
    for name, path in all_modules().items():
        for node in ast.parse(path.read_text()).body:
            if isinstance(node, ast.ClassDef):
                defined = [node.name]
            elif isinstance(node, (ast.Assign, ast.AnnAssign)):
                targets = node.targets if isinstance(node, ast.Assign) else [node.target]
                defined = [t.id for t in targets if isinstance(t, ast.Name) and t.id.isupper()]
            else:
                continue
            for public in (d for d in defined if not d.startswith("_")):
                homes.setdefault(public, []).append(name)
    shared = {public: where for public, where in homes.items() if len(where) > 1}
    assert shared == {}
