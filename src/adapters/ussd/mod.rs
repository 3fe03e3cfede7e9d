//! The USSD dialects: a webhook in, one hop ([`Inbound`]) out; a [`Reply`] back as the
//! dialect's continue/end screen. One file per dialect; [`UssdDialect`] dispatches.

mod africas_talking;
mod hubtel;
mod json;

use crate::adapters::{AdapterError, RawRequest, RawResponse};
use crate::message::{Inbound, Reply};

/// The USSD dialects tamtam speaks. Closed: adding one is adding a file and a variant.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum UssdDialect {
    /// Africa's Talking USSD (`africas_talking`).
    AfricasTalking,
    /// Hubtel-style USSD (`hubtel`).
    Hubtel,
    /// tamtam's own USSD JSON (`json`).
    Json,
}

impl UssdDialect {
    pub const ALL: [UssdDialect; 3] = [
        UssdDialect::AfricasTalking,
        UssdDialect::Hubtel,
        UssdDialect::Json,
    ];

    /// The name used in the configuration and in session keys.
    pub fn name(self) -> &'static str {
        match self {
            UssdDialect::AfricasTalking => "africas_talking",
            UssdDialect::Hubtel => "hubtel",
            UssdDialect::Json => "json",
        }
    }

    /// Reads a hop's webhook (always a POST).
    pub fn parse(self, req: &RawRequest) -> Result<Inbound, AdapterError> {
        if req.method != "POST" {
            return Err(AdapterError::Method(req.method.to_string()));
        }
        let inbound = match self {
            UssdDialect::AfricasTalking => africas_talking::parse(req.body)?,
            UssdDialect::Hubtel => hubtel::parse(req.body)?,
            UssdDialect::Json => json::parse(req.body)?,
        };
        // A number that normalises to nothing (`-`, `()`) is no number: refused, not keyed
        // as "" (every such caller would share one resume point).
        if inbound.msisdn.is_empty() {
            return Err(AdapterError::InvalidField {
                field: self.msisdn_field(),
                reason: "is not a phone number".into(),
            });
        }
        Ok(inbound)
    }

    /// The name of the field that carries the caller's number.
    fn msisdn_field(self) -> &'static str {
        match self {
            UssdDialect::AfricasTalking => "phoneNumber",
            UssdDialect::Hubtel => "Mobile",
            UssdDialect::Json => "msisdn",
        }
    }

    /// Writes the reply to a hop of `session_id`.
    pub fn render(self, reply: &Reply, session_id: &str) -> RawResponse {
        match self {
            UssdDialect::AfricasTalking => africas_talking::render(reply),
            UssdDialect::Hubtel => hubtel::render(reply),
            UssdDialect::Json => json::render(reply, session_id),
        }
    }

    /// Writes an error, with its 4xx status, as the dialect's end screen.
    pub fn render_error(self, error: &AdapterError) -> RawResponse {
        let mut response = match self {
            UssdDialect::AfricasTalking => {
                africas_talking::render(&Reply::end(error.to_subscriber()))
            }
            UssdDialect::Hubtel => hubtel::render(&Reply::end(error.to_subscriber())),
            UssdDialect::Json => json::render_error(error),
        };
        response.status = error.status();
        response
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_dialect_ends_the_session_on_an_error_with_its_status() {
        let e = AdapterError::MissingField("msisdn");
        for d in UssdDialect::ALL {
            let r = d.render_error(&e);
            assert_eq!(r.status, 400, "{}", d.name());
            assert!(r.body.contains("msisdn"), "{}: {}", d.name(), r.body);
        }
        assert!(UssdDialect::AfricasTalking
            .render_error(&e)
            .body
            .starts_with("END "));
        let get = RawRequest {
            method: "GET",
            path: "/",
            query: None,
            headers: &[],
            body: b"",
        };
        assert_eq!(
            UssdDialect::Json.parse(&get),
            Err(AdapterError::Method("GET".into()))
        );
    }

    // Found by tests/integration/properties.rs: `phoneNumber=-` was read as the number "",
    // one resume point for every such caller.
    #[test]
    fn a_number_that_normalises_to_nothing_is_refused() {
        let bodies: [(UssdDialect, &[u8]); 3] = [
            (
                UssdDialect::AfricasTalking,
                b"sessionId=s&serviceCode=*144%23&phoneNumber=-",
            ),
            (
                UssdDialect::Hubtel,
                br#"{"Type":"Initiation","SessionId":"s","Mobile":"()","Message":"*144#"}"#,
            ),
            (
                UssdDialect::Json,
                br#"{"session_id":"s","msisdn":" . ","service_code":"*144#"}"#,
            ),
        ];
        for (d, body) in bodies {
            let req = RawRequest {
                method: "POST",
                path: "/",
                query: None,
                headers: &[],
                body,
            };
            assert!(
                matches!(d.parse(&req), Err(AdapterError::InvalidField { field, .. }) if field == d.msisdn_field()),
                "{}",
                d.name()
            );
        }
    }
}
