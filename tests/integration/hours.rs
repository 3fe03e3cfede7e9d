//! Opening hours through the gateway, with the clock injected: the same question gets
//! "open" or "closed, call back …" depending on the time in Nouméa, never on the time the
//! test runs.

use tamtam::adapters::Dialect;

use crate::support::{noumea, Phone, Server};

/// Dials *100#, then Nous contacter, Par téléphone, and the line `choice` (1 = 1016, 2 = 1000).
async fn ask(at: i64, choice: &str) -> String {
    let server = Server::start_at_time(at).await;
    let mut phone = Phone::new(&server, Dialect::Json, "*100#", "+687700001");
    phone.dial().await;
    phone.send("2").await;
    phone.send("1").await;
    // Read every page, without the navigation lines.
    let mut s = phone.send(choice).await;
    let mut text = String::new();
    for _ in 0..5 {
        for line in s
            .text
            .lines()
            .filter(|l| !l.starts_with("98.") && !l.starts_with("0. "))
        {
            text.push_str(line);
            text.push('\n');
        }
        if s.end {
            break;
        }
        s = phone.send("98").await;
    }
    server.stop().await;
    assert!(s.end, "{s:?}");
    text
}

#[tokio::test]
async fn the_1000_says_whether_it_is_open_in_noumea_time() {
    // Monday 10:00 in Nouméa: open (lun-ven 7h30-15h45).
    let t = ask(noumea(0, 10, 0), "2").await;
    assert!(t.starts_with("Le 1000 est ouvert."), "{t}");
    // The edges: 7:29 closed, 7:30 open, 15:44 open, 15:45 closed.
    assert!(ask(noumea(1, 7, 29), "2")
        .await
        .contains("Le 1000 est fermé. Rappelez aujourd'hui à 7h30"));
    assert!(ask(noumea(1, 7, 30), "2")
        .await
        .starts_with("Le 1000 est ouvert."));
    assert!(ask(noumea(1, 15, 44), "2")
        .await
        .starts_with("Le 1000 est ouvert."));
    assert!(ask(noumea(1, 15, 45), "2")
        .await
        .contains("Rappelez demain à 7h30"));
    // Saturday: closed until Monday, with the 24h/24 line to call meanwhile.
    let t = ask(noumea(5, 11, 0), "2").await;
    assert!(
        t.contains("Le 1000 est fermé. Rappelez lundi à 7h30, ou appelez le 1012, 24h/24."),
        "{t}"
    );
    // Friday evening, the 1016 (lun-ven 7h45-15h30).
    let t = ask(noumea(4, 18, 0), "1").await;
    assert!(
        t.contains("Le 1016 est fermé. Rappelez lundi à 7h45"),
        "{t}"
    );
}

#[tokio::test]
async fn the_instant_is_read_in_the_tenant_time_zone_not_utc() {
    // Monday 2026-11-23 06:00 UTC (1 795 413 600) is 17:00 in Nouméa: the 1000 closed at
    // 15:45 there, whereas read as UTC, 06:00 would be "opens today at 7h30".
    let t = ask(1_795_413_600, "2").await;
    assert!(t.contains("Rappelez demain à 7h30"), "{t}");
}
