"""Operations under hostile conditions: logs, schema upgrades, start-up faults, remote binds.

Each case here broke before: the JSON log formatter dropped ``extra`` fields and let
JSON-quoted secrets through; no schema migrations existed; ``wattplan run`` tracebacked on
an impossible SQLite path and said a bare "OperationalError"; the sandbox served its
sign-in shortcuts on any address it was told to bind.
"""

from __future__ import annotations

import io
import json
import logging
import os
import string
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import quote

import httpx
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from wattplan.planner._cli import JsonLogFormatter

# -- JSON log lines --------------------------------------------------------------------------

TOKEN68 = string.ascii_letters + string.digits + "-._~+/"
# what a bare key=value secret can hold (URL-safe; a real one in a URL is percent-encoded)
BARE = string.ascii_letters + string.digits + "-._~+/=%:!*$@"
# Markers that appear nowhere else in a log line: a secret cut in two leaks one of them.
token_like = st.text(alphabet=TOKEN68, max_size=60).map(lambda s: f"Z9{s}Q7")
bare_secret = st.text(alphabet=BARE, max_size=60).map(lambda s: f"Z9{s}Q7")
any_secret = st.text(alphabet=st.characters(blacklist_categories=("Cs",)), max_size=60).map(
    lambda s: f"\u00a7{s}\u00a7"
)


@pytest.fixture
def json_log() -> Iterator[tuple[logging.Logger, io.StringIO]]:
    """A logger whose records go through wattplan's JSON formatter (as ``wattplan run``)."""
    out = io.StringIO()
    handler = logging.StreamHandler(out)
    handler.setFormatter(JsonLogFormatter())
    logger = logging.getLogger("wattplan.test.operations")
    logger.handlers[:] = [handler]
    logger.propagate = False
    logger.setLevel(logging.DEBUG)
    yield logger, out
    logger.handlers[:] = []
    logger.propagate = True


def _lines(out: io.StringIO) -> list[dict[str, object]]:
    text = out.getvalue()
    out.seek(0)
    out.truncate()
    return [json.loads(line) for line in text.splitlines()]


def test_json_log_lines_keep_extra_fields(
    json_log: tuple[logging.Logger, io.StringIO],
) -> None:
    logger, out = json_log
    logger.info("planned %s", "c1", extra={"customer_id": "c1", "plan_id": 7, "savings_eur": 1.25})
    (line,) = _lines(out)
    assert line["msg"] == "planned c1"
    assert line["level"] == "info"
    assert line["logger"] == "wattplan.test.operations"
    assert str(line["ts"]).endswith("+00:00")
    assert (line["customer_id"], line["plan_id"], line["savings_eur"]) == ("c1", 7, 1.25)


@settings(max_examples=150, deadline=None)
@given(secret=any_secret)
def test_json_quoted_secrets_never_reach_the_log(secret: str) -> None:
    out = io.StringIO()
    handler = logging.StreamHandler(out)
    handler.setFormatter(JsonLogFormatter())
    logger = logging.Logger("wattplan.test.quoted")
    logger.addHandler(handler)
    body = json.dumps({"access_token": "at", "refresh_token": secret, "expires_in": 3600})
    logger.warning("token endpoint answered %s", body)
    logger.warning("as a repr: %r", {"client_secret": secret})
    logger.warning("escaped: %s", json.dumps({"body": json.dumps({"code_verifier": secret})}))
    logger.warning("extra", extra={"response": {"refresh_token": secret}, "id_token": secret})
    text = out.getvalue()
    lines = [json.loads(line) for line in text.splitlines()]
    assert "\u00a7" not in text
    assert "\u00a7" not in json.dumps(lines, ensure_ascii=False)
    assert lines[0]["msg"] == (
        'token endpoint answered {"access_token": "[redacted]", "refresh_token": '
        '"[redacted]", "expires_in": 3600}'
    )
    assert lines[3]["response"] == {"refresh_token": "[redacted]"}
    assert lines[3]["id_token"] == "[redacted]"


@settings(max_examples=150, deadline=None)
@given(secret=bare_secret, bearer=token_like, anything=any_secret)
def test_key_value_query_and_bearer_secrets_never_reach_the_log(
    secret: str, bearer: str, anything: str
) -> None:
    out = io.StringIO()
    handler = logging.StreamHandler(out)
    handler.setFormatter(JsonLogFormatter())
    logger = logging.Logger("wattplan.test.bare")
    logger.addHandler(handler)
    query = f"code={quote(anything, safe='')}&state=s1&code_verifier={quote(anything, safe='')}"
    logger.info("refresh with refresh_token=%s done", secret)
    logger.info("callback GET /nomos/callback?%s", query)
    logger.info("sent Authorization: Bearer %s and bearer %s", bearer, bearer)
    logger.info("POST /oauth/token client_secret=%s&grant_type=refresh_token", secret)
    logger.info("db postgresql+psycopg://wattplan:%s@db/planner", quote(anything, safe=""))
    logger.info("x", extra={"url": f"https://hems.example/cb?access_token={secret}&a=1"})
    try:
        raise RuntimeError(f"refresh failed: client_secret={secret}")
    except RuntimeError:
        logger.exception("refresh failed")
    text = out.getvalue()
    for marker in ("Z9", "Q7", quote("\u00a7")):
        assert marker not in text
    lines = [json.loads(line) for line in text.splitlines()]
    assert lines[0]["msg"] == "refresh with refresh_token=[redacted] done"
    assert lines[1]["msg"] == (
        "callback GET /nomos/callback?code=[redacted]&state=s1&code_verifier=[redacted]"
    )
    assert lines[2]["msg"] == "sent Authorization: Bearer [redacted] and bearer [redacted]"
    assert lines[4]["msg"] == "db postgresql+psycopg://wattplan:[redacted]@db/planner"
    assert lines[5]["url"] == "https://hems.example/cb?access_token=[redacted]&a=1"
    assert lines[6]["error"] == "RuntimeError"
    assert "client_secret=[redacted]" in str(lines[6]["traceback"])


def test_the_redaction_filter_covers_text_logs_and_other_handlers() -> None:
    from wattplan._logging import RedactingFilter, TextLogFormatter

    out = io.StringIO()
    handler = logging.StreamHandler(out)
    handler.setFormatter(TextLogFormatter())
    handler.addFilter(RedactingFilter())
    logger = logging.Logger("wattplan.test.text")
    logger.addHandler(handler)
    logger.info("answer %s", '{"refresh_token": "rt_123"}', extra={"api_key": "k_1"})
    text = out.getvalue()
    assert "rt_123" not in text
    assert '{"refresh_token": "[redacted]"}' in text
    # Nomos's flat error body keeps its (non-secret) error code
    from wattplan._logging import redact

    assert redact('{"code": "UNAUTHORIZED", "message": "no"}') == (
        '{"code": "UNAUTHORIZED", "message": "no"}'
    )
    assert redact("status code: 500, token_type=bearer") == "status code: 500, token_type=bearer"


# -- start-up faults: one clear line naming the key, no traceback, no secret ------------------


def _run_planner(
    tmp_path: Path, database_url: str | None, **env: str
) -> subprocess.CompletedProcess[str]:
    config = tmp_path / "planner.yaml"
    url_line = "" if database_url is None else f"database_url: '{database_url}'\n"
    config.write_text(
        url_line
        + "http: null\ncustomers: [{id: c1, factory: 'wattplan.planner:demo_household'}]\n",
        encoding="utf-8",
    )
    environ = {k: v for k, v in os.environ.items() if not k.startswith("WATTPLAN_")} | {
        "WATTPLAN_CLIENT_ID": "hems",
        "WATTPLAN_DEVELOPMENT": "true",
        **env,
    }
    return subprocess.run(
        [sys.executable, "-m", "wattplan.cli", "run", "--config", str(config)],
        env=environ, capture_output=True, text=True, timeout=120,
    )  # fmt: skip


@pytest.mark.parametrize(
    ("where", "reason"),
    [
        ("under-a-file", "Not a directory"),
        ("a-directory", "unable to open database file"),
    ],
)
def test_run_on_an_impossible_sqlite_path_says_why_in_one_line(
    tmp_path: Path, where: str, reason: str
) -> None:
    (tmp_path / "a-file").write_text("not a folder")
    (tmp_path / "a-folder").mkdir()
    path = (
        tmp_path / "a-file" / "sub" / "planner.sqlite3"
        if where == "under-a-file"
        else (tmp_path / "a-folder")
    )
    done = _run_planner(tmp_path, f"sqlite:///{path}")
    assert done.returncode == 2, done.stderr
    assert "Traceback" not in done.stderr
    (line,) = done.stderr.strip().splitlines()
    assert line.startswith("wattplan: error: database_url: cannot open the plan store at sqlite:")
    assert reason in line


def test_an_unreachable_postgresql_names_the_setting_and_hides_the_password(
    tmp_path: Path,
) -> None:
    password = "pw-Secr3t-do-not-show"
    url = f"postgresql+psycopg://wattplan:{password}@127.0.0.1:1/planner"
    for done, key in (
        (_run_planner(tmp_path, url), "database_url"),
        (_run_planner(tmp_path, None, WATTPLAN_DATABASE_URL=url), "WATTPLAN_DATABASE_URL"),
    ):
        assert done.returncode == 2, done.stderr
        assert "Traceback" not in done.stderr
        assert password not in done.stderr + done.stdout
        (line,) = done.stderr.strip().splitlines()
        assert line.startswith(f"wattplan: error: {key}: cannot open the plan store at ")
        assert "wattplan:***@127.0.0.1:1/planner" in line
        assert "Connection refused" in line  # the driver's reason, not a bare class name
        assert not line.rstrip().endswith("OperationalError")


# -- the sandbox on a non-loopback address ---------------------------------------------------


def _sandbox(*args: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "wattplan.cli", "sandbox", "--port", "0", *args],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip


def test_the_sandbox_refuses_a_non_loopback_host_without_allow_remote() -> None:
    proc = _sandbox("--host", "0.0.0.0")  # noqa: S104 - refused before anything is bound
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 2
    assert "Traceback" not in err
    assert "--host 0.0.0.0 is not a loopback address" in err
    assert "--allow-remote" in err
    assert "development tool" not in out  # it never started serving


def _first_lines(proc: subprocess.Popen[str]) -> tuple[str, str]:
    assert proc.stdout is not None
    first = proc.stdout.readline()
    assert "development tool" in first, first
    port = first.rsplit(":", 1)[1].strip()
    lines = [proc.stdout.readline() for _ in range(2)]
    return f"http://127.0.0.1:{port}", first + "".join(lines)


@pytest.mark.parametrize("control", [False, True])
def test_a_remote_sandbox_serves_no_sign_in_shortcuts_unless_asked(control: bool) -> None:
    # bound to every address, but spoken to on loopback only
    proc = _sandbox("--host", "0.0.0.0", "--allow-remote", *(["--control"] if control else []))  # noqa: S104
    try:
        base_url, _ = _first_lines(proc)
        meta = httpx.get(base_url + "/.well-known/oauth-authorization-server", timeout=10)
        assert meta.status_code == 200
        approve = httpx.post(
            base_url + "/_sandbox/auto-approve", json={"email": "demo@example.com"}, timeout=10
        )
        code = httpx.get(
            base_url + "/_sandbox/one-time-code", params={"email": "demo@example.com"}, timeout=10
        )
        grants = httpx.get(base_url + "/_sandbox/grants", timeout=10)
        if control:
            assert approve.status_code == 200
            assert grants.status_code == 200
        else:
            # not served: the read API's authentication answers for the unknown path
            for answer in (approve, code, grants):
                assert answer.status_code in (401, 404)
    finally:
        proc.kill()
        _, err = proc.communicate(timeout=30)
    assert "NOT loopback" in err
    assert ("control endpoints (sign-in shortcuts) are reachable" in err) is control
