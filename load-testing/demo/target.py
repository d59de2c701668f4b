"""The demo platform as a run's target: everything a launcher needs to know about it, in one place.

What makes the demo trust the run's credentials (a client secret or a JWT
signing secret, made up when nobody gave one), how it is started natively
(``loadstack demo serve`` and, when it stores to the real backends, its
pipeline consumer) or in the compose stack (services ``target`` and
``consumer``), and what it does with the run's messages once the run has ended (its consumer drops them).
"""

from __future__ import annotations

import json
import secrets
import sys
from dataclasses import dataclass

from loadstack import safety
from loadstack.profiles import RunSettings
from loadstack.settings import Settings, current
from loadstack.targets import Process, Target

DEFAULT_CLIENT_ID = "loadstack"


@dataclass
class DemoTarget(Target):
    name: str = "demo"
    compose_services: tuple[str, ...] = ("target", "consumer")
    compose_url: str | None = "http://target:8000"
    # Where the demo stores rows tagged with the caller's run id (backend_store.SCHEMA).
    run_tables: tuple[str, ...] = ("demo_users", "demo_orders", "demo_payments")
    note: str = ""

    def prepare(self, run: RunSettings, config: Settings) -> None:
        auth = run.auth
        if auth.mode == "oauth2":
            client_id = auth.client_id or DEFAULT_CLIENT_ID
            secret = config.secret("oauth_client_secret") or secrets.token_urlsafe(32)
            self.shared_env = {
                "LOADSTACK_OAUTH_CLIENT_SECRET": secret,
                "LOADSTACK_DEMO_OAUTH_CLIENT_ID": client_id,
                "LOADSTACK_DEMO_OAUTH_CLIENT_SECRET": secret,
            }
        elif auth.mode == "local":
            self.shared_env = {"LOADSTACK_DEMO_LOCAL_JWT_ISSUER": auth.issuer}
            if auth.algorithm == "RS256" and auth.key_file:
                self.shared_env["LOADSTACK_DEMO_LOCAL_JWT_KEY_FILE"] = auth.key_file
            else:
                secret = config.secret("jwt_secret") or secrets.token_urlsafe(32)
                self.shared_env |= {"LOADSTACK_JWT_SECRET": secret, "LOADSTACK_DEMO_LOCAL_JWT_SECRET": secret}

    def processes(self, port: int) -> list[Process]:
        argv = [
            sys.executable,
            "-m",
            "loadstack",
            "demo",
            "serve",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
        ]
        return [Process("demo", argv, health_url=f"http://127.0.0.1:{port}/health")]

    def companions(self, url: str) -> list[Process]:
        """The pipeline consumer, when the demo stores to PostgreSQL/RabbitMQ/Redis."""
        with safety.urlopen(f"{url}/api/status", allow_remote=False, timeout=5) as resp:
            status = json.load(resp)
        self.note = f"demo platform: {url} (store: {status['store']} — {status.get('store_reason', '')}; logs/demo.log)"
        if status["store"] == "backend" and current().demo_consumer:
            self.note += "\ndemo pipeline consumer started (logs/consumer.log)"
            return [Process("consumer", [sys.executable, "-m", "loadstack", "demo", "consumer"])]
        return []

    def settle(self, run: RunSettings, url: str) -> RunSettings:
        auth = run.auth
        if auth.mode == "oauth2":
            auth = auth.model_copy(
                update={
                    "client_id": auth.client_id or DEFAULT_CLIENT_ID,
                    "token_url": auth.token_url or f"{url}/oauth/token",
                }
            )
        return self.declare_tables(run).model_copy(update={"host": url, "auth": auth})

    def describe(self, url: str) -> str:
        return self.note or f"demo platform: {url}"
