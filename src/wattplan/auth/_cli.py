"""``wattplan login``: connect a customer's Nomos (or sandbox) account from the terminal."""

from __future__ import annotations

import argparse
import logging
import webbrowser
from typing import Any

from pydantic import SecretStr

from wattplan.exceptions import ConfigurationError

__all__ = ["register"]

logger = logging.getLogger(__name__)

SANDBOX_URL = "http://127.0.0.1:8790"


def register(subparsers: Any) -> None:
    """Add the ``login`` subcommand."""
    parser = subparsers.add_parser(
        "login",
        help="connect a Nomos account (OAuth consent in the browser) and store the grant",
        description=(
            "Runs the OAuth authorization-code flow with PKCE through a loopback redirect "
            "(http://127.0.0.1:PORT/callback, which must be registered for the client) and "
            "stores the grant, encrypted, in the token vault (WATTPLAN_DATABASE_URL, "
            "WATTPLAN_ENCRYPTION_KEY). The client comes from WATTPLAN_CLIENT_ID and "
            "WATTPLAN_CLIENT_SECRET; --sandbox uses the sandbox's public development client."
        ),
    )
    parser.add_argument(
        "--sandbox",
        action="store_true",
        help=f"log in at a running `wattplan sandbox` (default {SANDBOX_URL}) "
        "with its development client",
    )
    parser.add_argument(
        "--base-url", help="authorization server (default: WATTPLAN_NOMOS_BASE_URL)"
    )
    parser.add_argument("--customer", default="default", help="your key for this customer")
    parser.add_argument("--scope", default=None, help="scope to request (default: the server's)")
    parser.add_argument(
        "--port", type=int, default=8765, help="loopback port of the redirect (0: a free one)"
    )
    parser.add_argument(
        "--no-browser", action="store_true", help="print the URL instead of opening a browser"
    )
    parser.add_argument("--timeout", type=float, default=300.0, help="seconds to wait (300)")
    parser.set_defaults(func=_run)


def _run(args: argparse.Namespace) -> int:
    from wattplan.auth._crypto import DEVELOPMENT_ENCRYPTION_KEY, TokenCipher
    from wattplan.auth._flow import OAuthConfig
    from wattplan.auth._login import run_login
    from wattplan.auth._manager import TokenManager
    from wattplan.auth._vault import TokenVault
    from wattplan.settings import Settings

    settings = Settings()
    if args.sandbox:
        from wattplan.sandbox import DEFAULT_CLIENT_ID, DEFAULT_CLIENT_SECRET

        base_url = args.base_url or SANDBOX_URL
        client_id: str | None = settings.client_id or DEFAULT_CLIENT_ID
        secret: SecretStr | None = settings.client_secret or SecretStr(DEFAULT_CLIENT_SECRET)
        if settings.encryption_key is None:
            logger.warning("sandbox login without WATTPLAN_ENCRYPTION_KEY: public development key")
            settings = settings.model_copy(update={"encryption_key": DEVELOPMENT_ENCRYPTION_KEY})
    else:
        base_url = args.base_url or settings.nomos_base_url
        client_id, secret = settings.client_id, settings.client_secret
    if not client_id:
        raise ConfigurationError("set WATTPLAN_CLIENT_ID (and WATTPLAN_CLIENT_SECRET)")
    config = OAuthConfig.for_base_url(
        base_url, client_id=client_id, client_secret=secret, scope=args.scope
    )
    vault = TokenVault(settings.database_url, cipher=TokenCipher.from_settings(settings))
    manager = TokenManager(config=config, vault=vault)

    def show(url: str) -> None:
        print(f"Open this address to connect the account:\n\n  {url}\n", flush=True)
        if not args.no_browser:
            webbrowser.open(url)

    try:
        grant = run_login(
            manager,
            customer_id=args.customer,
            open_url=show,
            port=args.port,
            timeout_s=args.timeout,
        )
    finally:
        manager.close()
        vault.close()
    expires = grant.expires_at.isoformat() if grant.expires_at else "unknown"
    print(
        f"Connected: client {grant.client_id}, customer {grant.customer_id}, "
        f"scope {grant.scope or '(server default)'}, access token valid until {expires}."
    )
    return 0
