"""The distributed path of infra/k8s without a cluster: the pods' own command lines, one role per Linux
network namespace, joined by a bridge this test builds.

The master (and the demo platform it loads) lives in one namespace with the bridge; three workers
live in three others, each on a veth pair.  Addresses come from 198.18.0.0/15 (RFC 2544, for
benchmarks) and exist only inside these namespaces.  The commands are rendered from the manifests
(`loadstack k8s render`) and expanded like the kubelet does; only what a cluster would supply
differs: the master Service's name becomes the master namespace's address, and the test's own
profile and results folder replace the ConfigMap and the PVC.

Fixed ports are fine here: every namespace has its own.
"""

from __future__ import annotations

import json
import os
import re
import secrets
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest

from loadstack.masking import Masker
from loadstack.processes import Child, wait_until
from tests.helpers import LOCUSTFILES, write_profile
from tests.k8s_manifests import argv, container, container_env, one, rendered, replace_flag

pytestmark = pytest.mark.slow

WORKERS = 3
DEMO_PORT = 8000
METRICS_PORT = 9646
MASTER_PORT = 5557

# Polls the master's exporter from inside its namespace; prints each change of locust_workers.
POLLER = r"""
import json, sys, time, urllib.request
url, until, last = sys.argv[1], time.monotonic() + float(sys.argv[2]), None
while time.monotonic() < until:
    try:
        with urllib.request.urlopen(url, timeout=1) as resp:
            text = resp.read().decode()
    except OSError:
        time.sleep(0.2)
        continue
    states = {}
    for line in text.splitlines():
        if line.startswith("locust_workers{"):
            states[line.split('state="', 1)[1].split('"', 1)[0]] = float(line.rsplit(" ", 1)[1])
    if states != last:
        print(json.dumps({"t": time.monotonic(), "workers": states}), flush=True)
        last = states
    time.sleep(0.2)
"""
WAIT_HTTP = (
    "import sys, time, urllib.request\n"
    "deadline = time.monotonic() + 240\n"  # readiness, however slow the machine
    "while True:\n"
    "    try:\n"
    "        urllib.request.urlopen(sys.argv[1], timeout=1); break\n"
    "    except OSError:\n"
    "        if time.monotonic() > deadline: sys.exit(1)\n"
    "        time.sleep(0.2)\n"
)


def ip(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    out = subprocess.run(["ip", *args], capture_output=True, text=True, timeout=15)
    if check and out.returncode != 0:
        raise RuntimeError(f"ip {' '.join(args)}: {out.stderr.strip()}")
    return out


@dataclass
class Topology:
    """A bridge in the master's namespace; each worker namespace hangs on it by a veth pair."""

    prefix: str
    net: str  # the /24 inside 198.18.0.0/15
    created: list[str] = field(default_factory=list)

    @property
    def master_ns(self) -> str:
        return f"{self.prefix}-m"

    def worker_ns(self, i: int) -> str:
        return f"{self.prefix}-w{i}"

    @property
    def master_ip(self) -> str:
        return f"{self.net}.1"

    def worker_ip(self, i: int) -> str:
        return f"{self.net}.{10 + i}"

    def exec(self, ns: str, cmd: list[str]) -> list[str]:
        return ["ip", "netns", "exec", ns, *cmd]

    def build(self) -> None:
        m = self.master_ns
        for ns in [m, *(self.worker_ns(i) for i in range(1, WORKERS + 1))]:
            ip("netns", "add", ns)
            self.created.append(ns)
            ip("-n", ns, "link", "set", "lo", "up")
        ip("-n", m, "link", "add", "br0", "type", "bridge")
        ip("-n", m, "addr", "add", f"{self.master_ip}/24", "dev", "br0")
        ip("-n", m, "link", "set", "br0", "up")
        for i in range(1, WORKERS + 1):
            w = self.worker_ns(i)
            # Both ends are made inside the namespaces: nothing touches the host's own network.
            ip("-n", w, "link", "add", "eth0", "type", "veth", "peer", "name", f"vw{i}", "netns", m)
            ip("-n", m, "link", "set", f"vw{i}", "master", "br0")
            ip("-n", m, "link", "set", f"vw{i}", "up")
            ip("-n", w, "addr", "add", f"{self.worker_ip(i)}/24", "dev", "eth0")
            ip("-n", w, "link", "set", "eth0", "up")

    def destroy(self) -> None:
        for ns in reversed(self.created):
            ip("netns", "del", ns, check=False)
        self.created.clear()


# What `ip` says when the kernel (not this test) refuses a namespace, a bridge or a veth pair.
REFUSALS = ("Operation not permitted", "Operation not supported", "Unknown device type", "Permission denied")
NAME = re.compile(r"^lsk8s(\d+)x[0-9a-f]{4}-(m|w\d+)\b")


def remove_stale_namespaces() -> None:
    """Namespaces of an earlier run of this test whose pytest was killed before its finalizers ran."""
    for line in ip("netns", "list", check=False).stdout.splitlines():
        m = NAME.match(line)
        if m and not Path(f"/proc/{m[1]}").exists():
            ip("netns", "del", line.split()[0], check=False)


@pytest.fixture(scope="module")
def topology() -> Iterator[Topology]:
    n = secrets.randbelow(512)
    topo = Topology(prefix=f"lsk8s{os.getpid()}x{secrets.token_hex(2)}", net=f"198.{18 + n // 256}.{n % 256}")
    probe = subprocess.run(["ip", "netns", "add", topo.master_ns], capture_output=True, text=True, timeout=15)
    if probe.returncode != 0:
        pytest.skip(f"the kernel refuses network namespaces here: {probe.stderr.strip()}")
    ip("netns", "del", topo.master_ns)
    remove_stale_namespaces()
    try:
        try:
            topo.build()
        except RuntimeError as exc:
            if any(word in str(exc) for word in REFUSALS):
                pytest.skip(f"the kernel refuses the namespaces' network devices here: {exc}")
            raise
        yield topo
    finally:
        topo.destroy()
    leftover = ip("netns", "list").stdout
    assert topo.prefix not in leftover, leftover


@dataclass
class Processes:
    """Every process a test starts; all stopped (bounded) when the test ends, whatever happened."""

    tmp: Path
    children: list[Child] = field(default_factory=list)

    def start(self, name: str, cmd: list[str], env: dict[str, str]) -> Child:
        child = Child(name, cmd, env=env, log_path=self.tmp / "logs" / f"{name}.log", masker=Masker())
        self.children.append(child)
        return child

    def stop_all(self) -> None:
        for child in reversed(self.children):
            child.stop(first=signal.SIGTERM, grace=5)


@pytest.fixture
def procs(tmp_path: Path) -> Iterator[Processes]:
    p = Processes(tmp_path)
    try:
        yield p
    finally:
        p.stop_all()
    assert not [c.name for c in p.children if c.alive()]


@pytest.fixture(scope="module")
def demo(topology: Topology, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The demo platform in the master's namespace, bound to that namespace's address."""
    p = Processes(tmp_path_factory.mktemp("demo"))
    url = f"http://{topology.master_ip}:{DEMO_PORT}"
    cmd = [sys.executable, "-m", "loadstack", "demo", "serve", "--host", topology.master_ip]
    p.start(
        "demo",
        topology.exec(topology.master_ns, [*cmd, "--port", str(DEMO_PORT), "--store", "memory"]),
        clean_env(),
    )
    try:
        ok = subprocess.run(
            topology.exec(topology.master_ns, [sys.executable, "-c", WAIT_HTTP, f"{url}/health"]), timeout=300
        )
        assert ok.returncode == 0, "demo platform did not answer: " + "\n".join(p.children[0].tail)
        yield url
    finally:
        p.stop_all()


def clean_env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if not k.startswith(("LOADSTACK_", "LOCUST_"))}


@dataclass
class Launch:
    """The master and worker command lines of one run, as the pods would run them."""

    master: list[str]
    worker: list[str]
    master_env: dict[str, str]
    worker_env: dict[str, str]
    probe: list[str]  # the worker pods' readiness probe


def launch_for(topo: Topology, demo_url: str, profile: Path, results: Path, run_id: str) -> Launch:
    docs, _ = rendered(overlay="default", workers=WORKERS, host=demo_url, allow_remote=True, run_id=run_id)
    job, deploy = one(docs, "Job", "loadstack-master"), one(docs, "Deployment", "loadstack-worker")
    master_c, worker_c = container(job, "master"), container(deploy, "worker")
    master = replace_flag(argv(docs, master_c), "--profile", str(profile))
    master = replace_flag(master, "--results-dir", str(results))
    assert replace_flag(master, "--master-port", str(MASTER_PORT)) == master
    # The master namespace's address stands in for the Service name that cluster DNS would resolve.
    worker = replace_flag(argv(docs, worker_c), "--master-host", topo.master_ip)
    worker = replace_flag(worker, "--profile", str(profile))
    extra = {"LOADSTACK_RESULTS_DIR": str(results), "PYTHONUNBUFFERED": "1"}  # the image sets these
    # ... and the suite's generator verdict (tests/conftest.py): these runs share the machine.
    extra["LOADSTACK_GENERATOR_SATURATED"] = os.environ.get("LOADSTACK_GENERATOR_SATURATED", "fail")
    return Launch(
        # `loadstack` is this venv's `python -m loadstack`; --allow-remote: the opt-in, explicitly.
        master=[sys.executable, "-m", "loadstack", *master[1:], "--allow-remote"],
        worker=[sys.executable, "-m", "loadstack", *worker[1:]],
        master_env={**clean_env(), **container_env(docs, master_c), **extra},
        worker_env={**clean_env(), **container_env(docs, worker_c), **extra},
        probe=worker_c["readinessProbe"]["exec"]["command"],
    )


LOG_TIME = re.compile(r"^\[(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3})\]")


def log_times(text: str, needle: str) -> list[float]:
    """Wall-clock times of the Locust log lines containing ``needle``."""
    out = []
    for line in text.splitlines():
        m = LOG_TIME.match(line)
        if m and needle in line:
            out.append(datetime.strptime(m[1], "%Y-%m-%d %H:%M:%S,%f").timestamp())
    return out


@dataclass
class Result:
    code: int
    run_dir: Path
    summary: dict[str, Any]
    master_log: str
    launched: float  # time.time() when master and workers were started
    states: list[tuple[float, dict[str, float]]]  # (time.monotonic(), locust_workers by state)
    output: str


def run(
    topo: Topology, procs: Processes, launch: Launch, results: Path, run_id: str, during: Any = None
) -> Result:
    """Master + workers + exporter poller started together (like pods); wait (bounded) for the master."""
    poller = procs.start(
        "poller",
        topo.exec(
            topo.master_ns, [sys.executable, "-c", POLLER, f"http://127.0.0.1:{METRICS_PORT}/metrics", "150"]
        ),
        clean_env(),
    )
    launched = time.time()
    master = procs.start("master", topo.exec(topo.master_ns, launch.master), launch.master_env)
    workers = [
        procs.start(f"worker-{i}", topo.exec(topo.worker_ns(i), launch.worker), launch.worker_env)
        for i in range(1, WORKERS + 1)
    ]
    if during is not None:
        during(master, workers, poller)
    code = master.wait(150)
    assert code is not None, "the master did not finish within 150 s:\n" + "\n".join(master.tail)
    poller.stop(grace=2)
    states = [
        (float(d["t"]), d["workers"])
        for d in (
            json.loads(line) for line in poller.log_path.read_text().splitlines() if line.startswith("{")
        )
    ]
    run_dir = results / run_id
    summary_path = run_dir / "summary.json"
    return Result(
        code=code,
        run_dir=run_dir,
        summary=json.loads(summary_path.read_text()) if summary_path.exists() else {},
        master_log=master.log_path.read_text(),  # the master's output, as a pod's log has it
        launched=launched,
        states=states,
        output=master.log_path.read_text(),
    )


def connect_figures(r: Result) -> dict[str, float]:
    ready = log_times(r.master_log, f"reported as ready. {WORKERS} workers connected")
    started = log_times(r.master_log, "Starting Locust")
    assert ready and started, r.master_log[-3000:]
    return {
        "master_up_to_all_connected_s": ready[0] - started[0],
        "launch_to_all_connected_s": ready[0] - r.launched,
    }


def assert_results_written(r: Result) -> None:
    for name in ("summary.json", "summary.csv", "report.html", "results_stats.csv", "run-metadata.json"):
        assert (r.run_dir / name).is_file(), (
            f"{name} missing in {sorted(p.name for p in r.run_dir.iterdir())}"
        )
    assert r.summary["workers"] == WORKERS, r.summary.get("workers")


def pass_profile(tmp: Path, run_time: str) -> Path:
    return write_profile(
        tmp / "ns-pass.yml",
        locustfile=str(LOCUSTFILES / "http_users.py"),
        users=6,
        spawn_rate=6,
        run_time=run_time,
        thresholds=[{"target": "total", "success_rate_min": 0.8}],
    )


def report(title: str, figures: dict[str, Any]) -> None:
    line = ", ".join(f"{k}={v:.2f}" if isinstance(v, float) else f"{k}={v}" for k, v in figures.items())
    print(f"\n[k8s netns] {title}: {line}")


def test_three_workers_in_their_own_namespaces_run_a_passing_test(
    topology: Topology, demo: str, procs: Processes, tmp_path: Path
) -> None:
    results, run_id = tmp_path / "results", "ns-pass"
    launch = launch_for(topology, demo, pass_profile(tmp_path, "12s"), results, run_id)
    peers: set[str] = set()

    def connections(master: Child, workers: list[Child], poller: Child) -> None:
        # The master's established connections on its port, seen from inside its namespace.
        ss = topology.exec(
            topology.master_ns, ["ss", "-Htn", "state", "established", f"( sport = :{MASTER_PORT} )"]
        )

        def three() -> bool:
            out = subprocess.run(ss, capture_output=True, text=True, timeout=10).stdout
            peers.update(line.split()[-1].rsplit(":", 1)[0] for line in out.splitlines() if line.strip())
            return len(peers) >= WORKERS

        assert wait_until(three, timeout=300, interval=0.5), (peers, "\n".join(master.tail))

    r = run(topology, procs, launch, results, run_id, during=connections)
    assert r.code == 0, r.output[-4000:]
    assert_results_written(r)
    assert r.summary["verdict"] == "pass" and r.summary["totals"]["count"] > 0
    assert max(s.get("ready", 0) + s.get("running", 0) + s.get("spawning", 0) for _, s in r.states) == WORKERS
    # Each worker came from its own namespace's address, over the bridge.
    assert peers == {topology.worker_ip(i) for i in range(1, WORKERS + 1)}
    figures = connect_figures(r)
    report("passing run", {"workers_connected": r.summary["workers"], **figures})


def test_a_failed_gate_is_exit_3_across_namespaces(
    topology: Topology, demo: str, procs: Processes, tmp_path: Path
) -> None:
    results, run_id = tmp_path / "results", "ns-gate"
    profile = write_profile(
        tmp_path / "ns-gate.yml",
        locustfile=str(LOCUSTFILES / "http_users.py"),
        users=3,
        spawn_rate=3,
        run_time="6s",
        thresholds=[{"target": "total", "rps_min": 100000}],
    )
    r = run(topology, procs, launch_for(topology, demo, profile, results, run_id), results, run_id)
    assert r.code == 3, r.output[-4000:]
    assert_results_written(r)
    assert r.summary["verdict"] == "fail"
    report(
        "impossible gate",
        {"exit_code": r.code, "workers_connected": r.summary["workers"], **connect_figures(r)},
    )


def test_the_master_refuses_the_namespace_target_without_the_opt_in(
    topology: Topology, demo: str, procs: Processes, tmp_path: Path
) -> None:
    launch = launch_for(topology, demo, pass_profile(tmp_path, "5s"), tmp_path / "results", "ns-refused")
    cmd = [a for a in launch.master if a != "--allow-remote"]
    master = procs.start(
        "master", topology.exec(topology.master_ns, cmd), {**launch.master_env, "LOADSTACK_ALLOW_REMOTE": "0"}
    )
    assert master.wait(60) == 2
    assert "Pass --allow-remote" in master.log_path.read_text()
    assert not (tmp_path / "results" / "ns-refused").exists()


def test_a_killed_worker_is_reported_missing_and_the_run_completes(
    topology: Topology, demo: str, procs: Processes, tmp_path: Path
) -> None:
    results, run_id = tmp_path / "results", "ns-kill"
    launch = launch_for(topology, demo, pass_profile(tmp_path, "24s"), results, run_id)
    killed: dict[str, float] = {}
    stopped: dict[str, float] = {}
    probes: dict[str, int] = {}

    def kill_one(master: Child, workers: list[Child], poller: Child) -> None:
        def all_running() -> bool:
            return "All users spawned" in master.log_path.read_text()

        assert wait_until(all_running, timeout=300, interval=0.2), "\n".join(master.tail)
        time.sleep(2)

        def probe(i: int) -> int:
            return subprocess.run(topology.exec(topology.worker_ns(i), launch.probe), timeout=10).returncode

        probes["before_kill_w2"] = probe(2)
        killed["wall"], killed["mono"] = time.time(), time.monotonic()
        workers[1].send_signal(signal.SIGKILL)  # a pod lost without a goodbye
        assert workers[1].wait(120) is not None
        probes["after_kill_w2"] = probe(2)
        probes["after_kill_w1"] = probe(1)
        # Then a worker stopped the normal way (scale-down, rollout: SIGTERM) says goodbye.
        assert wait_until(
            lambda: "setting state to missing" in master.log_path.read_text(), timeout=300, interval=0.2
        )
        stopped["wall"] = time.time()
        workers[2].send_signal(signal.SIGTERM)
        assert workers[2].wait(120) is not None

    r = run(topology, procs, launch, results, run_id, during=kill_one)
    # The run completes, with a passing verdict, on the remaining workers.
    assert r.code == 0, r.output[-4000:]
    assert_results_written(r)
    assert r.summary["totals"]["count"] > 0
    # The worker's readiness probe of the manifests tells a connected worker from a lost one.
    assert probes == {"before_kill_w2": 0, "after_kill_w2": 1, "after_kill_w1": 0}
    # Locust's heartbeat marks it missing; the exporter shows it.
    missing_log = [t for t in log_times(r.master_log, "setting state to missing") if t >= killed["wall"]]
    assert missing_log, r.master_log[-3000:]
    missing_metric = [t for t, s in r.states if s.get("missing", 0) >= 1 and t >= killed["mono"]]
    assert missing_metric, r.states
    # The worker that left with SIGTERM quit; it is not missing.
    assert [t for t in log_times(r.master_log, ") quit. ") if t >= stopped["wall"]], r.master_log[-3000:]
    assert len(log_times(r.master_log, "setting state to missing")) == 1, r.master_log[-3000:]
    assert max(s.get("missing", 0) for _, s in r.states) == 1, r.states
    figures = {
        "workers_connected": r.summary["workers"],
        **connect_figures(r),
        "kill_to_missing_in_master_log_s": missing_log[0] - killed["wall"],
        "kill_to_missing_in_exporter_s": missing_metric[0] - killed["mono"],
    }
    report("worker killed mid-run", figures)
    assert figures["kill_to_missing_in_exporter_s"] < 15
    assert r.summary["worker_health"]["missing"] >= 1
