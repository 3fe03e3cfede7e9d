//! The Kannel sender against a real Kannel (bearerbox, smsbox's `sendsms`, fakesmsc as the
//! phone): what the worker sends reaches the phone with the exact text and coding, and the
//! delivery reports Kannel calls back on `dlr-url` land in the message's history.
//!
//! Measured (Kannel 1.4.5, fake SMSC, `dlr-mask=31`): the fake SMSC reports `8` (submitted
//! to the SMSC) and then `1` (delivered) for every message, within milliseconds of the
//! sendsms call; Kannel keeps the `+` of the number and the text exact (UCS-2 as coding 2).

use tamtam::outbox::SenderKind;

use crate::outbox_worker::{gateway_with, out, sender, Worker};
use crate::support::kannel::{Kannel, KannelMode};
use crate::support::outbox_fake::{json_statuses, wait_message};

#[tokio::test]
async fn kannel_sends_to_the_phone_and_reports_delivery() {
    let server = gateway_with(Vec::new(), "outbox-kannel").await;
    let kannel = Kannel::start(&format!("{}/sms/kannel", server.base), KannelMode::Get).await;
    let mut config = sender("kannel-test", SenderKind::Kannel, &kannel.sendsms_url());
    config.username = Some(kannel.sendsms_username.clone());
    config.password = Some(kannel.sendsms_password.clone());
    config.dlr_url = Some(server.dlr_url("kannel"));
    let worker = Worker::start(server.outbox.queue.clone(), vec![config]);

    for (n, text, coding) in [
        (1, "Votre numéro SMSC : +22501099099 (à vérifier).", 0),
        (2, "Reçu ’ç’", 2),
    ] {
        let to = format!("+22507000009{n:02}");
        let m = out("kannel-test", &to, text);
        server.outbox.accept(&m).await.unwrap();
        let mt = kannel.next_mt().await;
        assert_eq!(mt.text, text, "the phone gets the exact text");
        assert_eq!(mt.coding, coding, "{text}");
        assert_eq!(mt.from, "144");
        assert_eq!(mt.to, to);
        assert_eq!(mt.parts, 1);
        // Kannel's fake SMSC reports 8 (submitted to the SMSC), then 1 (delivered), for
        // a dlr-mask of 31. The reports may reach the gateway before the worker has recorded
        // "sent" (Kannel answered the sendsms call first), so the order is not asserted.
        let v = wait_message(&server.admin, &m.id, "Kannel's reports 8 and 1", |s| {
            s.iter().any(|x| x == "delivered") && s.iter().any(|x| x == "submitted")
        })
        .await;
        let mut got = json_statuses(&v);
        assert_eq!(got[0], "accepted", "{v}");
        got.sort();
        assert_eq!(got, ["accepted", "delivered", "sent", "submitted"], "{v}");
        let details: Vec<&str> = v["history"]
            .as_array()
            .unwrap()
            .iter()
            .filter_map(|e| e["detail"].as_str())
            .collect();
        assert!(details.contains(&"kannel dlr 8"), "{v}");
        assert!(details.contains(&"kannel dlr 1"), "{v}");
    }
    worker.stop().await;
}
