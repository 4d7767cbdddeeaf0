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
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx
import pytest
import sqlalchemy as sa
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


# -- schema migrations -------------------------------------------------------------------------

DATA = Path(__file__).resolve().parents[1] / "data"
# the key the fixtures' tokens were encrypted with (a test key, nothing else uses it)
LEGACY_KEY = "Xl9v5hO8yK7C2m5bJ9mVnS5oKf0Hq3aVh1rJ8tWq2zY="


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'wattplan.sqlite3'}"
    from tests.planner.conftest import POSTGRES_URL, require_service

    require_service("127.0.0.1", 5432, "PostgreSQL")
    return POSTGRES_URL


@pytest.fixture
def prefix() -> str:
    return f"m{uuid.uuid4().hex[:10]}_"


def _load_legacy(url: str, prefix: str) -> None:
    """A vault and a plan store exactly as wattplan 0.1.0 left them (its own DDL and rows)."""
    engine = sa.create_engine(url)
    dialect = engine.dialect.name
    sql = (DATA / f"legacy-0.1.0-{dialect}.sql").read_text(encoding="utf-8")
    sql = sql.replace("legacy_", prefix)
    raw = engine.raw_connection()
    try:
        if dialect == "sqlite":
            raw.driver_connection.executescript(sql)  # type: ignore[union-attr]
        else:
            with raw.cursor() as cursor:
                cursor.execute(sql)
            raw.commit()
    finally:
        raw.close()
        engine.dispose()


def _schema_diff(engine: sa.Engine, metadata: sa.MetaData) -> list[Any]:
    """What the database lacks or has beyond the model, for the model's tables only."""
    from alembic.autogenerate import compare_metadata
    from alembic.migration import MigrationContext

    ours = set(metadata.tables)

    def include_name(name: str | None, type_: str, _parents: Any) -> bool:
        return type_ != "table" or name in ours

    with engine.connect() as conn:
        context = MigrationContext.configure(
            conn, opts={"include_name": include_name, "compare_type": True}
        )
        return list(compare_metadata(context, metadata))


def test_a_database_of_the_previous_release_upgrades_and_keeps_its_data(
    database_url: str, prefix: str
) -> None:
    from wattplan import migrations
    from wattplan.auth import TokenCipher, TokenVault
    from wattplan.planner import PlanStore

    _load_legacy(database_url, prefix)
    vault = TokenVault(database_url, cipher=TokenCipher(LEGACY_KEY), table_prefix=prefix)
    store = PlanStore(database_url, table_prefix=prefix)
    try:
        with store.engine.connect() as conn:
            assert migrations.current(conn, "store", prefix, None) == migrations.head("store")
        grant = vault.get_grant(client_id="hems", customer_id="c1")  # migrates the vault
        with vault.engine.connect() as conn:
            assert migrations.current(conn, "vault", prefix, None) == migrations.head("vault")
        assert grant.token is not None
        assert grant.token.access_token.get_secret_value() == "at_legacy_1"
        assert grant.token.refresh_token is not None
        assert grant.token.refresh_token.get_secret_value() == "rt_legacy_1"
        assert (grant.version, grant.scope) == (1, "read:*")
        session = vault.consume_authorization_session(state="state-legacy")
        assert session.code_verifier == "v" * 50
        (plan,) = store.plan_history("c1")
        assert plan.document == {"status": "optimal", "cost_eur": 1.25}
        assert plan.prices.isna().sum() == 1
        assert store.device_state("c1").devices == {"car": {"soc_kwh": 12.5}}
        (status,) = store.statuses()
        assert (status.customer_id, status.health.value, status.latest_plan_id) == ("c1", "ok", 1)
        # and it goes on working: new rows next to the old ones
        assert (
            store.update_device_state("c1", {"car": {"soc_kwh": 13.0}}, now=plan.created_at).version
            == 2
        )
        assert grant.token is not None
        vault.save_grant(client_id="hems", customer_id="c2", token=grant.token)
        assert len(vault.list_grants()) == 2
        # the upgraded schema is the model's, nothing more, nothing less
        assert _schema_diff(store.engine, store._metadata) == []
        assert _schema_diff(vault.engine, vault._metadata) == []
    finally:
        vault.drop_tables()
        vault.close()
        store.drop_all()
        store.dispose()


def test_a_new_database_gets_the_model_schema_and_a_version(database_url: str, prefix: str) -> None:
    from wattplan import migrations
    from wattplan.auth import TokenCipher, TokenVault
    from wattplan.planner import PlanStore

    store = PlanStore(database_url, table_prefix=prefix)
    vault = TokenVault(database_url, cipher=TokenCipher(LEGACY_KEY), table_prefix=prefix)
    try:
        vault.create_tables()
        assert _schema_diff(store.engine, store._metadata) == []
        assert _schema_diff(vault.engine, vault._metadata) == []
        with store.engine.connect() as conn:
            assert migrations.current(conn, "store", prefix, None) == migrations.head("store")
            assert migrations.current(conn, "vault", prefix, None) == migrations.head("vault")
        # opening again is a no-op; dropping forgets the version, so a new open recreates
        PlanStore(database_url, table_prefix=prefix, engine=store.engine)
        store.drop_all()
        with store.engine.connect() as conn:
            assert migrations.current(conn, "store", prefix, None) is None
        store.create_all()
        assert store.count_plans() == 0
    finally:
        vault.drop_tables()
        vault.close()
        store.drop_all()
        store.dispose()


def test_migration_scripts_ship_in_the_wheel() -> None:
    import tomllib

    project = tomllib.loads((DATA.parents[1] / "pyproject.toml").read_text(encoding="utf-8"))
    shipped = project["tool"]["setuptools"]["package-data"]["wattplan"]
    assert "migrations/*/script.py.mako" in shipped
    # the scripts themselves are modules of importable packages (found by packages.find)
    import wattplan.migrations.store.versions
    import wattplan.migrations.vault.versions

    for package in (wattplan.migrations.store.versions, wattplan.migrations.vault.versions):
        assert any(Path(package.__file__).parent.glob("*_0001_baseline.py"))


_OPEN_AT_ONCE = """
import sys, time
from pathlib import Path
from wattplan.auth import TokenCipher, TokenVault
from wattplan.planner import PlanStore

url, prefix, go = sys.argv[1], sys.argv[2], Path(sys.argv[3])
Path(sys.argv[5]).touch()
while not go.exists():
    time.sleep(0.005)
PlanStore(url, table_prefix=prefix).dispose()
TokenVault(url, cipher=TokenCipher(sys.argv[4]), table_prefix=prefix).create_tables()
"""


def test_processes_that_open_a_new_database_together_migrate_it_once(
    database_url: str, prefix: str, tmp_path: Path
) -> None:
    from wattplan import migrations
    from wattplan.auth import TokenCipher, TokenVault
    from wattplan.planner import PlanStore

    go = tmp_path / "go"
    ready = [tmp_path / f"ready-{i}" for i in range(4)]
    procs = [
        subprocess.Popen(
            [
                sys.executable,
                "-c",
                _OPEN_AT_ONCE,
                database_url,
                prefix,
                str(go),
                LEGACY_KEY,
                str(ready[i]),
            ],
            stderr=subprocess.PIPE,
            text=True,
        )
        for i in range(4)
    ]
    try:
        while not all(r.exists() for r in ready) and all(p.poll() is None for p in procs):
            time.sleep(0.05)
        go.touch()  # all imported: they open the database on the same signal
        errors = [p.communicate(timeout=180)[1] for p in procs]
        assert [p.returncode for p in procs] == [0, 0, 0, 0], errors
        engine = sa.create_engine(database_url)
        with engine.connect() as conn:
            for store in ("store", "vault"):
                table = sa.table(f"{prefix}{store}_alembic", sa.column("version_num"))
                rows = conn.execute(sa.select(table.c.version_num)).scalars().all()
                assert rows == [migrations.head(store)]  # type: ignore[arg-type]
        engine.dispose()
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
        TokenVault(database_url, cipher=TokenCipher(LEGACY_KEY), table_prefix=prefix).drop_tables()
        PlanStore(database_url, table_prefix=prefix).drop_all()
