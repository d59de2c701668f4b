"""One real Kubernetes cluster (v1.20.2, one node) shared by the real-cluster tests.

``infra/dev/k8s/build.sh`` builds the binaries once (cached in ``LOADSTACK_K8S_CACHE``, default
/var/cache/loadstack-k8s); ``infra/dev/k8s/cluster.sh`` starts etcd, the control plane, a kubelet
with its own dockerd, kube-proxy and a DNS in a network namespace this fixture names and always
deletes.  The project's image is built offline (infra/offline/build-images.sh) and copied into the
cluster's runtime.  Each test works in Kubernetes namespaces of its own, on a hostPath volume.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from tests.helpers import ROOT

HARNESS = ROOT / "infra" / "dev" / "k8s"
IMAGE = "loadstack:dev"
# Figures the tests print at the end (pytest -s) and docs/kubernetes.md quotes.
TIMINGS: dict[str, float] = {}


def pytest_terminal_summary(terminalreporter: Any) -> None:
    if TIMINGS:
        terminalreporter.write_sep("-", "real-cluster timings (s)")
        for name, seconds in TIMINGS.items():
            terminalreporter.write_line(f"{name:<40} {seconds:7.1f}")


def _run(cmd: list[str], *, timeout: float, stdin: str | None = None, check: bool = True) -> str:
    proc = subprocess.run(cmd, input=stdin, capture_output=True, text=True, timeout=timeout)
    if check and proc.returncode != 0:
        raise AssertionError(
            f"{' '.join(cmd[:6])} … exit {proc.returncode}:\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"
        )
    return proc.stdout


@dataclass
class Cluster:
    """The running cluster: kubectl inside its network namespace, and helpers the scenarios share."""

    work: Path
    netns: str
    bin_dir: Path  # holds a `kubectl` that reaches this cluster (for `loadstack k8s fetch`)
    namespaces: list[str] = field(default_factory=list)

    def cluster_sh(
        self, *args: str, timeout: float = 600, stdin: str | None = None, check: bool = True
    ) -> str:
        return _run(
            [str(HARNESS / "cluster.sh"), args[0], str(self.work), self.netns, *args[1:]],
            timeout=timeout,
            stdin=stdin,
            check=check,
        )

    def kubectl(self, *args: str, timeout: float = 300, stdin: str | None = None, check: bool = True) -> str:
        return self.cluster_sh("kubectl", *args, timeout=timeout, stdin=stdin, check=check)

    def json(self, *args: str) -> Any:
        return json.loads(self.kubectl(*args, "-o", "json"))

    def sync_dns(self) -> None:
        self.cluster_sh("dns", timeout=60)

    def namespace(self, name: str) -> str:
        """A fresh namespace with a hostPath PersistentVolume for its results claim."""
        self.kubectl("create", "namespace", name)
        self.namespaces.append(name)
        results = self.work / "volumes" / name
        results.mkdir(parents=True)
        results.chmod(0o1777)  # the pods run as uid 10001; fsGroup does not apply to hostPath
        pv = {
            "apiVersion": "v1",
            "kind": "PersistentVolume",
            "metadata": {"name": f"results-{name}"},
            "spec": {
                "capacity": {"storage": "1Gi"},
                "accessModes": ["ReadWriteOnce"],
                "persistentVolumeReclaimPolicy": "Delete",
                "hostPath": {"path": str(results), "type": "Directory"},
                "claimRef": {"namespace": name, "name": "loadstack-results"},
            },
        }
        self.kubectl("apply", "-f", "-", stdin=json.dumps(pv))
        return name

    def volume(self, namespace: str) -> Path:
        return self.work / "volumes" / namespace

    def apply(self, namespace: str, manifests: str) -> None:
        self.kubectl("-n", namespace, "apply", "-f", "-", stdin=manifests)
        self.sync_dns()  # workers resolve loadstack-master.<ns>.svc.cluster.local through it

    def wait(self, what: Callable[[], bool], limit_s: float, interval: float = 1.0) -> bool:
        deadline = time.monotonic() + limit_s
        while time.monotonic() < deadline:
            if what():
                return True
            time.sleep(interval)
        return what()

    def pods(self, namespace: str, selector: str) -> list[dict[str, Any]]:
        return self.json("-n", namespace, "get", "pods", "-l", selector)["items"]

    def master_exit_code(self, namespace: str) -> int | None:
        for pod in self.pods(namespace, "job-name=loadstack-master"):
            for status in pod.get("status", {}).get("containerStatuses", []):
                terminated = status.get("state", {}).get("terminated")
                if terminated:
                    return int(terminated["exitCode"])
        return None

    def job_condition(self, namespace: str) -> str | None:
        job = self.json("-n", namespace, "get", "job", "loadstack-master")
        for cond in job.get("status", {}).get("conditions", []):
            if cond.get("status") == "True" and cond["type"] in ("Complete", "Failed"):
                return str(cond["type"])
        return None

    def logs(self, namespace: str, target: str) -> str:
        return self.kubectl("-n", namespace, "logs", target, check=False)

    def delete_namespace(self, name: str) -> None:
        self.kubectl("delete", "namespace", name, "--wait=true", "--timeout=180s", timeout=240, check=False)
        self.kubectl("delete", "pv", f"results-{name}", "--wait=false", check=False)
        if name in self.namespaces:
            self.namespaces.remove(name)


@pytest.fixture(scope="session")
def cluster() -> Iterator[Cluster]:
    if os.geteuid() != 0:
        pytest.skip("the real-cluster tests need root (network namespaces, a kubelet)")
    t0 = time.monotonic()
    _run([str(HARNESS / "build.sh")], timeout=3600)
    TIMINGS["build (cached when < 5 s)"] = time.monotonic() - t0
    t0 = time.monotonic()
    _run([str(ROOT / "infra/offline/build-images.sh")], timeout=1800)
    TIMINGS["project image (offline build)"] = time.monotonic() - t0

    work = Path(tempfile.mkdtemp(prefix="loadstack-k8s-"))
    netns = f"lsk8s-{os.getpid()}"
    bin_dir = work / "bin"
    bin_dir.mkdir()
    wrapper = bin_dir / "kubectl"
    wrapper.write_text(f'#!/bin/sh\nexec "{HARNESS / "cluster.sh"}" kubectl "{work}" "{netns}" "$@"\n')
    wrapper.chmod(0o755)
    c = Cluster(work=work, netns=netns, bin_dir=bin_dir)
    try:
        t0 = time.monotonic()
        c.cluster_sh("up", timeout=900)
        TIMINGS["cluster start"] = time.monotonic() - t0
        t0 = time.monotonic()
        c.cluster_sh("load", IMAGE, timeout=900)
        TIMINGS["image load into the cluster"] = time.monotonic() - t0
        yield c
    finally:
        for name in list(c.namespaces):
            print(f"\n--- namespace {name} at teardown:\n" + c.kubectl("-n", name, "get", "all", check=False))
        c.cluster_sh("down", timeout=300, check=False)
        shutil.rmtree(work, ignore_errors=True)
        leftover = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True).stdout
        assert netns not in leftover, f"network namespace {netns} was not deleted"
