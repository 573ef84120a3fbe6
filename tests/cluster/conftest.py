"""The cluster stage's fixtures: the real single-node cluster (scripts/cluster up), the images
loaded into its containerd, and a chart install per test in a namespace of its own.

A test that fails prints what an operator would look at: the events, a `describe` of each pod
that is not ready, and the tail of each component's log.
"""
from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the shared helpers: tests/pyhelpers
from pyhelpers import image_reference, kube  # noqa: E402
from pyhelpers.tools import CHART, ROOT  # noqa: E402

README = (ROOT / "README.md").read_text()
STANDINS = Path(__file__).resolve().parent / "standins"
BUILD_TIMEOUT = 1800  # a cold image build compiles the release binary


@pytest.fixture(scope="session")
def cluster() -> kube.Cluster:
    """The running cluster: `scripts/cluster up` (which says so and exits 0 when it runs)."""
    kube.script("up", timeout=4200)
    return kube.Cluster(kube.cluster_env())


def podman(*args: str, cwd=ROOT) -> str:
    done = subprocess.run(["podman", *args], cwd=cwd, capture_output=True, text=True, timeout=BUILD_TIMEOUT)
    assert done.returncode == 0, f"podman {' '.join(args)} failed:\n{done.stderr[-2000:]}"
    return done.stdout


def copy_with_libraries(program: Path, rootfs: Path, name: str) -> None:
    """Copies a dynamically linked program to rootfs/bin/NAME with the shared libraries `ldd`
    names, at their own paths."""
    (rootfs / "bin").mkdir(parents=True, exist_ok=True)
    shutil.copy(program, rootfs / "bin" / name)
    libraries = subprocess.run(["ldd", str(program)], capture_output=True, text=True, check=True).stdout
    for library in re.findall(r"(/\S+\.so[.\d]*)", libraries):
        target = rootfs / library.lstrip("/")
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(Path(library).resolve(), target)


def busybox_image(folder: Path) -> str:
    """The chart's `helm test` and volume-permissions image, busybox, built here from Debian's
    packages (nothing can be pulled), under the name the chart asks for. Debian's busybox 1.35
    crashes on `wget -T` (both its builds), which the `helm test` pod uses, so the image's `wget`
    is GNU wget, which takes the same `-q -T N -O -`."""
    values = (CHART / "values.yaml").read_text()
    tag = values.split("repository: busybox", 1)[1].split('tag: "', 1)[1].split('"', 1)[0]
    name = f"docker.io/library/busybox:{tag}"
    rootfs = folder / "rootfs"
    copy_with_libraries(Path(shutil.which("busybox") or "/bin/busybox").resolve(), rootfs, "busybox")
    copy_with_libraries(Path(shutil.which("wget") or "/usr/bin/wget").resolve(), rootfs, "wget")
    (folder / "Containerfile").write_text(
        'FROM scratch\nCOPY rootfs/ /\nRUN ["/bin/busybox", "sh", "-c", '
        '"for a in $(/bin/busybox --list); do [ -e /bin/$a ] || /bin/busybox ln -s busybox /bin/$a; done"]\n')
    podman("build", "-q", "-t", name, str(folder))
    return name


@pytest.fixture(scope="session")
def images(cluster, tmp_path_factory) -> dict[str, str]:
    """The app image (the quick start's build) and busybox, loaded into the node's containerd."""
    folder = tmp_path_factory.mktemp("images")
    build = image_reference.build_command(README)
    app = build[build.index("-t") + 1]
    podman(*build[1:])
    busybox = busybox_image(folder)
    for name, image in (("app", app), ("busybox", busybox)):
        archive = folder / f"{name}.tar"
        podman("save", "--format", "docker-archive", "-o", str(archive), image)
        kube.script("load", str(archive), timeout=600)
    return {"app": app, "busybox": busybox}


class Releases:
    """Installs the chart in namespaces of their own; each is uninstalled and deleted at the end."""

    def __init__(self, cluster: kube.Cluster):
        self.cluster = cluster
        self.namespaces: list[str] = []

    def install(self, prefix: str, *sets: str, replicas: int = 3, wait: bool = True,
                release: str = "moscow-time") -> str:
        namespace = kube.unique_namespace(prefix)
        self.namespaces.append(namespace)
        args = ["install", release, str(CHART), "--namespace", namespace, "--create-namespace",
                "--set", f"replicaCount={replicas}"]
        for s in sets:
            args += ["--set", s]
        self.cluster.helm(*args)
        if wait:
            self.cluster.wait_ready(namespace, replicas)
        return namespace

    def remove_all(self):
        for namespace in self.namespaces:
            self.cluster.helm("uninstall", "moscow-time", "--namespace", namespace, "--wait", check=False)
            self.cluster.kubectl("delete", "namespace", namespace, "--wait=true", "--timeout=120s",
                                 check=False, timeout=180)


@pytest.fixture
def releases(cluster, images):
    made = Releases(cluster)
    yield made
    made.remove_all()


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    report = outcome.get_result()
    if report.when == "call" and report.failed and "cluster" in getattr(item, "funcargs", {}):
        cluster: kube.Cluster = item.funcargs["cluster"]
        namespaces = [n for n in cluster.kubectl("get", "namespaces", "-o",
                                                 "jsonpath={.items[*].metadata.name}", check=False).split()
                      if not n.startswith("kube-") and n != "default"]
        try:
            report.sections.append(("cluster diagnostics", cluster.diagnostics(namespaces)))
        except Exception as e:  # the diagnostics must never hide the failure itself
            report.sections.append(("cluster diagnostics", f"could not be gathered: {e}"))
