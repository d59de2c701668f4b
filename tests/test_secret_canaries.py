"""Secret canaries: every input carries a unique secret; after a full session none appears anywhere.

A run (local JWT auth, a DSN with a password, an API token and a profile `env:` secret, a chain
that makes the target echo a secret back into a failure message), then `report`, `compare`,
`import har` (a recording with an API key), `inspect redis` and `inspect rabbitmq` (stored
secrets).  Afterwards no canary may be in any file under the results or generated folders, in
any log, or in anything printed.

Issue 27's forms too: the DSN is a libpq keyword DSN whose password holds , \\ ' " & } and which
has an `sslpassword=`; a second chain makes the target echo `refresh_token=`, `apikey=`, `key=`,
`sig=`, `session=`, `pwd=` and `?password=` values that nothing but their shape reveals (they
are in no variable); a profile with a numeric `LOADSTACK_JWT_SECRET` is refused without echoing it.
"""

from __future__ import annotations

import json
import secrets
from pathlib import Path

import kombu
import pytest
import redis

from loadstack.processes import free_port
from loadstack_demo.process import demo_platform
from tests.helpers import LOCUSTFILES, loadstack, write_profile

pytestmark = pytest.mark.slow


def _canary(kind: str) -> str:
    return f"canary{kind}{secrets.token_hex(6)}"


def test_no_canary_secret_is_written_or_printed(tmp_path: Path) -> None:
    canary = {
        kind: _canary(kind)
        for kind in (
            *("dsnpw", "apitoken", "jwtsecret", "claim", "profileenv", "harkey", "redisval", "amqpval"),
            *("sslpw", "shaped"),
            *(
                "harbody",
                "graphql",
                "jwtkey",
                "sesskey",
            ),  # issue 27: text bodies, JSON strings, jwt:/PHPSESSID:
        )
    }
    canary["jwtnumber"] = str(10**14 + secrets.randbelow(9 * 10**14))
    results, generated = tmp_path / "results", tmp_path / "generated"
    generated.mkdir()
    chain = generated / "leaky.yml"
    chain.write_text(
        "name: leaky\n"
        "steps:\n"
        "  - name: echo\n"
        "    http: {method: POST, path: /api/v1/forms/echo, form: {note: '{{ env.SERVICE_TOKEN }}'}}\n"
        "    expect: {json: {'$.fields.note': 'something else'}}\n"  # fails, showing what it observed
    )
    c = canary["shaped"]
    shaped = generated / "shaped.yml"
    shaped.write_text(
        "name: shaped\n"
        "steps:\n"
        "  - name: echo\n"
        "    http: {method: POST, path: /api/v1/forms/echo, form: {note: "
        f"'refresh_token={c}1&apikey={c}2&key={c}3&sig={c}4&session={c}5&pwd={c}6 "
        f"redis://127.0.0.1:6379/0?password=a,{c}7'}}}}\n"
        "    expect: {json: {'$.fields.note': 'something else'}}\n"
    )
    profile = write_profile(
        tmp_path / "canary.yml",
        locustfile=str(LOCUSTFILES / "chain_users.py"),
        user_classes={"ConfiguredChainUser": 1},
        chains=[{"path": str(chain)}, {"path": str(shaped)}],
        users=2,
        run_time="6s",
        wait_time={"min": 0.1, "max": 0.2},
        env={"SERVICE_TOKEN": canary["profileenv"]},
        auth={"mode": "local", "claims": {"tenant": canary["claim"]}},
    )
    env = {
        # A keyword DSN (the local server trusts, so the passwords are never checked).
        "LOADSTACK_POSTGRES_DSN": "host=127.0.0.1 port=5432 dbname=test user=postgres "
        f"password=a,b\\\\c'd\"e&f}}{canary['dsnpw']} sslpassword={canary['sslpw']}",
        "LOADSTACK_API_TOKEN": canary["apitoken"],
        "LOADSTACK_JWT_SECRET": canary["jwtsecret"],
        "LOADSTACK_METRICS_PORT": str(free_port()),
    }
    outputs = []
    with demo_platform({"LOADSTACK_DEMO_LOCAL_JWT_SECRET": canary["jwtsecret"]}) as url:
        for run_id in ("canary-1", "canary-2"):
            run = loadstack(
                "run", "--profile", str(profile), "--host", url, "--workers", "1", "--run-id", run_id,
                "--results-dir", str(results), env=env,
            )  # fmt: skip
            outputs.append(run)
            assert run.returncode == 1, run.stdout[-3000:] + run.stderr[-3000:]  # the echo step fails
            assert (results / run_id / "summary.json").exists(), run.stdout[-3000:] + run.stderr[-3000:]
    doc = json.loads((results / "canary-1" / "summary.json").read_text())
    assert any(e["name"] == "leaky/echo" for e in doc["errors"]), "the failure that would show the secret"
    assert any(e["name"] == "shaped/echo" for e in doc["errors"]), "the failure that shows shaped secrets"

    numeric = generated / "numeric.yml"
    numeric.write_text(
        f"name: numeric\ndescription: d\nlocustfile: {LOCUSTFILES / 'mixed_users.py'}\nusers: 1\n"
        f"spawn_rate: 1\nrun_time: 1s\nenv:\n  LOADSTACK_JWT_SECRET: {canary['jwtnumber']}\n"
    )
    refused = loadstack("profile", "show", str(numeric))
    assert refused.returncode == 2 and "LOADSTACK_JWT_SECRET" in refused.stderr, refused.stderr

    outputs.append(loadstack("report", "--results-dir", str(results), "--output", str(generated / "r.html")))
    outputs.append(loadstack("compare", "canary-2", "--baseline", "canary-1", "--results-dir", str(results)))

    har = generated / "session.har"
    har.write_text(
        json.dumps(
            {
                "log": {
                    "version": "1.2",
                    "creator": {"name": "test", "version": "1"},
                    "entries": [
                        {
                            "startedDateTime": "2026-12-01T00:00:00.000Z",
                            "time": 5,
                            "request": {
                                "method": "GET",
                                "url": f"http://127.0.0.1:8000/api/v1/orders?api_key={canary['harkey']}",
                                "headers": [{"name": "X-API-Key", "value": canary["harkey"]}],
                                "queryString": [{"name": "api_key", "value": canary["harkey"]}],
                            },
                            "response": {
                                "status": 200,
                                "headers": [{"name": "Content-Type", "value": "application/json"}],
                                "content": {"mimeType": "application/json", "text": '{"items": []}'},
                            },
                        },
                        *(
                            {
                                "startedDateTime": "2026-12-01T00:00:01.000Z",
                                "time": 5,
                                "request": {
                                    "method": "POST",
                                    "url": f"http://127.0.0.1:8000/api/v1/{path}",
                                    "headers": [],
                                    "postData": {"mimeType": mime, "text": text},
                                },
                                "response": {
                                    "status": 200,
                                    "headers": [],
                                    "content": {"mimeType": "text/plain"},
                                },
                            }
                            for path, mime, text in (
                                ("notes", "text/plain", f"note with password={canary['harbody']} inside"),
                                (
                                    "graphql",
                                    "application/json",
                                    json.dumps(
                                        {
                                            "query": f'mutation {{ login(password: "{canary["graphql"]}") {{ ok }} }}'
                                        }
                                    ),
                                ),
                            )
                        ),
                    ],
                }
            }
        )
    )
    for fmt in ("chain", "locustfile"):
        out = generated / f"imported.{'yml' if fmt == 'chain' else 'py'}"
        outputs.append(loadstack("import", "har", str(har), "--format", fmt, "-o", str(out)))

    r = redis.Redis()
    key = f"loadtest:canary-{secrets.token_hex(3)}:session"
    r.set(key, canary["redisval"], ex=120)
    r.set(f"{key}:dsn", f"postgresql://app:{canary['dsnpw']}@db/app", ex=120)
    tag = key.split(":")[1]
    r.set(f"jwt:{tag}", canary["jwtkey"], ex=120)  # names without "session"/"token": shown before
    r.set(f"PHPSESSID:{tag}", canary["sesskey"], ex=120)
    queue = f"loadtest.canary-{secrets.token_hex(3)}.q"
    with kombu.Connection("amqp://guest:guest@127.0.0.1:5672//") as conn:
        q = kombu.Queue(queue, auto_delete=False)
        q(conn.default_channel).declare()
        kombu.Producer(conn.default_channel).publish(
            f"password={canary['amqpval']}", routing_key=queue, content_type="text/plain"
        )
        try:
            outputs.append(loadstack("inspect", "redis", "loadtest:canary-*", "--allow-touch", env=env))
            outputs.append(loadstack("inspect", "redis", f"*:{tag}", "--allow-touch", env=env))
            outputs.append(
                loadstack("inspect", "redis", "loadtest:canary-*", "--json", "--allow-touch", env=env)
            )
            outputs.append(loadstack("inspect", "rabbitmq", queue, env=env))
            outputs.append(loadstack("inspect", "rabbitmq", queue, "--json", env=env))
        finally:
            q(conn.default_channel).delete()
            r.delete(key, f"{key}:dsn", f"jwt:{tag}", f"PHPSESSID:{tag}")
    assert all(o.returncode in (0, 1, 4) for o in outputs), [
        (o.args, o.returncode, o.stderr[-500:]) for o in outputs
    ]
    outputs.append(refused)  # exit 2: refused, and the refusal is checked for the secret too

    written = (har, chain, shaped, numeric)  # the test's own inputs
    files = [
        p for folder in (results, generated) for p in folder.rglob("*") if p.is_file() and p not in written
    ]
    kinds = {p.name for p in files}
    for expected in ("summary.json", "report.html", "results_failures.csv", "metrics.prom", "master.log"):
        assert expected in kinds, f"{expected} was written (so it was checked)"
    leaks = []
    for value in canary.values():
        leaks += [str(p) for p in files if value in p.read_text(errors="replace")]
        leaks += [f"output of {o.args[3:6]}" for o in outputs if value in o.stdout + o.stderr]
    assert leaks == [], leaks
