//! Every mechanism accepted with the right credentials, refused (401 missing, 403 wrong)
//! otherwise; proxies; the refusal log's rate and cap.

use super::*;

const NOW: i64 = 1_795_352_400;

fn h(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

fn req<'a>(headers: &'a [(String, String)], query: Option<&'a str>, body: &'a [u8]) -> Inbound<'a> {
    Inbound {
        headers,
        query,
        body,
        now: NOW,
    }
}

fn ip(s: &str) -> Option<IpAddr> {
    Some(s.parse().unwrap())
}

#[test]
fn a_shared_secret_is_accepted_in_the_header_or_the_query_and_nowhere_else() {
    let auth = ChannelAuth {
        secret: Some(Secret::new("s3cret+/=")),
        ..ChannelAuth::default()
    };
    let good = h(&[("x-tamtam-secret", "s3cret+/=")]);
    assert_eq!(auth.check(&req(&good, None, b""), None), Ok(()));
    assert_eq!(
        auth.check(&req(&[], Some("a=1&secret=s3cret%2B%2F%3D"), b""), None),
        Ok(())
    );
    assert_eq!(
        auth.check(&req(&[], Some("a=1"), b""), None),
        Err(Refusal::Missing("missing shared secret"))
    );
    let bad = h(&[("X-Tamtam-Secret", "s3cret")]);
    assert_eq!(
        auth.check(&req(&bad, None, b""), None),
        Err(Refusal::Wrong("wrong shared secret"))
    );
    assert_eq!(
        auth.check(&req(&[], Some("secret=nope"), b""), None)
            .unwrap_err()
            .status(),
        403
    );
    assert_eq!(auth.mechanisms(), ["secret"]);
    assert!(!auth.is_open());
    assert!(ChannelAuth::default().is_open());
}

#[test]
fn basic_credentials_are_checked_user_and_password() {
    let auth = ChannelAuth {
        basic: Some(("hubtel".into(), Secret::new("pa:ss"))),
        ..ChannelAuth::default()
    };
    let b64 = |s: &str| base64::engine::general_purpose::STANDARD.encode(s);
    let with = |v: String| h(&[("authorization", &v)]);
    assert_eq!(
        auth.check(
            &req(&with(format!("Basic {}", b64("hubtel:pa:ss"))), None, b""),
            None
        ),
        Ok(())
    );
    for wrong in ["hubtel:pass", "other:pa:ss", "hubtel"] {
        assert_eq!(
            auth.check(
                &req(&with(format!("Basic {}", b64(wrong))), None, b""),
                None
            )
            .unwrap_err()
            .status(),
            403,
            "{wrong}"
        );
    }
    assert_eq!(
        auth.check(&req(&with("Basic ***".into()), None, b""), None)
            .unwrap_err()
            .status(),
        403
    );
    assert_eq!(
        auth.check(&req(&[], None, b""), None),
        Err(Refusal::Missing("missing Basic credentials"))
    );
    assert_eq!(
        auth.check(&req(&with("Bearer x".into()), None, b""), None)
            .unwrap_err()
            .status(),
        401
    );
}

#[test]
fn an_allow_list_admits_only_its_blocks() {
    let auth = ChannelAuth {
        allow: vec![
            Cidr::parse("196.201.214.0/24").unwrap(),
            Cidr::parse("2001:db8::/32").unwrap(),
            Cidr::parse("10.1.2.3").unwrap(),
        ],
        ..ChannelAuth::default()
    };
    let r = req(&[], None, b"");
    for ok in [
        "196.201.214.7",
        "2001:db8:1::5",
        "10.1.2.3",
        "::ffff:196.201.214.200",
    ] {
        assert_eq!(auth.check(&r, ip(ok)), Ok(()), "{ok}");
    }
    for refused in ["196.201.215.1", "10.1.2.4", "2001:db9::1", "127.0.0.1"] {
        assert_eq!(
            auth.check(&r, ip(refused)),
            Err(Refusal::Wrong("source address not allowed")),
            "{refused}"
        );
    }
    assert_eq!(auth.check(&r, None).unwrap_err().status(), 403);
    assert!(Cidr::parse("0.0.0.0/0")
        .unwrap()
        .contains("8.8.8.8".parse().unwrap()));
    for bad in ["10.0.0.0/33", "example.com", "10.0.0.0/x", "::/129"] {
        assert!(Cidr::parse(bad).is_err(), "{bad}");
    }
}

#[test]
fn x_forwarded_for_is_read_only_from_a_trusted_proxy() {
    let trusted = [Cidr::parse("10.0.0.0/8").unwrap()];
    let xff = h(&[("x-forwarded-for", "1.2.3.4, 196.201.214.7, 10.0.0.2")]);
    // From the proxy: the right-most untrusted entry (what the proxy saw), not the forged left one.
    assert_eq!(
        source_address(ip("10.0.0.1"), &xff, &trusted),
        ip("196.201.214.7")
    );
    // From anyone else, the header is ignored.
    assert_eq!(
        source_address(ip("203.0.113.9"), &xff, &trusted),
        ip("203.0.113.9")
    );
    assert_eq!(
        source_address(ip("10.0.0.1"), &xff, &[]),
        ip("10.0.0.1"),
        "no trusted proxy: the peer"
    );
    assert_eq!(
        source_address(ip("10.0.0.1"), &[], &trusted),
        ip("10.0.0.1")
    );
    let garbage = h(&[("x-forwarded-for", "nonsense")]);
    assert_eq!(source_address(ip("10.0.0.1"), &garbage, &trusted), None);
    assert_eq!(source_address(None, &xff, &trusted), None);
}

#[test]
fn an_hmac_over_the_timestamp_and_body_is_accepted_inside_the_replay_window_only() {
    let auth = ChannelAuth {
        hmac: Some(HmacAuth {
            key: Secret::new("k"),
            window_secs: 300,
        }),
        ..ChannelAuth::default()
    };
    let body = br#"{"session_id":"s1"}"#;
    let signed = |at: i64, sig: String| {
        h(&[
            ("x-tamtam-timestamp", &at.to_string()),
            ("x-tamtam-signature", &sig),
        ])
    };
    let ok = signed(NOW - 300, hmac_signature("k", NOW - 300, body));
    assert_eq!(auth.check(&req(&ok, None, body), None), Ok(()));
    let prefixed = signed(NOW, format!("sha256={}", hmac_signature("k", NOW, body)));
    assert_eq!(auth.check(&req(&prefixed, None, body), None), Ok(()));
    // Replayed later than the window, or dated in the future beyond it.
    for at in [NOW - 301, NOW + 301] {
        let old = signed(at, hmac_signature("k", at, body));
        assert_eq!(
            auth.check(&req(&old, None, body), None),
            Err(Refusal::Wrong(
                "X-Tamtam-Timestamp outside the replay window"
            ))
        );
    }
    // Another body, another key, another timestamp than signed.
    let wrong = [
        (signed(NOW, hmac_signature("k", NOW, b"{}")), "body"),
        (signed(NOW, hmac_signature("x", NOW, body)), "key"),
        (signed(NOW, hmac_signature("k", NOW - 1, body)), "timestamp"),
        (signed(NOW, "zz".into()), "not hex"),
    ];
    for (headers, what) in wrong {
        assert_eq!(
            auth.check(&req(&headers, None, body), None)
                .unwrap_err()
                .status(),
            403,
            "{what}"
        );
    }
    assert_eq!(
        auth.check(&req(&[], None, body), None)
            .unwrap_err()
            .status(),
        401
    );
}

#[test]
fn the_signature_is_what_openssl_prints() {
    // printf '%s.%s' 1795352400 '{"a":1}' | openssl dgst -sha256 -hmac k
    assert_eq!(
        hmac_signature("k", 1_795_352_400, br#"{"a":1}"#),
        "044528d527a7dce30fbef0f46e018f94fead452aabf835eb992e1993a32a6dd4"
    );
}

#[test]
fn every_mechanism_set_must_pass() {
    let auth = ChannelAuth {
        secret: Some(Secret::new("s")),
        allow: vec![Cidr::parse("192.0.2.0/24").unwrap()],
        ..ChannelAuth::default()
    };
    let good = h(&[("x-tamtam-secret", "s")]);
    assert_eq!(auth.check(&req(&good, None, b""), ip("192.0.2.1")), Ok(()));
    assert!(auth.check(&req(&good, None, b""), ip("192.0.3.1")).is_err());
    assert!(auth.check(&req(&[], None, b""), ip("192.0.2.1")).is_err());
    assert_eq!(auth.mechanisms(), ["secret", "allow_ips"]);
}

#[test]
fn a_delivery_report_needs_the_secret_in_its_query() {
    let secret = Secret::new("dlr-secret-0123456789");
    let r = |q| req(&[], q, b"");
    assert_eq!(
        check_dlr(
            Some(&secret),
            &r(Some("id=1&secret=dlr-secret-0123456789&status=1"))
        ),
        Ok(())
    );
    assert_eq!(
        check_dlr(Some(&secret), &r(Some("id=1")))
            .unwrap_err()
            .status(),
        401
    );
    assert_eq!(
        check_dlr(Some(&secret), &r(Some("secret=x")))
            .unwrap_err()
            .status(),
        403
    );
    assert_eq!(
        check_dlr(None, &r(Some("secret=dlr-secret-0123456789")))
            .unwrap_err()
            .status(),
        403
    );
}

#[test]
fn secrets_never_show_in_debug_output() {
    let auth = ChannelAuth {
        secret: Some(Secret::new("hunter2-secret")),
        basic: Some(("u".into(), Secret::new("hunter3-secret"))),
        ..ChannelAuth::default()
    };
    let shown = format!("{auth:?}");
    assert!(!shown.contains("hunter"), "{shown}");
}

#[test]
fn refusals_are_logged_once_per_source_per_minute_in_a_bounded_map() {
    let log = RefusalLog::new(3);
    let a = ip("192.0.2.1");
    assert!(log.should_log(a, NOW));
    assert!(!log.should_log(a, NOW + 1));
    assert!(!log.should_log(a, NOW + 59));
    assert!(log.should_log(a, NOW + 60));
    assert!(log.should_log(ip("192.0.2.2"), NOW + 60));
    assert!(log.should_log(None, NOW + 60));
    // Full of recent sources: a new one shares one line a minute with the others.
    assert!(log.should_log(ip("192.0.2.3"), NOW + 61));
    assert!(!log.should_log(ip("192.0.2.4"), NOW + 62));
    assert_eq!(log.len(), 3);
    // A minute on, the stale entries make room again.
    assert!(log.should_log(ip("192.0.2.4"), NOW + 200));
    assert!(log.len() <= 3);
    for n in 0..1000u32 {
        log.should_log(Some(IpAddr::from(n.to_be_bytes())), NOW + 300);
    }
    assert!(log.len() <= 3, "the map never grows past its cap");
}
