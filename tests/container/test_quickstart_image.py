"""The README quick start's image, built and saved for real: the archive that `kind load
image-archive` and `minikube image load` import holds exactly the name the chart (with the quick
start's flags) and k8s/ ask the cluster for.

The build and save commands are taken from the README and run as written (the save writes into a
temporary folder). The must-fail case builds with a bare tag, as the quick start once did, and
shows that the archive then names an image no cluster would look for.
"""
from __future__ import annotations

import subprocess

from pyhelpers import image_reference
from pyhelpers.tools import ROOT

README = (ROOT / "README.md").read_text()
TIMEOUT = 1800  # a cold image build compiles the release binary


def podman(*args: str, cwd=ROOT) -> str:
    done = subprocess.run(["podman", *args], cwd=cwd, capture_output=True, text=True, timeout=TIMEOUT)
    assert done.returncode == 0, f"podman {' '.join(args)} failed:\n{done.stderr[-2000:]}"
    return done.stdout


def build_and_save(build: list[str], save: list[str], folder) -> list[str]:
    """Run a build (from the repository) and a save (into `folder`), return the archive's tags."""
    podman(*build[1:])
    podman(*save[1:], cwd=folder)
    archive = folder / save[save.index("-o") + 1]
    return image_reference.archive_tags(archive)


def test_the_quick_starts_archive_holds_the_image_the_chart_and_k8s_ask_for(tmp_path):
    build, save = image_reference.build_command(README), image_reference.save_command(README)
    tags = build_and_save(build, save, tmp_path)
    wanted = image_reference.normalize(image_reference.chart_image(README))
    assert [image_reference.normalize(t) for t in tags] == [wanted], tags
    assert image_reference.normalize(image_reference.k8s_image()) == wanted
    # The podman model the text checks use agrees with podman itself.
    assert image_reference.normalize(tags[0]) == image_reference.normalize(image_reference.podman_name(build[-2]))


def test_must_fail_a_bare_tag_saves_an_image_the_cluster_never_looks_for(tmp_path):
    build, save = image_reference.build_command(README), image_reference.save_command(README)
    bare = "moscow-time:quickstart-must-fail"
    build = [bare if w == build[build.index("-t") + 1] else w for w in build]
    save = save[:-1] + [bare]
    try:
        tags = build_and_save(build, save, tmp_path)
    finally:
        subprocess.run(["podman", "untag", bare], capture_output=True, timeout=60)
    assert tags == ["localhost/" + bare], tags
    assert image_reference.normalize(tags[0]) != image_reference.normalize(bare)
