//! Failures of calls to the Kubernetes API, typed by what an operator does
//! about them (fix RBAC, install a CRD, wait for the API server) and worded
//! like the API server words them.

use std::fmt;

use kube::core::{ApiResource, Status};

/// The reason kube-client gives a `Status` it made up because the error
/// body was not one.
const UNPARSED_ERROR_REASON: &str = "Failed to parse error data";

/// Longest part of an unreadable error body kept in the error.
const MAX_BODY_IN_ERROR: usize = 256;

/// What the controller asked the API server to do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verb {
    /// List objects by label selector.
    List,
    /// Server-side apply of one object.
    Apply,
    /// Read one object.
    Get,
    /// Create one object.
    Create,
    /// Replace one object (or its status) as a whole.
    Update,
    /// Merge-patch one object.
    Patch,
}

impl fmt::Display for Verb {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Verb::List => "list",
            Verb::Apply => "apply",
            Verb::Get => "get",
            Verb::Create => "create",
            Verb::Update => "update",
            Verb::Patch => "patch",
        })
    }
}

/// The call an error is about.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiCall {
    /// What was asked.
    pub verb: Verb,
    /// The resource as the API server names it in messages: the plural,
    /// then the group if any (`pods`, `wasmplugins.extensions.istio.io`).
    pub resource: String,
    /// The object's name; `None` for a list.
    pub name: Option<String>,
    /// The namespace.
    pub namespace: String,
}

impl ApiCall {
    /// A list of `resource` in `namespace`.
    pub fn list(resource: &ApiResource, namespace: &str) -> ApiCall {
        ApiCall {
            verb: Verb::List,
            resource: qualified_resource(resource),
            name: None,
            namespace: namespace.to_owned(),
        }
    }

    /// A server-side apply of the object `name` in `namespace`.
    pub fn apply(resource: &ApiResource, namespace: &str, name: &str) -> ApiCall {
        ApiCall {
            verb: Verb::Apply,
            resource: qualified_resource(resource),
            name: Some(name.to_owned()),
            namespace: namespace.to_owned(),
        }
    }

    /// A read of the object `name` in `namespace`.
    pub fn get(resource: &ApiResource, namespace: &str, name: &str) -> ApiCall {
        ApiCall {
            verb: Verb::Get,
            resource: qualified_resource(resource),
            name: Some(name.to_owned()),
            namespace: namespace.to_owned(),
        }
    }

    /// Any call: `verb` on the object `name` (all objects when `None`) of
    /// `resource` in `namespace` (empty for a cluster-scoped resource).
    pub fn new(verb: Verb, resource: &ApiResource, namespace: &str, name: Option<&str>) -> ApiCall {
        ApiCall {
            verb,
            resource: qualified_resource(resource),
            name: name.map(str::to_owned),
            namespace: namespace.to_owned(),
        }
    }

    /// ` in namespace "shop"`, or nothing for a cluster-scoped call.
    pub fn place(&self) -> String {
        if self.namespace.is_empty() {
            String::new()
        } else {
            format!(" in namespace {:?}", self.namespace)
        }
    }

    /// The object as the API server names it: `wasmplugins.extensions.istio.io "canary"`,
    /// or just the resource for a list.
    pub fn object(&self) -> String {
        match &self.name {
            Some(name) => format!("{} {name:?}", self.resource),
            None => self.resource.clone(),
        }
    }
}

impl fmt::Display for ApiCall {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}{}", self.verb, self.object(), self.place())
    }
}

fn qualified_resource(resource: &ApiResource) -> String {
    if resource.group.is_empty() {
        resource.plural.clone()
    } else {
        format!("{}.{}", resource.plural, resource.group)
    }
}

/// A call to the API server that did not succeed. (`call` is boxed to keep
/// the error small on the happy path.)
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// 404: the object, its namespace, or the resource type itself (CRD
    /// or API service not installed) does not exist.
    #[error("{} not found{}", .call.object(), .call.place())]
    NotFound { call: Box<ApiCall>, message: String },
    /// 403: the controller's service account lacks the permission.
    #[error("the controller may not {call} (check its RBAC): {message}")]
    Forbidden { call: Box<ApiCall>, message: String },
    /// 401: the credentials were refused.
    #[error("the API server did not accept the controller's credentials to {call}: {message}")]
    Unauthorized { call: Box<ApiCall>, message: String },
    /// 409: a conflict, e.g. another field manager owns the field.
    #[error("conflict on {call}: {message}")]
    Conflict { call: Box<ApiCall>, message: String },
    /// 422: the object failed the API server's validation.
    #[error("the API server rejected {call} as invalid: {message}")]
    Invalid { call: Box<ApiCall>, message: String },
    /// 5xx with a `Status` body.
    #[error("the API server failed to {call} ({code}): {message}")]
    ServerError {
        call: Box<ApiCall>,
        code: u16,
        message: String,
    },
    /// Any other 4xx with a `Status` body (400, 405, 429…).
    #[error("the API server refused to {call} ({code} {reason}): {message}")]
    Refused {
        call: Box<ApiCall>,
        code: u16,
        reason: String,
        message: String,
    },
    /// An error status whose body is not a Kubernetes `Status` (a proxy's
    /// HTML page, plain text); `body` is its start.
    #[error("the API server answered {code} to {call} with a body that is not a Kubernetes Status: {body:?}")]
    UnreadableError {
        call: Box<ApiCall>,
        code: u16,
        body: String,
    },
    /// A success status whose body is not what the call returns.
    #[error("unexpected answer to {call}: {source}")]
    UnexpectedAnswer {
        call: Box<ApiCall>,
        #[source]
        source: kube::Error,
    },
    /// The request could not be built (an empty or malformed object name);
    /// nothing was sent.
    #[error("cannot build the request to {call}: {source}")]
    InvalidRequest {
        call: Box<ApiCall>,
        #[source]
        source: kube::Error,
    },
    /// No answer: connection refused, TLS failure, timeout.
    #[error("cannot reach the API server to {call}: {source}")]
    Unreachable {
        call: Box<ApiCall>,
        #[source]
        source: kube::Error,
    },
}

impl ApiError {
    /// Classifies what kube-client returned for `call`.
    pub fn from_kube(call: ApiCall, error: kube::Error) -> ApiError {
        let call = Box::new(call);
        match error {
            kube::Error::Api(status) => ApiError::from_status(call, *status),
            source @ (kube::Error::SerdeError(_) | kube::Error::FromUtf8(_)) => {
                ApiError::UnexpectedAnswer { call, source }
            }
            source @ kube::Error::BuildRequest(_) => ApiError::InvalidRequest { call, source },
            source => ApiError::Unreachable { call, source },
        }
    }

    fn from_status(call: Box<ApiCall>, status: Status) -> ApiError {
        let Status {
            code,
            message,
            reason,
            ..
        } = status;
        if reason == UNPARSED_ERROR_REASON {
            let body = message.chars().take(MAX_BODY_IN_ERROR).collect();
            return ApiError::UnreadableError { call, code, body };
        }
        match code {
            401 => ApiError::Unauthorized { call, message },
            403 => ApiError::Forbidden { call, message },
            404 => ApiError::NotFound { call, message },
            409 => ApiError::Conflict { call, message },
            422 => ApiError::Invalid { call, message },
            500..=599 => ApiError::ServerError {
                call,
                code,
                message,
            },
            _ => ApiError::Refused {
                call,
                code,
                reason,
                message,
            },
        }
    }

    /// The call that failed.
    pub fn call(&self) -> &ApiCall {
        match self {
            ApiError::NotFound { call, .. }
            | ApiError::Forbidden { call, .. }
            | ApiError::Unauthorized { call, .. }
            | ApiError::Conflict { call, .. }
            | ApiError::Invalid { call, .. }
            | ApiError::ServerError { call, .. }
            | ApiError::Refused { call, .. }
            | ApiError::UnreadableError { call, .. }
            | ApiError::UnexpectedAnswer { call, .. }
            | ApiError::InvalidRequest { call, .. }
            | ApiError::Unreachable { call, .. } => call,
        }
    }

    /// Whether the same call may succeed later without anyone changing the
    /// cluster: server errors, throttling (429) and an unreachable server.
    pub fn is_transient(&self) -> bool {
        match self {
            ApiError::ServerError { .. } | ApiError::Unreachable { .. } => true,
            ApiError::Refused { code, .. } | ApiError::UnreadableError { code, .. } => {
                *code == 429 || *code >= 500
            }
            _ => false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use kube::core::GroupVersionKind;

    fn wasm_plugins() -> ApiResource {
        ApiResource::from_gvk_with_plural(
            &GroupVersionKind::gvk("extensions.istio.io", "v1alpha1", "WasmPlugin"),
            "wasmplugins",
        )
    }

    fn status(code: u16, reason: &str, message: &str) -> Status {
        Status::failure(message, reason).with_code(code)
    }

    fn apply_canary() -> ApiCall {
        ApiCall::apply(&wasm_plugins(), "shop", "canary")
    }

    #[test]
    fn calls_name_the_resource_like_the_api_server() {
        assert_eq!(
            apply_canary().to_string(),
            "apply wasmplugins.extensions.istio.io \"canary\" in namespace \"shop\""
        );
        let pods = ApiResource::erase::<k8s_openapi::api::core::v1::Pod>(&());
        assert_eq!(
            ApiCall::list(&pods, "shop").to_string(),
            "list pods in namespace \"shop\""
        );
    }

    #[test]
    fn cluster_scoped_calls_name_no_namespace() {
        let templates = ApiResource::from_gvk_with_plural(
            &GroupVersionKind::gvk("argoproj.io", "v1alpha1", "ClusterAnalysisTemplate"),
            "clusteranalysistemplates",
        );
        let call = ApiCall::new(Verb::Get, &templates, "", Some("errors"));
        assert_eq!(
            call.to_string(),
            "get clusteranalysistemplates.argoproj.io \"errors\""
        );
        let error = ApiError::from_kube(
            call,
            kube::Error::Api(status(404, "NotFound", "gone").boxed()),
        );
        assert_eq!(
            error.to_string(),
            "clusteranalysistemplates.argoproj.io \"errors\" not found"
        );
    }

    #[test]
    fn statuses_become_typed_errors() {
        let classify = |code, reason| {
            ApiError::from_kube(
                apply_canary(),
                kube::Error::Api(status(code, reason, "details").boxed()),
            )
        };
        assert!(matches!(
            classify(401, "Unauthorized"),
            ApiError::Unauthorized { .. }
        ));
        assert!(matches!(
            classify(403, "Forbidden"),
            ApiError::Forbidden { .. }
        ));
        assert!(matches!(
            classify(404, "NotFound"),
            ApiError::NotFound { .. }
        ));
        assert!(matches!(
            classify(409, "Conflict"),
            ApiError::Conflict { .. }
        ));
        assert!(matches!(classify(422, "Invalid"), ApiError::Invalid { .. }));
        assert!(matches!(
            classify(503, "ServiceUnavailable"),
            ApiError::ServerError { code: 503, .. }
        ));
        assert!(matches!(
            classify(429, "TooManyRequests"),
            ApiError::Refused { code: 429, .. }
        ));
        assert!(classify(429, "TooManyRequests").is_transient());
        assert!(classify(500, "InternalError").is_transient());
        assert!(!classify(403, "Forbidden").is_transient());
        assert_eq!(
            classify(404, "NotFound").to_string(),
            "wasmplugins.extensions.istio.io \"canary\" not found in namespace \"shop\""
        );
    }

    #[test]
    fn unparsed_bodies_are_kept_short() {
        let long = "x".repeat(1000);
        let error = ApiError::from_kube(
            apply_canary(),
            kube::Error::Api(status(502, UNPARSED_ERROR_REASON, &long).boxed()),
        );
        match error {
            ApiError::UnreadableError { code, body, .. } => {
                assert_eq!(code, 502);
                assert_eq!(body.len(), MAX_BODY_IN_ERROR);
            }
            other => panic!("{other:?}"),
        }
    }
}
