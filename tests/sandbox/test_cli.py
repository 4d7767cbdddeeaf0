"""``wattplan sandbox`` serves until stopped and says it is a development tool."""

from __future__ import annotations

import subprocess
import sys

import httpx

from wattplan.cli import build_parser


def test_parser_knows_the_sandbox_command() -> None:
    args = build_parser().parse_args(["sandbox", "--port", "0", "--lenient-refresh"])
    assert args.port == 0
    assert args.host == "127.0.0.1"
    assert args.lenient_refresh is True
    assert callable(args.func)


def test_sandbox_command_serves_on_loopback() -> None:
    proc = subprocess.Popen(
        [sys.executable, "-m", "wattplan.cli", "sandbox", "--port", "0"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None
        first = proc.stdout.readline()
        assert "development tool" in first
        base_url = first.rsplit(" on ", 1)[1].strip()
        assert base_url.startswith("http://127.0.0.1:")
        meta = httpx.get(base_url + "/.well-known/oauth-authorization-server", timeout=10)
        assert meta.status_code == 200
        assert meta.json()["issuer"] == base_url
    finally:
        proc.kill()
        _, err = proc.communicate(timeout=30)
    assert "DEVELOPMENT TOOL" in err


def test_loopback_detection() -> None:
    from wattplan.sandbox._server import is_loopback

    assert is_loopback("127.0.0.1")
    assert is_loopback("::1")
    assert is_loopback("[::1]")
    assert is_loopback("localhost")
    assert not is_loopback("0.0.0.0")  # noqa: S104 - a string, nothing is bound
    assert not is_loopback("192.168.1.5")
