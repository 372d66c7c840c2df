"""The package's layout (docs/architecture.md): floors, imports only downwards, no cycle.

Reads the package's own source with :mod:`ast` (nothing is imported), so a new module, an upward
import, a cycle or a function-local import of the package fails here with its file and line.
"""
from __future__ import annotations

import ast
import subprocess
import sys
from graphlib import CycleError, TopologicalSorter
from pathlib import Path

import s1tiling

PACKAGE = Path(s1tiling.__file__).parent

#: floor of each module (a package name stands for all its modules); imports go to the same floor
#: or lower, never higher. Same-floor imports must not form a cycle.
FLOORS = {
    # 0: shared by everything
    "s1tiling": 0, "errors": 0, "times": 0, "progress": 0,
    # 1: the lower floors, one job each
    "config": 1, "logs": 1, "naming": 1, "grid": 1, "s1": 1, "geometry": 1, "resampling": 1,
    "radiometry": 1, "ortho": 1, "blocks": 1, "writing": 1, "masks": 1, "filtering": 1, "quicklook": 1,
    "discovery": 1, "scheduling": 1, "download": 1, "engines.otb": 1, "catalog": 1, "timeseries": 1,
    "multitemporal": 1,
    # 2: planning (settings + passes -> jobs) and what a request gives every maker
    "plan": 2, "context": 2,
    # 3: the makers: jobs -> files
    "production": 3, "tasks": 3, "incidence": 3, "terrain_flattening": 3, "derived": 3, "engines.otb_production": 3,
    # 4: the chain; 5: programs and the sample kit
    "pipeline": 4, "cli": 5, "__main__": 5, "demo": 5, "samples": 5, "engines": 1,
}
MAKERS = ("production", "incidence", "terrain_flattening", "derived", "engines.otb_production")
#: function-local imports of the package allowed, with why: (module, imported module)
LAZY_ALLOWED: set[tuple[str, str]] = {
    # the package's top-level conveniences load their module on first use: ``import s1tiling.plan``
    # (or ``s1tiling.errors``) must not pull the product reader, rasterio and numba in
    ("s1tiling", "s1.product"),
    # ``s1tiling.open_timeseries`` (xarray, odc-stac: the optional ``cube`` extra) likewise
    ("s1tiling", "timeseries"),
    # the command (top floor) loads the chain when it runs: dask's spawned workers run the console
    # script again, which imports s1tiling.cli (tests/test_cli.py: the workers import no chain)
    ("cli", "pipeline"), ("cli", "config"), ("cli", "catalog"), ("cli", "timeseries"),
}


def _modules() -> dict[str, Path]:
    found = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        parts = path.relative_to(PACKAGE).with_suffix("").parts
        if parts[-1] == "__init__":
            parts = parts[:-1]
        found[".".join(parts) or "s1tiling"] = path
    return found


def _floor(module: str) -> int:
    parts = module.split(".")
    for n in range(len(parts), 0, -1):
        if ".".join(parts[:n]) in FLOORS:
            return FLOORS[".".join(parts[:n])]
    raise AssertionError(f"module s1tiling.{module} has no floor in tests/test_layout.py (and docs/architecture.md)")


def _resolve(module: str, is_package: bool, node: ast.ImportFrom | ast.Import) -> list[str]:
    """The package modules an import statement names (relative to ``s1tiling``)."""
    modules = set(_modules())
    if isinstance(node, ast.Import):
        return [a.name.removeprefix("s1tiling.") if a.name != "s1tiling" else "s1tiling"
                for a in node.names if a.name.split(".")[0] == "s1tiling"]
    if node.level == 0:
        if not (node.module or "").startswith("s1tiling"):
            return []
        base = node.module.removeprefix("s1tiling").lstrip(".")
    else:
        here = module.split(".") if module != "s1tiling" else []
        if not is_package:
            here = here[:-1]
        up = here[:len(here) - (node.level - 1)] if node.level > 1 else here
        base = ".".join([*up, *(node.module.split(".") if node.module else [])])
    targets = []
    for alias in node.names:
        candidate = f"{base}.{alias.name}" if base else alias.name
        targets.append(candidate if candidate in modules else (base or "s1tiling"))
    return targets


def _imports() -> tuple[dict[str, set[str]], list[str]]:
    """Module-level imports between package modules (``if TYPE_CHECKING:`` blocks left out), and
    the function-local ones as 'file:line module -> target'."""
    graph, local = {}, []
    for module, path in _modules().items():
        tree = ast.parse(path.read_text(), str(path))
        is_package = path.name == "__init__.py"
        graph[module] = set()

        def visit(node, in_function, in_type_checking, module=module, is_package=is_package, path=path):
            for child in ast.iter_child_nodes(node):
                if isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda)):
                    visit(child, True, in_type_checking)
                elif isinstance(child, ast.If) and "TYPE_CHECKING" in ast.unparse(child.test):
                    visit(child, in_function, True)
                elif isinstance(child, (ast.Import, ast.ImportFrom)):
                    for target in _resolve(module, is_package, child):
                        if target == module:
                            continue
                        if in_function:
                            if (module, target) not in LAZY_ALLOWED:
                                local.append(f"{path.relative_to(PACKAGE.parent)}:{child.lineno} {module} -> {target}")
                        elif not in_type_checking:
                            graph[module].add(target)
                else:
                    visit(child, in_function, in_type_checking)
        visit(tree, False, False)
    return graph, local


def test_every_module_has_a_floor():
    for module in _modules():
        _floor(module)


def test_no_import_cycle():
    graph, _ = _imports()
    try:
        tuple(TopologicalSorter(graph).static_order())
    except CycleError as err:
        raise AssertionError(f"import cycle: {' -> '.join(err.args[1])}") from None


def test_imports_go_downwards_only():
    graph, _ = _imports()
    upward = [f"{m} (floor {_floor(m)}) imports {t} (floor {_floor(t)})"
              for m, targets in graph.items() for t in targets if _floor(t) > _floor(m)]
    assert not upward, "\n".join(upward)


def test_makers_never_import_the_pipeline():
    graph, _ = _imports()
    for maker in MAKERS:
        assert not {"pipeline", "cli"} & graph[maker], f"{maker} imports the pipeline"


def test_no_function_local_import_of_the_package():
    _, local = _imports()
    assert not local, "function-local imports of the package (import at module level):\n" + "\n".join(local)


def test_planning_needs_neither_rasterio_nor_numba():
    code = ("import sys, s1tiling.plan; "
            "print(sorted(m for m in sys.modules if m.split('.')[0] in ('rasterio', 'numba', 'osgeo')))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


def test_the_checker_sees_a_cycle_and_an_upward_import(tmp_path, monkeypatch):
    """The checks above are not vacuous: a fake package with an upward import and a cycle fails them."""
    fake = tmp_path / "s1tiling"
    fake.mkdir()
    (fake / "__init__.py").write_text("")
    (fake / "naming.py").write_text("from .pipeline import run\n")
    (fake / "pipeline.py").write_text("from . import naming\n\ndef run():\n    from .cli import main\n")
    (fake / "cli.py").write_text("")
    monkeypatch.setattr(sys.modules[__name__], "PACKAGE", fake)
    graph, local = _imports()
    assert graph["naming"] == {"pipeline"} and graph["pipeline"] == {"naming"}
    assert local == ["s1tiling/pipeline.py:4 pipeline -> cli"]
    try:
        tuple(TopologicalSorter(graph).static_order())
    except CycleError:
        pass
    else:
        raise AssertionError("cycle not seen")
    assert _floor("pipeline") > _floor("naming")
