//! Every request the server answered: who sent it, what RBAC made of it,
//! and the answer's code, so a test can assert that every call an
//! identity made was allowed by the shipped RBAC.

use crate::rbac::Decision;

/// One request as the server saw it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecordedRequest {
    /// The authenticated username; empty when the token was missing or
    /// unknown.
    pub user: String,
    /// HTTP method.
    pub method: String,
    /// Path, without the query.
    pub path: String,
    /// Raw query, without `?`.
    pub query: String,
    /// The RBAC verb (`get`, `list`, `watch`, `create`, `update`, `patch`,
    /// `delete`); the lower-case method for paths that are not resources.
    pub verb: String,
    /// API group of the resource; empty for the core group.
    pub group: String,
    /// Resource plural; empty for paths that are not resources.
    pub resource: String,
    /// Subresource (`status`) or empty.
    pub subresource: String,
    /// Namespace, or empty.
    pub namespace: String,
    /// Object name, or empty.
    pub name: String,
    /// `Content-Type` of the body.
    pub content_type: String,
    /// `fieldManager` of the query.
    pub field_manager: String,
    /// RBAC's decision; `None` for discovery and unauthenticated requests.
    pub decision: Option<Decision>,
    /// The HTTP status code answered.
    pub code: u16,
}

impl RecordedRequest {
    /// Whether RBAC allowed it (discovery counts as allowed).
    pub fn allowed(&self) -> bool {
        !self.user.is_empty() && self.decision.as_ref().is_none_or(Decision::allowed)
    }

    /// `patch deployments.apps "web-v2" in namespace "shop"`, as RBAC
    /// errors read.
    pub fn describe(&self) -> String {
        if self.resource.is_empty() {
            return format!("{} {}", self.verb, self.path);
        }
        let mut text = self.verb.clone();
        text.push(' ');
        text.push_str(&self.resource);
        if !self.subresource.is_empty() {
            text.push('/');
            text.push_str(&self.subresource);
        }
        if !self.group.is_empty() {
            text.push('.');
            text.push_str(&self.group);
        }
        if !self.name.is_empty() {
            text.push_str(&format!(" {:?}", self.name));
        }
        if !self.namespace.is_empty() {
            text.push_str(&format!(" in namespace {:?}", self.namespace));
        }
        text
    }
}
