"""The external checkers the deployment tests run, and how their output is judged.

kubernetes_validate() and checkov_findings() return a list of problems: empty means the check
passed, so a test asserts `== []` and a failure shows every problem at once.
"""
from __future__ import annotations

import re
import subprocess
from pathlib import Path

from conftest import venv_tool

# Kinds that no Kubernetes schema knows but the chart may render: the Prometheus Operator's CRDs.
ALLOWED_CRDS = {"ServiceMonitor:monitoring.coreos.com/v1", "PrometheusRule:monitoring.coreos.com/v1"}
UNKNOWN_KIND = re.compile(r"Couldn't find schema for kind (\S+) with api version (\S+) ")


def kubernetes_validate(version: str, manifest: Path) -> list[str]:
    """Problems `kubernetes-validate --strict` finds in a manifest file for one Kubernetes version.

    The tool only warns about a kind it has no schema for; here that is a problem unless the kind
    is a listed CRD. Any other warning or error it prints is a problem too.
    """
    cmd = [venv_tool("kubernetes-validate"), "--strict", "--quiet", "-k", version, str(manifest)]
    result = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    output = result.stdout + result.stderr
    problems = []
    if result.returncode != 0:
        problems.append(f"kubernetes-validate exited with {result.returncode}:\n{output}")
    for kind, api_version in UNKNOWN_KIND.findall(output):
        if f"{kind}:{api_version}" not in ALLOWED_CRDS:
            problems.append(f"unknown kind/apiVersion (not a listed CRD): {kind}:{api_version}")
    for line in output.splitlines():
        if line.startswith(("ERROR", "WARN")) and not UNKNOWN_KIND.search(line):
            problems.append(line)
    return problems


def checkov_findings(report: dict | list) -> list[str]:
    """Problems in a checkov JSON report (one framework's dict, or a list of them).

    Every failed check and every parsing error is one, and so is a scan that ran no check at all
    (checkov found nothing to scan, which would otherwise pass silently).
    """
    reports = report if isinstance(report, list) else [report]
    problems = []
    checks_run = 0
    for r in reports:
        summary = r.get("summary", {})
        checks_run += summary.get("passed", 0) + summary.get("failed", 0)
        if summary.get("parsing_errors", 0):
            problems.append(f"{summary['parsing_errors']} parsing errors")
        failed_checks = r.get("results", {}).get("failed_checks", [])
        for c in failed_checks:
            problems.append(f"{c['check_id']} {c['check_name']}: {c['resource']} ({c.get('file_path')})")
        if summary.get("failed", 0) and not failed_checks:
            problems.append(f"{summary['failed']} failed checks (not listed)")
    if checks_run == 0:
        problems.append("checkov ran no check")
    return problems
