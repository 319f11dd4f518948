//! Every call the controller makes to the API server, as the RBAC
//! permission it needs.
//!
//! Each call site builds its error from its [`Permission`], so a refused
//! call names exactly what to grant; and a test reads the shipped RBAC
//! (`manifests/kubernetes/controller/rbac.yaml and manifests/kubernetes/rollout-namespace/rbac.yaml`) and checks it grants exactly
//! [`ALL`]: no less (the controller would fail) and no more (least
//! privilege).

use std::fmt;

use canary_kube::{ApiCall, ApiError, Verb};
use kube::core::ApiResource;

/// Where a permission is granted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Scope {
    /// In every namespace holding rollouts (a ClusterRole bound
    /// cluster-wide).
    Cluster,
    /// Only in the controller's own namespace (a Role): the leader lease.
    ControllerNamespace,
}

/// A verb as RBAC names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum RbacVerb {
    /// Read one object.
    Get,
    /// List objects.
    List,
    /// Watch objects.
    Watch,
    /// Create an object.
    Create,
    /// Replace an object.
    Update,
    /// Patch an object (merge patch or server-side apply).
    Patch,
}

impl RbacVerb {
    /// The verb as written in a Role.
    pub fn as_str(self) -> &'static str {
        match self {
            RbacVerb::Get => "get",
            RbacVerb::List => "list",
            RbacVerb::Watch => "watch",
            RbacVerb::Create => "create",
            RbacVerb::Update => "update",
            RbacVerb::Patch => "patch",
        }
    }
}

/// One permission: a verb on a resource of an API group.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Permission {
    /// API group; empty for the core group.
    pub group: &'static str,
    /// Resource (plural), with `/subresource` when it is one.
    pub resource: &'static str,
    /// The verb.
    pub verb: RbacVerb,
    /// Where it is granted.
    pub scope: Scope,
}

impl Permission {
    const fn cluster(group: &'static str, resource: &'static str, verb: RbacVerb) -> Permission {
        Permission {
            group,
            resource,
            verb,
            scope: Scope::Cluster,
        }
    }

    /// The call this permission allows, on `name` (or all objects) in
    /// `namespace` (empty for cluster-scoped resources), for error messages.
    pub fn call(&self, namespace: &str, name: Option<&str>) -> ApiCall {
        let verb = match self.verb {
            RbacVerb::Get => Verb::Get,
            RbacVerb::List | RbacVerb::Watch => Verb::List,
            RbacVerb::Create => Verb::Create,
            RbacVerb::Update => Verb::Update,
            RbacVerb::Patch => Verb::Patch,
        };
        let resource = ApiResource {
            group: self.group.to_owned(),
            version: String::new(),
            api_version: String::new(),
            kind: String::new(),
            plural: self.resource.to_owned(),
        };
        ApiCall::new(verb, &resource, namespace, name)
    }

    /// `error` of this call, typed.
    pub fn error(&self, namespace: &str, name: Option<&str>, error: kube::Error) -> ApiError {
        ApiError::from_kube(self.call(namespace, name), error)
    }
}

impl fmt::Display for Permission {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.group.is_empty() {
            write!(f, "{} {}", self.verb.as_str(), self.resource)
        } else {
            write!(f, "{} {}.{}", self.verb.as_str(), self.resource, self.group)
        }
    }
}

/// Watching rollouts (kube's runtime lists, then watches).
pub const LIST_ROLLOUTS: Permission =
    Permission::cluster("canary.dev", "canaryrollouts", RbacVerb::List);
/// See [`LIST_ROLLOUTS`].
pub const WATCH_ROLLOUTS: Permission =
    Permission::cluster("canary.dev", "canaryrollouts", RbacVerb::Watch);
/// Removing a handled command annotation.
pub const PATCH_ROLLOUTS: Permission =
    Permission::cluster("canary.dev", "canaryrollouts", RbacVerb::Patch);
/// Writing a rollout's status.
pub const UPDATE_ROLLOUT_STATUS: Permission =
    Permission::cluster("canary.dev", "canaryrollouts/status", RbacVerb::Update);
/// Reading the analysis templates a rollout names.
pub const GET_ANALYSIS_TEMPLATES: Permission =
    Permission::cluster("argoproj.io", "analysistemplates", RbacVerb::Get);
/// See [`GET_ANALYSIS_TEMPLATES`].
pub const GET_CLUSTER_ANALYSIS_TEMPLATES: Permission =
    Permission::cluster("argoproj.io", "clusteranalysistemplates", RbacVerb::Get);
/// Reading `secretKeyRef` arguments.
pub const GET_SECRETS: Permission = Permission::cluster("", "secrets", RbacVerb::Get);
/// Reading the filter configuration (the base the split is applied to).
pub const GET_WASM_PLUGINS: Permission =
    Permission::cluster("extensions.istio.io", "wasmplugins", RbacVerb::Get);
/// Server-side apply of the filter configuration.
pub const PATCH_WASM_PLUGINS: Permission =
    Permission::cluster("extensions.istio.io", "wasmplugins", RbacVerb::Patch);
/// See [`GET_WASM_PLUGINS`].
pub const GET_TRAFFIC_EXTENSIONS: Permission =
    Permission::cluster("extensions.istio.io", "trafficextensions", RbacVerb::Get);
/// See [`PATCH_WASM_PLUGINS`].
pub const PATCH_TRAFFIC_EXTENSIONS: Permission =
    Permission::cluster("extensions.istio.io", "trafficextensions", RbacVerb::Patch);
/// Reading the stable and canary Deployments (readiness, pod templates).
pub const GET_DEPLOYMENTS: Permission = Permission::cluster("apps", "deployments", RbacVerb::Get);
/// Scaling the canary, copying its template to stable.
pub const PATCH_DEPLOYMENTS: Permission =
    Permission::cluster("apps", "deployments", RbacVerb::Patch);
/// The `kubernetes` metric provider's readiness and CPU ratios.
pub const LIST_PODS: Permission = Permission::cluster("", "pods", RbacVerb::List);
/// The `kubernetes` provider's CPU ratio.
pub const LIST_POD_METRICS: Permission =
    Permission::cluster("metrics.k8s.io", "pods", RbacVerb::List);
/// An Event per decision.
pub const CREATE_EVENTS: Permission =
    Permission::cluster("events.k8s.io", "events", RbacVerb::Create);
/// Leader election: reading the lease.
pub const GET_LEASES: Permission = Permission {
    group: "coordination.k8s.io",
    resource: "leases",
    verb: RbacVerb::Get,
    scope: Scope::ControllerNamespace,
};
/// Leader election: the first instance creates the lease.
pub const CREATE_LEASES: Permission = Permission {
    verb: RbacVerb::Create,
    ..GET_LEASES
};
/// Leader election: renewing and taking over the lease.
pub const UPDATE_LEASES: Permission = Permission {
    verb: RbacVerb::Update,
    ..GET_LEASES
};

/// Every permission the controller uses.
pub const ALL: &[Permission] = &[
    LIST_ROLLOUTS,
    WATCH_ROLLOUTS,
    PATCH_ROLLOUTS,
    UPDATE_ROLLOUT_STATUS,
    GET_ANALYSIS_TEMPLATES,
    GET_CLUSTER_ANALYSIS_TEMPLATES,
    GET_SECRETS,
    GET_WASM_PLUGINS,
    PATCH_WASM_PLUGINS,
    GET_TRAFFIC_EXTENSIONS,
    PATCH_TRAFFIC_EXTENSIONS,
    GET_DEPLOYMENTS,
    PATCH_DEPLOYMENTS,
    LIST_PODS,
    LIST_POD_METRICS,
    CREATE_EVENTS,
    GET_LEASES,
    CREATE_LEASES,
    UPDATE_LEASES,
];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn permissions_read_like_rbac() {
        assert_eq!(PATCH_DEPLOYMENTS.to_string(), "patch deployments.apps");
        assert_eq!(LIST_PODS.to_string(), "list pods");
        assert_eq!(
            PATCH_DEPLOYMENTS.call("shop", Some("web-v2")).to_string(),
            "patch deployments.apps \"web-v2\" in namespace \"shop\""
        );
    }

    #[test]
    fn each_permission_is_listed_once() {
        let mut all = ALL.to_vec();
        all.sort();
        all.dedup();
        assert_eq!(all.len(), ALL.len());
    }
}
