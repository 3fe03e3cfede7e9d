//! Kannel `sms-service`: `get-url` (everything in the query) or `post-url` (the text in the
//! body, metadata in `X-Kannel-*` headers). The HTTP reply body is the SMS Kannel sends back.
//!
//! The query template this adapter reads (documented in `config/kannel/`):
//! `get-url = "http://HOST/sms/kannel?from=%p&to=%P&text=%b&id=%I&smsc=%i&coding=%c&charset=%C&time=%T"`.
//! `%b` is the message as received, URL-encoded in the charset `%C` names (`UTF-8`,
//! `ISO-8859-1`/`WINDOWS-1252`, or `UTF-16BE` for a UCS-2 message, `%c` = 2); it is decoded
//! accordingly. The reply is `text/plain; charset=UTF-8`, with `X-Kannel-Coding: 2` when it
//! needs UCS-2 (the service needs `accept-x-kannel-headers = true`), and never empty.
//!
//! Its delivery reports (`/dlr/kannel`, the `dlr-url` the Kannel sender fills in):
//! `?id=<tamtam's id>&status=%d`, where `%d` is 1 delivered, 2 failed, 4 buffered, 8
//! submitted to the SMSC, 16 rejected by the SMSC.

use super::dlr::{fields, present, DeliveryReport, DeliveryStatus, MessageRef};
use crate::adapters::{decode_utf16be, parse_form_bytes, AdapterError, RawRequest, RawResponse};
use crate::message::{normalize_msisdn, SmsInbound, SmsReply};
use crate::text::Encoding;

pub(super) fn parse(req: &RawRequest) -> Result<SmsInbound, AdapterError> {
    let query = parse_form_bytes(req.query.unwrap_or("").as_bytes())?;
    let q = |name: &str| -> Option<&[u8]> {
        query
            .iter()
            .find(|(k, _)| k == name.as_bytes())
            .map(|(_, v)| v.as_slice())
    };
    let utf8 = |v: Option<&[u8]>, field: &'static str| -> Result<Option<String>, AdapterError> {
        v.map(|b| {
            String::from_utf8(b.to_vec()).map_err(|_| AdapterError::InvalidField {
                field,
                reason: "is not UTF-8".into(),
            })
        })
        .transpose()
    };
    let (from, to, coding, charset, text_bytes) = match req.method {
        "GET" => (
            utf8(q("from"), "from")?,
            utf8(q("to"), "to")?,
            utf8(q("coding"), "coding")?,
            utf8(q("charset"), "charset")?,
            q("text").unwrap_or_default().to_vec(),
        ),
        "POST" => {
            let header = |n: &str| req.header(n).map(str::to_string);
            let charset = req
                .header("content-type")
                .and_then(|ct| {
                    ct.split(';')
                        .find_map(|p| p.trim().strip_prefix("charset="))
                })
                .map(|c| c.trim_matches('"').to_string());
            (
                header("x-kannel-from").or(utf8(q("from"), "from")?),
                header("x-kannel-to").or(utf8(q("to"), "to")?),
                header("x-kannel-coding").or(utf8(q("coding"), "coding")?),
                charset.or(utf8(q("charset"), "charset")?),
                req.body.to_vec(),
            )
        }
        other => return Err(AdapterError::Method(other.to_string())),
    };
    let from = from
        .filter(|f| !f.trim().is_empty())
        .ok_or(AdapterError::MissingField("from"))?;
    let to = to
        .filter(|t| !t.trim().is_empty())
        .ok_or(AdapterError::MissingField("to"))?;
    let text = decode(&text_bytes, charset.as_deref(), coding.as_deref())?;
    let id = utf8(q("id"), "id")?.filter(|i| !i.is_empty());
    Ok(SmsInbound {
        id,
        from: normalize_msisdn(from.trim()),
        to: to.trim().to_string(),
        text,
    })
}

/// Decodes Kannel's message bytes by their charset (or coding when no charset is given).
fn decode(
    bytes: &[u8],
    charset: Option<&str>,
    coding: Option<&str>,
) -> Result<String, AdapterError> {
    let charset = charset.map(|c| c.trim().to_ascii_uppercase());
    let ucs2 = matches!(
        charset.as_deref(),
        Some("UTF-16BE" | "UTF-16" | "UCS-2" | "UCS2")
    ) || (charset.is_none() && coding == Some("2"));
    if ucs2 {
        return decode_utf16be(bytes, "text");
    }
    match charset.as_deref() {
        Some("ISO-8859-1" | "LATIN1" | "WINDOWS-1252" | "CP1252") => {
            Ok(bytes.iter().map(|&b| latin1(b)).collect())
        }
        Some("UTF-8" | "UTF8") => {
            String::from_utf8(bytes.to_vec()).map_err(|_| AdapterError::NotUtf8)
        }
        // No charset, or one we do not know: UTF-8 when it is, else Latin-1 (Kannel's
        // historical default), never an error for a subscriber's text.
        _ => Ok(String::from_utf8(bytes.to_vec())
            .unwrap_or_else(|_| bytes.iter().map(|&b| latin1(b)).collect())),
    }
}

/// Windows-1252 where it differs from Latin-1 in the printable range that matters here.
fn latin1(b: u8) -> char {
    match b {
        0x80 => '€',
        0x92 => '’',
        0x9C => 'œ',
        _ => char::from(b),
    }
}

pub(super) fn render(reply: &SmsReply) -> RawResponse {
    let mut headers = Vec::new();
    if reply.encoding == Encoding::Ucs2 {
        headers.push(("x-kannel-coding", "2".to_string()));
    }
    RawResponse {
        headers,
        ..RawResponse::text(200, reply.text.clone())
    }
}

/// Reads a delivery report: tamtam's own id and Kannel's status code.
pub(super) fn parse_dlr(req: &RawRequest) -> Result<DeliveryReport, AdapterError> {
    let f = fields(req)?;
    let id = present(&f, "id")?;
    let code = present(&f, "status")?;
    let status = match code.trim() {
        "1" => DeliveryStatus::Delivered,
        "2" => DeliveryStatus::Failed,
        "4" => DeliveryStatus::Buffered,
        "8" => DeliveryStatus::Submitted,
        "16" => DeliveryStatus::Rejected,
        _ => DeliveryStatus::Unknown,
    };
    // Kannel's codes are small numbers: anything else is not repeated.
    let code = code.trim();
    let detail = if !code.is_empty() && code.len() <= 3 && code.bytes().all(|b| b.is_ascii_digit())
    {
        format!("kannel dlr {code}")
    } else {
        "kannel dlr (not a code)".to_string()
    };
    Ok(DeliveryReport {
        id: MessageRef::Own(id.to_string()),
        status,
        detail,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn get(query: &str) -> Result<SmsInbound, AdapterError> {
        parse(&RawRequest {
            method: "GET",
            path: "/sms/kannel",
            query: Some(query),
            headers: &[],
            body: b"",
        })
    }

    #[test]
    fn reads_the_documented_query() {
        let m = get("from=%2B2250700000001&to=144&text=Centre+SMS&id=0b3c-11&smsc=fake&coding=0&charset=UTF-8&time=1700000000").unwrap();
        assert_eq!(m.from, "+2250700000001");
        assert_eq!(m.to, "144");
        assert_eq!(m.text, "Centre SMS");
        assert_eq!(m.id.as_deref(), Some("0b3c-11"));
    }

    #[test]
    fn decodes_each_charset() {
        // "reçu" in UTF-16BE, as Kannel passes a UCS-2 message.
        let m = get("from=1&to=144&text=%00r%00e%00%E7%00u&coding=2&charset=UTF-16BE").unwrap();
        assert_eq!(m.text, "reçu");
        let m = get("from=1&to=144&text=re%E7u&charset=ISO-8859-1").unwrap();
        assert_eq!(m.text, "reçu");
        let m = get("from=1&to=144&text=re%C3%A7u&charset=UTF-8").unwrap();
        assert_eq!(m.text, "reçu");
        let m = get("from=1&to=144&text=re%E7u").unwrap();
        assert_eq!(m.text, "reçu", "no charset: Latin-1 fallback");
        assert!(get("from=1&to=144&text=%00r%00&charset=UTF-16BE").is_err());
        assert_eq!(
            get("from=1&to=144&text=%E7&charset=UTF-8"),
            Err(AdapterError::NotUtf8)
        );
    }

    #[test]
    fn post_url_reads_headers_and_body() {
        let headers = vec![
            ("x-kannel-from".to_string(), "+687700001".to_string()),
            ("x-kannel-to".to_string(), "1088".to_string()),
            (
                "content-type".to_string(),
                "text/plain; charset=UTF-16BE".to_string(),
            ),
        ];
        let m = parse(&RawRequest {
            method: "POST",
            path: "/sms/kannel",
            query: Some("id=abc"),
            headers: &headers,
            body: &[0, b'o', 0, b'k'],
        })
        .unwrap();
        assert_eq!(
            (m.from.as_str(), m.to.as_str(), m.text.as_str()),
            ("+687700001", "1088", "ok")
        );
        assert_eq!(m.id.as_deref(), Some("abc"));
    }

    #[test]
    fn missing_fields_are_named() {
        assert_eq!(
            get("to=144&text=x"),
            Err(AdapterError::MissingField("from"))
        );
        assert_eq!(get("from=1&text=x"), Err(AdapterError::MissingField("to")));
    }

    #[test]
    fn ucs2_replies_say_so() {
        let r = render(&SmsReply::new("Reçu".into()));
        assert_eq!(r.headers, vec![("x-kannel-coding", "2".to_string())]);
        let r = render(&SmsReply::new("Recu".into()));
        assert!(r.headers.is_empty());
        assert_eq!(
            render(&SmsReply::new(String::new())).body,
            " ",
            "never empty"
        );
    }

    #[test]
    fn delivery_reports_map_each_kannel_code() {
        use crate::adapters::sms::dlr::post;
        for (code, status) in [
            ("1", "delivered"),
            ("2", "failed"),
            ("4", "buffered"),
            ("8", "submitted"),
            ("16", "rejected"),
            ("32", "unknown"),
            ("x", "unknown"),
            ("hacked", "unknown"),
            ("99999", "unknown"),
        ] {
            let query = format!("id=m1&status={code}");
            let r = parse_dlr(&post(Some(&query), b"")).unwrap();
            assert_eq!(r.status.as_str(), status, "code {code}");
            assert_eq!(r.id, MessageRef::Own("m1".into()));
            let shown = if code.len() <= 3 && code.bytes().all(|b| b.is_ascii_digit()) {
                code
            } else {
                "(not a code)"
            };
            assert_eq!(r.detail, format!("kannel dlr {shown}"), "code {code}");
        }
        // The fields may come in a form body too.
        let r = parse_dlr(&post(None, b"id=m2&status=1")).unwrap();
        assert_eq!(r.id, MessageRef::Own("m2".into()));
        assert_eq!(
            parse_dlr(&post(Some("status=1"), b"")),
            Err(AdapterError::MissingField("id"))
        );
        assert_eq!(
            parse_dlr(&post(Some("id=m1"), b"")),
            Err(AdapterError::MissingField("status"))
        );
    }
}
