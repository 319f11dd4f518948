//! One HTTP request: authentication, routing, RBAC, then the verb.
//!
//! Resource URLs follow the API's layout:
//! `/api/v1/[namespaces/<ns>/]<plural>[/<name>[/<subresource>]]` for the
//! core group and `/apis/<group>/<version>/…` for the others. Verbs come
//! from the method (GET on a name: `get`; on a collection: `list`, or
//! `watch` with `?watch=true`; POST: `create`; PUT: `update`; PATCH:
//! `patch`; DELETE: `delete`).
//!
//! Reference: <https://kubernetes.io/docs/reference/using-api/api-concepts/>
//! and <https://kubernetes.io/docs/reference/access-authn-authz/authorization/#determine-the-request-verb>.

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::combinators::BoxBody;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::{Method, Request, Response, StatusCode};
use serde_json::{json, Value};

use crate::discovery;
use crate::patch::PatchKind;
use crate::rbac::{Attributes, Decision, Identity};
use crate::request_log::RecordedRequest;
use crate::resources::ResourceType;
use crate::selectors::{FieldSelector, LabelSelector};
use crate::server::Shared;
use crate::status::ApiStatus;
use crate::store::ListQuery;
use crate::watch::{self, WatchRequest};

/// Response bodies: whole documents or watch streams.
pub type ResponseBody = BoxBody<Bytes, std::io::Error>;

fn full(bytes: Bytes) -> ResponseBody {
    Full::new(bytes).map_err(|never| match never {}).boxed()
}

fn json_response(code: u16, value: &Value) -> Response<ResponseBody> {
    let mut response = Response::new(full(Bytes::from(value.to_string())));
    *response.status_mut() =
        StatusCode::from_u16(code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    response.headers_mut().insert(
        hyper::header::CONTENT_TYPE,
        hyper::header::HeaderValue::from_static("application/json"),
    );
    response
}

fn status_response(status: &ApiStatus) -> Response<ResponseBody> {
    json_response(status.code, &status.to_json())
}

/// A request's query parameters, decoded.
struct Query(Vec<(String, String)>);

impl Query {
    fn get(&self, name: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(key, _)| key == name)
            .map(|(_, value)| value.as_str())
    }

    fn flag(&self, name: &str) -> bool {
        matches!(self.get(name), Some("true" | "1"))
    }
}

/// What a path names.
enum Target {
    /// A document that is not a resource (discovery, version, health).
    Document(Value),
    /// A resource request.
    Resource(ResourceRequest),
}

struct ResourceRequest {
    resource: Arc<ResourceType>,
    namespace: String,
    name: String,
    subresource: String,
    verb: &'static str,
}

impl ResourceRequest {
    fn attributes(&self) -> Attributes {
        Attributes {
            verb: self.verb.to_owned(),
            group: self.resource.group.clone(),
            resource: self.resource.plural.clone(),
            subresource: self.subresource.clone(),
            namespace: self.namespace.clone(),
            name: self.name.clone(),
        }
    }
}

fn verb_of(method: &Method, has_name: bool, watch: bool) -> Result<&'static str, ApiStatus> {
    let verb = match (method.as_str(), has_name) {
        ("GET", true) => "get",
        ("GET", false) if watch => "watch",
        ("GET", false) => "list",
        ("POST", false) => "create",
        ("PUT", true) => "update",
        ("PATCH", true) => "patch",
        ("DELETE", true) => "delete",
        (method, _) => return Err(ApiStatus::method_not_allowed(method)),
    };
    Ok(verb)
}

fn route(shared: &Shared, method: &Method, path: &str, query: &Query) -> Result<Target, ApiStatus> {
    let segments: Vec<&str> = path
        .trim_matches('/')
        .split('/')
        .filter(|s| !s.is_empty())
        .collect();
    let state = shared.lock();
    let registry = state.store.registry();
    let document = |value: Option<Value>| {
        value
            .map(Target::Document)
            .ok_or_else(|| ApiStatus::no_route(path))
    };
    let (group, version, rest) = match segments.as_slice() {
        ["api"] => return Ok(Target::Document(discovery::core_versions(&shared.address))),
        ["api", "v1"] => return document(discovery::resources(registry, "", "v1")),
        ["api", "v1", rest @ ..] => ("", "v1", rest),
        ["apis"] => return Ok(Target::Document(discovery::groups(registry))),
        ["apis", group] => return document(discovery::group(registry, group)),
        ["apis", group, version] => {
            return document(discovery::resources(registry, group, version))
        }
        ["apis", group, version, rest @ ..] => (*group, *version, rest),
        ["version"] => return Ok(Target::Document(discovery::version())),
        ["openapi", "v3"] => return Ok(Target::Document(discovery::openapi_v3_root())),
        ["openapi", "v3", "api", "v1"] => {
            return Ok(Target::Document(discovery::openapi_v3_core()))
        }
        ["healthz" | "livez" | "readyz"] => return Ok(Target::Document(json!("ok"))),
        _ => return Err(ApiStatus::no_route(path)),
    };
    let namespaced_path = rest.len() >= 3
        && rest[0] == "namespaces"
        && !(rest.len() == 3 && matches!(rest[2], "status" | "finalize"));
    let (namespace, rest) = if namespaced_path {
        (rest[1], &rest[2..])
    } else {
        ("", rest)
    };
    let (plural, name, subresource) = match rest {
        [plural] => (*plural, "", ""),
        [plural, name] => (*plural, *name, ""),
        [plural, name, subresource] => (*plural, *name, *subresource),
        _ => return Err(ApiStatus::no_route(path)),
    };
    let resource = registry
        .find(group, version, plural)
        .ok_or_else(|| ApiStatus::no_route(path))?;
    let scope_fits = if resource.namespaced {
        !namespace.is_empty() || name.is_empty()
    } else {
        namespace.is_empty()
    };
    let subresource_fits =
        subresource.is_empty() || (subresource == "status" && resource.status_subresource);
    if !scope_fits || !subresource_fits {
        return Err(ApiStatus::no_route(path));
    }
    let verb = verb_of(method, !name.is_empty(), query.flag("watch"))?;
    if !subresource.is_empty() && !matches!(verb, "get" | "update" | "patch") {
        return Err(ApiStatus::method_not_allowed(method.as_str()));
    }
    Ok(Target::Resource(ResourceRequest {
        resource,
        namespace: namespace.to_owned(),
        name: name.to_owned(),
        subresource: subresource.to_owned(),
        verb,
    }))
}

fn bearer_token(request: &hyper::http::request::Parts) -> Option<&str> {
    request
        .headers
        .get(hyper::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(str::trim)
}

fn header(parts: &hyper::http::request::Parts, name: hyper::header::HeaderName) -> String {
    parts
        .headers
        .get(name)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_owned()
}

/// Answers one request; never fails (errors are `Status` answers).
pub async fn handle(
    shared: Arc<Shared>,
    request: Request<Incoming>,
) -> Result<Response<ResponseBody>, Infallible> {
    let (parts, body) = request.into_parts();
    let body = match body.collect().await {
        Ok(collected) => collected.to_bytes(),
        Err(_) => Bytes::new(),
    };
    let raw_query = parts.uri.query().unwrap_or("").to_owned();
    let query = Query(
        form_urlencoded::parse(raw_query.as_bytes())
            .into_owned()
            .collect(),
    );
    let mut record = RecordedRequest {
        user: String::new(),
        method: parts.method.as_str().to_owned(),
        path: parts.uri.path().to_owned(),
        query: raw_query,
        attributes: Attributes {
            verb: parts.method.as_str().to_ascii_lowercase(),
            ..Attributes::default()
        },
        content_type: header(&parts, hyper::header::CONTENT_TYPE),
        field_manager: query.get("fieldManager").unwrap_or("").to_owned(),
        decision: None,
        code: 0,
    };
    let identity = bearer_token(&parts).and_then(|token| shared.lock().tokens.get(token).cloned());
    let response = match identity {
        None => status_response(&ApiStatus::unauthorized()),
        Some(identity) => {
            record.user = identity.username.clone();
            let user_agent = header(&parts, hyper::header::USER_AGENT);
            match route(&shared, &parts.method, parts.uri.path(), &query) {
                Err(status) => status_response(&status),
                Ok(Target::Document(document)) => json_response(200, &document),
                Ok(Target::Resource(target)) => {
                    record.attributes = target.attributes();
                    let call = Call {
                        target,
                        identity: &identity,
                        query: &query,
                        body: &body,
                        content_type: &record.content_type,
                        user_agent: &user_agent,
                    };
                    let (decision, response) = serve(&shared, call);
                    record.decision = Some(decision);
                    response
                }
            }
        }
    };
    record.code = response.status().as_u16();
    shared.lock().log.push(record);
    Ok(response)
}

struct Call<'a> {
    target: ResourceRequest,
    identity: &'a Identity,
    query: &'a Query,
    body: &'a [u8],
    content_type: &'a str,
    user_agent: &'a str,
}

fn parse_body(body: &[u8], yaml: bool) -> Result<Value, ApiStatus> {
    let parsed = if yaml {
        serde_yaml::from_slice::<Value>(body).map_err(|e| e.to_string())
    } else {
        serde_json::from_slice::<Value>(body)
            .or_else(|_| serde_yaml::from_slice::<Value>(body))
            .map_err(|e| e.to_string())
    };
    parsed.map_err(|error| {
        ApiStatus::bad_request(format!("the request body is not a valid object: {error}"))
    })
}

fn serve(shared: &Arc<Shared>, call: Call<'_>) -> (Decision, Response<ResponseBody>) {
    let target = &call.target;
    let attributes = target.attributes();
    let decision = shared.lock().policy().authorize(call.identity, &attributes);
    if !decision.allowed() {
        let status = ApiStatus::forbidden(
            target.resource.about(&target.name),
            &call.identity.username,
            target.verb,
            &target.subresource,
            &target.namespace,
        );
        return (decision, status_response(&status));
    }
    if let Some(status) = shared.lock().take_fault(&attributes) {
        return (decision, status_response(&status));
    }
    let response = match run(shared, &call) {
        Ok(response) => response,
        Err(status) => status_response(&status),
    };
    (decision, response)
}

fn field_manager(call: &Call<'_>) -> String {
    match call.query.get("fieldManager") {
        Some(manager) if !manager.is_empty() => manager.to_owned(),
        _ => {
            let agent = call.user_agent.split('/').next().unwrap_or("").trim();
            if agent.is_empty() {
                "unknown".to_owned()
            } else {
                agent.to_owned()
            }
        }
    }
}

/// With `fieldValidation=Strict` (kubectl's default), fields a custom
/// resource's schema does not declare are an error instead of being
/// pruned.
/// <https://kubernetes.io/docs/reference/using-api/api-concepts/#field-validation>
fn validate_fields(call: &Call<'_>, body: &Value) -> Result<(), ApiStatus> {
    if call.query.get("fieldValidation") != Some("Strict") || !call.target.resource.custom {
        return Ok(());
    }
    let mut content = body.clone();
    if let Some(map) = content.as_object_mut() {
        for key in ["apiVersion", "kind", "metadata"] {
            map.remove(key);
        }
    }
    let unknown = call.target.resource.schema.unknown_fields(&content, "");
    if unknown.is_empty() {
        return Ok(());
    }
    let fields: Vec<String> = unknown
        .iter()
        .map(|f| format!("unknown field {f:?}"))
        .collect();
    Err(ApiStatus::bad_request(format!(
        "strict decoding error: {}",
        fields.join(", ")
    )))
}

fn run(shared: &Arc<Shared>, call: &Call<'_>) -> Result<Response<ResponseBody>, ApiStatus> {
    let target = &call.target;
    let resource = &target.resource;
    let status = target.subresource == "status";
    if call.query.get("dryRun").is_some() {
        return Err(ApiStatus::bad_request(
            "dryRun is not supported by the test API server",
        ));
    }
    match target.verb {
        "get" => {
            let object = shared
                .lock()
                .store
                .get(resource, &target.namespace, &target.name)?;
            Ok(json_response(200, &object))
        }
        "list" => {
            let listed = shared.lock().store.list(resource, &list_query(call)?)?;
            let mut metadata = json!({"resourceVersion": listed.revision.to_string()});
            if let Some(token) = listed.continue_token {
                metadata["continue"] = json!(token);
            }
            Ok(json_response(
                200,
                &json!({
                    "apiVersion": resource.api_version(),
                    "kind": format!("{}List", resource.kind),
                    "metadata": metadata,
                    "items": listed.items,
                }),
            ))
        }
        "watch" => {
            let query = list_query(call)?;
            let request = WatchRequest {
                resource: Arc::clone(resource),
                namespace: query.namespace,
                resource_version: call.query.get("resourceVersion").map(str::to_owned),
                labels: query.labels,
                fields: query.fields,
                bookmarks: call.query.flag("allowWatchBookmarks"),
                send_initial_events: call.query.flag("sendInitialEvents"),
                timeout: call
                    .query
                    .get("timeoutSeconds")
                    .and_then(|t| t.parse::<u64>().ok())
                    .map(Duration::from_secs),
            };
            let body = watch::start(Arc::clone(shared), request)?;
            let mut response = Response::new(body.boxed());
            response.headers_mut().insert(
                hyper::header::CONTENT_TYPE,
                hyper::header::HeaderValue::from_static("application/json"),
            );
            Ok(response)
        }
        "create" => {
            let body = parse_body(call.body, false)?;
            validate_fields(call, &body)?;
            let created = shared.lock().store.create(
                resource,
                &target.namespace,
                body,
                &field_manager(call),
            )?;
            Ok(json_response(201, &created))
        }
        "update" => {
            let body = parse_body(call.body, false)?;
            validate_fields(call, &body)?;
            let updated = shared.lock().store.replace(
                resource,
                &target.namespace,
                &target.name,
                body,
                &field_manager(call),
                status,
            )?;
            Ok(json_response(200, &updated))
        }
        "patch" => {
            let kind = PatchKind::from_content_type(call.content_type)
                .ok_or_else(|| ApiStatus::unsupported_media_type(call.content_type))?;
            let force = call.query.flag("force");
            if kind == PatchKind::Apply {
                if call.query.get("fieldManager").is_none_or(str::is_empty) {
                    return Err(ApiStatus::bad_request(
                        "PATCH requests with apply content type require fieldManager",
                    ));
                }
            } else if call.query.get("force").is_some() {
                return Err(ApiStatus::bad_request(
                    "force may not be set for non-apply patch",
                ));
            }
            let body = parse_body(call.body, kind == PatchKind::Apply)?;
            if kind != PatchKind::Json {
                validate_fields(call, &body)?;
            }
            let patched = shared.lock().store.patch(
                resource,
                &target.namespace,
                &target.name,
                kind,
                body,
                &field_manager(call),
                force,
                status,
            )?;
            Ok(json_response(200, &patched))
        }
        "delete" => {
            let deleted = shared
                .lock()
                .store
                .delete(resource, &target.namespace, &target.name)?;
            Ok(json_response(200, &deleted))
        }
        verb => Err(ApiStatus::method_not_allowed(verb)),
    }
}

fn list_query(call: &Call<'_>) -> Result<ListQuery, ApiStatus> {
    let target = &call.target;
    Ok(ListQuery {
        namespace: (!target.namespace.is_empty()).then(|| target.namespace.clone()),
        labels: LabelSelector::parse(call.query.get("labelSelector").unwrap_or(""))
            .map_err(ApiStatus::bad_request)?,
        fields: FieldSelector::parse(call.query.get("fieldSelector").unwrap_or(""))
            .map_err(ApiStatus::bad_request)?,
        limit: call.query.get("limit").and_then(|l| l.parse().ok()),
        continue_token: call
            .query
            .get("continue")
            .filter(|c| !c.is_empty())
            .map(str::to_owned),
    })
}
