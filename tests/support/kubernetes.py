"""The Kubernetes manifests of ``deploy/kubernetes/`` as kubectl renders them, and what a test
reads out of them.

``render(directory)`` runs ``kubectl kustomize`` (offline: it only reads the files) and returns
the documents, cached per directory since they do not change during a run. ``KUBECTL`` is
whichever kubectl is on ``PATH`` (``make install`` puts Debian's ``kubernetes-client`` there when
there is none), or the one the ``KUBECTL`` variable names, to prove the manifests against
another kustomize.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from functools import cache
from pathlib import Path
from typing import Any

import yaml

from tests.support.paths import REPO

KUBERNETES = REPO / "deploy" / "kubernetes"
BASE = KUBERNETES / "base"
EXAMPLE = KUBERNETES / "overlays" / "example"
MONITORING = KUBERNETES / "monitoring"
KUBECTL = os.environ.get("KUBECTL") or shutil.which("kubectl") or "/usr/bin/kubectl"
# Seconds one `kubectl kustomize` may take (a fraction of a second on an idle machine).
RENDER_TIMEOUT_S = 60


@cache
def _rendered(directory: Path) -> str:
    result = subprocess.run(
        [KUBECTL, "kustomize", str(directory)],
        capture_output=True,
        text=True,
        timeout=RENDER_TIMEOUT_S,
        check=False,
    )
    assert result.returncode == 0, f"kubectl kustomize {directory}: {result.stderr}"
    return result.stdout


def render(directory: Path) -> list[dict[str, Any]]:
    """The documents ``kubectl apply -k directory`` would send, each a fresh copy."""
    return [doc for doc in yaml.safe_load_all(_rendered(directory)) if doc]


def one(documents: list[dict[str, Any]], kind: str) -> dict[str, Any]:
    """The one document of ``kind``; two or none is a fault of the manifests."""
    found = [doc for doc in documents if doc["kind"] == kind]
    assert len(found) == 1, f"{len(found)} documents of kind {kind}"
    return found[0]


def container(documents: list[dict[str, Any]]) -> dict[str, Any]:
    """The StatefulSet's one container."""
    (only,) = one(documents, "StatefulSet")["spec"]["template"]["spec"]["containers"]
    assert isinstance(only, dict)
    return only


def settings(documents: list[dict[str, Any]]) -> dict[str, str]:
    """The daemon's environment as the pod gets it: the ConfigMap the container reads with
    ``envFrom``, then its own ``env`` values (which win, as in Kubernetes). Values from the
    downward API are shown as their field path."""
    spec = container(documents)
    (source,) = spec["envFrom"]
    config_maps = {doc["metadata"]["name"]: doc for doc in documents if doc["kind"] == "ConfigMap"}
    environment: dict[str, str] = dict(config_maps[source["configMapRef"]["name"]]["data"])
    for entry in spec.get("env", []):
        field = entry.get("valueFrom", {}).get("fieldRef", {}).get("fieldPath")
        environment[entry["name"]] = entry["value"] if field is None else f"fieldRef:{field}"
    return environment


def selects(selector: dict[str, Any], labels: dict[str, str]) -> bool:
    """Whether a ``matchLabels`` selector picks an object with ``labels``."""
    return bool(selector) and all(labels.get(k) == v for k, v in selector.items())
