//! Secrets from the configuration (API tokens, shared secrets, passwords, URLs with a
//! password): printed as `***`, compared in constant time.
//!
//! One type for every component that holds one (data sources' headers and Redis URLs,
//! channel authentication, the delivery-report secret), so that "never logged" is a
//! property of the type and not of each call site.

use std::fmt;

use sha2::{Digest, Sha256};

/// A value that must never reach a log. `Debug` prints `Secret(***)`; [`Secret::expose`]
/// gives the value to whoever must send it.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    pub fn new(value: impl Into<String>) -> Secret {
        Secret(value.into())
    }

    /// The value, to send it (a header, a delivery-report URL), never to log it.
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// Whether `offered` is this secret, in time that does not depend on where they differ.
    pub fn matches(&self, offered: &[u8]) -> bool {
        constant_time_eq(self.0.as_bytes(), offered)
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(***)")
    }
}

/// Equality of two byte strings in time independent of their contents: their SHA-256
/// digests (same length whatever the inputs) are compared without an early exit.
pub fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    let (x, y) = (Sha256::digest(a), Sha256::digest(b));
    let diff = x
        .iter()
        .zip(y.iter())
        .fold(0u8, |acc, (p, q)| acc | (p ^ q));
    std::hint::black_box(diff) == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_secret_matches_only_itself_and_never_prints() {
        let s = Secret::new("s3cret");
        assert!(s.matches(b"s3cret"));
        assert!(!s.matches(b"s3cres"));
        assert!(!s.matches(b""));
        assert_eq!(format!("{s:?}"), "Secret(***)");
        assert_eq!(s.expose(), "s3cret");
    }
}
