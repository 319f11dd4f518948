"""`make manifests-check`: every shipped manifest as a cluster would take it.

1. `kubectl kustomize` on every kustomization under manifests/.
2. Every rendered built-in object against Kubernetes 1.33's schemas,
   strictly (unknown fields refused), with kubernetes-validate.
3. Every custom resource against its CRD's openAPIV3Schema (unknown fields
   refused, CEL rules evaluated where the CEL library can): the Istio
   1.30.3, Gateway API v1.6.1 and Argo Rollouts v1.9.1 CRDs kept in
   tests/data/crds, and the project's own CRD.
4. The project's CRD against Kubernetes' structural-schema rules, with
   every integer bounded and every format one Kubernetes knows.
5. The Prometheus scrape configuration with promtool.

Prints one line per kustomization and a summary; exits 1 on any problem.
"""

from __future__ import annotations

import argparse
import copy
import pathlib
import shutil
import subprocess
import sys
import tempfile
from concurrent.futures import ThreadPoolExecutor

import yaml

import openapi

ROOT = pathlib.Path(__file__).resolve().parents[2]
KUBERNETES_VERSION = "1.33.0"
CRD_DIRS = [ROOT / "tests/data/crds"]
PROJECT_CRD = ROOT / "manifests/kubernetes/crd/crd.yaml"
PROMETHEUS_CONFIG = ROOT / "manifests/prometheus/scrape-configs.yaml"

# Problems known to be there, each with why; the check fails when one of
# them disappears (so the entry is removed) as much as when a new one
# appears. Matched by prefix.
KNOWN_PROBLEMS: dict[str, str] = {}


def install_hint(tool: str) -> str:
    return (f"manifests-check: {tool} not found; run `make setup` (installs the Python tools "
            f"into .tools/manifests-venv; kubectl and promtool come from the machine: "
            f"kubectl 1.32 with kustomize v5.5, Debian package prometheus)")


def kustomizations() -> list[pathlib.Path]:
    return sorted(p.parent for p in (ROOT / "manifests").rglob("kustomization.yaml"))


def build(directory: pathlib.Path) -> tuple[pathlib.Path, list[dict] | str]:
    result = subprocess.run(["kubectl", "kustomize", str(directory)],
                            capture_output=True, text=True, check=False)
    if result.returncode != 0:
        return directory, result.stderr.strip()
    return directory, [d for d in yaml.safe_load_all(result.stdout) if d]


def load_crds() -> dict[tuple[str, str], dict]:
    """CRDs by (group, kind)."""
    crds = {}
    files = [PROJECT_CRD] + [f for d in CRD_DIRS for f in sorted(d.rglob("*.yaml"))]
    for file in files:
        for doc in yaml.safe_load_all(file.read_text()):
            if doc and doc.get("kind") == "CustomResourceDefinition":
                spec = doc["spec"]
                crds[(spec["group"], spec["names"]["kind"])] = doc
    return crds


def describe(obj: dict) -> str:
    meta = obj.get("metadata") or {}
    name = meta.get("name", "?")
    if meta.get("namespace"):
        name = f"{meta['namespace']}/{name}"
    return f"{obj.get('kind')} {name}"


def check_custom_resource(obj: dict, crd: dict, report: openapi.Report, rules: openapi.RuleCache) -> None:
    version = obj["apiVersion"].split("/", 1)[1]
    served = {v["name"]: v for v in crd["spec"]["versions"]}
    if version not in served or not served[version].get("served", True):
        report.problems.append(f"version {version} is not served by {crd['metadata']['name']}")
        return
    schema = served[version]["schema"]["openAPIV3Schema"]
    namespaced = crd["spec"]["scope"] == "Namespaced"
    meta = obj.get("metadata") or {}
    if not meta.get("name"):
        report.problems.append("metadata.name is missing")
    if namespaced != bool(meta.get("namespace")):
        report.problems.append("metadata.namespace " + ("missing" if namespaced else "set on a cluster-scoped kind"))
    body = {k: v for k, v in obj.items() if k not in ("apiVersion", "kind", "metadata")}
    root = {k: v for k, v in schema.items() if k != "required"}
    root["properties"] = {k: v for k, v in schema.get("properties", {}).items()
                          if k not in ("apiVersion", "kind", "metadata")}
    for name in schema.get("required", []):
        if name not in obj:
            report.problems.append(f".{name} is required")
    body = openapi.apply_defaults(copy.deepcopy(body), root)
    openapi.validate(body, root, "", report, rules)


def check_builtin(obj: dict, validator) -> list[str]:
    try:
        validator.validate(obj, KUBERNETES_VERSION, strict=True)
    except validator.SchemaNotFoundError:
        return [f"no Kubernetes {KUBERNETES_VERSION} schema and no CRD for {obj.get('apiVersion')} {obj.get('kind')}"]
    except validator.ValidationError as error:
        where = ".".join(str(p) for p in error.path)
        return [f".{where}: {error.message}"]
    return []


def check_project_crd() -> list[str]:
    crd = yaml.safe_load(PROJECT_CRD.read_text())
    problems = []
    for version in crd["spec"]["versions"]:
        schema = version["schema"]["openAPIV3Schema"]
        problems += [f"{PROJECT_CRD.name} {version['name']}: {p}"
                     for p in openapi.structural_problems(schema, bounded_integers=True)]
    return problems


def check_prometheus() -> list[str]:
    """promtool on the scrape configuration. Debian's promtool is built
    without Kubernetes service discovery, so the jobs' kubernetes_sd_configs
    are replaced by a static target; everything else (relabelling rules,
    paths, intervals) is checked as Prometheus reads it."""
    if shutil.which("promtool") is None:
        return [install_hint("promtool")]
    config = yaml.safe_load(PROMETHEUS_CONFIG.read_text())
    for job in config["scrape_configs"]:
        if job.pop("kubernetes_sd_configs", None) is not None:
            job["static_configs"] = [{"targets": ["127.0.0.1:15090"]}]
    with tempfile.NamedTemporaryFile("w", suffix=".yaml") as file:
        yaml.safe_dump(config, file)
        file.flush()
        result = subprocess.run(["promtool", "check", "config", file.name],
                                capture_output=True, text=True, check=False)
    if result.returncode != 0:
        return [f"{PROMETHEUS_CONFIG.relative_to(ROOT)}: {result.stdout}{result.stderr}".strip()]
    return []


def main() -> int:
    argparse.ArgumentParser(description=__doc__.splitlines()[0]).parse_args()
    if shutil.which("kubectl") is None:
        print(install_hint("kubectl"), file=sys.stderr)
        return 1
    try:
        import kubernetes_validate as validator
        import kubernetes_validate.utils  # noqa: F401  (its error types)
    except ImportError:
        print(install_hint("kubernetes-validate"), file=sys.stderr)
        return 1
    validator.SchemaNotFoundError = validator.utils.SchemaNotFoundError
    validator.ValidationError = validator.utils.ValidationError

    crds = load_crds()
    rules = openapi.RuleCache()
    problems: list[str] = []
    seen_known: set[str] = set()
    evaluated = 0
    not_evaluated: dict[str, str] = {}
    checked: set[str] = set()

    with ThreadPoolExecutor(max_workers=4) as pool:
        builds = list(pool.map(build, kustomizations()))
    for directory, result in builds:
        where = directory.relative_to(ROOT)
        if isinstance(result, str):
            problems.append(f"{where}: kubectl kustomize failed: {result}")
            print(f"FAIL {where}: kubectl kustomize failed")
            continue
        before = len(problems)
        for obj in result:
            group = obj["apiVersion"].split("/")[0] if "/" in obj["apiVersion"] else ""
            crd = crds.get((group, obj.get("kind")))
            key = f"{describe(obj)}"
            if crd is None:
                found = check_builtin(obj, validator)
            else:
                report = openapi.Report()
                check_custom_resource(obj, crd, report, rules)
                found = report.problems
                if key not in checked:
                    evaluated += report.rules_evaluated
                not_evaluated.update(report.rules_not_evaluated)
            checked.add(key)
            for problem in found:
                line = f"{key}: {problem}"
                known = next((k for k in KNOWN_PROBLEMS if line.startswith(k)), None)
                if known is not None:
                    seen_known.add(known)
                else:
                    problems.append(f"{where}: {line}")
        print(f"{'ok  ' if len(problems) == before else 'FAIL'} {where}: {len(result)} objects")

    for line in sorted(set(KNOWN_PROBLEMS) - seen_known):
        problems.append(f"known problem no longer found (remove it from KNOWN_PROBLEMS): {line}")
    problems += check_project_crd()
    problems += check_prometheus()

    for problem in problems:
        print(f"  problem: {problem}")
    for line in sorted(seen_known):
        print(f"  known: {line} ({KNOWN_PROBLEMS[line]})")
    for rule, needs in sorted(not_evaluated.items()):
        print(f"  CEL rule not evaluated (needs {needs}, a Kubernetes library cel-expr-python lacks): {rule}")
    print(f"manifests-check: {len(builds)} kustomizations, {len(checked)} objects, "
          f"{evaluated} CEL rule evaluations, {len(not_evaluated)} rules not evaluable here, "
          f"{len(problems)} problems")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
