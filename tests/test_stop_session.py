"""`loadstack stop` stops only what its session started (issue 28, item 3), observed at the process level.

A fake ``docker`` and ``docker-compose`` earlier on PATH record every call and pretend that a user's
own compose stack is up in the checkout's project.  The real thing, with a Docker engine and a
user's stack, is tests/e2e_docker/test_stop_session_docker.py.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
from pathlib import Path

from loadstack.processes import free_port
from tests.helpers import loadstack

# One script for both names: it logs its argv and answers from the files in $FAKE_DOCKER_DIR.
FAKE = r"""#!PYTHON
import os, sys
from pathlib import Path
d = Path(os.environ["FAKE_DOCKER_DIR"])
name, args = Path(sys.argv[0]).name, sys.argv[1:]
with open(d / "calls.log", "a") as log:
    log.write(" ".join([name, *args]) + "\n")
containers = d / "containers.txt"   # lines: "id service"
rows = [line.split() for line in containers.read_text().splitlines() if line.strip()]
if name == "docker":
    if args[:2] == ["compose", "version"]:
        sys.exit(1)                  # no compose v2 plugin: docker-compose is used
    if args and args[0] == "info":
        print("20.10.24")
    elif args[:2] == ["ps", "-aq"]:
        print("\n".join(r[0] for r in rows))
    elif args[:3] == ["network", "ls", "-q"]:
        print((d / "networks.txt").read_text().strip())
    elif args and args[0] == "inspect":
        print("\n".join("true" for _ in args[3:]))
    sys.exit(0)
# docker-compose
if "ps" in args:
    service = args[args.index("ps") + 2:]
    print("\n".join(r[0] for r in rows if not service or r[1] in service))
elif "up" in args:
    with containers.open("a") as fh:
        fh.write("session-master master\nsession-worker-9 worker\n")
sys.exit(0)
"""


def fake_engine(tmp_path: Path, user_containers: list[tuple[str, str]]) -> dict[str, str]:
    """A PATH with the fake docker and docker-compose first; the user's stack is ``user_containers``."""
    bin_dir, data = tmp_path / "bin", tmp_path / "fake-docker"
    bin_dir.mkdir()
    data.mkdir()
    for name in ("docker", "docker-compose"):
        path = bin_dir / name
        path.write_text(FAKE.replace("PYTHON", sys.executable, 1))
        path.chmod(0o755)
    (data / "containers.txt").write_text("".join(f"{c} {s}\n" for c, s in user_containers))
    (data / "networks.txt").write_text("user-network\n")
    (data / "calls.log").write_text("")
    return {
        "PATH": f"{bin_dir}:{os.environ['PATH']}",
        "FAKE_DOCKER_DIR": str(data),
        "LOADSTACK_STATE_DIR": str(tmp_path / "state"),
        "LOADSTACK_RUN_MODE": "auto",
        "COMPOSE_PROJECT_NAME": "user-stack",
    }


def calls(env: dict[str, str]) -> list[str]:
    return (Path(env["FAKE_DOCKER_DIR"]) / "calls.log").read_text().splitlines()


USER_STACK = [("user-postgres", "postgres"), *[(f"user-worker-{i}", "worker") for i in range(8)]]


def test_stopping_a_native_session_never_touches_compose(tmp_path: Path) -> None:
    env = fake_engine(tmp_path, USER_STACK)
    # The session's supervisor: a process that ends on SIGTERM, as `loadstack ui --foreground` does.
    supervisor = subprocess.Popen(
        [sys.executable, "-c", "import time\nwhile True: time.sleep(1)"], start_new_session=True
    )
    reaper = threading.Thread(target=supervisor.wait)  # a zombie would still look alive
    reaper.start()
    try:
        stat = Path(f"/proc/{supervisor.pid}/stat").read_text().rsplit(")", 1)[1].split()[19]
        state = Path(env["LOADSTACK_STATE_DIR"]) / "ui.json"
        state.parent.mkdir(parents=True)
        state.write_text(
            json.dumps(
                {
                    "mode": "native", "supervisor": {"pid": supervisor.pid, "started": stat},
                    "run_id": "ui-native", "run_dir": str(tmp_path / "ui-native"), "processes": {},
                    "web_url": f"http://127.0.0.1:{free_port()}",
                }
            )
        )  # fmt: skip
        stopped = loadstack("stop", env=env, timeout=300)
    finally:
        if supervisor.poll() is None:
            supervisor.send_signal(signal.SIGKILL)
        reaper.join(60)
    assert stopped.returncode == 0, stopped.stdout + stopped.stderr
    assert supervisor.returncode == -signal.SIGTERM, "stop ended the session's own supervisor"
    assert "compose" not in stopped.stdout, stopped.stdout
    made = calls(env)
    assert not [c for c in made if c.startswith("docker-compose")], made
    assert not [c for c in made if "user-" in c], made


def test_a_compose_session_records_and_stops_only_the_containers_it_created(tmp_path: Path) -> None:
    env = fake_engine(tmp_path, USER_STACK)
    port = free_port()
    started = loadstack(
        "ui", "--docker", "--offline", "--profile", "smoke", "--workers", "2", "--web-port", str(port),
        env=env, timeout=300,
    )  # fmt: skip
    assert started.returncode == 0, started.stdout + started.stderr
    assert "already up: this session started 2 containers of its own" in started.stdout
    up = [c for c in calls(env) if c.startswith("docker-compose") and " up " in c]
    assert len(up) == 1 and "--no-recreate" in up[0], up
    assert "--scale worker=8" in up[0], "the user's 8 workers are not scaled down to the session's 2"
    state = json.loads((Path(env["LOADSTACK_STATE_DIR"]) / "ui.json").read_text())
    assert state["mode"] == "docker" and state["project"] == "user-stack"
    assert state["containers"] == ["session-master", "session-worker-9"] and state["networks"] == []

    before_stop = len(calls(env))
    stopped = loadstack("stop", env=env, timeout=300)
    assert stopped.returncode == 0, stopped.stdout + stopped.stderr
    made = calls(env)[before_stop:]
    assert "docker stop --time 30 session-master session-worker-9" in made, made
    assert "docker rm session-master session-worker-9" in made, made
    assert not [c for c in made if c.startswith("docker-compose")], made
    assert not [c for c in made if "user-" in c], made
    assert "nothing running" in loadstack("status", env={**env, "LOADSTACK_RUN_MODE": "native"}).stdout
