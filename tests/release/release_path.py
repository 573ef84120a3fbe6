"""The release path on loopback: the parts test_release_path.py puts together, run by
scripts/test-container (pytest) with the image it built and tested.

A real OCI registry, Debian's `docker-registry` (the CNCF distribution registry), runs on a free
port of 127.0.0.1 with its storage in a temporary folder. `scripts/release` pushes the image and
the chart to it (plain HTTP: loopback only), signed with a throwaway GnuPG key (signing.py has the
signature checks and their must-fail cases). Then, as a user would:

- the registry's own API says the tag points at the digest the release recorded, and the image
  config it stores carries the OCI labels (version, revision, created, source, licenses);
- `helm pull oci://.../charts/moscow-time --version X` fetches the chart, `helm template` with
  `image.registry`, `image.repository` and `image.digest` renders the StatefulSet's image by digest;
- every blob of the pushed manifest downloads from the registry and matches its digest;
  `podman pull` of exactly the pinned reference, with a policy.json that requires the release
  key, works, and the pulled image runs: readiness, one visit, `cat visits`;
- the SBOM attached to the release and the one inside the pulled image are the same file, a
  CycloneDX document that lists actix-web and tokio, and every other crate it names, at the
  versions in Cargo.lock.

Must-fail checks: the release refuses plain HTTP to a registry off loopback, an image labelled
with another version, --require-signing without a key and a wrong passphrase; pulling a chart
version that was never pushed fails; the SBOM check rejects a document with a wrong tokio version.
Without a key the release goes through unsigned and says so in one line.

Each check asserts; the first that fails ends its test with its message. Bounded: about a minute.
"""
from __future__ import annotations

import hashlib
import json
import re
import secrets
import subprocess
import sys
import tarfile
import tomllib
import urllib.request
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "tests"))
sys.path.insert(0, str(ROOT / "tests" / "release"))
from pyhelpers.live import free_port, http_status, wait_until  # noqa: E402
from signing import SignedRelease, run  # noqa: E402,F401 - SignedRelease for the tests

HELM = str(ROOT / ".tools" / "bin" / "helm")
NAME = "moscow-time"
SBOM_PATH_IN_IMAGE = "/usr/share/doc/moscow-time/sbom.cdx.json"
MANIFEST_TYPES = ", ".join([
    "application/vnd.oci.image.manifest.v1+json",
    "application/vnd.docker.distribution.manifest.v2+json",
])



def result(ok: bool, what: str) -> bool:
    """One check: fails the test with `what` unless `ok`."""
    assert ok, what
    return True


def cargo_lock_versions() -> dict[str, set[str]]:
    versions: dict[str, set[str]] = {}
    for package in tomllib.loads((ROOT / "Cargo.lock").read_text())["package"]:
        versions.setdefault(package["name"], set()).add(package["version"])
    return versions


def crate_version() -> str:
    return tomllib.loads((ROOT / "Cargo.toml").read_text())["package"]["version"]


# ---------------------------------------------------------------- the registry
class Registry:
    """docker-registry on 127.0.0.1:<free port>, storage in a temporary folder."""

    def __init__(self, workdir: Path):
        self.port = free_port()
        self.address = f"127.0.0.1:{self.port}"
        config = {
            "version": 0.1,
            "log": {"level": "warn", "accesslog": {"disabled": True}},
            "storage": {"filesystem": {"rootdirectory": str(workdir / "storage")}},
            "http": {"addr": self.address, "secret": secrets.token_hex(16)},
        }
        (workdir / "config.yml").write_text(yaml.safe_dump(config))
        self.log = open(workdir / "registry.log", "w")
        self.process = subprocess.Popen(["docker-registry", "serve", str(workdir / "config.yml")],
                                        stdout=self.log, stderr=subprocess.STDOUT)
        wait_until(lambda: http_status(f"http://{self.address}/v2/") == 200 or self.process.poll() is not None,
                   10, "the registry's /v2/")
        if self.process.poll() is not None:
            raise RuntimeError(f"docker-registry exited: {(workdir / 'registry.log').read_text()[-800:]}")

    def get(self, path: str, accept: str = "application/json") -> tuple[bytes, dict]:
        request = urllib.request.Request(f"http://{self.address}/v2/{path}", headers={"Accept": accept})
        with urllib.request.urlopen(request, timeout=10) as answer:
            return answer.read(), dict(answer.headers)

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(10)
        except subprocess.TimeoutExpired:
            self.process.kill()
        self.log.close()


# ---------------------------------------------------------------- checks
def sbom_problems(bom: dict, lock: dict[str, set[str]], version: str) -> list[str]:
    """What keeps a CycloneDX document from describing this crate's dependencies as Cargo.lock has them."""
    problems = []
    if bom.get("bomFormat") != "CycloneDX" or not str(bom.get("specVersion", "")).startswith("1."):
        problems.append(f"not a CycloneDX 1.x document: {bom.get('bomFormat')} {bom.get('specVersion')}")
    top = bom.get("metadata", {}).get("component", {})
    if (top.get("name"), top.get("version")) != (NAME, version):
        problems.append(f"describes {top.get('name')} {top.get('version')}, not {NAME} {version}")
    listed: dict[str, set[str]] = {}
    for component in bom.get("components", []):
        listed.setdefault(component.get("name"), set()).add(component.get("version"))
        purl = component.get("purl", "")
        if not purl.startswith(f"pkg:cargo/{component.get('name')}@{component.get('version')}"):
            problems.append(f"{component.get('name')} {component.get('version')}: purl {purl!r}")
        if component.get("version") not in lock.get(component.get("name"), set()):
            problems.append(f"{component.get('name')} {component.get('version')} is not in Cargo.lock")
    for crate in ("actix-web", "tokio"):
        if not listed.get(crate) or listed[crate] != lock.get(crate):
            problems.append(f"{crate}: the SBOM lists {sorted(listed.get(crate, []))}, "
                            f"Cargo.lock has {sorted(lock.get(crate, []))}")
    return problems


def check_sbom(sbom_file: Path, version: str) -> None:
    lock = cargo_lock_versions()
    bom = json.loads(sbom_file.read_text())
    problems = sbom_problems(bom, lock, version)
    crates = {c["name"]: c["version"] for c in bom.get("components", [])}
    result(not problems, f"SBOM: CycloneDX {bom.get('specVersion')}, {len(crates)} crates, actix-web "
                         f"{crates.get('actix-web')} and tokio {crates.get('tokio')} as in Cargo.lock"
                         + (f": {problems[:5]}" if problems else ""))
    # Must-fail: the same check rejects a document whose tokio version is not Cargo.lock's.
    for component in bom.get("components", []):
        if component.get("name") == "tokio":
            component["version"] = "0.0.1"
    result(any("tokio" in p for p in sbom_problems(bom, lock, version)),
           "SBOM check: a tokio version that is not Cargo.lock's is caught (must-fail)")


def check_labels(config_labels: dict, local_labels: dict) -> None:
    version = crate_version()
    license_ = tomllib.loads((ROOT / "Cargo.toml").read_text())["package"]["license"]
    revision = config_labels.get("org.opencontainers.image.revision", "")
    is_commit = bool(re.fullmatch(r"[0-9a-f]{40}", revision)) and \
        run("git", "-C", str(ROOT), "cat-file", "-e", f"{revision}^{{commit}}", check=False).returncode == 0
    commit_time = run("git", "-C", str(ROOT), "log", "-1", "--format=%cd",
                      "--date=format-local:%Y-%m-%dT%H:%M:%SZ", revision, check=False).stdout.strip() \
        if is_commit else None
    dockerfile_source = re.search(r"^ARG SOURCE=(\S+)$", (ROOT / "Dockerfile").read_text(), re.MULTILINE)
    want = {
        "title": NAME,
        "version": version,
        "licenses": license_,
        "created": commit_time,
        "source": dockerfile_source[1] if dockerfile_source else None,
        "base.name": "scratch",
    }
    for key, expected in want.items():
        got = config_labels.get(f"org.opencontainers.image.{key}")
        if key == "source" and got != expected:
            # A release build passes the checkout's origin remote instead of the default.
            expected = run("git", "-C", str(ROOT), "remote", "get-url", "origin", check=False).stdout.strip() or expected
        result(got == expected, f"pushed image label {key} = {got!r}" + ("" if got == expected else f", want {expected!r}"))
    result(is_commit, f"pushed image label revision {revision[:12]} is a commit of this repository")
    result(config_labels == local_labels, "the pushed image's labels are the built image's labels")


def check_registry(registry: Registry, record: dict, version: str, local_labels: dict) -> None:
    catalog = json.loads(registry.get("_catalog")[0])["repositories"]
    result({NAME, f"charts/{NAME}"} <= set(catalog), f"registry catalog {catalog}")
    body, headers = registry.get(f"{NAME}/manifests/{version}", MANIFEST_TYPES)
    stored = headers.get("Docker-Content-Digest")
    result(stored == record["image"]["digest"],
           f"registry: {NAME}:{version} is {stored}, the digest the release recorded")
    manifest = json.loads(body)
    config = json.loads(registry.get(f"{NAME}/blobs/{manifest['config']['digest']}")[0])
    check_labels(config.get("config", {}).get("Labels") or {}, local_labels)


def release(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    return run(str(ROOT / "scripts" / "release"), *args, env=env, check=False)


def check_release_refusals(image: str, workdir: Path, key: Key) -> None:
    """Must-fail: plain HTTP off loopback, an image labelled with another version, --require-signing
    without a key, a wrong passphrase (the last two before anything is pushed: port 9 has no registry)."""
    done = run(str(ROOT / "scripts" / "release"), "--registry", "registry.invalid:5000", "--plain-http",
               "--image", image, "--out", str(workdir / "refused"), check=False)
    result(done.returncode != 0 and "loopback" in done.stderr,
           "scripts/release refuses --plain-http for a registry off loopback (must-fail)")
    done = release("--registry", "127.0.0.1:9", "--plain-http", "--image", image, "--out", str(workdir / "refused"),
                   "--require-signing")
    result(done.returncode != 0 and "--require-signing: no signing key given" in done.stderr,
           f"scripts/release --require-signing refuses to release unsigned (must-fail): {done.stderr.strip()[-200:]!r}")
    wrong = workdir / "wrong.passphrase"
    wrong.write_text("not the passphrase\n")
    done = release("--registry", "127.0.0.1:9", "--plain-http", "--image", image, "--out", str(workdir / "refused"),
                   "--sign-key", key.fingerprint, "--sign-passphrase-file", str(wrong), env=key.env)
    result(done.returncode != 0 and "Bad passphrase" in done.stderr,
           f"scripts/release refuses a wrong passphrase before pushing (must-fail): {done.stderr.strip()[-200:]!r}")
    other = f"localhost/{NAME}:release-check-other-version"
    (workdir / "Containerfile").write_text(f"FROM {image}\nLABEL org.opencontainers.image.version=9.9.9\n")
    run("podman", "build", "--pull=never", "-q", "-t", other, "-f", str(workdir / "Containerfile"), str(workdir))
    try:
        done = run(str(ROOT / "scripts" / "release"), "--registry", "127.0.0.1:9", "--plain-http",
                   "--image", other, "--out", str(workdir / "refused"), check=False)
        result(done.returncode != 0 and "9.9.9" in done.stderr,
               "scripts/release refuses an image labelled with another version (must-fail)")
    finally:
        run("podman", "rmi", "-f", other, check=False)


def check_chart(registry: Registry, record: dict, version: str, workdir: Path) -> str | None:
    """helm pull by version, helm template pinned by digest; returns the rendered image reference."""
    pulled = workdir / "pulled"
    pulled.mkdir()
    done = run(HELM, "pull", f"oci://{registry.address}/charts/{NAME}", "--version", version,
               "--plain-http", "--destination", str(pulled), check=False)
    chart_file = pulled / f"{NAME}-{version}.tgz"
    if not result(done.returncode == 0 and chart_file.exists(),
                  f"helm pull oci://{registry.address}/charts/{NAME} --version {version}" +
                  ("" if done.returncode == 0 else f": {done.stderr.strip()[-300:]}")):
        return None
    with tarfile.open(chart_file) as tar:
        chart = yaml.safe_load(tar.extractfile(f"{NAME}/Chart.yaml"))
    result((chart["version"], chart["appVersion"]) == (version, version),
           f"the pulled chart is version {chart['version']}, appVersion {chart['appVersion']}")
    missing = run(HELM, "pull", f"oci://{registry.address}/charts/{NAME}", "--version", "9.9.9",
                  "--plain-http", "--destination", str(pulled), check=False)
    result(missing.returncode != 0, "helm pull of a version never pushed fails (must-fail)")

    digest = record["image"]["digest"]
    rendered = run(HELM, "template", NAME, str(chart_file), "--namespace", NAME,
                   "--set", f"image.registry={registry.address}", "--set", f"image.repository={NAME}",
                   "--set", f"image.digest={digest}").stdout
    sts = next(d for d in yaml.safe_load_all(rendered) if d and d["kind"] == "StatefulSet")
    image = next(c for c in sts["spec"]["template"]["spec"]["containers"] if c["name"] == NAME)["image"]
    want = f"{registry.address}/{NAME}@{digest}"
    result(image == want, f"helm template: the StatefulSet's image is {image}" + ("" if image == want else f", want {want}"))
    return image if image == want else None


def check_blobs(registry: Registry, record: dict) -> None:
    """Every layer and the config of the pushed manifest are in the registry, byte for byte."""
    body, _ = registry.get(f"{NAME}/manifests/{record['image']['digest']}", MANIFEST_TYPES)
    manifest = json.loads(body)
    blobs = [manifest["config"], *manifest["layers"]]
    bad = []
    for blob in blobs:
        data = registry.get(f"{NAME}/blobs/{blob['digest']}", "*/*")[0]
        if "sha256:" + hashlib.sha256(data).hexdigest() != blob["digest"] or len(data) != blob["size"]:
            bad.append(blob["digest"])
    result(not bad, f"registry: the config and {len(blobs) - 1} layers of the manifest download and match "
                    f"their digests ({sum(b['size'] for b in blobs)} bytes)" + (f"; bad: {bad}" if bad else ""))


def check_unsigned_release(registry: Registry, image: str, workdir: Path) -> None:
    """Without a key the release goes through, says so in one line and records no signing."""
    out = workdir / "unsigned"
    done = release("--registry", f"{registry.address}/unsigned", "--plain-http", "--image", image, "--out", str(out))
    said = [line for line in done.stdout.splitlines() if line.startswith("release: unsigned:")]
    signing = json.loads((out / "release.json").read_text())["signing"] if done.returncode == 0 else "?"
    result(done.returncode == 0 and len(said) == 1 and signing is None and not (out / "signatures").exists()
           and not list(out.glob("*.prov")),
           f"scripts/release without a key releases unsigned and says so once: {said}" +
           ("" if done.returncode == 0 else f": {done.stderr.strip()[-300:]}"))


def check_pull_and_run(reference: str, sbom_file: Path, workdir: Path, signed: SignedRelease) -> None:
    """podman pull of the pinned reference as the consumer (the release key required), then run it.

    The pull goes through the registry for the manifest (by digest) and the image config; layers
    already in this machine's store are not downloaded again (they are content-addressed), which
    is why check_blobs downloads every blob from the registry itself.
    """
    done = signed.pull(reference)
    if not result(done.returncode == 0, f"podman pull {reference} with a policy.json that requires the release key" +
                  ("" if done.returncode == 0 else f": {done.stderr.strip()[-300:]}")):
        return
    try:
        digests = run("podman", "image", "inspect", "--format", "{{json .RepoDigests}}", reference).stdout
        result(reference in json.loads(digests), f"the pulled image's RepoDigests hold {reference}")
        holder = run("podman", "create", reference).stdout.strip()
        run("podman", "cp", f"{holder}:{SBOM_PATH_IN_IMAGE}", str(workdir / "sbom-from-image.json"))
        run("podman", "rm", "-f", holder)
        result((workdir / "sbom-from-image.json").read_bytes() == sbom_file.read_bytes(),
               f"the SBOM at {SBOM_PATH_IN_IMAGE} in the pulled image is the one attached to the release")
        run_pulled(reference)
    finally:
        # Drops the registry's name for the image only; the image stays under its local tag.
        run("podman", "untag", reference.split("@")[0], check=False)


def run_pulled(reference: str) -> None:
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    name = f"mt-release-{port}"
    run("podman", "run", "-d", "--name", name, "--read-only", "--read-only-tmpfs=false", "--cap-drop=ALL",
        "--security-opt=no-new-privileges", "-p", f"127.0.0.1:{port}:8000", "-e", f"POD_NAME={name}", reference)
    try:
        wait_until(lambda: http_status(f"{base}/readyz") == 200, 30, "the pulled image's /readyz")
        result(True, "the pulled image runs: /readyz 200")
        with urllib.request.urlopen(f"{base}/", timeout=5) as page:
            number = page.headers.get("X-Visit-Number")
        result(number == "1", f"one visit: X-Visit-Number {number}")
        visits = run("podman", "exec", name, "cat", "visits", check=False).stdout.strip()
        result(visits == "1", f"podman exec cat visits: {visits!r}")
    except AssertionError as e:
        result(False, f"the pulled image never became ready: {e}; logs: "
                      f"{run('podman', 'logs', name, check=False).stderr.strip()[-400:]}")
    finally:
        run("podman", "rm", "-f", "-v", "-t", "10", name, check=False)
