//! The kinds the server serves: a fixed set of built-in ones (those the
//! canary operator, its manifests and `kubectl` touch) and every kind a
//! stored CustomResourceDefinition declares.
//!
//! Reference: <https://kubernetes.io/docs/reference/using-api/api-concepts/#resource-uris>
//! and <https://kubernetes.io/docs/tasks/extend-kubernetes/custom-resources/custom-resource-definitions/>.

use std::sync::Arc;

use serde_json::Value;

use crate::managed_fields::Part;
use crate::schema::{self, Schema};
use crate::status::About;

/// One served resource.
#[derive(Debug, Clone, PartialEq)]
pub struct ResourceType {
    /// API group; empty for the core group.
    pub group: String,
    /// Version.
    pub version: String,
    /// Kind.
    pub kind: String,
    /// Plural: the URL segment.
    pub plural: String,
    /// Singular.
    pub singular: String,
    /// Short names, for `kubectl`.
    pub short_names: Vec<String>,
    /// Objects live in a namespace.
    pub namespaced: bool,
    /// Has a `/status` subresource.
    pub status_subresource: bool,
    /// `metadata.generation` is kept (custom resources and workloads).
    pub generation: bool,
    /// Declared by a CustomResourceDefinition (pruned by its schema, no
    /// strategic merge patch, `resourceVersion` required on update).
    pub custom: bool,
    /// The shape used to merge, track ownership and prune.
    pub schema: Schema,
}

impl ResourceType {
    /// `v1` for the core group, else `group/version`.
    pub fn api_version(&self) -> String {
        if self.group.is_empty() {
            self.version.clone()
        } else {
            format!("{}/{}", self.group, self.version)
        }
    }

    /// The resource and `name`, for error messages.
    pub fn about<'a>(&'a self, name: &'a str) -> About<'a> {
        About {
            group: &self.group,
            plural: &self.plural,
            name,
        }
    }

    /// The part of objects a write to the main resource or to `/status`
    /// addresses.
    pub fn part(&self, status: bool) -> Part {
        if status {
            Part::Status
        } else {
            Part::Main {
                status_subresource: self.status_subresource,
            }
        }
    }

    fn builtin(
        group: &str,
        version: &str,
        kind: &str,
        plural: &str,
        namespaced: bool,
    ) -> ResourceType {
        ResourceType {
            group: group.to_owned(),
            version: version.to_owned(),
            kind: kind.to_owned(),
            plural: plural.to_owned(),
            singular: kind.to_ascii_lowercase(),
            short_names: Vec::new(),
            namespaced,
            status_subresource: false,
            generation: false,
            custom: false,
            schema: Schema::unknown(),
        }
    }

    fn with_status(mut self) -> ResourceType {
        self.status_subresource = true;
        self
    }

    fn with_generation(mut self) -> ResourceType {
        self.generation = true;
        self
    }

    fn with_schema(mut self, schema: Schema) -> ResourceType {
        self.schema = schema;
        self
    }

    fn with_short_names(mut self, names: &[&str]) -> ResourceType {
        self.short_names = names.iter().map(|n| (*n).to_owned()).collect();
        self
    }
}

/// The name of a CustomResourceDefinition's kinds, for removal.
fn crd_key(group: &str, plural: &str) -> String {
    format!("{plural}.{group}")
}

/// Every served kind.
#[derive(Debug, Clone)]
pub struct Registry {
    types: Vec<Arc<ResourceType>>,
}

impl Registry {
    /// The built-in kinds.
    pub fn builtin() -> Registry {
        let types = vec![
            ResourceType::builtin("", "v1", "Namespace", "namespaces", false)
                .with_status()
                .with_short_names(&["ns"]),
            ResourceType::builtin("", "v1", "Pod", "pods", true)
                .with_status()
                .with_schema(schema::pod())
                .with_short_names(&["po"]),
            ResourceType::builtin("", "v1", "Secret", "secrets", true),
            ResourceType::builtin("", "v1", "ConfigMap", "configmaps", true)
                .with_short_names(&["cm"]),
            ResourceType::builtin("", "v1", "ServiceAccount", "serviceaccounts", true)
                .with_short_names(&["sa"]),
            ResourceType::builtin("", "v1", "Service", "services", true)
                .with_status()
                .with_schema(schema::service())
                .with_short_names(&["svc"]),
            ResourceType::builtin("apps", "v1", "Deployment", "deployments", true)
                .with_status()
                .with_generation()
                .with_schema(schema::deployment())
                .with_short_names(&["deploy"]),
            ResourceType::builtin("coordination.k8s.io", "v1", "Lease", "leases", true),
            ResourceType::builtin("events.k8s.io", "v1", "Event", "events", true)
                .with_short_names(&["ev"]),
            ResourceType::builtin("rbac.authorization.k8s.io", "v1", "Role", "roles", true),
            ResourceType::builtin(
                "rbac.authorization.k8s.io",
                "v1",
                "RoleBinding",
                "rolebindings",
                true,
            ),
            ResourceType::builtin(
                "rbac.authorization.k8s.io",
                "v1",
                "ClusterRole",
                "clusterroles",
                false,
            ),
            ResourceType::builtin(
                "rbac.authorization.k8s.io",
                "v1",
                "ClusterRoleBinding",
                "clusterrolebindings",
                false,
            ),
            ResourceType::builtin(
                "apiextensions.k8s.io",
                "v1",
                "CustomResourceDefinition",
                "customresourcedefinitions",
                false,
            )
            .with_status()
            .with_generation()
            .with_short_names(&["crd", "crds"]),
            // Stored, not enforced: the admission policy's CEL is tested
            // on its own (tests/manifests/test_admission_policy.py).
            ResourceType::builtin(
                "admissionregistration.k8s.io",
                "v1",
                "ValidatingAdmissionPolicy",
                "validatingadmissionpolicies",
                false,
            )
            .with_status()
            .with_generation(),
            ResourceType::builtin(
                "admissionregistration.k8s.io",
                "v1",
                "ValidatingAdmissionPolicyBinding",
                "validatingadmissionpolicybindings",
                false,
            )
            .with_generation(),
            // The resource metrics API (metrics-server); read-only for
            // everyone but the admin, through RBAC.
            ResourceType::builtin("metrics.k8s.io", "v1beta1", "PodMetrics", "pods", true),
        ];
        Registry {
            types: types.into_iter().map(Arc::new).collect(),
        }
    }

    /// The resource served at `group/version/plural`.
    pub fn find(&self, group: &str, version: &str, plural: &str) -> Option<Arc<ResourceType>> {
        self.types
            .iter()
            .find(|t| t.group == group && t.version == version && t.plural == plural)
            .cloned()
    }

    /// The resource of objects of `api_version` and `kind`.
    pub fn find_kind(&self, api_version: &str, kind: &str) -> Option<Arc<ResourceType>> {
        self.types
            .iter()
            .find(|t| t.api_version() == api_version && t.kind == kind)
            .cloned()
    }

    /// Every served resource.
    pub fn all(&self) -> &[Arc<ResourceType>] {
        &self.types
    }

    /// Serves the kinds `crd` declares (one per served version), replacing
    /// those of an earlier version of the same definition.
    pub fn register_crd(&mut self, crd: &Value) -> Result<(), String> {
        let spec = crd
            .get("spec")
            .ok_or("a CustomResourceDefinition needs a spec")?;
        let text = |value: Option<&Value>, what: &str| -> Result<String, String> {
            value
                .and_then(Value::as_str)
                .map(str::to_owned)
                .ok_or_else(|| format!("spec.{what} is missing"))
        };
        let group = text(spec.get("group"), "group")?;
        let names = spec.get("names");
        let kind = text(names.and_then(|n| n.get("kind")), "names.kind")?;
        let plural = text(names.and_then(|n| n.get("plural")), "names.plural")?;
        let singular = names
            .and_then(|n| n.get("singular"))
            .and_then(Value::as_str)
            .map(str::to_owned)
            .unwrap_or_else(|| kind.to_ascii_lowercase());
        let short_names: Vec<String> = names
            .and_then(|n| n.get("shortNames"))
            .and_then(Value::as_array)
            .map(|a| {
                a.iter()
                    .filter_map(Value::as_str)
                    .map(str::to_owned)
                    .collect()
            })
            .unwrap_or_default();
        let namespaced = match spec.get("scope").and_then(Value::as_str) {
            Some("Namespaced") => true,
            Some("Cluster") => false,
            other => {
                return Err(format!(
                    "spec.scope must be Namespaced or Cluster, not {other:?}"
                ))
            }
        };
        let versions = spec
            .get("versions")
            .and_then(Value::as_array)
            .ok_or("spec.versions is missing")?;
        let mut declared = Vec::new();
        for version in versions {
            if version.get("served").and_then(Value::as_bool) == Some(false) {
                continue;
            }
            let name = text(version.get("name"), "versions[].name")?;
            let schema = version
                .pointer("/schema/openAPIV3Schema")
                .map(Schema::from_openapi)
                .unwrap_or_else(Schema::unknown);
            declared.push(Arc::new(ResourceType {
                group: group.clone(),
                version: name,
                kind: kind.clone(),
                plural: plural.clone(),
                singular: singular.clone(),
                short_names: short_names.clone(),
                namespaced,
                status_subresource: version.pointer("/subresources/status").is_some(),
                generation: true,
                custom: true,
                schema,
            }));
        }
        self.remove_crd(&crd_key(&group, &plural));
        self.types.extend(declared);
        Ok(())
    }

    /// Stops serving the kinds of the definition named `name`
    /// (`<plural>.<group>`).
    pub fn remove_crd(&mut self, name: &str) {
        self.types
            .retain(|t| !(t.custom && crd_key(&t.group, &t.plural) == name));
    }
}
