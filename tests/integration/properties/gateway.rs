//! Whole USSD sessions through the gateway (memory store): any dial string, inputs,
//! retries and hang-ups, at any hour; every hop gets a screen that fits.

use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::Arc;

use proptest::prelude::*;
use tamtam::gateway::Gateway;
use tamtam::message::{dial_parts, Hop, Inbound};
use tamtam::session::{MemoryStore, Store};
use tamtam::text::UssdLimits;

use super::check;
use crate::support;

/// One step of a subscriber: an answer, the same hop again, or hanging up.
#[derive(Debug, Clone)]
enum Step {
    Answer(String),
    Retry,
    Release,
}

fn step() -> impl Strategy<Value = Step> {
    prop_oneof![
        6 => "[0-9]{1,2}".prop_map(Step::Answer),
        2 => prop_oneof!["[0-9*#]{0,6}", ".{0,30}", "[a-zA-Z ]{0,12}"].prop_map(Step::Answer),
        1 => Just(Step::Retry),
        1 => Just(Step::Release),
    ]
}

/// A session: the dialect, the base code (index), direct-dial inputs, steps, the clock.
fn session() -> impl Strategy<Value = (usize, prop::sample::Index, Vec<String>, Vec<Step>, i64)> {
    (
        0usize..3,
        any::<prop::sample::Index>(),
        proptest::collection::vec("[0-9]{0,3}", 0..6),
        proptest::collection::vec(step(), 0..10),
        // Any hour of a fortnight, so that opening hours are open and closed.
        0i64..14 * 24 * 3600,
    )
}

#[test]
fn any_session_through_the_gateway_always_gets_a_screen_that_fits() {
    let config = support::shipped_config(None);
    let tenants = support::shipped_tenants(&config);
    let codes: Vec<String> = tenants
        .iter()
        .flat_map(|t| t.config.ussd_codes.clone())
        .collect();
    static NOW: AtomicI64 = AtomicI64::new(0);
    static SESSION: AtomicU64 = AtomicU64::new(0);
    // Screens that continue a session.
    static CONTINUED: AtomicU64 = AtomicU64::new(0);
    let gateway = Gateway::new(tenants, &config, Store::Memory(MemoryStore::new())).with_clock(
        tamtam::gateway::Clock(Arc::new(|| NOW.load(Ordering::Relaxed))),
    );
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let limits = UssdLimits::default();

    check(session(), |(dialect, code, prefill, steps, offset)| {
        NOW.store(support::script_time() + offset, Ordering::Relaxed);
        let n = SESSION.fetch_add(1, Ordering::Relaxed);
        let session_id = format!("prop-{}-{n}", std::process::id());
        let msisdn = format!("+22507{:08}", n % 1000);
        let base = dial_parts(&codes[code.index(codes.len())])
            .expect("a shipped code is a dial string")
            .join("*");
        let dialled = std::iter::once(base.clone())
            .chain(prefill.iter().cloned())
            .collect::<Vec<_>>()
            .join("*");
        let (name, mut inputs) = match dialect {
            0 => ("africas_talking", prefill.clone()),
            1 => ("hubtel", Vec::new()),
            _ => ("json", Vec::new()),
        };
        let first = match dialect {
            0 => Inbound {
                session_id: session_id.clone(),
                msisdn: msisdn.clone(),
                service_code: format!("*{base}#"),
                hop: Hop::Path(inputs.join("*")),
            },
            _ => Inbound {
                session_id: session_id.clone(),
                msisdn: msisdn.clone(),
                service_code: format!("*{dialled}#"),
                hop: Hop::Start,
            },
        };
        let mut hops = vec![first];
        let mut seq = 1u64;
        for s in steps {
            let last = hops.last().expect("the first hop").clone();
            let hop = match s {
                Step::Retry => last.hop,
                Step::Release => Hop::Release,
                Step::Answer(text) if dialect == 0 => {
                    inputs.push(text);
                    Hop::Path(inputs.join("*"))
                }
                Step::Answer(text) => {
                    seq += 1;
                    Hop::Answer {
                        text,
                        seq: Some(seq),
                    }
                }
            };
            hops.push(Inbound { hop, ..last });
        }
        for hop in &hops {
            let (reply, _) = runtime.block_on(gateway.ussd(name, hop));
            prop_assert!(!reply.text.trim().is_empty(), "empty screen after {hop:?}");
            prop_assert!(
                limits.fits(&reply.text),
                "{} does not fit: {:?}",
                name,
                reply.text
            );
            if !reply.end {
                CONTINUED.fetch_add(1, Ordering::Relaxed);
            }
        }
        Ok(())
    });
    let (continued, sessions) = (
        CONTINUED.load(Ordering::Relaxed),
        SESSION.load(Ordering::Relaxed),
    );
    // About one and a half per session: sessions reach menus, not only polite ends.
    assert!(
        continued * 2 >= sessions,
        "{continued} continuing screens in {sessions} sessions"
    );
}
