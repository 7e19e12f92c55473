"""The import structure, read from the source with ``ast`` (nothing is imported):

(a) ``manifpt_core``'s modules import each other without a cycle, counting every import: module-level and
    function-level, absolute and relative (``from . import x``);
(b) ``manifpt_core`` never imports Dagster (any ``dagster*`` module): it is the pure-Python core;
(c) ``assets`` never imports ``pipelines``: the wiring imports the assets, never the reverse.
"""

from __future__ import annotations

import ast
from dataclasses import dataclass
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


@dataclass(frozen=True)
class Import:
    """One imported name, resolved to an absolute dotted name, and where it is imported."""

    module: str  # the importing module
    target: str  # the imported module or, for ``from m import name``, ``m.name``
    base: str  # for ``from m import name``: ``m``; for ``import m``: ``m`` too
    path: Path
    line: int

    def where(self) -> str:
        """``file:line``, the file relative to the folder holding the top-level package."""
        depth = len(self.module.split(".")) - (self.path.name != "__init__.py")
        return f"{self.path.relative_to(self.path.parents[depth]).as_posix()}:{self.line}"


def module_names(root: Path, package: str) -> dict[str, Path]:
    """Dotted module name -> file, for every ``.py`` file of ``package`` under ``root``."""
    names = {}
    for path in sorted((root / package).rglob("*.py")):
        parts = list(path.relative_to(root).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        names[".".join(parts)] = path
    return names


def imports_of(module: str, path: Path) -> list[Import]:
    """Every import statement anywhere in the file (module level, in functions, in classes, under ``if``),
    relative ones resolved against the module's package; plus ``importlib.import_module("…")`` and
    ``__import__("…")`` calls with a literal name."""
    is_package = path.name == "__init__.py"
    package = module.split(".") if is_package else module.split(".")[:-1]
    found = []
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            found += [Import(module, alias.name, alias.name, path, node.lineno) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                if node.level - 1 > len(package):
                    raise ValueError(f"{path}:{node.lineno}: relative import beyond the top-level package")
                base = ".".join([*package[: len(package) - (node.level - 1)], *([node.module] if node.module else [])])
            else:
                base = node.module
            found += [Import(module, f"{base}.{alias.name}" if alias.name != "*" else base, base, path, node.lineno)
                      for alias in node.names]
        elif isinstance(node, ast.Call) and node.args and isinstance(node.args[0], ast.Constant) \
                and isinstance(node.args[0].value, str):
            func = node.func
            name = func.attr if isinstance(func, ast.Attribute) else func.id if isinstance(func, ast.Name) else None
            if name in ("import_module", "__import__"):
                found.append(Import(module, node.args[0].value, node.args[0].value, path, node.lineno))
    return found


def import_graph(root: Path, package: str) -> dict[str, dict[str, Import]]:
    """Module -> {imported module of the same package: the first import making that edge}.

    ``from m import name`` is an edge to ``m.name`` when that is a module, else to ``m`` (``name`` is an
    attribute of ``m``). The parent packages Python initializes on the way are not edges: a package's
    ``__init__`` importing its own submodules is no cycle.
    """
    modules = module_names(root, package)
    graph: dict[str, dict[str, Import]] = {name: {} for name in modules}
    for name, path in modules.items():
        for imp in imports_of(name, path):
            target = imp.target if imp.target in modules else imp.base
            if target in modules and target != name:
                graph[name].setdefault(target, imp)
    return graph


def strongly_connected(graph: dict[str, dict[str, Import]]) -> list[list[str]]:
    """Tarjan's strongly connected components of more than one module, each sorted, in sorted order."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    components = []

    def visit(start: str) -> None:  # iterative: no recursion limit on long chains
        work = [(start, iter(sorted(graph[start])))]
        index[start] = low[start] = len(index)
        stack.append(start)
        on_stack.add(start)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = len(index)
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(graph[child]))))
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
            if low[node] == index[node]:
                component = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.append(member)
                    if member == node:
                        break
                if len(component) > 1:
                    components.append(sorted(component))

    for name in sorted(graph):
        if name not in index:
            visit(name)
    return sorted(components)


def shortest_cycle(graph: dict[str, dict[str, Import]], start: str, within: set[str]) -> list[str]:
    """The shortest import chain from ``start`` back to ``start`` inside one component: [start, …, start]."""
    previous: dict[str, str] = {}
    frontier = [start]
    while frontier:
        following = []
        for node in frontier:
            for child in sorted(graph[node]):
                if child == start:
                    chain = [node]
                    while chain[-1] != start:
                        chain.append(previous[chain[-1]])
                    return [*reversed(chain), start]
                if child in within and child not in previous:
                    previous[child] = node
                    following.append(child)
        frontier = following
    raise AssertionError(f"{start} is in no cycle")


def cycles_report(graph: dict[str, dict[str, Import]]) -> list[str]:
    """One paragraph per import cycle (strongly connected component): its modules, and its shortest cycle
    through its first module with the file and line of every import on it."""
    report = []
    for component in strongly_connected(graph):
        cycle = shortest_cycle(graph, component[0], set(component))
        steps = [f"    {a} -> {b}  ({graph[a][b].where()})" for a, b in zip(cycle, cycle[1:])]
        report.append(f"cycle among {len(component)} modules: {', '.join(component)}\n"
                      f"  e.g. {' -> '.join(cycle)}:\n" + "\n".join(steps))
    return report


def test_manifpt_core_has_no_import_cycle():
    report = cycles_report(import_graph(REPO, "manifpt_core"))
    print("\n\n".join(report))
    assert not report, f"{len(report)} import cycle(s) in manifpt_core:\n\n" + "\n\n".join(report)


def test_manifpt_core_never_imports_dagster():
    found = list(dict.fromkeys(f"{imp.where()}: {imp.module} imports {imp.base}"
                               for name, path in module_names(REPO, "manifpt_core").items()
                               for imp in imports_of(name, path)
                               if imp.base.split(".")[0].startswith("dagster")))
    print("\n".join(found))
    assert not found, "manifpt_core is the pure-Python core, without Dagster:\n" + "\n".join(found)


def test_assets_never_import_pipelines():
    found = list(dict.fromkeys(f"{imp.where()}: {imp.module} imports {imp.base}"
                               for name, path in module_names(REPO, "assets").items()
                               for imp in imports_of(name, path)
                               if imp.base == "pipelines" or imp.base.startswith("pipelines.")))
    print("\n".join(found))
    assert not found, "assets must not import pipelines (pipelines imports assets):\n" + "\n".join(found)


def write_package(root: Path, files: dict[str, str]) -> None:
    for name, text in files.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_text(text)


def test_the_checker_sees_function_level_and_relative_imports(tmp_path):
    """The checks above pass only if they would see a cycle: here one hidden in a function, through
    ``from . import``, and one through a package's ``__init__``."""
    write_package(tmp_path, {
        "pkg/__init__.py": "from .a import f\n",
        "pkg/a.py": "def f():\n    from . import b\n    return b\n",
        "pkg/b.py": "from .sub.c import g\n",
        "pkg/sub/__init__.py": "from .c import g\n",
        "pkg/sub/c.py": "import json\n\ndef g():\n    from ..a import f\n    return f\n",
        "pkg/sub/d.py": "from pkg.sub import g\n",
        "pkg/sub/e.py": "from pkg import sub\nfrom .. import a\n",
        "pkg/ok.py": "from pkg import sub  # a package: an edge to pkg.sub, not to pkg\n",
    })
    graph = import_graph(tmp_path, "pkg")
    assert set(graph["pkg.a"]) == {"pkg.b"} and set(graph["pkg.sub.c"]) == {"pkg.a"}
    assert set(graph["pkg.sub.d"]) == {"pkg.sub"} and set(graph["pkg.sub.e"]) == {"pkg.sub", "pkg.a"}
    assert set(graph["pkg.ok"]) == {"pkg.sub"}
    assert strongly_connected(graph) == [["pkg.a", "pkg.b", "pkg.sub.c"]]
    (report,) = cycles_report(graph)
    assert "pkg.a -> pkg.b -> pkg.sub.c -> pkg.a" in report and "pkg/a.py:2" in report

    write_package(tmp_path, {"pkg/sub/c.py": "def g():\n    from pkg.sub import d\n", "pkg/sub/d.py": "from . import c\n"})
    assert strongly_connected(import_graph(tmp_path, "pkg")) == [["pkg.sub.c", "pkg.sub.d"]]

    write_package(tmp_path, {"pkg/x.py": "def h():\n    import dagster_graphql.client\n"})
    assert [i.base for i in imports_of("pkg.x", tmp_path / "pkg/x.py")] == ["dagster_graphql.client"]


@pytest.mark.parametrize("package", ["manifpt_core", "assets", "pipelines"])
def test_every_module_parses_and_every_relative_import_resolves(package):
    modules = module_names(REPO, package)
    assert modules
    for name, path in modules.items():
        imports_of(name, path)  # raises on a relative import above the top-level package
