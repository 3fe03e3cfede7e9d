//! Checks shared by the data-driven conversation runners (USSD and SMS).

use tamtam::text::TextPolicy;

/// Records a failure for each `expect` fragment missing from `text` and each `absent`
/// fragment in it. Fragments are written with accents; `policy` renders them as the
/// channel does.
pub fn fragments(
    failures: &mut Vec<String>,
    at: &str,
    text: &str,
    policy: TextPolicy,
    expect: &[String],
    absent: &[String],
) {
    for e in expect {
        let e = policy.apply(e);
        if !text.contains(e.as_ref()) {
            failures.push(format!("{at}: expected {e:?} in {text:?}"));
        }
    }
    for a in absent {
        let a = policy.apply(a);
        if text.contains(a.as_ref()) {
            failures.push(format!("{at}: {a:?} must not be in {text:?}"));
        }
    }
}
