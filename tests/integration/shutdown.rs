//! Graceful shutdown: a hop in flight when SIGTERM arrives still gets its answer.
//!
//! To know for sure that a hop is in flight (no sleeps), the session store is a tiny
//! stand-in Redis on loopback, speaking RESP over real TCP, that tells the test when the
//! gateway's `GET` arrives and holds its answer until the test releases it.

use std::time::Duration;

use tamtam::session::{RedisStore, Store};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;
use tokio::sync::{mpsc, oneshot};

use crate::support::{shipped_config, Server};

/// Reads one RESP command (an array of bulk strings) from `buf`, if complete.
fn parse_command(buf: &[u8]) -> Option<(Vec<String>, usize)> {
    fn line(buf: &[u8], at: usize) -> Option<(&[u8], usize)> {
        let end = buf[at..].windows(2).position(|w| w == b"\r\n")? + at;
        Some((&buf[at..end], end + 2))
    }
    let (head, mut at) = line(buf, 0)?;
    let n: usize = std::str::from_utf8(head.strip_prefix(b"*")?)
        .ok()?
        .parse()
        .ok()?;
    let mut args = Vec::with_capacity(n);
    for _ in 0..n {
        let (len, next) = line(buf, at)?;
        let len: usize = std::str::from_utf8(len.strip_prefix(b"$")?)
            .ok()?
            .parse()
            .ok()?;
        if buf.len() < next + len + 2 {
            return None;
        }
        args.push(String::from_utf8_lossy(&buf[next..next + len]).into_owned());
        at = next + len + 2;
    }
    Some((args, at))
}

/// A stand-in Redis: answers every command, but holds the first `GET` until released.
async fn held_redis() -> (String, mpsc::Receiver<()>, oneshot::Sender<()>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("redis://{}", listener.local_addr().unwrap());
    let (got_get, got_get_rx) = mpsc::channel(4);
    let (release, release_rx) = oneshot::channel::<()>();
    tokio::spawn(async move {
        let (mut sock, _) = listener.accept().await.unwrap();
        let mut release = Some(release_rx);
        let mut buf = Vec::new();
        let mut chunk = [0u8; 4096];
        loop {
            while let Some((args, used)) = parse_command(&buf) {
                buf.drain(..used);
                let reply: &[u8] = match args[0].to_ascii_uppercase().as_str() {
                    "GET" => {
                        got_get.send(()).await.unwrap();
                        if let Some(r) = release.take() {
                            r.await.unwrap();
                        }
                        b"$-1\r\n"
                    }
                    // DEL; a guarded write (the session store's script) that applied.
                    "DEL" | "EVALSHA" | "EVAL" => b":1\r\n",
                    "PING" => b"+PONG\r\n",
                    _ => b"+OK\r\n",
                };
                sock.write_all(reply).await.unwrap();
            }
            let n = sock.read(&mut chunk).await.unwrap();
            if n == 0 {
                return;
            }
            buf.extend_from_slice(&chunk[..n]);
        }
    });
    (url, got_get_rx, release)
}

#[tokio::test]
async fn a_hop_in_flight_finishes_after_the_shutdown_signal() {
    let (url, mut got_get, release) = held_redis().await;
    let config = shipped_config(Some(url.clone()));
    let store = Store::Redis(RedisStore::open(&url, Duration::from_secs(5)).unwrap());
    let mut server = Server::start_with(config, store).await;
    let endpoint = format!("{}/ussd/json", server.base);

    let request = tokio::spawn(async move {
        reqwest::Client::new()
            .post(endpoint)
            .body(r#"{"session_id":"in-flight","msisdn":"+2250700000001","service_code":"*144#"}"#)
            .send()
            .await
    });
    // The hop reached the session store: it is in flight.
    got_get.recv().await.expect("the gateway reads the session");
    server.begin_shutdown();
    release.send(()).unwrap();

    let response = request
        .await
        .unwrap()
        .expect("the in-flight hop gets an answer");
    assert_eq!(response.status().as_u16(), 200);
    let v: serde_json::Value = response.json().await.unwrap();
    assert_eq!(v["action"], "continue");
    assert!(v["text"].as_str().unwrap().contains("1. "), "{v}");
    // And the server then stops.
    let base = server.base.clone();
    server.stop().await;
    assert!(
        tokio::net::TcpStream::connect(base.trim_start_matches("http://"))
            .await
            .is_err()
    );
}

#[test]
fn resp_commands_parse() {
    let (args, used) = parse_command(b"*2\r\n$3\r\nGET\r\n$1\r\nk\r\n*1").unwrap();
    assert_eq!(args, ["GET", "k"]);
    assert_eq!(used, 20);
    assert!(parse_command(b"*2\r\n$3\r\nGET\r\n$1\r\n").is_none());
}
