//! Any bytes as a webhook of each USSD dialect: an answer valid in the dialect, never a panic.

#![no_main]

mod common;

use libfuzzer_sys::fuzz_target;
use tamtam::adapters::UssdDialect;
use tamtam::message::Reply;

fuzz_target!(|data: &[u8]| {
    let Some(w) = common::Webhook::cut(data) else {
        return;
    };
    let d = UssdDialect::ALL[usize::from(w.selector) % UssdDialect::ALL.len()];
    let (r, error) = match d.parse(&w.request()) {
        Err(e) => (d.render_error(&e), true),
        Ok(inbound) => {
            let reply = Reply::end(String::from_utf8_lossy(&w.body).into_owned());
            (d.render(&reply, &inbound.session_id), false)
        }
    };
    if error {
        common::assert_4xx(&r);
    }
    match d {
        UssdDialect::AfricasTalking => assert!(r.body.starts_with("END "), "{}", r.body),
        UssdDialect::Hubtel => {
            let o = common::json_object(&r);
            assert_eq!(o["Type"], "Release");
            assert!(o["Message"].is_string());
        }
        UssdDialect::Json => {
            let o = common::json_object(&r);
            assert_eq!(o["action"], "end");
            assert!(o["text"].is_string());
        }
    }
});
