"""Which optional extra of the wattplan distribution brings which third-party import.

``pip install wattplan`` installs the optimizer alone (numpy, pandas, pydantic, PuLP,
highspy, PyYAML). Everything at the edges comes with an extra::

    nomos     the Nomos API client (httpx)
    auth      OAuth: token vault, refresh, callback app, `wattplan login` (includes nomos)
    sandbox   the offline Nomos (Starlette, uvicorn, Jinja2)
    planner   `wattplan run` / `demo`: scheduler, store, HTTP API (includes nomos, auth, sandbox)
    mqtt      the planner's MQTT sink (paho-mqtt)
    plot      Plan.plot and `wattplan plan --plot` (matplotlib)
    forecast  base-load and PV forecasts, household backtests (holidays, pvlib)
    postgres  the vault and the plan store on PostgreSQL (psycopg)
    all       all of the above

:data:`PROVIDERS` is the one table of every third-party import name that wattplan uses,
the distribution that provides it and the extras of pyproject.toml that list it; a test
reads pyproject.toml and every ``import`` in the package and fails when the three disagree.
:func:`requires` turns the ``ModuleNotFoundError`` of a missing optional dependency into a
:class:`~wattplan.exceptions.MissingExtraError` that names the extra and the pip command.

This module imports nothing but the standard library and the exception tree.
"""

from __future__ import annotations

import importlib.util
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass

from wattplan.exceptions import MissingExtraError

__all__ = [
    "CORE",
    "EXTRAS",
    "FEATURES",
    "INCLUDES",
    "PROVIDERS",
    "Provider",
    "closure",
    "missing",
    "requires",
]

CORE = "core"
"""Pseudo-extra of the requirements in ``[project] dependencies``."""

EXTRAS = ("nomos", "auth", "sandbox", "planner", "mqtt", "plot", "forecast", "postgres", "dask")
"""The feature extras, in the order the README lists them (``all`` is their union)."""

INCLUDES: Mapping[str, tuple[str, ...]] = {
    "auth": ("nomos",),
    "planner": ("nomos", "auth", "sandbox"),
}
"""Extras that install other extras (``planner = ["wattplan[nomos,auth,sandbox]", ...]``)."""


@dataclass(frozen=True)
class Provider:
    """The distribution behind an import name and the extras that list it in pyproject.toml.

    ``via`` names a listed distribution that depends on this one, for modules that wattplan
    imports but does not pin itself (``annotated_types`` comes with pydantic).
    """

    distribution: str
    extras: tuple[str, ...]
    via: str | None = None


PROVIDERS: Mapping[str, Provider] = {
    # the core: the optimizer
    "numpy": Provider("numpy", (CORE,)),
    "pandas": Provider("pandas", (CORE,)),
    "pydantic": Provider("pydantic", (CORE,)),
    "annotated_types": Provider("annotated-types", (CORE,), via="pydantic"),
    "yaml": Provider("pyyaml", (CORE,)),
    "pulp": Provider("pulp", (CORE,)),
    "highspy": Provider("highspy", (CORE,)),
    # edges
    "httpx": Provider("httpx", ("nomos",)),
    "anyio": Provider("anyio", ("nomos",), via="httpx"),
    "pydantic_settings": Provider("pydantic-settings", ("auth",)),
    "cryptography": Provider("cryptography", ("auth",)),
    "sqlalchemy": Provider("sqlalchemy", ("auth",)),
    "alembic": Provider("alembic", ("auth",)),
    "starlette": Provider("starlette", ("auth", "sandbox")),
    "uvicorn": Provider("uvicorn", ("auth", "sandbox")),
    "multipart": Provider("python-multipart", ("sandbox",)),
    "jinja2": Provider("jinja2", ("sandbox",)),
    "apscheduler": Provider("apscheduler", ("planner",)),
    "pythonjsonlogger": Provider("python-json-logger", ("planner",)),
    "paho": Provider("paho-mqtt", ("mqtt",)),
    "matplotlib": Provider("matplotlib", ("plot",)),
    "holidays": Provider("holidays", ("forecast",)),
    "pvlib": Provider("pvlib", ("forecast",)),
    "psycopg": Provider("psycopg", ("postgres",)),
    "distributed": Provider("distributed", ("dask",)),
}

FEATURES: Mapping[str, str] = {
    "wattplan.nomos": "nomos",
    "wattplan.auth": "auth",
    "wattplan.settings": "auth",
    "wattplan.sandbox": "sandbox",
    "wattplan.planner": "planner",
    "wattplan.optimize_api": "planner",
    "wattplan.forecast": "forecast",
}
"""Subpackage (or module) -> the extra it needs as a whole; each guards its imports with
:func:`requires`. Parts of the core that need an extra only when called (``Plan.plot``)
guard that one import."""


def closure(extra: str) -> frozenset[str]:
    """``extra`` and every extra it installs (:data:`INCLUDES`)."""
    return frozenset({extra, *INCLUDES.get(extra, ())})


def missing(extra: str) -> list[str]:
    """The distributions of ``extra`` (and of the extras it includes) that are not installed.

    Looks the import names up without importing them.
    """
    wanted = closure(extra)
    return [
        provider.distribution
        for name, provider in PROVIDERS.items()
        if provider.via is None
        and wanted.intersection(provider.extras)
        and importlib.util.find_spec(name) is None
    ]


@contextmanager
def requires(extra: str, *, feature: str) -> Iterator[None]:
    """Raise :class:`MissingExtraError` naming ``extra`` when an optional module is missing.

    Wraps the imports of a feature::

        with requires("planner", feature="wattplan.planner"):
            from apscheduler.schedulers.background import BackgroundScheduler

    The whole extra is checked on entry (so ``import wattplan.planner`` fails at once without
    APScheduler, although only the scheduler imports it); then a ``ModuleNotFoundError``
    for a module of :data:`PROVIDERS` outside the core becomes the typed error too. Any
    other import failure (a broken install, a bug) propagates unchanged. A missing extra
    of a nested feature that this extra includes (:data:`INCLUDES`) is reported as this
    one's, since installing this extra brings it.
    """
    if extra not in EXTRAS:
        raise ValueError(f"extra: unknown extra {extra!r}; one of {', '.join(EXTRAS)}")
    absent = missing(extra)
    if absent:
        raise MissingExtraError(feature=feature, extra=extra, distribution=", ".join(absent))
    try:
        yield
    except MissingExtraError as exc:
        if exc.extra not in INCLUDES.get(extra, ()):
            raise
        raise MissingExtraError(
            feature=feature, extra=extra, distribution=exc.distribution
        ) from exc
    except ModuleNotFoundError as exc:
        provider = PROVIDERS.get((exc.name or "").partition(".")[0])
        if provider is None or CORE in provider.extras:
            raise
        raise MissingExtraError(
            feature=feature, extra=extra, distribution=provider.distribution
        ) from exc
