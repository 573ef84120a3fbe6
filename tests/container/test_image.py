"""The image itself: what it declares (user, entry point, working folder, port, volume, stop
signal, OCI labels), its size, and the ownership of what a fresh volume copies from it."""
from __future__ import annotations

import io
import os
import subprocess
import tarfile

import pytest

from pyhelpers.podman import podman, unique

SIZE_LIMIT_BYTES = 20_000_000


def inspect(image: str, template: str) -> str:
    return podman("image", "inspect", "--format", template, image).stdout.strip()


def test_the_image_is_small(image):
    size = int(inspect(image, "{{.Size}}"))
    print(f"image {image}: {size / 1e6:.1f} MB")
    assert size < SIZE_LIMIT_BYTES


@pytest.mark.parametrize("template, expected", [
    ("{{.Config.User}}", "65532:65532"),
    ("{{json .Config.Entrypoint}}", '["/usr/local/bin/moscow-time"]'),
    ("{{.Config.WorkingDir}}", "/data"),
    ("{{range $p, $v := .Config.ExposedPorts}}{{$p}} {{end}}", "8000/tcp"),
    ("{{range $p, $v := .Config.Volumes}}{{$p}} {{end}}", "/data"),
    ("{{.Config.StopSignal}}", "SIGTERM"),
    ("{{if .Config.Healthcheck}}set{{else}}none{{end}}", "none"),
    ('{{index .Config.Labels "org.opencontainers.image.title"}}', "moscow-time"),
    ('{{index .Config.Labels "org.opencontainers.image.licenses"}}', "MIT"),
])
def test_the_image_declares(image, template, expected):
    assert inspect(image, template) == expected


def test_the_image_runs_with_data_dir_set(image):
    env = inspect(image, "{{range .Config.Env}}{{println .}}{{end}}").splitlines()
    assert "DATA_DIR=/data" in env


@pytest.mark.parametrize("label, variable", [("revision", "REVISION"), ("created", "CREATED")])
def test_the_image_is_labelled_with_its_commit(image, label, variable):
    expected = os.environ.get(variable)
    assert expected, f"{variable} is not set: run these through scripts/test-container"
    assert inspect(image, f'{{{{index .Config.Labels "org.opencontainers.image.{label}"}}}}') == expected


def test_data_belongs_to_65532_and_cat_is_there(image):
    name = unique("mt-export")
    podman("create", "--name", name, image)
    try:
        exported = subprocess.run(["podman", "export", name], capture_output=True, check=True, timeout=120).stdout
    finally:
        podman("rm", "-f", name, check=False)
    with tarfile.open(fileobj=io.BytesIO(exported)) as tar:
        members = {m.name.rstrip("/"): m for m in tar.getmembers()}
    assert (members["data"].uid, members["data"].gid) == (65532, 65532)
    assert "usr/bin/cat" in members
