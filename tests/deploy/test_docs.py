"""Every command in the docs runs as written against what the chart and k8s/ deploy.

The shell blocks of README.md, docs/*.md and the chart's README, and the notes helm prints after
an install, are read as a reader would copy them (tests/pyhelpers/docs.py). For each page, the
install it follows is the last `helm install`/`helm upgrade` before a command (release
`moscow-time` in namespace `moscow-time` until one says otherwise). Then:

- every `kubectl` command that names a namespaced object, or acts on pods, carries that
  install's namespace;
- every pod, PVC, Service and StatefulSet it names exists in the manifests rendered for that
  release and namespace (a pod is `<StatefulSet>-<ordinal>`, a PVC `<claim>-<StatefulSet>-<ordinal>`);
- every `--set` key exists in values.schema.json;
- every `helm install`, `helm upgrade` and `helm template` line renders (`helm template` with the
  same release, namespace, values and flags; a chart from a registry is this chart);
- every file a command or a link names exists;
- every fenced block says its language, so no command hides in an untyped block.

The must-fail cases at the end feed each rule a page with one mistake.
"""
from __future__ import annotations

import json
import re
import subprocess
from dataclasses import dataclass, field
from functools import cache

import pytest
import yaml

from conftest import CHART, HELM, NAMESPACE, RELEASE, ROOT
from pyhelpers import docs

SCHEMA = json.loads((CHART / "values.schema.json").read_text())
CHART_VERSION = yaml.safe_load((CHART / "Chart.yaml").read_text())["version"]

# Namespaces of other applications that a runbook reads from (docs/operations.md moves the count
# of an older app into moscow-time); commands there are not about this install.
FOREIGN_NAMESPACES = {"old-app"}

KINDS = {  # kubectl's names for the kinds the rules check -> the kind
    **dict.fromkeys(["po", "pod", "pods"], "Pod"),
    **dict.fromkeys(["sts", "statefulset", "statefulsets"], "StatefulSet"),
    **dict.fromkeys(["svc", "service", "services"], "Service"),
    **dict.fromkeys(["pvc", "persistentvolumeclaim", "persistentvolumeclaims"], "PersistentVolumeClaim"),
}
OTHER_NAMESPACED = {"cm", "configmap", "configmaps", "deploy", "deployment", "deployments",
                    "secret", "secrets", "pdb", "poddisruptionbudget", "ep", "endpoints",
                    "events", "all", "volumesnapshot", "volumesnapshots", "sa", "serviceaccount"}
POD_COMMANDS = {"exec", "logs", "port-forward", "attach", "cp"}
KUBECTL_VALUE_FLAGS = {"-n", "--namespace", "-o", "--output", "-l", "--selector", "-c",
                       "--container", "-f", "--filename", "-k", "--kustomize", "-p", "--patch",
                       "--type", "--for", "--timeout", "--context", "-L", "--label-columns",
                       "--cascade", "--replicas", "--field-selector", "--image", "--overrides"}
HELM_VALUE_FLAGS = {"-n", "--namespace", "--set", "--set-string", "--set-json", "--set-file",
                    "-f", "--values", "--version", "--timeout", "--key", "--keyring",
                    "--kube-version", "--show-only", "-s"}
# Placeholders a reader replaces, and what a render uses for them.
PLACEHOLDERS = {"X.Y.Z": CHART_VERSION, "sha256:<digest-from-release.json>": "sha256:" + "0" * 64}
REPO_PATH = re.compile(r"^(?:\./)?((?:scripts|helm|k8s|docs|tests|bench|src|tools|\.ci)/[\w./-]*"
                       r"|Dockerfile|Cargo\.toml|Cargo\.lock|CHANGELOG\.md|deny\.toml)$")


@dataclass
class Install:
    release: str = RELEASE
    namespace: str = NAMESPACE


@dataclass
class Page:
    name: str
    commands: list[docs.Command]
    text: str = ""
    problems: list[str] = field(default_factory=list)


def positionals(argv: list[str], value_flags: set[str]) -> list[str]:
    out, skip = [], False
    for word in argv[1:]:
        if skip:
            skip = False
        elif word in value_flags:
            skip = True
        elif not word.startswith("-"):
            out.append(word)
    return out


def is_placeholder(name: str) -> bool:
    return any(c in name for c in "$<{*") or name in {"NAME", "POD"}


@cache
def rendered(release: str, namespace: str) -> tuple[dict, ...]:
    out = subprocess.run([HELM, "template", release, str(CHART), "--namespace", namespace],
                         check=True, capture_output=True, text=True, timeout=120).stdout
    return tuple(d for d in yaml.safe_load_all(out) if d)


def object_names(install: Install) -> dict[str, set[str]]:
    """kind -> names a command may use against this install (pods and PVCs as patterns)."""
    manifests = rendered(install.release, install.namespace)
    names = {k: set() for k in set(KINDS.values())}
    for d in manifests:
        if d["kind"] in names and "helm.sh/hook" not in (d["metadata"].get("annotations") or {}):
            names[d["kind"]].add(d["metadata"]["name"])
    for sts in [d for d in manifests if d["kind"] == "StatefulSet"]:
        base = sts["metadata"]["name"]
        names["Pod"].add(rf"{re.escape(base)}-(\d+|N)")
        for claim in sts["spec"].get("volumeClaimTemplates", []):
            names["PersistentVolumeClaim"].add(rf"{re.escape(claim['metadata']['name'])}-{re.escape(base)}-(\d+|N)")
    return names


def exists(install: Install, kind: str, name: str) -> bool:
    return any(re.fullmatch(p if kind in ("Pod", "PersistentVolumeClaim") else re.escape(p), name)
               for p in object_names(install)[kind])


def named_objects(argv: list[str]) -> list[tuple[str, str]]:
    """(kind, name) pairs a kubectl call names: TYPE/NAME, `TYPE NAME...`, or the pod of exec."""
    args = positionals(argv, KUBECTL_VALUE_FLAGS)
    if "--" in argv:
        cut = argv.index("--")
        args = positionals(argv[:cut], KUBECTL_VALUE_FLAGS)
    if not args:
        return []
    sub, rest = args[0], args[1:]
    if sub == "rollout" and rest:
        rest = rest[1:]
    pairs = []
    for word in rest:
        kind, slash, name = word.partition("/")
        if slash and kind.lower() in KINDS:
            pairs.append((KINDS[kind.lower()], name))
    if sub in POD_COMMANDS and rest and "/" not in rest[0]:
        pairs.append(("Pod", rest[0]))
    elif rest and "/" not in rest[0] and rest[0].lower() in KINDS and "," not in rest[0]:
        pairs += [(KINDS[rest[0].lower()], n) for n in rest[1:] if "/" not in n]
    return pairs


def touches_namespace(argv: list[str]) -> bool:
    """Whether a kubectl call acts on namespaced objects (so it needs --namespace)."""
    if docs.flag(argv, "-k", "--kustomize"):
        return False  # the kustomization sets the namespace
    args = positionals(argv, KUBECTL_VALUE_FLAGS)
    if not args or args[0] in {"kustomize", "version", "config", "cluster-info", "explain"}:
        return False
    if args[0] in POD_COMMANDS or named_objects(argv):
        return True
    types = {t.split("/")[0].lower() for a in args[1:2] for t in a.split(",")}
    return bool(types & (set(KINDS) | OTHER_NAMESPACED)) or args[0] in {"apply", "create"} and bool(docs.flag(argv, "-f"))


def set_keys(argv: list[str]) -> list[str]:
    keys = []
    for i, word in enumerate(argv):
        if word in ("--set", "--set-string", "--set-json", "--set-file") and i + 1 < len(argv):
            for item in re.split(r"(?<!\\),", argv[i + 1]):
                keys.append(item.split("=", 1)[0])
    return keys


def resolve(node: dict) -> dict:
    """A schema node with its `$ref` (to #/definitions/...) followed."""
    while "$ref" in node:
        target = SCHEMA
        for part in node["$ref"].lstrip("#/").split("/"):
            target = target[part]
        node = target
    return node


def in_schema(key: str) -> bool:
    node = SCHEMA
    for part in re.findall(r"[^.\[\]]+|\[\d+\]", key):
        node = resolve(node)
        if part.startswith("["):
            node = node.get("items", {})
            continue
        props = node.get("properties")
        if props is None:
            return node.get("additionalProperties") not in (False, None) or node.get("type") == "object" \
                and "additionalProperties" not in node
        if part not in props:
            return False
        node = props[part]
    return True


def render_problem(argv: list[str], where: str) -> str | None:
    """Why a helm install/upgrade/template line does not render, or None when it does."""
    words = list(argv)
    for placeholder, value in PLACEHOLDERS.items():
        words = [w.replace(placeholder, value) for w in words]
    pos = positionals(words, HELM_VALUE_FLAGS)
    if len(pos) < 3:
        return f"{where}: no release and chart"
    release, chart = pos[1], pos[2]
    if chart.startswith("oci://"):
        chart = str(CHART)  # a released chart is this chart
    cmd = [HELM, "template", release, str(ROOT / chart) if not chart.startswith("/") else chart]
    i = 0
    while i < len(words):
        w = words[i]
        if w in ("-n", "--namespace", "--set", "--set-string", "--set-json", "-f", "--values") and i + 1 < len(words):
            value = words[i + 1]
            if w in ("-f", "--values") and value != "-":
                value = str(ROOT / value)
            cmd += [w, value]
            i += 2
            continue
        i += 1
    bad = [w for w in cmd if is_placeholder(w)]
    if bad:
        return f"{where}: placeholders the test cannot fill: {bad}"
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    if done.returncode != 0:
        return f"{where}: does not render: {done.stderr.strip()[:400]}"
    return None


def check_page(page: Page, render: bool = True) -> list[str]:
    """Every rule, over one page's commands in order; returns the problems found."""
    problems, install = [], Install()
    for cmd in page.commands:
        where = cmd.where()
        for argv in docs.invocations(cmd, "helm"):
            sub = argv[1] if len(argv) > 1 else ""
            if sub in ("install", "upgrade", "template"):
                pos = positionals(argv, HELM_VALUE_FLAGS)
                ns = docs.flag(argv, "-n", "--namespace")
                if sub != "template" and ns is None:
                    problems.append(f"{where}: helm {sub} without --namespace")
                if len(pos) >= 2 and not is_placeholder(pos[1]):
                    install = Install(pos[1], ns or install.namespace)
                for key in set_keys(argv):
                    if not in_schema(key):
                        problems.append(f"{where}: --set {key} is not in values.schema.json")
                if render and (p := render_problem(argv, where)):
                    problems.append(p)
            elif sub in ("test", "uninstall", "status", "get", "history", "rollback"):
                pos = positionals(argv, HELM_VALUE_FLAGS)
                release = pos[2] if sub == "get" and len(pos) > 2 else pos[1] if len(pos) > 1 else None
                if release and not is_placeholder(release) and release != install.release:
                    problems.append(f"{where}: release {release}, but the install is {install.release}")
                if docs.flag(argv, "-n", "--namespace") != install.namespace:
                    problems.append(f"{where}: helm {sub} needs --namespace {install.namespace}")
        for argv in docs.invocations(cmd, "kubectl"):
            ns = docs.flag(argv, "-n", "--namespace")
            if ns in FOREIGN_NAMESPACES:
                continue
            if touches_namespace(argv) and ns != install.namespace:
                problems.append(f"{where}: needs --namespace {install.namespace}"
                                + (f" (has {ns})" if ns else ""))
            for kind, name in named_objects(argv):
                if not is_placeholder(name) and not exists(install, kind, name):
                    problems.append(f"{where}: no {kind} {name} in the release {install.release} "
                                    f"in {install.namespace}")
        for word in re.findall(r"[^\s'\"=]+", cmd.text):
            if REPO_PATH.match(word) and not is_placeholder(word):
                if not (ROOT / word.rstrip(".,;:")).exists():
                    problems.append(f"{where}: {word} does not exist")
    return problems


def link_problems(path, text: str) -> list[str]:
    problems = []
    for target in docs.markdown_links(text):
        if re.match(r"^[a-z]+:", target) or target.startswith("#"):
            continue
        file = target.split("#", 1)[0]
        if file and not (path.parent / file).exists():
            problems.append(f"{path.relative_to(ROOT)}: the link {target} leads nowhere")
    return problems


def pages() -> list[Page]:
    out = []
    for path in docs.doc_files(ROOT):
        text = path.read_text()
        out.append(Page(str(path.relative_to(ROOT)), docs.shell_commands(text, str(path.relative_to(ROOT))), text))
    return out


NOTES_SCENARIOS = ["default", "persistence-off", "ondelete", "restore"]


def notes(scenario: str, *extra: str) -> str:
    out = subprocess.run([HELM, "install", RELEASE, str(CHART), "--namespace", NAMESPACE,
                          "--dry-run=client", "-f", str(CHART / "ci" / f"{scenario}-values.yaml"),
                          *extra], check=True, capture_output=True, text=True, timeout=120).stdout
    assert "NOTES:" in out, "helm printed no notes"
    return out.split("NOTES:", 1)[1]


@pytest.mark.parametrize("page", pages(), ids=lambda p: p.name)
def test_every_command_of_a_page_runs_against_its_install(page):
    assert check_page(page) == []


def test_the_parser_sees_the_quick_starts_commands():
    readme = next(p for p in pages() if p.name == "README.md")
    assert len([c for c in readme.commands if "kubectl" in c.text]) >= 10, readme.commands


@pytest.mark.parametrize("page", pages(), ids=lambda p: p.name)
def test_every_link_and_fence_of_a_page_is_sound(page):
    path = ROOT / page.name
    untyped = [b.line for b in docs.fenced_blocks(page.text, page.name) if not b.language]
    assert untyped == [], f"{page.name}: fenced blocks without a language at lines {untyped}"
    assert link_problems(path, page.text) == []


@pytest.mark.parametrize("extra", [[], ["--set", "service.type=NodePort"],
                                   ["--set", "diagnosticMode.enabled=true"],
                                   ["--set", "faultInjection.enabled=true"]],
                         ids=["plain", "nodeport", "diagnostic", "faults"])
@pytest.mark.parametrize("scenario", NOTES_SCENARIOS)
def test_the_notes_helm_prints_run_against_the_install(scenario, extra):
    page = Page(f"NOTES.txt ({scenario} {' '.join(extra)})", docs.notes_commands(notes(scenario, *extra)))
    assert any("kubectl" in c.text for c in page.commands), "no kubectl command found in the notes"
    assert check_page(page) == []


# --- the quick start's own promises --------------------------------------------------------------

def test_the_kind_cluster_publishes_the_node_port_the_quick_start_installs():
    from pyhelpers import image_reference
    readme = (ROOT / "README.md").read_text()
    install = image_reference.helm_install_command(readme)
    sets = dict(item.split("=", 1) for i, w in enumerate(install) if w == "--set"
                for item in [install[i + 1]])
    assert sets.get("service.type") == "NodePort"
    config = yaml.safe_load((ROOT / "docs" / "kind-cluster.yaml").read_text())
    ports = [m["containerPort"] for n in config["nodes"] for m in n.get("extraPortMappings", [])]
    assert int(sets["service.nodePort"]) in ports
    assert f"URL=http://127.0.0.1:{sets['service.nodePort']}" in readme


def test_the_walkthroughs_statefulset_excerpt_is_what_the_chart_renders():
    text = (ROOT / "docs" / "walkthrough.md").read_text()
    excerpts = [yaml.safe_load("\n".join(b.lines)) for b in docs.fenced_blocks(text) if b.language == "yaml"]
    assert excerpts, "the walkthrough shows no rendered YAML"
    manifests = rendered(RELEASE, NAMESPACE)
    for excerpt in excerpts:
        same = [d for d in manifests if d["kind"] == excerpt["kind"]
                and d["metadata"]["name"] == excerpt["metadata"]["name"]]
        assert same, f"no {excerpt['kind']} {excerpt['metadata']['name']} is rendered"
        assert subset_problems(excerpt, same[0]) == []


def subset_problems(part, whole, path="") -> list[str]:
    """Where `part` (a YAML excerpt) is not contained in `whole` (the rendered object)."""
    if isinstance(part, dict):
        if not isinstance(whole, dict):
            return [f"{path}: not a mapping"]
        return [p for k, v in part.items()
                for p in ([f"{path}.{k}: missing"] if k not in whole else subset_problems(v, whole[k], f"{path}.{k}"))]
    if isinstance(part, list):
        if not isinstance(whole, list) or len(part) > len(whole):
            return [f"{path}: not a list as long"]
        return [p for i, v in enumerate(part) for p in subset_problems(v, whole[i], f"{path}[{i}]")]
    return [] if part == whole else [f"{path}: {part!r} is {whole!r} in the render"]


def test_the_minimum_kubernetes_version_is_stated_as_the_chart_states_it():
    chart = yaml.safe_load((CHART / "Chart.yaml").read_text())
    minimum = re.fullmatch(r">=(\d+\.\d+)\.0-0", chart["kubeVersion"]).group(1)
    mentions = []
    for path in docs.doc_files(ROOT):
        mentions += [(path.name, m) for m in re.findall(r"Kubernetes (\d+\.\d+) or (?:newer|later)", path.read_text())]
    assert mentions, "no page states the minimum Kubernetes version"
    assert all(m == minimum for _, m in mentions), mentions


# --- must-fail: each rule catches the mistake it exists for --------------------------------------

def page_of(markdown: str) -> Page:
    return Page("example.md", docs.shell_commands(markdown, "example.md"), markdown)


GOOD = """
```sh
helm install moscow-time helm/moscow-time --namespace moscow-time --create-namespace
kubectl --namespace moscow-time exec moscow-time-2 -- cat visits
kubectl -n moscow-time get pvc data-moscow-time-0
for pod in moscow-time-0 moscow-time-1; do echo "$(kubectl -n moscow-time exec "$pod" -- cat visits)"; done
```
"""


def test_a_correct_page_passes():
    assert check_page(page_of(GOOD)) == []


@pytest.mark.parametrize("mistake, expected", [
    ("kubectl exec moscow-time-0 -- cat visits", "needs --namespace moscow-time"),
    ('echo "$(kubectl exec "$pod" -- cat visits)"', "needs --namespace moscow-time"),
    ("kubectl -n default get pods", "needs --namespace moscow-time (has default)"),
    ("kubectl -n moscow-time exec moscow-time-moscow-time-0 -- cat visits", "no Pod moscow-time-moscow-time-0"),
    ("kubectl -n moscow-time delete pvc data-moscow-time", "no PersistentVolumeClaim data-moscow-time "),
    ("kubectl -n moscow-time rollout status statefulset/moscowtime", "no StatefulSet moscowtime"),
    ("kubectl -n moscow-time port-forward svc/moscow-time-http 8080:80", "no Service moscow-time-http"),
    ("helm upgrade moscow-time helm/moscow-time -n moscow-time --set replicas=5", "--set replicas is not in"),
    ("helm upgrade moscow-time helm/moscow-time -n moscow-time --set config.shutdown_delay_secs=40",
     "does not render"),
    ("helm install moscow-time helm/moscow-time", "helm install without --namespace"),
    ("helm test moscow-time", "helm test needs --namespace moscow-time"),
    ("scripts/no-such-script --all", "scripts/no-such-script does not exist"),
    ("kubectl apply -f k8s/missing.yaml", "k8s/missing.yaml does not exist"),
])
def test_a_page_with_one_mistake_fails(mistake, expected):
    problems = check_page(page_of(GOOD.rstrip()[: -len("```")] + f"{mistake}\n```\n"))
    assert any(expected in p for p in problems), problems


def test_a_later_install_moves_the_names_and_namespace_it_is_checked_against():
    page = page_of("""
```sh
helm install demo helm/moscow-time --namespace lab --create-namespace
kubectl --namespace lab exec demo-moscow-time-1 -- cat visits
kubectl --namespace lab exec moscow-time-1 -- cat visits
kubectl --namespace moscow-time get pods
```
""")
    problems = check_page(page)
    assert len(problems) == 2, problems
    assert "no Pod moscow-time-1 in the release demo in lab" in problems[0]
    assert "needs --namespace lab (has moscow-time)" in problems[1]


def test_an_untyped_block_and_a_dead_link_are_found(tmp_path):
    text = "See [the runbook](docs/nope.md).\n\n```\nkubectl get pods\n```\n"
    assert docs.fenced_blocks(text)[0].language == ""
    assert link_problems(ROOT / "README.md", text) == ["README.md: the link docs/nope.md leads nowhere"]


def test_output_lines_of_a_console_block_are_not_commands():
    text = "```console\n$ kubectl -n moscow-time exec moscow-time-0 -- cat visits\nkubectl is not run here\n```\n"
    cmds = docs.shell_commands(text)
    assert [c.text for c in cmds] == ["kubectl -n moscow-time exec moscow-time-0 -- cat visits"]


def test_the_readme_reaches_a_cluster_within_its_first_60_lines():
    lines = (ROOT / "README.md").read_text().splitlines()
    first = next(n for n, line in enumerate(lines, start=1)
                 if re.match(r"(minikube image load|kind load|helm install|kubectl apply)", line))
    assert first <= 60, f"the first command that deploys to a cluster is on line {first}"
    headings = [line for line in lines if line.startswith("## ")]
    order = ["## What you need", "## Run it on your machine", "## Put it on a cluster",
             "## What you see, and why", "## Learn more"]
    assert [h for h in headings if h in order] == order, headings


def test_a_quote_that_never_closes_is_reported_not_swallowed():
    text = "```sh\nhelm install moscow-time x --set image.digest=sha256:<the release's digest>\nkubectl get pods\n```\n"
    with pytest.raises(AssertionError, match="never closed"):
        docs.shell_commands(text, "example.md")
