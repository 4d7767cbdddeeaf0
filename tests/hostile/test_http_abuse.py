"""Slow and numerous clients against the planner's API on a real uvicorn server.

Before: 300 half-sent requests were held open for as long as the clients liked, a body
shorter than its Content-Length waited for ever, a client that hung up mid-body logged an
ERROR traceback, and nothing capped the number of connections. The waits below are upper
bounds for a broken server to show itself, not speed requirements.
"""

from __future__ import annotations

import logging
import socket
import time
from collections.abc import Iterator
from contextlib import closing, contextmanager
from typing import Any

import httpx
import pytest

from tests.hostile._servers import KEYS, make_planner
from wattplan._http import serve_in_thread
from wattplan.exceptions import ConfigurationError
from wattplan.planner import BearerKeys, PlanStore, create_app
from wattplan.planner.config import load_config

GIVE_UP_S = 20.0  # a server that has not reacted by then never will


@pytest.fixture
def planner(tmp_path: Any) -> Iterator[Any]:
    store = PlanStore(f"sqlite:///{tmp_path / 'planner.sqlite3'}")
    planner, _, _ = make_planner(store)
    planner.run_once()
    yield planner
    store.dispose()


@contextmanager
def serve(planner: Any, *, body_timeout_s: float = 10.0, **server: Any) -> Iterator[str]:
    app = create_app(planner, auth=BearerKeys(KEYS), body_timeout_s=body_timeout_s)
    with serve_in_thread(app, **server) as url:
        yield url


def _connect(url: str) -> socket.socket:
    host, port = url.removeprefix("http://").rsplit(":", 1)
    sock = socket.create_connection((host, int(port)), timeout=GIVE_UP_S)
    return sock


def _read_all(sock: socket.socket) -> bytes:
    """Everything the server sends until it closes the connection."""
    data = b""
    while chunk := sock.recv(65536):
        data += chunk
    return data


def _head(length: int) -> bytes:
    return (
        "POST /customers/a/device-state HTTP/1.1\r\nHost: planner\r\n"
        f"Authorization: Bearer {KEYS['a']}\r\nContent-Type: application/json\r\n"
        f"Content-Length: {length}\r\n\r\n"
    ).encode()


def test_half_sent_request_heads_are_closed_and_others_still_served(planner: Any) -> None:
    with serve(planner, header_timeout_s=0.5, max_connections=100) as url:
        socks = [_connect(url) for _ in range(20)]
        for i, sock in enumerate(socks):
            sock.sendall(b"GET /health HTTP/1.1\r\nHost: pl" if i % 2 else b"POST /custo")
        for sock in socks:
            with closing(sock):
                assert _read_all(sock) == b""  # closed by the server, nothing answered
        r = httpx.get(f"{url}/health", timeout=GIVE_UP_S)
        assert r.status_code == 200
        # a kept-alive connection gets the same deadline for its next request head
        with closing(_connect(url)) as sock:
            sock.sendall(b"GET /health HTTP/1.1\r\nHost: planner\r\n\r\nGET /hea")
            assert b"HTTP/1.1 200" in _read_all(sock)


def test_a_body_shorter_than_its_content_length_gets_a_408(planner: Any) -> None:
    with serve(planner, body_timeout_s=0.5, header_timeout_s=5) as url:
        with closing(_connect(url)) as sock:
            sock.sendall(_head(100) + b'{"devices"')
            answer = _read_all(sock)
        assert answer.startswith(b"HTTP/1.1 408")
        assert b'"error":"request_timeout"' in answer
        assert planner.store.device_state("a").version == 0


def test_a_client_hanging_up_mid_body_is_one_log_line(
    planner: Any, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    with serve(planner, header_timeout_s=5) as url:
        with closing(_connect(url)) as sock:
            sock.sendall(_head(100) + b'{"devices"')
        deadline = time.monotonic() + GIVE_UP_S
        while time.monotonic() < deadline and not any(
            "mid-body" in r.getMessage() for r in caplog.records
        ):
            time.sleep(0.05)
        assert httpx.get(f"{url}/health", timeout=GIVE_UP_S).status_code == 200
    lines = [r for r in caplog.records if "mid-body" in r.getMessage()]
    assert len(lines) == 1
    assert lines[0].levelno == logging.INFO and lines[0].exc_info is None
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR]


def test_connections_beyond_the_cap_get_a_503_until_some_close(planner: Any) -> None:
    with serve(planner, header_timeout_s=60, max_connections=5) as url:
        idle = [_connect(url) for _ in range(5)]
        deadline = time.monotonic() + GIVE_UP_S
        with httpx.Client(base_url=url, timeout=GIVE_UP_S) as client:
            status = 200
            while status != 503 and time.monotonic() < deadline:
                status = client.get("/health", headers={"Connection": "close"}).status_code
            assert status == 503
            for sock in idle:
                sock.close()
            while status != 200 and time.monotonic() < deadline:
                status = client.get("/health", headers={"Connection": "close"}).status_code
                time.sleep(0.05)
            assert status == 200


@pytest.mark.parametrize(
    ("http", "key"),
    [
        ("{header_timeout_s: 0}", "http.header_timeout_s"),
        ("{body_timeout_s: -1}", "http.body_timeout_s"),
        ("{keep_alive_s: 100000}", "http.keep_alive_s"),
        ("{max_connections: 0}", "http.max_connections"),
        ("{max_connections: true}", "http.max_connections"),
        ("{header_timeout_s: true}", "http.header_timeout_s"),
    ],
)
def test_http_limits_in_the_planner_config_are_validated(
    tmp_path: Any, http: str, key: str
) -> None:
    config = tmp_path / "planner.yaml"
    config.write_text(
        f"http: {http}\ncustomers:\n  - {{id: a, factory: 'wattplan.planner:demo_household'}}\n",
        encoding="utf-8",
    )
    with pytest.raises(ConfigurationError, match=key):
        load_config(config)
    config.write_text(
        "http: {header_timeout_s: 2, body_timeout_s: 3, keep_alive_s: 4, max_connections: 50}\n"
        "customers:\n  - {id: a, factory: 'wattplan.planner:demo_household'}\n",
        encoding="utf-8",
    )
    loaded = load_config(config).http
    assert loaded is not None
    assert (loaded.header_timeout_s, loaded.max_connections) == (2, 50)
