"""Every render passes kubernetes-validate --strict for every Kubernetes version in KUBE_VERSIONS.

Unknown kinds fail unless they are listed CRDs; test_negative.py shows that both rules bite.
"""
from __future__ import annotations

import pytest

from conftest import KUBE_VERSIONS, SOURCES, render_text, rendered_file_name
from validators import kubernetes_validate


@pytest.mark.parametrize("version", KUBE_VERSIONS)
@pytest.mark.parametrize("source", SOURCES)
def test_the_render_matches_the_kubernetes_schemas(source, version, tmp_path):
    manifest = tmp_path / rendered_file_name(source)
    manifest.write_text(render_text(source))
    assert kubernetes_validate(version, manifest) == []
