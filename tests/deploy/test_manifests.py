"""Cross-resource checks on every chart scenario render and on k8s/ (no cluster needed)."""
from __future__ import annotations

import json
import subprocess

import pytest

from conftest import (CHART, HELM, NAMESPACE, RELEASE, SOURCES, VERSION_LABELS, by_kind, config_json,
                      env_value, is_helm_test, main_container, render, the_statefulset)



def settings_table() -> dict[str, str]:
    """JSON key -> environment variable, from the README's settings table (which a Rust test keeps
    equal to the binary's one definition of its settings)."""
    readme = (CHART.parents[1] / "README.md").read_text()
    table = readme.split("<!-- settings:start -->")[1].split("<!-- settings:end -->")[0]
    keys = {}
    for row in table.strip().splitlines()[2:]:
        cells = [c.strip().strip("`") for c in row.strip("|").split("|")]
        if cells[2]:
            keys[cells[2]] = cells[1]
    return keys


def pod_labels(sts):
    return sts["spec"]["template"]["metadata"]["labels"]


def matches(selector: dict, labels: dict) -> bool:
    return bool(selector) and all(labels.get(k) == v for k, v in selector.items())


def claim_names(sts):
    return {t["metadata"]["name"] for t in sts["spec"].get("volumeClaimTemplates", [])}


def all_containers(sts):
    spec = sts["spec"]["template"]["spec"]
    return spec.get("initContainers", []) + spec["containers"]


def test_selectors_match_the_pod_labels_and_carry_no_version_label(docs):
    sts = the_statefulset(docs)
    labels = pod_labels(sts)
    selectors = {"StatefulSet": sts["spec"]["selector"]["matchLabels"]}
    for svc in by_kind(docs, "Service"):
        selectors[f"Service/{svc['metadata']['name']}"] = svc["spec"]["selector"]
    for pdb in by_kind(docs, "PodDisruptionBudget"):
        selectors["PodDisruptionBudget"] = pdb["spec"]["selector"]["matchLabels"]
    for np in by_kind(docs, "NetworkPolicy"):
        selectors["NetworkPolicy"] = np["spec"]["podSelector"]["matchLabels"]
    for i, tsc in enumerate(sts["spec"]["template"]["spec"].get("topologySpreadConstraints", [])):
        selectors[f"topologySpreadConstraints[{i}]"] = tsc["labelSelector"]["matchLabels"]
    for name, sel in selectors.items():
        assert matches(sel, labels), f"{name} selector {sel} does not select the pods {labels}"
        bad = [k for k in sel if k in VERSION_LABELS]
        assert not bad, f"{name} selector contains version labels {bad}"


def test_the_helm_test_pod_is_not_selected_by_any_service(docs):
    for pod in (d for d in docs if d["kind"] == "Pod" and is_helm_test(d)):
        for svc in by_kind(docs, "Service"):
            assert not matches(svc["spec"]["selector"], pod["metadata"]["labels"])


def test_service_name_names_a_headless_service_that_selects_the_pods(docs):
    sts = the_statefulset(docs)
    name = sts["spec"]["serviceName"]
    svcs = [s for s in by_kind(docs, "Service") if s["metadata"]["name"] == name]
    assert svcs, f"serviceName {name} is not rendered"
    svc = svcs[0]
    assert svc["spec"].get("clusterIP") == "None"
    assert svc["spec"].get("publishNotReadyAddresses") is False
    assert matches(svc["spec"]["selector"], pod_labels(sts))


def test_there_is_a_cluster_ip_service_for_clients(docs):
    sts = the_statefulset(docs)
    client = [s for s in by_kind(docs, "Service")
              if s["spec"].get("clusterIP") != "None" and matches(s["spec"]["selector"], pod_labels(sts))]
    assert client and client[0]["spec"].get("type", "ClusterIP") in ("ClusterIP", "NodePort", "LoadBalancer")


def test_every_named_port_used_by_probes_and_services_exists_in_the_container(docs):
    sts = the_statefulset(docs)
    c = main_container(sts)
    ports = {p["name"]: p["containerPort"] for p in c["ports"]}
    assert ports.get("http") == 8000, "the container port must be named http (8000 by default)"
    used = []
    for probe in ("livenessProbe", "readinessProbe", "startupProbe"):
        if probe in c:
            used.append((probe, c[probe]["httpGet"]["port"]))
    for svc in by_kind(docs, "Service"):
        for p in svc["spec"]["ports"]:
            used.append((f"Service/{svc['metadata']['name']}", p["targetPort"]))
    for where, port in used:
        if isinstance(port, str):
            assert port in ports, f"{where} uses named port {port!r}, container has {sorted(ports)}"
        else:
            assert port in ports.values(), f"{where} uses port {port} that the container does not expose"


def test_every_volume_mount_names_a_volume_or_a_claim_template(docs):
    sts = the_statefulset(docs)
    vols = {v["name"] for v in sts["spec"]["template"]["spec"].get("volumes", [])}
    names = vols | claim_names(sts)
    for c in all_containers(sts):
        for m in c.get("volumeMounts", []):
            assert m["name"] in names, f"{c['name']} mounts unknown volume {m['name']}"


def test_no_pod_volume_has_a_claim_template_name(docs):
    sts = the_statefulset(docs)
    vols = {v["name"] for v in sts["spec"]["template"]["spec"].get("volumes", [])}
    assert not vols & claim_names(sts), "a pod volume shadows a volumeClaimTemplate"


def test_the_data_volume_is_mounted_at_the_data_dir(docs, source):
    sts = the_statefulset(docs)
    c = main_container(sts)
    data_dir = env_value(c, "DATA_DIR")
    assert data_dir == "/data"
    mounts = {m["mountPath"].rstrip("/"): m["name"] for m in c["volumeMounts"]}
    assert data_dir in mounts, f"nothing is mounted at DATA_DIR {data_dir}"
    vols = {v["name"]: v for v in sts["spec"]["template"]["spec"].get("volumes", [])}
    if sts["spec"].get("volumeClaimTemplates"):
        assert mounts[data_dir] in claim_names(sts), "DATA_DIR is not the PVC"
    else:
        assert "emptyDir" in vols[mounts[data_dir]], "without persistence DATA_DIR must be an emptyDir"
        assert source == "chart:persistence-off"


def test_claim_templates_carry_no_version_labels(docs):
    for t in the_statefulset(docs)["spec"].get("volumeClaimTemplates", []):
        labels = t["metadata"].get("labels", {})
        assert not [k for k in labels if k in VERSION_LABELS]


def test_pod_management_policy_is_parallel_and_updates_are_configured(docs):
    spec = the_statefulset(docs)["spec"]
    assert spec["podManagementPolicy"] == "Parallel"
    assert spec["updateStrategy"]["type"] in ("RollingUpdate", "OnDelete")
    if spec["updateStrategy"]["type"] == "OnDelete":
        assert "rollingUpdate" not in spec["updateStrategy"]
    assert set(spec["persistentVolumeClaimRetentionPolicy"]) == {"whenDeleted", "whenScaled"}
    assert spec["minReadySeconds"] >= 0


def test_pods_run_as_65532_non_root_with_a_read_only_root_and_no_capabilities(docs):
    sts = the_statefulset(docs)
    pod = sts["spec"]["template"]["spec"]
    assert pod["automountServiceAccountToken"] is False
    assert pod["enableServiceLinks"] is False
    psc = pod["securityContext"]
    assert psc["runAsNonRoot"] is True and psc["runAsUser"] == 65532 and psc["runAsGroup"] == 65532
    assert psc["fsGroup"] == 65532 and psc["fsGroupChangePolicy"] == "OnRootMismatch"
    assert psc["seccompProfile"]["type"] == "RuntimeDefault"
    for c in all_containers(sts):
        sc = c["securityContext"]
        assert sc["readOnlyRootFilesystem"] is True
        assert sc["allowPrivilegeEscalation"] is False
        assert sc.get("privileged", False) is False
        assert sc["capabilities"]["drop"] == ["ALL"]
        assert sc["seccompProfile"]["type"] == "RuntimeDefault"
        if c["name"] == "volume-permissions":
            assert sc["capabilities"].get("add") == ["CHOWN"]
        else:
            assert sc["runAsNonRoot"] is True and sc["runAsUser"] == 65532
            assert not sc["capabilities"].get("add")


def test_the_volume_permissions_init_container_is_opt_in(source, docs):
    init = the_statefulset(docs)["spec"]["template"]["spec"].get("initContainers", [])
    assert bool(init) == (source == "chart:volume-permissions")
    for c in init:
        assert c["volumeMounts"][0]["mountPath"] == "/data"
        assert "chown -R 65532:65532 /data" in c["command"][-1]


def test_the_grace_period_exceeds_the_shutdown_timeout(docs):
    sts = the_statefulset(docs)
    _, cfg, _ = config_json(docs, sts)
    grace = sts["spec"]["template"]["spec"]["terminationGracePeriodSeconds"]
    assert grace == 30
    assert grace > cfg.get("shutdown_timeout_secs", 20)


def test_probes_check_healthz_and_readyz_and_never_hit_the_root(docs):
    c = main_container(the_statefulset(docs))
    paths = {p: c[p]["httpGet"]["path"] for p in ("livenessProbe", "readinessProbe", "startupProbe")}
    assert paths["livenessProbe"] == "/healthz"
    assert paths["readinessProbe"] == "/readyz"
    assert paths["startupProbe"] in ("/healthz", "/readyz")
    for p in ("livenessProbe", "readinessProbe", "startupProbe"):
        assert c[p]["httpGet"]["port"] == "http"
        assert c[p]["httpGet"]["path"] != "/"


def test_the_environment_follows_the_contract(docs):
    sts = the_statefulset(docs)
    c = main_container(sts)
    env = {e["name"]: e for e in c["env"]}
    assert env["DATA_DIR"]["value"] == "/data"
    assert env["PORT"]["value"] == str(c["ports"][0]["containerPort"])
    assert env["LOG_FORMAT"]["value"] == "json"
    assert env["POD_NAME"]["valueFrom"]["fieldRef"]["fieldPath"] == "metadata.name"
    assert env["PEERS_DNS"]["value"] == f"{sts['spec']['serviceName']}.{NAMESPACE}.svc.cluster.local"
    assert env["CONFIG_FILE"]["value"] == "/etc/moscow-time/config.json"
    mount = [m for m in c["volumeMounts"] if m["mountPath"] == "/etc/moscow-time"]
    assert mount and mount[0].get("readOnly") is True


def test_the_config_json_holds_only_contract_keys_set_nowhere_else(docs):
    sts = the_statefulset(docs)
    _, cfg, _ = config_json(docs, sts)
    keys = settings_table()
    assert len(keys) >= 10, "the README's settings table was read"
    assert set(cfg) <= set(keys), f"keys the binary does not know: {set(cfg) - set(keys)}"
    pod_env = {e["name"] for e in main_container(sts).get("env", [])}
    both = {k for k in cfg if keys[k] in pod_env}
    assert not both, f"set in the config file and in the pod env at once: {both}"
    assert cfg["shutdown_timeout_secs"] == 20 and cfg["timezone"] == "Europe/Moscow"


def test_a_config_change_restarts_the_pods(source, docs):
    sts = the_statefulset(docs)
    if source == "k8s":
        # kustomize's configMapGenerator puts a content hash into the ConfigMap name
        name = sts["spec"]["template"]["spec"]["volumes"][0]["configMap"]["name"]
        assert name.startswith("moscow-time-") and len(name) > len("moscow-time-")
    else:
        # The settings are the pod template's own annotation, served as the file by a downward API
        # volume: a config change is a template change, and each revision keeps its settings.
        annotation = sts["spec"]["template"]["metadata"]["annotations"]["moscow-time/config.json"]
        assert json.loads(annotation) == config_json(docs, sts)[1]
        assert not by_kind(docs, "ConfigMap") or all(
            d["metadata"]["labels"].get("grafana_dashboard") for d in by_kind(docs, "ConfigMap"))


def test_the_image_defaults_to_the_app_version(docs):
    image = main_container(the_statefulset(docs))["image"]
    assert image == "moscow-time:0.1.0"


def test_the_pdb_exists_only_with_more_than_one_replica(docs):
    sts = the_statefulset(docs)
    pdbs = by_kind(docs, "PodDisruptionBudget")
    assert bool(pdbs) == (sts["spec"]["replicas"] > 1)


# Helm test pods belong to the chart only: k8s/ is not a case here.
@pytest.mark.parametrize("source", [s for s in SOURCES if s != "k8s"])
def test_the_helm_test_pod_checks_readyz_and_visits_through_the_service(source):
    docs = render(source)
    pods = [d for d in docs if d["kind"] == "Pod" and is_helm_test(d)]
    assert len(pods) == 1
    pod = pods[0]
    assert pod["metadata"]["annotations"]["helm.sh/hook"] == "test"
    script = pod["spec"]["containers"][0]["command"][-1]
    svc = [s for s in by_kind(docs, "Service") if s["spec"].get("clusterIP") != "None"][0]
    assert f"http://{svc['metadata']['name']}." in script and "/readyz" in script and "/visits" in script
    sc = pod["spec"]["containers"][0]["securityContext"]
    assert sc["readOnlyRootFilesystem"] and not sc["allowPrivilegeEscalation"] and sc["capabilities"]["drop"] == ["ALL"]
    assert pod["spec"]["securityContext"]["runAsNonRoot"] is True


def test_monitoring_objects_scrape_once_and_alert_on_what_matters():
    docs = render("chart:monitoring")
    sts = the_statefulset(docs)
    ann = sts["spec"]["template"]["metadata"]["annotations"]
    assert ann["prometheus.io/scrape"] == "true" and ann["prometheus.io/port"] == "8000"
    sm = by_kind(docs, "ServiceMonitor")[0]
    assert sm["spec"]["endpoints"][0]["port"] == "http" and sm["spec"]["endpoints"][0]["path"] == "/metrics"
    sel = sm["spec"]["selector"]
    picked = [s["metadata"]["name"] for s in by_kind(docs, "Service")
              if matches(sel["matchLabels"], s["metadata"]["labels"])
              and all(e["key"] not in s["metadata"]["labels"] for e in sel.get("matchExpressions", []))]
    assert picked == [RELEASE], f"the ServiceMonitor must pick only the client Service, got {picked}"
    rules = by_kind(docs, "PrometheusRule")[0]["spec"]["groups"][0]["rules"]
    exprs = " ".join(r["expr"] for r in rules)
    assert "kube_pod_status_ready" in exprs
    assert "increase(moscow_time_persist_errors_total{" in exprs and "[5m]) > 0" in exprs
    assert "histogram_quantile(0.99" in exprs and "moscow_time_persist_duration_seconds_bucket" in exprs
    assert "moscow_time_persist_in_flight_seconds{" in exprs
    for r in rules:
        assert "{{ $labels" in r["annotations"]["summary"] or "$labels" not in r["annotations"]["summary"]
    cm = [d for d in by_kind(docs, "ConfigMap") if d["metadata"]["labels"].get("grafana_dashboard") == "1"]
    assert len(cm) == 1
    dash = json.loads(cm[0]["data"]["moscow-time.json"])
    exprs = " ".join(t["expr"] for p in dash["panels"] for t in p["targets"])
    for needle in ("moscow_time_visits_total", "sum(moscow_time_visits_total",
                   "sum by (route, status) (rate(moscow_time_http_requests_total",
                   "moscow_time_http_request_duration_seconds_bucket", "histogram_quantile(0.5",
                   "moscow_time_persist_duration_seconds_bucket", "moscow_time_persist_batch_size_bucket",
                   "moscow_time_peer_fetch_errors_total"):
        assert needle in exprs, needle


def test_optional_objects_are_off_by_default():
    kinds = {d["kind"] for d in render("chart:default")}
    assert not kinds & {"Ingress", "ServiceMonitor", "PrometheusRule", "NetworkPolicy"}
    assert not [d for d in render("chart:default") if d["kind"] == "ConfigMap"
                and d["metadata"]["labels"].get("grafana_dashboard")]


def test_the_network_policy_admits_only_port_http():
    np = by_kind(render("chart:hardened"), "NetworkPolicy")[0]
    for rule in np["spec"]["ingress"]:
        assert rule["ports"] == [{"port": "http", "protocol": "TCP"}]
        assert rule["from"], "allowExternal=false must restrict sources"


def test_vault_annotations_and_extra_env_from_reach_the_pod():
    sts = the_statefulset(render("chart:hardened"))
    ann = sts["spec"]["template"]["metadata"]["annotations"]
    assert ann["vault.hashicorp.com/agent-inject"] == "true"
    c = main_container(sts)
    assert c["envFrom"][0]["secretRef"]["name"] == "moscow-time-extra"
    assert {"name": "ca-bundle", "mountPath": "/etc/ssl/extra", "readOnly": True} in c["volumeMounts"]


def test_k8s_manifests_equal_the_chart_defaults_where_it_matters():
    chart = [d for d in render("chart:default") if not is_helm_test(d)]
    # k8s/ serves the config from a ConfigMap with a content hash in its name; the chart from
    # the pod template (a downward API volume): both give each revision its own settings.
    everything = render("k8s")
    plain = [d for d in everything if d["kind"] not in ("Namespace", "ConfigMap")]
    assert sorted(d["kind"] for d in chart) == sorted(d["kind"] for d in plain)
    a, b = the_statefulset(chart), the_statefulset(plain)
    ca, cb = main_container(a), main_container(b)
    assert [e["name"] for e in ca["env"]] == [e["name"] for e in cb["env"]]
    assert {e["name"]: e.get("value") for e in ca["env"] if e["name"] != "PEERS_DNS"} == \
        {e["name"]: e.get("value") for e in cb["env"] if e["name"] != "PEERS_DNS"}
    for p in ("livenessProbe", "readinessProbe", "startupProbe"):
        assert ca[p]["httpGet"] == cb[p]["httpGet"]
    mounts = lambda c: sorted((m["name"], m["mountPath"]) for m in c["volumeMounts"])  # noqa: E731
    assert mounts(ca) == mounts(cb)
    assert config_json(chart, a)[1] == config_json(everything, b)[1]
    assert ca["ports"] == cb["ports"] and ca["securityContext"] == cb["securityContext"]
    assert ca["resources"] == cb["resources"] and ca["image"] == cb["image"]
    for key in ("replicas", "podManagementPolicy", "updateStrategy", "minReadySeconds",
                "persistentVolumeClaimRetentionPolicy", "volumeClaimTemplates", "selector"):
        assert a["spec"][key] == b["spec"][key], key
    pa, pb = a["spec"]["template"]["spec"], b["spec"]["template"]["spec"]
    for key in ("securityContext", "terminationGracePeriodSeconds", "automountServiceAccountToken",
                "enableServiceLinks"):
        assert pa[key] == pb[key], key
    svc = lambda docs: sorted((s["metadata"]["name"], s["spec"].get("clusterIP"),  # noqa: E731
                               json.dumps(s["spec"]["ports"], sort_keys=True)) for s in by_kind(docs, "Service"))
    assert svc(chart) == svc(plain)


def _notes(values_file: str) -> str:
    out = subprocess.run([HELM, "install", RELEASE, str(CHART), "--dry-run=client", "--namespace",
                          NAMESPACE, "-f", str(CHART / "ci" / values_file)],
                         check=True, capture_output=True, text=True).stdout
    return out.split("NOTES:", 1)[1]


def test_notes_tell_how_to_read_each_pods_count():
    notes = _notes("default-values.yaml")
    for i in range(3):
        assert f"exec {RELEASE}-{i} -- cat visits" in notes
    assert "port-forward svc/moscow-time" in notes
    assert "WARNING" not in notes


def test_notes_warn_loudly_when_persistence_is_off():
    notes = _notes("persistence-off-values.yaml")
    assert "WARNING: persistence is DISABLED" in notes and "emptyDir" in notes


def test_peers_dns_follows_the_release_namespace_and_cluster_domain():
    out = subprocess.run([HELM, "template", "prod", str(CHART), "--namespace", "shop",
                          "--set", "clusterDomain=corp.local"],
                         check=True, capture_output=True, text=True).stdout
    import yaml
    docs = [d for d in yaml.safe_load_all(out) if d]
    sts = the_statefulset(docs)
    assert sts["metadata"]["name"] == "prod-moscow-time"
    assert sts["spec"]["serviceName"] == "prod-moscow-time-headless"
    assert env_value(main_container(sts), "PEERS_DNS") == "prod-moscow-time-headless.shop.svc.corp.local"
    assert all(d["metadata"]["namespace"] == "shop" for d in docs)
    off = subprocess.run([HELM, "template", "prod", str(CHART), "--set", "peers.enabled=false"],
                         check=True, capture_output=True, text=True).stdout
    sts_off = the_statefulset([d for d in yaml.safe_load_all(off) if d])
    assert env_value(main_container(sts_off), "PEERS_DNS") is None
    assert "PEERS_DNS" not in [e["name"] for e in main_container(sts_off)["env"]]
