//! `successCondition` / `failureCondition`: expressions in the language of
//! github.com/expr-lang/expr, which Argo Rollouts uses, evaluated by the
//! `expr-lang` crate (a Rust implementation of that language) with the
//! functions Argo adds: `isNaN`, `isInf`, `isNil`, `default`, `asInt`,
//! `asFloat`.

use std::fmt;
use std::panic::{self, AssertUnwindSafe};
use std::sync::LazyLock;

use expr::{Context, Environment, Program, Value};

use crate::phase::MeasurementPhase;
use crate::value::MetricValue;

/// A parsed condition.
#[derive(Clone)]
pub struct Condition {
    source: String,
    program: Program,
}

impl fmt::Debug for Condition {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("Condition").field(&self.source).finish()
    }
}

impl PartialEq for Condition {
    fn eq(&self, other: &Self) -> bool {
        self.source == other.source
    }
}

/// The names a condition may use besides the language's own built-ins.
pub const ARGO_FUNCTIONS: [&str; 6] = ["isNaN", "isInf", "isNil", "default", "asInt", "asFloat"];

static ENVIRONMENT: LazyLock<Environment<'static>> = LazyLock::new(|| {
    let mut env = Environment::new();
    env.add_function("isNaN", |call| match call.args.as_slice() {
        [Value::Float(f)] => Ok(Value::Bool(f.is_nan())),
        [Value::Integer(_)] => Ok(Value::Bool(false)),
        [other] => Err(expr::Error::ExprError(format!(
            "isNaN() needs a number, got {other:?}"
        ))),
        _ => Err(arity("isNaN", 1)),
    });
    env.add_function("isInf", |call| match call.args.as_slice() {
        [Value::Float(f)] => Ok(Value::Bool(f.is_infinite())),
        [Value::Integer(_)] => Ok(Value::Bool(false)),
        [other] => Err(expr::Error::ExprError(format!(
            "isInf() needs a number, got {other:?}"
        ))),
        _ => Err(arity("isInf", 1)),
    });
    env.add_function("isNil", |call| match call.args.as_slice() {
        [value] => Ok(Value::Bool(value.is_nil())),
        _ => Err(arity("isNil", 1)),
    });
    env.add_function("default", |call| match call.args.as_slice() {
        [value, fallback] if value.is_nil() => Ok(fallback.clone()),
        [value, _] => Ok(value.clone()),
        _ => Err(arity("default", 2)),
    });
    env.add_function("asInt", |call| match call.args.as_slice() {
        [Value::Integer(i)] => Ok(Value::Integer(*i)),
        // Go's int64(f): truncation toward zero.
        [Value::Float(f)] => Ok(Value::Integer(*f as i64)),
        [Value::String(s)] => s
            .parse::<i64>()
            .map(Value::Integer)
            .map_err(|err| expr::Error::ExprError(format!("asInt({s:?}): {err}"))),
        [other] => Err(expr::Error::ExprError(format!(
            "asInt() not supported on {other:?}"
        ))),
        _ => Err(arity("asInt", 1)),
    });
    env.add_function("asFloat", |call| match call.args.as_slice() {
        [Value::Integer(i)] => Ok(Value::Float(*i as f64)),
        [Value::Float(f)] => Ok(Value::Float(*f)),
        [Value::String(s)] => s
            .trim()
            .parse::<f64>()
            .map(Value::Float)
            .map_err(|err| expr::Error::ExprError(format!("asFloat({s:?}): {err}"))),
        [other] => Err(expr::Error::ExprError(format!(
            "asFloat() not supported on {other:?}"
        ))),
        _ => Err(arity("asFloat", 1)),
    });
    env
});

fn arity(name: &str, n: usize) -> expr::Error {
    expr::Error::ExprError(format!(
        "{name}() takes {n} argument{}",
        if n == 1 { "" } else { "s" }
    ))
}

/// Values of `result` tried at parse time so that a misspelt name
/// (`reslt`, `isNan`) is refused when the template is read, not when the
/// first measurement arrives. The language reports unknown names only
/// when it reaches them, hence several shapes of `result`.
fn probes() -> [Value; 6] {
    [
        Value::Float(1.0),
        Value::Array(vec![Value::Float(1.0)]),
        Value::Nil,
        Value::String("1".into()),
        Value::Bool(true),
        std::iter::empty::<(String, Value)>().collect(),
    ]
}

/// The longest condition accepted, in bytes.
pub const MAX_LENGTH: usize = 1024;
/// The deepest nesting of brackets of any kind.
pub const MAX_NESTING: usize = 16;
/// The deepest nesting of index brackets (`a[b[c[0]]]`): the language's
/// parser takes time exponential in it (about doubling per level).
pub const MAX_INDEX_NESTING: usize = 4;

/// Refuses conditions whose size or nesting would make the language's
/// parser slow, before it sees them.
fn check_shape(source: &str) -> Result<(), String> {
    if source.len() > MAX_LENGTH {
        return Err(format!(
            "is {} bytes long; a condition may be at most {MAX_LENGTH}",
            source.len()
        ));
    }
    let mut open: Vec<char> = Vec::new();
    let mut quote: Option<char> = None;
    let mut escaped = false;
    for c in source.chars() {
        if let Some(q) = quote {
            if escaped {
                escaped = false;
            } else if c == '\\' {
                escaped = true;
            } else if c == q {
                quote = None;
            }
            continue;
        }
        match c {
            '"' | '\'' | '`' => quote = Some(c),
            '(' | '[' | '{' => {
                open.push(c);
                if open.len() > MAX_NESTING {
                    return Err(format!("nests brackets more than {MAX_NESTING} deep"));
                }
                if open.iter().filter(|b| **b == '[').count() > MAX_INDEX_NESTING {
                    return Err(format!("nests `[` more than {MAX_INDEX_NESTING} deep"));
                }
            }
            ')' | ']' | '}' => {
                open.pop();
            }
            _ => {}
        }
    }
    Ok(())
}

/// Runs `f`, turning a panic inside the expression language into an error
/// (the language is a dependency; a template must not be able to bring
/// the controller down).
fn guarded<T>(what: &str, f: impl FnOnce() -> Result<T, String>) -> Result<T, String> {
    match panic::catch_unwind(AssertUnwindSafe(f)) {
        Ok(result) => result,
        Err(payload) => {
            let message = payload
                .downcast_ref::<&str>()
                .map(|s| (*s).to_owned())
                .or_else(|| payload.downcast_ref::<String>().cloned())
                .unwrap_or_default();
            Err(format!(
                "the expression language failed while {what} this condition ({message}); rewrite it"
            ))
        }
    }
}

impl Condition {
    /// Parses a condition; the error says where and what is wrong.
    pub fn parse(source: &str) -> Result<Condition, String> {
        if source.trim().is_empty() {
            return Err("is empty; write an expression such as `result >= 0.95`".into());
        }
        check_shape(source)?;
        let program = guarded("reading", || {
            expr::compile(source).map_err(|err| describe_parse_error(source, &err))
        })?;
        let condition = Condition {
            source: source.to_owned(),
            program,
        };
        for probe in probes() {
            if let Err(message) = condition.run(probe) {
                if let Some(name) = message.strip_prefix("unknown variable: ") {
                    return Err(format!(
                        "unknown name `{name}`; a condition sees the measurement as `result`"
                    ));
                }
                if let Some(name) = message.strip_prefix("Unknown function: ") {
                    return Err(format!(
                        "unknown function `{name}()`; besides the language's built-ins, conditions may call {}",
                        ARGO_FUNCTIONS.join(", ")
                    ));
                }
            }
        }
        Ok(condition)
    }

    /// The expression as written.
    pub fn source(&self) -> &str {
        &self.source
    }

    /// Evaluates the condition with `result` bound to `value`.
    pub fn evaluate(&self, value: &MetricValue) -> Result<bool, String> {
        match self.run(to_expr(value)) {
            Ok(Value::Bool(b)) => Ok(b),
            Ok(other) => Err(format!(
                "condition `{}` gave {other:?}, not true or false",
                self.source
            )),
            Err(err) => Err(format!("condition `{}`: {err}", self.source)),
        }
    }

    fn run(&self, result: Value) -> Result<Value, String> {
        guarded("evaluating", || {
            let mut ctx = Context::default();
            ctx.insert("result", result);
            ENVIRONMENT
                .run(&self.program, &ctx)
                .map_err(|err| err.to_string())
        })
    }
}

/// The phase of one measurement, as Argo's `EvaluateResult` decides it:
/// no conditions → Successful; only a success condition → Failed when it
/// is false; only a failure condition → Successful when it is false; both
/// and neither true → Inconclusive; a true failure condition wins; an
/// evaluation error → Error.
pub fn assess(
    success: Option<&Condition>,
    failure: Option<&Condition>,
    value: &MetricValue,
) -> (MeasurementPhase, Option<String>) {
    let success_holds = match success.map(|c| c.evaluate(value)).transpose() {
        Ok(holds) => holds,
        Err(message) => return (MeasurementPhase::Error, Some(message)),
    };
    let failure_holds = match failure.map(|c| c.evaluate(value)).transpose() {
        Ok(holds) => holds,
        Err(message) => return (MeasurementPhase::Error, Some(message)),
    };
    let phase = match (success_holds, failure_holds) {
        (None, None) => MeasurementPhase::Successful,
        (Some(true), None) => MeasurementPhase::Successful,
        (Some(false), None) => MeasurementPhase::Failed,
        (None, Some(true)) => MeasurementPhase::Failed,
        (None, Some(false)) => MeasurementPhase::Successful,
        (Some(_), Some(true)) => MeasurementPhase::Failed,
        (Some(true), Some(false)) => MeasurementPhase::Successful,
        (Some(false), Some(false)) => MeasurementPhase::Inconclusive,
    };
    (phase, None)
}

/// A measured value as the expression language sees it. Numbers are
/// floats, as Go's providers hand them to Argo's conditions.
fn to_expr(value: &MetricValue) -> Value {
    match value {
        MetricValue::Null => Value::Nil,
        MetricValue::Bool(b) => Value::Bool(*b),
        MetricValue::Number(n) => Value::Float(*n),
        MetricValue::String(s) => Value::String(s.clone()),
        MetricValue::List(items) => Value::Array(items.iter().map(to_expr).collect()),
        MetricValue::Map(map) => map
            .iter()
            .map(|(k, v)| (k.clone(), to_expr(v)))
            .collect::<Value>(),
    }
}

/// Turns the parser's report into one line: where, and what was expected.
fn describe_parse_error(source: &str, err: &expr::Error) -> String {
    let text = err.to_string();
    let column = text
        .lines()
        .find_map(|line| line.trim_start().strip_prefix("--> "))
        .and_then(|pos| pos.rsplit(':').next())
        .and_then(|col| col.trim().parse::<usize>().ok());
    match column {
        Some(col) if col > source.chars().count() => {
            format!(
                "does not parse: the expression ends too early (after column {})",
                col - 1
            )
        }
        Some(col) => {
            let found: String = source.chars().skip(col - 1).take(12).collect();
            format!("does not parse: unexpected `{found}` at column {col}")
        }
        None => format!(
            "does not parse: {}",
            text.lines().last().unwrap_or_default().trim()
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn holds(source: &str, value: MetricValue) -> Result<bool, String> {
        Condition::parse(source)?.evaluate(&value)
    }

    #[test]
    fn compares_numbers_and_vectors() {
        assert_eq!(holds("result >= 0.5", 0.6.into()), Ok(true));
        assert_eq!(holds("result >= 0.5", 0.4.into()), Ok(false));
        let vector = MetricValue::List(vec![0.99.into()]);
        assert_eq!(holds("result[0] >= 0.95", vector.clone()), Ok(true));
        assert_eq!(
            holds("len(result) == 1 && !(result[0] < 0.9)", vector),
            Ok(true)
        );
    }

    #[test]
    fn indexing_an_empty_result_is_an_evaluation_error() {
        let empty = MetricValue::List(vec![]);
        assert!(holds("result[0] >= 0.95", empty).is_err());
    }

    #[test]
    fn provides_argos_functions() {
        assert_eq!(holds("isNaN(result)", f64::NAN.into()), Ok(true));
        assert_eq!(holds("isInf(result)", f64::INFINITY.into()), Ok(true));
        assert_eq!(holds("isNil(result)", MetricValue::Null), Ok(true));
        assert_eq!(
            holds("default(result, 0.7) > 0.5", MetricValue::Null),
            Ok(true)
        );
        assert_eq!(holds("default(result, 0.7) > 0.5", 0.1.into()), Ok(false));
        assert_eq!(
            holds("asInt(result) == 42", MetricValue::String("42".into())),
            Ok(true)
        );
        assert_eq!(
            holds("asFloat(result) >= 0.9", MetricValue::String("0.95".into())),
            Ok(true)
        );
        assert_eq!(holds("asInt(result) == 2", 2.9.into()), Ok(true));
        assert!(holds("asInt(result) == 1", MetricValue::String("x".into())).is_err());
    }

    #[test]
    fn arithmetic_and_logic() {
        assert_eq!(
            holds("result * 100 - 5 >= 90 || false", 0.95.into()),
            Ok(true)
        );
        assert_eq!(
            holds("not (result > 1) and result - 0.25 == 0.25", 0.5.into()),
            Ok(true)
        );
    }

    #[test]
    fn a_non_boolean_outcome_is_an_error() {
        let err = holds("result + 1", 1.0.into()).expect_err("not a boolean");
        assert!(err.contains("not true or false"), "{err}");
    }

    #[test]
    fn refuses_what_does_not_parse_with_a_column() {
        let err = Condition::parse("result >= ").expect_err("incomplete");
        assert!(err.contains("ends too early"), "{err}");
        let err = Condition::parse("result >= 0.5 )").expect_err("stray paren");
        assert_eq!(err, "does not parse: unexpected `)` at column 15");
    }

    #[test]
    fn refuses_unknown_names_and_functions() {
        let err = Condition::parse("reslt >= 0.5").expect_err("typo");
        assert!(err.contains("unknown name `reslt`"), "{err}");
        let err = Condition::parse("isNan(result)").expect_err("typo");
        assert!(err.contains("unknown function `isNan()`"), "{err}");
    }

    #[test]
    fn measurement_phase_follows_argo() {
        let s = Condition::parse("result >= 0.9").ok();
        let f = Condition::parse("result < 0.5").ok();
        let v = |x: f64| MetricValue::Number(x);
        assert_eq!(assess(None, None, &v(0.0)).0, MeasurementPhase::Successful);
        assert_eq!(
            assess(s.as_ref(), None, &v(0.95)).0,
            MeasurementPhase::Successful
        );
        assert_eq!(
            assess(s.as_ref(), None, &v(0.7)).0,
            MeasurementPhase::Failed
        );
        assert_eq!(
            assess(None, f.as_ref(), &v(0.7)).0,
            MeasurementPhase::Successful
        );
        assert_eq!(
            assess(None, f.as_ref(), &v(0.3)).0,
            MeasurementPhase::Failed
        );
        assert_eq!(
            assess(s.as_ref(), f.as_ref(), &v(0.7)).0,
            MeasurementPhase::Inconclusive
        );
        assert_eq!(
            assess(s.as_ref(), f.as_ref(), &v(0.95)).0,
            MeasurementPhase::Successful
        );
        // Both true cannot happen with these two; a failure condition that
        // holds wins over a success condition that also holds.
        let always = Condition::parse("result >= 0").ok();
        assert_eq!(
            assess(always.as_ref(), always.as_ref(), &v(1.0)).0,
            MeasurementPhase::Failed
        );
        let empty = MetricValue::List(vec![]);
        let indexed = Condition::parse("result[0] >= 0.9").ok();
        assert_eq!(
            assess(indexed.as_ref(), None, &empty).0,
            MeasurementPhase::Error
        );
    }

    #[test]
    fn a_panic_inside_the_language_is_an_error() {
        // expr-lang 2.1 reaches `unreachable!` on a map literal keyed by
        // a name inside a closure (found by `make fuzz`).
        let source = "all(result, {# > 0.9}) and any(result, {setWeight: # < 2})";
        let value = MetricValue::from_json(&serde_json::json!([0.95, 1.5]));
        let outcome = Condition::parse(source).and_then(|c| c.evaluate(&value));
        let err = outcome.expect_err("an error, not a panic");
        assert!(err.contains("expression language failed"), "{err}");
    }

    #[test]
    fn deep_index_nesting_is_refused_before_the_parser_sees_it() {
        let deep = format!("result[{}0{}] > 1", "t[".repeat(8), "]".repeat(8));
        let err = Condition::parse(&deep).expect_err("refused");
        assert!(err.contains("nests `[`"), "{err}");
        assert!(Condition::parse("len(result) == 0 || result[0] >= 0.95").is_ok());
        assert!(Condition::parse("result[0][1] >= 0.95 || result[\"[[[[[\"] > 1").is_ok());
    }

    #[test]
    fn long_conditions_are_refused() {
        let long = format!("result >= 0.95{}", " && true".repeat(200));
        let err = Condition::parse(&long).expect_err("refused");
        assert!(err.contains("at most"), "{err}");
    }
}
