"""The public surface: a curated, sorted __all__ whose every name resolves."""

from __future__ import annotations

import subprocess
import sys

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


def test_optimizer_core_loads_no_io_dependencies() -> None:
    loaded = _modules_loaded_by("import wattplan.optimizer")
    for forbidden in ("httpx", "apscheduler", "sqlalchemy", "starlette", "uvicorn", "paho"):
        assert forbidden not in loaded, f"wattplan.optimizer imported {forbidden}"


def test_top_level_import_is_light() -> None:
    loaded = _modules_loaded_by("import wattplan")
    assert "httpx" not in loaded
    assert "apscheduler" not in loaded
