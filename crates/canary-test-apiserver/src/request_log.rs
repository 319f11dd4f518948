//! Every request the server answered: who sent it, what RBAC made of it,
//! and the answer's code, so a test can assert that every call an
//! identity made was allowed by the shipped RBAC.

use crate::rbac::{Attributes, Decision};

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
    /// What was asked, as RBAC sees it; for paths that are not resources,
    /// only the verb (the lower-case method).
    pub attributes: Attributes,
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
        let a = &self.attributes;
        if a.resource.is_empty() {
            return format!("{} {}", a.verb, self.path);
        }
        let mut text = a.verb.clone();
        text.push(' ');
        text.push_str(&a.resource);
        if !a.subresource.is_empty() {
            text.push('/');
            text.push_str(&a.subresource);
        }
        if !a.group.is_empty() {
            text.push('.');
            text.push_str(&a.group);
        }
        if !a.name.is_empty() {
            text.push_str(&format!(" {:?}", a.name));
        }
        if !a.namespace.is_empty() {
            text.push_str(&format!(" in namespace {:?}", a.namespace));
        }
        text
    }
}
