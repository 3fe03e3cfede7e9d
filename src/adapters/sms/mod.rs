//! The SMS dialects: an incoming SMS's webhook in ([`SmsWebhook`]), the answer out; and
//! the delivery reports providers call back with ([`DlrDialect`]).
//!
//! Two ways to answer: Kannel, Twilio and tamtam's JSON carry the reply in the webhook's
//! response; Africa's Talking and Jasmin take only an acknowledgement ([`SmsDialect::ack`]),
//! and the reply is sent through a `[[sender]]`. One file per dialect; a dialect that also
//! sends delivery reports has its `parse_dlr` in the same file.

mod africas_talking;
mod dlr;
mod jasmin;
mod json;
mod kannel;
mod twilio;

pub use dlr::{DeliveryReport, DeliveryStatus, MessageRef};
pub use twilio::signature as twilio_signature;

use crate::adapters::{AdapterError, RawRequest, RawResponse};
use crate::message::{SmsInbound, SmsReply};

/// The SMS dialects tamtam speaks. Closed: adding one is adding a file and a variant.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SmsDialect {
    /// Kannel `sms-service`, `get-url` or `post-url` (`kannel`).
    Kannel,
    /// Twilio-style SMS webhook (`twilio`).
    Twilio,
    /// tamtam's own SMS JSON (`sms_json`).
    Json,
    /// Africa's Talking incoming SMS (`africas_talking_sms`; the reply is sent).
    AfricasTalking,
    /// Jasmin HTTP MO (`jasmin`; acknowledged with `ACK/Jasmin`, the reply is sent).
    Jasmin,
}

/// An incoming SMS as a dialect reads it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SmsWebhook {
    pub inbound: SmsInbound,
    /// Africa's Talking's `linkId`, to echo on the reply (premium services); else `None`.
    pub link_id: Option<String>,
}

/// What an SMS dialect needs to authenticate a webhook.
#[derive(Debug, Clone, Default)]
pub struct SmsAuth {
    /// The Twilio auth token; `None`: every Twilio webhook is refused.
    pub twilio_token: Option<String>,
    /// The URL Twilio calls, as configured; `None`: built from `Host` and the path.
    pub public_url: Option<String>,
}

impl SmsDialect {
    pub const ALL: [SmsDialect; 5] = [
        SmsDialect::Kannel,
        SmsDialect::Twilio,
        SmsDialect::Json,
        SmsDialect::AfricasTalking,
        SmsDialect::Jasmin,
    ];

    /// The name used in the configuration and in session keys.
    pub fn name(self) -> &'static str {
        match self {
            SmsDialect::Kannel => "kannel",
            SmsDialect::Twilio => "twilio",
            SmsDialect::Json => "sms_json",
            SmsDialect::AfricasTalking => "africas_talking_sms",
            SmsDialect::Jasmin => "jasmin",
        }
    }

    /// True for dialects whose replies are sent through a `[[sender]]` (they have an
    /// [`ack`](SmsDialect::ack)).
    pub fn needs_sender(self) -> bool {
        self.ack().is_some()
    }

    /// Reads an incoming SMS. `auth` carries what Twilio's signature check needs.
    pub fn parse(self, req: &RawRequest, auth: &SmsAuth) -> Result<SmsWebhook, AdapterError> {
        let (inbound, link_id) = match self {
            SmsDialect::Kannel => (kannel::parse(req)?, None),
            SmsDialect::Twilio => (twilio::parse(req, auth)?, None),
            SmsDialect::Json => (json::parse(req)?, None),
            SmsDialect::Jasmin => (jasmin::parse(req)?, None),
            SmsDialect::AfricasTalking => africas_talking::parse(req)?,
        };
        // A sender that normalises to nothing (`-`, `()`) is no number: refused, not
        // answered at "".
        if inbound.from.is_empty() {
            return Err(AdapterError::InvalidField {
                field: if self == SmsDialect::Twilio {
                    "From"
                } else {
                    "from"
                },
                reason: "is not a phone number".into(),
            });
        }
        Ok(SmsWebhook { inbound, link_id })
    }

    /// The answer to an SMS that has been handled: the reply itself for the dialects that
    /// carry it in the response, the acknowledgement for those whose reply is sent.
    pub fn render(self, reply: &SmsReply, inbound: &SmsInbound) -> RawResponse {
        match self {
            SmsDialect::Kannel => kannel::render(reply),
            SmsDialect::Twilio => twilio::render(reply),
            SmsDialect::Json => json::render(reply, Some(inbound)),
            SmsDialect::AfricasTalking => africas_talking::ack(),
            SmsDialect::Jasmin => jasmin::ack(),
        }
    }

    /// The acknowledgement of a dialect whose reply is sent separately; `None` for the
    /// dialects that take the reply in the response.
    pub fn ack(self) -> Option<RawResponse> {
        match self {
            SmsDialect::Kannel | SmsDialect::Twilio | SmsDialect::Json => None,
            SmsDialect::AfricasTalking => Some(africas_talking::ack()),
            SmsDialect::Jasmin => Some(jasmin::ack()),
        }
    }

    /// The answer to an SMS from a caller over their rate: nothing goes back to the phone.
    /// Kannel gets an empty body (its `sms-service` has `omit-empty = true`, as in the
    /// shipped config/kannel/kannel.conf), Twilio an empty `<Response/>`, tamtam's JSON a
    /// 429 in its error format, the asynchronous dialects their acknowledgement.
    pub fn render_limited(self) -> RawResponse {
        self.no_reply(
            429,
            "too_many_requests",
            "too many requests; try again later",
        )
    }

    /// The answer to an SMS whose reply would go to a number the tenant does not send to:
    /// nothing goes back (as [`render_limited`](SmsDialect::render_limited); JSON: a 403).
    pub fn render_refused(self) -> RawResponse {
        self.no_reply(
            403,
            "destination_not_allowed",
            "no reply is sent to this number",
        )
    }

    fn no_reply(self, status: u16, code: &str, message: &str) -> RawResponse {
        match self {
            SmsDialect::Kannel => RawResponse::text(200, ""),
            SmsDialect::Twilio => RawResponse {
                content_type: "text/xml; charset=utf-8",
                ..RawResponse::text(
                    200,
                    "<?xml version=\"1.0\" encoding=\"UTF-8\"?><Response></Response>",
                )
            },
            SmsDialect::Json => json::render_no_reply(status, code, message),
            SmsDialect::AfricasTalking => africas_talking::ack(),
            SmsDialect::Jasmin => jasmin::ack(),
        }
    }

    /// Writes an error, with its 4xx status, in the dialect's format.
    pub fn render_error(self, error: &AdapterError) -> RawResponse {
        let mut response = match self {
            SmsDialect::Kannel => kannel::render(&SmsReply::new(error.to_subscriber())),
            SmsDialect::Twilio => twilio::render(&SmsReply::new(error.to_subscriber())),
            SmsDialect::Json => json::render_error(error),
            SmsDialect::AfricasTalking => africas_talking::render_error(error),
            SmsDialect::Jasmin => jasmin::render_error(error),
        };
        response.status = error.status();
        response
    }
}

/// The providers that call back with delivery reports, one route each.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DlrDialect {
    /// Kannel's `dlr-url` (`/dlr/kannel`): names tamtam's own message id.
    Kannel,
    /// Jasmin's `dlr-url` (`/dlr/jasmin`): names Jasmin's message id.
    Jasmin,
    /// Africa's Talking's delivery reports (`/dlr/at`): name its message id.
    AfricasTalking,
}

impl DlrDialect {
    pub const ALL: [DlrDialect; 3] = [
        DlrDialect::Kannel,
        DlrDialect::Jasmin,
        DlrDialect::AfricasTalking,
    ];

    /// The name in logs.
    pub fn name(self) -> &'static str {
        match self {
            DlrDialect::Kannel => "kannel",
            DlrDialect::Jasmin => "jasmin",
            DlrDialect::AfricasTalking => "africas_talking",
        }
    }

    /// Reads a delivery report: its fields come in the query, a form body, or both.
    pub fn parse(self, req: &RawRequest) -> Result<DeliveryReport, AdapterError> {
        match self {
            DlrDialect::Kannel => kannel::parse_dlr(req),
            DlrDialect::Jasmin => jasmin::parse_dlr(req),
            DlrDialect::AfricasTalking => africas_talking::parse_dlr(req),
        }
    }

    /// The answer to a report that has been recorded.
    pub fn ack(self) -> RawResponse {
        match self {
            DlrDialect::Kannel => RawResponse::text(200, "OK\n"),
            DlrDialect::Jasmin => jasmin::ack(),
            DlrDialect::AfricasTalking => africas_talking::ack(),
        }
    }

    /// A report that could not be read: its 4xx status and what was wrong, as text.
    pub fn render_error(self, error: &AdapterError) -> RawResponse {
        RawResponse::text(error.status(), format!("{error}\n"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_sending_dialects_acknowledge() {
        for d in SmsDialect::ALL {
            let sends = matches!(d, SmsDialect::AfricasTalking | SmsDialect::Jasmin);
            assert_eq!(d.ack().is_some(), sends, "{}", d.name());
        }
        assert_eq!(SmsDialect::Jasmin.ack().unwrap().body, "ACK/Jasmin");
        assert_eq!(SmsDialect::AfricasTalking.ack().unwrap().body, "OK");
    }

    // Found by tests/integration/properties.rs: `from=-` was read as the number "", and
    // an asynchronous dialect would queue its reply to "".
    #[test]
    fn a_sender_that_normalises_to_nothing_is_refused() {
        let form = b"id=1&from=-&to=144&text=CONSO";
        let json = br#"{"from":"()","to":"144","text":"CONSO"}"#;
        for (d, method, query, body) in [
            (
                SmsDialect::Kannel,
                "GET",
                Some("from=.&to=144&text=CONSO"),
                &b""[..],
            ),
            (SmsDialect::Json, "POST", None, &json[..]),
            (SmsDialect::AfricasTalking, "POST", None, &form[..]),
            (SmsDialect::Jasmin, "POST", None, &form[..]),
        ] {
            let req = RawRequest {
                method,
                path: "/",
                query,
                headers: &[],
                body,
            };
            let got = d.parse(&req, &SmsAuth::default());
            assert!(
                matches!(got, Err(AdapterError::InvalidField { field: "from", .. })),
                "{}: {got:?}",
                d.name()
            );
        }
    }

    #[test]
    fn a_limited_sms_gets_no_text_back() {
        for d in SmsDialect::ALL {
            let r = d.render_limited();
            let expected = match d {
                SmsDialect::Kannel => "",
                SmsDialect::Twilio => {
                    "<?xml version=\"1.0\" encoding=\"UTF-8\"?><Response></Response>"
                }
                SmsDialect::Json => {
                    r#"{"error":{"code":"too_many_requests","message":"too many requests; try again later"}}"#
                }
                SmsDialect::AfricasTalking | SmsDialect::Jasmin => &d.ack().unwrap().body,
            };
            assert_eq!(r.body, expected, "{}", d.name());
            let status = if d == SmsDialect::Json { 429 } else { 200 };
            assert_eq!(r.status, status, "{}", d.name());
            let refused = d.render_refused();
            if d == SmsDialect::Json {
                assert_eq!(refused.status, 403);
                assert!(refused.body.contains("destination_not_allowed"));
            } else {
                assert_eq!((refused.status, refused.body), (r.status, r.body));
            }
        }
    }

    #[test]
    fn delivery_reports_are_acknowledged_as_each_provider_expects() {
        let bodies: Vec<String> = DlrDialect::ALL.iter().map(|d| d.ack().body).collect();
        assert_eq!(bodies, ["OK\n", "ACK/Jasmin", "OK"]);
        let e = DlrDialect::Jasmin.render_error(&AdapterError::MissingField("id"));
        assert_eq!((e.status, e.body.as_str()), (400, "missing field `id`\n"));
    }
}
