"""The Helm chart in helm/geoslide: lint, render, validate against Kubernetes schemas, check the manifests.

helm is taken from $GEOSLIDE_HELM, else <repo>/tools/bin/helm, else PATH, else fetched by .ci/helm.sh;
the tests skip when none can be had. kubernetes-validate comes from the test extra.
"""

from __future__ import annotations

import copy
import functools
import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
CHART = ROOT / "helm" / "geoslide"
EXAMPLE = CHART / "ci" / "example-values.yaml"
FETCH_SCRIPT = ROOT / ".ci" / "helm.sh"
K8S_VERSION = "1.30.0"
RELEASE = "rel"

# Every optional object switched on, so kubernetes-validate sees every template.
_EVERYTHING_SETTINGS = [
    "mapJob.enabled=true,mapJob.out=s3://bucket/map.zarr,mapJob.catalog=https://stac.example.org",
    "mapJob.activeDeadlineSeconds=3600,mapJob.ttlSecondsAfterFinished=0",
    "trainJob.enabled=true,trainJob.mode=train,trainJob.patches=s3://bucket/p.zarr,trainJob.out=s3://m",
    "dashboard.service.enabled=true,dashboard.ingress.enabled=true,dashboard.ingress.tlsSecretName=t",
    "workers.cpu.shmSizeLimit=1Gi,workers.gpu.runtimeClassName=nvidia,serviceAccount.create=false",
    "objectStore.existingSecret=s3-creds,objectStore.secretKeys.sessionToken=token",
    "objectStore.secretKeys.endpointUrl=endpoint,objectStore.region=eu-west-1",
    "sharedVolume.existingClaim=shared,sharedVolume.subPath=geoslide",
]
EVERYTHING = (
    *(arg for setting in _EVERYTHING_SETTINGS for arg in ("--set", setting)),
    "--set-json",
    'networkPolicy.dashboardFrom=[{"namespaceSelector":{"matchLabels":{"team":"ops"}}}]',
    "--set-json",
    'imagePullSecrets=[{"name":"regcred"}]',
)
VALUE_SETS = {"default": (), "example": ("-f", str(EXAMPLE)), "everything": EVERYTHING}


# ---------------------------------------------------------------- tools


@functools.cache
def _find_helm() -> tuple[str | None, str]:
    env = os.environ.get("GEOSLIDE_HELM")
    if env:
        if not os.access(env, os.X_OK):
            return None, f"GEOSLIDE_HELM={env} is not an executable file"
        return env, ""
    local = ROOT / "tools" / "bin" / "helm"
    if os.access(local, os.X_OK):
        return str(local), ""
    on_path = shutil.which("helm")
    if on_path:
        return on_path, ""
    try:
        proc = subprocess.run(["bash", str(FETCH_SCRIPT)], capture_output=True, text=True, timeout=300)
    except (OSError, subprocess.TimeoutExpired) as exc:
        return None, f"helm not found and {FETCH_SCRIPT.name} failed: {exc}"
    lines = proc.stdout.split()
    if proc.returncode != 0 or not lines or not os.access(lines[-1], os.X_OK):
        return None, f"helm not found and .ci/helm.sh failed (rc {proc.returncode}): {proc.stderr.strip()[-500:]}"
    return lines[-1], ""


@pytest.fixture(scope="session")
def helm() -> str:
    path, why = _find_helm()
    if path is None:
        pytest.skip(f"no helm binary: {why}")
    return path


@pytest.fixture(scope="session")
def kubernetes_validate() -> str:
    exe = Path(sys.executable).with_name("kubernetes-validate")
    found = str(exe) if exe.exists() else shutil.which("kubernetes-validate")
    if not found:
        pytest.skip("kubernetes-validate is not installed (pip install -e '.[test]')")
    return found


#: A digest for the geoslide image in renders (there is no published image; see helm/README.md).
DIGEST = "sha256:" + hashlib.sha256(b"geoslide test image").hexdigest()
PINNED = ("--set", f"image.digest={DIGEST}")


def _run_helm(helm: str, *args: str, pinned: bool = True) -> subprocess.CompletedProcess[str]:
    """Run helm; ``template`` and ``lint`` get image.digest set unless ``pinned`` is False."""
    extra = PINNED if pinned and args and args[0] in ("template", "lint") else ()
    return subprocess.run([helm, *args, *extra], capture_output=True, text=True, timeout=60)


@functools.cache
def _render_text(helm: str, args: tuple[str, ...], chart: str = str(CHART)) -> str:
    proc = _run_helm(helm, "template", RELEASE, chart, "--namespace", "hazard", *args)
    assert proc.returncode == 0, f"helm template {' '.join(args)} failed:\n{proc.stderr}"
    return proc.stdout


def render(helm: str, *args: str) -> list[dict]:
    """Rendered manifests (a fresh copy each call, so tests may not corrupt the cache)."""
    docs = yaml.safe_load_all(_render_text(helm, tuple(args)))
    return copy.deepcopy([d for d in docs if d])


# ---------------------------------------------------------------- helpers


def _deep_merge(base: dict, over: dict) -> dict:
    out = dict(base)
    for key, value in over.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = _deep_merge(out[key], value)
        else:
            out[key] = value
    return out


def values_for(*files: Path) -> dict:
    """values.yaml overlaid with the given files, as helm merges them (maps merge, lists replace)."""
    merged = yaml.safe_load((CHART / "values.yaml").read_text())
    for f in files:
        merged = _deep_merge(merged, yaml.safe_load(f.read_text()))
    return merged


def by_kind(docs: list[dict], kind: str) -> list[dict]:
    return [d for d in docs if d["kind"] == kind]


def component(docs: list[dict], kind: str, name: str) -> list[dict]:
    return [d for d in by_kind(docs, kind) if d["metadata"]["labels"]["app.kubernetes.io/component"] == name]


def one(items: list[dict]) -> dict:
    assert len(items) == 1, f"expected exactly one object, got {[i['metadata']['name'] for i in items]}"
    return items[0]


def pod_specs(docs: list[dict]) -> list[tuple[str, dict]]:
    return [(d["metadata"]["name"], d["spec"]["template"]["spec"]) for d in docs if d["kind"] in ("Deployment", "Job")]


def containers(spec: dict) -> list[dict]:
    return spec.get("initContainers", []) + spec["containers"]


def env_of(container: dict) -> dict[str, dict]:
    return {e["name"]: e for e in container.get("env", [])}


def flag_value(args: list[str], flag: str) -> str:
    assert flag in args, f"{flag} not in {args}"
    return args[args.index(flag) + 1]


def scheduler_address(docs: list[dict]) -> str:
    """tcp://<svc>:<port> of the Service that selects the scheduler pods on their comm port."""
    deploy = one(component(docs, "Deployment", "scheduler"))
    pod_labels = deploy["spec"]["template"]["metadata"]["labels"]
    services = [s for s in by_kind(docs, "Service") if s["spec"]["selector"].items() <= pod_labels.items()]
    comm = [(s["metadata"]["name"], p) for s in services for p in s["spec"]["ports"] if p["name"] == "tcp-comm"]
    assert len(comm) == 1, comm
    name, port = comm[0]
    container_ports = {
        p["name"]: p["containerPort"] for p in deploy["spec"]["template"]["spec"]["containers"][0]["ports"]
    }
    assert container_ports[port["targetPort"]] == port["port"]
    return f"tcp://{name}:{port['port']}"


# ---------------------------------------------------------------- lint, render, validate


@pytest.mark.parametrize("values", ["default", "example"])
def test_lint_strict(helm, values):
    proc = _run_helm(helm, "lint", "--strict", str(CHART), *VALUE_SETS[values])
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "0 chart(s) failed" in proc.stdout


def test_default_render_is_an_idle_cluster(helm):
    names = {(d["kind"], d["metadata"]["name"]) for d in render(helm)}
    assert names == {
        ("ServiceAccount", "rel-geoslide"),
        ("NetworkPolicy", "rel-geoslide"),
        ("Service", "rel-geoslide-scheduler"),
        ("Deployment", "rel-geoslide-scheduler"),
        ("Deployment", "rel-geoslide-worker-cpu"),
        ("Deployment", "rel-geoslide-worker-gpu"),
    }


def test_example_render_has_jobs_and_pipeline(helm):
    names = {(d["kind"], d["metadata"]["name"]) for d in render(helm, *VALUE_SETS["example"])}
    assert {("Job", "slides-map-r1"), ("Job", "slides-train-r1"), ("ConfigMap", "slides-pipeline")} <= names
    assert not {kind for kind, _ in names} & {"Secret", "Ingress"}


@pytest.mark.parametrize("values", list(VALUE_SETS))
def test_kubernetes_validate_strict(helm, kubernetes_validate, tmp_path, values):
    docs = render(helm, *VALUE_SETS[values])
    manifest = tmp_path / f"{values}.yaml"
    manifest.write_text(_render_text(helm, VALUE_SETS[values]))
    proc = subprocess.run(
        [kubernetes_validate, "--strict", "-k", K8S_VERSION, str(manifest)], capture_output=True, text=True, timeout=60
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    passed = re.findall(r"passed for resource (\S+)", proc.stdout + proc.stderr)
    assert len(passed) == len(docs), f"validated {passed}, rendered {len(docs)} objects"


def test_kubernetes_validate_rejects_unknown_fields(kubernetes_validate, tmp_path):
    """Control: the validator used above does fail on a bad manifest."""
    bad = tmp_path / "bad.yaml"
    bad.write_text("apiVersion: v1\nkind: Service\nmetadata: {name: x}\nspec: {ports: [{port: 80}], bogus: 1}\n")
    proc = subprocess.run([kubernetes_validate, "--strict", "-k", K8S_VERSION, str(bad)], capture_output=True)
    assert proc.returncode != 0


# ---------------------------------------------------------------- GPU workers


@pytest.mark.parametrize("values", ["default", "example"])
def test_gpu_worker(helm, values):
    vals = values_for(*([EXAMPLE] if values == "example" else []))
    gpu = vals["workers"]["gpu"]
    docs = render(helm, *VALUE_SETS[values])
    spec = one(component(docs, "Deployment", "worker-gpu"))["spec"]["template"]["spec"]
    (worker,) = spec["containers"]
    assert worker["command"] == ["dask", "worker"]
    assert worker["resources"]["limits"]["nvidia.com/gpu"] == gpu["gpusPerPod"] == 1
    assert flag_value(worker["args"], "--resources") == "GPU=1"
    assert spec["nodeSelector"] == gpu["nodeSelector"]
    assert spec["nodeSelector"]["nvidia.com/gpu.present"] == "true"
    assert {"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"} in spec["tolerations"]
    # The CPU pool neither asks for GPUs nor advertises them.
    cpu = one(component(docs, "Deployment", "worker-cpu"))["spec"]["template"]["spec"]
    assert "nvidia.com/gpu" not in cpu["containers"][0]["resources"]["limits"]
    assert "--resources" not in cpu["containers"][0]["args"]
    assert "nodeSelector" not in cpu


def test_gpu_worker_example_overrides(helm):
    spec = one(component(render(helm, *VALUE_SETS["example"]), "Deployment", "worker-gpu"))["spec"]["template"]["spec"]
    assert spec["containers"][0]["image"] == ("registry.example.org/hazard/geoslide:0.1.0-cu128@sha256:"
                                                 "9a0b1c2d3e4f5a6b7c8d9e0f1a2b3c4d5e6f7a8b9c0d1e2f3a4b5c6d7e8f9a0b")
    assert spec["runtimeClassName"] == "nvidia"
    assert spec["nodeSelector"]["cloud.example.org/node-pool"] == "gpu-a10"


@pytest.mark.parametrize("setting", ["workers.gpu.enabled=false", "workers.gpu.replicas=0"])
def test_gpu_workers_can_be_removed(helm, setting):
    docs = render(helm, *VALUE_SETS["example"], "--set", setting)
    assert component(docs, "Deployment", "worker-gpu") == []
    assert len(component(docs, "Deployment", "worker-cpu")) == 1
    assert "nvidia.com/gpu" not in json.dumps(docs)


# ---------------------------------------------------------------- pod security


@pytest.mark.parametrize("values", list(VALUE_SETS))
def test_every_pod_is_locked_down(helm, values):
    specs = pod_specs(render(helm, *VALUE_SETS[values]))
    assert len(specs) >= 3
    for name, spec in specs:
        psc = spec["securityContext"]
        assert psc["runAsNonRoot"] is True, name
        assert psc["runAsUser"] == 10001 and psc["fsGroup"] == 10001, name
        assert psc["seccompProfile"] == {"type": "RuntimeDefault"}, name
        assert spec["automountServiceAccountToken"] is False, name
        empty_dirs = {v["name"] for v in spec["volumes"] if "emptyDir" in v}
        for c in containers(spec):
            where = f"{name}/{c['name']}"
            sc = c["securityContext"]
            assert sc["readOnlyRootFilesystem"] is True, where
            assert sc["allowPrivilegeEscalation"] is False, where
            assert sc["capabilities"]["drop"] == ["ALL"], where
            assert sc.get("privileged", False) is False, where
            for part in ("requests", "limits"):
                assert {"cpu", "memory"} <= c["resources"][part].keys(), where
            mounts = {m["mountPath"]: m["name"] for m in c.get("volumeMounts", [])}
            assert mounts.get("/tmp") in empty_dirs, f"{where}: /tmp is not an emptyDir"
            if c["command"][:2] == ["dask", "worker"]:
                local_dir = flag_value(c["args"], "--local-directory")
                assert mounts.get(local_dir) in empty_dirs, f"{where}: {local_dir} is not an emptyDir"


def test_security_context_cannot_be_weakened(helm):
    weaken = "containerSecurityContext.readOnlyRootFilesystem=false"
    proc = _run_helm(helm, "template", RELEASE, str(CHART), "--set", weaken)
    assert proc.returncode != 0
    assert "readOnlyRootFilesystem" in proc.stderr


# ---------------------------------------------------------------- exposure


def _exposed(docs: list[dict]) -> list[str]:
    out = [f"Ingress/{d['metadata']['name']}" for d in by_kind(docs, "Ingress")]
    out += [
        f"Service/{s['metadata']['name']}"
        for s in by_kind(docs, "Service")
        if s["spec"].get("type", "ClusterIP") in ("LoadBalancer", "NodePort")
    ]
    return out


@pytest.mark.parametrize("values", ["default", "example"])
def test_nothing_exposed_by_default(helm, values):
    docs = render(helm, *VALUE_SETS[values])
    assert _exposed(docs) == []
    assert one(component(docs, "Service", "scheduler"))["spec"]["type"] == "ClusterIP"


def test_opt_in_dashboard_exposes_only_the_dashboard(helm):
    opt_in = "dashboard.service.enabled=true,dashboard.service.type=LoadBalancer,dashboard.ingress.enabled=true"
    docs = render(helm, "--set", opt_in)
    assert sorted(_exposed(docs)) == ["Ingress/rel-geoslide-dashboard", "Service/rel-geoslide-dashboard"]
    svc = one(component(docs, "Service", "dashboard"))
    assert [p["targetPort"] for p in svc["spec"]["ports"]] == ["http-dashboard"]
    (rule,) = one(by_kind(docs, "Ingress"))["spec"]["rules"]
    assert rule["http"]["paths"][0]["backend"]["service"]["port"] == {"name": "http-dashboard"}
    # The scheduler's own Service stays internal.
    assert one(component(docs, "Service", "scheduler"))["spec"]["type"] == "ClusterIP"


# ---------------------------------------------------------------- credentials


CREDENTIAL_VARS = {"AWS_ACCESS_KEY_ID": "accessKeyId", "AWS_SECRET_ACCESS_KEY": "secretAccessKey"}
SECRETISH = re.compile(r"SECRET|PASSWORD|TOKEN|ACCESS_KEY|CREDENTIAL", re.I)


@pytest.mark.parametrize("values", list(VALUE_SETS))
def test_no_literal_credentials(helm, values):
    docs = render(helm, *VALUE_SETS[values])
    assert by_kind(docs, "Secret") == []
    for name, spec in pod_specs(docs):
        for c in containers(spec):
            for var, entry in env_of(c).items():
                if SECRETISH.search(var):
                    assert "value" not in entry, f"{name}/{c['name']}: literal {var}"
                    assert "secretKeyRef" in entry["valueFrom"], f"{name}/{c['name']}: {var}"


def test_credentials_come_from_the_existing_secret(helm):
    store = values_for(EXAMPLE)["objectStore"]
    docs = render(helm, *VALUE_SETS["example"])
    clients = [(name, c) for name, spec in pod_specs(docs) for c in spec["containers"] if c["name"] != "scheduler"]
    expected = {"slides-worker-cpu", "slides-worker-gpu", "slides-map-r1", "slides-train-r1"}
    assert {name for name, _ in clients} == expected
    for name, c in clients:
        env = env_of(c)
        for var, key in CREDENTIAL_VARS.items():
            ref = env[var]["valueFrom"]["secretKeyRef"]
            assert ref["name"] == store["existingSecret"] == "geoslide-minio", name
            assert ref["key"] == store["secretKeys"][key], name
        assert env["AWS_ENDPOINT_URL"] == {"name": "AWS_ENDPOINT_URL", "value": store["endpoint"]}
        assert env["AWS_REGION"]["value"] == store["region"]


def test_no_credential_env_without_a_secret(helm):
    text = _render_text(helm, ())
    assert "secretKeyRef" not in text
    assert "AWS_ACCESS_KEY_ID" not in text


@pytest.mark.parametrize("key", ["accessKeyId", "secretAccessKey", "password"])
def test_schema_refuses_literal_credentials(helm, key):
    proc = _run_helm(helm, "template", RELEASE, str(CHART), "--set", f"objectStore.{key}=AKIAEXAMPLE")
    assert proc.returncode != 0
    assert key in proc.stderr and "not allowed" in proc.stderr


# ---------------------------------------------------------------- jobs


def test_map_job_args(helm):
    job = values_for(EXAMPLE)["mapJob"]
    spec = one(component(render(helm, *VALUE_SETS["example"]), "Job", "map"))["spec"]["template"]["spec"]
    (c,) = spec["containers"]
    assert c["command"] == ["geoslide"]
    assert c["args"][0] == "map"
    assert json.loads(flag_value(c["args"], "--stac-query")) == job["stacQuery"]
    assert flag_value(c["args"], "--catalog") == job["catalog"]
    assert flag_value(c["args"], "--model") == job["model"]
    assert flag_value(c["args"], "--out") == job["out"]
    assert flag_value(c["args"], "--vectors") == job["vectors"]
    assert spec["restartPolicy"] == "Never"


def test_map_job_requires_an_output(helm):
    proc = _run_helm(helm, "template", RELEASE, str(CHART), "--set", "mapJob.enabled=true")
    assert proc.returncode != 0
    assert "mapJob.out" in proc.stderr


def test_pipeline_configmap_is_mounted_into_training_job(helm):
    docs = render(helm, *VALUE_SETS["example"])
    cm = one(by_kind(docs, "ConfigMap"))
    assert yaml.safe_load(cm["data"]["pipeline.yaml"]) == values_for(EXAMPLE)["pipeline"]["config"]
    spec = one(component(docs, "Job", "train"))["spec"]["template"]["spec"]
    (c,) = spec["containers"]
    assert c["command"] == ["geoslide"] and c["args"][0] == "run"
    (vol,) = [v for v in spec["volumes"] if v.get("configMap", {}).get("name") == cm["metadata"]["name"]]
    (mount,) = [m for m in c["volumeMounts"] if m["name"] == vol["name"]]
    (item,) = [i for i in vol["configMap"]["items"] if i["key"] == "pipeline.yaml"]
    assert mount.get("readOnly") is True
    assert f"{mount['mountPath']}/{item['path']}" == c["args"][1] == "/etc/geoslide/pipeline.yaml"


def test_training_job_train_mode(helm):
    docs = render(helm, *VALUE_SETS["everything"])
    (c,) = one(component(docs, "Job", "train"))["spec"]["template"]["spec"]["containers"]
    assert c["args"] == ["train", "--patches", "s3://bucket/p.zarr", "--model", "unet", "--out", "s3://m"]


def test_training_job_off_by_default(helm):
    docs = render(helm)
    assert by_kind(docs, "Job") == [] and by_kind(docs, "ConfigMap") == []


@pytest.mark.parametrize("values", ["example", "everything"])
def test_everything_points_at_the_scheduler_service(helm, values):
    docs = render(helm, *VALUE_SETS[values])
    address = scheduler_address(docs)
    jobs = by_kind(docs, "Job")
    assert len(jobs) == 2
    for job in jobs:
        spec = job["spec"]["template"]["spec"]
        (c,) = spec["containers"]
        assert env_of(c)["DASK_SCHEDULER_ADDRESS"]["value"] == address
        (init,) = spec["initContainers"]
        host, port = init["command"][-3:-1]
        assert f"tcp://{host}:{port}" == address
    workers = [d for d in by_kind(docs, "Deployment") if "worker" in d["metadata"]["name"]]
    assert len(workers) == 2
    for w in workers:
        assert w["spec"]["template"]["spec"]["containers"][0]["args"][0] == address


# ---------------------------------------------------------------- names, values, notes


def test_long_names_are_truncated(helm):
    docs = render(helm, *VALUE_SETS["everything"], "--set", f"fullnameOverride={'a' * 70}")
    for d in docs:
        name = d["metadata"]["name"]
        assert len(name) <= 63 and not name.endswith("-"), name
        for value in d["metadata"]["labels"].values():
            assert len(value) <= 63, value
    names = [(d["kind"], d["metadata"]["name"]) for d in docs]
    assert len(names) == len(set(names)), "truncation made names collide"
    assert one(component(docs, "Service", "scheduler"))["metadata"]["name"].endswith("-scheduler")


KEY_LINE = re.compile(r"^(?P<indent>\s*)(?![-#\s])(?P<key>\S.*?):(\s|$)")


@pytest.mark.parametrize("path", [CHART / "values.yaml", EXAMPLE], ids=["values", "example-values"])
def test_every_value_is_commented(path):
    uncommented = []
    list_indent = None  # lines nested in a list item belong to that item's (commented) key
    previous = ""
    for number, line in enumerate(path.read_text().splitlines(), 1):
        indent = len(line) - len(line.lstrip())
        if line.strip() and list_indent is not None and indent <= list_indent and not line.lstrip().startswith("-"):
            list_indent = None
        if line.lstrip().startswith("- ") and list_indent is None:
            list_indent = indent
        match = KEY_LINE.match(line)
        if match and list_indent is None and " #" not in line and not previous.startswith("#"):
            uncommented.append(f"{path.name}:{number}: {line.strip()}")
        if line.strip():
            previous = line.strip()
    assert uncommented == []


def test_notes_explain_dashboard_and_job(helm, tmp_path):
    chart = tmp_path / "geoslide"
    shutil.copytree(CHART, chart)
    (chart / "notes.txt").write_text((CHART / "templates" / "NOTES.txt").read_text())
    # NOTES.txt is not rendered by `helm template`; render it through tpl inside a throwaway ConfigMap.
    wrapper = (
        "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: notes}\n"
        'data:\n  notes: {{ tpl (.Files.Get "notes.txt") . | quote }}\n'
    )
    (chart / "templates" / "zz-notes.yaml").write_text(wrapper)
    text = _render_text(helm, ("-f", str(EXAMPLE), "--show-only", "templates/zz-notes.yaml"), str(chart))
    notes = yaml.safe_load(text)["data"]["notes"]
    assert "kubectl -n hazard port-forward svc/slides-scheduler 8787:8787" in notes
    assert "kubectl -n hazard logs -f job/slides-map-r1 -c map" in notes


def test_fetch_script_is_idempotent():
    helm = ROOT / "tools" / "bin" / "helm"
    if not helm.exists():
        pytest.skip("tools/bin/helm absent; fetching it is exercised by the helm fixture")
    pinned = re.search(r'HELM_SHA256="([0-9a-f]{64})"', FETCH_SCRIPT.read_text()).group(1)
    if hashlib.sha256(helm.read_bytes()).hexdigest() != pinned:
        pytest.skip("tools/bin/helm is not the pinned build; the script would replace it")
    before = helm.stat().st_mtime_ns
    proc = subprocess.run(["bash", str(FETCH_SCRIPT)], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.split()[-1] == str(helm)
    assert helm.stat().st_mtime_ns == before


@pytest.mark.parametrize("values", [None, EXAMPLE], ids=["default", "example"])
def test_rendered_pipeline_is_a_valid_geoslide_pipeline(helm, values):
    from geoslide.pipeline.config import parse_pipeline

    extra = ["-f", str(values)] if values else ["--set", "sharedVolume.existingClaim=shared"]
    docs = render(helm, *extra, "--set", "trainJob.enabled=true")
    (cm,) = [d for d in docs if d["kind"] == "ConfigMap" and d["metadata"]["name"].endswith("pipeline")]
    pipeline = parse_pipeline(yaml.safe_load(cm["data"]["pipeline.yaml"]))
    assert pipeline.models
    (job,) = [d for d in docs if d["kind"] == "Job" and "train" in d["metadata"]["name"]]
    args = job["spec"]["template"]["spec"]["containers"][0]["args"]
    assert args[:2] == ["run", "/etc/geoslide/pipeline.yaml"]
    assert flag_value(args, "--work") == (f"/shared/runs/{pipeline.name}" if values is None
                                          else values_for(EXAMPLE)["trainJob"]["work"])


# ---------------------------------------------------------------- the shared volume


def _mounts(container: dict) -> dict[str, dict]:
    return {m["mountPath"]: m for m in container.get("volumeMounts", [])}


def test_the_shared_volume_is_mounted_at_one_path_in_the_jobs_and_every_worker(helm):
    shared = values_for(EXAMPLE)["sharedVolume"]
    docs = render(helm, *VALUE_SETS["example"])
    specs = dict(pod_specs(docs))
    expected = {"slides-worker-cpu", "slides-worker-gpu", "slides-map-r1", "slides-train-r1"}
    assert expected <= specs.keys()
    for name in expected:
        (volume,) = [v for v in specs[name]["volumes"] if "persistentVolumeClaim" in v]
        assert volume["persistentVolumeClaim"] == {"claimName": shared["existingClaim"]}, name
        (c,) = specs[name]["containers"]
        assert _mounts(c)[shared["mountPath"]]["name"] == volume["name"], name
    assert "persistentVolumeClaim" not in json.dumps(one(component(docs, "Deployment", "scheduler")))
    train_args = specs["slides-train-r1"]["containers"][0]["args"]
    assert flag_value(train_args, "--work").startswith(shared["mountPath"] + "/")


def test_no_shared_volume_without_a_claim(helm):
    jobs = ("--set", "mapJob.enabled=true,mapJob.out=s3://b/m.zarr,trainJob.enabled=true,trainJob.mode=train",
            "--set", "trainJob.patches=s3://b/p.zarr,trainJob.out=s3://b/model")
    assert "persistentVolumeClaim" not in _render_text(helm, jobs)


def test_the_shared_volume_sub_path(helm):
    settings = "sharedVolume.existingClaim=c,sharedVolume.subPath=geoslide,sharedVolume.mountPath=/data"
    docs = render(helm, "--set", settings)
    (c,) = one(component(docs, "Deployment", "worker-cpu"))["spec"]["template"]["spec"]["containers"]
    assert _mounts(c)["/data"]["subPath"] == "geoslide"


@pytest.mark.parametrize(("settings", "message"), [
    ("trainJob.enabled=true", "trainJob.mode pipeline needs sharedVolume.existingClaim"),
    ("sharedVolume.existingClaim=c,trainJob.enabled=true,trainJob.work=/tmp/geoslide/run",
     'trainJob.work is "/tmp/geoslide/run", outside the shared volume: put it under /shared/'),
    ("mapJob.enabled=true,mapJob.out=/tmp/map.zarr", 'mapJob.out is the local path "/tmp/map.zarr", which the workers '
                                                     "cannot see: set sharedVolume.existingClaim"),
    ("sharedVolume.existingClaim=c,mapJob.enabled=true,mapJob.out=s3://b/m.zarr,mapJob.vectors=v.parquet",
     'mapJob.vectors is "v.parquet", outside the shared volume'),
    ("trainJob.enabled=true,trainJob.mode=train,trainJob.patches=/data/p.zarr,trainJob.out=s3://b/m",
     'trainJob.patches is the local path "/data/p.zarr"'),
])
def test_job_paths_the_workers_cannot_see_are_refused(helm, settings, message):
    proc = _run_helm(helm, "template", RELEASE, str(CHART), "--set", settings)
    assert proc.returncode != 0
    assert message in proc.stderr


@pytest.mark.parametrize("settings", [
    "sharedVolume.mountPath=/tmp", "sharedVolume.mountPath=/tmp/shared", "sharedVolume.mountPath=shared",
    "sharedVolume.claimName=c", "trainJob.work=s3://bucket/run",
])
def test_schema_refuses_shared_volume_values_that_cannot_work(helm, settings):
    proc = _run_helm(helm, "template", RELEASE, str(CHART), "--set", settings)
    assert proc.returncode != 0
    assert settings.split("=")[0].split(".")[-1] in proc.stderr


def test_job_paths_on_the_shared_volume_or_object_storage_render(helm):
    docs = render(helm, "--set", "sharedVolume.existingClaim=c,trainJob.enabled=true,mapJob.enabled=true",
                  "--set", "mapJob.out=/shared/maps/a.zarr,mapJob.vectors=s3://b/a.parquet")
    (c,) = one(component(docs, "Job", "map"))["spec"]["template"]["spec"]["containers"]
    assert flag_value(c["args"], "--out") == "/shared/maps/a.zarr"


# ---------------------------------------------------------------- images and probes


@pytest.mark.parametrize("values", list(VALUE_SETS))
def test_every_image_is_pinned_by_digest(helm, values):
    for name, spec in pod_specs(render(helm, *VALUE_SETS[values])):
        for c in [*spec.get("initContainers", []), *spec["containers"]]:
            assert re.fullmatch(r"[^@\s]+:[^@\s]+@sha256:[0-9a-f]{64}", c["image"]), f"{name}/{c['name']}"


def test_an_image_without_a_digest_is_refused_unless_allowed(helm):
    proc = _run_helm(helm, "template", RELEASE, str(CHART), pinned=False)
    assert proc.returncode != 0 and "has no digest: set image.digest" in proc.stderr
    docs = yaml.safe_load_all(_run_helm(helm, "template", RELEASE, str(CHART), "--set", "image.allowUnpinned=true",
                                        pinned=False).stdout)
    images = {c["image"] for d in docs if d for _, spec in pod_specs([d]) for c in spec["containers"]}
    assert images == {"ghcr.io/geoslide/geoslide:0.1.0"}
    other = _run_helm(helm, "template", RELEASE, str(CHART), "--set", "workers.gpu.image.tag=cu128")
    assert other.returncode != 0 and "workers.gpu.image.digest" in other.stderr  # another image, own digest
    bad = _run_helm(helm, "template", RELEASE, str(CHART), "--set", "image.digest=latest", pinned=False)
    assert bad.returncode != 0 and "digest" in bad.stderr


def test_workers_have_readiness_and_liveness_probes(helm):
    docs = render(helm, *VALUE_SETS["example"])
    for pool in ("worker-cpu", "worker-gpu", "scheduler"):
        c = one(component(docs, "Deployment", pool))["spec"]["template"]["spec"]["containers"][0]
        for probe in ("readinessProbe", "livenessProbe"):
            assert c[probe]["httpGet"] == {"path": "/health", "port": "http-dashboard"}, (pool, probe)


def test_dockerfile_base_image_is_pinned_by_digest():
    text = (ROOT / "Dockerfile").read_text()
    froms = re.findall(r"^FROM (\S+)(?: AS (\w+))?$", text, flags=re.M)
    assert froms[1:] == [("base", "build"), ("base", "")]
    assert froms[0][1] == "base" and re.fullmatch(r"python:[0-9.]+-slim-\w+@sha256:[0-9a-f]{64}", froms[0][0])
