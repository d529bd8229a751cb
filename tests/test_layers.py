"""The architecture, checked: no import cycles among newswire's modules (the layer contract
itself runs in `make lint`, with import-linter: see pyproject.toml)."""

from __future__ import annotations

import pytest


def test_no_module_imports_one_that_imports_it_back() -> None:
    grimp = pytest.importorskip("grimp")  # comes with import-linter (dev dependency)
    graph = grimp.build_graph("pipeline", cache_dir=None)
    cycles = []
    for module in sorted(graph.modules):
        for imported in graph.find_modules_directly_imported_by(module):
            if imported != module and graph.chain_exists(importer=imported, imported=module):
                cycles.append(graph.find_shortest_chain(importer=imported, imported=module))
    assert cycles == []


def test_only_the_store_speaks_sql_and_only_the_fetcher_opens_sockets() -> None:
    grimp = pytest.importorskip("grimp")
    graph = grimp.build_graph("pipeline", include_external_packages=True, cache_dir=None)
    for library, allowed in (("sqlite3", "pipeline.store"), ("sqlite_utils", "pipeline.store"),
                             ("httpx", "pipeline.fetch"), ("httpcore", "pipeline.fetch")):
        users = {m for m in graph.find_modules_that_directly_import(library)
                 if m.startswith("pipeline")}
        strays = {m for m in users if not (m == allowed or m.startswith(allowed + "."))}
        assert strays == set(), (library, strays)
