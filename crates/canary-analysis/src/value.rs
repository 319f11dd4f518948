//! What a provider hands back for one measurement: a value (with an
//! optional sample count), an error, or "not enough data".

use std::collections::BTreeMap;
use std::fmt;

/// A measured value, shaped like the JSON-like values Argo's providers
/// pass to conditions: Prometheus gives a number or a list of numbers,
/// a web provider whatever its `jsonPath` selects.
#[derive(Debug, Clone, PartialEq)]
pub enum MetricValue {
    /// No value (`nil` in conditions).
    Null,
    /// A boolean.
    Bool(bool),
    /// A number; NaN and infinities are allowed (Prometheus returns them).
    Number(f64),
    /// A string.
    String(String),
    /// A list, e.g. a Prometheus vector.
    List(Vec<MetricValue>),
    /// A mapping, e.g. a JSON object.
    Map(BTreeMap<String, MetricValue>),
}

impl MetricValue {
    /// From a JSON value (numbers become `Number`).
    pub fn from_json(value: &serde_json::Value) -> MetricValue {
        match value {
            serde_json::Value::Null => MetricValue::Null,
            serde_json::Value::Bool(b) => MetricValue::Bool(*b),
            serde_json::Value::Number(n) => MetricValue::Number(n.as_f64().unwrap_or(f64::NAN)),
            serde_json::Value::String(s) => MetricValue::String(s.clone()),
            serde_json::Value::Array(items) => {
                MetricValue::List(items.iter().map(MetricValue::from_json).collect())
            }
            serde_json::Value::Object(map) => MetricValue::Map(
                map.iter()
                    .map(|(k, v)| (k.clone(), MetricValue::from_json(v)))
                    .collect(),
            ),
        }
    }

    /// Whether this is an empty list (an empty Prometheus vector).
    pub fn is_empty_list(&self) -> bool {
        matches!(self, MetricValue::List(items) if items.is_empty())
    }
}

impl From<f64> for MetricValue {
    fn from(value: f64) -> Self {
        MetricValue::Number(value)
    }
}

impl fmt::Display for MetricValue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            MetricValue::Null => f.write_str("nil"),
            MetricValue::Bool(b) => write!(f, "{b}"),
            MetricValue::Number(n) => write_number(f, *n),
            MetricValue::String(s) => f.write_str(s),
            MetricValue::List(items) => {
                f.write_str("[")?;
                for (i, item) in items.iter().enumerate() {
                    if i > 0 {
                        f.write_str(", ")?;
                    }
                    write!(f, "{item}")?;
                }
                f.write_str("]")
            }
            MetricValue::Map(map) => {
                f.write_str("{")?;
                for (i, (k, v)) in map.iter().enumerate() {
                    if i > 0 {
                        f.write_str(", ")?;
                    }
                    write!(f, "{k}: {v}")?;
                }
                f.write_str("}")
            }
        }
    }
}

/// Numbers for people: whole numbers without a fraction, others with at
/// most four decimals (`0.2571`, `4.6`), NaN and infinities by name.
fn write_number(f: &mut fmt::Formatter<'_>, n: f64) -> fmt::Result {
    if !n.is_finite() {
        return write!(f, "{n}");
    }
    if n.fract() == 0.0 && n.abs() < 1e15 {
        return write!(f, "{}", n as i64);
    }
    let text = format!("{n:.4}");
    let text = text.trim_end_matches('0').trim_end_matches('.');
    if text == "0" || text == "-0" {
        // Too small for four decimals: keep its magnitude visible.
        return write!(f, "{n:.2e}");
    }
    f.write_str(text)
}

/// The outcome of asking a provider for one measurement.
#[derive(Debug, Clone, PartialEq)]
pub enum MeasurementResult {
    /// The provider answered.
    Value {
        /// What it measured.
        value: MetricValue,
        /// How many samples the value stands on (requests in the window,
        /// pods counted), when the provider knows; compared with the
        /// metric's `minSamples`.
        samples: Option<u64>,
    },
    /// The provider could not answer (unreachable, bad query, timeout).
    Error(String),
    /// The provider answered, but with too little data to judge.
    NotEnoughData(String),
}

impl MeasurementResult {
    /// A value without a sample count.
    pub fn value(value: impl Into<MetricValue>) -> MeasurementResult {
        MeasurementResult::Value {
            value: value.into(),
            samples: None,
        }
    }

    /// A value standing on `samples` samples.
    pub fn sampled(value: impl Into<MetricValue>, samples: u64) -> MeasurementResult {
        MeasurementResult::Value {
            value: value.into(),
            samples: Some(samples),
        }
    }

    /// A provider error.
    pub fn error(message: impl Into<String>) -> MeasurementResult {
        MeasurementResult::Error(message.into())
    }

    /// Too little data.
    pub fn not_enough_data(why: impl Into<String>) -> MeasurementResult {
        MeasurementResult::NotEnoughData(why.into())
    }
}
