"""The shipped ValidatingAdmissionPolicy, evaluated with CEL against example
admission requests: the controller's service account may change only the
split of a WasmPlugin or TrafficExtension; nobody else is restricted.

The harness follows the API server: the policy applies when a resource
rule matches and every matchCondition is true; variables are evaluated
lazily (here: a variable that fails is left out, so an expression that
reaches it fails, and one that short-circuits past it does not); a
validation that is false or fails to evaluate denies the request
(failurePolicy Fail). Objects are plain maps, as the API server hands them
to CEL.
"""

from __future__ import annotations

import copy
import pathlib
import unittest

import yaml

import cel_env

ROOT = pathlib.Path(__file__).resolve().parents[2]
POLICY = ROOT / "manifests/kubernetes/controller/admission-policy.yaml"
CONTROLLER = ROOT / "manifests/kubernetes/controller"


def load_policy() -> tuple[dict, dict]:
    docs = [d for d in yaml.safe_load_all(POLICY.read_text()) if d]
    policy = next(d for d in docs if d["kind"] == "ValidatingAdmissionPolicy")
    binding = next(d for d in docs if d["kind"] == "ValidatingAdmissionPolicyBinding")
    return policy, binding


def controller_username() -> str:
    account = yaml.safe_load((CONTROLLER / "service-account.yaml").read_text())
    meta = account["metadata"]
    return f"system:serviceaccount:{meta['namespace']}:{meta['name']}"


class Policy:
    """The policy's expressions, compiled once."""

    def __init__(self, spec: dict) -> None:
        self.spec = spec
        env = cel_env.environment(["object", "oldObject", "request", "params", "namespaceObject", "variables"])
        compile_ = lambda text: cel_env.compile_expression(env, text)  # noqa: E731
        self.conditions = [compile_(c["expression"]) for c in spec.get("matchConditions", [])]
        self.variables = [(v["name"], compile_(v["expression"])) for v in spec.get("variables", [])]
        self.validations = [(compile_(v["expression"]), v["message"]) for v in spec["validations"]]

    def matches(self, request: dict) -> bool:
        resource = request["resource"]
        name = resource["resource"] + (f"/{request['subResource']}" if request.get("subResource") else "")
        for rule in self.spec["matchConstraints"]["resourceRules"]:
            if (resource["group"] in rule["apiGroups"] and name in rule["resources"]
                    and request["operation"] in rule["operations"]):
                return True
        return False

    def admit(self, request: dict, old: dict | None, new: dict | None) -> list[str]:
        """The messages of the validations that deny; empty when allowed."""
        if not self.matches(request):
            return []
        data = {"request": request, "object": new, "oldObject": old, "params": None, "namespaceObject": None}
        for condition in self.conditions:
            if cel_env.evaluate(condition, {**data, "variables": {}}) is not True:
                return []
        variables = {}
        for name, program in self.variables:
            try:
                variables[name] = cel_env.evaluate(program, {**data, "variables": variables})
            except cel_env.EvaluationError:
                pass  # evaluated lazily by the API server: fails only where used
        denied = []
        for program, message in self.validations:
            try:
                allowed = cel_env.evaluate(program, {**data, "variables": variables})
            except cel_env.EvaluationError as error:
                allowed = False
                message = f"{message} (evaluation error: {error})"
            if allowed is not True:
                denied.append(" ".join(message.split()))
        return denied


def wasm_plugin() -> dict:
    return {
        "apiVersion": "extensions.istio.io/v1alpha1",
        "kind": "WasmPlugin",
        "metadata": {
            "name": "canary", "namespace": "istio-system", "resourceVersion": "100", "generation": 3,
            "labels": {"app.kubernetes.io/part-of": "shop"},
            "managedFields": [{"manager": "kubectl", "operation": "Apply"}],
        },
        "spec": {
            "selector": {"matchLabels": {"istio": "ingressgateway"}},
            "url": "oci://registry.example.com/canary/canary-filter:0.1.0",
            "sha256": "c66c2f9630118c80bd168fb9dc9eed3b019420d28ce25208f472dc1e259b5427",
            "imagePullPolicy": "IfNotPresent",
            "failStrategy": "FAIL_OPEN",
            "phase": "STATS",
            "priority": 10,
            "pluginConfig": {
                "routing_header": "x-canary-version",
                "routes": [{"name": "web", "match": {"hosts": ["web.example.com"]},
                            "stable": "web-v1", "canary": "web-v2", "canary_weight": 0}],
                "splits": {"web": {"stable": "web-v1", "canary": "web-v2", "canary_weight": 10,
                                   "override_enabled": False, "generation": 1733100000000}},
            },
        },
    }


def traffic_extension() -> dict:
    plugin = wasm_plugin()
    spec = plugin["spec"]
    return {
        "apiVersion": "extensions.istio.io/v1alpha1",
        "kind": "TrafficExtension",
        "metadata": plugin["metadata"],
        "spec": {
            "selector": spec["selector"], "phase": "STATS", "priority": 10,
            "match": [{"mode": "CLIENT"}],
            "wasm": {k: spec[k] for k in ("url", "sha256", "imagePullPolicy", "failStrategy", "pluginConfig")},
        },
    }


def request(user: str, operation: str = "UPDATE", resource: str = "wasmplugins", sub: str = "") -> dict:
    req = {
        "uid": "705ab4f5-6393-11e8-b7cc-42010a800002",
        "kind": {"group": "extensions.istio.io", "version": "v1alpha1",
                 "kind": "WasmPlugin" if resource == "wasmplugins" else "TrafficExtension"},
        "resource": {"group": "extensions.istio.io", "version": "v1alpha1", "resource": resource},
        "name": "canary", "namespace": "istio-system", "operation": operation,
        "userInfo": {"username": user, "groups": ["system:serviceaccounts", "system:authenticated"]},
    }
    if sub:
        req["subResource"] = sub
    return req


def after_apply(old: dict, change) -> dict:
    """`old` changed by `change`, with what the API server itself changes
    on every write (resourceVersion, generation, managedFields)."""
    new = copy.deepcopy(old)
    change(new)
    new["metadata"]["resourceVersion"] = "101"
    new["metadata"]["generation"] += 1
    new["metadata"]["managedFields"] = old["metadata"]["managedFields"] + [
        {"manager": "canary-controller", "operation": "Apply"}]
    return new


def config(obj: dict) -> dict:
    spec = obj["spec"]
    return spec["wasm"]["pluginConfig"] if "wasm" in spec else spec["pluginConfig"]


class AdmissionPolicyTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls) -> None:
        policy, cls.binding = load_policy()
        cls.policy = Policy(policy["spec"])
        cls.controller = controller_username()

    def assert_allowed(self, req, old, new):
        self.assertEqual(self.policy.admit(req, old, new), [])

    def assert_denied(self, req, old, new, containing: str):
        denied = self.policy.admit(req, old, new)
        self.assertTrue(denied, "allowed, expected a denial")
        self.assertTrue(any(containing in m for m in denied), denied)

    def test_names_the_controllers_service_account_and_denies(self):
        self.assertIn(f"'{self.controller}'", self.policy.spec["matchConditions"][0]["expression"])
        self.assertEqual(self.binding["spec"]["validationActions"], ["Deny"])
        self.assertEqual(self.binding["spec"]["policyName"], load_policy()[0]["metadata"]["name"])
        self.assertEqual(self.policy.spec["failurePolicy"], "Fail")

    def test_the_controller_may_change_the_split(self):
        for make, resource in ((wasm_plugin, "wasmplugins"), (traffic_extension, "trafficextensions")):
            old = make()

            def raise_weight(obj):
                config(obj)["splits"]["web"]["canary_weight"] = 25
                config(obj)["splits"]["web"]["generation"] += 1
            self.assert_allowed(request(self.controller, resource=resource), old, after_apply(old, raise_weight))

            def add_route_split(obj):
                config(obj)["splits"]["api"] = {"stable": "api-v1", "canary_weight": 0, "generation": 1}
            self.assert_allowed(request(self.controller, resource=resource), old, after_apply(old, add_route_split))

            def drop_splits(obj):
                del config(obj)["splits"]
            self.assert_allowed(request(self.controller, resource=resource), old, after_apply(old, drop_splits))

    def test_the_first_split_on_a_plugin_git_wrote_without_one(self):
        old = wasm_plugin()
        del old["spec"]["pluginConfig"]["splits"]
        new = after_apply(old, lambda o: o["spec"]["pluginConfig"].update(
            splits={"web": {"stable": "web-v1", "canary": "web-v2", "canary_weight": 10}}))
        self.assert_allowed(request(self.controller), old, new)

    def test_the_controller_may_not_change_the_module_or_where_it_runs(self):
        old = wasm_plugin()
        changes = {
            "url": lambda o: o["spec"].update(url="oci://evil.example.com/miner:1"),
            "sha256": lambda o: o["spec"].update(sha256="0" * 64),
            "selector": lambda o: o["spec"].update(selector={"matchLabels": {"app": "payments"}}),
            "targetRefs added": lambda o: o["spec"].update(targetRefs=[{"kind": "Gateway", "name": "x"}]),
            "failStrategy": lambda o: o["spec"].update(failStrategy="FAIL_CLOSE"),
            "vmConfig added": lambda o: o["spec"].update(vmConfig={"env": [{"name": "A", "value": "b"}]}),
            "priority removed": lambda o: o["spec"].pop("priority"),
        }
        for what, change in changes.items():
            with self.subTest(what):
                self.assert_denied(request(self.controller), old, after_apply(old, change), "module")

    def test_the_controller_may_not_change_the_base_configuration(self):
        old = wasm_plugin()
        changes = {
            "a route's weight": lambda o: o["spec"]["pluginConfig"]["routes"][0].update(canary_weight=100),
            "a route added": lambda o: o["spec"]["pluginConfig"]["routes"].append({"name": "x", "stable": "v1"}),
            "routing_header": lambda o: o["spec"]["pluginConfig"].update(routing_header="x-other"),
            "a key added": lambda o: o["spec"]["pluginConfig"].update(response_header="x-served-by"),
            "routes removed": lambda o: o["spec"]["pluginConfig"].pop("routes"),
        }
        for what, change in changes.items():
            with self.subTest(what):
                self.assert_denied(request(self.controller), old, after_apply(old, change), "pluginConfig.splits")

    def test_the_controller_may_not_change_a_traffic_extension_outside_its_split(self):
        old = traffic_extension()
        changes = {
            "wasm.url": (lambda o: o["spec"]["wasm"].update(url="oci://evil.example.com/x:1"), "module"),
            "selector": (lambda o: o["spec"].update(selector={"matchLabels": {"app": "x"}}), "outside spec.wasm"),
            "match": (lambda o: o["spec"].update(match=[{"mode": "SERVER"}]), "outside spec.wasm"),
            "routes": (lambda o: o["spec"]["wasm"]["pluginConfig"]["routes"].clear(), "pluginConfig.splits"),
        }
        for what, (change, message) in changes.items():
            with self.subTest(what):
                self.assert_denied(request(self.controller, resource="trafficextensions"), old,
                                   after_apply(old, change), message)

    def test_the_controller_may_not_relabel_create_delete_or_write_status(self):
        old = wasm_plugin()
        relabel = after_apply(old, lambda o: o["metadata"]["labels"].update(istio="ingressgateway"))
        self.assert_denied(request(self.controller), old, relabel, "labels")
        annotate = after_apply(old, lambda o: o["metadata"].update(annotations={"a": "b"}))
        self.assert_denied(request(self.controller), old, annotate, "labels")
        self.assert_denied(request(self.controller, "CREATE"), None, old, "may not create")
        self.assert_denied(request(self.controller, "DELETE"), old, None, "may not create")
        status = after_apply(old, lambda o: o.update(status={"conditions": []}))
        self.assert_denied(request(self.controller, sub="status"), old, status, "write its status")

    def test_nobody_else_is_restricted(self):
        old = wasm_plugin()
        new = after_apply(old, lambda o: o["spec"].update(url="oci://registry.example.com/canary/canary-filter:0.2.0"))
        for user in ("system:serviceaccount:argocd:argocd-application-controller",
                     "system:serviceaccount:flux-system:kustomize-controller",
                     "system:serviceaccount:canary-system:canary-controller-extra",
                     "system:serviceaccount:shop:canary-controller",
                     "alice@example.com"):
            with self.subTest(user):
                self.assert_allowed(request(user), old, new)
                self.assert_allowed(request(user, "CREATE"), None, old)
                self.assert_allowed(request(user, "DELETE"), old, None)

    def test_other_resources_are_not_matched(self):
        req = request(self.controller)
        req["resource"] = {"group": "apps", "version": "v1", "resource": "deployments"}
        old = {"metadata": {}, "spec": {"replicas": 1}}
        self.assert_allowed(req, old, {"metadata": {}, "spec": {"replicas": 0}})


if __name__ == "__main__":
    unittest.main()
