"""The import graph of the product apps has no cycles, counting imports inside functions: a
cycle hidden in a function body still ties two modules' fates together (STYLE.md, Structure).
And no test module imports another test module or a conftest: shared helpers live in
tests/support, shared fixtures in tests/conftest.py."""

import ast
from pathlib import Path

import grimp

PACKAGES = ("webhooks_app", "ops_app", "workflows_app", "config")


def import_cycles(graph: grimp.ImportGraph) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan, iterative), each as its
    sorted module names; a module importing itself counts too."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    on_stack: set[str] = set()
    stack: list[str] = []
    cycles: list[list[str]] = []
    counter = 0
    for root in sorted(graph.modules):
        if root in index:
            continue
        work = [(root, iter(sorted(graph.find_modules_directly_imported_by(root))))]
        index[root] = low[root] = counter
        counter += 1
        stack.append(root)
        on_stack.add(root)
        while work:
            module, children = work[-1]
            for child in children:
                if child not in index:
                    index[child] = low[child] = counter
                    counter += 1
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(graph.find_modules_directly_imported_by(child)))))
                    break
                if child in on_stack:
                    low[module] = min(low[module], index[child])
            else:
                work.pop()
                if work:
                    parent = work[-1][0]
                    low[parent] = min(low[parent], low[module])
                if low[module] == index[module]:
                    component = []
                    while True:
                        member = stack.pop()
                        on_stack.discard(member)
                        component.append(member)
                        if member == module:
                            break
                    if len(component) > 1 or module in graph.find_modules_directly_imported_by(module):
                        cycles.append(sorted(component))
    return cycles


def describe(graph: grimp.ImportGraph, cycle: list[str]) -> str:
    members = set(cycle)
    edges = []
    for importer in cycle:
        for imported in sorted(graph.find_modules_directly_imported_by(importer) & members):
            lines = graph.get_import_details(importer=importer, imported=imported)
            where = ", ".join(f"l.{d['line_number']}" for d in lines)
            edges.append(f"    {importer} -> {imported} ({where})")
    return "\n".join([" <-> ".join(cycle), *edges])


def test_it_finds_a_cycle_through_an_import_inside_a_function() -> None:
    graph = grimp.ImportGraph()
    graph.add_import(importer="a.services", imported="a.models", line_number=1, line_contents="import a.models")
    graph.add_import(importer="a.tasks", imported="a.services", line_number=1, line_contents="import a.services")
    graph.add_import(importer="a.services", imported="a.tasks", line_number=9, line_contents="    import a.tasks")

    assert import_cycles(graph) == [["a.services", "a.tasks"]]


def test_it_finds_no_cycle_in_a_layered_graph() -> None:
    graph = grimp.ImportGraph()
    graph.add_import(importer="a.tasks", imported="a.services", line_number=1, line_contents="import a.services")
    graph.add_import(importer="a.services", imported="a.models", line_number=1, line_contents="import a.models")

    assert import_cycles(graph) == []


def test_it_has_no_import_cycles() -> None:
    graph = grimp.build_graph(*PACKAGES, include_external_packages=False, cache_dir=None)
    cycles = import_cycles(graph)
    assert not cycles, "import cycles:\n" + "\n\n".join(describe(graph, cycle) for cycle in cycles)


# --- Tests share helpers through tests/support and fixtures through conftest ------------------

TESTS = Path(__file__).resolve().parent


def is_test_module_or_conftest(module: str) -> bool:
    """A module pytest collects (tests.test_*, tests.browser.test_*) or a conftest: neither is a
    library, and importing one runs or registers its tests and fixtures a second time."""
    parts = module.split(".")
    return parts[0] == "tests" and (parts[-1] == "conftest" or parts[-1].startswith("test_"))


def imported_test_modules(source: str, module: str) -> list[str]:
    """Each import in `source` (the module named `module`) of a test module or a conftest, as
    "l.<line>: <module>", counting imports inside functions and relative ones."""
    package = module.split(".")[:-1]
    found = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = package[: len(package) - node.level + 1] if node.level else []
            origin = ".".join([*base, *([node.module] if node.module else [])])
            # `from tests import test_x` names a module; `from tests.support.x import y` a name.
            names = [f"{origin}.{alias.name}" for alias in node.names]
            targets = [origin] if is_test_module_or_conftest(origin) else names
        else:
            continue
        found += [f"l.{node.lineno}: {target}" for target in targets if is_test_module_or_conftest(target)]
    return found


def test_it_finds_every_way_of_importing_a_test_module_or_conftest() -> None:
    source = "\n".join(
        [
            "from tests.test_beat_jobs import make_event",
            "import tests.conftest",
            "from tests import test_api_auth",
            "from .conftest import settle",
            "from tests.support.events import make_event",
            "from tests.test_leases import test_it_rolls_the_claim_back",
            "def helper():",
            "    from tests.browser.test_ops_workflow import seed_month",
        ]
    )

    assert imported_test_modules(source, "tests.test_example") == [
        "l.1: tests.test_beat_jobs",
        "l.2: tests.conftest",
        "l.3: tests.test_api_auth",
        "l.4: tests.conftest",
        "l.6: tests.test_leases",
        "l.8: tests.browser.test_ops_workflow",
    ]


def test_it_keeps_test_modules_from_importing_other_test_modules_or_conftest() -> None:
    offences = []
    for path in sorted(TESTS.rglob("*.py")):
        if path.name == "conftest.py":
            continue
        module = ".".join(path.relative_to(TESTS.parent).with_suffix("").parts)
        where = path.relative_to(TESTS.parent)
        offences += [f"{where} {found}" for found in imported_test_modules(path.read_text(), module)]

    assert not offences, "helpers belong in tests/support, fixtures in conftest:\n" + "\n".join(offences)
