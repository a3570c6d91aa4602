"""The layout rules of docs/architecture.md, machine-checked on the static import graph
(grimp, the graph behind import-linter; imports inside functions count too):

- no import circle between any two modules of the project;
- services never import Celery or a task module (they send by name through
  core.dispatch), and tasks are imported by nobody but Celery;
- layers: engine < selectors < services < admin / api / tasks / management commands;
- core imports no app of the project;
- no module imports a private (underscore) name from another module.
"""

import ast
from pathlib import Path

import grimp
import pytest

PACKAGES = ("config", "core", "portfolios", "rebalancing", "webhooks", "audit", "credentials")
APPS = ("portfolios", "rebalancing", "webhooks", "audit", "credentials")
ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def graph():
    return grimp.build_graph(*PACKAGES, include_external_packages=True, cache_dir=None)


def project_modules(graph) -> list[str]:
    return sorted(m for m in graph.modules if m.split(".")[0] in PACKAGES)


def import_cycles(graph, modules: list[str]) -> list[list[str]]:
    """The strongly connected components of more than one module (Tarjan, iterative)."""
    inside = set(modules)
    edges = {m: sorted(n for n in graph.find_modules_directly_imported_by(m) if n in inside) for m in modules}
    index, low, on_stack, stack, cycles = {}, {}, set(), [], []
    for root in modules:
        if root in index:
            continue
        work = [(root, 0)]
        while work:
            node, position = work.pop()
            if position == 0:
                index[node] = low[node] = len(index)
                stack.append(node)
                on_stack.add(node)
            for child_position in range(position, len(edges[node])):
                child = edges[node][child_position]
                if child not in index:
                    work.append((node, child_position + 1))
                    work.append((child, 0))
                    break
                if child in on_stack:
                    low[node] = min(low[node], index[child])
            else:
                if low[node] == index[node]:
                    component = []
                    while True:
                        member = stack.pop()
                        on_stack.discard(member)
                        component.append(member)
                        if member == node:
                            break
                    if len(component) > 1:
                        cycles.append(sorted(component))
                if work:
                    parent = work[-1][0]
                    low[parent] = min(low[parent], low[node])
    return cycles


def test_the_cycle_finder_finds_a_cycle():
    """The checker itself: a graph with a circle of three modules and a tail."""
    demo = grimp.ImportGraph()
    for importer, imported in (("p.a", "p.b"), ("p.b", "p.c"), ("p.c", "p.a"), ("p.c", "p.d")):
        demo.add_import(importer=importer, imported=imported)
    assert import_cycles(demo, sorted(demo.modules)) == [["p.a", "p.b", "p.c"]]


def test_no_import_circles(graph):
    cycles = import_cycles(graph, project_modules(graph))
    assert cycles == [], "import circles: " + "; ".join(" ↔ ".join(c) for c in cycles)


def is_services(module: str) -> bool:
    parts = module.split(".")
    return len(parts) > 1 and parts[0] in APPS and parts[1] == "services"


def is_tasks(module: str) -> bool:
    parts = module.split(".")
    return len(parts) > 1 and parts[0] in APPS and parts[1] == "tasks"


def test_services_never_import_celery_or_tasks(graph):
    bad = [
        f"{m} → {n}"
        for m in project_modules(graph) if is_services(m)
        for n in graph.find_modules_directly_imported_by(m)
        if n.split(".")[0] == "celery" or is_tasks(n)
    ]
    assert bad == []


def test_only_celery_imports_task_modules(graph):
    bad = [
        f"{importer} → {m}"
        for m in project_modules(graph) if is_tasks(m)
        for importer in graph.find_modules_that_directly_import(m)
        if not is_tasks(importer)
    ]
    assert bad == []


LAYERS = ("engine", "selectors", "services")  # each may import those before it, never after
ADAPTERS = ("admin", "api", "tasks", "management", "forms", "urls")


def layer_of(module: str) -> str | None:
    parts = module.split(".")
    if len(parts) < 2 or parts[0] not in APPS:
        return None
    return parts[1] if parts[1] in LAYERS + ADAPTERS else None


def test_layers(graph):
    """Engine < selectors < services < adapters (admin, API, tasks, commands), in every app."""
    bad = []
    for m in project_modules(graph):
        layer = layer_of(m)
        if layer not in LAYERS:
            continue
        for n in graph.find_modules_directly_imported_by(m):
            other = layer_of(n)
            if other in ADAPTERS or (other in LAYERS and LAYERS.index(other) > LAYERS.index(layer)):
                bad.append(f"{m} ({layer}) → {n} ({other})")
    assert bad == []


def test_core_imports_no_app(graph):
    bad = [
        f"{m} → {n}"
        for m in project_modules(graph) if m.split(".")[0] == "core"
        for n in graph.find_modules_directly_imported_by(m)
        if n.split(".")[0] in APPS + ("config",)
    ]
    assert bad == []


def test_no_private_name_crosses_a_module(graph):
    """`from x import _name` and `module._name` between the project's own modules."""
    bad = []
    for package in PACKAGES:
        for path in (ROOT / package).rglob("*.py"):
            if "migrations" in path.parts:
                continue
            tree = ast.parse(path.read_text(), str(path))
            modules = set()
            for node in ast.walk(tree):
                if isinstance(node, ast.ImportFrom) and (node.level or node.module.split(".")[0] in PACKAGES):
                    for alias in node.names:
                        if alias.name.startswith("_") and not alias.name.startswith("__"):
                            bad.append(f"{path.relative_to(ROOT)}:{node.lineno} imports {alias.name}")
                        modules.add(alias.asname or alias.name)
                elif isinstance(node, ast.Import):
                    modules.update((alias.asname or alias.name).split(".")[0] for alias in node.names)
            for node in ast.walk(tree):
                if (
                    isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name) and node.value.id in modules
                    and node.attr.startswith("_") and not node.attr.startswith("__") and node.attr != "_meta"
                ):
                    bad.append(f"{path.relative_to(ROOT)}:{node.lineno} uses {node.value.id}.{node.attr}")
    assert bad == []
