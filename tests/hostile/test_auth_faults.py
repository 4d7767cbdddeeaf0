"""Hostile signature headers and odd client credentials.

Each case here broke something before: a non-ASCII signature raised instead of failing the
check, and the OAuth client and the Nomos client encoded Basic credentials differently.
Crashes and database blips during a refresh and copied vaults are in
``tests/auth/test_refresh_faults.py`` (they need the auth fixtures).
"""

from __future__ import annotations

import base64
from collections.abc import Callable
from datetime import UTC, datetime
from urllib.parse import quote_plus

import httpx
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import SecretStr

from wattplan._basic_auth import parse_basic_auth
from wattplan.auth import OAuthConfig, build_client_credentials_request
from wattplan.nomos import ClientCredentials, basic_auth_header
from wattplan.planner.sinks import sign_payload, verify_signature
from wattplan.sandbox import OAuthClient, RunningSandbox, SandboxConfig

NOW = datetime(2026, 1, 20, 12, 0, tzinfo=UTC)
SECRET = "whsec-test"


@settings(max_examples=300, deadline=None)
@given(header=st.text(), body=st.binary(max_size=64))
def test_verify_signature_answers_false_for_any_text(header: str, body: bytes) -> None:
    assert verify_signature(SECRET, header, body, now=NOW) is False


@settings(max_examples=200, deadline=None)
@given(signature=st.text(min_size=1), digits=st.text("0123456789", min_size=1, max_size=5000))
def test_verify_signature_with_hostile_parts_is_false_not_an_error(
    signature: str, digits: str
) -> None:
    ts = int(NOW.timestamp())
    assert verify_signature(SECRET, f"t={ts},v1={signature}", b"{}", now=NOW) is False
    assert verify_signature(SECRET, f"t={digits},v1=00", b"{}", now=NOW) is False
    # digits of another script are not a timestamp
    arabic = str(ts).translate(str.maketrans("0123456789", "٠١٢٣٤٥٦٧٨٩"))
    good = sign_payload(SECRET, b"{}", timestamp=ts)
    assert verify_signature(SECRET, good, b"{}", now=NOW)
    assert not verify_signature(SECRET, good.replace(f"t={ts}", f"t={arabic}"), b"{}", now=NOW)


# -- one Basic encoder (RFC 6749 §2.3.1), and the sandbox decodes what it encodes ----------

ODD_CREDENTIALS = [
    ("my app", "se cret"),
    ("my+app", "se+cret"),
    ("app:1", "s:e:c"),
    ("100%app", "50%%"),
    ("äpp-ñ", "geheim-ß-€"),
]


@pytest.mark.parametrize(("client_id", "secret"), ODD_CREDENTIALS)
def test_one_basic_encoder_form_encodes_id_and_secret(client_id: str, secret: str) -> None:
    config = OAuthConfig(
        client_id=client_id,
        client_secret=SecretStr(secret),
        authorization_endpoint="https://as.test/authorize",
        token_endpoint="https://as.test/token",
    )
    header = build_client_credentials_request(config).headers["Authorization"]
    assert header == basic_auth_header(client_id, secret)  # the auth and nomos layers agree
    raw = base64.b64decode(header.removeprefix("Basic ")).decode("ascii")
    assert raw == f"{quote_plus(client_id)}:{quote_plus(secret)}"  # space is "+", not "%20"
    assert parse_basic_auth(header.removeprefix("Basic ")) == (client_id, secret)


def test_odd_client_credentials_authenticate_at_the_sandbox(
    sandbox_factory: Callable[..., RunningSandbox],
) -> None:
    clients = tuple(
        OAuthClient(client_id=c, client_secret=s, redirect_uris=("http://127.0.0.1/cb",))
        for c, s in ODD_CREDENTIALS
    )
    sandbox = sandbox_factory(SandboxConfig(clients=clients))
    token_url = sandbox.url("/oauth/token")
    for client_id, secret in ODD_CREDENTIALS:
        # the auth layer's token request ...
        config = OAuthConfig(
            client_id=client_id,
            client_secret=SecretStr(secret),
            authorization_endpoint=sandbox.url("/oauth/authorize"),
            token_endpoint=token_url,
        )
        request = build_client_credentials_request(config)
        answer = httpx.post(request.url, headers=dict(request.headers), data=dict(request.data))
        assert answer.status_code == 200, (client_id, answer.text)
        # ... and the Nomos client's client-credentials auth
        auth = ClientCredentials(client_id=client_id, client_secret=secret, token_url=token_url)
        with httpx.Client(auth=auth) as http:
            assert http.get(sandbox.url("/subscriptions")).status_code != 401, client_id
        # "+" and " " are different characters once decoded: "se+cret" is not "se cret"
        if " " in secret:
            wrong = basic_auth_header(client_id, secret.replace(" ", "+"))
            refused = httpx.post(
                token_url,
                headers={"Authorization": wrong},
                data={"grant_type": "client_credentials"},
            )
            assert refused.status_code == 401
    served = sandbox.state.counters["client_credentials_grants_served"]
    assert served >= len(ODD_CREDENTIALS)
