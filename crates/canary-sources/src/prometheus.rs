//! `provider.prometheus`: an instant query over Prometheus' HTTP API.
//!
//! As Argo Rollouts does: a vector gives `result` as a list of its sample
//! values (so conditions index it, `result[0]`), a scalar gives a number,
//! NaN and infinities pass through for `isNaN`/`isInf`. Other result types
//! are an error. One difference, on purpose: an empty vector is *not
//! enough data* (retried without counting) rather than an evaluation error.

use std::time::Duration;

use canary_analysis::provider::PrometheusQuery;
use canary_analysis::{MeasurementResult, MetricValue};
use serde_json::Value;

use crate::http::{HttpClient, HttpRequest};

/// Default query timeout when the template sets none.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(10);

/// Runs `query` against its address (or `default_address`).
pub async fn measure(
    http: &HttpClient,
    query: &PrometheusQuery,
    default_address: Option<&str>,
) -> MeasurementResult {
    let Some(address) = query.address.as_deref().or(default_address) else {
        return MeasurementResult::error(
            "no Prometheus address: set provider.prometheus.address or the controller's --prometheus-url",
        );
    };
    let timeout = query.timeout.unwrap_or(DEFAULT_TIMEOUT);
    let headers: Vec<(String, String)> = query
        .headers
        .iter()
        .map(|header| (header.key.clone(), header.value.clone()))
        .collect();
    match send(
        http,
        address,
        &query.query,
        timeout,
        query.insecure,
        &headers,
    )
    .await
    {
        Ok((body, status)) => interpret(&body, status),
        Err(error) => MeasurementResult::error(error),
    }
}

/// Sends an instant query; the answer's JSON and HTTP status, or why
/// there is none (worded with the address).
async fn send(
    http: &HttpClient,
    address: &str,
    query: &str,
    timeout: Duration,
    insecure: bool,
    headers: &[(String, String)],
) -> Result<(Value, u16), String> {
    let url = format!("{}/api/v1/query", address.trim_end_matches('/'));
    let mut request = HttpRequest::get(&url)
        .query("query", query)
        .query("timeout", &format!("{}s", timeout.as_secs().max(1)))
        .timeout(timeout)
        .insecure(insecure);
    for (key, value) in headers {
        request = request.header(key, value);
    }
    let response = http
        .send(request)
        .await
        .map_err(|err| format!("Prometheus at {}: {err}", crate::redact::url(address)))?;
    let body: Value = serde_json::from_slice(&response.body).map_err(|_| {
        format!(
            "Prometheus at {} answered {} with a body that is not JSON: {}",
            crate::redact::url(address),
            response.status,
            response.text_excerpt()
        )
    })?;
    Ok((body, response.status))
}

/// One sample of an instant vector: its labels and value.
#[derive(Debug, Clone, PartialEq)]
pub struct VectorSample {
    /// The series' labels (`__name__` included when the query keeps it).
    pub labels: std::collections::BTreeMap<String, String>,
    /// The value.
    pub value: f64,
}

/// Runs `query` at `address` and returns its instant vector with labels;
/// any other answer is an error naming the query.
pub async fn vector(
    http: &HttpClient,
    address: &str,
    query: &str,
    timeout: Duration,
) -> Result<Vec<VectorSample>, String> {
    let (body, status) = send(http, address, query, timeout, false, &[]).await?;
    if body.get("status").and_then(Value::as_str) != Some("success") {
        let error = body
            .get("error")
            .and_then(Value::as_str)
            .unwrap_or("no error message");
        return Err(format!(
            "Prometheus at {} refused `{query}` ({status}): {error}",
            crate::redact::url(address)
        ));
    }
    let data = body.get("data").unwrap_or(&Value::Null);
    if data.get("resultType").and_then(Value::as_str) != Some("vector") {
        return Err(format!(
            "Prometheus at {} answered `{query}` with no instant vector",
            crate::redact::url(address)
        ));
    }
    let samples = data
        .get("result")
        .and_then(Value::as_array)
        .map(Vec::as_slice)
        .unwrap_or_default();
    samples
        .iter()
        .map(|sample| {
            let value = sample
                .get("value")
                .and_then(sample_value)
                .ok_or_else(|| format!("Prometheus sample without a value: {sample}"))?;
            let labels = sample
                .get("metric")
                .and_then(Value::as_object)
                .map(|labels| {
                    labels
                        .iter()
                        .filter_map(|(k, v)| Some((k.clone(), v.as_str()?.to_owned())))
                        .collect()
                })
                .unwrap_or_default();
            Ok(VectorSample { labels, value })
        })
        .collect()
}

/// Turns an API answer into a measurement.
pub fn interpret(body: &Value, status: u16) -> MeasurementResult {
    if body.get("status").and_then(Value::as_str) != Some("success") {
        let error_type = body
            .get("errorType")
            .and_then(Value::as_str)
            .unwrap_or("unknown");
        let error = body
            .get("error")
            .and_then(Value::as_str)
            .unwrap_or("no error message");
        return MeasurementResult::error(format!(
            "Prometheus query failed ({status}, {error_type}): {error}"
        ));
    }
    let Some(data) = body.get("data") else {
        return MeasurementResult::error("Prometheus answer has no `data`");
    };
    let result = data.get("result");
    match data.get("resultType").and_then(Value::as_str) {
        Some("vector") => {
            let Some(samples) = result.and_then(Value::as_array) else {
                return MeasurementResult::error("Prometheus vector result is not a list");
            };
            if samples.is_empty() {
                return MeasurementResult::not_enough_data("the query returned an empty vector");
            }
            let mut values = Vec::with_capacity(samples.len());
            for sample in samples {
                match sample.get("value").and_then(sample_value) {
                    Some(value) => values.push(MetricValue::Number(value)),
                    None => return MeasurementResult::error(format!("Prometheus sample without a value: {sample}")),
                }
            }
            let count = values.len() as u64;
            MeasurementResult::sampled(MetricValue::List(values), count)
        }
        Some("scalar") => match result.and_then(sample_value) {
            Some(value) => MeasurementResult::value(value),
            None => MeasurementResult::error("Prometheus scalar result without a value"),
        },
        Some(other) => MeasurementResult::error(format!(
            "Prometheus result type {other} is not supported; write a query that returns a vector or a scalar"
        )),
        None => MeasurementResult::error("Prometheus answer has no resultType"),
    }
}

/// A `[timestamp, "value"]` pair's value; Prometheus writes NaN and
/// infinities as `"NaN"`, `"+Inf"`, `"-Inf"`.
fn sample_value(pair: &Value) -> Option<f64> {
    let text = pair.as_array()?.get(1)?.as_str()?;
    match text {
        "NaN" => Some(f64::NAN),
        "+Inf" | "Inf" => Some(f64::INFINITY),
        "-Inf" => Some(f64::NEG_INFINITY),
        other => other.parse().ok(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn vectors_become_lists() {
        let body = json!({"status": "success", "data": {"resultType": "vector", "result": [
            {"metric": {"pod": "a"}, "value": [1.0, "0.5"]},
            {"metric": {"pod": "b"}, "value": [1.0, "NaN"]}
        ]}});
        match interpret(&body, 200) {
            MeasurementResult::Value {
                value: MetricValue::List(items),
                samples: Some(2),
            } => {
                assert_eq!(items[0], MetricValue::Number(0.5));
                assert!(matches!(items[1], MetricValue::Number(n) if n.is_nan()));
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn scalars_become_numbers() {
        let body =
            json!({"status": "success", "data": {"resultType": "scalar", "result": [1.0, "+Inf"]}});
        assert_eq!(
            interpret(&body, 200),
            MeasurementResult::value(f64::INFINITY)
        );
    }

    #[test]
    fn empty_vectors_are_not_enough_data() {
        let body = json!({"status": "success", "data": {"resultType": "vector", "result": []}});
        assert!(matches!(
            interpret(&body, 200),
            MeasurementResult::NotEnoughData(_)
        ));
    }

    #[test]
    fn errors_and_unsupported_types() {
        let body =
            json!({"status": "error", "errorType": "bad_data", "error": "parse error at char 3"});
        match interpret(&body, 400) {
            MeasurementResult::Error(text) => assert!(
                text.contains("bad_data") && text.contains("char 3"),
                "{text}"
            ),
            other => panic!("{other:?}"),
        }
        let body = json!({"status": "success", "data": {"resultType": "matrix", "result": []}});
        assert!(
            matches!(interpret(&body, 200), MeasurementResult::Error(e) if e.contains("matrix"))
        );
        let body = json!({"status": "success", "data": {"resultType": "vector", "result": [{"metric": {}}]}});
        assert!(matches!(interpret(&body, 200), MeasurementResult::Error(_)));
    }
}
