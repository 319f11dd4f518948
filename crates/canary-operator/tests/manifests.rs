//! The shipped manifests (`manifests/istio`, `manifests/kubernetes`): every
//! YAML parses, every kustomization names files that exist and every file
//! is in one, the apiVersions are real, names and labels agree across
//! objects, the RBAC grants exactly what the code uses, and the example
//! rollout converts into a runnable rollout.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use canary_analysis::SecretKeyRef;
use canary_operator::convert::{rollout_spec, template_keys, TemplateObject};
use canary_operator::permissions::{Scope, ALL};
use canary_operator::resource::{CanaryRollout, TargetKind};
use serde_json::Value;

/// The base of Roles for a namespace where rollouts live.
const ROLLOUT_NAMESPACE: &str = "kubernetes/rollout-namespace";

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../manifests")
}

/// One parsed document and the file it came from.
#[derive(Debug, Clone)]
struct Doc {
    file: PathBuf,
    value: Value,
}

impl Doc {
    fn kind(&self) -> &str {
        self.value["kind"].as_str().unwrap_or_default()
    }

    fn name(&self) -> &str {
        self.value["metadata"]["name"].as_str().unwrap_or_default()
    }

    fn namespace(&self) -> &str {
        self.value["metadata"]["namespace"]
            .as_str()
            .unwrap_or_default()
    }
}

fn yaml_files(dir: &Path) -> Vec<PathBuf> {
    let mut files = Vec::new();
    let mut pending = vec![dir.to_owned()];
    while let Some(dir) = pending.pop() {
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                pending.push(path);
            } else if path.extension().is_some_and(|e| e == "yaml" || e == "yml") {
                files.push(path);
            }
        }
    }
    files.sort();
    files
}

fn parse(file: &Path) -> Vec<Doc> {
    let text = std::fs::read_to_string(file).unwrap();
    serde_yaml::Deserializer::from_str(&text)
        .map(|document| {
            let yaml = serde_yaml::Value::deserialize(document)
                .unwrap_or_else(|e| panic!("{}: {e}", file.display()));
            Doc {
                file: file.to_owned(),
                value: serde_json::to_value(yaml).unwrap(),
            }
        })
        .filter(|doc| !doc.value.is_null())
        .collect()
}

use serde::Deserialize;

/// Every object of the shipped manifests (kustomizations left out).
fn objects() -> Vec<Doc> {
    ["istio", "kubernetes"]
        .iter()
        .flat_map(|dir| yaml_files(&root().join(dir)))
        .flat_map(|file| parse(&file))
        .filter(|doc| doc.kind() != "Kustomization")
        .collect()
}

fn find<'a>(docs: &'a [Doc], kind: &str, namespace: &str, name: &str) -> &'a Doc {
    docs.iter()
        .find(|d| d.kind() == kind && d.namespace() == namespace && d.name() == name)
        .unwrap_or_else(|| panic!("no {kind} {namespace}/{name} in the manifests"))
}

/// The example's Istio ingress Gateway (the Gateway API placement has a
/// Gateway of the same name).
fn istio_gateway(docs: &[Doc]) -> &Doc {
    docs.iter()
        .find(|d| {
            d.kind() == "Gateway"
                && d.value["apiVersion"] == "networking.istio.io/v1"
                && d.namespace() == "shop"
                && d.name() == "web-gateway"
        })
        .expect("the Istio Gateway shop/web-gateway")
}

fn in_dir<'a>(docs: &'a [Doc], dir: &str) -> Vec<&'a Doc> {
    let dir = root().join(dir);
    docs.iter()
        .filter(|d| d.file.parent() == Some(dir.as_path()))
        .collect()
}

#[test]
fn every_document_is_an_object_of_a_real_api() {
    let known: BTreeMap<&str, &str> = [
        ("CustomResourceDefinition", "apiextensions.k8s.io/v1"),
        ("Namespace", "v1"),
        ("ServiceAccount", "v1"),
        ("Service", "v1"),
        ("ConfigMap", "v1"),
        (
            "ValidatingAdmissionPolicy",
            "admissionregistration.k8s.io/v1",
        ),
        (
            "ValidatingAdmissionPolicyBinding",
            "admissionregistration.k8s.io/v1",
        ),
        ("Deployment", "apps/v1"),
        ("ClusterRole", "rbac.authorization.k8s.io/v1"),
        ("ClusterRoleBinding", "rbac.authorization.k8s.io/v1"),
        ("Role", "rbac.authorization.k8s.io/v1"),
        ("RoleBinding", "rbac.authorization.k8s.io/v1"),
        ("Gateway", "networking.istio.io/v1"),
        ("VirtualService", "networking.istio.io/v1"),
        ("DestinationRule", "networking.istio.io/v1"),
        ("EnvoyFilter", "networking.istio.io/v1alpha3"),
        ("WasmPlugin", "extensions.istio.io/v1alpha1"),
        ("TrafficExtension", "extensions.istio.io/v1alpha1"),
        ("HTTPRoute", "gateway.networking.k8s.io/v1"),
        ("AnalysisTemplate", "argoproj.io/v1alpha1"),
        ("CanaryRollout", "canary.dev/v1alpha1"),
    ]
    .into();
    let docs = objects();
    assert!(docs.len() > 30, "only {} objects found", docs.len());
    for doc in &docs {
        let api_version = doc.value["apiVersion"].as_str().unwrap_or_default();
        let expected = match (doc.kind(), api_version) {
            ("Gateway", "gateway.networking.k8s.io/v1") => "gateway.networking.k8s.io/v1",
            (kind, _) => known
                .get(kind)
                .copied()
                .unwrap_or_else(|| panic!("{}: unexpected kind {kind}", doc.file.display())),
        };
        assert_eq!(
            api_version,
            expected,
            "{}: {}",
            doc.file.display(),
            doc.kind()
        );
        assert!(
            !doc.name().is_empty(),
            "{}: {} without a name",
            doc.file.display(),
            doc.kind()
        );
        let cluster_scoped = matches!(
            doc.kind(),
            "CustomResourceDefinition"
                | "Namespace"
                | "ClusterRole"
                | "ClusterRoleBinding"
                | "ValidatingAdmissionPolicy"
                | "ValidatingAdmissionPolicyBinding"
        );
        // The base for rollout namespaces gets its namespace from the
        // kustomization that uses it.
        let namespaced_by_user =
            doc.file.parent() == Some(root().join(ROLLOUT_NAMESPACE).as_path());
        assert_eq!(
            doc.namespace().is_empty(),
            cluster_scoped || namespaced_by_user,
            "{}: {} {} namespace",
            doc.file.display(),
            doc.kind(),
            doc.name()
        );
    }
}

#[test]
fn kustomizations_name_existing_files_and_every_file_is_in_one() {
    let mut listed: BTreeSet<PathBuf> = BTreeSet::new();
    let mut kustomizations = 0;
    for dir in ["istio", "kubernetes"] {
        for file in yaml_files(&root().join(dir)) {
            if file.file_name().is_some_and(|n| n == "kustomization.yaml") {
                kustomizations += 1;
                let base = file.parent().unwrap();
                let docs = parse(&file);
                assert_eq!(docs[0].value["kind"], "Kustomization");
                assert_eq!(
                    docs[0].value["apiVersion"],
                    "kustomize.config.k8s.io/v1beta1"
                );
                let resources = docs[0].value["resources"].as_array();
                for resource in resources.into_iter().flatten() {
                    let path = base.join(resource.as_str().unwrap());
                    if path.is_dir() {
                        assert!(
                            path.join("kustomization.yaml").is_file(),
                            "{}: {} is not a kustomization",
                            file.display(),
                            path.display()
                        );
                    } else {
                        assert!(
                            path.is_file(),
                            "{}: {} is missing",
                            file.display(),
                            path.display()
                        );
                        assert!(
                            listed.insert(path.canonicalize().unwrap()),
                            "{} is listed twice",
                            path.display()
                        );
                    }
                }
            }
        }
    }
    assert_eq!(kustomizations, 12);
    for dir in ["istio", "kubernetes"] {
        for file in yaml_files(&root().join(dir)) {
            if file.file_name().is_some_and(|n| n != "kustomization.yaml") {
                assert!(
                    listed.contains(&file.canonicalize().unwrap()),
                    "{} is in no kustomization",
                    file.display()
                );
            }
        }
    }
}

/// (group, resource, verb) granted by the rules of `role`.
fn granted(role: &Doc) -> BTreeSet<(String, String, String)> {
    let mut out = BTreeSet::new();
    for rule in role.value["rules"].as_array().unwrap() {
        for group in rule["apiGroups"].as_array().unwrap() {
            for resource in rule["resources"].as_array().unwrap() {
                for verb in rule["verbs"].as_array().unwrap() {
                    let key = (
                        group.as_str().unwrap().to_owned(),
                        resource.as_str().unwrap().to_owned(),
                        verb.as_str().unwrap().to_owned(),
                    );
                    assert!(
                        out.insert(key.clone()),
                        "{} grants {key:?} twice",
                        role.name()
                    );
                }
            }
        }
    }
    out
}

fn used(scope: Scope) -> BTreeSet<(String, String, String)> {
    ALL.iter()
        .filter(|p| p.scope == scope)
        .map(|p| {
            (
                p.group.to_owned(),
                p.resource.to_owned(),
                p.verb.as_str().to_owned(),
            )
        })
        .collect()
}

/// Where each permission the code calls [`Scope::Cluster`] is granted with
/// least privilege: the Roles of a rollout namespace, the Role beside each
/// plugin object, or (cluster-scoped resources only) the ClusterRole.
fn least_privilege_home(group: &str, resource: &str) -> &'static str {
    match (group, resource) {
        ("argoproj.io", "clusteranalysistemplates") => "ClusterRole canary-controller",
        ("extensions.istio.io", _) => "the plugin's Role",
        ("apps", "deployments") | ("", "secrets") => "Role canary-controller-workloads",
        _ => "Role canary-controller",
    }
}

fn roles_named<'a>(docs: &'a [Doc], kind: &str, prefix: &str) -> Vec<&'a Doc> {
    docs.iter()
        .filter(|d| d.kind() == kind && d.name().starts_with(prefix))
        .collect()
}

#[test]
fn rbac_grants_exactly_what_the_code_uses() {
    let docs = objects();
    let base = |name: &str| {
        let dir = root().join(ROLLOUT_NAMESPACE);
        docs.iter()
            .find(|d| {
                d.kind() == "Role" && d.name() == name && d.file.parent() == Some(dir.as_path())
            })
            .unwrap_or_else(|| panic!("no Role {name} in {ROLLOUT_NAMESPACE}"))
    };
    let mut homes: BTreeMap<&str, BTreeSet<(String, String, String)>> = BTreeMap::new();
    homes.insert(
        "ClusterRole canary-controller",
        granted(find(&docs, "ClusterRole", "", "canary-controller")),
    );
    homes.insert("Role canary-controller", granted(base("canary-controller")));
    homes.insert(
        "Role canary-controller-workloads",
        granted(base("canary-controller-workloads")),
    );
    // Every plugin's Role grants get and patch on that one object.
    let mut plugin_grants = BTreeSet::new();
    for (plugin, _, _) in plugins(&docs) {
        let plural = match plugin.kind() {
            "WasmPlugin" => "wasmplugins",
            _ => "trafficextensions",
        };
        let name = format!(
            "canary-controller-{}-{}",
            plugin.kind().to_lowercase(),
            plugin.name()
        );
        let role = find(&docs, "Role", plugin.namespace(), &name);
        assert_eq!(
            role.value["rules"],
            serde_json::json!([{
                "apiGroups": ["extensions.istio.io"],
                "resources": [plural],
                "resourceNames": [plugin.name()],
                "verbs": ["get", "patch"],
            }]),
            "{name}"
        );
        let binding = find(&docs, "RoleBinding", plugin.namespace(), &name);
        assert_eq!(binding.value["roleRef"]["name"], name.as_str());
        assert_controller_is_the_subject(binding);
        plugin_grants.extend(granted(role));
    }
    homes.insert("the plugin's Role", plugin_grants);
    let mut expected: BTreeMap<&str, BTreeSet<(String, String, String)>> = BTreeMap::new();
    for key in used(Scope::Cluster) {
        expected
            .entry(least_privilege_home(&key.0, &key.1))
            .or_default()
            .insert(key);
    }
    assert_eq!(homes, expected);

    // Deployments and Secrets only by name.
    for rule in base("canary-controller-workloads").value["rules"]
        .as_array()
        .unwrap()
    {
        assert!(
            !rule["resourceNames"].as_array().unwrap().is_empty(),
            "{rule}"
        );
    }
    for binding in roles_named(&docs, "RoleBinding", "canary-controller") {
        assert_controller_is_the_subject(binding);
    }

    // The explicit cluster-wide option grants all of it everywhere.
    let cluster_wide = find(&docs, "ClusterRole", "", "canary-controller-cluster-wide");
    assert_eq!(granted(cluster_wide), used(Scope::Cluster));

    // The lease, in the controller's namespace only.
    let role = find(&docs, "Role", "canary-system", "canary-controller-leader");
    assert_eq!(granted(role), used(Scope::ControllerNamespace));
    for rule in role.value["rules"].as_array().unwrap() {
        let verbs = rule["verbs"].as_array().unwrap();
        if verbs.iter().any(|v| v != "create") {
            assert_eq!(
                rule["resourceNames"],
                serde_json::json!(["canary-controller"])
            );
        }
    }
    assert_eq!(
        roles_named(&docs, "Role", "canary-controller-leader").len(),
        1,
        "one lease, so one leader whatever is installed"
    );
}

fn assert_controller_is_the_subject(binding: &Doc) {
    assert_eq!(
        binding.value["subjects"],
        serde_json::json!([{
            "kind": "ServiceAccount",
            "name": "canary-controller",
            "namespace": "canary-system",
        }]),
        "{} {}",
        binding.kind(),
        binding.name()
    );
}

#[test]
fn the_controller_pod_has_its_bindings_and_its_lease_where_it_runs() {
    let docs = objects();
    let namespace = "canary-system";
    let deployment = find(&docs, "Deployment", namespace, "canary-controller");
    let pod = &deployment.value["spec"]["template"]["spec"];
    let account = pod["serviceAccountName"].as_str().unwrap();
    find(&docs, "ServiceAccount", namespace, account);
    let selector = &deployment.value["spec"]["selector"]["matchLabels"];
    for (key, value) in selector.as_object().unwrap() {
        assert_eq!(
            &deployment.value["spec"]["template"]["metadata"]["labels"][key],
            value
        );
    }
    let container = &pod["containers"][0];
    assert_eq!(container["args"][0], "operator");
    // The API listens on the pod's address: plain HTTP must be asked for,
    // and the token is generated where the read-only container can write.
    let args: Vec<&str> = container["args"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(Value::as_str)
        .collect();
    assert!(args.contains(&"--insecure"), "{args:?}");
    let token_file = args
        .iter()
        .position(|a| *a == "--token-file")
        .map(|i| args[i + 1])
        .expect("--token-file");
    let mounted = container["volumeMounts"]
        .as_array()
        .unwrap()
        .iter()
        .any(|m| token_file.starts_with(m["mountPath"].as_str().unwrap()));
    assert!(mounted, "{token_file} is not on a mounted volume");
    assert_eq!(
        container["image"], "canary",
        "set by the kustomization's images"
    );
    let env: BTreeMap<&str, &Value> = container["env"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| (e["name"].as_str().unwrap(), e))
        .collect();
    assert_eq!(
        env["POD_NAMESPACE"]["valueFrom"]["fieldRef"]["fieldPath"], "metadata.namespace",
        "the lease is in the pod's namespace"
    );
    assert_eq!(
        env["POD_NAME"]["valueFrom"]["fieldRef"]["fieldPath"],
        "metadata.name"
    );
    assert_eq!(
        env["CANARY_WATCH_NAMESPACE"]["valueFrom"]["configMapKeyRef"]["key"],
        "watchNamespaces"
    );
    // The metrics port the probes, the Service and Prometheus use.
    assert_eq!(container["ports"][0]["name"], "http-metrics");
    assert_eq!(container["livenessProbe"]["httpGet"]["path"], "/healthz");
    assert_eq!(container["readinessProbe"]["httpGet"]["path"], "/readyz");
    let service = find(&docs, "Service", namespace, "canary-controller-metrics");
    assert_eq!(
        service.value["spec"]["ports"][0]["targetPort"],
        "http-metrics"
    );
    for (key, value) in service.value["spec"]["selector"].as_object().unwrap() {
        assert_eq!(
            &deployment.value["spec"]["template"]["metadata"]["labels"][key],
            value
        );
    }
    for (kind, role_kind, role) in [
        ("ClusterRoleBinding", "ClusterRole", "canary-controller"),
        ("RoleBinding", "Role", "canary-controller-leader"),
    ] {
        let name = role;
        let binding = docs
            .iter()
            .find(|d| {
                d.kind() == kind
                    && d.name() == name
                    && (kind == "ClusterRoleBinding" || d.namespace() == namespace)
            })
            .unwrap_or_else(|| panic!("no {kind} {name}"));
        assert_eq!(binding.value["roleRef"]["kind"], role_kind);
        assert_eq!(binding.value["roleRef"]["name"], role);
        assert_controller_is_the_subject(binding);
    }
}

/// The admission policy names the controller's service account.
#[test]
fn the_admission_policy_restricts_the_controllers_identity() {
    let docs = objects();
    let policy = find(
        &docs,
        "ValidatingAdmissionPolicy",
        "",
        "canary-controller-writes-only-the-split",
    );
    let condition = policy.value["spec"]["matchConditions"][0]["expression"]
        .as_str()
        .unwrap();
    assert!(
        condition.contains("'system:serviceaccount:canary-system:canary-controller'"),
        "{condition}"
    );
    let binding = find(
        &docs,
        "ValidatingAdmissionPolicyBinding",
        "",
        "canary-controller-writes-only-the-split",
    );
    assert_eq!(
        binding.value["spec"]["validationActions"],
        serde_json::json!(["Deny"])
    );
}

/// The plugin objects and their filter configurations.
fn plugins(docs: &[Doc]) -> Vec<(&Doc, &Value, &Value)> {
    docs.iter()
        .filter_map(|d| match d.kind() {
            "WasmPlugin" => Some((d, &d.value["spec"], &d.value["spec"]["pluginConfig"])),
            "TrafficExtension" => Some((
                d,
                &d.value["spec"]["wasm"],
                &d.value["spec"]["wasm"]["pluginConfig"],
            )),
            _ => None,
        })
        .collect()
}

#[test]
fn plugins_pin_the_module_fail_open_and_carry_a_valid_configuration() {
    let docs = objects();
    let plugins = plugins(&docs);
    assert_eq!(plugins.len(), 4);
    let mut digests = BTreeSet::new();
    for (doc, wasm, config) in &plugins {
        let what = format!("{} {}/{}", doc.kind(), doc.namespace(), doc.name());
        let url = wasm["url"].as_str().unwrap();
        assert!(url.starts_with("oci://"), "{what}: {url}");
        let sha = wasm["sha256"].as_str().unwrap();
        assert!(
            sha.len() == 64
                && sha
                    .bytes()
                    .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b)),
            "{what}: sha256 is the hex of the manifest digest `canary oci` prints, got {sha}"
        );
        digests.insert(sha.to_owned());
        assert_eq!(wasm["imagePullPolicy"], "IfNotPresent", "{what}");
        assert_eq!(wasm["failStrategy"], "FAIL_OPEN", "{what}");
        assert!(doc.value["spec"]["phase"].is_string(), "{what}");
        assert!(doc.value["spec"]["priority"].is_i64(), "{what}");
        assert!(doc.value["spec"]["match"].is_array(), "{what}");
        let text = config.to_string();
        let parsed = canary_config::parse_document(text.as_bytes())
            .unwrap_or_else(|e| panic!("{what}: pluginConfig: {e}"));
        canary_config::compile(&parsed).unwrap_or_else(|e| panic!("{what}: pluginConfig: {e}"));
        assert_eq!(config["routing_header"], "x-canary-version");
    }
    assert_eq!(digests.len(), 1, "every example pins the same module");

    // One example per placement.
    let wasm_plugins: Vec<&&Doc> = plugins
        .iter()
        .map(|(d, _, _)| d)
        .filter(|d| d.kind() == "WasmPlugin")
        .collect();
    let selector = wasm_plugins
        .iter()
        .find(|d| d.value["spec"]["selector"].is_object())
        .unwrap();
    assert_eq!(
        selector.value["spec"]["selector"]["matchLabels"],
        istio_gateway(&docs).value["spec"]["selector"],
        "the plugin runs on the gateway pods the Gateway selects"
    );
    let targeted = wasm_plugins
        .iter()
        .find(|d| d.value["spec"]["targetRefs"].is_array())
        .unwrap();
    let reference = &targeted.value["spec"]["targetRefs"][0];
    assert_eq!(reference["kind"], "Gateway");
    assert_eq!(reference["group"], "gateway.networking.k8s.io");
    let gateway = docs
        .iter()
        .find(|d| {
            d.kind() == "Gateway"
                && d.value["apiVersion"] == "gateway.networking.k8s.io/v1"
                && d.value["metadata"]["name"] == reference["name"]
                && d.namespace() == targeted.namespace()
        })
        .expect("the targeted Gateway, in the plugin's namespace");
    assert_eq!(gateway.value["spec"]["gatewayClassName"], "istio");
    let mesh = wasm_plugins
        .iter()
        .find(|d| {
            d.namespace() == "istio-system"
                && d.value["spec"]["selector"].is_null()
                && d.value["spec"]["targetRefs"].is_null()
        })
        .expect("a mesh-wide plugin in the root namespace");
    assert!(
        mesh.value["spec"]["pluginConfig"]["routes"]
            .as_array()
            .unwrap()
            .len()
            >= 2
    );
}

#[test]
fn the_routing_header_is_removed_before_routing_on_every_gateway() {
    let docs = objects();
    for filter in docs.iter().filter(|d| d.kind() == "EnvoyFilter") {
        let patch = &filter.value["spec"]["configPatches"][0];
        assert_eq!(patch["match"]["context"], "GATEWAY");
        let mutations = &patch["patch"]["value"]["typed_config"]
            ["early_header_mutation_extensions"][0]["typed_config"]["mutations"];
        assert_eq!(mutations[0]["remove"], "x-canary-version");
    }
    let classic = find(
        &docs,
        "EnvoyFilter",
        "istio-system",
        "strip-canary-routing-header",
    );
    assert_eq!(
        classic.value["spec"]["workloadSelector"]["labels"],
        istio_gateway(&docs).value["spec"]["selector"]
    );
    let gateway_api = find(&docs, "EnvoyFilter", "shop", "strip-canary-routing-header");
    assert_eq!(
        gateway_api.value["spec"]["workloadSelector"]["labels"]
            ["gateway.networking.k8s.io/gateway-name"],
        "web-gateway"
    );
}

/// The example rollout, its template and the objects it names agree.
#[test]
fn the_example_rollout_runs_against_the_example_objects() {
    let docs = objects();
    let example = in_dir(&docs, "kubernetes/example");
    let rollout_doc = example
        .iter()
        .find(|d| d.kind() == "CanaryRollout")
        .unwrap();
    let rollout: CanaryRollout = serde_json::from_value(rollout_doc.value.clone()).unwrap();
    let spec = &rollout.spec;
    let namespace = rollout_doc.namespace();

    // It converts, with the template it names, into a runnable rollout.
    let templates: Vec<TemplateObject> = template_keys(spec)
        .into_iter()
        .map(|key| TemplateObject {
            object: find(&docs, "AnalysisTemplate", namespace, &key.name)
                .value
                .clone(),
            key,
        })
        .collect();
    let none = |_: &SecretKeyRef| None;
    let engine = rollout_spec(rollout_doc.name(), namespace, spec, &templates, &none)
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(engine.steps.len(), 13);

    // The workloads exist and carry the version names as `version` labels.
    for (workload, version) in [
        (&spec.stable_workload, &spec.stable_version),
        (&spec.canary_workload, &spec.canary_version),
    ] {
        let deployment = find(&docs, "Deployment", namespace, workload);
        assert_eq!(
            &deployment.value["spec"]["template"]["metadata"]["labels"]["version"],
            version
        );
        assert_eq!(
            &deployment.value["spec"]["selector"]["matchLabels"]["version"],
            version
        );
        let service = find(&docs, "Service", namespace, "web");
        for (key, value) in service.value["spec"]["selector"].as_object().unwrap() {
            assert_eq!(
                &deployment.value["spec"]["template"]["metadata"]["labels"][key],
                value
            );
        }
    }

    // Its target exists and drives the rollout's routes with its versions.
    assert_eq!(spec.target.kind, TargetKind::WasmPlugin);
    let target_namespace = spec.target.namespace.as_deref().unwrap_or(namespace);
    let plugin = find(&docs, "WasmPlugin", target_namespace, &spec.target.name);
    let route = plugin.value["spec"]["pluginConfig"]["routes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["name"] == spec.routes[0])
        .expect("the rollout's route in the plugin's configuration");
    assert_eq!(route["stable"], spec.stable_version.as_str());
    assert_eq!(route["canary"], spec.canary_version.as_str());
    for other in ["placements/traffic-extension", "placements/mesh"] {
        let docs_in = in_dir(&docs, &format!("istio/{other}"));
        let (_, _, config) = plugins(&docs)
            .into_iter()
            .find(|(d, _, _)| docs_in.iter().any(|x| x.file == d.file))
            .unwrap();
        let route = config["routes"]
            .as_array()
            .unwrap()
            .iter()
            .find(|r| r["name"] == spec.routes[0])
            .unwrap();
        assert_eq!(route["stable"], spec.stable_version.as_str(), "{other}");
        assert_eq!(route["canary"], spec.canary_version.as_str(), "{other}");
    }

    // The subsets select the versions; the canary route matches the
    // canary's name; the default route is stable; both remove the header.
    let rule = find(&docs, "DestinationRule", namespace, "web");
    let subset = |name: &str| {
        rule.value["spec"]["subsets"]
            .as_array()
            .unwrap()
            .iter()
            .find(|s| s["name"] == name)
            .unwrap()["labels"]["version"]
            .clone()
    };
    assert_eq!(subset("stable"), spec.stable_version.as_str());
    assert_eq!(subset("canary"), spec.canary_version.as_str());
    let service = find(&docs, "VirtualService", namespace, "web");
    let host = rule.value["spec"]["host"].as_str().unwrap();
    assert_eq!(host, format!("web.{namespace}.svc.cluster.local"));
    let routes = service.value["spec"]["http"].as_array().unwrap();
    let first = &routes[0];
    assert_eq!(
        first["match"][0]["headers"]["x-canary-version"]["exact"],
        spec.canary_version.as_str()
    );
    assert_eq!(first["route"][0]["destination"]["subset"], "canary");
    let last = routes.last().unwrap();
    assert!(
        last["match"].is_null(),
        "the stable route matches everything"
    );
    assert_eq!(last["route"][0]["destination"]["subset"], "stable");
    for route in routes {
        assert_eq!(route["route"][0]["destination"]["host"], host);
        assert_eq!(route["headers"]["request"]["remove"][0], "x-canary-version");
    }
    let gateways = service.value["spec"]["gateways"].as_array().unwrap();
    assert!(gateways.contains(&Value::from("shop/web-gateway")));
    let hosts = service.value["spec"]["hosts"].as_array().unwrap();
    for host in istio_gateway(&docs).value["spec"]["servers"][0]["hosts"]
        .as_array()
        .unwrap()
    {
        assert!(
            hosts.contains(host),
            "the VirtualService serves the Gateway's host {host}"
        );
        let routes = route["match"]["hosts"].as_array().unwrap();
        assert!(
            routes.contains(host),
            "the filter's route entry matches {host}"
        );
    }

    // The Gateway API placement routes the same names to the same pods.
    let http_route = find(&docs, "HTTPRoute", "shop", "web");
    assert_eq!(
        http_route.value["spec"]["parentRefs"][0]["name"],
        "web-gateway"
    );
    let rules = http_route.value["spec"]["rules"].as_array().unwrap();
    assert_eq!(
        rules[0]["matches"][0]["headers"][0]["value"],
        spec.canary_version.as_str()
    );
    for (rule, version) in [
        (&rules[0], &spec.canary_version),
        (&rules[1], &spec.stable_version),
    ] {
        let backend = rule["backendRefs"][0]["name"].as_str().unwrap();
        let service = find(&docs, "Service", "shop", backend);
        assert_eq!(&service.value["spec"]["selector"]["version"], version);
        assert_eq!(
            rule["filters"][0]["requestHeaderModifier"]["remove"][0],
            "x-canary-version"
        );
    }
    assert!(rules[1]["matches"].is_null(), "stable is the default");
}
