"""The release path on loopback, as a user would meet it (see release_path.py and signing.py for
what each check proves): one registry and one signed release for the module, then the checks in
order; the refusals and the unsigned release first, the image refusals last."""
from __future__ import annotations

import json
import secrets
import shutil
from dataclasses import dataclass
from pathlib import Path

import pytest

import release_path as rp
from signing import Key, SignedRelease


@dataclass
class Release:
    registry: rp.Registry
    record: dict
    out: Path
    workdir: Path
    release_key: Key
    signed: SignedRelease
    local_labels: dict


@pytest.fixture(scope="module")
def released(image, tmp_path_factory):
    assert shutil.which("docker-registry"), "docker-registry is not installed (apt-get install docker-registry)"
    workdir = tmp_path_factory.mktemp("release")
    registry = rp.Registry(workdir)
    keys: list[Key] = []
    signed = None
    try:
        keys.append(Key(workdir / "gnupg-release", "moscow-time release (test) <release@moscow-time.test>",
                        passphrase=secrets.token_hex(16)))
        keys.append(Key(workdir / "gnupg-other", "someone else (test) <other@moscow-time.test>"))
        release_key, other_key = keys
        out = workdir / "out"
        done = rp.release("--registry", registry.address, "--plain-http", "--image", image, "--out", str(out),
                          "--sign-key", release_key.fingerprint,
                          "--sign-passphrase-file", str(release_key.passphrase_file), env=release_key.env)
        print(done.stdout)
        assert done.returncode == 0, f"scripts/release failed: {done.stderr.strip()[-800:]}"
        record = json.loads((out / "release.json").read_text())
        signed = SignedRelease(rp.result, rp.HELM, registry.address, image, out, record, release_key, other_key,
                               workdir)
        labels = json.loads(rp.run("podman", "image", "inspect", "--format", "{{json .Config.Labels}}",
                                   image).stdout)
        yield Release(registry, record, out, workdir, release_key, signed, labels)
    finally:
        if signed:
            signed.close()
        for key in keys:
            key.stop_agent()
        registry.stop()


def test_the_release_refuses_what_it_must(image, released):
    rp.check_release_refusals(image, released.workdir, released.release_key)


def test_a_release_without_a_key_goes_through_unsigned_and_says_so(image, released):
    rp.check_unsigned_release(released.registry, image, released.workdir)


def test_the_registry_holds_the_recorded_digest_labels_and_blobs(released):
    rp.check_registry(released.registry, released.record, rp.crate_version(), released.local_labels)
    rp.check_blobs(released.registry, released.record)


def test_the_sbom_lists_cargo_locks_crates(released):
    rp.check_sbom(released.out / released.record["sbom"]["file"], rp.crate_version())


def test_the_release_records_its_signatures(released):
    released.signed.check_record()


def test_the_chart_pulls_by_version_and_verifies(released):
    assert rp.check_chart(released.registry, released.record, rp.crate_version(), released.workdir)
    released.signed.check_chart()
    released.signed.check_chart_refusals()


def test_the_image_pulls_by_digest_under_the_signature_policy_and_runs(released):
    reference = f"{released.registry.address}/{rp.NAME}@{released.record['image']['digest']}"
    rp.check_pull_and_run(reference, released.out / released.record["sbom"]["file"], released.workdir,
                          released.signed)


def test_podman_refuses_unsigned_other_key_and_moved_signatures(released):
    released.signed.check_image_refusals()
