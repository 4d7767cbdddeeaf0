"""A separate process that uses a grant: ``python -m tests.auth._worker '<json>'``.

Modes: ``burst`` (print ``ready``, wait for a line on stdin, then ``threads`` requests
at once; prints one JSON line with the status codes and errors) and
``crash_after_token_response`` (refresh, and die with os._exit as soon as the token
answer has arrived, before it is committed) and ``hang_before_send`` (refresh, print
``sending`` when the token request is about to be sent, and hang there, as a connection
that does not come up would, until the test kills the process).
"""

from __future__ import annotations

import json
import os
import sys
import threading
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx

from wattplan.auth import OAuthConfig, TokenCipher, TokenManager, TokenVault


class _DieAfterTokenResponse(httpx.BaseTransport):
    def __init__(self) -> None:
        self._inner = httpx.HTTPTransport()

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        response = self._inner.handle_request(request)
        if request.url.path.endswith("/token"):
            response.read()
            os._exit(137)  # killed between the token answer and the commit
        return response


class _HangBeforeSend(httpx.HTTPTransport):
    def handle_request(self, request: httpx.Request) -> httpx.Response:
        if request.url.path.endswith("/token"):
            print("sending", flush=True)
            sys.stdin.readline()  # the test kills the process meanwhile
        return super().handle_request(request)


def main(spec: dict[str, Any]) -> int:
    offset = timedelta(seconds=spec.get("clock_offset_s", 0.0))  # the sandbox's clock
    vault = TokenVault(
        spec["database_url"],
        cipher=TokenCipher(spec["encryption_key"]),
        table_prefix=spec["table_prefix"],
        clock=lambda: datetime.now(UTC) + offset,
    )
    config = OAuthConfig(
        client_id=spec["client_id"],
        client_secret=spec["client_secret"],
        authorization_endpoint=spec["token_endpoint"],
        token_endpoint=spec["token_endpoint"],
    )
    if spec["mode"] == "crash_after_token_response":
        manager = TokenManager(
            config=config, vault=vault, http=httpx.Client(transport=_DieAfterTokenResponse())
        )
        manager.get_token(spec["customer_id"])
        print(json.dumps({"survived": True}))
        return 1
    if spec["mode"] == "hang_before_send":
        manager = TokenManager(
            config=config, vault=vault, http=httpx.Client(transport=_HangBeforeSend())
        )
        manager.get_token(spec["customer_id"])
        print(json.dumps({"survived": True}))
        return 1
    manager = TokenManager(
        config=config, vault=vault, single_flight=spec.get("single_flight", True)
    )
    n = spec["threads"]
    # clients are built before the start (building one takes milliseconds, which would
    # stagger the threads); then all threads wait at a barrier and go at once
    clients = [httpx.Client(auth=manager.auth(spec["customer_id"]), timeout=60) for _ in range(n)]
    barrier = threading.Barrier(n)
    results: list[Any] = []
    lock = threading.Lock()

    def one(client: httpx.Client) -> None:
        barrier.wait()
        try:
            status: Any = client.get(spec["api_url"]).status_code
        except Exception as exc:
            status = type(exc).__name__
        with lock:
            results.append(status)

    threads = [threading.Thread(target=one, args=(c,)) for c in clients]
    print("ready", flush=True)  # the parent answers "go" once every process is ready
    sys.stdin.readline()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    print(json.dumps({"results": results}))
    return 0


if __name__ == "__main__":
    sys.exit(main(json.loads(sys.argv[1])))
