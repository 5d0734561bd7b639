//! Case-insensitive name patterns (`*password*`) choosing which values to seal.

use crate::error::{Error, Result};

/// The patterns `encstr seal` uses when none are given.
pub const DEFAULT_SEAL_PATTERNS: [&str; 3] = ["*password*", "*secret*", "*token*"];

/// A case-insensitive glob: `*` matches any run of characters (including
/// `.` and `/`), `?` one character, `[...]` never special.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Pattern {
    lower: Vec<char>,
    text: String,
}

impl Pattern {
    /// Compile a pattern. Empty patterns are rejected.
    pub fn new(pattern: &str) -> Result<Self> {
        if pattern.is_empty() {
            return Err(Error::InvalidPattern(pattern.to_owned()));
        }
        Ok(Pattern { lower: pattern.to_lowercase().chars().collect(), text: pattern.to_owned() })
    }

    /// The default seal patterns.
    pub fn defaults() -> Vec<Pattern> {
        DEFAULT_SEAL_PATTERNS.iter().map(|p| Pattern::new(p).expect("valid")).collect()
    }

    /// The pattern as written.
    pub fn as_str(&self) -> &str {
        &self.text
    }

    /// Whether `name` matches, ignoring case.
    pub fn matches(&self, name: &str) -> bool {
        let name: Vec<char> = name.to_lowercase().chars().collect();
        // Iterative wildcard matching with single-star backtracking: linear
        // in practice, never exponential.
        let (p, n) = (&self.lower, &name);
        let (mut pi, mut ni) = (0, 0);
        let mut star: Option<(usize, usize)> = None;
        while ni < n.len() {
            if pi < p.len() && (p[pi] == '?' || p[pi] == n[ni]) {
                pi += 1;
                ni += 1;
            } else if pi < p.len() && p[pi] == '*' {
                star = Some((pi, ni));
                pi += 1;
            } else if let Some((sp, sn)) = star {
                pi = sp + 1;
                ni = sn + 1;
                star = Some((sp, sn + 1));
            } else {
                return false;
            }
        }
        p[pi..].iter().all(|&c| c == '*')
    }
}

/// Whether any pattern matches `name`.
pub fn any_matches(patterns: &[Pattern], name: &str) -> bool {
    patterns.iter().any(|p| p.matches(name))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matching() {
        let p = Pattern::new("*Password*").unwrap();
        assert!(p.matches("db.password"));
        assert!(p.matches("DB_PASSWORD_FILE"));
        assert!(!p.matches("db.passwd"));
        assert!(Pattern::new("db.?ser").unwrap().matches("DB.user"));
        assert!(Pattern::new("a*b*c").unwrap().matches("axxbyyc"));
        assert!(!Pattern::new("a*b*c").unwrap().matches("axxbyy"));
        assert!(Pattern::new("*").unwrap().matches(""));
        assert!(Pattern::new("").is_err());
    }
}
