"""Auth modes for real: OAuth2 client credentials against the demo's token endpoint, local JWTs
(HS256 and RS256) the demo is told to trust, the fail-fast probe, a provider outage mid-run, and
no secret or token in any output or results file."""

from __future__ import annotations

import json
import re
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path

import pytest

from loadstack.auth import oauth2
from loadstack.auth.tokens import AuthError, Token, TokenCache
from loadstack_demo.process import demo_platform
from tests.helpers import loadstack, rows_by_name, summary, write_profile

JWT = re.compile(r"eyJ[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{8,}")
CLIENT_SECRET = "cs-7f3a9c2e-loadstack-test-secret"
JWT_SECRET = "jwt-51b8d04e-loadstack-test-secret"


def _leaks(texts: list[str], run_dir: Path, secrets: list[str]) -> list[str]:
    """Every place a secret or a bearer token shows up: captured output and every results file."""
    found = []
    sources = {f"output[{i}]": t for i, t in enumerate(texts)}
    for path in run_dir.rglob("*"):
        if path.is_file():
            sources[str(path)] = path.read_text(errors="replace")
    for where, text in sources.items():
        for value in secrets:
            if value in text:
                found.append(f"{where}: {value[:6]}…")
        if JWT.search(text):
            found.append(f"{where}: a JWT")
    return found


# -- the token cache (pure logic, real threads) ---------------------------------------------------


def test_one_fetch_for_many_concurrent_callers() -> None:
    fetches = []

    def fetch() -> Token:
        fetches.append(time.monotonic())
        time.sleep(0.2)  # a slow provider: every caller arrives while the first fetch is running
        return Token("t1", time.monotonic() + 60, 60)

    cache = TokenCache(fetch, name="t")
    got: list[str] = []
    threads = [threading.Thread(target=lambda: got.append(cache.get())) for _ in range(20)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert got == ["t1"] * 20
    assert len(fetches) == 1


def test_refresh_before_expiry_does_not_block_the_others() -> None:
    tokens = iter(["old", "new"])
    fetching, release = threading.Event(), threading.Event()

    def fetch() -> Token:
        value = next(tokens)
        if value == "new":
            fetching.set()
            release.wait(60)  # the refresh hangs until we let it go
        # "old" is valid for a minute but due at once (its margin is more than what is left of its
        # life): no sleeping into a due-but-valid moment that a busy machine could overshoot.
        return Token(value, time.monotonic() + 600, 4000 if value == "old" else 600)

    cache = TokenCache(fetch, name="t", margin=700)
    assert cache.get() == "old"
    refresher = threading.Thread(target=cache.get)
    refresher.start()
    assert fetching.wait(60), "the refresh started"
    # A caller that waited for the refresh would get "new" (after it is released), not "old".
    assert cache.get() == "old", "still valid: served while the refresh runs"
    release.set()
    refresher.join()
    assert cache.get() == "new"


def test_failed_fetch_backs_off_and_reports_once() -> None:
    reports = []

    def fetch() -> Token:
        raise AuthError("token endpoint answered 503")

    cache = TokenCache(fetch, name="t", report=lambda *a: reports.append(a))
    for _ in range(5):
        with pytest.raises(AuthError, match="503"):
            cache.get()
    assert cache.fetches == 1, "callers within the back-off reuse the failure"
    assert len(reports) == 1 and isinstance(reports[0][3], AuthError)


# -- the demo platform's token endpoint, over HTTP ----------------------------------------------------


def _post_form(url: str, form: dict[str, str], headers: dict[str, str] | None = None) -> tuple[int, dict]:
    request = urllib.request.Request(url, data=urllib.parse.urlencode(form).encode(), headers=headers or {})
    try:
        with urllib.request.urlopen(request, timeout=5) as resp:
            return resp.status, json.load(resp)
    except urllib.error.HTTPError as exc:
        return exc.code, json.load(exc)


def _get(url: str, token: str) -> tuple[int, dict]:
    request = urllib.request.Request(url, headers={"Authorization": f"Bearer {token}"})
    try:
        with urllib.request.urlopen(request, timeout=5) as resp:
            return resp.status, json.load(resp)
    except urllib.error.HTTPError as exc:
        return exc.code, json.load(exc)


def test_demo_token_endpoint_speaks_client_credentials() -> None:
    env = {"LOADSTACK_DEMO_OAUTH_CLIENT_ID": "svc", "LOADSTACK_DEMO_OAUTH_CLIENT_SECRET": CLIENT_SECRET}
    with demo_platform(env) as url:
        token_url = f"{url}/oauth/token"
        status, body = _post_form(
            token_url,
            {"grant_type": "client_credentials", "client_id": "svc", "client_secret": CLIENT_SECRET},
        )
        assert status == 200 and body["token_type"] == "bearer" and body["expires_in"] > 0
        assert _get(f"{url}/api/v1/auth/me", body["access_token"])[1]["kind"] == "client"
        status, body = _post_form(
            token_url, {"grant_type": "client_credentials", "client_id": "svc", "client_secret": "no"}
        )
        assert (status, body["error"]) == (401, "invalid_client")
        status, body = _post_form(token_url, {"grant_type": "password"})
        assert (status, body["error"]) == (400, "unsupported_grant_type")
        # loadstack's own client, HTTP Basic client authentication (the default)
        settings = {"token_url": token_url, "client_id": "svc", "client_auth": "basic", "scope": "orders"}
        token = oauth2.fetch(settings, {"LOADSTACK_OAUTH_CLIENT_SECRET": CLIENT_SECRET})
        assert token.lifetime > 0 and _get(f"{url}/api/v1/orders", token.value)[0] == 200
        with pytest.raises(AuthError, match=r"401 \(invalid_client"):
            oauth2.fetch(settings, {"LOADSTACK_OAUTH_CLIENT_SECRET": "wrong"})
        assert _get(f"{url}/api/v1/orders", "not-a-token")[0] == 401


# -- real runs ---------------------------------------------------------------------------------------


def _run(tmp_path: Path, run_id: str, *args: str, env: dict[str, str], **profile: object):
    fields = {"locustfile": "mixed_users.py", "users": 4, "run_time": "10s", "workers": 2, **profile}
    locustfile = fields.pop("locustfile")
    path = write_profile(
        tmp_path / f"{run_id}.yml",
        locustfile=str(Path(__file__).parents[1] / "load-testing" / "locustfiles" / str(locustfile)),
        **fields,
    )
    return loadstack(
        "run", "--profile", str(path), "--run-id", run_id, "--results-dir", str(tmp_path), *args, env=env
    )


@pytest.mark.slow
def test_oauth2_run_shares_one_cached_token_per_process_and_leaks_nothing(tmp_path: Path) -> None:
    env = {"LOADSTACK_OAUTH_CLIENT_SECRET": CLIENT_SECRET, "LOADSTACK_DEMO_OAUTH_TOKEN_TTL": "4"}
    result = _run(
        tmp_path, "oauth-e2e", "--auth-mode", "oauth2", env=env, locustfile="http_users.py", users=20,
        spawn_rate=20,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr
    assert "auth: oauth2 accepted by the target" in result.stdout
    doc = summary(tmp_path, "oauth-e2e")
    rows = rows_by_name(doc)
    auth = rows[("AUTH", "oauth2 token")]
    http = sum(r["count"] for (kind, _), r in rows.items() if kind in ("GET", "POST", "PUT"))
    assert doc["totals"]["failures"] == 0, doc["errors"]
    # 20 users on 2 worker processes, 4 s tokens refreshed after 3 s, ~10 s: a handful of fetches
    # (one per process per refresh), not one per user or per request.
    assert 2 <= auth["count"] <= 12 and http > 3 * auth["count"], (auth["count"], http)
    assert not _leaks([result.stdout, result.stderr], tmp_path / "oauth-e2e", [CLIENT_SECRET])


@pytest.mark.slow
def test_local_hs256_run_is_accepted_and_leaks_nothing(tmp_path: Path) -> None:
    env = {"LOADSTACK_JWT_SECRET": JWT_SECRET, "LOADSTACK_JWT_TTL": "5s"}
    result = _run(
        tmp_path, "local-e2e", "--auth-mode", "local", env=env, locustfile="http_users.py", workers=1
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "auth: local accepted by the target" in result.stdout
    doc = summary(tmp_path, "local-e2e")
    assert doc["totals"]["failures"] == 0, doc["errors"]
    assert rows_by_name(doc)[("POST", "/api/v1/orders")]["count"] > 0
    assert not any(r["type"] == "AUTH" for r in doc["requests"]), "local signing is not a request"
    metadata = json.loads((tmp_path / "local-e2e" / "run-metadata.json").read_text())
    assert metadata["environment"]["LOADSTACK_JWT_SECRET"] == "***"
    assert not _leaks([result.stdout, result.stderr], tmp_path / "local-e2e", [JWT_SECRET])


def _rsa_pair(tmp_path: Path, name: str) -> tuple[Path, Path]:
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import rsa

    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    private = tmp_path / f"{name}.pem"
    public = tmp_path / f"{name}.pub.pem"
    private.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
    )
    public.write_bytes(
        key.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
    )
    return private, public


def test_local_rs256_accepted_by_the_trusting_service_and_refused_by_another(tmp_path: Path) -> None:
    private, public = _rsa_pair(tmp_path, "signer")
    _, other_public = _rsa_pair(tmp_path, "other")
    client = {"LOADSTACK_JWT_ALGORITHM": "RS256", "LOADSTACK_JWT_KEY_FILE": str(private)}
    # The profile names its key relative to itself; the check runs from another directory.
    (tmp_path / "profiles").mkdir()
    profile = write_profile(
        tmp_path / "profiles" / "rs.yml",
        auth={"mode": "local", "algorithm": "RS256", "key_file": "../signer.pem"},
    )
    with demo_platform({"LOADSTACK_DEMO_LOCAL_JWT_KEY_FILE": str(public)}) as url:
        ok = loadstack("auth", "check", "--auth-mode", "local", "--host", url, env=client)
        assert ok.returncode == 0, ok.stdout + ok.stderr
        assert "accepted by the target (GET /api/v1/auth/me answered 200)" in ok.stdout
        relative = loadstack("auth", "check", "--profile", str(profile), "--host", url)
        assert relative.returncode == 0, relative.stdout + relative.stderr
        assert "answered 200" in relative.stdout
    with demo_platform({"LOADSTACK_DEMO_LOCAL_JWT_KEY_FILE": str(other_public)}) as url:
        refused = loadstack("auth", "check", "--auth-mode", "local", "--host", url, env=client)
        assert refused.returncode == 2
        assert "does not accept locally signed tokens" in refused.stderr
    assert "PRIVATE KEY" not in ok.stdout + ok.stderr + refused.stdout + refused.stderr


def test_run_fails_fast_when_the_target_rejects_local_tokens(tmp_path: Path) -> None:
    with demo_platform({}) as url:  # trusts no local signer
        result = _run(
            tmp_path, "local-reject", "--auth-mode", "local", "--host", url,
            env={"LOADSTACK_JWT_SECRET": JWT_SECRET}, locustfile="http_users.py", workers=1,
        )  # fmt: skip
    assert result.returncode == 2, result.stdout + result.stderr
    assert f"the service at {url} does not accept locally signed tokens" in result.stderr
    assert "GET /api/v1/auth/me answered 401" in result.stderr
    assert not (tmp_path / "local-reject" / "summary.json").exists(), "no load was started"
    assert JWT_SECRET not in result.stdout + result.stderr


@pytest.mark.slow
def test_provider_outage_mid_run_is_a_clear_failure_not_a_crash(tmp_path: Path) -> None:
    # The start-up check and the worker get one token each; refreshes after that get 503.
    env = {
        "LOADSTACK_OAUTH_CLIENT_SECRET": CLIENT_SECRET,
        "LOADSTACK_DEMO_OAUTH_TOKEN_TTL": "2",
        "LOADSTACK_DEMO_OAUTH_FAIL_AFTER": "2",
    }
    result = _run(
        tmp_path, "oauth-outage", "--auth-mode", "oauth2", env=env, locustfile="http_users.py", workers=1,
        run_time="9s",
    )  # fmt: skip
    assert result.returncode == 1, result.stdout + result.stderr
    doc = summary(tmp_path, "oauth-outage")
    auth = rows_by_name(doc)[("AUTH", "oauth2 token")]
    assert auth["failures"] >= 1
    assert auth["failures"] <= 6, "back-off: the provider is not hammered"
    messages = " ".join(e["error"] for e in doc["errors"] if e["name"] == "oauth2 token")
    assert "503" in messages and "temporarily_unavailable" in messages
    assert doc["totals"]["count"] > 3 * auth["count"], "users kept running"
    for log in (tmp_path / "oauth-outage" / "logs").glob("*.log"):
        assert "Traceback" not in log.read_text(), log


def test_bad_auth_settings_are_bad_input(tmp_path: Path) -> None:
    with demo_platform({}) as url:
        result = _run(tmp_path, "no-url", "--auth-mode", "oauth2", "--host", url, env={}, workers=1)
    assert result.returncode == 2
    assert "token_url missing" in result.stderr
    profile = write_profile(tmp_path / "secret.yml", auth={"mode": "oauth2", "client_secret": "hunter22"})
    result = loadstack("run", "--profile", str(profile), "--results-dir", str(tmp_path))
    assert result.returncode == 2
    assert "secrets do not belong in profiles" in result.stderr and "hunter22" not in result.stderr
    result = loadstack("run", "--profile", str(profile), "--auth-mode", "kerberos")
    assert result.returncode == 2
