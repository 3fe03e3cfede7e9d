//! Twilio-style SMS webhook: form fields `From`, `To`, `Body`, `MessageSid`, signed with
//! `X-Twilio-Signature`; the reply is TwiML (`<Response><Message>…</Message></Response>`).
//!
//! The signature is checked exactly as Twilio specifies: HMAC-SHA1, keyed with the auth
//! token, of the full URL Twilio called followed by every POST parameter as `name` + `value`,
//! sorted by name; Base64. The URL is the channel's `public_url` when configured, else the
//! one built from `X-Forwarded-Proto` (default `http`), `Host` and the path with its query.
//! Like Twilio's own validators, the URL is also tried with the default port added or
//! removed, since proxies disagree about it. Anything else gets a 403.

use base64::Engine as _;
use hmac::{Hmac, Mac};
use sha1::Sha1;

use super::SmsAuth;
use crate::adapters::{field, parse_form, required, AdapterError, RawRequest, RawResponse};
use crate::message::{mask_numbers, normalize_msisdn, SmsInbound, SmsReply};

/// The signature Twilio computes for `url` and form `params`.
pub fn signature(token: &str, url: &str, params: &[(String, String)]) -> String {
    base64::engine::general_purpose::STANDARD
        .encode(mac(token, url, params).finalize().into_bytes())
}

fn mac(token: &str, url: &str, params: &[(String, String)]) -> Hmac<Sha1> {
    let mut sorted: Vec<&(String, String)> = params.iter().collect();
    sorted.sort_by(|a, b| a.0.cmp(&b.0).then(a.1.cmp(&b.1)));
    let mut mac =
        Hmac::<Sha1>::new_from_slice(token.as_bytes()).expect("HMAC takes any key length");
    mac.update(url.as_bytes());
    for (k, v) in sorted {
        mac.update(k.as_bytes());
        mac.update(v.as_bytes());
    }
    mac
}

/// True when `given` (Base64) is the signature of `url` and `params`, compared in constant time.
fn verify(token: &str, url: &str, params: &[(String, String)], given: &str) -> bool {
    let Ok(given) = base64::engine::general_purpose::STANDARD.decode(given.trim()) else {
        return false;
    };
    mac(token, url, params).verify_slice(&given).is_ok()
}

/// The URL with its default port toggled (`https://h/x` ⇄ `https://h:443/x`).
fn port_variant(url: &str) -> Option<String> {
    let (scheme, rest) = url.split_once("://")?;
    let port = match scheme {
        "https" => "443",
        "http" => "80",
        _ => return None,
    };
    let (host, path) = rest.split_at(rest.find('/').unwrap_or(rest.len()));
    match host.strip_suffix(&format!(":{port}")) {
        Some(bare) => Some(format!("{scheme}://{bare}{path}")),
        None if !host.contains(':') => Some(format!("{scheme}://{host}:{port}{path}")),
        None => None,
    }
}

pub(super) fn parse(req: &RawRequest, auth: &SmsAuth) -> Result<SmsInbound, AdapterError> {
    if req.method != "POST" {
        return Err(AdapterError::Method(req.method.to_string()));
    }
    let params = parse_form(req.body)?;
    let Some(token) = auth.twilio_token.as_deref() else {
        return Err(AdapterError::Forbidden(
            "no Twilio auth token configured (set TAMTAM_TWILIO_AUTH_TOKEN)".into(),
        ));
    };
    let Some(given) = req.header("x-twilio-signature") else {
        return Err(AdapterError::Forbidden("missing X-Twilio-Signature".into()));
    };
    let url = match &auth.public_url {
        Some(u) => u.clone(),
        None => {
            let host = required(req.header("host"), "Host")?;
            let proto = req.header("x-forwarded-proto").unwrap_or("http");
            let query = req.query.map(|q| format!("?{q}")).unwrap_or_default();
            format!("{proto}://{host}{}{query}", req.path)
        }
    };
    let valid = verify(token, &url, &params, given)
        || port_variant(&url).is_some_and(|u| verify(token, &u, &params, given));
    if !valid {
        return Err(AdapterError::Forbidden(format!(
            "X-Twilio-Signature does not match {}",
            mask_numbers(&url)
        )));
    }
    let from = required(field(&params, "From"), "From")?;
    let to = required(field(&params, "To"), "To")?;
    let sid = required(field(&params, "MessageSid"), "MessageSid")?;
    Ok(SmsInbound {
        id: Some(sid.to_string()),
        from: normalize_msisdn(from),
        to: to.to_string(),
        text: field(&params, "Body").unwrap_or("").to_string(),
    })
}

/// `s` as XML text: markup escaped, and the characters XML 1.0 forbids (control
/// characters but tab and line breaks, U+FFFE, U+FFFF) left out, so that a data source's
/// stray byte cannot make the TwiML unreadable.
fn xml_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '\t' | '\n' | '\r' => out.push(c),
            c if (c.is_control() && c < '\u{80}') || matches!(c, '\u{FFFE}' | '\u{FFFF}') => {}
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            c => out.push(c),
        }
    }
    out
}

pub(super) fn render(reply: &SmsReply) -> RawResponse {
    RawResponse {
        content_type: "text/xml; charset=utf-8",
        ..RawResponse::text(
            200,
            format!(
                "<?xml version=\"1.0\" encoding=\"UTF-8\"?><Response><Message>{}</Message></Response>",
                xml_escape(&reply.text)
            ),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    /// The examples of Twilio's own documentation snippets (TwilioDevEd/api-snippets,
    /// security/signature_validation): token `12345`, this URL and these parameters.
    #[test]
    fn twilio_published_vectors() {
        let url = "https://mycompany.com/myapp.php?foo=1&bar=2";
        let params = p(&[
            ("CallSid", "CA1234567890ABCDE"),
            ("Caller", "+14158675310"),
            ("Digits", "1234"),
            ("From", "+14158675310"),
            ("To", "+18005551212"),
        ]);
        assert_eq!(
            signature("12345", url, &params),
            "GvWf1cFY/Q7PnoempGyD5oXAezc="
        );
        let params = p(&[
            ("CallSid", "CA1234567890ABCDE"),
            ("Caller", "+14158675309"),
            ("Digits", "1234"),
            ("From", "+14158675309"),
            ("To", "+18005551212"),
        ]);
        assert_eq!(
            signature("12345", url, &params),
            "RSOYDt4T1cUTdK1PDd93/VVr8B8="
        );
        assert!(verify(
            "12345",
            url,
            &params,
            "RSOYDt4T1cUTdK1PDd93/VVr8B8="
        ));
        assert!(!verify(
            "12346",
            url,
            &params,
            "RSOYDt4T1cUTdK1PDd93/VVr8B8="
        ));
        assert!(!verify("12345", url, &params, "not base64!"));
    }

    #[test]
    fn ports_toggle_like_twilio_validators() {
        assert_eq!(
            port_variant("https://h.example/x?y=1").as_deref(),
            Some("https://h.example:443/x?y=1")
        );
        assert_eq!(
            port_variant("https://h.example:443/x").as_deref(),
            Some("https://h.example/x")
        );
        assert_eq!(port_variant("http://h:8080/x"), None);
    }

    fn request<'a>(body: &'a [u8], headers: &'a [(String, String)]) -> RawRequest<'a> {
        RawRequest {
            method: "POST",
            path: "/sms/twilio",
            query: None,
            headers,
            body,
        }
    }

    #[test]
    fn signed_requests_pass_and_others_get_403() {
        let body = b"From=%2B2250700000001&To=144&Body=SMSC&MessageSid=SM1";
        let params = parse_form(body).unwrap();
        let sig = signature("tok", "http://gw.example/sms/twilio", &params);
        let auth = SmsAuth {
            twilio_token: Some("tok".into()),
            public_url: None,
        };
        let headers = vec![
            ("host".to_string(), "gw.example".to_string()),
            ("x-twilio-signature".to_string(), sig.clone()),
        ];
        let m = parse(&request(body, &headers), &auth).unwrap();
        assert_eq!(
            (m.from.as_str(), m.to.as_str(), m.text.as_str()),
            ("+2250700000001", "144", "SMSC")
        );
        assert_eq!(m.id.as_deref(), Some("SM1"));

        // A configured public URL is what is signed.
        let public = SmsAuth {
            twilio_token: Some("tok".into()),
            public_url: Some("https://public.example/hook".into()),
        };
        assert!(matches!(
            parse(&request(body, &headers), &public),
            Err(AdapterError::Forbidden(_))
        ));
        let sig2 = signature("tok", "https://public.example/hook", &params);
        let h2 = vec![("x-twilio-signature".to_string(), sig2)];
        assert!(parse(&request(body, &h2), &public).is_ok());

        // Tampered body, wrong token, missing header, no token configured.
        let tampered = b"From=%2B2250700000001&To=144&Body=CONSO&MessageSid=SM1";
        assert!(matches!(
            parse(&request(tampered, &headers), &auth),
            Err(AdapterError::Forbidden(_))
        ));
        let wrong = SmsAuth {
            twilio_token: Some("other".into()),
            public_url: None,
        };
        assert!(matches!(
            parse(&request(body, &headers), &wrong),
            Err(AdapterError::Forbidden(_))
        ));
        let unsigned = vec![("host".to_string(), "gw.example".to_string())];
        assert!(matches!(
            parse(&request(body, &unsigned), &auth),
            Err(AdapterError::Forbidden(_))
        ));
        assert!(matches!(
            parse(&request(body, &headers), &SmsAuth::default()),
            Err(AdapterError::Forbidden(_))
        ));
    }

    #[test]
    fn twiml_is_escaped() {
        let r = render(&SmsReply::new("1 < 2 & « ok »".into()));
        assert_eq!(
            r.body,
            "<?xml version=\"1.0\" encoding=\"UTF-8\"?><Response><Message>1 &lt; 2 &amp; « ok »</Message></Response>"
        );
    }

    // Found by tests/integration/properties.rs: a NUL or a control character in a reply
    // (a data source's value) made TwiML that no XML parser reads.
    #[test]
    fn twiml_leaves_out_the_characters_xml_forbids() {
        let r = render(&SmsReply::new("a\0b\u{f}c\u{1b}\td\ne\u{FFFE}".into()));
        assert!(
            r.body.contains("<Message>abc\td\ne</Message>"),
            "{}",
            r.body
        );
    }
}
