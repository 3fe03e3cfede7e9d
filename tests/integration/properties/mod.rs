//! Properties (proptest) over everything that reads outside input: every webhook parser
//! (USSD, SMS, delivery reports), the menu loader and the configuration loader, fed
//! arbitrary bytes and hostile but plausible inputs (field maps with any keys, forms with
//! every required field holding a hostile value, real files with values swapped, deep and
//! huge TOML within a size bound). Each must answer and never panic: an error is a 4xx
//! whose body is valid in the dialect, a success renders a valid reply, a loader reports
//! every problem as `file:place: message`. One more property runs whole USSD sessions
//! through the gateway (memory store): every hop gets a screen that fits the USSD limits.
//!
//! 256 cases per property (proptest's default; `PROPTEST_CASES` raises it), no Redis, a
//! few seconds in all. A failure prints the shrunk input: make it a named regression test
//! next to the code it broke. Longer, coverage-guided runs: the cargo-fuzz targets in
//! `fuzz/`.
//!
//! `inputs` builds the inputs; `parsers`, `loaders` and `gateway` hold the properties.

mod gateway;
mod inputs;
mod loaders;
mod parsers;

use proptest::strategy::Strategy;
use proptest::test_runner::{Config as ProptestConfig, TestCaseError, TestRunner};

pub(super) type Check = Result<(), TestCaseError>;

/// Runs `test` on values of `strategy`; panics with the shrunk failing input.
pub(super) fn check<S: Strategy>(strategy: S, test: impl Fn(S::Value) -> Check)
where
    S::Value: std::fmt::Debug,
{
    let config = ProptestConfig {
        // Failures become named regression tests, not files next to the sources.
        failure_persistence: None,
        ..ProptestConfig::default()
    };
    let mut runner = TestRunner::new(config);
    if let Err(e) = runner.run(&strategy, test) {
        panic!("{e}");
    }
}
