//! End to end through a real Kannel: fakesmsc plays the phone, bearerbox and smsbox carry
//! the messages, the gateway answers. What the phone receives must be exactly what the
//! gateway answers on its JSON SMS dialect for the same texts (another phone, same short
//! code), with the right data coding and number of parts.

use crate::kannel::{Kannel, KannelMode, MoCoding};
use crate::sms::{send, Via};
use crate::support::Server;

/// One SMS of a script: what the phone sends, and fragments its answer must hold.
struct Step {
    to: &'static str,
    text: &'static str,
    coding: MoCoding,
    expect: &'static [&'static str],
}

const SCRIPT: &[Step] = &[
    // A keyword answer with French accents (GSM-7 ones: é, à are kept).
    Step {
        to: "144",
        text: "SMSC",
        coding: MoCoding::Auto,
        expect: &["+22501099099", "numéro", "malgré"],
    },
    // A two-step dialogue.
    Step {
        to: "144",
        text: "sim",
        coding: MoCoding::Auto,
        expect: &["Avez-vous votre carte MEMO ?", "1. Oui", "2. Non"],
    },
    Step {
        to: "144",
        text: "2",
        coding: MoCoding::Auto,
        expect: &["cinq (5)", "Familles et Amis"],
    },
    // An unknown keyword: the list of keywords.
    Step {
        to: "144",
        text: "bonjour",
        coding: MoCoding::Auto,
        expect: &["Envoyez un mot-clé", "CONSO", "SMSC"],
    },
    // A keyword typed with accents, sent by the phone as UCS-2.
    Step {
        to: "144",
        text: "Réactivation",
        coding: MoCoding::Ucs2,
        expect: &["Avez-vous toujours votre puce ?"],
    },
    // A UCS-2 reply (this tenant keeps accents), long enough for several parts, cut with SUITE.
    Step {
        to: "202",
        text: "LITIGE",
        coding: MoCoding::Auto,
        expect: &["l’opérateur", "Envoyez SUITE"],
    },
    Step {
        to: "202",
        text: "suite",
        coding: MoCoding::Auto,
        expect: &["dborne@cpme.fr"],
    },
    // 1088 answers anything with the consumption.
    Step {
        to: "1088",
        text: "bonjour",
        coding: MoCoding::Auto,
        expect: &["Consommation du mois en cours"],
    },
];

async fn run(mode: KannelMode) {
    let server = Server::start(None).await;
    let kannel = Kannel::start(&format!("{}/sms/kannel", server.base), mode).await;
    let phone = "+2250700000321";
    let twin = "+2250700000654";
    let opt_phone = "+687700321";
    for (i, step) in SCRIPT.iter().enumerate() {
        // The consumption answer is the caller's own record and ends at once: compare it
        // with the same number's answer. Dialogue steps use a twin phone, so as not to
        // disturb the dialogue under test.
        let (from, other) = if step.to == "1088" {
            (opt_phone, opt_phone)
        } else {
            (phone, twin)
        };
        kannel
            .send_mo_as(from, step.to, step.text, step.coding)
            .await;
        let mt = kannel.next_mt().await;
        let at = format!("{mode:?} step {} ({:?} to {})", i + 1, step.text, step.to);
        assert_eq!(mt.to, from, "{at}: delivered to the sender");
        assert_eq!(mt.from, step.to, "{at}: sent from the short code");
        for e in step.expect {
            assert!(mt.text.contains(e), "{at}: expected {e:?} in {:?}", mt.text);
        }
        // The same text from another phone on the JSON dialect: the same answer, but for
        // the caller's own number where the answer quotes it.
        let twin_reply = send(
            &server,
            Via::Json,
            &format!("twin-{mode:?}-{i}"),
            other,
            step.to,
            step.text,
        )
        .await;
        assert_eq!(
            mt.text,
            twin_reply.text.replace(other, from),
            "{at}: the phone got what the gateway answered"
        );
        let segments = tamtam::text::sms_segments(&mt.text);
        let expected_coding = match segments.encoding {
            tamtam::text::Encoding::Gsm7 => 0,
            tamtam::text::Encoding::Ucs2 => 2,
        };
        assert_eq!(mt.coding, expected_coding, "{at}: data coding");
        assert_eq!(mt.parts, segments.count, "{at}: parts");
        assert!(mt.parts <= 3, "{at}: at most 3 parts");
    }
    // The long UCS-2 answer really was several parts.
    drop(kannel);
    server.stop().await;
}

#[tokio::test]
async fn kannel_get_url_carries_keywords_dialogues_and_ucs2() {
    run(KannelMode::Get).await;
}

#[tokio::test]
async fn kannel_post_url_carries_keywords_dialogues_and_ucs2() {
    run(KannelMode::Post).await;
}
