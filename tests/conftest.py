"""Shared fixtures: a real sandbox on a free loopback port.

``sandbox``
    A fresh :class:`wattplan.sandbox.RunningSandbox` per test (default config, real
    HTTP via uvicorn). Every response it gives is checked against Nomos's OpenAPI spec
    when the test ends (see ``tests/sandbox/conformance.py``).
``sandbox_factory``
    ``sandbox_factory(config)`` starts one with a config of your own (same check).
``api_responses`` (autouse)
    Every response of wattplan's own APIs (any app with ``state.openapi``) in any test is
    checked against the OpenAPI document that app serves, when the test ends (see
    ``tests/openapi_check.py``). The exchanges are the fixture's value.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterator

import pytest

from wattplan.sandbox import RunningSandbox, SandboxConfig, serve


def _start(
    stack: list[tuple[RunningSandbox, object]], config: SandboxConfig | None
) -> RunningSandbox:
    config = dataclasses.replace(config or SandboxConfig(), record_exchanges=True)
    manager = serve(config)
    running = manager.__enter__()
    stack.append((running, manager))
    return running


def _finish(stack: list[tuple[RunningSandbox, object]]) -> None:
    from tests.sandbox.conformance import assert_conformant

    for running, manager in reversed(stack):
        manager.__exit__(None, None, None)  # type: ignore[attr-defined]
        assert_conformant(running.state.exchanges)


@pytest.fixture(autouse=True)
def api_responses() -> Iterator[list[object]]:
    from tests.openapi_check import assert_valid, recording

    with recording() as exchanges:
        yield exchanges  # type: ignore[misc]
    assert_valid(exchanges)


@pytest.fixture
def sandbox_factory() -> Iterator[Callable[..., RunningSandbox]]:
    stack: list[tuple[RunningSandbox, object]] = []
    yield lambda config=None: _start(stack, config)
    _finish(stack)


@pytest.fixture
def sandbox(sandbox_factory: Callable[..., RunningSandbox]) -> RunningSandbox:
    return sandbox_factory()
