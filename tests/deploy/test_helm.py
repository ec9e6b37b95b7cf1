"""The Helm chart: `helm lint` and `helm template` with every values file in helm/mevwatch/ci,
the rendered manifests validated offline against the Kubernetes schemas (kubernetes-validate),
and what operators rely on checked in them: probes, resources, security context, GPU
scheduling, the HPA, the config the pods load, the dashboards and rules they ship.

The chart's dashboards and rules are not committed: dashboards/ is their one source, and
`sync_chart` (what scripts/package-chart.sh runs before `helm package`) copies them into
helm/mevwatch/generated/ once per session, before any helm command here."""

from __future__ import annotations

import os
import shutil
import subprocess
import tarfile
from pathlib import Path

import kubernetes_validate
import pytest
import yaml

from mevwatch.dashboards.build import JSON_DIR
from mevwatch.dashboards.chart import sync_chart
from mevwatch.monitor.config import load_settings
from services import helm_binary

REPO = Path(__file__).resolve().parents[2]
CHART = REPO / "helm" / "mevwatch"
VALUES = sorted((CHART / "ci").glob("*.yaml"))
KUBE = "1.30.0"
CRDS = {"ServiceMonitor", "PrometheusRule"}  # the Prometheus operator's: not in the Kubernetes schemas
RULES = REPO / "dashboards" / "prometheus" / "rules.yml"


@pytest.fixture(scope="session", autouse=True)
def chart_synced() -> list[Path]:
    """The packaging step: copy dashboards/json/*.json and the rules into the chart."""
    return sync_chart(CHART)


def helm(*args: str, check: bool = True, cwd: Path = CHART) -> subprocess.CompletedProcess:
    r = subprocess.run([str(helm_binary()), *args], capture_output=True, text=True, cwd=cwd)
    if check:
        assert r.returncode == 0, r.stdout + r.stderr
    return r


def render(values: Path | None, *sets: str) -> list[dict]:
    args = ["template", "rel", ".", "--kube-version", KUBE, "--namespace", "mev"]
    if values is not None:
        args += ["-f", str(values)]
    for s in sets:
        args += ["--set", s]
    return [d for d in yaml.safe_load_all(helm(*args).stdout) if d]


def by_kind(docs: list[dict], kind: str) -> dict[str, dict]:
    return {d["metadata"]["name"]: d for d in docs if d["kind"] == kind}


@pytest.mark.parametrize("values", VALUES, ids=[v.stem for v in VALUES])
def test_chart_lints_renders_and_validates(values):
    helm("lint", ".", "--strict", "-f", str(values), "--kube-version", KUBE)
    docs = render(values)
    assert docs
    for d in docs:
        if d["kind"] in CRDS:
            assert d["apiVersion"] == "monitoring.coreos.com/v1"
            continue
        kubernetes_validate.validate(d, KUBE, strict=True)  # raises on any schema violation


@pytest.mark.parametrize("values", VALUES, ids=[v.stem for v in VALUES])
def test_pods_are_probed_bounded_and_locked_down(values):
    docs = render(values)
    pods = [(n, d["spec"]["template"]["spec"]) for n, d in by_kind(docs, "Deployment").items()]
    pods += [(n, d["spec"]["template"]["spec"]) for n, d in by_kind(docs, "Job").items()]
    assert pods
    for name, spec in pods:
        psc = spec["securityContext"]
        assert psc["runAsNonRoot"] is True and psc["runAsUser"] != 0 and psc["seccompProfile"]["type"] == "RuntimeDefault"
        assert spec["automountServiceAccountToken"] is False
        writable = {v["name"] for v in spec["volumes"] if "emptyDir" in v or "persistentVolumeClaim" in v}
        for c in spec["containers"]:
            sc = c["securityContext"]
            assert sc["readOnlyRootFilesystem"] is True and sc["allowPrivilegeEscalation"] is False
            assert sc["capabilities"]["drop"] == ["ALL"]
            assert c["resources"]["requests"]["cpu"] and c["resources"]["limits"]["memory"], name
            mounts = {m["mountPath"]: m["name"] for m in c["volumeMounts"]}
            assert mounts["/tmp"] in writable
            if not name.endswith(tuple(f"replay-{i}" for i in range(1, 10))):
                assert mounts["/var/lib/mevwatch"] in writable  # outbox, journal: the only writable data path
                assert c["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": "http"}
                assert c["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": "http"}
                assert {"name": "http", "containerPort": 8080, "protocol": "TCP"} in c["ports"]


def test_gpu_scheduling_only_when_asked():
    default = by_kind(render(None), "Deployment")["rel-mevwatch-detect"]["spec"]["template"]["spec"]
    assert "nvidia.com/gpu" not in default["containers"][0]["resources"]["limits"] and "nodeSelector" not in default
    gpu = by_kind(render(CHART / "ci" / "gpu-values.yaml"), "Deployment")
    spec = gpu["rel-mevwatch-detect"]["spec"]["template"]["spec"]
    assert spec["containers"][0]["resources"]["limits"]["nvidia.com/gpu"] == 2
    assert spec["nodeSelector"] == {"nvidia.com/gpu.present": "true", "topology.kubernetes.io/zone": "eu-west-1a"}
    assert {"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"} in spec["tolerations"]
    assert {"name": "MEVWATCH_DEVICE", "value": "cuda"} in spec["containers"][0]["env"]
    assert gpu["rel-mevwatch-detect"]["spec"]["replicas"] == 3
    ingest = gpu["rel-mevwatch-ingest"]["spec"]["template"]["spec"]
    assert "nvidia.com/gpu" not in ingest["containers"][0]["resources"]["limits"]  # only detect scores


def test_hpa_owns_detect_replicas_and_pdbs_select_their_roles():
    docs = render(None)
    hpa = by_kind(docs, "HorizontalPodAutoscaler")["rel-mevwatch-detect"]
    assert hpa["spec"]["scaleTargetRef"] == {"apiVersion": "apps/v1", "kind": "Deployment", "name": "rel-mevwatch-detect"}
    assert "replicas" not in by_kind(docs, "Deployment")["rel-mevwatch-detect"]["spec"]
    deps = by_kind(docs, "Deployment")
    for name, pdb in by_kind(docs, "PodDisruptionBudget").items():
        sel = pdb["spec"]["selector"]["matchLabels"]
        assert deps[name]["spec"]["template"]["metadata"]["labels"].items() >= sel.items()
    svc = by_kind(docs, "Service")["rel-mevwatch"]
    sm = by_kind(docs, "ServiceMonitor")["rel-mevwatch"]
    assert sm["spec"]["selector"]["matchLabels"].items() <= svc["metadata"]["labels"].items()
    assert sm["spec"]["endpoints"][0]["port"] == svc["spec"]["ports"][0]["name"] == "http"


def test_config_loads_in_mevwatch_and_secrets_line_up(tmp_path):
    docs = render(CHART / "ci" / "strimzi-altinity-values.yaml")
    cfg = tmp_path / "mevwatch.yaml"
    cfg.write_text(by_kind(docs, "ConfigMap")["rel-mevwatch"]["data"]["mevwatch.yaml"])
    s = load_settings(cfg)  # the app itself accepts what the chart renders
    assert s.kafka.bootstrap == "mev-kafka-bootstrap.kafka.svc:9092"
    assert s.clickhouse.url.startswith("clickhouse://mevwatch@clickhouse-mevwatch.clickhouse.svc:9000/")
    assert s.health_host == "0.0.0.0" and s.health_port == 8080 and str(s.data_dir) == "/var/lib/mevwatch"
    assert s.attest.rpc == "https://sepolia.example.org" and s.attest.contract
    secret = by_kind(docs, "Secret")["rel-mevwatch"]["stringData"]
    for w in s.webhooks:
        (f,) = w.secret_files
        assert str(f).startswith("/etc/mevwatch/secrets/") and Path(f).name in secret
    deps = by_kind(docs, "Deployment")
    for name, d in deps.items():
        for e in d["spec"]["template"]["spec"]["containers"][0].get("env", []):
            if e["name"].endswith("_FILE"):
                assert Path(e["value"]).name in secret, (name, e)
    attest = deps["rel-mevwatch-attest"]
    assert attest["spec"]["replicas"] == 1 and attest["spec"]["strategy"]["type"] == "Recreate"
    assert attest["spec"]["template"]["spec"]["containers"][0]["args"][-2:] == ["--role", "attest"]
    vols = {v["name"]: v for v in attest["spec"]["template"]["spec"]["volumes"]}
    assert vols["data"]["persistentVolumeClaim"]["claimName"] == "rel-mevwatch-attest"
    assert "rel-mevwatch-attest" in by_kind(docs, "PersistentVolumeClaim")


def assert_ships_as_built(docs: list[dict]) -> None:
    """One ConfigMap per dashboards/json/*.json holding exactly that JSON; the PrometheusRule is rules.yml."""
    cms = {n: d for n, d in by_kind(docs, "ConfigMap").items() if n.endswith("-dashboard")}
    built = sorted(f.name for f in JSON_DIR.glob("*.json"))
    assert built and sorted(f for d in cms.values() for f in d["data"]) == built
    for d in cms.values():
        assert d["metadata"]["labels"]["grafana_dashboard"] == "1"
        ((fname, body),) = d["data"].items()
        assert d["metadata"]["name"] == f"rel-mevwatch-{fname.removesuffix('.json').removeprefix('mevwatch-')}-dashboard"
        assert body + "\n" == (JSON_DIR / fname).read_text()  # byte for byte (the template's |- drops the last newline)
    assert by_kind(docs, "PrometheusRule")["rel-mevwatch"]["spec"] == yaml.safe_load(RULES.read_text())


def test_dashboards_and_rules_ship_as_built():
    assert_ships_as_built(render(None))


def test_sync_copies_exactly_what_dashboards_holds(tmp_path):
    chart = tmp_path / "mevwatch"
    shutil.copytree(CHART, chart, ignore=shutil.ignore_patterns("generated"))
    (chart / "generated" / "dashboards").mkdir(parents=True)
    (chart / "generated" / "dashboards" / "mevwatch-removed.json").write_text("{}")  # a dashboard gone from dashboards/
    (chart / "generated" / "rules.yml").write_text("groups: []\n")  # stale
    files = sync_chart(chart)
    assert sorted(p.name for p in (chart / "generated" / "dashboards").iterdir()) == sorted(f.name for f in JSON_DIR.glob("*.json"))
    for f in JSON_DIR.glob("*.json"):
        assert (chart / "generated" / "dashboards" / f.name).read_bytes() == f.read_bytes()
    assert (chart / "generated" / "rules.yml").read_bytes() == RULES.read_bytes()
    assert sorted(files) == sorted((chart / "generated").rglob("*.*"))
    assert sync_chart(chart) == files  # idempotent


def test_chart_without_the_copies_refuses_to_render(tmp_path):
    chart = tmp_path / "mevwatch"
    shutil.copytree(CHART, chart, ignore=shutil.ignore_patterns("generated"))
    r = helm("template", "rel", ".", "--kube-version", KUBE, check=False, cwd=chart)
    assert r.returncode != 0 and "run scripts/package-chart.sh" in r.stderr
    r = helm("template", "rel", ".", "--kube-version", KUBE, "--set", "dashboards.enabled=false",
             "--set", "prometheusRule.enabled=false", check=False, cwd=chart)
    assert r.returncode == 0, r.stderr


def test_the_copies_are_not_committed():
    if shutil.which("git") is None or not (REPO / ".git").exists():
        pytest.skip("not a git checkout")
    for p in ("helm/mevwatch/generated/rules.yml", "helm/mevwatch/generated/dashboards/mevwatch-overview.json"):
        r = subprocess.run(["git", "check-ignore", "--no-index", "-q", p], cwd=REPO)
        assert r.returncode == 0, f"{p} is not in .gitignore"


def test_packaged_chart_ships_the_dashboards_as_built(tmp_path):
    r = subprocess.run(["bash", str(REPO / "scripts" / "package-chart.sh"), "package", "--destination", str(tmp_path)],
                       cwd=REPO, capture_output=True, text=True, env={**os.environ, "HELM": str(helm_binary())})
    assert r.returncode == 0, r.stdout + r.stderr
    (tgz,) = tmp_path.glob("mevwatch-*.tgz")
    with tarfile.open(tgz) as t:
        names = set(t.getnames())
    assert {f"mevwatch/generated/dashboards/{f.name}" for f in JSON_DIR.glob("*.json")} <= names
    assert "mevwatch/generated/rules.yml" in names
    out = helm("template", "rel", str(tgz), "--kube-version", KUBE, "--namespace", "mev").stdout
    assert_ships_as_built([d for d in yaml.safe_load_all(out) if d])


def test_bad_values_are_refused():
    r = helm("lint", ".", "--set", "node.rpc=http://not-websocket", "--kube-version", KUBE, check=False)
    assert r.returncode != 0 and "/node/rpc" in r.stdout + r.stderr
    r = helm("template", "rel", ".", "--set", "attest.enabled=true", "--kube-version", KUBE, check=False)
    assert r.returncode != 0 and "attest.rpc is required" in r.stderr
    r = helm("template", "rel", ".", "--set", "secrets.create=false", "--kube-version", KUBE, check=False)
    assert r.returncode != 0 and "existingSecret is required" in r.stderr


def test_dockerfile_runs_as_the_charts_user():
    text = (REPO / "Dockerfile").read_text()
    values = yaml.safe_load((CHART / "values.yaml").read_text())
    uid = values["podSecurityContext"]["runAsUser"]
    assert f"USER {uid}:{uid}" in text and 'ENTRYPOINT ["mevwatch"]' in text
    assert f"EXPOSE {values['service']['port']}" in text
