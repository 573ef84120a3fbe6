"""Signed releases, checked as a consumer would: used by test_release_path.py against its loopback registry.

The release key and a second, unrelated key are throwaway GnuPG keys made here (`gpg --batch
--quick-gen-key`, RSA 3072) in temporary GnuPG homes; the release key has a passphrase, so the
release exercises --sign-passphrase-file. `scripts/release --sign-key` signs the image with
podman's simple signing (signature files in the release output's `signatures/`, the lookaside
store) and the chart with a Helm provenance file pushed along with it.

The consumer has only what the release publishes: `pubring.gpg` and the `signatures/` folder,
served over HTTP on loopback as the lookaside. Its podman uses a `policy.json` that requires a
signature by the release key for the image's repository (`signedBy`, anything else rejected) and
a `registries.d` file that names the lookaside; helm uses `--verify --keyring pubring.gpg`.

- `podman pull` of the released digest succeeds; refused, each with podman's own error: an image
  pushed unsigned to the same repository, an image signed with the other key, and the release's
  signature copied onto another digest.
- `helm pull --verify` and `helm template --verify` (what `helm install --verify` runs before it
  talks to a cluster) of the released chart succeed; refused, each with helm's own error: a chart
  whose archive was altered, one whose provenance was altered, one signed with the other key.
"""
from __future__ import annotations

import functools
import http.server
import json
import os
import shutil
import subprocess
import tarfile
import tempfile
import threading
from pathlib import Path
from typing import Callable

import yaml

NAME = "moscow-time"
CHART = Path(__file__).resolve().parents[2] / "helm" / NAME
COMMAND_TIMEOUT = 180   # seconds for any one command


def run(*cmd: str, env: dict[str, str] | None = None, check: bool = True) -> subprocess.CompletedProcess:
    """Run a command (with env added to this process's environment); raise on failure if check."""
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=COMMAND_TIMEOUT,
                          env={**os.environ, **(env or {})})
    if check and done.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} exited {done.returncode}: {done.stderr.strip()[-800:]}")
    return done


# ---------------------------------------------------------------- keys
class Key:
    """A throwaway GnuPG key in a GnuPG home of its own."""

    def __init__(self, home: Path, uid: str, passphrase: str | None = None):
        self.home = home
        self.uid = uid
        home.mkdir(mode=0o700, parents=True)
        self.passphrase_file: Path | None = None
        protect = ["--passphrase", ""]
        if passphrase is not None:
            self.passphrase_file = home.parent / f"{home.name}.passphrase"
            self.passphrase_file.write_text(passphrase + "\n")
            protect = ["--pinentry-mode", "loopback", "--passphrase-file", str(self.passphrase_file)]
        self.gpg("--quick-gen-key", *protect, uid, "rsa3072", "sign", "never")
        listing = self.gpg("--with-colons", "--list-secret-keys", uid).stdout
        self.fingerprint = next(line.split(":")[9] for line in listing.splitlines() if line.startswith("fpr:"))

    @property
    def env(self) -> dict[str, str]:
        return {"GNUPGHOME": str(self.home)}

    def gpg(self, *args: str) -> subprocess.CompletedProcess:
        return run("gpg", "--batch", *args, env=self.env)

    def secret_keyring(self, path: Path) -> Path:
        """The secret key in the file format helm reads (this key has no passphrase)."""
        path.write_bytes(subprocess.run(["gpg", "--batch", "--export-secret-keys", self.fingerprint],
                                        capture_output=True, check=True, timeout=COMMAND_TIMEOUT,
                                        env={**os.environ, **self.env}).stdout)
        return path

    def stop_agent(self) -> None:
        run("gpgconf", "--kill", "gpg-agent", env=self.env, check=False)


# ---------------------------------------------------------------- the lookaside, served
class Lookaside:
    """The release's signatures/ folder served over HTTP on 127.0.0.1:<free port>, as a publisher would."""

    def __init__(self, folder: Path):
        class Quiet(http.server.SimpleHTTPRequestHandler):
            def log_message(self, *args) -> None:
                pass
        handler = functools.partial(Quiet, directory=str(folder))
        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def registries_d_home(home: Path, repository: str, **where: str) -> dict[str, str]:
    """A HOME whose .config/containers/registries.d names the repository's lookaside (see scripts/release)."""
    folder = home / ".config" / "containers" / "registries.d"
    folder.mkdir(parents=True)
    settings = {key.replace("_", "-"): value for key, value in where.items()}
    (folder / f"{NAME}.yaml").write_text(yaml.safe_dump({"docker": {repository: settings}}))
    return {"HOME": str(home)}


def consumer_policy(repository: str, public_key: Path) -> dict:
    """The policy.json a consumer uses: the release key for this repository, nothing else admitted."""
    return {
        "default": [{"type": "reject"}],
        "transports": {"docker": {repository: [
            {"type": "signedBy", "keyType": "GPGKeys", "keyPath": str(public_key)},
        ]}},
    }


# ---------------------------------------------------------------- the checks
class SignedRelease:
    def __init__(self, result: Callable[[bool, str], bool], helm_path: str, registry: str, image: str, out: Path, record: dict,
                 release_key: Key, other_key: Key, workdir: Path):
        self.result = result
        self.helm_path = helm_path
        self.registry = registry
        self.image = image
        self.out = out
        self.record = record
        self.release_key = release_key
        self.other_key = other_key
        self.workdir = workdir / "signing"
        self.workdir.mkdir()
        self.repository = f"{registry}/{NAME}"
        self.public_key = out / "pubring.gpg"
        self.policy = self.workdir / "policy.json"
        self.policy.write_text(json.dumps(consumer_policy(self.repository, self.public_key), indent=2))
        self.lookaside = Lookaside(out / "signatures")
        self.consumer_env = registries_d_home(self.workdir / "consumer-home", self.repository,
                                              lookaside=self.lookaside.url)
        self.local_tags: list[str] = []

    def close(self) -> None:
        self.lookaside.stop()
        for tag in self.local_tags:
            run("podman", "rmi", "-f", tag, check=False)

    # -------------------------------------------------------- what the release wrote
    def check_record(self) -> None:
        signing = self.record.get("signing") or {}
        digest = self.record["image"]["digest"]
        want = f"signatures/{NAME}@{digest.replace(':', '=')}/signature-1"
        self.result(signing.get("key") == self.release_key.fingerprint and signing.get("image_signature") == want
                    and (self.out / want).stat().st_size > 0,
                    f"release.json: signed by {signing.get('key')}, the image's signature at {want}")
        self.result((self.out / f"{NAME}-{self.record['version']}.tgz.prov").is_file()
                    and self.public_key.stat().st_size > 0,
                    "the release output holds the chart's provenance and the public key (pubring.gpg)")

    # -------------------------------------------------------- the image
    def pull(self, reference: str) -> subprocess.CompletedProcess:
        """podman pull as the consumer: its policy.json and its registries.d (the served lookaside)."""
        return run("podman", "pull", "--tls-verify=false", "--signature-policy", str(self.policy), reference,
                   env=self.consumer_env, check=False)

    def push_variant(self, case: str, key: Key | None = None) -> str:
        """Push an image that differs from the release by one label to the release's repository
        under the tag `case`, signed by `key` if given (its signature goes to the same lookaside,
        as if whoever pushed it could also write there); returns its digest."""
        tag = f"localhost/{NAME}:signing-{case}"
        (self.workdir / f"{case}.Containerfile").write_text(
            f"FROM {self.image}\nLABEL org.moscow-time.test.case={case}\n")
        run("podman", "build", "--pull=never", "-q", "-t", tag, "-f", str(self.workdir / f"{case}.Containerfile"),
            str(self.workdir))
        self.local_tags.append(tag)
        digest_file = self.workdir / f"{case}.digest"
        flags: list[str] = []
        env: dict[str, str] = {}
        if key is not None:
            flags = ["--sign-by", key.fingerprint]
            env = {**key.env, **registries_d_home(self.workdir / f"{case}-home", self.repository,
                                                  lookaside_staging=f"file://{self.out / 'signatures'}")}
        run("podman", "push", "--quiet", "--tls-verify=false", *flags, "--digestfile", str(digest_file),
            tag, f"{self.repository}:{case}", env=env)
        return digest_file.read_text().strip()

    def refused(self, what: str, digest: str, expected: str) -> None:
        done = self.pull(f"{self.repository}@{digest}")
        error = done.stderr.strip().splitlines()[-1] if done.stderr.strip() else ""
        self.result(done.returncode != 0 and expected in error,
                    f"podman pull refuses {what} (must-fail): {error[:300]!r}")

    def check_image(self) -> bool:
        """The released digest passes the consumer's policy; returns whether it did."""
        reference = self.record["image"]["pinned"]
        done = self.pull(reference)
        return self.result(done.returncode == 0,
                           f"podman pull {reference} with a policy.json that requires the release key" +
                           ("" if done.returncode == 0 else f": {done.stderr.strip()[-400:]}"))

    def check_image_refusals(self) -> None:
        released = self.record["image"]["digest"]
        self.refused("an image pushed unsigned to the same repository", self.push_variant("unsigned"),
                     "A signature was required, but no signature exists")
        other = self.other_key.fingerprint
        self.refused(f"an image signed with another key ({other[-16:]})", self.push_variant("other-key", self.other_key),
                     f'Invalid GPG signature: gpgme.Signature{{Summary:128, Fingerprint:"{other}"')
        moved = self.push_variant("moved-signature")
        source = self.out / "signatures" / f"{NAME}@{released.replace(':', '=')}" / "signature-1"
        target = self.out / "signatures" / f"{NAME}@{moved.replace(':', '=')}" / "signature-1"
        target.parent.mkdir(parents=True)
        shutil.copyfile(source, target)
        self.refused("the release's signature copied onto another digest", moved,
                     f"Signature for digest {released} does not match")

    # -------------------------------------------------------- the chart
    def helm(self, *args: str) -> subprocess.CompletedProcess:
        """helm as a new consumer: a fresh cache each time, since helm keeps a verified chart's
        provenance by the archive's digest and would reuse it for the same archive."""
        cache = tempfile.mkdtemp(prefix="helm-cache-", dir=self.workdir)
        return run(self.helm_path, *args, env={"HELM_CACHE_HOME": cache}, check=False)

    def verify_pull(self, reference: str) -> subprocess.CompletedProcess:
        destination = tempfile.mkdtemp(prefix="pulled-", dir=self.workdir)
        return self.helm("pull", reference, "--version", self.record["version"], "--plain-http", "--verify",
                         "--keyring", str(self.public_key), "--destination", destination)

    def push_chart(self, folder: Path, namespace: str) -> str:
        """helm push of the chart in folder (its .prov beside it) to oci://<registry>/<namespace>/charts."""
        chart = folder / f"{NAME}-{self.record['version']}.tgz"
        run(self.helm_path, "push", str(chart), f"oci://{self.registry}/{namespace}/charts", "--plain-http")
        return f"oci://{self.registry}/{namespace}/charts/{NAME}"

    def check_chart(self) -> None:
        reference = self.record["chart"]["reference"]
        done = self.verify_pull(reference)
        said = done.stdout + done.stderr
        self.result(done.returncode == 0 and f"Using Key With Fingerprint: {self.release_key.fingerprint}" in said,
                    f"helm pull --verify --keyring pubring.gpg {reference}" +
                    ("" if done.returncode == 0 else f": {done.stderr.strip()[-300:]}"))
        done = self.helm("template", NAME, reference, "--version", self.record["version"], "--plain-http",
                         "--verify", "--keyring", str(self.public_key))
        self.result(done.returncode == 0 and "kind: StatefulSet" in done.stdout,
                    "helm template --verify (as helm install --verify) renders the released chart" +
                    ("" if done.returncode == 0 else f": {done.stderr.strip()[-300:]}"))

    def chart_refused(self, what: str, reference: str, expected: str, command: str = "pull") -> None:
        if command == "pull":
            done = self.verify_pull(reference)
        else:
            done = self.helm("template", NAME, reference, "--version", self.record["version"], "--plain-http",
                             "--verify", "--keyring", str(self.public_key))
        error = done.stderr.strip().splitlines()[-1] if done.stderr.strip() else ""
        self.result(done.returncode != 0 and expected in error,
                    f"helm {command} --verify refuses {what} (must-fail): {error[:300]!r}")

    def check_chart_refusals(self) -> None:
        version = self.record["version"]
        chart_name = f"{NAME}-{version}.tgz"
        released_chart, released_prov = self.out / chart_name, self.out / f"{chart_name}.prov"

        # The archive altered (one line added to values.yaml, repackaged), the release's provenance beside it.
        folder = self.workdir / "altered-archive"
        (folder / "src").mkdir(parents=True)
        with tarfile.open(released_chart) as tar:
            tar.extractall(folder / "src", filter="data")
        with open(folder / "src" / NAME / "values.yaml", "a") as values:
            values.write("# altered after signing\n")
        run(self.helm_path, "package", str(folder / "src" / NAME), "--destination", str(folder))
        shutil.copyfile(released_prov, folder / f"{chart_name}.prov")
        reference = self.push_chart(folder, "altered-archive")
        self.chart_refused("a chart whose archive was altered", reference,
                           f"sha256 sum does not match for {chart_name}")
        self.chart_refused("a chart whose archive was altered", reference,
                           f"sha256 sum does not match for {chart_name}", command="template")

        # The provenance altered (its description line), the released archive beside it.
        folder = self.workdir / "altered-provenance"
        folder.mkdir()
        shutil.copyfile(released_chart, folder / chart_name)
        prov = released_prov.read_text()
        altered = "\n".join("description: altered after signing" if line.startswith("description: ") else line
                            for line in prov.split("\n"))
        assert altered != prov, "the provenance has no description line to alter"
        (folder / f"{chart_name}.prov").write_text(altered)
        self.chart_refused("a chart whose provenance was altered", self.push_chart(folder, "altered-provenance"),
                           "openpgp: invalid signature")

        # The same chart signed with the other key.
        folder = self.workdir / "other-key"
        run(self.helm_path, "package", str(CHART), "--version", version, "--app-version", version,
            "--sign", "--key", self.other_key.uid,
            "--keyring", str(self.other_key.secret_keyring(self.workdir / "other-secring.gpg")),
            "--destination", str(folder))
        self.chart_refused("a chart signed with another key", self.push_chart(folder, "other-key"),
                           "openpgp: signature made by unknown entity")
