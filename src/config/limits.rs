//! The `[limits]` section: inbound rate limits per subscriber and per source address.
//! The settings type and its defaults belong to `crate::limits`; this file reads and checks
//! what was written. Numbers are read signed, so that a negative one is reported with the
//! rest of the configuration's problems rather than as a parse error.

use serde::Deserialize;

use super::Problems;
use crate::limits::{LimitSettings, Rate};

/// `[limits]` as written.
#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub(super) struct RawLimits {
    per_subscriber_per_minute: Option<i64>,
    per_subscriber_burst: Option<i64>,
    per_source_per_minute: Option<i64>,
    per_source_burst: Option<i64>,
    max_buckets: Option<i64>,
}

/// A count option: 0 or more, within `u32`; reported under `[limits]` otherwise.
pub(super) fn count(
    place: &str,
    name: &str,
    v: Option<i64>,
    default: u32,
    problems: &mut Problems,
) -> u32 {
    let Some(v) = v else { return default };
    u32::try_from(v).unwrap_or_else(|_| {
        problems.error(
            place,
            format!("`{name}` must be a whole number from 0 to {}", u32::MAX),
        );
        default
    })
}

/// Checks `[limits]`: every number 0 or more; a burst of at least 1 when its limit is on;
/// at least one bucket.
pub(super) fn check(raw: RawLimits, problems: &mut Problems) -> LimitSettings {
    let d = LimitSettings::default();
    let mut n =
        |name: &str, v: Option<i64>, default: u32| count("limits", name, v, default, problems);
    let per_subscriber = Rate {
        per_minute: n(
            "per_subscriber_per_minute",
            raw.per_subscriber_per_minute,
            d.per_subscriber.per_minute,
        ),
        burst: n(
            "per_subscriber_burst",
            raw.per_subscriber_burst,
            d.per_subscriber.burst,
        ),
    };
    let per_source = Rate {
        per_minute: n(
            "per_source_per_minute",
            raw.per_source_per_minute,
            d.per_source.per_minute,
        ),
        burst: n("per_source_burst", raw.per_source_burst, d.per_source.burst),
    };
    let max_buckets = n(
        "max_buckets",
        raw.max_buckets,
        u32::try_from(d.max_buckets).unwrap_or(u32::MAX),
    );
    for (name, rate) in [
        ("per_subscriber", per_subscriber),
        ("per_source", per_source),
    ] {
        if !rate.is_off() && rate.burst == 0 {
            problems.error(
                "limits",
                format!("`{name}_burst` must be at least 1 while `{name}_per_minute` is on"),
            );
        }
    }
    if max_buckets == 0 {
        problems.error("limits", "`max_buckets` must be at least 1");
    }
    LimitSettings {
        per_subscriber,
        per_source,
        max_buckets: max_buckets as usize,
    }
}

#[cfg(test)]
mod tests {
    use super::super::tests::{parse, problems, MINIMAL};
    use crate::limits::LimitSettings;

    #[test]
    fn unset_limits_take_their_defaults_and_zero_turns_one_off() {
        let c = parse(MINIMAL).unwrap();
        assert_eq!(c.limits, LimitSettings::default());
        let c = parse(&format!(
            "{MINIMAL}[limits]\nper_subscriber_per_minute = 0\nper_source_per_minute = 600\nper_source_burst = 50\n"
        ))
        .unwrap();
        assert!(c.limits.per_subscriber.is_off());
        assert_eq!(
            (c.limits.per_source.per_minute, c.limits.per_source.burst),
            (600, 50)
        );
    }

    #[test]
    fn negative_numbers_and_empty_bursts_are_reported_together() {
        let all = problems(&format!(
            "{MINIMAL}[limits]\nper_subscriber_per_minute = -1\nper_source_per_minute = 10\nper_source_burst = 0\nmax_buckets = 0\n"
        ));
        assert_eq!(
            all,
            vec![
                "t.toml:limits: error: `per_subscriber_per_minute` must be a whole number from 0 to 4294967295",
                "t.toml:limits: error: `per_source_burst` must be at least 1 while `per_source_per_minute` is on",
                "t.toml:limits: error: `max_buckets` must be at least 1",
            ]
        );
    }
}
