"""The with-backends overlay on a real kubelet: PostgreSQL, RabbitMQ, Redis and the demo platform in
the cluster, the chains profile with its seed, teardown leaving nothing, the backends' password only
in its Secret.

The overlay is applied through one test layer that does what docs/kubernetes.md tells air-gapped
users to do (map the official backend images to the offline builds of infra/images) and lowers the
pods' CPU requests so the whole stack fits the test's 2-CPU node.
"""

from __future__ import annotations

import json
import os
import secrets
import time
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.e2e_k8s.conftest import TIMINGS, Cluster
from tests.helpers import ROOT, loadstack

pytestmark = [pytest.mark.k8s, pytest.mark.slow]

PASSWORD = secrets.token_hex(16)
OFFLINE = {
    "postgres": "loadstack/postgres:15",
    "rabbitmq": "loadstack/rabbitmq:3",
    "redis": "loadstack/redis:7",
}
SMALL_CPU = {"target": "100m", "consumer": "50m", "postgres": "50m", "rabbitmq": "50m", "redis": "50m"}


def _layer(where: Path) -> Path:
    where.mkdir()
    doc: dict[str, Any] = {
        "apiVersion": "kustomize.config.k8s.io/v1beta1",
        "kind": "Kustomization",
        "resources": [os.path.relpath(ROOT / "infra/k8s/overlays/with-backends", where)],
        "images": [
            {"name": "postgres", "newName": "loadstack/postgres", "newTag": "15"},
            {"name": "rabbitmq", "newName": "loadstack/rabbitmq", "newTag": "3"},
            {"name": "redis", "newName": "loadstack/redis", "newTag": "7"},
        ],
        "patches": [
            {
                "target": {"kind": "Deployment", "name": name},
                "patch": json.dumps(
                    [
                        {
                            "op": "replace",
                            "path": "/spec/template/spec/containers/0/resources/requests/cpu",
                            "value": cpu,
                        }
                    ]
                ),
            }
            for name, cpu in SMALL_CPU.items()
        ],
    }
    (where / "kustomization.yaml").write_text(yaml.safe_dump(doc, sort_keys=False))
    return where


def test_with_backends_runs_the_chains_profile_and_leaves_nothing(cluster: Cluster, tmp_path: Path) -> None:
    t0 = time.monotonic()
    cluster.cluster_sh("load", *OFFLINE.values(), timeout=900)
    TIMINGS["with-backends: backend images loaded"] = time.monotonic() - t0
    ns = cluster.namespace(f"lsb-{os.getpid()}")
    try:
        secret = {
            "apiVersion": "v1",
            "kind": "Secret",
            "metadata": {"name": "loadstack-backends"},
            "stringData": {"password": PASSWORD},
        }
        cluster.kubectl("-n", ns, "apply", "-f", "-", stdin=json.dumps(secret))
        run_id = "k8s-backends"
        rendered = loadstack(
            "k8s", "render", "--overlay", str(_layer(tmp_path / "layer")), "--workers", "2", "--profile", "chains",
            "--run-id", run_id, "--users", "4", "--spawn-rate", "4", "--run-time", "30s",
        )  # fmt: skip
        assert rendered.returncode == 0, rendered.stderr
        assert PASSWORD not in rendered.stdout
        t0 = time.monotonic()
        cluster.apply(ns, rendered.stdout)
        done = cluster.wait(lambda: cluster.job_condition(ns) is not None, 900, interval=3)
        log = cluster.logs(ns, "job/loadstack-master")
        assert done, log[-4000:]
        TIMINGS["with-backends: apply -> Job done"] = time.monotonic() - t0
        assert cluster.job_condition(ns) == "Complete", log[-4000:]
        assert cluster.master_exit_code(ns) == 0
        doc = json.loads((cluster.volume(ns) / run_id / "summary.json").read_text())
        assert doc["totals"]["count"] > 0 and doc["outcome"]["exit_code"] == 0
        assert doc["chains"], "the chains ran"
        assert doc["teardown"]["left"] in ({}, [], None), doc["teardown"]
        assert doc["seed"] and "seed: " in log and " created" in log, doc.get("seed")
        logs = "\n".join(
            cluster.logs(ns, p["metadata"]["name"]) for p in cluster.json("-n", ns, "get", "pods")["items"]
        )
        assert PASSWORD not in logs, "the backends' password is in a pod's log"
        for path in cluster.volume(ns).rglob("*"):
            if path.is_file():
                assert PASSWORD.encode() not in path.read_bytes(), f"the password is in {path}"
    finally:
        cluster.delete_namespace(ns)
