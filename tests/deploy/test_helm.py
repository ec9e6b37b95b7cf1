"""The Helm chart: `helm lint` and `helm template` with every values file in helm/mevwatch/ci,
the rendered manifests validated offline against the Kubernetes schemas (kubernetes-validate),
and what operators rely on checked in them: probes per role, resources, security context, GPU
scheduling, autoscaling capped at the partitions, disruption budgets that allow a drain, the
attester singleton, per-role secrets, scrape labels, the replay Job, the config the pods load,
the dashboards and rules they ship.

The chart's dashboards and rules are not committed: dashboards/ is their one source, and
`sync_chart` (what scripts/package-chart.sh runs before `helm package`) copies them into
helm/mevwatch/generated/ once per session, before any helm command here."""

from __future__ import annotations

import json
import os
import re
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
CRDS = {"ServiceMonitor", "PrometheusRule", "ScaledObject"}  # the Prometheus operator's and KEDA's: not in the Kubernetes schemas
PROM_CRDS = ("--api-versions", "monitoring.coreos.com/v1/ServiceMonitor", "--api-versions", "monitoring.coreos.com/v1/PrometheusRule")
RULES = REPO / "dashboards" / "prometheus" / "rules.yml"
WORKLOADS = ("Deployment", "StatefulSet", "Job")


@pytest.fixture(scope="session", autouse=True)
def chart_synced() -> list[Path]:
    """The packaging step: copy dashboards/json/*.json and the rules into the chart."""
    return sync_chart(CHART)


def helm(*args: str, check: bool = True, cwd: Path = CHART) -> subprocess.CompletedProcess:
    r = subprocess.run([str(helm_binary()), *args], capture_output=True, text=True, cwd=cwd)
    if check:
        assert r.returncode == 0, r.stdout + r.stderr
    return r


def render(values: Path | None, *sets: str, crds: bool = True, chart: str = ".") -> list[dict]:
    """`helm template` as a cluster with the Prometheus operator's CRDs (crds=True) would render it."""
    args = ["template", "rel", chart, "--kube-version", KUBE, "--namespace", "mev", *(PROM_CRDS if crds else ())]
    if values is not None:
        args += ["-f", str(values)]
    for s in sets:
        args += ["--set", s]
    return [d for d in yaml.safe_load_all(helm(*args).stdout) if d]


def refused(*sets: str, values: Path | None = None) -> str:
    """The error of a render that must fail."""
    args = ["template", "rel", ".", "--kube-version", KUBE]
    if values is not None:
        args += ["-f", str(values)]
    for s in sets:
        args += ["--set", s]
    r = helm(*args, check=False)
    assert r.returncode != 0, f"rendered with {sets}"
    return r.stderr


def by_kind(docs: list[dict], kind: str) -> dict[str, dict]:
    return {d["metadata"]["name"]: d for d in docs if d["kind"] == kind}


def workloads(docs: list[dict]) -> dict[str, dict]:
    return {d["metadata"]["name"]: d for d in docs if d["kind"] in WORKLOADS}


def pod(doc: dict) -> dict:
    return doc["spec"]["template"]["spec"]


def container(doc: dict) -> dict:
    (c,) = pod(doc)["containers"]
    return c


def env_of(doc: dict) -> dict[str, dict]:
    return {e["name"]: e for e in container(doc).get("env", [])}


def mounted_secret_keys(doc: dict) -> set[str]:
    """The Secret keys a pod mounts as files."""
    keys = set()
    for v in pod(doc).get("volumes", []):
        if "secret" in v:
            assert "items" in v["secret"], f"{doc['metadata']['name']} mounts a whole Secret"
            keys |= {i["key"] for i in v["secret"]["items"]}
        for src in v.get("projected", {}).get("sources", []):
            keys |= {i["key"] for i in src.get("secret", {}).get("items", [])}
    return keys


# --- every values file ------------------------------------------------------------------------------
@pytest.mark.parametrize("values", VALUES, ids=[v.stem for v in VALUES])
def test_chart_lints_renders_and_validates(values):
    helm("lint", ".", "--strict", "-f", str(values), "--kube-version", KUBE)  # (lint has no --api-versions: renders without the CRDs)
    docs = render(values)
    assert docs
    for d in docs:
        if d["kind"] in CRDS:
            assert d["apiVersion"] in ("monitoring.coreos.com/v1", "keda.sh/v1alpha1")
            continue
        kubernetes_validate.validate(d, KUBE, strict=True)  # raises on any schema violation


@pytest.mark.parametrize("values", VALUES, ids=[v.stem for v in VALUES])
def test_pods_are_probed_bounded_and_locked_down(values):
    docs = render(values)
    pods = workloads(docs)
    assert pods
    for name, d in pods.items():
        spec = pod(d)
        psc = spec["securityContext"]
        assert psc["runAsNonRoot"] is True and psc["runAsUser"] != 0 and psc["seccompProfile"]["type"] == "RuntimeDefault"
        assert spec["automountServiceAccountToken"] is False
        writable = {v["name"] for v in spec["volumes"] if "emptyDir" in v or "persistentVolumeClaim" in v}
        writable |= {t["metadata"]["name"] for t in d["spec"].get("volumeClaimTemplates", [])}
        for c in spec["containers"]:
            sc = c["securityContext"]
            assert sc["readOnlyRootFilesystem"] is True and sc["allowPrivilegeEscalation"] is False
            assert sc["capabilities"]["drop"] == ["ALL"]
            assert c["resources"]["requests"]["cpu"] and c["resources"]["limits"]["memory"], name
            mounts = {m["mountPath"]: m["name"] for m in c["volumeMounts"]}
            assert mounts["/tmp"] in writable
            if d["kind"] != "Job":
                assert mounts["/var/lib/mevwatch"] in writable  # outbox, journal: the only writable data path
                assert c["startupProbe"]["httpGet"] == {"path": "/startupz", "port": "http"}
                assert c["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": "http"}
                assert c["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": "http"}
                assert {"name": "http", "containerPort": 8080, "protocol": "TCP"} in c["ports"]


# --- 1. probes per role -------------------------------------------------------------------------------
def test_probes_are_configurable_per_role_and_startup_can_be_turned_off():
    docs = workloads(render(CHART / "ci" / "gpu-keda-values.yaml"))
    detect, ingest = container(docs["rel-mevwatch-detect"]), container(docs["rel-mevwatch-ingest"])
    assert detect["startupProbe"]["failureThreshold"] == 240 and ingest["startupProbe"]["failureThreshold"] == 120
    assert detect["startupProbe"]["periodSeconds"] == ingest["startupProbe"]["periodSeconds"] == 5  # the rest is global
    assert "enabled" not in detect["startupProbe"]
    docs = workloads(render(None, "probes.liveness.periodSeconds=20", "detect.probes.startup.enabled=false",
                            "ingest.probes.readiness.failureThreshold=9"))
    detect, ingest = container(docs["rel-mevwatch-detect"]), container(docs["rel-mevwatch-ingest"])
    assert "startupProbe" not in detect and ingest["startupProbe"]["httpGet"]["path"] == "/startupz"
    assert detect["livenessProbe"]["periodSeconds"] == ingest["livenessProbe"]["periodSeconds"] == 20
    assert ingest["readinessProbe"]["failureThreshold"] == 9 and detect["readinessProbe"]["failureThreshold"] == 3
    assert "unknown" in refused("detect.probes.liveness.pathh=/x").lower() or "additional properties" in refused(
        "detect.probes.liveness.pathh=/x").lower()


# --- GPU ------------------------------------------------------------------------------------------------
def test_gpu_scheduling_only_when_asked():
    default = pod(workloads(render(None))["rel-mevwatch-detect"])
    assert "nvidia.com/gpu" not in default["containers"][0]["resources"]["limits"] and "nodeSelector" not in default
    gpu = workloads(render(CHART / "ci" / "gpu-values.yaml"))
    spec = pod(gpu["rel-mevwatch-detect"])
    assert spec["containers"][0]["resources"]["limits"]["nvidia.com/gpu"] == 2
    assert spec["containers"][0]["resources"]["limits"]["memory"] == "8Gi"  # torch with CUDA: more than the CPU build's 2Gi
    assert spec["nodeSelector"] == {"nvidia.com/gpu.present": "true", "topology.kubernetes.io/zone": "eu-west-1a"}
    assert {"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"} in spec["tolerations"]
    assert {"name": "MEVWATCH_DEVICE", "value": "cuda"} in spec["containers"][0]["env"]
    assert gpu["rel-mevwatch-detect"]["spec"]["replicas"] == 3
    ingest = pod(gpu["rel-mevwatch-ingest"])
    assert "nvidia.com/gpu" not in ingest["containers"][0]["resources"]["limits"]  # only detect scores
    # without GPU Feature Discovery: the resource request alone places the pods
    spec = pod(workloads(render(None, "detect.gpu.enabled=true"))["rel-mevwatch-detect"])
    assert "nodeSelector" not in spec and spec["containers"][0]["resources"]["limits"]["nvidia.com/gpu"] == 1


# --- 2. disruption budgets ----------------------------------------------------------------------------
def test_pdbs_allow_a_drain_with_one_replica_and_honour_max_unavailable():
    docs = render(None)
    pdbs = by_kind(docs, "PodDisruptionBudget")
    ingest = pdbs["rel-mevwatch-ingest"]["spec"]
    assert ingest["maxUnavailable"] == 1 and "minAvailable" not in ingest  # one replica: one eviction allowed
    assert workloads(docs)["rel-mevwatch-ingest"]["spec"]["replicas"] == 1
    for name, pdb in pdbs.items():
        sel = pdb["spec"]["selector"]["matchLabels"]
        assert workloads(docs)[name]["spec"]["template"]["metadata"]["labels"].items() >= sel.items()
        assert pdb["spec"]["unhealthyPodEvictionPolicy"] == "AlwaysAllow"
    assert "rel-mevwatch-attest" not in pdbs  # a budget on the singleton would block every drain
    ingest = by_kind(render(None, "ingest.pdb.maxUnavailable=2"), "PodDisruptionBudget")["rel-mevwatch-ingest"]["spec"]
    assert ingest["maxUnavailable"] == 2
    ingest = by_kind(render(None, "ingest.replicas=3", "ingest.pdb.minAvailable=2"), "PodDisruptionBudget")["rel-mevwatch-ingest"]["spec"]
    assert ingest == {**ingest, "minAvailable": 2} and "maxUnavailable" not in ingest


# --- 3. scraping ----------------------------------------------------------------------------------------
def test_targets_carry_the_role_and_the_stall_rule_is_written_over_detect(tmp_path):
    docs = render(CHART / "ci" / "strimzi-altinity-values.yaml")
    services = by_kind(docs, "Service")
    assert set(services) == {"rel-mevwatch-ingest", "rel-mevwatch-detect", "rel-mevwatch-attest"}
    sm = by_kind(docs, "ServiceMonitor")["rel-mevwatch"]
    assert sm["metadata"]["labels"]["release"] == "kube-prometheus-stack"
    sel = sm["spec"]["selector"]
    for name, svc in services.items():
        role = name.rsplit("-", 1)[1]
        assert svc["spec"]["selector"]["app.kubernetes.io/component"] == role
        assert sel["matchLabels"].items() <= svc["metadata"]["labels"].items()
        assert svc["metadata"]["labels"]["app.kubernetes.io/component"] in sel["matchExpressions"][0]["values"]
        assert svc["spec"]["ports"][0]["name"] == "http" and svc["spec"]["clusterIP"] == "None"
        assert workloads(docs)[name]["spec"]["template"]["metadata"]["labels"]["app.kubernetes.io/component"] == role
    (ep,) = sm["spec"]["endpoints"]
    assert ep["port"] == "http" and ep["path"] == "/metrics"
    assert {"sourceLabels": ["__meta_kubernetes_pod_label_app_kubernetes_io_component"], "targetLabel": "component",
            "action": "replace"} in ep["relabelings"]
    assert by_kind(docs, "StatefulSet")["rel-mevwatch-detect"]["spec"]["serviceName"] == "rel-mevwatch-detect"
    # the rule the chart ships, checked by the real promtool: the stall is judged over the detect role
    rule = by_kind(docs, "PrometheusRule")["rel-mevwatch"]
    assert rule["metadata"]["labels"]["release"] == "kube-prometheus-stack"
    (tmp_path / "rules.yml").write_text(yaml.safe_dump(rule["spec"]))
    promtool = shutil.which("promtool")
    assert promtool, "promtool not installed: run scripts/setup.sh --all (Debian's prometheus package)"
    r = subprocess.run([promtool, "check", "rules", str(tmp_path / "rules.yml")], capture_output=True, text=True)
    assert r.returncode == 0, r.stdout + r.stderr
    shutil.copy(REPO / "dashboards" / "prometheus" / "rules_test.yml", tmp_path / "rules_test.yml")
    r = subprocess.run([promtool, "test", "rules", "rules_test.yml"], cwd=tmp_path, capture_output=True, text=True)
    assert r.returncode == 0 and "SUCCESS" in r.stdout, r.stdout + r.stderr
    stalled = next(x for g in rule["spec"]["groups"] for x in g["rules"] if x.get("alert") == "MevwatchPipelineStalled")
    assert 'component!~"ingest|attest"' in stalled["expr"] and "by (namespace, job, component, chain)" in stalled["expr"]


# --- 5. autoscaling and the outbox ------------------------------------------------------------------------
def test_autoscaling_is_off_by_default_and_detect_keeps_its_outbox_on_a_volume():
    docs = render(None)
    assert not by_kind(docs, "HorizontalPodAutoscaler") and not by_kind(docs, "ScaledObject")
    detect = by_kind(docs, "StatefulSet")["rel-mevwatch-detect"]
    assert detect["spec"]["replicas"] == 2 and detect["spec"]["podManagementPolicy"] == "Parallel"
    (claim,) = detect["spec"]["volumeClaimTemplates"]
    assert claim["metadata"]["name"] == "data" and claim["spec"]["resources"]["requests"]["storage"] == "1Gi"
    assert {"name": "data", "mountPath": "/var/lib/mevwatch"} in container(detect)["volumeMounts"]
    assert all(v["name"] != "data" for v in pod(detect)["volumes"])  # the claim, not an emptyDir
    # a scale-down keeps the member's claim (pending retries wait for it), and so does an uninstall
    assert detect["spec"]["persistentVolumeClaimRetentionPolicy"] == {"whenScaled": "Retain", "whenDeleted": "Retain"}
    cfg = json.loads(by_kind(docs, "ConfigMap")["rel-mevwatch"]["data"]["mevwatch.yaml"])
    assert cfg["data_dir"] == "/var/lib/mevwatch"  # the outbox lives there (data_dir/outbox.sqlite)
    detect = by_kind(render(None, "detect.persistence.enabled=false"), "StatefulSet")["rel-mevwatch-detect"]
    assert "volumeClaimTemplates" not in detect["spec"] and {"name": "data", "emptyDir": {}} in pod(detect)["volumes"]


def test_keda_scales_detect_on_consumer_lag_capped_at_the_partitions():
    docs = render(CHART / "ci" / "gpu-keda-values.yaml")
    detect = by_kind(docs, "StatefulSet")["rel-mevwatch-detect"]
    assert "replicas" not in detect["spec"]  # KEDA's HPA owns it
    so = by_kind(docs, "ScaledObject")["rel-mevwatch-detect"]
    assert so["apiVersion"] == "keda.sh/v1alpha1"
    assert so["spec"]["scaleTargetRef"] == {"apiVersion": "apps/v1", "kind": "StatefulSet", "name": "rel-mevwatch-detect"}
    assert so["spec"]["minReplicaCount"] == 2 and so["spec"]["maxReplicaCount"] == 12
    (trig,) = so["spec"]["triggers"]
    assert trig["type"] == "kafka" and trig["authenticationRef"] == {"name": "mevwatch-kafka"}
    md = trig["metadata"]
    assert md["consumerGroup"] == "mevwatch-detect" and md["topic"] == "mevwatch.mempool.v1"
    assert md["bootstrapServers"] == "mev-kafka-bootstrap.kafka.svc:9092" and md["lagThreshold"] == "20000"
    assert md["allowIdleConsumers"] == "false"
    assert all(isinstance(v, str) for v in md.values())  # KEDA's metadata is a map of strings
    assert not by_kind(docs, "HorizontalPodAutoscaler")
    # more members than partitions: refused with a clear message (the mempool topic has 6 by default)
    err = refused("detect.keda.enabled=true", "detect.keda.maxReplicas=8")
    assert "detect.keda.maxReplicas (8) is above kafka.partitions (6)" in err
    err = refused("detect.hpa.enabled=true", "detect.hpa.maxReplicas=7")
    assert "detect.hpa.maxReplicas (7) is above kafka.partitions (6)" in err
    assert "choose one autoscaler" in refused("detect.hpa.enabled=true", "detect.keda.enabled=true")
    hpa = by_kind(render(None, "detect.hpa.enabled=true"), "HorizontalPodAutoscaler")["rel-mevwatch-detect"]
    assert hpa["spec"]["scaleTargetRef"]["kind"] == "StatefulSet" and hpa["spec"]["maxReplicas"] <= 6


# --- 6. secrets -------------------------------------------------------------------------------------------
def test_each_role_mounts_only_its_own_secrets_and_a_secret_change_rolls_the_pods():
    values = CHART / "ci" / "strimzi-altinity-values.yaml"
    docs = render(values)
    pods = workloads(docs)
    assert mounted_secret_keys(pods["rel-mevwatch-attest"]) == {"attester-key"}
    assert mounted_secret_keys(pods["rel-mevwatch-detect"]) == {"soc", "desk"}  # the webhook signing secrets
    assert mounted_secret_keys(pods["rel-mevwatch-ingest"]) == set()
    assert all(v["name"] != "secrets" for v in pod(pods["rel-mevwatch-ingest"])["volumes"])
    for name, d in pods.items():
        pw = env_of(d).get("MEVWATCH_CLICKHOUSE__PASSWORD")
        if name.endswith("-ingest"):
            assert pw is None  # ingest does not talk to ClickHouse
            continue
        # optional: a Secret without the key starts the pod without a password instead of failing it
        assert pw["valueFrom"]["secretKeyRef"] == {"name": "rel-mevwatch", "key": "clickhouse-password", "optional": True}
        assert "MEVWATCH_CLICKHOUSE__PASSWORD_FILE" not in env_of(d)
    assert env_of(pods["rel-mevwatch-attest"])["MEVWATCH_ATTEST__PRIVATE_KEY_FILE"]["value"] == "/etc/mevwatch/secrets/attester-key"
    secret = by_kind(docs, "Secret")["rel-mevwatch"]["stringData"]
    assert set(secret) == {"clickhouse-password", "attester-key", "soc", "desk"}
    # rotating a secret changes the checksum: every role's pods roll
    before = {n: d["spec"]["template"]["metadata"]["annotations"]["checksum/secret"] for n, d in pods.items()}
    after = {n: d["spec"]["template"]["metadata"]["annotations"]["checksum/secret"]
             for n, d in workloads(render(values, "secrets.clickhousePassword=rotated")).items()}
    assert before.keys() == after.keys() and all(before[n] != after[n] for n in before)


def test_an_existing_secret_with_its_own_key_names():
    docs = render(CHART / "ci" / "minimal-values.yaml")
    assert not by_kind(docs, "Secret")
    pods = workloads(docs)
    attest = pods["rel-mevwatch-attest"]
    (vol,) = [v for v in pod(attest)["volumes"] if v["name"] == "secrets"]
    assert vol["secret"]["secretName"] == "mevwatch-prod"
    assert vol["secret"]["items"] == [{"key": "signer.key", "path": "attester-key"}]  # its name, the app's path
    for d in pods.values():  # keys.clickhousePassword: "" -> no password at all
        assert "MEVWATCH_CLICKHOUSE__PASSWORD" not in env_of(d)
    detect = workloads(render(None, "secrets.create=false", "secrets.existingSecret=mine"))["rel-mevwatch-detect"]
    ref = env_of(detect)["MEVWATCH_CLICKHOUSE__PASSWORD"]["valueFrom"]["secretKeyRef"]
    assert ref == {"name": "mine", "key": "clickhouse-password", "optional": True}
    assert "secretKey \"w\" is not in secrets.webhookSecrets" in refused("webhooks[0].url=https://x.org", "webhooks[0].secretKey=w")


# --- 7. the attester singleton -------------------------------------------------------------------------
def test_attest_is_a_one_replica_statefulset_on_a_read_write_once_pod_volume_kept_on_uninstall():
    docs = render(CHART / "ci" / "strimzi-altinity-values.yaml")
    assert "rel-mevwatch-attest" not in by_kind(docs, "Deployment")
    attest = by_kind(docs, "StatefulSet")["rel-mevwatch-attest"]
    assert attest["spec"]["replicas"] == 1 and attest["spec"]["serviceName"] == "rel-mevwatch-attest"
    assert container(attest)["args"][-2:] == ["--role", "attest"]
    vols = {v["name"]: v for v in pod(attest)["volumes"]}
    assert vols["data"]["persistentVolumeClaim"]["claimName"] == "rel-mevwatch-attest"
    pvc = by_kind(docs, "PersistentVolumeClaim")["rel-mevwatch-attest"]
    assert pvc["spec"]["accessModes"] == ["ReadWriteOncePod"]
    assert pvc["metadata"]["annotations"]["helm.sh/resource-policy"] == "keep"
    docs = render(None, "attest.enabled=true", "attest.rpc=https://n.org", "attest.contract=0x" + "ab" * 20,
                  "secrets.attesterKey=0x" + "11" * 32, "attest.persistence.existingClaim=journal")
    assert not by_kind(docs, "PersistentVolumeClaim")
    vols = {v["name"]: v for v in pod(by_kind(docs, "StatefulSet")["rel-mevwatch-attest"])["volumes"]}
    assert vols["data"]["persistentVolumeClaim"]["claimName"] == "journal"


# --- 8. the replay Job ------------------------------------------------------------------------------------
def test_replay_job_name_is_stable_and_it_is_scheduled_like_the_rest():
    values = CHART / "ci" / "minimal-values.yaml"
    (name,) = by_kind(render(values), "Job")
    assert not re.search(r"-replay-\d+$", name) or len(name.rsplit("-", 1)[1]) == 10
    # an upgrade that leaves the replay alone (here: more detect members) keeps its name: no restart
    (same,) = by_kind(render(values, "detect.replicas=3", "ingest.replicas=2"), "Job")
    assert same == name
    (other,) = by_kind(render(values, "replay.args={/data/base}"), "Job")
    assert other != name  # another replay is another Job
    job = by_kind(render(values), "Job")[name]
    spec = pod(job)
    assert spec["nodeSelector"] == {"workload": "batch"} and spec["tolerations"][0]["key"] == "batch"
    assert job["spec"]["backoffLimit"] == 2 and "ttlSecondsAfterFinished" not in job["spec"]
    rules = job["spec"]["podFailurePolicy"]["rules"]
    assert {"action": "Ignore", "onPodConditions": [{"type": "DisruptionTarget", "status": "True"}]} in rules
    # exit 1 (some input rejected) and 2 (could not run) end the Job: a rejected file never replays everything again
    assert {"action": "FailJob", "onExitCodes": {"containerName": "replay", "operator": "In", "values": [1, 2]}} in rules
    assert rules.index({"action": "Ignore", "onPodConditions": [{"type": "DisruptionTarget", "status": "True"}]}) == 0
    replay_doc = (REPO / "docs" / "operations.md").read_text()
    assert "1 when some input was" in replay_doc and "2 when the replay could not start" in replay_doc  # the codes it relies on
    args = container(job)["args"]
    assert args.count("--workers") == 1 and args[args.index("--workers") + 1] == "4"  # given in replay.args
    job = next(iter(by_kind(render(None, "replay.enabled=true", "imagePullSecrets[0].name=reg"), "Job").values()))
    assert pod(job)["imagePullSecrets"] == [{"name": "reg"}]
    args, env = container(job)["args"], env_of(job)
    assert args[args.index("--workers") + 1] == "$(REPLAY_CPU_LIMIT)"  # the pod's CPU limit, not the node's CPUs
    assert env["REPLAY_CPU_LIMIT"]["valueFrom"]["resourceFieldRef"] == {"containerName": "replay", "resource": "limits.cpu",
                                                                         "divisor": "1"}
    assert container(job)["resources"]["limits"]["cpu"] == "4"


def test_sharded_backfill_is_an_indexed_job_that_resumes_by_its_name():
    rpc = 'replay.args={--rpc,http://node:8545,--from,"100",--to,"200"}'
    (name, job), = by_kind(render(None, "replay.enabled=true", "replay.shards=3", "replay.parallelism=2", rpc), "Job").items()
    kubernetes_validate.validate(job, KUBE, strict=True)
    spec = job["spec"]
    assert (spec["completionMode"], spec["completions"], spec["parallelism"]) == ("Indexed", 3, 2)
    args, env = container(job)["args"], env_of(job)
    assert args[args.index("--shard") + 1] == "$(JOB_COMPLETION_INDEX)/3"  # pod i replays shard i of 3
    assert env["JOB_COMPLETION_INDEX"]["valueFrom"]["fieldRef"]["fieldPath"] == \
        "metadata.annotations['batch.kubernetes.io/job-completion-index']"
    # a retried pod resumes from its progress in the store, kept under the Job's own name
    assert args[args.index("--checkpoint") + 1] == name
    (again,) = by_kind(render(None, "replay.enabled=true", "replay.shards=3", "replay.parallelism=2", rpc), "Job")
    assert again == name  # the name (and so the checkpoint) is stable across renders of the same replay
    (other,) = by_kind(render(None, "replay.enabled=true", "replay.shards=4", rpc), "Job")
    assert other != name  # another sharding is another replay, from the beginning
    # one shard: a plain Job; files (no --rpc): no checkpoint (a file shard is replayed whole again)
    (plain,) = by_kind(render(None, "replay.enabled=true", rpc), "Job").values()
    assert "completionMode" not in plain["spec"] and "--shard" not in container(plain)["args"]
    assert "--checkpoint" in container(plain)["args"]
    (files,) = by_kind(render(None, "replay.enabled=true", "replay.shards=2"), "Job").values()
    assert "--checkpoint" not in container(files)["args"] and files["spec"]["completions"] == 2
    assert "leave --shard" in refused("replay.enabled=true", "replay.shards=2", "replay.args={/data,--shard,0/2}")
    assert "minimum" in refused("replay.enabled=true", "replay.shards=0")


# --- 9. the schema ------------------------------------------------------------------------------------------
def test_schema_types_what_it_accepts(tmp_path):
    # cpu as a number (YAML 0.5, not "500m"), global (a parent chart's)
    values = tmp_path / "values.yaml"
    values.write_text("global: {imageRegistry: reg.example.org}\ndetect: {resources: {limits: {cpu: 0.5, memory: 2Gi}}}\n")
    helm("lint", ".", "--strict", "-f", str(values), "--kube-version", KUBE)
    docs = render(values)
    assert container(workloads(docs)["rel-mevwatch-detect"])["resources"]["limits"]["cpu"] == 0.5
    kubernetes_validate.validate(workloads(docs)["rel-mevwatch-detect"], KUBE, strict=True)
    # as a subchart: the parent's global values reach it and pass its schema
    parent = tmp_path / "parent"
    (parent / "charts").mkdir(parents=True)
    (parent / "Chart.yaml").write_text("apiVersion: v2\nname: parent\nversion: 1.0.0\n"
                                       "dependencies: [{name: mevwatch, version: '>=0.0.0'}]\n")
    (parent / "values.yaml").write_text("global: {clusterDomain: cluster.local}\nmevwatch: {detect: {replicas: 1}}\n")
    shutil.copytree(CHART, parent / "charts" / "mevwatch")
    docs = render(None, chart=str(parent))
    assert by_kind(docs, "StatefulSet")["rel-mevwatch-detect"]["spec"]["replicas"] == 1
    # refused: a typo in a webhook, untyped probes, security contexts and scheduling, bad quantities
    assert "minScore" in refused("webhooks[0].url=https://x.org", "webhooks[0].secretKey=w", "webhooks[0].minScore=0.9",
                                 "secrets.webhookSecrets.w=whsec_x")
    assert "initialDelay" in refused("probes.readiness.initialDelay=5")
    assert "runAsUsr" in refused("securityContext.runAsUsr=0")
    assert "operator" in refused("detect.tolerations[0].key=a", "detect.tolerations[0].operator=Maybe")
    assert "whenUnsatisfiable" in refused("ingest.topologySpreadConstraints[0].maxSkew=1",
                                          "ingest.topologySpreadConstraints[0].topologyKey=zone")
    assert "nodeAffinty" in refused("detect.affinity.nodeAffinty.x=y")
    assert "/detect/resources/limits/memory" in refused("detect.resources.limits.memory=lots")
    assert "minReplicas (5) is above detect.keda.maxReplicas (3)" in refused(
        "detect.keda.enabled=true", "detect.keda.minReplicas=5", "detect.keda.maxReplicas=3")
    assert "detect.hpa.minReplicas (4) is above detect.hpa.maxReplicas (2)" in refused(
        "detect.hpa.enabled=true", "detect.hpa.minReplicas=4", "detect.hpa.maxReplicas=2")


def test_bad_values_are_refused():
    r = helm("lint", ".", "--set", "node.rpc=http://not-websocket", "--kube-version", KUBE, check=False)
    assert r.returncode != 0 and "/node/rpc" in r.stdout + r.stderr
    assert "attest.rpc is required" in refused("attest.enabled=true")
    assert "existingSecret is required" in refused("secrets.create=false")


# --- 10. defaults and extras ------------------------------------------------------------------------------
def rendered_notes(values: Path, tmp_path: Path) -> str:
    """NOTES.txt as `helm install` prints it (`helm template` skips it, and an install needs a
    cluster): the same template, rendered into a ConfigMap of a copy of the chart."""
    chart = tmp_path / "mevwatch"
    shutil.copytree(CHART, chart)
    notes_tpl = (chart / "templates" / "NOTES.txt").read_text()
    (chart / "templates" / "NOTES.txt").unlink()
    (chart / "templates" / "notes.yaml").write_text(
        "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: notes}\ndata:\n  notes: |\n"
        + "".join(f"    {line}\n" for line in notes_tpl.splitlines()))
    docs = render(values, crds=False, chart=str(chart))
    return by_kind(docs, "ConfigMap")["notes"]["data"]["notes"]


def test_monitoring_objects_only_with_their_crds_and_notes(tmp_path):
    with_crds = render(None)
    assert by_kind(with_crds, "ServiceMonitor") and by_kind(with_crds, "PrometheusRule")
    without = render(None, crds=False)  # a cluster without the Prometheus operator: an install must not fail
    assert not by_kind(without, "ServiceMonitor") and not by_kind(without, "PrometheusRule")
    assert by_kind(without, "ConfigMap")  # the rest is there
    notes = rendered_notes(CHART / "ci" / "strimzi-altinity-values.yaml", tmp_path)
    assert "rel-mevwatch-detect" in notes and "registry 0x5FbDB2315678afecb367f032d93F642f64180aa3" in notes
    assert "no ServiceMonitor CRD" in notes and "kept on `helm uninstall`" in notes


def test_network_policy_topology_priority_digest_and_extras():
    docs = render(CHART / "ci" / "gpu-keda-values.yaml")
    pods = workloads(docs)
    for d in pods.values():
        assert container(d)["image"] == ("registry.example.org/mevwatch/mevwatch-gnn@sha256:"
                                          "4f1e2d3c4b5a69788796a5b4c3d2e1f00f1e2d3c4b5a69788796a5b4c3d2e1f0")
        assert pod(d)["priorityClassName"] == "mevwatch-high"
        assert pod(d)["imagePullSecrets"] == [{"name": "registry-example-org"}]
        assert env_of(d)["TZ"]["value"] == "UTC"
    detect = pods["rel-mevwatch-detect"]
    (tsc,) = pod(detect)["topologySpreadConstraints"]
    assert tsc["topologyKey"] == "topology.kubernetes.io/zone"
    assert tsc["labelSelector"]["matchLabels"]["app.kubernetes.io/component"] == "detect"  # the role's pods by default
    assert {"name": "models", "mountPath": "/models", "readOnly": True} in container(detect)["volumeMounts"]
    assert any(v["name"] == "models" for v in pod(detect)["volumes"])
    assert env_of(detect)["MEVWATCH_GNN__MODEL"]["value"] == "/models/model.pt"
    assert "MEVWATCH_GNN__MODEL" not in env_of(pods["rel-mevwatch-ingest"])
    nps = by_kind(docs, "NetworkPolicy")
    assert set(nps) == {"rel-mevwatch-ingest", "rel-mevwatch-detect"}

    def egress_ports(np: dict) -> set[int]:
        return {p["port"] for rule in np["spec"]["egress"] for p in rule["ports"]}

    assert egress_ports(nps["rel-mevwatch-ingest"]) == {53, 8546, 9092}  # the node and Kafka
    # no webhooks configured: no egress for them; the node: victim losses re-executed (node.reexecute auto)
    assert egress_ports(nps["rel-mevwatch-detect"]) == {53, 9092, 9000, 8546}
    (ing,) = nps["rel-mevwatch-detect"]["spec"]["ingress"]
    assert ing["ports"] == [{"port": "http", "protocol": "TCP"}]
    assert ing["from"] == [{"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "monitoring"}}}]
    docs = render(CHART / "ci" / "strimzi-altinity-values.yaml", "networkPolicy.enabled=true", "replay.enabled=true")
    nps = by_kind(docs, "NetworkPolicy")
    assert egress_ports(nps["rel-mevwatch-attest"]) == {53, 9000, 443, 8545}  # ClickHouse and the attestation node
    assert egress_ports(nps["rel-mevwatch-detect"]) == {53, 9092, 9000, 443, 8546}  # and now the webhook receivers
    assert nps["rel-mevwatch-replay"]["spec"]["ingress"] == []
    off = by_kind(render(CHART / "ci" / "strimzi-altinity-values.yaml", "networkPolicy.enabled=true", "node.reexecute=off"),
                  "NetworkPolicy")
    assert egress_ports(off["rel-mevwatch-detect"]) == {53, 9092, 9000, 443, 8546}  # pending swaps still simulated
    off = by_kind(render(CHART / "ci" / "strimzi-altinity-values.yaml", "networkPolicy.enabled=true", "node.reexecute=off",
                         "node.exposure=off"), "NetworkPolicy")
    assert egress_ports(off["rel-mevwatch-detect"]) == {53, 9092, 9000, 443}  # neither re-execution nor simulation: no node


def test_dashboards_choose_their_datasource_by_variable():
    for d in by_kind(render(None), "ConfigMap").values():
        for fname, body in d["data"].items():
            if not fname.endswith(".json"):
                continue
            dash = json.loads(body)
            variables = {v["name"]: v["query"] for v in dash["templating"]["list"] if v["type"] == "datasource"}
            assert variables, fname
            refs = {p["datasource"]["uid"] for p in dash["panels"]}
            assert refs == {f"${{{n}}}" for n in variables}, fname  # no hard-coded uid left


def test_the_helm_binary_knows_a_current_kubernetes(tmp_path):
    """Built with the Kubernetes version ldflags of helm's Makefile: a plain `helm template` (no
    --kube-version) assumes a current Kubernetes, not v1.20.0, and passes the chart's kubeVersion."""
    chart = tmp_path / "kv"
    (chart / "templates").mkdir(parents=True)
    (chart / "Chart.yaml").write_text("apiVersion: v2\nname: kv\nversion: 0.1.0\n")
    (chart / "templates" / "cm.yaml").write_text(
        "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: kv}\ndata: {v: {{ .Capabilities.KubeVersion.Version | quote }}}\n")
    out = yaml.safe_load(helm("template", str(chart)).stdout)["data"]["v"]
    major, minor = (int(x) for x in out.lstrip("v").split(".")[:2])
    assert (major, minor) >= (1, 30), out
    assert (helm_binary().parent / ".kube-version").read_text().strip() == out
    helm("template", "rel", ".")  # the chart itself, with no --kube-version
    text = (REPO / "scripts" / "services" / "install.sh").read_text()
    assert "helm.sh/helm/v3/pkg/chartutil.k8sVersionMinor" in text or "$pkg.k8sVersionMinor" in text


# --- the config, the dashboards and the rules ---------------------------------------------------------------
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
    detect = workloads(docs)["rel-mevwatch-detect"]
    mounted = {i["path"]: i["key"] for v in pod(detect)["volumes"] if "secret" in v for i in v["secret"]["items"]}
    for w in s.webhooks:
        (f,) = w.secret_files
        assert str(f).startswith("/etc/mevwatch/secrets/") and mounted[Path(f).name] in secret
    for name, d in workloads(docs).items():
        for e in container(d).get("env", []):
            if e["name"].endswith("_FILE"):
                vols = [v for v in pod(d)["volumes"] if v["name"] == "secrets"]
                paths = {i["path"]: i["key"] for v in vols for i in v["secret"]["items"]}
                assert paths[Path(e["value"]).name] in secret, (name, e)


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
    r = helm("template", "rel", ".", "--kube-version", KUBE, *PROM_CRDS, check=False, cwd=chart)
    assert r.returncode != 0 and "run scripts/package-chart.sh" in r.stderr
    r = helm("template", "rel", ".", "--kube-version", KUBE, *PROM_CRDS, "--set", "dashboards.enabled=false",
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
    out = helm("template", "rel", str(tgz), "--kube-version", KUBE, "--namespace", "mev", *PROM_CRDS).stdout
    assert_ships_as_built([d for d in yaml.safe_load_all(out) if d])


# --- 11. the README's operator examples --------------------------------------------------------------------
def readme_section(title: str) -> list[dict]:
    """The YAML documents of the README section ``title``."""
    text = (CHART / "README.md").read_text()
    body = text.split(f"## {title}\n", 1)[1].split("\n## ", 1)[0]
    return [d for block in re.findall(r"```yaml\n(.*?)```", body, re.S) for d in yaml.safe_load_all(block) if d]


def test_readme_strimzi_example_uses_node_pools_and_matches_the_values():
    docs = readme_section("Kafka with Strimzi")
    kafka = next(d for d in docs if d["kind"] == "Kafka")
    pools = [d for d in docs if d["kind"] == "KafkaNodePool"]
    assert pools, "Strimzi >= 0.46 runs brokers and controllers in KafkaNodePools only"
    assert "zookeeper" not in kafka["spec"] and "replicas" not in kafka["spec"]["kafka"] and "storage" not in kafka["spec"]["kafka"]
    assert kafka["metadata"]["annotations"] == {"strimzi.io/node-pools": "enabled", "strimzi.io/kraft": "enabled"}
    roles = set()
    for p in pools:
        assert p["metadata"]["labels"]["strimzi.io/cluster"] == kafka["metadata"]["name"]
        assert p["metadata"]["namespace"] == kafka["metadata"]["namespace"]
        assert p["spec"]["replicas"] >= 3 and p["spec"]["storage"]["volumes"][0]["type"] == "persistent-claim"
        roles |= set(p["spec"]["roles"])
    assert roles == {"controller", "broker"}
    cfg = kafka["spec"]["kafka"]["config"]
    assert cfg["min.insync.replicas"] == 2 and cfg["default.replication.factor"] == 3
    (plain,) = [x for x in kafka["spec"]["kafka"]["listeners"] if x["name"] == "plain"]
    values = yaml.safe_load((CHART / "ci" / "strimzi-altinity-values.yaml").read_text())
    name, ns = kafka["metadata"]["name"], kafka["metadata"]["namespace"]
    assert values["kafka"]["bootstrap"] == f"{name}-kafka-bootstrap.{ns}.svc:{plain['port']}"


def test_readme_altinity_example_keeps_data_and_admits_no_world():
    (chi,) = readme_section("ClickHouse with the Altinity operator")
    assert chi["kind"] == "ClickHouseInstallation"
    template = chi["spec"]["defaults"]["templates"]["dataVolumeClaimTemplate"]
    (claim,) = [t for t in chi["spec"]["templates"]["volumeClaimTemplates"] if t["name"] == template]
    assert claim["spec"]["resources"]["requests"]["storage"] and claim["reclaimPolicy"] == "Retain"
    text = yaml.safe_dump(chi)
    assert "0.0.0.0/0" not in text and "::/0" not in text
    nets = chi["spec"]["configuration"]["users"]["mevwatch/networks/ip"]
    assert nets and all(not n.endswith("/0") for n in nets)
    values = yaml.safe_load((CHART / "ci" / "strimzi-altinity-values.yaml").read_text())
    host = f"clickhouse-{chi['metadata']['name']}.{chi['metadata']['namespace']}.svc:9000"
    assert f"mevwatch@{host}/" in values["clickhouse"]["url"]


def _mounts(doc: dict) -> dict[str, tuple[str, set[str]]]:
    """The TLS mounts of a pod: mount path -> (Secret name, keys)."""
    vols = {v["name"]: v for v in pod(doc).get("volumes", [])}
    out = {}
    for m in container(doc).get("volumeMounts", []):
        if m["name"].startswith("tls-"):
            sec = vols[m["name"]]["secret"]
            out[m["mountPath"]] = (sec["secretName"], {i["key"] for i in sec["items"]})
    return out


def test_kafka_over_sasl_ssl_and_clickhouse_over_tls(tmp_path, monkeypatch):
    """The TLS/SASL values render a config the app accepts, whose certificate paths are what each
    role mounts (only the roles that talk to that service), and the passwords reach exactly the
    roles that use them, from optional Secret keys."""
    docs = render(CHART / "ci" / "tls-sasl-values.yaml")
    cfg = tmp_path / "mevwatch.yaml"
    cfg.write_text(by_kind(docs, "ConfigMap")["rel-mevwatch"]["data"]["mevwatch.yaml"])
    monkeypatch.delenv("MEVWATCH_KAFKA__SASL_PASSWORD", raising=False)
    load_settings(cfg)  # attest and replay read this config without the Kafka password: it loads
    monkeypatch.setenv("MEVWATCH_KAFKA__SASL_PASSWORD", "from-the-secret")
    s = load_settings(cfg)
    assert (s.kafka.security_protocol, s.kafka.sasl_mechanism, s.kafka.sasl_username) == ("SASL_SSL", "SCRAM-SHA-512", "mevwatch")
    assert str(s.kafka.ssl_ca_file) == "/etc/mevwatch/tls/kafka-ca/ca.crt" and s.kafka.ssl_cert_file is None
    assert s.clickhouse.secure and str(s.clickhouse.ca_file) == "/etc/mevwatch/tls/clickhouse-ca/ca.crt"
    w = workloads(docs)
    kafka_ca = ("mev-cluster-ca-cert", {"ca.crt"})
    ch_ca = ("clickhouse-ca", {"ca.crt"})
    assert _mounts(w["rel-mevwatch-ingest"]) == {"/etc/mevwatch/tls/kafka-ca": kafka_ca}
    assert _mounts(w["rel-mevwatch-detect"]) == {"/etc/mevwatch/tls/kafka-ca": kafka_ca, "/etc/mevwatch/tls/clickhouse-ca": ch_ca}
    assert _mounts(w["rel-mevwatch-attest"]) == {"/etc/mevwatch/tls/clickhouse-ca": ch_ca}
    (replay,) = [d for n, d in w.items() if d["kind"] == "Job"]
    assert _mounts(replay) == {"/etc/mevwatch/tls/clickhouse-ca": ch_ca}
    secret = by_kind(docs, "Secret")["rel-mevwatch"]["stringData"]
    for name, doc in w.items():
        ref = env_of(doc).get("MEVWATCH_KAFKA__SASL_PASSWORD")
        if name.endswith(("-ingest", "-detect")):
            sk = ref["valueFrom"]["secretKeyRef"]
            assert sk["optional"] is True and secret[sk["key"]] == "not-a-real-kafka-password"
        else:
            assert ref is None, f"{name} gets the Kafka password it does not use"
        kubernetes_validate.validate(doc, KUBE, strict=True)
    # mutual TLS (Strimzi's TLS KafkaUser): the user's certificate and key, mounted for ingest and detect only
    docs = render(CHART / "ci" / "tls-sasl-values.yaml", "kafka.securityProtocol=SSL", "kafka.tls.clientSecret=mevwatch-user")
    cfg.write_text(by_kind(docs, "ConfigMap")["rel-mevwatch"]["data"]["mevwatch.yaml"])
    s = load_settings(cfg)
    assert s.kafka.sasl_username is None and str(s.kafka.ssl_key_file) == "/etc/mevwatch/tls/kafka-client/user.key"
    w = workloads(docs)
    for role in ("ingest", "detect"):
        assert _mounts(w[f"rel-mevwatch-{role}"])["/etc/mevwatch/tls/kafka-client"] == ("mevwatch-user", {"user.crt", "user.key"})
        assert "MEVWATCH_KAFKA__SASL_PASSWORD" not in env_of(w[f"rel-mevwatch-{role}"])
    assert "/etc/mevwatch/tls/kafka-client" not in _mounts(w["rel-mevwatch-attest"])
    # SASL without a user name is refused at render time, naming the value
    assert "kafka.saslUsername is required" in refused("kafka.saslUsername=", values=CHART / "ci" / "tls-sasl-values.yaml")
    assert "needs the SASL password" in refused("kafka.securityProtocol=SASL_SSL", "kafka.saslUsername=u")
    assert "securityProtocol" in refused("kafka.securityProtocol=TLS")


# --- several chains (docs/operations.md) ------------------------------------------------------------------
def test_two_chains_render_a_set_per_chain_that_the_app_loads_as_that_chain(tmp_path, monkeypatch):
    """ci/two-chain-values.yaml (GPU, KEDA, two chains): one ingest and one detect per chain, selectors
    that never overlap, KEDA on each chain's own group and mempool topic, and each pod's environment
    turning the shared config into its chain's settings in the app itself."""
    docs = render(CHART / "ci" / "two-chain-values.yaml")
    pods = workloads(docs)
    assert set(pods) == {f"rel-mevwatch-{c}-{r}" for c in ("mainnet", "base") for r in ("ingest", "detect")}
    selectors = [json.dumps(d["spec"]["selector"]["matchLabels"], sort_keys=True) for d in pods.values()]
    assert len(set(selectors)) == 4  # no Deployment or StatefulSet adopts another's pods
    for name, d in pods.items():
        labels = d["spec"]["template"]["metadata"]["labels"]
        assert labels["mevwatch.io/chain"] == name.split("-")[2] and d["spec"]["selector"]["matchLabels"].items() <= labels.items()
    cfg = tmp_path / "mevwatch.yaml"
    cfg.write_text(by_kind(docs, "ConfigMap")["rel-mevwatch"]["data"]["mevwatch.yaml"])
    want = {"mainnet": (1, "ws://reth-mainnet.ethereum.svc:8546", 12, "mevwatch.mainnet", "mevwatch-mainnet",
                        "clickhouse://clickhouse.clickhouse.svc:9000/mevwatch_mainnet"),
            "base": (8453, "ws://reth-base.base.svc:8546", 10, "mevwatch.base", "mevwatch-base",
                     "clickhouse://clickhouse.clickhouse.svc:9000/mevwatch_base")}
    for chain, (cid, rpc, conf, prefix, group, url) in want.items():
        for role in ("ingest", "detect"):
            env = {k: v["value"] for k, v in env_of(pods[f"rel-mevwatch-{chain}-{role}"]).items() if "value" in v}
            with monkeypatch.context() as m:
                for k, v in env.items():
                    if k.startswith("MEVWATCH_"):
                        m.setenv(k, v)
                s = load_settings(cfg)  # the app reads the shared file and this pod's environment
            assert (s.chain_id, s.node.rpc, s.node.confirmations, s.kafka.topic_prefix, s.kafka.group_id, s.clickhouse.url) == \
                (cid, rpc, conf, prefix, group, url), (chain, role)
            assert "chain_id" in s.model_fields_set  # enforced on every message (streams/consume.py)
            # the chain's wrapped native token and block time: set for Base, the chain's known ones for mainnet
            assert (s.native_wrapper, s.node.block_time_s) == \
                (("0x4200000000000000000000000000000000000006", 2.0) if chain == "base" else (None, None)), (chain, role)
        (trigger,) = by_kind(docs, "ScaledObject")[f"rel-mevwatch-{chain}-detect"]["spec"]["triggers"]
        assert trigger["metadata"]["consumerGroup"] == f"{group}-detect" and trigger["metadata"]["topic"] == f"{prefix}.mempool.v1"
        detect = pods[f"rel-mevwatch-{chain}-detect"]
        assert container(detect)["resources"]["limits"]["nvidia.com/gpu"] == 1
    notes = rendered_notes(CHART / "ci" / "two-chain-values.yaml", tmp_path)
    assert "chain base (chain id 8453): rel-mevwatch-base-ingest and -detect" in notes and "mevwatch.base.*.v1" in notes
    # attestation and the replay Job stay one chain per release; a chain named twice is refused
    assert "attest.enabled" in refused("attest.enabled=true", values=CHART / "ci" / "two-chain-values.yaml")
    assert "replay" in refused("replay.enabled=true", values=CHART / "ci" / "two-chain-values.yaml")
    assert "given twice" in refused("chains[1].name=mainnet", values=CHART / "ci" / "two-chain-values.yaml")
    assert "topicPrefix" in refused("chains[1].topicPrefix=mevwatch.mainnet", values=CHART / "ci" / "two-chain-values.yaml")
    assert "clickhouseDatabase" in refused("chains[0].clickhouseDatabase=mevwatch_base",
                                          values=CHART / "ci" / "two-chain-values.yaml")
    # a ClickHouse URL without a database path, or with a query: the server kept, the chain's database put in
    docs = render(CHART / "ci" / "two-chain-values.yaml", "clickhouse.url=clickhouse://u@ch:9000")
    assert env_of(workloads(docs)["rel-mevwatch-base-detect"])["MEVWATCH_CLICKHOUSE__URL"]["value"] == "clickhouse://u@ch:9000/mevwatch_base"
