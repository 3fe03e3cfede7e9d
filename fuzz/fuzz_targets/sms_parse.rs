//! Any bytes as a webhook of each SMS dialect: an answer valid in the dialect, never a panic.
//! (Twilio webhooks stop at the signature check: the fuzzer cannot sign.)

#![no_main]

mod common;

use libfuzzer_sys::fuzz_target;
use tamtam::adapters::{SmsAuth, SmsDialect};
use tamtam::message::SmsReply;

fuzz_target!(|data: &[u8]| {
    let Some(w) = common::Webhook::cut(data) else {
        return;
    };
    let d = SmsDialect::ALL[usize::from(w.selector) % SmsDialect::ALL.len()];
    let auth = SmsAuth {
        twilio_token: Some("fuzz-token".into()),
        public_url: None,
    };
    let (r, error) = match d.parse(&w.request(), &auth) {
        Err(e) => (d.render_error(&e), true),
        Ok(hook) => {
            assert!(!hook.inbound.from.trim().is_empty());
            assert!(!hook.inbound.to.trim().is_empty());
            let reply = SmsReply::new(hook.inbound.text.clone());
            (d.render(&reply, &hook.inbound), false)
        }
    };
    if error {
        common::assert_4xx(&r);
    } else {
        assert_eq!(r.status, 200);
    }
    match d {
        SmsDialect::Kannel => assert!(!r.body.is_empty()),
        SmsDialect::Twilio => {
            assert!(r.body.starts_with("<?xml"), "{}", r.body);
            assert!(r.body.ends_with("</Message></Response>"), "{}", r.body);
        }
        SmsDialect::Json => assert!(common::json_object(&r)["text"].is_string()),
        SmsDialect::AfricasTalking => assert!(!r.body.is_empty()),
        SmsDialect::Jasmin => {
            assert!(r.body == "ACK/Jasmin" || (error && r.body.starts_with("Error: ")));
        }
    }
});
