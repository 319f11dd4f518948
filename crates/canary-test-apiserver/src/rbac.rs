//! Who is asking, and whether RBAC lets them.
//!
//! Every request carries a bearer token the server handed out for an
//! [`Identity`]. Decisions come from the Role, ClusterRole, RoleBinding and
//! ClusterRoleBinding objects stored in the server, as the RBAC authorizer
//! takes them: a ClusterRoleBinding grants its ClusterRole's rules in every
//! namespace; a RoleBinding grants its Role's (or a ClusterRole's) rules in
//! its own namespace only; a rule matches on verbs, API groups, resources
//! (`resource/subresource`, `*`, `*/subresource`) and resourceNames (which
//! never match a create or a collection request). Members of
//! `system:masters` may do anything. Discovery, `/version` and health paths
//! are open to every authenticated identity, as the default
//! `system:discovery` and `system:public-info-viewer` bindings make them.
//!
//! Not modelled: aggregated ClusterRoles, `nonResourceURLs` rules,
//! `bind`/`escalate` checks, impersonation.
//!
//! Reference: <https://kubernetes.io/docs/reference/access-authn-authz/rbac/>
//! and <https://kubernetes.io/docs/reference/access-authn-authz/authorization/#review-your-request-attributes>.

use serde_json::Value;

/// An authenticated user.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Identity {
    /// `system:serviceaccount:<namespace>:<name>` for a ServiceAccount.
    pub username: String,
    /// Groups, `system:authenticated` included.
    pub groups: Vec<String>,
}

impl Identity {
    /// The ServiceAccount `name` in `namespace`, with the groups the API
    /// server gives ServiceAccounts.
    pub fn service_account(namespace: &str, name: &str) -> Identity {
        Identity {
            username: format!("system:serviceaccount:{namespace}:{name}"),
            groups: vec![
                "system:serviceaccounts".to_owned(),
                format!("system:serviceaccounts:{namespace}"),
                "system:authenticated".to_owned(),
            ],
        }
    }

    /// A cluster administrator (`system:masters`), for test setup.
    pub fn admin() -> Identity {
        Identity {
            username: "test-admin".to_owned(),
            groups: vec![
                "system:masters".to_owned(),
                "system:authenticated".to_owned(),
            ],
        }
    }

    /// A user with these groups (`system:authenticated` added).
    pub fn user(name: &str, groups: &[&str]) -> Identity {
        let mut all: Vec<String> = groups.iter().map(|g| (*g).to_owned()).collect();
        all.push("system:authenticated".to_owned());
        Identity {
            username: name.to_owned(),
            groups: all,
        }
    }
}

/// What a resource request asks to do, as RBAC sees it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Attributes {
    /// `get`, `list`, `watch`, `create`, `update`, `patch`, `delete`.
    pub verb: String,
    /// API group; empty for the core group.
    pub group: String,
    /// Resource plural.
    pub resource: String,
    /// Subresource (`status`), or empty.
    pub subresource: String,
    /// Namespace, or empty for cluster-scoped and all-namespaces requests.
    pub namespace: String,
    /// The object's name; empty for creates and collections.
    pub name: String,
}

/// RBAC's answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    /// Allowed; says by what (`ClusterRoleBinding x (ClusterRole y)`).
    Allowed(String),
    /// Nothing grants it.
    Denied,
}

impl Decision {
    /// Whether the request may go on.
    pub fn allowed(&self) -> bool {
        matches!(self, Decision::Allowed(_))
    }
}

fn strings(value: Option<&Value>) -> Vec<&str> {
    value
        .and_then(Value::as_array)
        .map(|items| items.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default()
}

fn subject_matches(subject: &Value, identity: &Identity, binding_namespace: &str) -> bool {
    let name = subject.get("name").and_then(Value::as_str).unwrap_or("");
    match subject.get("kind").and_then(Value::as_str) {
        Some("ServiceAccount") => {
            let namespace = subject
                .get("namespace")
                .and_then(Value::as_str)
                .unwrap_or(binding_namespace);
            identity.username == format!("system:serviceaccount:{namespace}:{name}")
        }
        Some("User") => identity.username == name,
        Some("Group") => identity.groups.iter().any(|g| g == name),
        _ => false,
    }
}

fn resource_matches(rule_resource: &str, attributes: &Attributes) -> bool {
    if rule_resource == "*" {
        return true;
    }
    if attributes.subresource.is_empty() {
        return rule_resource == attributes.resource;
    }
    let combined = format!("{}/{}", attributes.resource, attributes.subresource);
    rule_resource == combined || rule_resource == format!("*/{}", attributes.subresource)
}

/// Whether one PolicyRule grants `attributes`.
pub fn rule_allows(rule: &Value, attributes: &Attributes) -> bool {
    let verbs = strings(rule.get("verbs"));
    let groups = strings(rule.get("apiGroups"));
    let resources = strings(rule.get("resources"));
    let names = strings(rule.get("resourceNames"));
    verbs.iter().any(|v| *v == "*" || *v == attributes.verb)
        && groups.iter().any(|g| *g == "*" || *g == attributes.group)
        && resources.iter().any(|r| resource_matches(r, attributes))
        && (names.is_empty()
            || (!attributes.name.is_empty() && names.contains(&attributes.name.as_str())))
}

/// The RBAC objects of the cluster.
#[derive(Debug, Default)]
pub struct Policy {
    /// Roles (namespaced).
    pub roles: Vec<Value>,
    /// ClusterRoles.
    pub cluster_roles: Vec<Value>,
    /// RoleBindings.
    pub role_bindings: Vec<Value>,
    /// ClusterRoleBindings.
    pub cluster_role_bindings: Vec<Value>,
}

fn name_of(object: &Value) -> &str {
    object
        .pointer("/metadata/name")
        .and_then(Value::as_str)
        .unwrap_or("")
}

fn namespace_of(object: &Value) -> &str {
    object
        .pointer("/metadata/namespace")
        .and_then(Value::as_str)
        .unwrap_or("")
}

impl Policy {
    fn rules_of<'a>(&'a self, role_ref: &Value, namespace: &str) -> Option<(&'a Value, String)> {
        let name = role_ref.get("name").and_then(Value::as_str)?;
        match role_ref.get("kind").and_then(Value::as_str)? {
            "ClusterRole" => self
                .cluster_roles
                .iter()
                .find(|r| name_of(r) == name)
                .map(|r| (r, format!("ClusterRole {name}"))),
            "Role" => self
                .roles
                .iter()
                .find(|r| name_of(r) == name && namespace_of(r) == namespace)
                .map(|r| (r, format!("Role {namespace}/{name}"))),
            _ => None,
        }
    }

    fn grants(
        &self,
        binding: &Value,
        namespace: &str,
        identity: &Identity,
        attributes: &Attributes,
    ) -> Option<String> {
        let subjects = binding.get("subjects").and_then(Value::as_array)?;
        if !subjects
            .iter()
            .any(|s| subject_matches(s, identity, namespace))
        {
            return None;
        }
        let (role, role_name) = self.rules_of(binding.get("roleRef")?, namespace)?;
        let rules = role.get("rules").and_then(Value::as_array)?;
        rules
            .iter()
            .any(|rule| rule_allows(rule, attributes))
            .then_some(role_name)
    }

    /// Whether `identity` may do `attributes`.
    pub fn authorize(&self, identity: &Identity, attributes: &Attributes) -> Decision {
        if identity.groups.iter().any(|g| g == "system:masters") {
            return Decision::Allowed("group system:masters".to_owned());
        }
        for binding in &self.cluster_role_bindings {
            if let Some(role) = self.grants(binding, "", identity, attributes) {
                return Decision::Allowed(format!(
                    "ClusterRoleBinding {} ({role})",
                    name_of(binding)
                ));
            }
        }
        if !attributes.namespace.is_empty() {
            for binding in self
                .role_bindings
                .iter()
                .filter(|b| namespace_of(b) == attributes.namespace)
            {
                if let Some(role) =
                    self.grants(binding, &attributes.namespace, identity, attributes)
                {
                    return Decision::Allowed(format!(
                        "RoleBinding {}/{} ({role})",
                        attributes.namespace,
                        name_of(binding)
                    ));
                }
            }
        }
        Decision::Denied
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn attributes(
        verb: &str,
        group: &str,
        resource: &str,
        subresource: &str,
        namespace: &str,
        name: &str,
    ) -> Attributes {
        Attributes {
            verb: verb.into(),
            group: group.into(),
            resource: resource.into(),
            subresource: subresource.into(),
            namespace: namespace.into(),
            name: name.into(),
        }
    }

    fn policy() -> Policy {
        Policy {
            roles: vec![
                json!({"metadata": {"name": "leader", "namespace": "canary-system"}, "rules": [
                    {"apiGroups": ["coordination.k8s.io"], "resources": ["leases"], "verbs": ["create"]},
                    {"apiGroups": ["coordination.k8s.io"], "resources": ["leases"],
                     "resourceNames": ["canary-controller"], "verbs": ["get", "update"]}
                ]}),
            ],
            cluster_roles: vec![json!({"metadata": {"name": "reader"}, "rules": [
                {"apiGroups": ["canary.dev"], "resources": ["canaryrollouts/status"], "verbs": ["update"]},
                {"apiGroups": [""], "resources": ["pods"], "verbs": ["list"]}
            ]})],
            role_bindings: vec![
                json!({"metadata": {"name": "leader", "namespace": "canary-system"},
                "roleRef": {"kind": "Role", "name": "leader"},
                "subjects": [{"kind": "ServiceAccount", "name": "canary-controller", "namespace": "canary-system"}]}),
            ],
            cluster_role_bindings: vec![json!({"metadata": {"name": "reader"},
                "roleRef": {"kind": "ClusterRole", "name": "reader"},
                "subjects": [{"kind": "ServiceAccount", "name": "canary-controller", "namespace": "canary-system"}]})],
        }
    }

    #[test]
    fn bindings_grant_their_roles_rules_in_their_scope() {
        let controller = Identity::service_account("canary-system", "canary-controller");
        let policy = policy();
        let allowed = |a: Attributes| policy.authorize(&controller, &a).allowed();
        assert!(allowed(attributes("list", "", "pods", "", "shop", "")));
        assert!(!allowed(attributes("get", "", "pods", "", "shop", "web-1")));
        assert!(allowed(attributes(
            "update",
            "canary.dev",
            "canaryrollouts",
            "status",
            "shop",
            "web"
        )));
        assert!(!allowed(attributes(
            "update",
            "canary.dev",
            "canaryrollouts",
            "",
            "shop",
            "web"
        )));
        assert!(allowed(attributes(
            "get",
            "coordination.k8s.io",
            "leases",
            "",
            "canary-system",
            "canary-controller"
        )));
        assert!(!allowed(attributes(
            "get",
            "coordination.k8s.io",
            "leases",
            "",
            "canary-system",
            "other"
        )));
        assert!(!allowed(attributes(
            "get",
            "coordination.k8s.io",
            "leases",
            "",
            "shop",
            "canary-controller"
        )));
        assert!(allowed(attributes(
            "create",
            "coordination.k8s.io",
            "leases",
            "",
            "canary-system",
            ""
        )));
        let stranger = Identity::service_account("shop", "default");
        assert!(!policy
            .authorize(&stranger, &attributes("list", "", "pods", "", "shop", ""))
            .allowed());
        assert!(policy
            .authorize(
                &Identity::admin(),
                &attributes("delete", "", "nodes", "", "", "n")
            )
            .allowed());
    }
}
