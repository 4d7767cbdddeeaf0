"""The slim install: the extras table against pyproject.toml and the sources, and what a
core-only install can and cannot do (simulated in a subprocess by hiding the modules of the
extras; tests/test_packaging.py installs the real wheel).
"""

from __future__ import annotations

import argparse
import ast
import importlib
import importlib.metadata
import json
import re
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

import wattplan
from wattplan import _extras, cli
from wattplan._extras import CORE, EXTRAS, FEATURES, INCLUDES, PROVIDERS, requires
from wattplan.exceptions import MissingExtraError

ROOT = Path(__file__).parents[1]
SRC = Path(wattplan.__file__).parent
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
SCENARIO = ROOT / "scenarios" / "ev-overnight.yaml"

# Modules outside FEATURES that need an extra at import time (not guarded: only the features
# that need them import them).
PRIVATE_EDGES = {
    "wattplan._db": "auth",
    "wattplan._api": "planner",
    "wattplan._serve_cli": "planner",
    "wattplan.migrations": "auth",
    "wattplan._jsonlog": "planner",
    "wattplan.household_backtest": "forecast",
}


def _name(requirement: str) -> tuple[str, set[str]]:
    """``"psycopg[binary]>=3.1"`` -> ``("psycopg", {"binary"})`` (normalized name)."""
    match = re.match(r"\s*([A-Za-z0-9._-]+)\s*(?:\[([^\]]*)\])?", requirement)
    assert match, requirement
    extras = {e.strip() for e in (match.group(2) or "").split(",") if e.strip()}
    return re.sub(r"[-_.]+", "-", match.group(1)).lower(), extras


def _listed() -> tuple[dict[str, set[str]], dict[str, set[str]]]:
    """distribution -> extras listing it directly; extra -> wattplan extras it includes."""
    listed: dict[str, set[str]] = {}
    includes: dict[str, set[str]] = {}
    for req in PYPROJECT["project"]["dependencies"]:
        listed.setdefault(_name(req)[0], set()).add(CORE)
    for extra, reqs in PYPROJECT["project"]["optional-dependencies"].items():
        for req in reqs:
            name, inner = _name(req)
            if name == "wattplan":
                includes.setdefault(extra, set()).update(inner)
            elif extra != "dev":
                listed.setdefault(name, set()).add(extra)
    return listed, includes


def test_table_lists_every_requirement_of_pyproject_with_its_extras() -> None:
    listed, _ = _listed()
    table = {p.distribution: set(p.extras) for p in PROVIDERS.values() if p.via is None}
    assert table == listed


def test_extras_and_their_inclusions_match_pyproject() -> None:
    _, includes = _listed()
    declared = set(PYPROJECT["project"]["optional-dependencies"])
    assert declared == {*EXTRAS, "all", "dev"}
    assert includes.pop("all") == set(EXTRAS)
    assert includes.pop("dev") == {"all"}
    assert includes == {extra: set(inner) for extra, inner in INCLUDES.items()}


def test_modules_that_come_with_a_dependency_really_do() -> None:
    for name, provider in PROVIDERS.items():
        if provider.via is None:
            continue
        required = {_name(r)[0] for r in importlib.metadata.requires(provider.via) or []}
        assert _name(provider.distribution)[0] in required, (name, provider.via)
        assert set(provider.extras) <= {
            e for p in PROVIDERS.values() if p.distribution == provider.via for e in p.extras
        }, name


def _imports(path: Path) -> tuple[set[str], set[str]]:
    """(imports run when the module is imported, imports inside functions)."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    eager: set[str] = set()
    lazy: set[str] = set()

    def visit(node: ast.AST, inside_function: bool) -> None:
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            return
        names: list[str] = []
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names = [node.module]
        (lazy if inside_function else eager).update(names)
        nested = inside_function or isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef)
        for child in ast.iter_child_nodes(node):
            visit(child, nested)

    visit(tree, False)
    return eager, lazy


def _sources() -> dict[str, Path]:
    modules = {}
    for path in sorted(SRC.rglob("*.py")):
        parts = path.relative_to(SRC.parent).with_suffix("").parts
        modules[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    return modules


def _third_party(names: set[str]) -> set[str]:
    tops = {n.partition(".")[0] for n in names}
    return {n for n in tops if n not in sys.stdlib_module_names and n not in {"wattplan"}}


def test_every_third_party_import_is_in_the_table() -> None:
    unknown = {}
    for module, path in _sources().items():
        eager, lazy = _imports(path)
        names = _third_party(eager | lazy) - set(PROVIDERS)
        if names:
            unknown[module] = names
    assert unknown == {}, "add these to wattplan/_extras.py and pyproject.toml"


def _extra_of(module: str) -> str:
    owners = {**FEATURES, **PRIVATE_EDGES}
    for prefix in sorted(owners, key=len, reverse=True):
        if module == prefix or module.startswith(prefix + "."):
            return owners[prefix]
    return CORE


def _allowed(extra: str) -> set[str]:
    wanted = {CORE} if extra == CORE else {CORE, *_extras.closure(extra)}
    return {name for name, p in PROVIDERS.items() if wanted.intersection(p.extras)}


def test_each_module_imports_on_load_only_what_its_extra_installs() -> None:
    wrong = {}
    for module, path in _sources().items():
        extra = _extra_of(module)
        eager, _ = _imports(path)
        outside = _third_party(eager) - _allowed(extra)
        # a wattplan module imported on load must need no more than this one's extra
        for name in eager:
            if name.startswith("wattplan."):
                needed = _extra_of(name)
                if needed != CORE and (extra == CORE or needed not in _extras.closure(extra)):
                    outside.add(name)
        if outside:
            wrong[module] = (extra, outside)
    assert wrong == {}


def test_the_optimizer_needs_the_core_alone() -> None:
    for module, path in _sources().items():
        if module.startswith("wattplan.optimizer"):
            assert _extra_of(module) == CORE
            eager, _ = _imports(path)
            assert _third_party(eager) <= _allowed(CORE), module


def test_requires_passes_other_import_errors_through() -> None:
    with pytest.raises(ModuleNotFoundError), requires("nomos", feature="x"):
        importlib.import_module("wattplan_no_such_module")
    with (
        pytest.raises(ValueError, match="extra: unknown extra 'nope'"),
        requires("nope", feature="x"),
    ):
        pass


def test_missing_extra_error_is_an_import_error_that_names_the_extra() -> None:
    exc = MissingExtraError(feature="wattplan.planner", extra="planner", distribution="apscheduler")
    assert isinstance(exc, ImportError) and isinstance(exc, wattplan.WattplanError)
    assert "'planner' extra" in str(exc) and "apscheduler" in str(exc)
    assert str(exc).endswith("pip install 'wattplan[planner]'")


def test_command_table_names_the_commands_each_module_registers() -> None:
    for module_name, _extra, commands in cli._COMMAND_MODULES:
        parser = argparse.ArgumentParser()
        sub = parser.add_subparsers()
        importlib.import_module(module_name).register(sub)
        assert tuple(sub.choices) == commands, module_name


# -- a core-only install, simulated: the modules of the extras cannot be imported ---------

_HIDE = """
import sys
from wattplan._extras import CORE, PROVIDERS, closure
hidden = {hidden!r}
for name, provider in PROVIDERS.items():
    if hidden is None and CORE not in provider.extras or name in (hidden or ()):
        sys.modules[name] = None  # import raises ModuleNotFoundError
"""


def _run(code: str, hidden: list[str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", _HIDE.format(hidden=hidden) + code],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=300,
    )


_IMPORT_FEATURE = """
import importlib, json
from wattplan.exceptions import MissingExtraError
try:
    importlib.import_module({module!r})
except MissingExtraError as exc:
    print(json.dumps({{"extra": exc.extra, "message": str(exc)}}))
"""


@pytest.mark.parametrize(("module", "extra"), sorted(FEATURES.items()))
def test_a_feature_without_its_extra_names_the_extra(module: str, extra: str) -> None:
    out = _run(_IMPORT_FEATURE.format(module=module))
    assert out.returncode == 0, out.stderr
    error = json.loads(out.stdout)
    assert error["extra"] == extra
    assert module in error["message"]
    assert f"pip install 'wattplan[{extra}]'" in error["message"]


def test_planner_without_apscheduler_alone_names_the_planner_extra() -> None:
    out = _run(_IMPORT_FEATURE.format(module="wattplan.planner"), hidden=["apscheduler"])
    assert out.returncode == 0, out.stderr
    error = json.loads(out.stdout)
    assert error["extra"] == "planner"
    assert "apscheduler" in error["message"]


_CORE_ONLY = """
import io, json, contextlib
import wattplan
from wattplan import cli
from wattplan.exceptions import MissingExtraError

plan = wattplan.optimize(wattplan.load_scenario({scenario!r}))
result = {{"status": str(plan.status), "cost": plan.cost_eur}}
buf = io.StringIO()
with contextlib.redirect_stdout(buf):
    result["plan_exit"] = cli.main(["plan", {scenario!r}, "--json"])
result["plan_json_status"] = json.loads(buf.getvalue())["status"]
buf = io.StringIO()
with contextlib.redirect_stdout(buf):
    result["schema_exit"] = cli.main(["schema"])
result["schema_title"] = json.loads(buf.getvalue())["title"]
result["run_exit"] = cli.main(["run", "--config", "x.yaml"])
for name in ("Planner", "NomosClient", "Settings", "forecast_pv"):
    try:
        getattr(wattplan, name)
    except MissingExtraError as exc:
        result[name] = exc.extra
try:
    plan.plot()
except MissingExtraError as exc:
    result["plot"] = exc.extra
import sys
edges = ("httpx", "sqlalchemy", "starlette")
result["loaded"] = sorted(n for n, m in sys.modules.items() if m and n.startswith(edges))
print(json.dumps(result))
"""


def test_core_alone_optimizes_and_runs_plan_and_schema() -> None:
    out = _run(_CORE_ONLY.format(scenario=str(SCENARIO)))
    assert out.returncode == 0, out.stderr
    result = json.loads(out.stdout.strip().splitlines()[-1])
    assert result["status"] == "optimal" == result["plan_json_status"]
    assert result["cost"] > 0
    assert result["plan_exit"] == 0
    assert result["schema_exit"] == 0 and result["schema_title"] == "wattplan scenario"
    assert result["run_exit"] == 2
    assert "pip install 'wattplan[planner]'" in out.stderr
    assert {
        k: result[k] for k in ("Planner", "NomosClient", "Settings", "forecast_pv", "plot")
    } == {
        "Planner": "planner",
        "NomosClient": "nomos",
        "Settings": "auth",
        "forecast_pv": "forecast",
        "plot": "plot",
    }
    assert result["loaded"] == []


def test_cli_help_lists_every_command_on_the_core_alone() -> None:
    out = _run("from wattplan import cli\ncli.main(['--help'])")
    listed = set(re.findall(r"^    (\w+)\s", out.stdout, flags=re.MULTILINE))
    assert listed == {c for _m, _e, commands in cli._COMMAND_MODULES for c in commands}
    assert "needs pip install 'wattplan[planner]'" in out.stdout


def test_readme_lists_every_extra() -> None:
    from tests.readme import readme_block

    text = (ROOT / "README.md").read_text(encoding="utf-8")
    after = text[text.index("<!-- extras") :].splitlines()[1:]
    table = [line for line in after[: after.index("")] if line.startswith("|")]
    rows = {line.split("|")[1].strip(" `") for line in table[2:]}
    assert rows == {*EXTRAS, "all", "dev"}
    pip_lines = readme_block("extras", "console")
    assert "pip install wattplan " in pip_lines
