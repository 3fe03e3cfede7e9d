//! The answers the gateway gives when it cannot serve a hop ("unavailable", "expired")
//! follow the tenant's USSD text policy: on a `transliterate` tenant they are GSM-7.

use tamtam::adapters::Dialect;
use tamtam::session::{RedisStore, Store};
use tamtam::text::{is_gsm7, transliterate};

use crate::support::outbox_fake::RefusingPort;
use crate::support::{root, shipped_config, Phone, Server};

/// A tenant's own "unavailable" text, with typography GSM-7 lacks.
const UNAVAILABLE: &str = "Service indisponible… Réessayez « bientôt » – merci’";

#[tokio::test]
async fn the_unavailable_answer_follows_the_tenants_transliterate_policy() {
    // The shipped moov-ci menu with its own `unavailable` text.
    let menu = std::fs::read_to_string(root().join("menus/moov-ci.toml")).unwrap();
    let file = std::env::temp_dir().join(format!("tamtam-unavailable-{}.toml", std::process::id()));
    std::fs::write(
        &file,
        format!("{menu}\n[texts]\nunavailable = \"{UNAVAILABLE}\"\n"),
    )
    .unwrap();
    let mut config = shipped_config(None);
    let moov = config
        .tenants
        .iter_mut()
        .find(|t| t.id == "moov-ci")
        .unwrap();
    assert_eq!(moov.ussd_text, tamtam::text::TextPolicy::Transliterate);
    moov.menu = file.clone();

    // The session store does not answer: every hop gets the tenant's "unavailable".
    let nobody = RefusingPort::new("");
    let redis = nobody.url.replace("http://", "redis://");
    let store = RedisStore::open(&redis, std::time::Duration::from_millis(300)).unwrap();
    let server = Server::start_with(config, Store::Redis(store)).await;
    for dialect in Dialect::USSD {
        let mut phone = Phone::new(&server, dialect, "*144#", "+2250717000001");
        let s = phone.dial().await;
        assert!(s.end, "{}: {s:?}", dialect.name());
        assert_eq!(s.text, transliterate(UNAVAILABLE), "{}", dialect.name());
        assert!(is_gsm7(&s.text) && s.text.contains("\"bientôt\"".replace('ô', "o").as_str()));
    }
    server.stop().await;
    let _ = std::fs::remove_file(file);
}
