//! Africa's Talking USSD: form fields in, `CON …`/`END …` plain text out.
//!
//! Fields: `sessionId`, `serviceCode` (`*144#`), `phoneNumber` (`+225…`), `text` (empty on
//! the dial, then every input so far joined with `*`: `1*2`), `networkCode` (ignored). A
//! direct dial `*144*3#` arrives as `serviceCode=*144#` with `text=3` on the first hop.

use crate::adapters::{field, parse_form, required, AdapterError, RawResponse};
use crate::message::{as_dial_string, normalize_msisdn, Hop, Inbound, Reply};

pub(super) fn parse(body: &[u8]) -> Result<Inbound, AdapterError> {
    let pairs = parse_form(body)?;
    let session_id = required(field(&pairs, "sessionId"), "sessionId")?;
    let service_code = required(field(&pairs, "serviceCode"), "serviceCode")?;
    let phone = required(field(&pairs, "phoneNumber"), "phoneNumber")?;
    let text = field(&pairs, "text").unwrap_or("").trim();
    Ok(Inbound {
        session_id: session_id.to_string(),
        msisdn: normalize_msisdn(phone),
        service_code: as_dial_string(service_code),
        hop: Hop::Path(text.to_string()),
    })
}

pub(super) fn render(reply: &Reply) -> RawResponse {
    let prefix = if reply.end { "END " } else { "CON " };
    RawResponse::text(200, format!("{prefix}{}", reply.text))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_a_hop() {
        let inbound =
            parse(b"sessionId=ATUid_1&serviceCode=%2A144%23&phoneNumber=%2B2250700000001&text=1%2A2&networkCode=99999")
                .unwrap();
        assert_eq!(inbound.session_id, "ATUid_1");
        assert_eq!(inbound.service_code, "*144#");
        assert_eq!(inbound.msisdn, "+2250700000001");
        assert_eq!(inbound.hop, Hop::Path("1*2".into()));
    }

    #[test]
    fn text_may_be_absent_on_the_dial() {
        let inbound = parse(b"sessionId=s&serviceCode=*144%23&phoneNumber=%2B1").unwrap();
        assert_eq!(inbound.hop, Hop::Path(String::new()));
    }

    #[test]
    fn missing_fields_are_named() {
        assert_eq!(
            parse(b"serviceCode=*144%23&phoneNumber=1"),
            Err(AdapterError::MissingField("sessionId"))
        );
        assert_eq!(
            parse(b"sessionId=s&phoneNumber=1"),
            Err(AdapterError::MissingField("serviceCode"))
        );
        assert_eq!(
            parse(b"sessionId=s&serviceCode=*1%23&phoneNumber="),
            Err(AdapterError::MissingField("phoneNumber"))
        );
    }

    #[test]
    fn replies_start_with_con_or_end() {
        assert_eq!(
            render(&Reply {
                text: "Menu".into(),
                end: false
            })
            .body,
            "CON Menu"
        );
        assert_eq!(render(&Reply::end("Merci")).body, "END Merci");
    }
}
