"""Where the repository is, and the helm and kubectl every Python suite runs.

They come from .tools/bin (scripts/install-tools) unless HELM or KUBECTL name others.
"""
from __future__ import annotations

import os
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
CHART = ROOT / "helm" / "moscow-time"
K8S = ROOT / "k8s"


def tool(env: str, name: str) -> str:
    if os.environ.get(env):
        return os.environ[env]
    local = ROOT / ".tools" / "bin" / name
    return str(local) if local.exists() else name


HELM = tool("HELM", "helm")
KUBECTL = tool("KUBECTL", "kubectl")
