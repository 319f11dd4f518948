//! Failures as the API server sends them: a `Status` object (`kind:
//! Status`, `status: Failure`) with the HTTP code, a machine-readable
//! `reason`, a message for people and `details` naming the object.
//!
//! Messages follow kube-apiserver's wording (`k8s.io/apimachinery/pkg/api/errors`)
//! so a client that matches on them behaves as against a real cluster.
//! Reference: <https://kubernetes.io/docs/reference/kubernetes-api/common-definitions/status/>
//! and <https://kubernetes.io/docs/reference/using-api/api-concepts/#responses>.

use serde_json::{json, Value};

/// One cause in `details.causes`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StatusCause {
    /// `FieldManagerConflict`, `FieldValueInvalid`…
    pub reason: String,
    /// For people.
    pub message: String,
    /// The field path (`.spec.pluginConfig.routes`).
    pub field: String,
}

/// `details` of a `Status`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct StatusDetails {
    /// `details.name`.
    pub name: Option<String>,
    /// `details.group`.
    pub group: Option<String>,
    /// `details.kind` (the resource's plural, as the API server writes it).
    pub kind: Option<String>,
    /// `details.causes`.
    pub causes: Vec<StatusCause>,
}

/// A failed request, as the `Status` object the server answers with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiStatus {
    /// HTTP status code, repeated in the body's `code`.
    pub code: u16,
    /// `NotFound`, `AlreadyExists`, `Conflict`, `Forbidden`…
    pub reason: String,
    /// For people.
    pub message: String,
    /// `details`, when the failure is about an object.
    pub details: Option<Box<StatusDetails>>,
}

/// What a failure is about: the resource (plural and group) and the name.
#[derive(Debug, Clone, Copy)]
pub struct About<'a> {
    /// API group; empty for the core group.
    pub group: &'a str,
    /// Resource plural.
    pub plural: &'a str,
    /// Object name; empty for a collection.
    pub name: &'a str,
}

impl About<'_> {
    /// `deployments.apps`, or `pods` in the core group.
    pub fn qualified(&self) -> String {
        if self.group.is_empty() {
            self.plural.to_owned()
        } else {
            format!("{}.{}", self.plural, self.group)
        }
    }
}

impl ApiStatus {
    fn new(code: u16, reason: &str, message: String) -> ApiStatus {
        ApiStatus {
            code,
            reason: reason.to_owned(),
            message,
            details: None,
        }
    }

    fn about(mut self, about: About<'_>) -> ApiStatus {
        let details = self.details.get_or_insert_with(Box::default);
        if !about.name.is_empty() {
            details.name = Some(about.name.to_owned());
        }
        details.group = Some(about.group.to_owned());
        details.kind = Some(about.plural.to_owned());
        self
    }

    fn with_cause(mut self, cause: StatusCause) -> ApiStatus {
        self.details
            .get_or_insert_with(Box::default)
            .causes
            .push(cause);
        self
    }

    /// The causes in `details`.
    pub fn causes(&self) -> &[StatusCause] {
        self.details
            .as_ref()
            .map(|d| d.causes.as_slice())
            .unwrap_or(&[])
    }

    /// 404: `deployments.apps "web" not found`.
    pub fn not_found(about: About<'_>) -> ApiStatus {
        let message = format!("{} {:?} not found", about.qualified(), about.name);
        ApiStatus::new(404, "NotFound", message).about(about)
    }

    /// 404 for a path the server does not serve.
    pub fn no_route(path: &str) -> ApiStatus {
        ApiStatus::new(
            404,
            "NotFound",
            format!("the server could not find the requested resource ({path})"),
        )
    }

    /// 409 on create: `leases.coordination.k8s.io "x" already exists`.
    pub fn already_exists(about: About<'_>) -> ApiStatus {
        let message = format!("{} {:?} already exists", about.qualified(), about.name);
        ApiStatus::new(409, "AlreadyExists", message).about(about)
    }

    /// 409 on a write guarded by a `resourceVersion` that is no longer the
    /// object's.
    pub fn conflict(about: About<'_>) -> ApiStatus {
        let message = format!(
            "Operation cannot be fulfilled on {} {:?}: the object has been modified; \
             please apply your changes to the latest version and try again",
            about.qualified(),
            about.name
        );
        ApiStatus::new(409, "Conflict", message).about(about)
    }

    /// 409 on a server-side apply: fields another manager owns would
    /// change. `conflicts` holds (manager, API version, field path).
    pub fn apply_conflict(about: About<'_>, conflicts: &[(String, String, String)]) -> ApiStatus {
        let count = conflicts.len();
        let mut message = format!(
            "Apply failed with {count} conflict{}: ",
            if count == 1 { "" } else { "s" }
        );
        let mut managers: Vec<(&str, &str)> = conflicts
            .iter()
            .map(|(manager, version, _)| (manager.as_str(), version.as_str()))
            .collect();
        managers.dedup();
        let parts: Vec<String> = managers
            .iter()
            .map(|(manager, version)| {
                let fields: Vec<&str> = conflicts
                    .iter()
                    .filter(|(m, v, _)| m == manager && v == version)
                    .map(|(_, _, field)| field.as_str())
                    .collect();
                if fields.len() == 1 {
                    format!("conflict with {manager:?} using {version}: {}", fields[0])
                } else {
                    format!(
                        "conflicts with {manager:?} using {version}:\n- {}",
                        fields.join("\n- ")
                    )
                }
            })
            .collect();
        message.push_str(&parts.join("\n"));
        conflicts.iter().fold(
            ApiStatus::new(409, "Conflict", message).about(about),
            |status, (manager, version, field)| {
                status.with_cause(StatusCause {
                    reason: "FieldManagerConflict".to_owned(),
                    message: format!("conflict with {manager:?} using {version}"),
                    field: field.clone(),
                })
            },
        )
    }

    /// 403, in kube-apiserver's words.
    pub fn forbidden(
        about: About<'_>,
        user: &str,
        verb: &str,
        subresource: &str,
        namespace: &str,
    ) -> ApiStatus {
        let object = if about.name.is_empty() {
            about.qualified()
        } else {
            format!("{} {:?}", about.qualified(), about.name)
        };
        let resource = if subresource.is_empty() {
            format!("resource {:?}", about.plural)
        } else {
            format!("resource \"{}/{subresource}\"", about.plural)
        };
        let scope = if namespace.is_empty() {
            "at the cluster scope".to_owned()
        } else {
            format!("in the namespace {namespace:?}")
        };
        let message = format!(
            "{object} is forbidden: User {user:?} cannot {verb} {resource} in API group {:?} {scope}",
            about.group
        );
        ApiStatus::new(403, "Forbidden", message).about(about)
    }

    /// 403 for a non-resource URL.
    pub fn forbidden_path(user: &str, verb: &str, path: &str) -> ApiStatus {
        ApiStatus::new(
            403,
            "Forbidden",
            format!("forbidden: User {user:?} cannot {verb} path {path:?}"),
        )
    }

    /// 401: no bearer token, or one the server does not know.
    pub fn unauthorized() -> ApiStatus {
        ApiStatus::new(401, "Unauthorized", "Unauthorized".to_owned())
    }

    /// 410 in a watch: the history no longer reaches back to `requested`.
    pub fn expired(requested: u64, oldest: u64) -> ApiStatus {
        ApiStatus::new(
            410,
            "Expired",
            format!("too old resource version: {requested} ({oldest})"),
        )
    }

    /// 400.
    pub fn bad_request(message: impl Into<String>) -> ApiStatus {
        ApiStatus::new(400, "BadRequest", message.into())
    }

    /// 422 with one cause.
    pub fn invalid(about: About<'_>, field: &str, message: impl Into<String>) -> ApiStatus {
        let message = message.into();
        let kind = about.plural.to_owned();
        ApiStatus::new(
            422,
            "Invalid",
            format!("{} {:?} is invalid: {field}: {message}", kind, about.name),
        )
        .about(about)
        .with_cause(StatusCause {
            reason: "FieldValueInvalid".to_owned(),
            message,
            field: field.to_owned(),
        })
    }

    /// 405.
    pub fn method_not_allowed(method: &str) -> ApiStatus {
        ApiStatus::new(
            405,
            "MethodNotAllowed",
            format!("the server does not allow this method on the requested resource ({method})"),
        )
    }

    /// 415.
    pub fn unsupported_media_type(content_type: &str) -> ApiStatus {
        ApiStatus::new(
            415,
            "UnsupportedMediaType",
            format!("the body of the request was in an unknown format: {content_type}"),
        )
    }

    /// 500.
    pub fn internal(message: impl Into<String>) -> ApiStatus {
        ApiStatus::new(500, "InternalError", message.into())
    }

    /// A failure of any code and reason, as a test injects it.
    pub fn custom(code: u16, reason: &str, message: &str) -> ApiStatus {
        ApiStatus::new(code, reason, message.to_owned())
    }

    /// The `Status` object.
    pub fn to_json(&self) -> Value {
        let mut details = serde_json::Map::new();
        let empty = StatusDetails::default();
        let known = self.details.as_deref().unwrap_or(&empty);
        if let Some(name) = &known.name {
            details.insert("name".into(), json!(name));
        }
        if let Some(group) = &known.group {
            details.insert("group".into(), json!(group));
        }
        if let Some(kind) = &known.kind {
            details.insert("kind".into(), json!(kind));
        }
        if !known.causes.is_empty() {
            let causes: Vec<Value> = known
                .causes
                .iter()
                .map(|c| json!({"reason": c.reason, "message": c.message, "field": c.field}))
                .collect();
            details.insert("causes".into(), Value::Array(causes));
        }
        let mut status = json!({
            "kind": "Status",
            "apiVersion": "v1",
            "metadata": {},
            "status": "Failure",
            "message": self.message,
            "reason": self.reason,
            "code": self.code,
        });
        if !details.is_empty() {
            status["details"] = Value::Object(details);
        }
        status
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const LEASE: About<'static> = About {
        group: "coordination.k8s.io",
        plural: "leases",
        name: "canary-controller",
    };

    #[test]
    fn a_conflict_reads_like_kube_apiserver() {
        let status = ApiStatus::conflict(LEASE).to_json();
        assert_eq!(status["code"], 409);
        assert_eq!(status["reason"], "Conflict");
        assert_eq!(
            status["message"],
            "Operation cannot be fulfilled on leases.coordination.k8s.io \"canary-controller\": \
             the object has been modified; please apply your changes to the latest version and try again"
        );
        assert_eq!(
            status["details"],
            json!({"name": "canary-controller", "group": "coordination.k8s.io", "kind": "leases"})
        );
    }

    #[test]
    fn an_apply_conflict_names_each_manager_and_field() {
        let status = ApiStatus::apply_conflict(
            LEASE,
            &[
                ("git".into(), "v1".into(), ".spec.a".into()),
                ("git".into(), "v1".into(), ".spec.b".into()),
                ("ops".into(), "v1".into(), ".spec.c".into()),
            ],
        );
        assert_eq!(
            status.message,
            "Apply failed with 3 conflicts: conflicts with \"git\" using v1:\n- .spec.a\n- .spec.b\n\
             conflict with \"ops\" using v1: .spec.c"
        );
        assert_eq!(status.causes().len(), 3);
        assert_eq!(status.causes()[2].field, ".spec.c");
    }

    #[test]
    fn forbidden_names_user_verb_resource_and_scope() {
        let status = ApiStatus::forbidden(
            About {
                group: "",
                plural: "secrets",
                name: "token",
            },
            "system:serviceaccount:canary-system:canary-controller",
            "get",
            "",
            "kube-system",
        );
        assert_eq!(
            status.message,
            "secrets \"token\" is forbidden: User \"system:serviceaccount:canary-system:canary-controller\" \
             cannot get resource \"secrets\" in API group \"\" in the namespace \"kube-system\""
        );
    }
}
