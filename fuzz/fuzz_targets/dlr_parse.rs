//! Any bytes as a delivery report of each provider: a report or a 4xx text, never a panic.

#![no_main]

mod common;

use libfuzzer_sys::fuzz_target;
use tamtam::adapters::DlrDialect;

fuzz_target!(|data: &[u8]| {
    let Some(w) = common::Webhook::cut(data) else {
        return;
    };
    let d = DlrDialect::ALL[usize::from(w.selector) % DlrDialect::ALL.len()];
    match d.parse(&w.request()) {
        Err(e) => {
            let r = d.render_error(&e);
            common::assert_4xx(&r);
            assert!(!r.body.trim().is_empty());
        }
        Ok(_) => assert_eq!(d.ack().status, 200),
    }
});
