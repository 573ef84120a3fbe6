"""One image reference everywhere: what the quick start builds, saves and loads, and what the
chart and k8s/ ask a cluster for.

A cluster's container runtime (containerd in kind and minikube, CRI-O, Docker) reads an image
name the way the distribution reference library does: a name without a registry is on
docker.io, and a one-word name on docker.io is under library/. `normalize` applies those rules,
so `moscow-time:0.1.0` and `docker.io/library/moscow-time:0.1.0` are the same image, and
`localhost/moscow-time:0.1.0` (podman's name for a bare tag) is another.
"""
from __future__ import annotations

import json
import re
import subprocess
import tarfile
from pathlib import Path

import yaml

from pyhelpers import docs
from pyhelpers.tools import CHART, HELM, K8S, KUBECTL


def normalize(ref: str) -> str:
    """The fully qualified form of an image reference (registry/path:tag or @digest)."""
    name, sep, digest = ref.partition("@")
    first, slash, rest = name.partition("/")
    if not slash or not ("." in first or ":" in first or first == "localhost"):
        name = "docker.io/" + (name if slash else "library/" + name)
    elif first == "docker.io" and "/" not in rest:
        name = "docker.io/library/" + rest
    if not sep and ":" not in name.rsplit("/", 1)[-1]:
        name += ":latest"
    return name + (sep + digest if sep else "")


def podman_name(ref: str) -> str:
    """The name podman gives a build tagged `ref`: a name without a registry goes under localhost/."""
    first, slash, _ = ref.partition("/")
    if slash and ("." in first or ":" in first or first == "localhost"):
        return ref
    return "localhost/" + ref


def quickstart_commands(readme: str) -> list[docs.Command]:
    """The README's shell commands up to the end of its quick start ("Put it on a cluster")."""
    section = readme.split("## Put it on a cluster", 1)[1].split("\n## ", 1)[0]
    return docs.shell_commands(section, "README.md")


def _only(commands: list[docs.Command], program: str, sub: str) -> list[str]:
    calls = [c for cmd in commands for c in docs.invocations(cmd, program) if c[1:2] == [sub]]
    assert len(calls) == 1, f"the quick start should have one `{program} {sub}`, has {len(calls)}"
    return calls[0]


def build_command(readme: str) -> list[str]:
    """The quick start's `podman build`, as words."""
    return _only(quickstart_commands(readme), "podman", "build")


def save_command(readme: str) -> list[str]:
    """The quick start's `podman save`, as words."""
    return _only(quickstart_commands(readme), "podman", "save")


def helm_install_command(readme: str) -> list[str]:
    """The quick start's `helm install`, as words."""
    return _only(quickstart_commands(readme), "helm", "install")


def dockerfile_tag(dockerfile: str) -> str:
    """The image the Dockerfile's header comment builds (`podman build -t NAME .`)."""
    m = re.search(r"^#\s+podman build -t (\S+) \.", dockerfile, re.M)
    assert m, "the Dockerfile's header has no `podman build -t NAME .` line"
    return m.group(1)


def mismatches(readme: str, dockerfile: str, chart_image: str, k8s_image: str) -> list[str]:
    """Every way the quick start's image and the deployed images disagree (empty when they agree)."""
    problems = []
    built = docs.flag(build_command(readme), "-t", "--tag")
    if built is None:
        return ["the quick start's `podman build` names no image (-t)"]
    save = save_command(readme)
    wanted = normalize(chart_image)
    for what, ref in [("the quick start's podman build -t", podman_name(built)),
                      ("the quick start's podman save", podman_name(save[-1])),
                      ("the Dockerfile's header", dockerfile_tag(dockerfile)),
                      ("k8s/ (kubectl kustomize)", k8s_image)]:
        if normalize(ref) != wanted:
            problems.append(f"{what} names {ref} = {normalize(ref)}, the chart renders "
                            f"{chart_image} = {wanted}")
    if docs.flag(save, "--format") != "docker-archive":
        problems.append("the quick start's podman save does not write a docker-archive")
    archive = docs.flag(save, "-o", "--output")
    loads = [c for cmd in quickstart_commands(readme)
             for c in docs.invocations(cmd, "minikube") + docs.invocations(cmd, "kind")
             if "load" in c]
    for load in loads:
        if archive not in load:
            problems.append(f"`{' '.join(load)}` does not load the saved archive {archive}")
    if len(loads) < 2:
        problems.append("the quick start should load the archive into minikube and into kind")
    return problems


def archive_tags(path: Path) -> list[str]:
    """The RepoTags of a docker-archive (what `kind load image-archive` and `minikube image
    load` import the image as), checking that its config and layers are in it."""
    with tarfile.open(path) as tar:
        members = set(tar.getnames())
        manifest = json.load(tar.extractfile("manifest.json"))
    tags = []
    for image in manifest:
        missing = [f for f in [image["Config"], *image["Layers"]] if f not in members]
        assert not missing, f"{path}: the manifest names files the archive lacks: {missing}"
        tags += image.get("RepoTags") or []
    return tags


def _container_image(manifests_text: str) -> str:
    docs_ = [d for d in yaml.safe_load_all(manifests_text) if d]
    sts = [d for d in docs_ if d["kind"] == "StatefulSet"]
    assert len(sts) == 1, f"expected one StatefulSet, got {len(sts)}"
    containers = sts[0]["spec"]["template"]["spec"]["containers"]
    return next(c["image"] for c in containers if c["name"] == "moscow-time")


def chart_image(readme: str, *extra: str) -> str:
    """The image the chart renders with the quick start's `helm install` flags (plus `extra`)."""
    argv = helm_install_command(readme)
    sets = [w for i in range(len(argv) - 1) if argv[i] == "--set" for w in (argv[i], argv[i + 1])]
    namespace = docs.flag(argv, "--namespace", "-n")
    out = subprocess.run([HELM, "template", argv[2], str(CHART), "--namespace", namespace, *sets, *extra],
                         check=True, capture_output=True, text=True, timeout=120).stdout
    return _container_image(out)


def k8s_image() -> str:
    """The image k8s/ deploys (`kubectl kustomize k8s/`)."""
    out = subprocess.run([KUBECTL, "kustomize", str(K8S)], check=True, capture_output=True,
                         text=True, timeout=120).stdout
    return _container_image(out)
