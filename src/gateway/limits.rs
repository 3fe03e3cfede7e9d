//! The gateway's side of the abuse limits (`crate::limits`): where they are checked.
//!
//! - Inbound: the server calls [`Gateway::ussd_from`], [`Gateway::sms_from`] and
//!   [`Gateway::sms_async_from`] with the peer's address; each takes a token from the
//!   subscriber's and the source's buckets, once the adapter has read the MSISDN, and only
//!   then runs the hop. A caller over their rate gets a polite USSD `END` (the tenant's
//!   text policy applied) or, by SMS, nothing (`Outcome::Limited`; the server renders the
//!   dialect's "no reply"), and the gateway does no engine work, reads no session.
//! - Outbound: `Gateway::enqueue` asks [`Gateway::allow_sms`] before queueing: a destination
//!   the tenant allows, under its daily cap per subscriber. A refused SMS is a
//!   [`SendError::Refused`]: a USSD hop ends on the refusal's text instead of "SMS envoyé",
//!   an asynchronous SMS is acknowledged and not answered. A synchronous dialect's reply
//!   (Kannel, Twilio, SMS JSON) travels in the HTTP answer, not through `enqueue`: its
//!   destination is checked in [`Gateway::sms_from`], and a refused one gets "no reply"
//!   (`Outcome::Refused`).

use std::net::IpAddr;

use super::{Gateway, NotServed, Outcome};
use crate::limits::{Limiter, Refusal, SmsPolicy};
use crate::message::{Inbound, Reply, SmsInbound, SmsReply};
use crate::outbox::{OutMessage, OutboxError};
use crate::text::TextPolicy;

/// Why an SMS was not queued.
#[derive(Debug, thiserror::Error)]
pub enum SendError {
    /// The abuse limits refused it (destination or daily cap): do not retry.
    #[error("SMS refused by the abuse limits ({})", .0.as_str())]
    Refused(Refusal),
    #[error(transparent)]
    Outbox(#[from] OutboxError),
}

/// Seconds in a day: daily caps count per UTC day of the gateway's clock.
const DAY_SECS: i64 = 86_400;

impl Gateway {
    /// Checks the abuse limits with `limiter` (the default has no inbound limit).
    pub fn with_limiter(mut self, limiter: Limiter) -> Gateway {
        self.limiter = limiter;
        self
    }

    pub fn limiter(&self) -> &Limiter {
        &self.limiter
    }

    /// [`Gateway::ussd_within`] for a caller at `peer`, under the inbound limits, within
    /// `budget` (the channel's).
    pub async fn ussd_from(
        &self,
        peer: Option<IpAddr>,
        dialect: &str,
        inbound: &Inbound,
        budget: std::time::Duration,
    ) -> (Reply, Outcome, Option<super::LateLookup>) {
        if let Err(refusal) = self.limiter.admit(peer, &inbound.msisdn).await {
            let policy = self
                .resolve(&inbound.service_code)
                .map_or(TextPolicy::Transliterate, |(t, _)| t.menu.policy);
            let text = policy.apply(refusal.ussd_text()).into_owned();
            return (Reply::end(text), Outcome::Limited, None);
        }
        self.ussd_within(dialect, inbound, budget).await
    }

    /// [`Gateway::sms`] for a caller at `peer`, under the inbound limits, answered only
    /// when the sender is a destination the tenant allows (the reply is an SMS to them; the
    /// daily cap counts only the SMS tamtam queues). A refused SMS gets `Outcome::Limited`
    /// or `Outcome::Refused` and no text: the server answers with the dialect's "no reply".
    pub async fn sms_from(
        &self,
        peer: Option<IpAddr>,
        dialect: &str,
        inbound: &SmsInbound,
    ) -> (SmsReply, Outcome) {
        if self.limiter.admit(peer, &inbound.from).await.is_err() {
            return (SmsReply::new(String::new()), Outcome::Limited);
        }
        // The reply is an SMS to the sender: only to a number the tenant sends to.
        if let Some(tenant) = self.resolve_sms(&inbound.to) {
            let destinations = SmsPolicy {
                destinations: &tenant.config.sms_destinations,
                per_subscriber_per_day: 0,
            };
            let allowed = (self.limiter)
                .allow_sms(&tenant.config.id, destinations, &inbound.from, 0)
                .await;
            if allowed.is_err() {
                return (SmsReply::new(String::new()), Outcome::Refused);
            }
        }
        self.sms(dialect, inbound).await
    }

    /// [`Gateway::sms_async`] for a caller at `peer`, under the inbound limits. A refused
    /// SMS is acknowledged (`Outcome::Limited`) and nothing is queued.
    pub async fn sms_async_from(
        &self,
        peer: Option<IpAddr>,
        dialect: &str,
        inbound: &SmsInbound,
        sender: &str,
        link_id: Option<String>,
    ) -> Result<(SmsReply, Outcome), NotServed> {
        if self.limiter.admit(peer, &inbound.from).await.is_err() {
            return Ok((SmsReply::new(String::new()), Outcome::Limited));
        }
        self.sms_async(dialect, inbound, sender, link_id).await
    }

    /// Whether `message` may be queued: a destination its tenant allows, under the
    /// tenant's daily cap (counted here). A message of no known tenant goes nowhere.
    pub(super) async fn allow_sms(&self, message: &OutMessage) -> Result<(), SendError> {
        let tenants = self.tenants.load_full();
        let tenant = tenants.by_id(&message.tenant);
        let policy = tenant.map_or(
            SmsPolicy {
                destinations: &[],
                per_subscriber_per_day: 0,
            },
            |t| SmsPolicy {
                destinations: &t.config.sms_destinations,
                per_subscriber_per_day: t.config.sms_per_subscriber_per_day,
            },
        );
        let day = (self.clock.0)().div_euclid(DAY_SECS);
        self.limiter
            .allow_sms(&message.tenant, policy, &message.to, day)
            .await
            .map_err(SendError::Refused)
    }
}
