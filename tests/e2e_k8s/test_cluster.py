"""The Kubernetes Job on a real kubelet: `loadstack k8s render` output applied as it is.

One namespace holds the demo platform (`target`, and `slow-target` with 400 ms of injected
latency), a Secret with a DSN, and a hostPath volume for the results claim; each test renders a
new run into it (the documented "another run": delete the Job, render, apply).  Proven here:

* a passing profile: Job Complete, container exit 0, 2 workers through the Service's DNS name;
  `loadstack k8s fetch` copies the run, and its summary.json has the shape and verdict of a native
  run of the same profile;
* an impossible gate: Job Failed, container exit 3, junit.xml on the volume;
* a worker pod lost mid-run (its process SIGKILLed on the node, the pod deleted): the master
  reports it missing, the Deployment replaces it, the run completes, worker_health names the pod;
  the exporter on the master Service answers /metrics inside the cluster meanwhile;
* the Job deleted mid-run (SIGTERM to the master): summary.json still written, exit 130;
* the Secret's password in no pod log and no result file.
"""

from __future__ import annotations

import json
import os
import re
import secrets
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest

from loadstack_demo.process import demo_platform
from tests.e2e_k8s.conftest import IMAGE, TIMINGS, Cluster
from tests.helpers import loadstack

pytestmark = [pytest.mark.k8s, pytest.mark.slow]

CANARY = f"pw{secrets.token_hex(8)}"
JOB_LIMIT_S = 900  # bounds a Job that never ends; a healthy one takes a minute or two
PROGRESS = re.compile(r"users=([1-9]\d*) .*requests=([1-9]\d*)")


def _target(name: str, latency_ms: int = 0) -> list[dict[str, Any]]:
    labels = {"app": name}
    return [
        {
            "apiVersion": "apps/v1",
            "kind": "Deployment",
            "metadata": {"name": name},
            "spec": {
                "replicas": 1,
                "selector": {"matchLabels": labels},
                "template": {
                    "metadata": {"labels": labels},
                    "spec": {
                        "securityContext": {"runAsNonRoot": True, "runAsUser": 10001, "runAsGroup": 10001},
                        "containers": [
                            {
                                "name": "target",
                                "image": IMAGE,
                                "imagePullPolicy": "IfNotPresent",
                                "command": ["loadstack"],
                                "args": [
                                    "demo",
                                    "serve",
                                    "--host",
                                    "0.0.0.0",
                                    "--port",
                                    "8000",
                                    "--store",
                                    "memory",
                                ],
                                "env": [{"name": "LOADSTACK_DEMO_LATENCY_MS", "value": str(latency_ms)}],
                                "ports": [{"containerPort": 8000, "name": "http"}],
                                "readinessProbe": {
                                    "httpGet": {"path": "/health", "port": "http"},
                                    "periodSeconds": 2,
                                },
                                "resources": {"requests": {"cpu": "100m", "memory": "128Mi"}},
                            }
                        ],
                    },
                },
            },
        },
        {
            "apiVersion": "v1",
            "kind": "Service",
            "metadata": {"name": name},
            "spec": {
                "selector": labels,
                "ports": [{"name": "http", "port": 8000, "targetPort": "http", "protocol": "TCP"}],
            },
        },
    ]


@pytest.fixture(scope="module")
def ns(cluster: Cluster) -> Any:
    """The namespace of this module's runs: targets, the Secret, the results volume."""
    name = cluster.namespace(f"ls-{os.getpid()}")
    secret = {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {"name": "loadstack-secrets"},
        "stringData": {"LOADSTACK_POSTGRES_DSN": f"postgresql://app:{CANARY}@127.0.0.1:5432/app"},
    }
    docs = [secret, *_target("target"), *_target("slow-target", latency_ms=400)]
    cluster.apply(name, json.dumps({"apiVersion": "v1", "kind": "List", "items": docs}))
    t0 = time.monotonic()
    for deploy in ("target", "slow-target"):
        cluster.kubectl("-n", name, "rollout", "status", f"deploy/{deploy}", "--timeout=600s", timeout=660)
    TIMINGS["targets ready"] = time.monotonic() - t0
    yield name
    logs = _all_logs(cluster, name)
    cluster.delete_namespace(name)
    assert CANARY not in logs, "the Secret's password is in a pod's log"


def _all_logs(cluster: Cluster, ns: str) -> str:
    out = []
    for pod in cluster.json("-n", ns, "get", "pods")["items"]:
        out.append(cluster.logs(ns, pod["metadata"]["name"]))
    return "\n".join(out)


def _render(run_id: str, host: str, profile: str = "smoke", users: int = 5, run_time: str = "20s") -> str:
    rendered = loadstack(
        "k8s", "render", "--overlay", "default", "--host", host, "--allow-remote", "--workers", "2",
        "--profile", profile, "--run-id", run_id, "--users", str(users), "--spawn-rate", "5",
        "--run-time", run_time,
    )  # fmt: skip
    assert rendered.returncode == 0, rendered.stderr
    return rendered.stdout


def _start(cluster: Cluster, ns: str, run_id: str, host: str, **kw: Any) -> float:
    """A new run: the previous Job and its pod gone, the rendered manifests applied."""
    cluster.kubectl("-n", ns, "delete", "job", "loadstack-master", "--ignore-not-found", "--wait=true")
    assert cluster.wait(lambda: not cluster.pods(ns, "job-name=loadstack-master"), 180)
    t0 = time.monotonic()
    cluster.apply(ns, _render(run_id, host, **kw))
    return t0


def _finished(cluster: Cluster, ns: str) -> str:
    assert cluster.wait(lambda: cluster.job_condition(ns) is not None, JOB_LIMIT_S, interval=2), cluster.logs(
        ns, "job/loadstack-master"
    )[-4000:]
    return str(cluster.job_condition(ns))


def _running(cluster: Cluster, ns: str) -> str:
    """The master's log once it reports users running and requests made."""
    log = ""

    def progressed() -> bool:
        nonlocal log
        log = cluster.logs(ns, "job/loadstack-master")
        return bool(PROGRESS.search(log))

    assert cluster.wait(progressed, 600, interval=2), log[-4000:]
    return log


def _shape(doc: dict[str, Any]) -> dict[str, Any]:
    return {
        "keys": sorted(doc),
        "request_keys": sorted(doc["requests"][0]),
        "totals": sorted(doc["totals"]),
        "gates": sorted(doc["gates"][0]),
        "outcome": sorted(doc["outcome"]),
        "worker_health": sorted(doc["worker_health"]),
    }


def _no_canary(folder: Path) -> None:
    for path in folder.rglob("*"):
        if path.is_file():
            assert CANARY.encode() not in path.read_bytes(), f"the Secret's password is in {path}"


def test_passing_profile_completes_with_2_workers_and_fetch_copies_it(
    cluster: Cluster, ns: str, tmp_path: Path
) -> None:
    run_id = "k8s-pass"
    t0 = _start(cluster, ns, run_id, "http://target:8000")
    assert _finished(cluster, ns) == "Complete", cluster.logs(ns, "job/loadstack-master")[-4000:]
    TIMINGS["pass: apply -> Job Complete"] = time.monotonic() - t0
    assert cluster.master_exit_code(ns) == 0
    log = cluster.logs(ns, "job/loadstack-master")
    assert "target answered HTTP 200" in log  # the master's readiness wait, in the cluster
    # The workers found the master by the Service's name, which only the cluster DNS resolves.
    worker = cluster.json("-n", ns, "get", "deploy", "loadstack-worker")
    args = worker["spec"]["template"]["spec"]["containers"][0]["args"]
    assert args[args.index("--master-host") + 1] == "loadstack-master"
    hosts = (cluster.work / "run" / "dns-hosts").read_text()
    assert f"loadstack-master.{ns}.svc.cluster.local" in hosts

    t0 = time.monotonic()
    env = {"PATH": f"{cluster.bin_dir}:{os.environ['PATH']}"}
    fetched = loadstack(
        "k8s", "fetch", run_id, "-n", ns, "-o", str(tmp_path / "fetched"), env=env, timeout=600
    )
    assert fetched.returncode == 0, fetched.stdout + fetched.stderr
    TIMINGS["pass: k8s fetch"] = time.monotonic() - t0
    doc = json.loads((tmp_path / "fetched" / run_id / "summary.json").read_text())
    assert doc["workers"] == 2 and doc["worker_health"]["peak_connected"] == 2
    assert doc["verdict"] == "pass" and doc["outcome"]["exit_code"] == 0 and doc["totals"]["count"] > 0
    assert (tmp_path / "fetched" / run_id / "report.html").is_file()
    assert run_id in (tmp_path / "fetched" / "history.jsonl").read_text()
    _no_canary(tmp_path / "fetched")

    # The same profile natively, against the same demo platform: same shape, same verdict.
    t0 = time.monotonic()
    with demo_platform(store="memory") as url:
        native = loadstack(
            "run", "--profile", "smoke", "--host", url, "--workers", "2", "--users", "5", "--spawn-rate", "5",
            "--run-time", "20s", "--run-id", "native-pass", "--results-dir", str(tmp_path / "native"),
        )  # fmt: skip
    TIMINGS["pass: the native run beside it"] = time.monotonic() - t0
    assert native.returncode == 0, native.stdout[-3000:] + native.stderr[-3000:]
    native_doc = json.loads((tmp_path / "native" / "native-pass" / "summary.json").read_text())
    assert _shape(doc) == _shape(native_doc)
    assert doc["verdict"] == native_doc["verdict"] and doc["workers"] == native_doc["workers"]


def test_an_impossible_gate_fails_the_job_with_exit_3_and_junit_on_the_volume(
    cluster: Cluster, ns: str
) -> None:
    run_id = "k8s-gate"
    t0 = _start(cluster, ns, run_id, "http://slow-target:8000", run_time="15s")
    assert _finished(cluster, ns) == "Failed"
    TIMINGS["gate: apply -> Job Failed"] = time.monotonic() - t0
    assert cluster.master_exit_code(ns) == 3
    on_volume = cluster.volume(ns) / run_id
    assert (on_volume / "junit.xml").is_file() and "<failure" in (on_volume / "junit.xml").read_text()
    doc = json.loads((on_volume / "summary.json").read_text())
    assert doc["verdict"] == "fail" and doc["outcome"]["exit_code"] == 3
    _no_canary(cluster.volume(ns))


def test_a_lost_worker_is_reported_and_the_run_completes(cluster: Cluster, ns: str) -> None:
    run_id = "k8s-worker-loss"
    t0 = _start(cluster, ns, run_id, "http://target:8000", run_time="60s")
    _running(cluster, ns)
    workers: list[dict[str, Any]] = []

    def both_joined() -> bool:
        """This run's two workers, both in the master's log: not a pod of the last run on its way out."""
        nonlocal workers
        workers = [
            p
            for p in cluster.pods(ns, "app.kubernetes.io/component=worker")
            if p["status"].get("phase") == "Running" and not p["metadata"].get("deletionTimestamp")
        ]
        log = cluster.logs(ns, "job/loadstack-master")
        return len(workers) == 2 and all(f"{p['metadata']['name']}_" in log for p in workers)

    assert cluster.wait(both_joined, 300), [p["metadata"]["name"] for p in workers]
    victim, other = workers[0], workers[1]

    # The exporter, through the master Service, from inside the cluster (a worker pod's network).
    scrape = (
        "import urllib.request;"
        "print(urllib.request.urlopen('http://loadstack-master:9646/metrics', timeout=10).read().decode())"
    )
    metrics = cluster.kubectl("-n", ns, "exec", other["metadata"]["name"], "--", "python3", "-c", scrape)
    assert re.search(r'^locust_workers\{[^}]*state="missing"[^}]*\} 0(\.0)?$', metrics, re.M), metrics[-3000:]
    assert re.search(r"^locust_users_active\{[^}]*\} [1-9]", metrics, re.M), metrics[-3000:]

    # Lost as a node loses it: the process SIGKILLed (no goodbye to the master), then the pod deleted.
    lost_at = time.monotonic()
    container = victim["status"]["containerStatuses"][0]["containerID"].split("://", 1)[1]
    docker = ["docker", "-H", f"unix://{cluster.work}/run/docker.sock"]
    subprocess.run([*docker, "kill", "-s", "KILL", container], check=True, capture_output=True, timeout=60)
    cluster.kubectl(
        "-n", ns, "delete", "pod", victim["metadata"]["name"], "--grace-period=0", "--force", check=False
    )

    name = victim["metadata"]["name"]
    assert cluster.wait(lambda: f"worker {name}" in cluster.logs(ns, "job/loadstack-master"), 120), (
        cluster.logs(ns, "job/loadstack-master")[-4000:]
    )
    TIMINGS["worker loss: SIGKILL -> reported missing"] = time.monotonic() - lost_at
    missing = cluster.kubectl("-n", ns, "exec", other["metadata"]["name"], "--", "python3", "-c", scrape)
    assert re.search(r'^locust_workers\{[^}]*state="missing"[^}]*\} 1(\.0)?$', missing, re.M), missing[-3000:]
    # The Deployment replaces the pod.
    assert cluster.wait(
        lambda: any(
            p["metadata"]["name"] not in (name, other["metadata"]["name"])
            and p["status"].get("phase") == "Running"
            for p in cluster.pods(ns, "app.kubernetes.io/component=worker")
        ),
        300,
    )
    assert _finished(cluster, ns) == "Complete", cluster.logs(ns, "job/loadstack-master")[-4000:]
    TIMINGS["worker loss: apply -> Job Complete"] = time.monotonic() - t0
    assert cluster.master_exit_code(ns) == 0
    doc = json.loads((cluster.volume(ns) / run_id / "summary.json").read_text())
    health = doc["worker_health"]
    said = [
        line for line in cluster.logs(ns, "job/loadstack-master").splitlines() if "worker" in line.lower()
    ]
    assert health["missing"] == 1 and health["expected"] == 2, (
        json.dumps(health) + "\n" + "\n".join(said[-40:])
    )
    assert health["events"][0]["worker"].startswith(name), health
    assert doc["totals"]["count"] > 0


def test_deleting_the_job_mid_run_still_writes_the_results(cluster: Cluster, ns: str) -> None:
    run_id = "k8s-sigterm"
    _start(cluster, ns, run_id, "http://target:8000", run_time="10m")
    _running(cluster, ns)
    [pod] = cluster.pods(ns, "job-name=loadstack-master")
    grace = pod["spec"]["terminationGracePeriodSeconds"]
    t0 = time.monotonic()
    cluster.kubectl("-n", ns, "delete", "job", "loadstack-master", "--wait=false")
    assert cluster.wait(lambda: not cluster.pods(ns, "job-name=loadstack-master"), grace + 120)
    TIMINGS["sigterm: Job deleted -> master pod gone"] = time.monotonic() - t0
    # Written before the kubelet's SIGKILL at the end of the grace period, or not at all.
    doc = json.loads((cluster.volume(ns) / run_id / "summary.json").read_text())
    assert doc["outcome"]["exit_code"] == 130 and doc["end_reason"] == "interrupted"
    assert doc["totals"]["count"] > 0
    history = (cluster.volume(ns) / "history.jsonl").read_text()
    assert run_id in history
