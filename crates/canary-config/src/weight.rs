//! Canary weight: a percentage from 0 to 100 with 0.01 resolution, held as
//! an integer number of basis points (hundredths of a percent) so selection
//! and comparison never touch floating point.

use std::fmt;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// Number of buckets a request or sticky key falls into; a weight of `w`
/// basis points sends buckets `0..w` to the canary.
pub const BUCKETS: u16 = 10_000;

/// A canary weight in basis points (0 = 0%, 10 000 = 100%).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Weight(u16);

/// Why a number is not a valid weight.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WeightError {
    #[error("weight must be a finite number")]
    NotFinite,
    #[error("weight must be between 0 and 100 (percent)")]
    OutOfRange,
    #[error("weight has a resolution of 0.01 percent")]
    TooPrecise,
}

impl Weight {
    /// 0%: every request to stable.
    pub const ZERO: Weight = Weight(0);
    /// 100%: every request to the canary.
    pub const FULL: Weight = Weight(BUCKETS);

    /// From basis points; `None` above 10 000.
    pub const fn from_basis_points(bp: u16) -> Option<Weight> {
        if bp <= BUCKETS {
            Some(Weight(bp))
        } else {
            None
        }
    }

    /// From a percentage such as `10`, `0.5` or `12.34`.
    pub fn from_percent(percent: f64) -> Result<Weight, WeightError> {
        if !percent.is_finite() {
            return Err(WeightError::NotFinite);
        }
        if !(0.0..=100.0).contains(&percent) {
            return Err(WeightError::OutOfRange);
        }
        let scaled = percent * 100.0;
        let rounded = scaled.round();
        if (scaled - rounded).abs() > 1e-6 {
            return Err(WeightError::TooPrecise);
        }
        // In range 0..=10_000 after the checks above.
        Ok(Weight(rounded as u16))
    }

    /// Basis points, 0..=10 000.
    pub const fn basis_points(self) -> u16 {
        self.0
    }

    /// The percentage this weight stands for.
    pub fn percent(self) -> f64 {
        f64::from(self.0) / 100.0
    }

    /// Whether a request or key that fell into `bucket` (0..10 000) goes to
    /// the canary. Monotone in the weight: a bucket that is canary at some
    /// weight is canary at every higher weight.
    pub const fn admits(self, bucket: u16) -> bool {
        bucket < self.0
    }
}

impl fmt::Display for Weight {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let whole = self.0 / 100;
        let frac = self.0 % 100;
        if frac == 0 {
            write!(f, "{whole}%")
        } else if frac.is_multiple_of(10) {
            write!(f, "{whole}.{}%", frac / 10)
        } else {
            write!(f, "{whole}.{frac:02}%")
        }
    }
}

impl Serialize for Weight {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        if self.0.is_multiple_of(100) {
            serializer.serialize_u64(u64::from(self.0 / 100))
        } else {
            serializer.serialize_f64(self.percent())
        }
    }
}

impl<'de> Deserialize<'de> for Weight {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let percent = f64::deserialize(deserializer)?;
        Weight::from_percent(percent)
            .map_err(|err| serde::de::Error::custom(format_args!("{err}, got {percent}")))
    }
}

#[cfg(feature = "json-schema")]
impl schemars::JsonSchema for Weight {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "Weight".into()
    }

    fn json_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
        schemars::json_schema!({
            "description": "Percentage from 0 to 100 with a resolution of 0.01.",
            "type": "number",
            "minimum": 0,
            "maximum": 100,
            "multipleOf": 0.01
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_whole_and_fractional_percentages() {
        assert_eq!(Weight::from_percent(10.0).unwrap().basis_points(), 1000);
        assert_eq!(Weight::from_percent(0.5).unwrap().basis_points(), 50);
        assert_eq!(Weight::from_percent(12.34).unwrap().basis_points(), 1234);
        assert_eq!(Weight::from_percent(0.01).unwrap().basis_points(), 1);
        assert_eq!(Weight::from_percent(100.0).unwrap(), Weight::FULL);
        assert_eq!(Weight::from_percent(0.0).unwrap(), Weight::ZERO);
    }

    #[test]
    fn rejects_out_of_range_and_too_precise() {
        assert!(matches!(
            Weight::from_percent(100.01),
            Err(WeightError::OutOfRange)
        ));
        assert!(matches!(
            Weight::from_percent(-0.5),
            Err(WeightError::OutOfRange)
        ));
        assert!(matches!(
            Weight::from_percent(0.005),
            Err(WeightError::TooPrecise)
        ));
        assert!(matches!(
            Weight::from_percent(f64::NAN),
            Err(WeightError::NotFinite)
        ));
    }

    #[test]
    fn serializes_back_to_the_same_number() {
        for text in ["0", "10", "0.5", "12.34", "100"] {
            let w: Weight = serde_json::from_str(text).unwrap();
            assert_eq!(serde_json::to_string(&w).unwrap(), text);
        }
    }

    #[test]
    fn displays_as_percent() {
        assert_eq!(Weight::from_percent(10.0).unwrap().to_string(), "10%");
        assert_eq!(Weight::from_percent(0.5).unwrap().to_string(), "0.5%");
        assert_eq!(Weight::from_percent(12.34).unwrap().to_string(), "12.34%");
    }

    #[test]
    fn admits_buckets_below_the_weight() {
        let w = Weight::from_percent(10.0).unwrap();
        assert!(w.admits(0));
        assert!(w.admits(999));
        assert!(!w.admits(1000));
        assert!(!Weight::ZERO.admits(0));
        assert!(Weight::FULL.admits(BUCKETS - 1));
    }
}
