"""Reading rendered Kubernetes manifests the way the kubelet would: containers, env, expanded args."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import yaml

from loadstack import k8s

ROOT = Path(__file__).resolve().parents[1]
OVERLAYS = ROOT / "infra" / "k8s" / "overlays"


def kustomize(folder: Path) -> list[dict[str, Any]]:
    """``kubectl kustomize FOLDER`` — what ``kubectl apply -k FOLDER`` would send."""
    assert shutil.which("kubectl"), "kubectl is needed: its built-in kustomize builds infra/k8s"
    out = subprocess.run(
        ["kubectl", "kustomize", str(folder)], capture_output=True, text=True, timeout=120, check=False
    )
    assert out.returncode == 0, out.stderr
    return [d for d in yaml.safe_load_all(out.stdout) if d]


def rendered(**fields: Any) -> tuple[list[dict[str, Any]], dict[str, str]]:
    text, settings, problems = k8s.render(k8s.RenderRequest(**fields))
    assert problems == []
    return [d for d in yaml.safe_load_all(text) if d], settings


def one(docs: list[dict[str, Any]], kind: str, name: str) -> dict[str, Any]:
    found = k8s.find(docs, kind, name)
    assert found is not None, f"no {kind}/{name} in {[(d['kind'], d['metadata']['name']) for d in docs]}"
    return found


def pod_spec(doc: dict[str, Any]) -> dict[str, Any]:
    return doc["spec"]["template"]["spec"]


def container(doc: dict[str, Any], name: str) -> dict[str, Any]:
    return next(c for c in pod_spec(doc)["containers"] if c["name"] == name)


def _expand(text: str, env: dict[str, str]) -> str:
    # Kubernetes leaves a reference to an undefined variable as it is.
    return re.sub(r"\$\(([A-Za-z_][A-Za-z0-9_]*)\)", lambda m: env.get(m[1], m[0]), text)


def container_env(
    docs: list[dict[str, Any]], c: dict[str, Any], secrets: dict[str, str] | None = None
) -> dict[str, str]:
    """The container's environment: envFrom first, then env (with ``$(VAR)`` expanded), as the kubelet does.

    ``secrets`` stands in for the values of Secrets (a cluster has them, the manifests never do).
    """
    secrets = secrets or {}
    env: dict[str, str] = {}
    for source in c.get("envFrom", []):
        if "configMapRef" in source:
            cm = next(
                d
                for d in docs
                if d["kind"] == "ConfigMap" and d["metadata"]["name"] == source["configMapRef"]["name"]
            )
            env.update(cm.get("data", {}))
        else:
            assert source["secretRef"].get("optional") is True, (
                "a Secret the user may not have must be optional"
            )
    for var in c.get("env", []):
        if "value" in var:
            env[var["name"]] = _expand(var["value"], env)
        elif "secretKeyRef" in var.get("valueFrom", {}):
            env[var["name"]] = secrets.get(var["valueFrom"]["secretKeyRef"]["key"], "from-a-secret")
        elif "configMapKeyRef" in var.get("valueFrom", {}):
            ref = var["valueFrom"]["configMapKeyRef"]
            cm = next(d for d in docs if d["kind"] == "ConfigMap" and d["metadata"]["name"] == ref["name"])
            env[var["name"]] = cm["data"][ref["key"]]
    return env


def argv(docs: list[dict[str, Any]], c: dict[str, Any]) -> list[str]:
    """command + args with ``$(VAR)`` expanded from the container's environment."""
    env = container_env(docs, c)
    return [_expand(a, env) for a in [*c.get("command", []), *c.get("args", [])]]


def replace_flag(args: list[str], flag: str, value: str) -> list[str]:
    i = args.index(flag)
    return [*args[: i + 1], value, *args[i + 2 :]]
