//! Quoting user-supplied text in error messages without `{:?}`: `Debug` for
//! `str` pulls Unicode tables into the wasm module, and a log line must not
//! carry raw control characters from a configuration either.

use std::fmt;

/// Displays a string in double quotes, printable ASCII as is and everything
/// else as `\u{..}` escapes.
pub struct Quoted<'a>(pub &'a str);

impl fmt::Display for Quoted<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("\"")?;
        for c in self.0.chars() {
            match c {
                '"' => f.write_str("\\\"")?,
                '\\' => f.write_str("\\\\")?,
                ' '..='~' => fmt::Write::write_char(f, c)?,
                other => write!(f, "\\u{{{:x}}}", u32::from(other))?,
            }
        }
        f.write_str("\"")
    }
}

/// Shorthand for [`Quoted`].
pub fn quoted(text: &str) -> Quoted<'_> {
    Quoted(text)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_what_is_not_printable_ascii() {
        assert_eq!(quoted("a b").to_string(), "\"a b\"");
        assert_eq!(quoted("a\"\\").to_string(), "\"a\\\"\\\\\"");
        assert_eq!(quoted("\n\u{e9}").to_string(), "\"\\u{a}\\u{e9}\"");
    }
}
