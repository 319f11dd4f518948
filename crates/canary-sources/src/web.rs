//! `provider.web`: call a URL and pick `result` out of its JSON answer with
//! a JSONPath, as Argo Rollouts' web provider does. A non-2xx answer, a
//! body that is not JSON, or a path that selects nothing is an error.

use canary_analysis::provider::{WebMethod, WebQuery};
use canary_analysis::{MeasurementResult, MetricValue};
use serde_json::Value;
use serde_json_path::JsonPath;

use crate::http::{HttpClient, HttpRequest, Method};
use crate::redact;

/// Calls the URL and extracts the value.
pub async fn measure(http: &HttpClient, query: &WebQuery) -> MeasurementResult {
    let method = match query.method {
        WebMethod::Get => Method::Get,
        WebMethod::Post => Method::Post,
        WebMethod::Put => Method::Put,
    };
    let mut request = HttpRequest::new(method, &query.url)
        .timeout(query.timeout)
        .insecure(query.insecure);
    for header in &query.headers {
        request = request.header(&header.key, &header.value);
    }
    if let Some(json) = &query.json_body {
        request = request
            .header("content-type", "application/json")
            .body(json.to_string().into_bytes());
    } else if let Some(body) = &query.body {
        request = request.body(body.clone().into_bytes());
    }
    // The URL as people see it: a secret in its user info or query
    // stays out of the message.
    let shown = redact::url(&query.url);
    let response = match http.send(request).await {
        Ok(response) => response,
        Err(err) => return MeasurementResult::error(format!("{shown}: {err}")),
    };
    if !response.is_success() {
        return MeasurementResult::error(format!(
            "{shown} answered {}: {}",
            response.status,
            response.text_excerpt()
        ));
    }
    let body: Value = match serde_json::from_slice(&response.body) {
        Ok(body) => body,
        Err(err) => {
            return MeasurementResult::error(format!(
                "{shown} answered with a body that is not JSON ({err})"
            ))
        }
    };
    match &query.json_path {
        None => MeasurementResult::value(MetricValue::from_json(&body)),
        Some(path) => match select(&body, path) {
            Ok(value) => MeasurementResult::value(MetricValue::from_json(&value)),
            Err(err) => MeasurementResult::error(err),
        },
    }
}

/// Evaluates a Kubernetes-style JSONPath (`{$.data.ok}`, `{.data.ok}` or
/// plain `$.data.ok`): one match gives that value, several a list.
pub fn select(document: &Value, path: &str) -> Result<Value, String> {
    check_path_shape(path)?;
    let trimmed = path.trim();
    let inner = trimmed
        .strip_prefix('{')
        .and_then(|p| p.strip_suffix('}'))
        .unwrap_or(trimmed)
        .trim();
    let normalised = if inner.starts_with('$') {
        inner.to_owned()
    } else if inner.starts_with('.') || inner.starts_with('[') {
        format!("${inner}")
    } else {
        format!("$.{inner}")
    };
    let compiled = JsonPath::parse(&normalised)
        .map_err(|err| format!("jsonPath {path:?} does not parse: {err}"))?;
    let found = compiled.query(document).all();
    match found.as_slice() {
        [] => Err(format!("jsonPath {path:?} selected nothing in the answer")),
        [one] => Ok((*one).clone()),
        many => Ok(Value::Array(many.iter().map(|v| (*v).clone()).collect())),
    }
}

/// The longest jsonPath accepted, in bytes.
pub const MAX_PATH_LENGTH: usize = 512;
/// The deepest nesting of `[` in a jsonPath: the JSONPath parser takes
/// time exponential in nested filters (`[?(@.a[?(@.b[?(…)])])]`, found by
/// `make fuzz`).
pub const MAX_PATH_NESTING: usize = 4;

/// Refuses a jsonPath whose size or nesting would make parsing slow.
fn check_path_shape(path: &str) -> Result<(), String> {
    if path.len() > MAX_PATH_LENGTH {
        return Err(format!(
            "jsonPath is {} bytes long; at most {MAX_PATH_LENGTH}",
            path.len()
        ));
    }
    let mut depth = 0usize;
    for c in path.chars() {
        match c {
            '[' => {
                depth += 1;
                if depth > MAX_PATH_NESTING {
                    return Err(format!(
                        "jsonPath nests `[` more than {MAX_PATH_NESTING} deep"
                    ));
                }
            }
            ']' => depth = depth.saturating_sub(1),
            _ => {}
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn deeply_nested_paths_are_refused_before_parsing() {
        let doc = json!({"a": 1});
        let deep = format!("$.a{}", "[?(@.b".repeat(12));
        let err = select(&doc, &deep).expect_err("refused");
        assert!(err.contains("nests `[`"), "{err}");
        let long = format!("$.{}", "a".repeat(MAX_PATH_LENGTH));
        assert!(select(&doc, &long)
            .expect_err("refused")
            .contains("bytes long"));
    }

    #[test]
    fn kubernetes_style_paths() {
        let doc = json!({"data": {"ok": true, "rate": 0.97, "items": [1, 2]}});
        assert_eq!(select(&doc, "{$.data.ok}").unwrap(), json!(true));
        assert_eq!(select(&doc, "{.data.rate}").unwrap(), json!(0.97));
        assert_eq!(select(&doc, "$.data.items[1]").unwrap(), json!(2));
        assert_eq!(select(&doc, "{$.data.items[*]}").unwrap(), json!([1, 2]));
        assert!(select(&doc, "{$.data.missing}")
            .unwrap_err()
            .contains("selected nothing"));
        assert!(select(&doc, "{$.data[}")
            .unwrap_err()
            .contains("does not parse"));
    }
}
