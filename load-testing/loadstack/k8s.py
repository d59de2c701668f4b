"""Kubernetes: render infra/k8s for a run's parameters, and copy a run's results out of the cluster.

The manifests are plain kustomize (``kubectl apply -k infra/k8s/overlays/<overlay>``).  ``render``
adds one more kustomize layer on top of an overlay, in a temporary folder, with the values given
on the command line, and lets ``kubectl kustomize`` build it: what is printed is exactly what
kustomize makes of the files users would apply themselves.

Results live on a PersistentVolumeClaim the master Job writes ``<run_id>/`` to, so they outlive
the Job.  ``fetch`` starts a short-lived pod that mounts that volume read-only, ``kubectl cp``s
``<run_id>/`` out and deletes the pod again.
"""

from __future__ import annotations

import argparse
import ipaddress
import json
import os
import secrets
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import yaml

from loadstack import exitcodes, flags, masking, paths, results, runcontext, safety

RUN_CONFIGMAP = "loadstack-run"
WORKER_DEPLOYMENT = "loadstack-worker"
RESULTS_PVC = "loadstack-results"
RESULTS_MOUNT = "/app/results"  # the image's LOADSTACK_RESULTS_DIR; the master Job mounts the PVC here
DEFAULT_IMAGE = "loadstack:dev"
# Folders with a kustomization.yaml that packs their files into ConfigMaps, and what it must list.
CONTENT = {
    "profiles": ("*.yml", "slo/*.yml"),
    "load-testing/locustfiles": ("*.py",),
    "load-testing/chains": ("*.yml",),
}
SLO_CONFIGMAP = "loadstack-profiles-slo"
# The master waits for as many workers as the Deployment starts (same block as in the overlays).
REPLACEMENTS = [
    {
        "source": {"kind": "Deployment", "name": WORKER_DEPLOYMENT, "fieldPath": "spec.replicas"},
        "targets": [
            {
                "select": {"kind": "ConfigMap", "name": RUN_CONFIGMAP},
                "fieldPaths": ["data.LOADSTACK_WORKERS"],
            },
            {
                "select": {"kind": "HorizontalPodAutoscaler", "name": WORKER_DEPLOYMENT},
                "fieldPaths": ["spec.minReplicas"],
            },
        ],
    }
]


class K8sError(Exception):
    def __init__(self, message: str, exit_code: int = exitcodes.BAD_INPUT) -> None:
        super().__init__(message)
        self.exit_code = exit_code


def k8s_dir() -> Path:
    return paths.project_root() / "infra" / "k8s"


def _kustomizations(folder: str) -> list[str]:
    root = k8s_dir() / folder
    if not root.is_dir():
        return []
    return sorted(d.name for d in root.iterdir() if (d / "kustomization.yaml").is_file())


def overlays() -> list[str]:
    return _kustomizations("overlays")


def components() -> list[str]:
    return _kustomizations("components")


# -- render ---------------------------------------------------------------------------------------
@dataclass
class RenderRequest:
    overlay: str = "default"
    workers: int | None = None
    profile: str | None = None
    image: str | None = None
    host: str | None = None
    run_id: str | None = None
    allow_remote: bool = False
    namespace: str | None = None
    users: int | None = None
    spawn_rate: float | None = None
    run_time: str | None = None
    components: list[str] = field(default_factory=list)


def overlay_dir(overlay: str) -> Path:
    """An overlay of infra/k8s/overlays by name, or any kustomization folder by path."""
    named = k8s_dir() / "overlays" / overlay
    for candidate in (named, Path(overlay)):
        if (candidate / "kustomization.yaml").is_file():
            return candidate.resolve()
    raise K8sError(
        f"--overlay {overlay!r}: no such overlay (have: {', '.join(overlays()) or 'none'} in "
        f"{k8s_dir() / 'overlays'}, or give a folder with a kustomization.yaml)"
    )


def image_fields(image: str) -> dict[str, str]:
    """``registry/name:tag`` or ``name@sha256:…`` as a kustomize ``images:`` entry for ``loadstack``."""
    entry = {"name": "loadstack"}
    if "@" in image:
        entry["newName"], entry["digest"] = image.split("@", 1)
    elif ":" in image.rsplit("/", 1)[-1]:
        entry["newName"], entry["newTag"] = image.rsplit(":", 1)
    else:
        entry["newName"] = image
    if not entry["newName"]:
        raise K8sError(f"--image {image!r}: give NAME[:TAG] or NAME@DIGEST")
    return entry


def kustomization(request: RenderRequest, where: Path) -> dict[str, Any]:
    """The extra kustomize layer ``render`` puts on the overlay (paths relative to ``where``)."""

    def rel(path: Path) -> str:
        return os.path.relpath(path, where)

    doc: dict[str, Any] = {
        "apiVersion": "kustomize.config.k8s.io/v1beta1",
        "kind": "Kustomization",
        "resources": [rel(overlay_dir(request.overlay))],
    }
    if request.components:
        unknown = [c for c in request.components if c not in components()]
        if unknown:
            raise K8sError(
                f"--component {', '.join(unknown)}: no such component (have: {', '.join(components())})"
            )
        doc["components"] = [rel(k8s_dir() / "components" / c) for c in request.components]
    if request.namespace:
        doc["namespace"] = request.namespace
    if request.image:
        doc["images"] = [image_fields(request.image)]
    if request.workers is not None:
        doc["replicas"] = [{"name": WORKER_DEPLOYMENT, "count": request.workers}]
    literals = {
        "LOADSTACK_PROFILE": request.profile,
        "LOCUST_HOST": request.host,
        "LOADSTACK_RUN_ID": request.run_id,
        "LOADSTACK_ALLOW_REMOTE": "1" if request.allow_remote else None,
        "LOADSTACK_USERS": request.users,
        "LOADSTACK_SPAWN_RATE": request.spawn_rate,
        "LOADSTACK_RUN_TIME": request.run_time,
    }
    doc["configMapGenerator"] = [
        {
            "name": RUN_CONFIGMAP,
            "behavior": "merge",
            "literals": [f"{k}={v}" for k, v in literals.items() if v is not None],
        }
    ]
    doc["replacements"] = REPLACEMENTS
    return doc


def kustomize_command(folder: Path) -> list[str]:
    if kubectl := shutil.which("kubectl"):
        return [kubectl, "kustomize", str(folder)]
    if kustomize := shutil.which("kustomize"):
        return [kustomize, "build", str(folder)]
    raise K8sError("neither kubectl nor kustomize is on PATH: install kubectl (kustomize is built in)")


def build(folder: Path) -> str:
    """``kubectl kustomize FOLDER``; kustomize's own message on failure."""
    proc = subprocess.run(kustomize_command(folder), capture_output=True, text=True, timeout=120)
    if proc.returncode != 0:
        raise K8sError(f"kustomize failed for {folder}:\n{proc.stderr.strip()}")
    return proc.stdout


def documents(text: str) -> list[dict[str, Any]]:
    return [d for d in yaml.safe_load_all(text) if d]


def find(docs: list[dict[str, Any]], kind: str, name: str) -> dict[str, Any] | None:
    """A rendered object by kind and name; generated ConfigMaps match with their hash suffix."""
    for d in docs:
        actual = d.get("metadata", {}).get("name", "")
        if d.get("kind") == kind and (
            actual == name or (kind == "ConfigMap" and actual.rsplit("-", 1)[0] == name)
        ):
            return d
    return None


def content_problems(docs: list[dict[str, Any]] | None = None) -> list[str]:
    """Files the ConfigMap generators do not list, and SLO files no pod mounts under slo/.

    A profile, locustfile or chain file missing from its folder's kustomization.yaml would be
    missing in the pods too (the ConfigMaps replace the image's copies).
    """
    problems = []
    root = paths.project_root()
    for folder, patterns in CONTENT.items():
        kfile = root / folder / "kustomization.yaml"
        listed = {
            entry.split("=", 1)[-1]
            for gen in (yaml.safe_load(kfile.read_text()) or {}).get("configMapGenerator", [])
            for entry in gen.get("files", [])
        }
        on_disk = {str(p.relative_to(root / folder)) for pat in patterns for p in (root / folder).glob(pat)}
        problems += [
            f"{folder}/{f} is not listed in {folder}/kustomization.yaml" for f in sorted(on_disk - listed)
        ]
        problems += [
            f"{folder}/kustomization.yaml lists {f}, which does not exist" for f in sorted(listed - on_disk)
        ]
    slo = find(docs or [], "ConfigMap", SLO_CONFIGMAP)
    for d in docs or []:
        volumes = d.get("spec", {}).get("template", {}).get("spec", {}).get("volumes", [])
        for v in volumes:
            for source in v.get("projected", {}).get("sources", []):
                cm = source.get("configMap") or {}
                if slo and cm.get("name") == slo["metadata"]["name"]:
                    mapped = {i["key"]: i["path"] for i in cm.get("items", [])}
                    problems += [
                        f"{d['kind']}/{d['metadata']['name']}: volume {v['name']} does not map "
                        f"{SLO_CONFIGMAP} key {key} to slo/{key}"
                        for key in sorted(slo.get("data", {}))
                        if mapped.get(key) != f"slo/{key}"
                    ]
    return problems


def check_rendered(docs: list[dict[str, Any]], request: RenderRequest) -> dict[str, str]:
    """What the master will refuse (exit 2) is refused here already; returns the run settings.

    Also refused: no target at all (the master would start a demo platform on its own loopback,
    out of the workers' reach) and the default overlay's placeholder host.
    """
    run = find(docs, "ConfigMap", RUN_CONFIGMAP)
    profiles_cm = find(docs, "ConfigMap", "loadstack-profiles")
    if run is None or profiles_cm is None:
        raise K8sError(
            f"{request.overlay}: the rendered manifests have no {RUN_CONFIGMAP}/loadstack-profiles"
        )
    settings: dict[str, str] = run.get("data", {})
    profile = settings.get("LOADSTACK_PROFILE", "")
    available = sorted(k.rsplit(".", 1)[0] for k in profiles_cm.get("data", {}))
    if profile not in available:
        raise K8sError(
            f"--profile {profile!r}: not in profiles/kustomization.yaml (the pods see only those: "
            f"{', '.join(available)})"
        )
    host = settings.get("LOCUST_HOST", "")
    if urlsplit(host).password is not None or "@" in urlsplit(host).netloc:
        raise K8sError(
            "--host: credentials in the target URL would be written into a ConfigMap in plain text; "
            "give them to the pods from a Secret (loadstack-secrets) instead"
        )
    if not host or safety.host_of(host).endswith(".invalid"):
        raise K8sError(
            f"overlay {request.overlay!r} has no real target ({host or 'none'}): give --host URL "
            "(and --allow-remote for a platform that is not local)"
        )
    try:
        # A service name of the overlay's own stack resolves only in the cluster: the pods check it there.
        if safety.host_of(host).lower() not in safety.COMPOSE_SERVICES:
            safety.check_target(host, allow_remote=settings.get("LOADSTACK_ALLOW_REMOTE") == "1", what="host")
    except ValueError as exc:
        raise K8sError(str(exc)) from None
    try:
        runcontext.check_run_id(settings.get("LOADSTACK_RUN_ID", ""))
    except ValueError as exc:
        raise K8sError(f"--run-id: {exc}") from None
    return settings


def render(request: RenderRequest) -> tuple[str, dict[str, str], list[str]]:
    """(manifests, the run's settings, warnings) for ``request``."""
    if request.run_id is None:
        request.run_id = runcontext.new_run_id()
    with tempfile.TemporaryDirectory(prefix="loadstack-k8s-") as tmp:
        where = Path(tmp)
        (where / "kustomization.yaml").write_text(
            yaml.safe_dump(kustomization(request, where), sort_keys=False)
        )
        text = build(where)
    docs = documents(text)
    settings = check_rendered(docs, request)
    warnings = content_problems(docs)
    if _loopback(settings["LOCUST_HOST"]):
        warnings.append(
            f"host {settings['LOCUST_HOST']} is loopback: in a cluster that is each pod itself, not your platform"
        )
    return text, settings, warnings


def _loopback(url: str) -> bool:
    host = safety.host_of(url).strip("[]").lower()
    try:
        return host in safety.LOCAL_NAMES or ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def cmd_render(args: argparse.Namespace) -> int:
    request = RenderRequest(
        overlay=args.overlay,
        workers=args.workers,
        profile=args.profile,
        image=args.image,
        host=args.host,
        run_id=args.run_id,
        allow_remote=args.allow_remote,
        namespace=args.namespace,
        users=args.users,
        spawn_rate=args.spawn_rate,
        run_time=args.run_time,
        components=args.component or [],
    )
    text, settings, warnings = render(request)
    for w in warnings:
        print(f"loadstack k8s render: warning: {w}", file=sys.stderr)
    print(f"# loadstack k8s render: overlay {request.overlay}, run {settings['LOADSTACK_RUN_ID']}")
    masking.write_verbatim(text)  # the manifests as kustomize made them: no secret is inlined in them
    print(
        f"run {settings['LOADSTACK_RUN_ID']}: profile {settings['LOADSTACK_PROFILE']}, "
        f"{settings.get('LOADSTACK_WORKERS')} workers -> {settings['LOCUST_HOST']}; "
        f"results: loadstack k8s fetch {settings['LOADSTACK_RUN_ID']}",
        file=sys.stderr,
    )
    return exitcodes.OK


# -- fetch ----------------------------------------------------------------------------------------
def fetch_pod(name: str, *, image: str = DEFAULT_IMAGE, pvc: str = RESULTS_PVC) -> dict[str, Any]:
    """A pod that mounts the results volume read-only and idles (bounded) while ``kubectl cp`` reads."""
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            "name": name,
            "labels": {
                "app.kubernetes.io/name": "loadstack",
                "app.kubernetes.io/part-of": "loadstack",
                "app.kubernetes.io/component": "fetch",
            },
        },
        "spec": {
            "restartPolicy": "Never",
            "activeDeadlineSeconds": 900,  # gone even if fetch is interrupted before it deletes it
            "securityContext": {"runAsNonRoot": True, "runAsUser": 10001, "runAsGroup": 10001},
            "containers": [
                {
                    "name": "fetch",
                    "image": image,
                    "imagePullPolicy": "IfNotPresent",
                    "command": ["sleep", "900"],
                    "resources": {
                        "requests": {"cpu": "10m", "memory": "32Mi"},
                        "limits": {"cpu": "500m", "memory": "128Mi"},
                    },
                    "securityContext": {"allowPrivilegeEscalation": False, "capabilities": {"drop": ["ALL"]}},
                    "volumeMounts": [{"name": "results", "mountPath": RESULTS_MOUNT, "readOnly": True}],
                }
            ],
            "volumes": [{"name": "results", "persistentVolumeClaim": {"claimName": pvc, "readOnly": True}}],
        },
    }


@dataclass
class Fetch:
    """The kubectl calls of one ``loadstack k8s fetch``, in order."""

    run_id: str
    output: Path
    namespace: str | None = None
    context: str | None = None
    image: str = DEFAULT_IMAGE
    pvc: str = RESULTS_PVC
    pod: str = field(default_factory=lambda: f"loadstack-fetch-{secrets.token_hex(3)}")
    wait: str = "180s"

    def kubectl(self, *args: str) -> list[str]:
        cmd = ["kubectl"]
        if self.context:
            cmd += ["--context", self.context]
        if self.namespace:
            cmd += ["--namespace", self.namespace]
        return [*cmd, *args]

    def create(self) -> list[str]:
        return self.kubectl("apply", "-f", "-")  # the pod manifest on stdin

    def ready(self) -> list[str]:
        return self.kubectl("wait", "--for=condition=Ready", f"pod/{self.pod}", f"--timeout={self.wait}")

    def list_runs(self) -> list[str]:
        return self.kubectl("exec", self.pod, "--", "ls", "-1", "-p", RESULTS_MOUNT)

    def resolve_latest(self) -> list[str]:
        return self.kubectl("exec", self.pod, "--", "readlink", f"{RESULTS_MOUNT}/latest")

    def history(self) -> list[str]:
        return self.kubectl("exec", self.pod, "--", "cat", f"{RESULTS_MOUNT}/history.jsonl")

    def copy(self, run_id: str) -> list[str]:
        return self.kubectl("cp", f"{self.pod}:{RESULTS_MOUNT}/{run_id}", str(self.output / run_id))

    def delete(self) -> list[str]:
        return self.kubectl("delete", "pod", self.pod, "--wait=false", "--ignore-not-found")


def _kubectl(
    cmd: list[str], *, stdin: str | None = None, timeout: float = 300
) -> subprocess.CompletedProcess[str]:
    try:
        return subprocess.run(cmd, input=stdin, capture_output=True, text=True, timeout=timeout)
    except FileNotFoundError:
        raise K8sError("kubectl is not on PATH") from None
    except subprocess.TimeoutExpired:
        raise K8sError(
            f"{' '.join(cmd[:4])} …: no answer within {timeout:.0f} s", exitcodes.FAILURES
        ) from None


def _checked(cmd: list[str], what: str, **kw: Any) -> str:
    proc = _kubectl(cmd, **kw)
    if proc.returncode != 0:
        raise K8sError(f"{what}: {proc.stderr.strip() or proc.stdout.strip()}", exitcodes.FAILURES)
    return proc.stdout


def fetch(plan: Fetch) -> Path:
    """Copy ``<run_id>/`` (``latest`` = the newest run) from the results volume to ``plan.output``."""
    manifest = json.dumps(fetch_pod(plan.pod, image=plan.image, pvc=plan.pvc))
    _checked(plan.create(), "creating the fetch pod", stdin=manifest)
    try:
        try:
            _checked(plan.ready(), f"pod {plan.pod} did not become ready", timeout=600)
        except K8sError as exc:
            raise K8sError(
                f"{exc}\n(a ReadWriteOnce volume is free only once the master pod has ended: "
                "kubectl wait --for=condition=complete job/loadstack-master)",
                exitcodes.FAILURES,
            ) from None
        run_id = plan.run_id
        if run_id == "latest":
            run_id = _checked(
                plan.resolve_latest(), "no results/latest on the volume (no run finished yet?)"
            ).strip()
        runs = [
            line[:-1]
            for line in _checked(plan.list_runs(), "listing the results volume").split()
            if line.endswith("/")
        ]
        if run_id not in runs:
            raise K8sError(
                f"no run {run_id!r} on volume {plan.pvc} (runs there: {', '.join(sorted(runs)[-10:]) or 'none'})"
            )
        if (plan.output / run_id).exists():
            raise K8sError(f"{plan.output / run_id} exists already; remove it or fetch into another --output")
        plan.output.mkdir(parents=True, exist_ok=True)
        _checked(plan.copy(run_id), f"copying {run_id}", timeout=1800)
        history = _kubectl(plan.history())
        if history.returncode == 0:
            _merge_history(plan.output, run_id, history.stdout)
    finally:
        _kubectl(plan.delete())
    local = plan.output / run_id
    if not (local / "summary.json").is_file():
        raise K8sError(
            f"copied {local}, but it has no summary.json (the run did not finish)", exitcodes.FAILURES
        )
    results.update_latest(plan.output, run_id)
    return local


def _merge_history(output: Path, run_id: str, remote: str) -> None:
    """Add the run's line of the volume's history.jsonl to the local one (for report/compare)."""
    local = output / "history.jsonl"

    def run_ids(text: str) -> list[tuple[str, str]]:
        return [(json.loads(line).get("run_id"), line) for line in text.splitlines() if line.strip()]

    if any(r == run_id for r, _ in run_ids(local.read_text(encoding="utf-8") if local.exists() else "")):
        return
    lines = [line for r, line in run_ids(remote) if r == run_id]
    if lines:
        with local.open("a", encoding="utf-8") as fh:
            fh.write(lines[-1] + "\n")


def cmd_fetch(args: argparse.Namespace) -> int:
    if args.run_id != "latest":
        try:
            runcontext.check_run_id(args.run_id)
        except ValueError as exc:
            raise K8sError(str(exc)) from None
    plan = Fetch(
        run_id=args.run_id,
        output=Path(args.output) if args.output else paths.results_root(),
        namespace=args.namespace,
        context=args.context,
        image=args.image,
        pvc=args.pvc,
    )
    local = fetch(plan)
    print(f"results: {local}/ (summary.json, report.html, results_*.csv, logs/)")
    print(f"report:  loadstack report {local.name} --results-dir {plan.output}")
    return exitcodes.OK


# -- command line ---------------------------------------------------------------------------------
def _handled(handler: Any) -> Any:
    def run(args: argparse.Namespace) -> int:
        try:
            return handler(args)
        except K8sError as exc:
            print(f"loadstack k8s {args.k8s_command}: {exc}", file=sys.stderr)
            return exc.exit_code

    return run


def register(subparsers: Any) -> None:
    """Add ``loadstack k8s render|fetch`` to the CLI."""
    k8s = subparsers.add_parser("k8s", help="Kubernetes: render manifests, fetch results").add_subparsers(
        dest="k8s_command", required=True, metavar="ACTION"
    )
    p = k8s.add_parser(
        "render", help="print the manifests of an overlay for these parameters (kubectl apply -f -)"
    )
    p.add_argument(
        "--overlay", default="default", help="name under infra/k8s/overlays or a folder (default: default)"
    )
    p.add_argument("--workers", type=flags.WORKERS, help="worker pods; the master waits for them")
    p.add_argument("--profile", type=flags.profile_name_flag, help="profile name (default: the overlay's)")
    p.add_argument("--image", type=flags.image_flag, help=f"loadstack image (default {DEFAULT_IMAGE})")
    p.add_argument("--host", type=flags.url_flag, help="system under test (default: the overlay's)")
    p.add_argument("--allow-remote", action="store_true", help="permit a target that is not local")
    p.add_argument("--run-id", type=flags.run_id_flag, help="default: timestamp + random suffix")
    p.add_argument("--namespace", "-n", type=flags.namespace_flag, help="put everything in this namespace")
    p.add_argument(
        "--component", action="append", metavar="NAME", help="add a component (worker-hpa, servicemonitor)"
    )
    p.add_argument("--users", "-u", type=flags.USERS, help="peak users (default: the profile's)")
    p.add_argument("--spawn-rate", "-r", type=flags.SPAWN_RATE, help="users started per second")
    p.add_argument("--run-time", "-t", type=flags.duration_flag, help="e.g. 30s, 5m")
    p.set_defaults(handler=_handled(cmd_render))
    p = k8s.add_parser("fetch", help="copy results/<RUN_ID>/ from the cluster's results volume")
    p.add_argument("run_id", metavar="RUN_ID", help="a run id, or latest")
    p.add_argument("--output", "-o", help="local results folder (default ./results)")
    p.add_argument(
        "--namespace", "-n", type=flags.namespace_flag, help="the run's namespace (default: kubectl's)"
    )
    p.add_argument("--context", type=flags.text_flag, help="kubectl context (default: the current one)")
    p.add_argument(
        "--image",
        default=DEFAULT_IMAGE,
        type=flags.image_flag,
        help=f"image of the fetch pod, needs tar (default {DEFAULT_IMAGE})",
    )
    p.add_argument(
        "--pvc",
        default=RESULTS_PVC,
        type=flags.object_name_flag,
        help=f"results volume claim (default {RESULTS_PVC})",
    )
    p.set_defaults(handler=_handled(cmd_fetch))
