"""infra/k8s: every overlay builds with kubectl's kustomize and validates against a pinned Kubernetes
schema; the pods' commands are real `loadstack` command lines; render and fetch do what they say."""

from __future__ import annotations

import json
import os
import stat
import sys
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml

from loadstack import k8s, settings
from loadstack.cli import build_parser, cmd_master, cmd_worker
from loadstack.masking import SECRET_NAME
from tests.helpers import loadstack
from tests.k8s_manifests import (
    OVERLAYS,
    ROOT,
    argv,
    container,
    container_env,
    kustomize,
    one,
    pod_spec,
    rendered,
)

# The oldest Kubernetes minor the manifests promise to work on (schemas ship with kubernetes-validate).
K8S_VERSION = "1.30.0"


def validate(docs: list[dict[str, Any]]) -> None:
    for doc in docs:
        if doc["apiVersion"].startswith("monitoring.coreos.com/"):
            check_servicemonitor(doc, docs)
            continue
        try:
            kubernetes_validate.validate(doc, K8S_VERSION, strict=True)
        except kubernetes_validate.ValidationError as exc:
            pytest.fail(f"{doc['kind']}/{doc['metadata']['name']}: {exc.message} at {list(exc.path)}")


def check_servicemonitor(doc: dict[str, Any], docs: list[dict[str, Any]]) -> None:
    """A CRD has no schema here: check what makes it work — it selects the master Service's metrics port."""
    assert doc["kind"] == "ServiceMonitor" and doc["apiVersion"] == "monitoring.coreos.com/v1"
    service = one(docs, "Service", "loadstack-master")
    selector = doc["spec"]["selector"]["matchLabels"]
    assert selector.items() <= service["metadata"]["labels"].items()
    ports = {p["name"] for p in service["spec"]["ports"]}
    assert {e["port"] for e in doc["spec"]["endpoints"]} <= ports
    assert set(doc["spec"]) <= {"selector", "endpoints", "namespaceSelector", "jobLabel"}


def overlay_names() -> list[str]:
    return sorted(d.name for d in OVERLAYS.iterdir() if (d / "kustomization.yaml").is_file())


def test_the_overlays_are_the_documented_ones() -> None:
    assert overlay_names() == ["default", "servicemonitor", "with-backends"]
    assert k8s.overlays() == overlay_names()
    assert k8s.components() == ["servicemonitor", "worker-hpa"]


@pytest.mark.parametrize("overlay", ["default", "servicemonitor", "with-backends"])
def test_overlay_builds_and_validates(overlay: str) -> None:
    """Exactly what `kubectl apply -k infra/k8s/overlays/<overlay>` sends, schema-checked offline."""
    docs = kustomize(OVERLAYS / overlay)
    validate(docs)
    kinds = {(d["kind"], d["metadata"]["name"]) for d in docs}
    assert {
        ("Job", "loadstack-master"),
        ("Service", "loadstack-master"),
        ("Deployment", "loadstack-worker"),
        ("PersistentVolumeClaim", "loadstack-results"),
    } <= kinds
    if overlay == "with-backends":
        assert {("Deployment", n) for n in ("target", "consumer", "postgres", "redis", "rabbitmq")} <= kinds
        assert not any(d["kind"] == "Secret" for d in docs), "backend credentials come from the user's Secret"
    if overlay == "servicemonitor":
        assert ("ServiceMonitor", "loadstack-master") in kinds
    assert k8s.content_problems(docs) == []


@pytest.mark.parametrize("overlay", ["default", "with-backends"])
def test_pods_are_wired_as_documented(overlay: str) -> None:
    docs = kustomize(OVERLAYS / overlay)
    job, deploy = one(docs, "Job", "loadstack-master"), one(docs, "Deployment", "loadstack-worker")
    service = one(docs, "Service", "loadstack-master")
    assert job["spec"]["backoffLimit"] == 0 and pod_spec(job)["restartPolicy"] == "Never"
    # The Service reaches the master pod, on the ports the master listens on.
    labels = job["spec"]["template"]["metadata"]["labels"]
    assert service["spec"]["selector"].items() <= labels.items()
    master = container(job, "master")
    named = {p["name"]: p["containerPort"] for p in master["ports"]}
    assert named == {"locust": 5557, "web": 8089, "metrics": 9646}
    assert {p["name"]: p["port"] for p in service["spec"]["ports"]} == named
    annotations = job["spec"]["template"]["metadata"]["annotations"]
    assert annotations["prometheus.io/scrape"] == "true" and annotations["prometheus.io/port"] == "9646"
    assert container_env(docs, master)["LOADSTACK_METRICS_BIND"] == "0.0.0.0"
    # Results go to the PVC.
    mounts = {m["name"]: m["mountPath"] for m in master["volumeMounts"]}
    volumes = {v["name"]: v for v in pod_spec(job)["volumes"]}
    assert mounts["results"] == k8s.RESULTS_MOUNT
    assert volumes["results"]["persistentVolumeClaim"]["claimName"] == k8s.RESULTS_PVC
    # Every loadstack container has requests and limits; probes where they mean something.
    for doc in docs:
        if doc["kind"] in ("Job", "Deployment"):
            for c in pod_spec(doc)["containers"] + pod_spec(doc).get("initContainers", []):
                assert {"requests", "limits"} <= c["resources"].keys(), (
                    f"{doc['metadata']['name']}/{c['name']}"
                )
            if doc["kind"] == "Deployment":
                c = pod_spec(doc)["containers"][0]
                assert "readinessProbe" in c and "livenessProbe" in c, doc["metadata"]["name"]
    assert "readinessProbe" in master
    worker = container(deploy, "worker")
    # The worker's probe looks for a connection to the master's port (hex in /proc/net/tcp).
    assert f":{5557:04X} 01 " in worker["readinessProbe"]["exec"]["command"][-1]
    # Secrets are referenced, never inlined.
    for c in (master, worker):
        refs = [s["secretRef"] for s in c["envFrom"] if "secretRef" in s]
        assert refs == [{"name": "loadstack-secrets", "optional": True}]
    for doc in docs:
        if doc["kind"] in ("Job", "Deployment"):
            for c in pod_spec(doc)["containers"]:
                for var in c.get("env", []):
                    if SECRET_NAME.search(var["name"]):
                        assert "secretKeyRef" in var.get("valueFrom", {}), (
                            f"{c['name']}: {var['name']} inlined"
                        )


@pytest.mark.parametrize("overlay", ["default", "servicemonitor", "with-backends"])
def test_where_clusters_differ_the_manifests_take_the_portable_form(overlay: str) -> None:
    """Every Service port names its protocol (server-side apply refuses one without it on 1.20,
    tests/k8s applies them there); the worker HPA is autoscaling/v2 (Kubernetes >= 1.23); the master
    waits for its target instead of failing the run's first seconds (the target starts beside it)."""
    docs, _ = rendered(overlay=overlay, host="http://target:8000", components=["worker-hpa"])
    for service in (d for d in docs if d["kind"] == "Service"):
        for port in service["spec"]["ports"]:
            assert port.get("protocol") == "TCP", f"Service/{service['metadata']['name']} port {port['name']}"
    hpa = one(docs, "HorizontalPodAutoscaler", "loadstack-worker")
    assert hpa["apiVersion"] == "autoscaling/v2"
    run = one(docs, "ConfigMap", k8s.RUN_CONFIGMAP)["data"]
    wait = settings.Settings.load(
        {
            "LOADSTACK_TARGET_WAIT": run["LOADSTACK_TARGET_WAIT"],
            "LOADSTACK_TARGET_HEALTH_PATH": run["LOADSTACK_TARGET_HEALTH_PATH"],
        }
    )
    assert wait.target_wait == 300 and wait.target_health_path == "/health"
    assert not any(pod_spec(d).get("initContainers") for d in docs if d["kind"] in ("Job", "Deployment"))


@pytest.mark.parametrize("overlay", ["default", "with-backends"])
def test_pod_commands_are_real_cli_command_lines(overlay: str) -> None:
    """The rendered Job/Deployment commands, expanded like the kubelet does, parse with the real CLI."""
    docs = kustomize(OVERLAYS / overlay)
    job, deploy = one(docs, "Job", "loadstack-master"), one(docs, "Deployment", "loadstack-worker")
    service = one(docs, "Service", "loadstack-master")
    run = container_env(docs, container(job, "master"))
    master_argv, worker_argv = argv(docs, container(job, "master")), argv(docs, container(deploy, "worker"))
    assert master_argv[0] == worker_argv[0] == "loadstack"
    assert not any("$(" in a for a in master_argv + worker_argv), master_argv + worker_argv

    m = build_parser().parse_args(master_argv[1:])
    assert m.handler is cmd_master and m.headless
    assert m.expect_workers == deploy["spec"]["replicas"]
    assert (
        m.profile == run["LOADSTACK_PROFILE"]
        and m.host == run["LOCUST_HOST"]
        and m.run_id == run["LOADSTACK_RUN_ID"]
    )
    assert m.bind == "0.0.0.0" and m.results_dir == k8s.RESULTS_MOUNT

    w = build_parser().parse_args(worker_argv[1:])
    assert w.handler is cmd_worker
    assert w.master_host == service["metadata"]["name"]
    assert (
        w.master_port
        == m.master_port
        == next(p["port"] for p in service["spec"]["ports"] if p["name"] == "locust")
    )
    assert w.profile == m.profile


def test_with_backends_builds_dsns_from_the_users_secret() -> None:
    docs = kustomize(OVERLAYS / "with-backends")
    for kind, name, cname in [
        ("Job", "loadstack-master", "master"),
        ("Deployment", "loadstack-worker", "worker"),
        ("Deployment", "target", "target"),
    ]:
        env = container_env(
            docs, container(one(docs, kind, name), cname), secrets={"password": "s3cret-value"}
        )
        assert env["LOADSTACK_POSTGRES_DSN"] == "postgresql://loadstack:s3cret-value@postgres:5432/loadstack"
        assert env["LOADSTACK_REDIS_URL"] == "redis://:s3cret-value@redis:6379/0"
        assert env["LOADSTACK_AMQP_URL"] == "amqp://loadstack:s3cret-value@rabbitmq:5672//"
    run = container_env(docs, container(one(docs, "Job", "loadstack-master"), "master"))
    assert run["LOCUST_HOST"] == "http://target:8000" and run["LOADSTACK_ALLOW_REMOTE"] == "0"


def test_render_applies_the_parameters() -> None:
    docs, settings = rendered(
        overlay="with-backends",
        workers=5,
        profile="load",
        image="registry.example/loadstack:1.2",
        run_id="k8s-test-1",
        namespace="loadtest",
        components=["worker-hpa", "servicemonitor"],
        users=40,
        run_time="2m",
    )
    validate(docs)
    deploy, job = one(docs, "Deployment", "loadstack-worker"), one(docs, "Job", "loadstack-master")
    assert deploy["spec"]["replicas"] == 5
    assert one(docs, "HorizontalPodAutoscaler", "loadstack-worker")["spec"]["minReplicas"] == 5
    assert {d["metadata"].get("namespace") for d in docs} == {"loadtest"}
    images = {
        c["image"] for d in docs if d["kind"] in ("Job", "Deployment") for c in pod_spec(d)["containers"]
    }
    assert "registry.example/loadstack:1.2" in images and "loadstack:dev" not in images
    assert settings["LOADSTACK_USERS"] == "40" and settings["LOADSTACK_RUN_TIME"] == "2m"
    m = build_parser().parse_args(argv(docs, container(job, "master"))[1:])
    assert (m.expect_workers, m.profile, m.run_id) == (5, "load", "k8s-test-1")


def test_render_gives_each_run_its_own_id_and_honours_the_opt_in() -> None:
    _, first = rendered(host="http://platform.example.com:8080", allow_remote=True)
    _, second = rendered(host="http://platform.example.com:8080", allow_remote=True)
    assert first["LOADSTACK_RUN_ID"] != second["LOADSTACK_RUN_ID"]
    assert (
        first["LOADSTACK_ALLOW_REMOTE"] == "1" and first["LOCUST_HOST"] == "http://platform.example.com:8080"
    )


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ([], "give --host URL"),
        (["--host", "http://platform.example.com"], "Pass --allow-remote"),
        (["--host", "http://127.0.0.1:8000", "--profile", "nope"], "not in profiles/kustomization.yaml"),
        (["--host", "http://127.0.0.1:8000", "--overlay", "nope"], "no such overlay"),
        (["--host", "http://127.0.0.1:8000", "--component", "nope"], "no such component"),
        (["--host", "http://127.0.0.1:8000", "--run-id", "a b"], "invalid run id"),
        (["--host", "http://app:pw@127.0.0.1:8000"], "credentials in the target URL"),
    ],
)
def test_render_refuses_bad_input(args: list[str], message: str) -> None:
    out = loadstack("k8s", "render", *args, timeout=60)
    assert out.returncode == 2, out.stdout + out.stderr
    assert message in out.stderr and "Traceback" not in out.stderr
    assert out.stdout == ""


def test_render_cli_prints_the_manifests() -> None:
    out = loadstack("k8s", "render", "--workers", "3", "--host", "http://127.0.0.1:8000", "--run-id", "cli-1")
    assert out.returncode == 0, out.stderr
    assert out.stdout.startswith("# loadstack k8s render: overlay default, run cli-1\n")
    assert "loadstack k8s fetch cli-1" in out.stderr
    assert (
        "warning: host http://127.0.0.1:8000 is loopback: in a cluster that is each pod itself" in out.stderr
    )
    docs = [d for d in yaml.safe_load_all(out.stdout) if d]
    validate(docs)
    assert one(docs, "Deployment", "loadstack-worker")["spec"]["replicas"] == 3
    # The files in the ConfigMaps are the files, byte for byte: the CLI's output masker once turned
    # `self.password = uuid.uuid4().hex` into `***` there, and the pods failed on a SyntaxError.
    for cm, folder in (
        ("loadstack-locustfiles", "load-testing/locustfiles"),
        ("loadstack-profiles", "profiles"),
    ):
        for key, text in one(docs, "ConfigMap", cm)["data"].items():
            assert text == (ROOT / folder / key).read_text(), f"{cm}/{key} differs from {folder}/{key}"


def test_content_generators_list_every_file() -> None:
    assert k8s.content_problems() == []


def test_an_unlisted_profile_is_named(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    for folder in k8s.CONTENT:
        (tmp_path / folder).mkdir(parents=True)
        for f in (ROOT / folder).rglob("*"):
            if f.is_file():
                (tmp_path / folder / f.relative_to(ROOT / folder)).parent.mkdir(parents=True, exist_ok=True)
                (tmp_path / folder / f.relative_to(ROOT / folder)).write_bytes(f.read_bytes())
    (tmp_path / "profiles" / "mine.yml").write_text("name: mine\n")
    (tmp_path / "profiles" / "slo" / "strict.yml").write_text("thresholds: []\n")
    monkeypatch.setenv("LOADSTACK_HOME", str(tmp_path))
    settings.refresh()  # loadstack reads its environment once per process
    try:
        problems = k8s.content_problems()
    finally:
        monkeypatch.undo()
        settings.refresh()
    assert problems == [
        "profiles/mine.yml is not listed in profiles/kustomization.yaml",
        "profiles/slo/strict.yml is not listed in profiles/kustomization.yaml",
    ]


def test_an_slo_file_no_pod_mounts_is_named() -> None:
    docs = kustomize(OVERLAYS / "default")
    job = one(docs, "Job", "loadstack-master")
    profiles = next(v for v in pod_spec(job)["volumes"] if v["name"] == "profiles")
    profiles["projected"]["sources"][1]["configMap"]["items"] = []
    assert k8s.content_problems(docs) == [
        "Job/loadstack-master: volume profiles does not map loadstack-profiles-slo key demo.yml to slo/demo.yml"
    ]


def test_image_fields() -> None:
    assert k8s.image_fields("loadstack:dev") == {"name": "loadstack", "newName": "loadstack", "newTag": "dev"}
    assert k8s.image_fields("reg:5000/team/ls") == {"name": "loadstack", "newName": "reg:5000/team/ls"}
    assert k8s.image_fields("reg:5000/ls:1") == {"name": "loadstack", "newName": "reg:5000/ls", "newTag": "1"}
    assert k8s.image_fields("ls@sha256:ab") == {"name": "loadstack", "newName": "ls", "digest": "sha256:ab"}


# -- fetch -----------------------------------------------------------------------------------------
def test_fetch_pod_validates_and_mounts_the_volume_read_only() -> None:
    pod = k8s.fetch_pod("loadstack-fetch-abc", image="reg/ls:2", pvc="my-results")
    validate([pod])
    spec = pod["spec"]
    assert spec["volumes"] == [
        {"name": "results", "persistentVolumeClaim": {"claimName": "my-results", "readOnly": True}}
    ]
    assert spec["containers"][0]["volumeMounts"][0] == {
        "name": "results",
        "mountPath": "/app/results",
        "readOnly": True,
    }
    assert spec["activeDeadlineSeconds"] <= 900 and spec["containers"][0]["image"] == "reg/ls:2"


def test_fetch_commands() -> None:
    plan = k8s.Fetch(
        run_id="r1", output=Path("/tmp/out"), namespace="lt", context="kind-x", pod="loadstack-fetch-1"
    )
    base = ["kubectl", "--context", "kind-x", "--namespace", "lt"]
    assert plan.create() == [*base, "apply", "-f", "-"]
    assert plan.ready() == [*base, "wait", "--for=condition=Ready", "pod/loadstack-fetch-1", "--timeout=180s"]
    assert plan.list_runs() == [*base, "exec", "loadstack-fetch-1", "--", "ls", "-1", "-p", "/app/results"]
    assert plan.resolve_latest() == [
        *base,
        "exec",
        "loadstack-fetch-1",
        "--",
        "readlink",
        "/app/results/latest",
    ]
    assert plan.copy("r1") == [*base, "cp", "loadstack-fetch-1:/app/results/r1", "/tmp/out/r1"]
    assert plan.delete() == [
        *base,
        "delete",
        "pod",
        "loadstack-fetch-1",
        "--wait=false",
        "--ignore-not-found",
    ]
    assert k8s.Fetch(run_id="r1", output=Path("o")).kubectl("get", "pods") == ["kubectl", "get", "pods"]


# A stand-in kubectl: acts on a folder as if it were the results volume, logs every call.
FAKE_KUBECTL = """#!{python}
import json, os, shutil, sys
volume, log = {volume!r}, {log!r}
args = sys.argv[1:]
while args and args[0] in ("--context", "--namespace"):
    args = args[2:]
with open(log, "a") as fh:
    fh.write(json.dumps(sys.argv[1:]) + "\\n")
if args[0] == "apply":
    json.load(sys.stdin)
elif args[0] == "exec":
    cmd = args[args.index("--") + 1:]
    path = cmd[-1].replace("/app/results", volume)
    if cmd[0] == "ls":
        print("\\n".join(n + "/" for n in sorted(os.listdir(path)) if os.path.isdir(os.path.join(path, n))))
    elif cmd[0] == "readlink":
        print(os.readlink(path))
    elif cmd[0] == "cat":
        sys.stdout.write(open(path).read())
elif args[0] == "cp":
    src = args[1].split(":", 1)[1].replace("/app/results", volume)
    if {fail_cp}:
        sys.exit("error: copy failed")
    shutil.copytree(src, args[2])
"""


def fake_kubectl(tmp_path: Path, fail_cp: bool = False) -> tuple[dict[str, str], Path, Path]:
    volume, bin_dir, log = tmp_path / "volume", tmp_path / "bin", tmp_path / "calls.jsonl"
    (volume / "r-old").mkdir(parents=True)
    (volume / "r-new" / "logs").mkdir(parents=True)
    (volume / "r-new" / "summary.json").write_text('{"run_id": "r-new"}')
    (volume / "r-new" / "logs" / "master.log").write_text("ok\n")
    (volume / "history.jsonl").write_text('{"run_id": "r-old"}\n{"run_id": "r-new", "verdict": "pass"}\n')
    (volume / "latest").symlink_to("r-new")
    bin_dir.mkdir()
    script = bin_dir / "kubectl"
    script.write_text(
        FAKE_KUBECTL.format(python=sys.executable, volume=str(volume), log=str(log), fail_cp=fail_cp)
    )
    script.chmod(script.stat().st_mode | stat.S_IEXEC)
    return {"PATH": f"{bin_dir}:{os.environ['PATH']}"}, volume, log


def calls(log: Path) -> list[list[str]]:
    return [json.loads(line) for line in log.read_text().splitlines()]


def test_fetch_latest_copies_the_run_and_removes_its_pod(tmp_path: Path) -> None:
    env, _, log = fake_kubectl(tmp_path)
    out = loadstack(
        "k8s", "fetch", "latest", "-n", "lt", "-o", str(tmp_path / "results"), env=env, timeout=60
    )
    assert out.returncode == 0, out.stdout + out.stderr
    local = tmp_path / "results" / "r-new"
    assert json.loads((local / "summary.json").read_text()) == {"run_id": "r-new"}
    assert (local / "logs" / "master.log").read_text() == "ok\n"
    assert os.readlink(tmp_path / "results" / "latest") == "r-new"
    assert (tmp_path / "results" / "history.jsonl").read_text() == '{"run_id": "r-new", "verdict": "pass"}\n'
    verbs = [c[2] for c in calls(log)]
    assert verbs == ["apply", "wait", "exec", "exec", "cp", "exec", "delete"]
    pod = calls(log)[0]
    assert all(c[:2] == ["--namespace", "lt"] for c in calls(log)) and pod[2:] == ["apply", "-f", "-"]
    assert f"results: {local}/" in out.stdout
    # A second fetch does not mix two copies.
    again = loadstack("k8s", "fetch", "r-new", "-o", str(tmp_path / "results"), env=env, timeout=60)
    assert again.returncode == 2 and "exists already" in again.stderr
    assert calls(log)[-1][0] == "delete"


def test_fetch_of_an_unknown_run_names_the_runs_and_still_removes_its_pod(tmp_path: Path) -> None:
    env, _, log = fake_kubectl(tmp_path)
    out = loadstack("k8s", "fetch", "r-missing", "-o", str(tmp_path / "results"), env=env, timeout=60)
    assert out.returncode == 2, out.stdout + out.stderr
    assert "no run 'r-missing'" in out.stderr and "r-new, r-old" in out.stderr
    assert calls(log)[-1][0] == "delete"


def test_fetch_deletes_its_pod_when_the_copy_fails(tmp_path: Path) -> None:
    env, _, log = fake_kubectl(tmp_path, fail_cp=True)
    out = loadstack("k8s", "fetch", "r-new", "-o", str(tmp_path / "results"), env=env, timeout=60)
    assert out.returncode == 1, out.stdout + out.stderr
    assert "copying r-new: error: copy failed" in out.stderr and "Traceback" not in out.stderr
    assert calls(log)[-1][0] == "delete"


def test_fetch_refuses_a_bad_run_id_before_calling_kubectl(tmp_path: Path) -> None:
    env, _, log = fake_kubectl(tmp_path)
    out = loadstack("k8s", "fetch", "../etc", env=env, timeout=60)
    assert out.returncode == 2 and "invalid run id" in out.stderr
    assert not log.exists()


def test_profile_paths_stay_as_the_pod_sees_them_in_configmap_volumes(tmp_path: Path) -> None:
    """A ConfigMap volume: every file a symlink through ..data into a timestamped folder, named
    differently in every pod.  The chain paths the master sends its workers must not point into it."""
    from loadstack.profiles import resolve_locustfile

    for folder, stamp, name in (
        ("profiles", "..2026_01_01_00_00_00.1", "p.yml"),
        ("chains", "..2026_01_01_00_00_00.2", "c.yml"),
    ):
        (tmp_path / folder / stamp).mkdir(parents=True)
        (tmp_path / folder / stamp / name).write_text("x: 1\n")
        (tmp_path / folder / "..data").symlink_to(stamp)
        (tmp_path / folder / name).symlink_to(f"..data/{name}")
    resolved = resolve_locustfile("../chains/c.yml", tmp_path / "profiles" / "p.yml")
    assert resolved == tmp_path / "chains" / "c.yml" and resolved.is_file()
