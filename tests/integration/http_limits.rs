//! What a slow, idle or greedy client may cost: the `[http]` limits, over raw TCP.
//!
//! Each test sets the one limit it is about small and the others long, then shows by what
//! the server does (closes the socket, answers, or not yet) that the limit holds. Every
//! wait is bounded by [`BOUND`] only against hanging: a server without the limit fails the
//! test by reaching it, and nothing is measured.

use std::net::SocketAddr;
use std::time::Duration;

use tamtam::adapters::Dialect;
use tamtam::config::HttpLimits;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::support::Server;

/// How long a test waits for what must happen before calling it a hang.
const BOUND: Duration = Duration::from_secs(10);
/// A limit the test is not about: longer than [`BOUND`].
const LONG: Duration = Duration::from_secs(60);
/// A limit the test is about.
const SHORT: Duration = Duration::from_millis(200);

/// Every limit long and the cap wide, for a test to shorten the one it is about.
fn long_limits() -> HttpLimits {
    HttpLimits {
        header_read_timeout: LONG,
        body_read_timeout: LONG,
        keep_alive_idle: LONG,
        max_connections: 1000,
    }
}

async fn connect(server: &Server) -> TcpStream {
    TcpStream::connect(server.base.trim_start_matches("http://"))
        .await
        .unwrap()
}

/// Reads until the server closes the connection (end of stream or reset) and returns what
/// came before; panics if it stays open for [`BOUND`].
async fn until_closed(stream: &mut TcpStream) -> Vec<u8> {
    let read_all = async {
        let mut all = Vec::new();
        let mut chunk = [0u8; 4096];
        loop {
            match stream.read(&mut chunk).await {
                Ok(0) => return all,
                Ok(n) => all.extend_from_slice(&chunk[..n]),
                Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => return all,
                Err(e) => panic!("reading the socket: {e}"),
            }
        }
    };
    tokio::time::timeout(BOUND, read_all)
        .await
        .expect("the server closes the connection")
}

/// An HTTP/1.1 response as read off the wire.
#[derive(Debug)]
struct Answer {
    status: u16,
    /// Names in lower case.
    headers: Vec<(String, String)>,
    body: String,
}

impl Answer {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }
}

/// Splits one whole response (head and `Content-Length` body) off the front of `bytes`.
fn parse_answer(bytes: &[u8]) -> Option<(Answer, usize)> {
    let head_end = bytes.windows(4).position(|w| w == b"\r\n\r\n")? + 4;
    let head = std::str::from_utf8(&bytes[..head_end]).unwrap();
    let mut lines = head.split("\r\n");
    let status = lines.next()?.split(' ').nth(1)?.parse().ok()?;
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(n, v)| (n.trim().to_ascii_lowercase(), v.trim().to_string()))
        .collect();
    let length: usize = headers
        .iter()
        .find(|(n, _)| n == "content-length")
        .map_or(0, |(_, v)| v.parse().unwrap());
    let body = bytes.get(head_end..head_end + length)?;
    let answer = Answer {
        status,
        headers,
        body: String::from_utf8_lossy(body).into_owned(),
    };
    Some((answer, head_end + length))
}

/// Reads one response off a connection that stays open; panics after [`BOUND`].
async fn answer(stream: &mut TcpStream) -> Answer {
    let read = async {
        let mut bytes = Vec::new();
        let mut chunk = [0u8; 4096];
        loop {
            if let Some((answer, used)) = parse_answer(&bytes) {
                assert_eq!(used, bytes.len(), "nothing follows the answer");
                return answer;
            }
            let n = stream.read(&mut chunk).await.unwrap();
            assert!(n > 0, "the connection closed before a whole answer");
            bytes.extend_from_slice(&chunk[..n]);
        }
    };
    tokio::time::timeout(BOUND, read)
        .await
        .expect("an answer comes")
}

/// `GET /healthz` on a kept-alive connection, answered.
async fn round_trip(stream: &mut TcpStream) {
    stream
        .write_all(b"GET /healthz HTTP/1.1\r\nHost: tamtam\r\n\r\n")
        .await
        .unwrap();
    let a = answer(stream).await;
    assert_eq!((a.status, a.body.as_str()), (200, "ok\n"));
}

#[tokio::test]
async fn two_hundred_connections_holding_half_a_request_head_are_closed_by_the_server() {
    let server = Server::start_with_limits(HttpLimits {
        header_read_timeout: SHORT,
        ..long_limits()
    })
    .await;
    let mut held = Vec::new();
    for _ in 0..200 {
        let mut s = connect(&server).await;
        s.write_all(b"POST /ussd/json HTTP/1.1\r\nHost: tamtam\r\nContent-Ty")
            .await
            .unwrap();
        held.push(s);
    }
    for (i, s) in held.iter_mut().enumerate() {
        let got = until_closed(s).await;
        assert!(got.is_empty(), "connection {i} got {got:?}");
    }
    // Their slots are free again, and a whole request is still served.
    let mut s = connect(&server).await;
    round_trip(&mut s).await;
}

#[tokio::test]
async fn connection_n_plus_one_is_served_only_once_one_of_the_n_closes() {
    let server = Server::start_with_limits(HttpLimits {
        max_connections: 2,
        ..long_limits()
    })
    .await;
    let mut first = connect(&server).await;
    round_trip(&mut first).await;
    let mut second = connect(&server).await;
    round_trip(&mut second).await;

    let mut third = connect(&server).await;
    third
        .write_all(b"GET /healthz HTTP/1.1\r\nHost: tamtam\r\n\r\n")
        .await
        .unwrap();
    // The server keeps serving the first connection meanwhile: 20 whole requests after the
    // third one's, and that one still has no answer.
    for _ in 0..20 {
        round_trip(&mut first).await;
    }
    let mut chunk = [0u8; 64];
    match third.try_read(&mut chunk) {
        Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
        other => panic!("the third connection was served over the cap: {other:?}"),
    }
    // One of the two closes: the third is served.
    drop(second);
    let a = answer(&mut third).await;
    assert_eq!(a.status, 200);
}

#[tokio::test]
async fn an_idle_kept_alive_connection_is_closed_after_the_idle_timeout() {
    let server = Server::start_with_limits(HttpLimits {
        keep_alive_idle: SHORT,
        ..long_limits()
    })
    .await;
    let mut used = connect(&server).await;
    round_trip(&mut used).await;
    assert!(until_closed(&mut used).await.is_empty());
    // A connection that never sends a request is idle too.
    let mut silent = connect(&server).await;
    assert!(until_closed(&mut silent).await.is_empty());
}

#[tokio::test]
async fn a_body_slower_than_the_body_read_timeout_gets_a_408_in_the_dialect() {
    let server = Server::start_with_limits(HttpLimits {
        body_read_timeout: SHORT,
        ..long_limits()
    })
    .await;
    for (path, content_type) in [
        ("/ussd/json", "application/json"),
        ("/ussd/at", "application/x-www-form-urlencoded"),
    ] {
        let mut s = connect(&server).await;
        let head = format!(
            "POST {path} HTTP/1.1\r\nHost: tamtam\r\nContent-Type: {content_type}\r\nContent-Length: 100\r\n\r\nsession"
        );
        s.write_all(head.as_bytes()).await.unwrap();
        let bytes = until_closed(&mut s).await;
        let (a, _) = parse_answer(&bytes).expect("a whole answer before the close");
        assert_eq!(a.status, 408, "{path}: {a:?}");
        assert_eq!(a.header("connection"), Some("close"), "{path}");
        if path == "/ussd/json" {
            let v: serde_json::Value = serde_json::from_str(&a.body).unwrap();
            assert_eq!(v["action"], "end", "{v}");
            assert_eq!(v["error"]["code"], "timeout", "{v}");
        } else {
            assert!(a.body.starts_with("END "), "{}", a.body);
        }
    }
}

#[tokio::test]
async fn a_413_says_connection_close_and_the_server_closes_it() {
    let server = Server::start_with_limits(long_limits()).await;
    let mut s = connect(&server).await;
    s.write_all(
        b"POST /ussd/at HTTP/1.1\r\nHost: tamtam\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: 1000000\r\n\r\nsessionId=1",
    )
    .await
    .unwrap();
    let bytes = until_closed(&mut s).await;
    let (a, used) = parse_answer(&bytes).expect("a whole answer before the close");
    assert_eq!(used, bytes.len());
    assert_eq!(a.status, 413, "{a:?}");
    assert_eq!(a.header("connection"), Some("close"));
    assert!(a.body.starts_with("END "), "{}", a.body);
}

#[tokio::test]
async fn a_405_names_the_methods_the_endpoint_takes_in_allow() {
    let server = Server::start_with_limits(long_limits()).await;
    let client = reqwest::Client::new();
    let r = client
        .get(server.url(Dialect::AfricasTalking))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 405);
    assert_eq!(r.headers()["allow"], "POST");
    assert!(r.text().await.unwrap().starts_with("END "));
    let r = client
        .put(server.url(Dialect::Kannel))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 405);
    assert_eq!(r.headers()["allow"], "GET, POST");
}

#[tokio::test]
async fn handlers_see_the_peer_address() {
    use axum::extract::ConnectInfo;
    let router = tamtam::server::Router::new().route(
        "/peer",
        axum::routing::get(
            |ConnectInfo(peer): ConnectInfo<SocketAddr>| async move { peer.to_string() },
        ),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let served = tokio::spawn(tamtam::server::serve(
        listener,
        router,
        HttpLimits::default(),
        async {
            let _ = stopped.await;
        },
    ));
    let mut s = TcpStream::connect(address).await.unwrap();
    s.write_all(b"GET /peer HTTP/1.1\r\nHost: tamtam\r\n\r\n")
        .await
        .unwrap();
    let a = answer(&mut s).await;
    assert_eq!(a.status, 200);
    assert_eq!(a.body, s.local_addr().unwrap().to_string());
    // Shutting down closes the idle connection and returns.
    stop.send(()).unwrap();
    assert!(until_closed(&mut s).await.is_empty());
    tokio::time::timeout(BOUND, served)
        .await
        .expect("the server stops")
        .unwrap()
        .unwrap();
}
