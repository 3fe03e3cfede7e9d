//! A real Kannel on loopback for end-to-end SMS tests: `bearerbox` with a `fake` SMSC,
//! `smsbox` with one catch-all `sms-service` that calls the gateway under test, and Kannel's
//! own `fakesmsc` playing the phones. A test injects mobile-originated (MO) messages with
//! [`Kannel::send_mo`] and reads what Kannel sends back to the phone (the MT) with
//! [`Kannel::next_mt`]. Every wait is bounded ([`TIMEOUT`]) and fails the test with the
//! last lines of every Kannel log.
//!
//! # Findings (Debian 12, Kannel 1.4.5-12), measured with a capturing HTTP service
//!
//! ## Packages and paths
//! - `kannel`: `/usr/sbin/bearerbox`, `/usr/sbin/smsbox` (also wapbox, run_kannel_box),
//!   an init script `/etc/init.d/kannel` and `/etc/kannel/kannel.conf`.
//! - `kannel-extras`: `fakesmsc` at `/usr/lib/kannel/test/fakesmsc` (not on `PATH`).
//!   `scripts/test.sh` exports it as `TAMTAM_TEST_FAKESMSC`; without that variable this
//!   module falls back to `PATH` and then to the Debian path, and panics when none exists.
//! - `kannel-docs`: the user guide, `/usr/share/doc/kannel-docs/userguide/userguide.html`.
//! - On install the init script tries to start the system bearerbox (and wapbox, per
//!   `/etc/default/kannel`) with `/etc/kannel/kannel.conf`: admin port 13000, wapbox port
//!   13002. In containers `policy-rc.d` denies that start. The harness never uses the system
//!   service: its own config, logs and free loopback ports live in a temp dir.
//!
//! ## Config that binds loopback only
//! `admin-interface`, `smsbox-interface` (core), `sendsms-interface` (smsbox) and
//! `our-host` (fake smsc group) must be set to 127.0.0.1: without `our-host` the fake SMSC
//! listens on 0.0.0.0. `connect-allow-ip = 127.0.0.1` only filters who may connect.
//!
//! ## Start-up and readiness
//! - smsbox panics ("Couldn't connect to the bearerbox") if bearerbox is not yet
//!   accepting: wait for bearerbox's log line `MAIN: Start-up done, entering mainloop`
//!   before starting smsbox.
//! - smsbox is connected when its log says `Connected to bearerbox at 127.0.0.1 port N`
//!   (and `Set up send sms service at port N` for sendsms); fakesmsc is connected when
//!   bearerbox's log says `Fakesmsc client connected from 127.0.0.1`.
//! - The fake SMSC serves one fakesmsc connection at a time, so one long-running fakesmsc
//!   plays every phone.
//!
//! ## fakesmsc
//! - `fakesmsc [-H host] [-r port] [-i interval] [-m max] [-z type] [-v level] <msg>...`
//!   connects to bearerbox's fake SMSC (it is the client). With messages on the command
//!   line it sends them (`-m` of them, randomly chosen) and then keeps reading MTs forever.
//!   With no message it enters "interactive mode" and sends each line read from stdin; the
//!   harness uses that (stdin piped, stderr read by a thread).
//! - MO line format: `<from> <to> <type> <payload>`; types `text` (rest of the line, raw
//!   bytes, coding 0), `data` (url-encoded 8-bit, coding 1), `ucs2` (url-encoded UTF-16BE,
//!   coding 2; note: `ucs2` going in, `ucs-2` coming out), `udh-data`, `udh-text`, `route`,
//!   `dlr-mask`. A `text` MO cannot contain a newline (the protocol is line-based).
//! - Interactive-mode limits (from its source and tested): stdin is read with
//!   `fgets(buf, 256)`, so a line longer than 255 bytes (newline included) is cut and the rest
//!   is sent later as a separate message; and stdin is polled with `select()` on the fd while
//!   `fgets` reads through a stdio buffer, so a second line written before the first was
//!   sent sits in that buffer until more input arrives. The harness therefore writes one
//!   line at a time, waits for fakesmsc's `fakesmsc: sent message N` before the next, and
//!   refuses lines over 255 bytes. fakesmsc polls stdin with a 1 s timeout and reads MTs in
//!   between, so an MT is printed up to ~1 s after Kannel sent it.
//! - Output goes to stderr. MTs are printed at debug level only (`-v 0` is required) as
//!   `<date> <time> [pid] [0] DEBUG: Got message N: <LINE>`, where LINE is:
//!   - `<from> <to> text <text>` for a single GSM (coding 0) SMS: the text as Kannel holds it
//!     internally, i.e. raw UTF-8 (`1234 2250700000001 text PONG é à ü Ä ñ`);
//!   - `<from> <to> ucs-2 <url-encoded UTF-16BE>` for a single UCS-2 SMS
//!     (`Reçu ’ç’ ê` → `%00R%00e%00%E7%00u%00++%19%00%E7+%19%00+%00%EA`: unreserved bytes
//!     stay literal and space is `+`, including the 0x20 high byte of U+2019);
//!   - `<from> <to> data <url-encoded bytes>` for an 8-bit SMS;
//!   - `<from> <to> udh <url-encoded UDH> data <url-encoded part>` for each part of a
//!     concatenated SMS, one `Got message` per part, not reassembled, in order, e.g.
//!     `udh %05%00%03%03%03%01 data abc…` (UDH 05 00 03 ref total seq). The part line does
//!     not say the coding: a GSM part carries UTF-8 bytes, a UCS-2 part UTF-16BE bytes. The
//!     harness takes the coding from bearerbox's access log (`Sent SMS … [flags:m:c:…]`,
//!     one line per MT, not per part, written in the order the fake SMSC sent them).
//!   - An MT text containing a newline is written raw, so it arrives as two `Got message`
//!     lines (`text a  b   c` then `d`); the harness joins them using the byte length in
//!     the access log (`[msg:LEN:…]`). Blanks are not squeezed.
//!
//! ## What the sms-service sends to the gateway (`get-url` with the tamtam template)
//! - GSM MO (fakesmsc `text`, here `Numéro reçu ?` as raw UTF-8):
//!   `text=Num%C3%A9ro+re%C3%A7u+%3F&…&coding=0&charset=UTF-8` — `%b` is the UTF-8 text,
//!   percent-encoded, space as `+`; `%C` says `UTF-8` (not `GSM` as the user guide says).
//! - UCS-2 MO (fakesmsc `ucs2`, `Numéro reçu ?`):
//!   `text=%00N%00u%00m%00%E9%00r%00o%00+%00r%00e%00%E7%00u%00+%00%3F&…&coding=2&charset=UTF-16BE`
//!   — `%b` is the raw UTF-16BE bytes percent-encoded (not UTF-8!): decode `+`/`%XX` to
//!   bytes, then UTF-16BE. (`mo-recode = true` would make Kannel recode to UTF-8; it is not set.)
//! - 8-bit MO (`data`): the bytes as sent, `coding=1&charset=8-BIT`.
//! - Escaping in `%p`/`%b`: `+2250700000001` → `from=%2B2250700000001`; `a&b=c+d%e #1 ~`
//!   → `text=a%26b%3Dc%2Bd%25e+%231+~` (space is `+`, a literal `+` is `%2B`).
//! - `from=%p` and `to=%P` are the numbers as the SMSC gave them, `id=%I` a UUID such as
//!   `4ad4413e-495b-48c0-ac8e-3dd77814c094`, `smsc=%i` the smsc-id (`fake` here),
//!   `time=%T` a Unix timestamp. Kannel sends `User-Agent: Kannel/1.4.5`.
//! - `post-url` (with `send-sender = true`, else no `X-Kannel-From`): `POST` with the raw
//!   text in the body, `Content-Type: text/plain; charset="UTF-8"` (GSM) or
//!   `text/plain; charset="UTF-16BE"` (UCS-2; body is UTF-16BE bytes) — the charset is quoted;
//!   headers `X-Kannel-From`, `X-Kannel-To`, `X-Kannel-Time: 2026-11-24 03:26:54` (local
//!   time, not epoch), `X-Kannel-SMSC`, `X-Kannel-Coding` (0/2), `X-Kannel-Service`
//!   (`default`). No message id is sent in POST mode.
//!
//! ## How the gateway's replies reach the phone (`200 text/plain; charset=UTF-8`)
//! - (a) plain ASCII `PONG`: `text PONG`, coding 0, one SMS.
//! - (b) GSM accents `PONG é à ü Ä ñ`: `text PONG é à ü Ä ñ` (UTF-8 on the fake wire),
//!   coding 0: Kannel converts UTF-8 to the GSM alphabet.
//! - (c) `Reçu ’ç’ ê` with `X-Kannel-Coding: 2`: `ucs-2 …` as above, exact, coding 2.
//!   Without that header the same text arrives as `ReÇu ?Ç? ?`: ç becomes Ç, ’ and ê
//!   become `?` — a silent corruption, hence the header.
//! - (d) 400 ASCII characters: 3 parts `udh %05%00%03<ref>%03%01 data …` (153 + 153 + 94
//!   characters); 200 × `é`: 2 parts (153 + 47, é is one GSM septet); 180 UCS-2 characters
//!   (`Reçu ê ’ ` × 20) with `X-Kannel-Coding: 2`: 3 UCS-2 parts of at most 67 characters.
//! - (e) empty body (with `omit-empty = false`): `text <Empty reply from service provider>`.
//! - Euro/brackets `€[x]` arrive as `text €[x]` (GSM extension table, coding 0).
//! - Service unreachable: `text Could not fetch content, sorry.` (coding 0); smsbox logs
//!   `ERROR: Couldn't fetch <URL>`.

use std::collections::{BTreeMap, VecDeque};
use std::fs;
use std::io::{BufRead, BufReader, Write};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, LazyLock, Mutex};
use std::time::Duration;

use regex::Regex;
use tokio::sync::{mpsc, watch};
use tokio::time::Instant;

/// How long any single wait of the harness may take.
pub const TIMEOUT: Duration = Duration::from_secs(15);

/// How often a log file is polled while waiting for a line in it. Kannel and fakesmsc are
/// processes of their own that only write files and logs: there is nothing to be notified
/// by, so a bounded poll (failing after [`TIMEOUT`]) is the honest wait.
const POLL: Duration = Duration::from_millis(20);

/// fakesmsc reads stdin with `fgets(buf, 256)`: at most 255 bytes, newline included.
const MAX_MO_LINE: usize = 255;

/// The Debian path of fakesmsc (package `kannel-extras`).
const DEBIAN_FAKESMSC: &str = "/usr/lib/kannel/test/fakesmsc";

/// How the sms-service calls the gateway.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KannelMode {
    /// `get-url` with the tamtam query template (`from=%p&to=%P&text=%b&…`).
    Get,
    /// `post-url`: the text in the body, metadata in `X-Kannel-*` headers.
    Post,
}

/// How an MO is encoded by the phone.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MoCoding {
    /// GSM 7-bit when every character is in the GSM alphabet, else UCS-2 (what phones do).
    Auto,
    /// GSM 7-bit (fakesmsc `text`: the UTF-8 bytes as they are; Kannel says coding 0).
    Gsm,
    /// UCS-2 (fakesmsc `ucs2`: UTF-16BE; Kannel says coding 2, charset UTF-16BE).
    Ucs2,
}

/// A message Kannel delivered to a phone.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mt {
    /// The sender (the short code the MO was sent to, for a reply).
    pub from: String,
    /// The phone.
    pub to: String,
    /// The text, decoded (concatenated parts joined).
    pub text: String,
    /// Data coding: 0 GSM 7-bit, 1 8-bit, 2 UCS-2.
    pub coding: u8,
    /// How many SMS the phone received for it (the UDH concatenation total, else 1).
    pub parts: usize,
}

/// What the fakesmsc reader thread reports.
enum Event {
    /// The bytes between `<` and `>` of a `Got message N: <…>` line.
    Got(Vec<u8>),
}

/// The MO side: fakesmsc's stdin and how many lines were written to it.
struct MoSide {
    stdin: ChildStdin,
    written: u64,
}

/// The MT side: fakesmsc's received lines and how far bearerbox's access log was read.
struct MtSide {
    lines: mpsc::UnboundedReceiver<Event>,
    access_sent_seen: usize,
}

/// Ports, all on 127.0.0.1.
#[derive(Debug, Clone, Copy)]
struct Ports {
    admin: u16,
    smsbox: u16,
    fake_smsc: u16,
    sendsms: u16,
}

/// A running Kannel (bearerbox + smsbox + fakesmsc) in its own temp dir.
pub struct Kannel {
    dir: PathBuf,
    ports: Ports,
    /// The sendsms-user's name (for the sendsms interface, [`Kannel::sendsms_url`]).
    pub sendsms_username: String,
    /// The sendsms-user's password.
    pub sendsms_password: String,
    /// bearerbox, smsbox, fakesmsc.
    boxes: Boxes,
    mo: tokio::sync::Mutex<MoSide>,
    mt: tokio::sync::Mutex<MtSide>,
    /// (lines fakesmsc says it sent, whether its stderr ended).
    sent: watch::Receiver<(u64, bool)>,
    /// The last lines fakesmsc printed, for failure reports.
    fakesmsc_tail: Arc<Mutex<VecDeque<String>>>,
}

impl Kannel {
    /// Starts Kannel with its sms-service calling `service_url` (for example
    /// `http://127.0.0.1:PORT/sms/kannel`), and waits until smsbox and fakesmsc are connected.
    pub async fn start(service_url: &str, mode: KannelMode) -> Kannel {
        let bearerbox_bin = kannel_binary("bearerbox");
        let smsbox_bin = kannel_binary("smsbox");
        let fakesmsc_bin = fakesmsc_path();

        static N: AtomicU64 = AtomicU64::new(0);
        let dir = std::env::temp_dir().join(format!(
            "tamtam-kannel-{}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        ));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(&dir).unwrap_or_else(|e| panic!("creating {}: {e}", dir.display()));

        let ports = free_ports();
        let username = "tamtam-test".to_string();
        let password = format!("secret-{}", ports.sendsms);
        let conf = dir.join("kannel.conf");
        fs::write(
            &conf,
            config(&dir, ports, service_url, mode, &username, &password),
        )
        .unwrap();

        // Killed (by pid) when dropped, also if a wait below panics.
        let mut boxes = Boxes(Vec::new());
        boxes
            .0
            .push(spawn_box(&bearerbox_bin, &conf, &dir, "bearerbox"));
        let bearerbox_log = dir.join("bearerbox.log");
        if let Err(why) = wait_for_line(&bearerbox_log, "MAIN: Start-up done", &mut boxes).await {
            let report = report(&dir, &[]);
            drop(boxes);
            let _ = fs::remove_dir_all(&dir);
            panic!("Kannel harness: bearerbox did not start ({why}){report}");
        }
        boxes.0.push(spawn_box(&smsbox_bin, &conf, &dir, "smsbox"));

        let mut fakesmsc = Command::new(&fakesmsc_bin)
            .args(["-H", "127.0.0.1", "-r"])
            .arg(ports.fake_smsc.to_string())
            .args(["-i", "0", "-v", "0"])
            .current_dir(&dir)
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("starting {}: {e}", fakesmsc_bin.display()));
        let stdin = fakesmsc.stdin.take().unwrap();
        let stderr = fakesmsc.stderr.take().unwrap();
        boxes.0.push(fakesmsc);
        let (line_tx, line_rx) = mpsc::unbounded_channel();
        let (sent_tx, sent_rx) = watch::channel((0u64, false));
        let tail = Arc::new(Mutex::new(VecDeque::new()));
        let thread_tail = Arc::clone(&tail);
        std::thread::spawn(move || read_fakesmsc(stderr, line_tx, sent_tx, thread_tail));

        let mut kannel = Kannel {
            dir,
            ports,
            sendsms_username: username,
            sendsms_password: password,
            boxes,
            mo: tokio::sync::Mutex::new(MoSide { stdin, written: 0 }),
            mt: tokio::sync::Mutex::new(MtSide {
                lines: line_rx,
                access_sent_seen: 0,
            }),
            sent: sent_rx,
            fakesmsc_tail: tail,
        };
        let smsbox_log = kannel.dir.join("smsbox.log");
        for (file, line) in [
            (&smsbox_log, "Connected to bearerbox at"),
            (&smsbox_log, "Set up send sms service at port"),
            (&bearerbox_log, "Fakesmsc client connected from"),
        ] {
            if let Err(why) = wait_for_line(file, line, &mut kannel.boxes).await {
                kannel.fail(&format!("Kannel did not get ready ({why})"));
            }
        }
        kannel
    }

    /// The sendsms interface of smsbox (`/cgi-bin/sendsms`), for outbound tests; it needs
    /// [`Kannel::sendsms_username`] and [`Kannel::sendsms_password`].
    pub fn sendsms_url(&self) -> String {
        format!("http://127.0.0.1:{}/cgi-bin/sendsms", self.ports.sendsms)
    }

    /// A phone `from` sends `text` to `to` (a short code); UCS-2 when the text is not GSM.
    pub async fn send_mo(&self, from: &str, to: &str, text: &str) {
        self.send_mo_as(from, to, text, MoCoding::Auto).await
    }

    /// As [`Kannel::send_mo`], with the coding chosen by the test.
    pub async fn send_mo_as(&self, from: &str, to: &str, text: &str, coding: MoCoding) {
        for (what, n) in [("sender", from), ("receiver", to)] {
            assert!(
                !n.is_empty() && !n.contains(char::is_whitespace),
                "MO {what} {n:?}: fakesmsc's line format needs a non-empty number without blanks"
            );
        }
        let ucs2 = match coding {
            MoCoding::Auto => !is_gsm7(text),
            MoCoding::Gsm => false,
            MoCoding::Ucs2 => true,
        };
        let line = if ucs2 {
            let bytes: Vec<u8> = text.encode_utf16().flat_map(u16::to_be_bytes).collect();
            format!("{from} {to} ucs2 {}\n", url_encode(&bytes))
        } else {
            assert!(
                !text.contains(['\n', '\r']),
                "MO {text:?}: fakesmsc's line protocol cannot carry a newline in a GSM text; \
                 send it as MoCoding::Ucs2"
            );
            format!("{from} {to} text {text}\n")
        };
        assert!(
            line.len() <= MAX_MO_LINE,
            "MO {text:?} makes a fakesmsc line of {} bytes; fakesmsc reads at most {MAX_MO_LINE} \
             (fgets into 256 bytes) and would split it into two messages",
            line.len()
        );

        let mut mo = self.mo.lock().await;
        if let Err(e) = mo
            .stdin
            .write_all(line.as_bytes())
            .and_then(|_| mo.stdin.flush())
        {
            self.fail(&format!("writing MO {text:?} to fakesmsc: {e}"));
        }
        mo.written += 1;
        let n = mo.written;
        // fakesmsc must send this line before the next is written (see the module doc).
        let mut sent = self.sent.clone();
        let outcome = tokio::time::timeout(TIMEOUT, sent.wait_for(|&(s, ended)| s >= n || ended))
            .await
            .map(|r| r.map(|v| v.0));
        match outcome {
            Ok(Ok(s)) if s >= n => {}
            Ok(_) => self.fail(&format!("fakesmsc exited before sending MO {text:?}")),
            Err(_) => self.fail(&format!(
                "fakesmsc did not send MO {text:?} within {TIMEOUT:?}"
            )),
        }
    }

    /// The next message Kannel delivers to a phone, waiting at most [`TIMEOUT`].
    pub async fn next_mt(&self) -> Mt {
        self.next_mt_within(TIMEOUT).await
    }

    /// The next message Kannel delivers to a phone, waiting at most `wait`.
    pub async fn next_mt_within(&self, wait: Duration) -> Mt {
        let deadline = Instant::now() + wait;
        let mut mt = self.mt.lock().await;
        let what = format!("an MT (waited up to {wait:?})");
        let first = self.next_line(&mut mt, deadline, &what).await;
        let first_line = self.parse(&first);
        let (from, to) = (first_line.from.clone(), first_line.to.clone());
        let single_text = matches!(first_line.payload, Payload::Text(_));
        let (mut payload, parts) = match first_line.payload {
            Payload::Text(b) | Payload::Ucs2(b) | Payload::Data(b) => (b, 1),
            Payload::Udh { udh, data } => match concat_header(&udh) {
                None => (data, 1),
                Some(c) => {
                    let mut got = BTreeMap::new();
                    got.insert(c.seq, data);
                    while got.len() < usize::from(c.total) {
                        let what = format!("part {} of {} of an MT", got.len() + 1, c.total);
                        let raw = self.next_line(&mut mt, deadline, &what).await;
                        let line = self.parse(&raw);
                        let Payload::Udh { udh, data } = line.payload else {
                            self.fail(&format!("expected {what}, got {}", lossy(&raw)))
                        };
                        match concat_header(&udh) {
                            Some(p) if p.reference == c.reference && p.total == c.total => {
                                got.insert(p.seq, data);
                            }
                            _ => self.fail(&format!("expected {what}, got {}", lossy(&raw))),
                        }
                    }
                    (got.into_values().flatten().collect(), usize::from(c.total))
                }
            },
        };

        let record = self.next_sent_record(&mut mt, deadline).await;
        if record.from != from || record.to != to {
            self.fail(&format!(
                "fakesmsc got an MT {from} -> {to} but bearerbox's access log says {} -> {}",
                record.from, record.to
            ));
        }
        // A newline in a single GSM text splits it into several fakesmsc lines.
        while single_text && payload.len() < record.len {
            let more = self
                .next_line(&mut mt, deadline, "the rest of a multi-line MT")
                .await;
            payload.push(b'\n');
            payload.extend_from_slice(&more);
        }
        if payload.len() != record.len {
            self.fail(&format!(
                "fakesmsc got {} bytes for the MT {from} -> {to} but bearerbox's access log \
                 says {}",
                payload.len(),
                record.len
            ));
        }
        let text = match record.coding {
            0 => String::from_utf8(payload).unwrap_or_else(|e| {
                self.fail(&format!("a coding-0 MT is not UTF-8 on the fake wire: {e}"))
            }),
            2 => decode_utf16be(&payload)
                .unwrap_or_else(|| self.fail("a UCS-2 MT is not valid UTF-16BE")),
            _ => String::from_utf8_lossy(&payload).into_owned(),
        };
        Mt {
            from,
            to,
            text,
            coding: record.coding,
            parts,
        }
    }

    async fn next_line(&self, mt: &mut MtSide, deadline: Instant, what: &str) -> Vec<u8> {
        match tokio::time::timeout_at(deadline, mt.lines.recv()).await {
            Ok(Some(Event::Got(line))) => line,
            Ok(None) => self.fail(&format!("fakesmsc exited while waiting for {what}")),
            Err(_) => self.fail(&format!("timed out waiting for {what} to reach the phone")),
        }
    }

    fn parse(&self, raw: &[u8]) -> MtLine {
        parse_mt_line(raw).unwrap_or_else(|| {
            self.fail(&format!(
                "fakesmsc printed an MT the harness cannot read: {}",
                lossy(raw)
            ))
        })
    }

    /// The next `Sent SMS` line of bearerbox's access log (one per MT, in sending order).
    async fn next_sent_record(&self, mt: &mut MtSide, deadline: Instant) -> SentRecord {
        let path = self.dir.join("access.log");
        loop {
            let log = fs::read(&path).unwrap_or_default();
            let log = String::from_utf8_lossy(&log);
            if let Some(line) = log
                .lines()
                .filter(|l| l.contains(" Sent SMS ["))
                .nth(mt.access_sent_seen)
            {
                mt.access_sent_seen += 1;
                return parse_sent_record(line)
                    .unwrap_or_else(|| self.fail(&format!("unreadable access-log line: {line}")));
            }
            if Instant::now() >= deadline {
                self.fail("bearerbox did not log the MT fakesmsc received (access.log)");
            }
            tokio::time::sleep(POLL).await;
        }
    }

    /// Fails the test with `why` and the last lines of every log.
    fn fail(&self, why: &str) -> ! {
        let fakesmsc: Vec<String> = self
            .fakesmsc_tail
            .lock()
            .map(|t| t.iter().cloned().collect())
            .unwrap_or_default();
        panic!("Kannel harness: {why}{}", report(&self.dir, &fakesmsc))
    }
}

impl Drop for Kannel {
    fn drop(&mut self) {
        self.boxes.kill();
        let _ = fs::remove_dir_all(&self.dir);
    }
}

/// Processes the harness started, killed by pid (last started first) when dropped.
struct Boxes(Vec<Child>);

impl Boxes {
    fn kill(&mut self) {
        while let Some(mut child) = self.0.pop() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl Drop for Boxes {
    fn drop(&mut self) {
        self.kill();
    }
}

/// The Kannel configuration: everything on 127.0.0.1, logs and access logs in `dir`.
fn config(
    dir: &Path,
    ports: Ports,
    service_url: &str,
    mode: KannelMode,
    username: &str,
    password: &str,
) -> String {
    assert!(
        !service_url.contains('"'),
        "service URL {service_url:?} cannot go in a Kannel config string"
    );
    let service = match mode {
        KannelMode::Get => {
            let sep = if service_url.contains('?') { '&' } else { '?' };
            format!(
                "get-url = \"{service_url}{sep}from=%p&to=%P&text=%b&id=%I&smsc=%i&coding=%c&charset=%C&time=%T\""
            )
        }
        // As config/kannel/kannel.conf: the message id on the URL, for deduplication.
        KannelMode::Post => format!("post-url = \"{service_url}?id=%I\"\nsend-sender = true"),
    };
    let d = dir.display();
    let Ports {
        admin,
        smsbox,
        fake_smsc,
        sendsms,
    } = ports;
    format!(
        r#"group = core
admin-port = {admin}
admin-interface = 127.0.0.1
admin-password = "admin-{admin}"
admin-allow-ip = "127.0.0.1"
admin-deny-ip = "*.*.*.*"
smsbox-port = {smsbox}
smsbox-interface = 127.0.0.1
box-allow-ip = "127.0.0.1"
box-deny-ip = "*.*.*.*"
log-file = "{d}/bearerbox.log"
log-level = 1
access-log = "{d}/access.log"

group = smsc
smsc = fake
smsc-id = fake
port = {fake_smsc}
our-host = 127.0.0.1
connect-allow-ip = "127.0.0.1"

group = smsbox
bearerbox-host = 127.0.0.1
bearerbox-port = {smsbox}
sendsms-port = {sendsms}
sendsms-interface = 127.0.0.1
log-file = "{d}/smsbox.log"
log-level = 1
access-log = "{d}/smsbox-access.log"

group = sendsms-user
username = "{username}"
password = "{password}"
max-messages = 10
concatenation = true

group = sms-service
keyword = default
catch-all = true
{service}
max-messages = 10
concatenation = true
accept-x-kannel-headers = true
omit-empty = false
assume-plain-text = true
"#
    )
}

/// Four distinct free ports on 127.0.0.1 (held together while picked, then released).
fn free_ports() -> Ports {
    let held: Vec<TcpListener> = (0..4)
        .map(|_| TcpListener::bind("127.0.0.1:0").expect("a free loopback port"))
        .collect();
    let p: Vec<u16> = held
        .iter()
        .map(|l| l.local_addr().unwrap().port())
        .collect();
    Ports {
        admin: p[0],
        smsbox: p[1],
        fake_smsc: p[2],
        sendsms: p[3],
    }
}

/// `bearerbox`/`smsbox` from `PATH` or Debian's `/usr/sbin`.
fn kannel_binary(name: &str) -> PathBuf {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain([PathBuf::from("/usr/sbin")])
        .map(|d| d.join(name))
        .find(|p| p.is_file())
        .unwrap_or_else(|| {
            panic!(
                "{name} not found on PATH nor in /usr/sbin: install Debian's `kannel` package \
                 (scripts/test.sh does)"
            )
        })
}

/// fakesmsc: `TAMTAM_TEST_FAKESMSC`, else `PATH`, else Debian's path.
fn fakesmsc_path() -> PathBuf {
    if let Some(p) = std::env::var_os("TAMTAM_TEST_FAKESMSC") {
        let p = PathBuf::from(p);
        assert!(
            p.is_file(),
            "TAMTAM_TEST_FAKESMSC={} does not exist: install Debian's `kannel-extras` package",
            p.display()
        );
        return p;
    }
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .map(|d| d.join("fakesmsc"))
        .chain([PathBuf::from(DEBIAN_FAKESMSC)])
        .find(|p| p.is_file())
        .unwrap_or_else(|| {
            panic!(
                "fakesmsc not found (TAMTAM_TEST_FAKESMSC unset, not on PATH, not at \
                 {DEBIAN_FAKESMSC}): install Debian's `kannel-extras` package (scripts/test.sh does)"
            )
        })
}

fn spawn_box(bin: &Path, conf: &Path, dir: &Path, name: &str) -> Child {
    let out = fs::File::create(dir.join(format!("{name}.stderr"))).unwrap();
    Command::new(bin)
        // Console (stderr) gets warnings and worse; the log file gets info and worse.
        .args(["-v", "2"])
        .arg(conf)
        .current_dir(dir)
        .stdin(Stdio::null())
        .stdout(out.try_clone().unwrap())
        .stderr(out)
        .spawn()
        .unwrap_or_else(|e| panic!("starting {}: {e}", bin.display()))
}

/// Waits (bounded by [`TIMEOUT`]) until `file` has a line containing `needle`, failing early
/// when one of the started processes exits.
async fn wait_for_line(file: &Path, needle: &str, boxes: &mut Boxes) -> Result<(), String> {
    let deadline = Instant::now() + TIMEOUT;
    loop {
        if fs::read(file)
            .map(|b| String::from_utf8_lossy(&b).contains(needle))
            .unwrap_or(false)
        {
            return Ok(());
        }
        for child in boxes.0.iter_mut() {
            if let Ok(Some(status)) = child.try_wait() {
                return Err(format!(
                    "process {} exited ({status}) before {} said {needle:?}",
                    child.id(),
                    file.display()
                ));
            }
        }
        if Instant::now() >= deadline {
            return Err(format!(
                "{} did not say {needle:?} within {TIMEOUT:?}",
                file.display()
            ));
        }
        tokio::time::sleep(POLL).await;
    }
}

/// Reads fakesmsc's stderr: counts `sent message N`, forwards `Got message N: <…>` bodies.
fn read_fakesmsc(
    stderr: std::process::ChildStderr,
    lines: mpsc::UnboundedSender<Event>,
    sent: watch::Sender<(u64, bool)>,
    tail: Arc<Mutex<VecDeque<String>>>,
) {
    static SENT: LazyLock<Regex> =
        LazyLock::new(|| Regex::new(r"fakesmsc: sent message (\d+)").unwrap());
    let mut reader = BufReader::new(stderr);
    let mut buf = Vec::new();
    loop {
        buf.clear();
        match reader.read_until(b'\n', &mut buf) {
            Ok(0) | Err(_) => break,
            Ok(_) => {}
        }
        while buf.last().is_some_and(|&b| b == b'\n' || b == b'\r') {
            buf.pop();
        }
        let text = String::from_utf8_lossy(&buf).into_owned();
        if let Ok(mut t) = tail.lock() {
            if t.len() == 40 {
                t.pop_front();
            }
            t.push_back(text.clone());
        }
        if let Some(c) = SENT.captures(&text) {
            let n: u64 = c[1].parse().unwrap_or(0);
            sent.send_modify(|v| v.0 = v.0.max(n));
        } else if let Some(body) = got_message_body(&buf) {
            let _ = lines.send(Event::Got(body.to_vec()));
        }
    }
    sent.send_modify(|v| v.1 = true);
}

/// The bytes between `<` and the final `>` of `… Got message N: <…>`.
fn got_message_body(line: &[u8]) -> Option<&[u8]> {
    const MARK: &[u8] = b"Got message ";
    let start = line.windows(MARK.len()).position(|w| w == MARK)? + MARK.len();
    let rest = &line[start..];
    let open = rest.windows(3).position(|w| w == b": <")? + 3;
    let body = &rest[open..];
    body.strip_suffix(b">")
}

enum Payload {
    Text(Vec<u8>),
    Ucs2(Vec<u8>),
    Data(Vec<u8>),
    Udh { udh: Vec<u8>, data: Vec<u8> },
}

struct MtLine {
    from: String,
    to: String,
    payload: Payload,
}

/// Reads `<from> <to> <text|ucs-2|data|udh> …` as fakesmsc prints an MT.
fn parse_mt_line(raw: &[u8]) -> Option<MtLine> {
    let mut it = raw.splitn(4, |&b| b == b' ');
    let from = String::from_utf8(it.next()?.to_vec()).ok()?;
    let to = String::from_utf8(it.next()?.to_vec()).ok()?;
    let kind = it.next()?;
    let rest = it.next().unwrap_or_default();
    let payload = match kind {
        b"text" => Payload::Text(rest.to_vec()),
        b"ucs-2" => Payload::Ucs2(url_decode(rest)),
        b"data" => Payload::Data(url_decode(rest)),
        b"udh" => {
            let mut p = rest.splitn(3, |&b| b == b' ');
            let udh = url_decode(p.next()?);
            if p.next()? != b"data" {
                return None;
            }
            Payload::Udh {
                udh,
                data: url_decode(p.next().unwrap_or_default()),
            }
        }
        _ => return None,
    };
    Some(MtLine { from, to, payload })
}

struct Concat {
    reference: u16,
    total: u8,
    seq: u8,
}

/// The concatenation element of a UDH (IEI 0x00, 8-bit reference, or 0x08, 16-bit).
fn concat_header(udh: &[u8]) -> Option<Concat> {
    let len = usize::from(*udh.first()?);
    let mut ies = udh.get(1..1 + len)?;
    while ies.len() >= 2 {
        let (iei, l) = (ies[0], usize::from(ies[1]));
        let data = ies.get(2..2 + l)?;
        match (iei, data) {
            (0x00, &[r, total, seq]) => {
                return Some(Concat {
                    reference: u16::from(r),
                    total,
                    seq,
                })
            }
            (0x08, &[r1, r2, total, seq]) => {
                return Some(Concat {
                    reference: u16::from_be_bytes([r1, r2]),
                    total,
                    seq,
                })
            }
            _ => ies = &ies[2 + l..],
        }
    }
    None
}

struct SentRecord {
    from: String,
    to: String,
    coding: u8,
    len: usize,
}

/// `… Sent SMS [SMSC:fake] … [from:X] [to:Y] [flags:m:c:…] [msg:LEN:…] [udh:…]`.
fn parse_sent_record(line: &str) -> Option<SentRecord> {
    static RE: LazyLock<Regex> = LazyLock::new(|| {
        Regex::new(r"\[from:([^\]]*)\] \[to:([^\]]*)\] \[flags:-?\d+:(-?\d+):[^\]]*\] \[msg:(\d+):")
            .unwrap()
    });
    let c = RE.captures(line)?;
    let coding: i64 = c[3].parse().ok()?;
    Some(SentRecord {
        from: c[1].to_string(),
        to: c[2].to_string(),
        // Kannel logs -1 (undefined) for a message it did not mark: that is GSM.
        coding: u8::try_from(coding).unwrap_or(0),
        len: c[4].parse().ok()?,
    })
}

/// Kannel's url-decoding: `+` is a space, `%XX` a byte.
fn url_decode(s: &[u8]) -> Vec<u8> {
    let plus: Vec<u8> = s
        .iter()
        .map(|&b| if b == b'+' { b' ' } else { b })
        .collect();
    percent_encoding::percent_decode(&plus).collect()
}

/// Every byte but ASCII letters and digits as `%XX` (what fakesmsc's `ucs2` type decodes).
fn url_encode(bytes: &[u8]) -> String {
    percent_encoding::percent_encode(bytes, percent_encoding::NON_ALPHANUMERIC).to_string()
}

fn decode_utf16be(bytes: &[u8]) -> Option<String> {
    if !bytes.len().is_multiple_of(2) {
        return None;
    }
    let units: Vec<u16> = bytes
        .chunks_exact(2)
        .map(|c| u16::from_be_bytes([c[0], c[1]]))
        .collect();
    String::from_utf16(&units).ok()
}

fn lossy(b: &[u8]) -> String {
    format!("{:?}", String::from_utf8_lossy(b))
}

/// Whether every character of `text` is in the GSM 03.38 default alphabet or its extension
/// table (what a phone can send as 7-bit).
pub fn is_gsm7(text: &str) -> bool {
    const BASIC: &str = "@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞÆæßÉ !\"#¤%&'()*+,-./0123456789:;<=>?\
                         ¡ABCDEFGHIJKLMNOPQRSTUVWXYZÄÖÑÜ§¿abcdefghijklmnopqrstuvwxyzäöñüà";
    const EXTENSION: &str = "\x0c^{}\\[~]|€";
    text.chars()
        .all(|c| BASIC.contains(c) || EXTENSION.contains(c))
}

/// The last lines of each log in `dir`, and fakesmsc's last lines.
fn report(dir: &Path, fakesmsc: &[String]) -> String {
    let mut out = String::new();
    for (name, n) in [
        ("bearerbox.stderr", 20),
        ("bearerbox.log", 30),
        ("access.log", 10),
        ("smsbox.stderr", 20),
        ("smsbox.log", 30),
        ("smsbox-access.log", 10),
    ] {
        let text = fs::read(dir.join(name))
            .map(|b| String::from_utf8_lossy(&b).into_owned())
            .unwrap_or_else(|e| format!("({e})"));
        let lines: Vec<&str> = text.lines().collect();
        let from = lines.len().saturating_sub(n);
        out.push_str(&format!("\n--- {name} (last {n} lines)\n"));
        out.push_str(&lines[from..].join("\n"));
    }
    out.push_str("\n--- fakesmsc (last lines)\n");
    out.push_str(&fakesmsc.join("\n"));
    out
}
