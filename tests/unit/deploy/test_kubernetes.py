"""The Kubernetes manifests (``deploy/kubernetes/``): the base, the example overlay (four
replicas) and the monitoring kustomization, rendered by a real ``kubectl kustomize`` and held
against Kubernetes's own schemas and against the daemon's real settings.

No cluster runs here, so what a cluster would refuse is caught by ``kubernetes-validate`` (the
API's JSON schemas, shipped in the package, strict: an unknown or misspelt field fails), and what
a cluster would accept but the daemon would not survive (a probe on a path it does not answer, a
grace period shorter than its shutdown, a setting it does not know, a password in the
environment) by reading the settings table, the HTTP routes, the Dockerfile and the compose file
this repository already has.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml

from barman_supervisor.config.env import server_suffix
from barman_supervisor.config.variables import VARIABLES, Variable, variable
from barman_supervisor.config.web import allowed_hosts, host_allowed
from barman_supervisor.daemon.shutdown import STOP_MARGIN
from barman_supervisor.status.http import VERDICT_ONLY
from deploy.kubernetes import generate
from tests.support.kubernetes import (
    BASE,
    EXAMPLE,
    MONITORING,
    container,
    one,
    render,
    selects,
    settings,
)
from tests.support.paths import REPO

DOCKERFILE = REPO / "docker" / "barman" / "Dockerfile"
COMPOSE = REPO / "compose" / "docker-compose.yml"
OPERATIONS_DOC = REPO / "docs" / "operations.md"
# The kustomizations that make a deployment: the base as shipped and a multi-replica overlay.
DEPLOYMENTS = [pytest.param(BASE, id="base"), pytest.param(EXAMPLE, id="example")]
# The oldest Kubernetes the manifests are held against (every API they use is GA there: apps/v1,
# policy/v1, networking.k8s.io/v1, fsGroupChangePolicy) and the newest kubernetes-validate has.
OLDEST_KUBERNETES = "1.30"
KUBERNETES_VERSIONS = [OLDEST_KUBERNETES, kubernetes_validate.utils.latest_version()]
# prometheus-operator's kinds: their schemas are CRDs of that project, not Kubernetes's, so
# kubernetes-validate has none; their structure is checked by the tests below instead.
OPERATOR_API = "monitoring.coreos.com/v1"
# What the ServiceMonitor must make Prometheus call the job: the rules match it.
RULES_JOB = re.compile(r'job="([^"]+)"')
SECONDS = {"s": 1, "m": 60, "h": 3600}
SECRETS_VOLUME_KIND = "secret"
# Where the daemon's connections go besides PostgreSQL: name look-ups, and the S3 store, the
# webhook and the dead-man's switch over HTTPS.
DNS, HTTPS = 53, 443
# A pod's address, as kubelet puts it in the Host header of a probe.
KUBELET_POD_IP = "10.244.1.17"
# Which route each probe asks: alive (the loop and scheduler run) restarts, ready (every server
# of the shard protected) only reports.
PROBES = {"startupProbe": "/healthz", "livenessProbe": "/healthz", "readinessProbe": "/readyz"}


def _statefulset(directory: Path) -> dict[str, Any]:
    return one(render(directory), "StatefulSet")


def _pod(directory: Path) -> dict[str, Any]:
    spec: dict[str, Any] = _statefulset(directory)["spec"]["template"]["spec"]
    return spec


def _effective(environment: dict[str, str], name: str) -> str:
    """What the daemon reads for ``name``: the manifests' value, else the table's default."""
    return environment.get(name) or variable(name).default


def _duration(text: str) -> int:
    """A Dockerfile or compose duration (``5m``, ``420s``) in seconds."""
    match = re.fullmatch(r"(\d+)([smh])", text)
    assert match, text
    return int(match[1]) * SECONDS[match[2]]


def _mounts(directory: Path) -> dict[str, dict[str, Any]]:
    """Each volume mount by its path, with the volume it mounts."""
    volumes = {volume["name"]: volume for volume in _pod(directory)["volumes"]}
    templates = {
        t["metadata"]["name"]: t
        for t in _statefulset(directory)["spec"].get("volumeClaimTemplates", [])
    }
    return {
        mount["mountPath"]: volumes.get(mount["name"]) or {"claim": templates[mount["name"]]}
        for mount in container(render(directory))["volumeMounts"]
    }


@pytest.mark.parametrize("version", KUBERNETES_VERSIONS)
@pytest.mark.parametrize("directory", [*DEPLOYMENTS, pytest.param(MONITORING, id="monitoring")])
def test_every_document_is_valid_for_kubernetes(directory: Path, version: str) -> None:
    documents = render(directory)
    assert documents
    checked = 0
    for document in documents:
        if document["apiVersion"] == OPERATOR_API:
            continue
        kubernetes_validate.validate(document, version, strict=True)
        checked += 1
    assert checked, f"no document of {directory} has a Kubernetes schema"


def test_the_validator_refuses_a_misspelt_field() -> None:
    """The check above is strict: a field Kubernetes does not know fails it."""
    statefulset = _statefulset(BASE)
    statefulset["spec"]["template"]["spec"]["terminationGracePeriod"] = 1
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(statefulset, OLDEST_KUBERNETES, strict=True)


@pytest.mark.parametrize("directory", DEPLOYMENTS)
def test_the_probes_ask_the_daemon_s_health_routes_on_its_port(directory: Path) -> None:
    spec = container(render(directory))
    (port,) = spec["ports"]
    assert port["containerPort"] == int(_effective(settings(render(directory)), "HTTP_PORT"))
    for probe, path in PROBES.items():
        request = spec[probe]["httpGet"]
        # The routes answered without a login when HTTP_WEB_CONFIG_FILE has users.
        assert request["path"] == path and path in VERDICT_ONLY, probe
        assert request["port"] == port["name"], probe
        assert request.get("scheme", "HTTP") == "HTTP", probe


@pytest.mark.parametrize("directory", DEPLOYMENTS)
def test_the_probes_need_no_tls_no_login_and_no_host_name(directory: Path) -> None:
    """kubelet probes in plain HTTP with no login, sending ``Host: <pod IP>:<port>``: the
    daemon answers that when no web configuration file is set, whatever host names
    ``HTTP_ALLOWED_HOSTS`` lists."""
    environment = settings(render(directory))
    assert not environment.get("HTTP_WEB_CONFIG_FILE")
    port = container(render(directory))["ports"][0]["containerPort"]
    hosts = allowed_hosts(environment.get("HTTP_ALLOWED_HOSTS", ""))
    assert host_allowed(f"{KUBELET_POD_IP}:{port}", hosts)
    assert host_allowed(f"{KUBELET_POD_IP}:{port}", ("backups.example.com",))


def test_the_startup_probe_waits_as_long_as_the_image_healthcheck() -> None:
    healthcheck = re.search(r"--start-period=(\w+)", DOCKERFILE.read_text())
    assert healthcheck
    probe = container(render(BASE))["startupProbe"]
    assert probe["periodSeconds"] * probe["failureThreshold"] >= _duration(healthcheck[1])


@pytest.mark.parametrize("directory", DEPLOYMENTS)
def test_the_grace_period_outlasts_the_daemon_s_shutdown(directory: Path) -> None:
    """At least ``SHUTDOWN_GRACE`` plus the daemon's STOP_MARGIN (the backup's own stop, a
    drill's, streaming, the last WAL round), which compose gives too, and operations.md says."""
    margin = re.search(r"`SHUTDOWN_GRACE` \+ (\d+) s", OPERATIONS_DOC.read_text())
    assert margin and int(margin[1]) == STOP_MARGIN
    shutdown = float(_effective(settings(render(directory)), "SHUTDOWN_GRACE"))
    grace = _pod(directory)["terminationGracePeriodSeconds"]
    assert grace >= shutdown + STOP_MARGIN
    compose = yaml.safe_load(COMPOSE.read_text())["services"]["barman"]["stop_grace_period"]
    assert grace == _duration(re.sub(r"\$\{\w+:-(\w+)\}", r"\1", compose))


@pytest.mark.parametrize("directory", DEPLOYMENTS)
def test_the_pod_runs_as_the_image_s_user_hardened(directory: Path) -> None:
    user = re.search(r"^USER (\d+):(\d+)$", DOCKERFILE.read_text(), re.MULTILINE)
    assert user
    uid, gid = int(user[1]), int(user[2])
    pod = _pod(directory)
    security = pod["securityContext"]
    assert security["runAsNonRoot"] is True
    assert (security["runAsUser"], security["runAsGroup"], security["fsGroup"]) == (uid, gid, gid)
    assert security["seccompProfile"] == {"type": "RuntimeDefault"}
    assert pod["automountServiceAccountToken"] is False
    account = one(render(directory), "ServiceAccount")
    assert pod["serviceAccountName"] == account["metadata"]["name"]
    assert account["automountServiceAccountToken"] is False
    own = container(render(directory))["securityContext"]
    assert own["readOnlyRootFilesystem"] is True
    assert own["allowPrivilegeEscalation"] is False
    assert own.get("privileged", False) is False
    assert own["capabilities"] == {"drop": ["ALL"]}


@pytest.mark.parametrize("directory", DEPLOYMENTS)
def test_the_writable_paths_are_the_hardened_compose_service_s(directory: Path) -> None:
    """With a read-only root, the daemon writes to its volume and to the paths compose gives it
    as tmpfs; each of those is an emptyDir here, and BARMAN_HOME (the image's VOLUME) is the
    replica's own claim."""
    barman = yaml.safe_load(COMPOSE.read_text())["services"]["barman"]
    assert barman["read_only"] is True
    tmpfs = {entry.partition(":")[0] for entry in barman["tmpfs"]}
    mounts = _mounts(directory)
    assert {path for path, volume in mounts.items() if "emptyDir" in volume} == tmpfs
    home = _effective(settings(render(directory)), "BARMAN_HOME")
    assert f'VOLUME ["{home}"]' in DOCKERFILE.read_text()
    claim = mounts[home]["claim"]
    assert claim["spec"]["accessModes"] == ["ReadWriteOnce"]


@pytest.mark.parametrize("directory", DEPLOYMENTS)
def test_shard_count_is_the_replica_count(directory: Path) -> None:
    environment = settings(render(directory))
    assert int(environment["SHARD_COUNT"]) == _statefulset(directory)["spec"]["replicas"]


def test_the_example_is_a_multi_replica_set_of_the_same_servers_everywhere() -> None:
    assert _statefulset(EXAMPLE)["spec"]["replicas"] > _statefulset(BASE)["spec"]["replicas"]
    servers = settings(render(EXAMPLE))["BARMAN_SERVERS"].split(",")
    assert len(servers) > _statefulset(EXAMPLE)["spec"]["replicas"]


@pytest.mark.parametrize("directory", DEPLOYMENTS)
def test_the_shard_comes_from_the_pod_s_name(directory: Path) -> None:
    environment = settings(render(directory))
    assert environment["POD_NAME"] == "fieldRef:metadata.name"
    assert "SHARD_INDEX" not in environment  # it would win over the pod's ordinal
    statefulset = _statefulset(directory)
    assert (
        statefulset["spec"]["serviceName"] == one(render(directory), "Service")["metadata"]["name"]
    )


def _entry(name: str) -> Variable | None:
    """The table's entry a variable name sets: its own, or the secret's whose file it names."""
    if name in VARIABLES:
        return VARIABLES[name]
    secret = VARIABLES.get(name.removesuffix("_FILE"))
    return secret if name.endswith("_FILE") and secret is not None and secret.secret else None


def _known(name: str, servers: list[str]) -> bool:
    """A name the daemon reads: a table entry or a secret's ``NAME_FILE``, or either as
    ``NAME__<SERVER>`` of a server-scoped entry for a server of ``BARMAN_SERVERS``."""
    base, _, server = name.partition("__")
    entry = _entry(base)
    if entry is None:
        return False
    return not server or (entry.scope == "server" and server in map(server_suffix, servers))


@pytest.mark.parametrize("directory", DEPLOYMENTS)
def test_every_setting_is_one_the_daemon_reads(directory: Path) -> None:
    environment = settings(render(directory))
    servers = environment["BARMAN_SERVERS"].split(",")
    unknown = [name for name in environment if not _known(name, servers)]
    assert unknown == []


def test_a_name_outside_the_table_is_unknown() -> None:
    """The check above can fail: a misspelt name, a non-secret ``_FILE``, an override of a
    global setting or of a server that is not in the list."""
    servers = ["orders"]
    assert _known("PG_HOST__ORDERS", servers) and _known("PG_PASSWORD_FILE__ORDERS", servers)
    for name in ("PG_HOSTS", "PG_HOST_FILE", "LOG_LEVEL__ORDERS", "PG_HOST__BILLING"):
        assert not _known(name, servers), name


@pytest.mark.parametrize("directory", DEPLOYMENTS)
def test_secrets_are_files_of_the_mounted_secret_never_values(directory: Path) -> None:
    documents = render(directory)
    environment = settings(documents)
    secret_mounts = [
        path for path, volume in _mounts(directory).items() if SECRETS_VOLUME_KIND in volume
    ]
    assert secret_mounts
    files = {name: value for name, value in environment.items() if "_FILE" in name}
    required = {f"{name}_FILE" for name in ("PG_PASSWORD", "PG_STREAMING_PASSWORD")}
    assert required <= set(files)
    for name, path in files.items():
        assert any(Path(path).parent == Path(mount) for mount in secret_mounts), name
    for name in environment:
        base = name.partition("__")[0]
        assert not (base in VARIABLES and variable(base).secret), f"{name} is a value"
    for entry in container(documents).get("env", []):
        assert "secretKeyRef" not in entry.get("valueFrom", {}), entry["name"]


@pytest.mark.parametrize("directory", DEPLOYMENTS)
def test_every_file_a_setting_names_is_on_a_mounted_volume(directory: Path) -> None:
    """A secret's ``NAME_FILE`` or a path setting (``PG_SSLROOTCERT``) outside every mount
    would name a file of the image, or none: the daemon refuses to start."""
    mounts = [Path(path) for path in _mounts(directory)]
    files = {
        name: value
        for name, value in settings(render(directory)).items()
        if (entry := _entry(name.partition("__")[0])) is not None
        and (entry.kind == "path" or name.partition("__")[0].endswith("_FILE"))
    }
    assert files
    for name, value in files.items():
        assert any(Path(value).is_relative_to(mount) for mount in mounts), name


@pytest.mark.parametrize("directory", DEPLOYMENTS)
def test_the_settings_configmap_is_the_one_the_pods_read(directory: Path) -> None:
    """A generated name (a hash of the settings, so a change rolls the pods): the container's
    reference must follow it."""
    documents = render(directory)
    (source,) = container(documents)["envFrom"]
    names = {doc["metadata"]["name"] for doc in documents if doc["kind"] == "ConfigMap"}
    assert source["configMapRef"]["name"] in names
    assert source["configMapRef"]["name"] != "barman-supervisor"


@pytest.mark.parametrize("directory", DEPLOYMENTS)
def test_service_pdb_and_network_policy_pick_the_pods(directory: Path) -> None:
    documents = render(directory)
    labels = _statefulset(directory)["spec"]["template"]["metadata"]["labels"]
    port = container(documents)["ports"][0]
    service = one(documents, "Service")["spec"]
    assert selects(service["selector"], labels)
    assert service["clusterIP"] == "None" and service["publishNotReadyAddresses"] is True
    (service_port,) = service["ports"]
    assert service_port["targetPort"] == port["name"] == service_port["name"]
    budget = one(documents, "PodDisruptionBudget")["spec"]
    assert selects(budget["selector"]["matchLabels"], labels) and budget["maxUnavailable"] == 1
    policy = one(documents, "NetworkPolicy")["spec"]
    assert selects(policy["podSelector"]["matchLabels"], labels)
    assert set(policy["policyTypes"]) == {"Ingress", "Egress"}
    ingress = [p["port"] for rule in policy["ingress"] for p in rule["ports"]]
    assert ingress == [port["containerPort"]]
    egress = {(p["port"], p["protocol"]) for rule in policy["egress"] for p in rule["ports"]}
    postgres = int(_effective(settings(documents), "PG_PORT"))
    assert {(postgres, "TCP"), (DNS, "UDP"), (DNS, "TCP"), (HTTPS, "TCP")} <= egress


def test_the_example_overlay_sets_the_image_of_a_registry() -> None:
    image = container(render(EXAMPLE))["image"]
    base = container(render(BASE))["image"]
    assert base == "barman-supervisor:latest"
    assert image != base and image.rpartition(":")[0].endswith("/barman-supervisor")


def test_the_generated_monitoring_files_are_current() -> None:
    for path, text in generate.outputs().items():
        assert path.read_text(encoding="utf-8") == text, (
            f"{path.name} is stale: run .venv/bin/python deploy/kubernetes/generate.py"
        )


def test_the_prometheus_rule_holds_the_shipped_rules() -> None:
    rule = one(render(MONITORING), "PrometheusRule")
    assert rule["apiVersion"] == OPERATOR_API
    assert rule["spec"]["groups"] == yaml.safe_load(generate.RULES.read_text())["groups"]


def test_the_dashboard_configmap_holds_the_shipped_dashboard() -> None:
    config_map = one(render(MONITORING), "ConfigMap")
    assert config_map["metadata"]["labels"]["grafana_dashboard"] == "1"
    (text,) = config_map["data"].values()
    assert json.loads(text) == json.loads(generate.DASHBOARD.read_text())


def test_the_service_monitor_scrapes_the_service_as_the_rules_job() -> None:
    monitor = one(render(MONITORING), "ServiceMonitor")
    assert monitor["apiVersion"] == OPERATOR_API
    service = one(render(BASE), "Service")
    labels = service["metadata"]["labels"]
    assert selects(monitor["spec"]["selector"]["matchLabels"], labels)
    (endpoint,) = monitor["spec"]["endpoints"]
    assert endpoint["port"] in {port["name"] for port in service["spec"]["ports"]}
    assert endpoint["path"] == "/metrics"
    job = labels[monitor["spec"]["jobLabel"]]
    jobs = set(RULES_JOB.findall(generate.RULES.read_text()))
    assert jobs == {job}
