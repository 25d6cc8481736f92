"""The import graph of the product apps has no cycles, counting imports inside functions: a
cycle hidden in a function body still ties two modules' fates together (STYLE.md, Structure)."""

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
