"""The public surface: a curated, sorted __all__ whose every name resolves."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import wattplan


def test_all_is_sorted_and_unique() -> None:
    assert list(wattplan.__all__) == sorted(set(wattplan.__all__))


def test_every_public_name_resolves() -> None:
    for name in wattplan.__all__:
        assert getattr(wattplan, name) is not None, name


def test_no_unlisted_public_names() -> None:
    public = {n for n in vars(wattplan) if not n.startswith("_")}
    # submodules imported as a side effect are attributes too; they are not API
    modules = {n for n in public if type(getattr(wattplan, n)).__name__ == "module"}
    assert public - modules - {"annotations"} <= set(wattplan.__all__)


def test_exceptions_share_one_root() -> None:
    from wattplan import exceptions

    for name in exceptions.__all__:
        cls = getattr(exceptions, name)
        assert issubclass(cls, wattplan.WattplanError), name


def _modules_loaded_by(statement: str) -> set[str]:
    code = f"import sys; {statement}; print('\\n'.join(sorted(sys.modules)))"
    out = subprocess.run([sys.executable, "-c", code], check=True, capture_output=True, text=True)
    return set(out.stdout.split())


_IO_DEPENDENCIES = ("httpx", "apscheduler", "sqlalchemy", "starlette", "uvicorn", "paho")


def test_optimizer_core_loads_no_io_dependencies() -> None:
    loaded = _modules_loaded_by("import wattplan.optimizer")
    for forbidden in (*_IO_DEPENDENCIES, "dask", "distributed"):
        assert forbidden not in loaded, f"wattplan.optimizer imported {forbidden}"


def test_top_level_import_is_light() -> None:
    loaded = _modules_loaded_by("import wattplan")
    assert "httpx" not in loaded
    assert "apscheduler" not in loaded


def _wattplan_imports(package: str) -> dict[str, set[str]]:
    """Every ``wattplan.*`` module each file of ``package`` imports (read from its source)."""
    root = Path(wattplan.__file__).parent / package
    found: dict[str, set[str]] = {}
    for path in sorted(root.rglob("*.py")):
        names: set[str] = set()
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Import):
                names.update(alias.name for alias in node.names)
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                names.add(node.module)
                names.update(f"{node.module}.{alias.name}" for alias in node.names)
        found[str(path.relative_to(root.parent))] = {n for n in names if n.startswith("wattplan")}
    assert found, f"no sources found for wattplan.{package}"
    return found


def _imports_of(package: str, other: str) -> dict[str, set[str]]:
    hits = {
        file: {n for n in names if n == f"wattplan.{other}" or n.startswith(f"wattplan.{other}.")}
        for file, names in _wattplan_imports(package).items()
    }
    return {file: names for file, names in hits.items() if names}


def test_forecast_and_optimizer_do_not_import_each_other() -> None:
    assert _imports_of("forecast", "optimizer") == {}
    assert _imports_of("optimizer", "forecast") == {}


def test_forecast_is_pure() -> None:
    loaded = _modules_loaded_by("import wattplan.forecast")
    for forbidden in (*_IO_DEPENDENCIES, "dask", "distributed"):
        assert forbidden not in loaded, f"wattplan.forecast imported {forbidden}"
    for edge in ("nomos", "planner", "auth", "sandbox", "optimizer"):
        assert _imports_of("forecast", edge) == {}, edge


def test_the_pure_packages_never_import_dask() -> None:
    """Not even lazily inside a function: the pure core is what Dask ships, never its user."""
    for package in ("optimizer", "forecast"):
        root = Path(wattplan.__file__).parent / package
        for path in sorted(root.rglob("*.py")):
            for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
                names: list[str] = []
                if isinstance(node, ast.Import):
                    names = [alias.name for alias in node.names]
                elif isinstance(node, ast.ImportFrom) and node.module:
                    names = [node.module]
                tops = {name.split(".")[0] for name in names}
                assert not tops & {"dask", "distributed"}, f"{path.name} imports {tops}"
