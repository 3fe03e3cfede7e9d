//! The command line: `serve` (the default), `check` and `simulate`.
//!
//! `check` and `simulate` load exactly what `serve` loads and run the same engine, so what
//! a content team sees in the terminal is what a phone shows.

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;

use clap::{Parser, Subcommand};
use tokio::io::{AsyncBufReadExt, BufReader};

use crate::config::{Config, Overrides, DEFAULT_CONFIG};
use crate::diagnostic::{Diagnostic, Severity};
use crate::gateway::{load_tenants, Gateway, Tenant};
use crate::message::{Hop, Inbound};
use crate::outbox::{run_worker, MemoryQueue, Outbox, Queue, RedisQueue, Sender, WorkerSettings};
use crate::server::{router, serve, shutdown_signal, AppState};
use crate::session::{MemoryStore, RedisStore, Store};
use crate::text;
use std::collections::HashMap;

/// tamtam: SMS/USSD self-service gateway.
#[derive(Debug, Parser)]
#[command(name = "tamtam", version, about)]
pub struct Cli {
    /// The configuration file.
    #[arg(long, env = "TAMTAM_CONFIG", default_value = DEFAULT_CONFIG, global = true)]
    pub config: PathBuf,
    #[command(subcommand)]
    pub command: Option<Command>,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the gateway (the default).
    Serve,
    /// Check the configuration and every menu; print each problem as file:screen: message.
    Check,
    /// Inspect the outbound SMS queue: counts, then the newest dead letters.
    Outbox {
        /// How many dead letters to list.
        #[arg(long, default_value_t = 20)]
        dead: usize,
    },
    /// Play a USSD session (or, with --sms, an SMS conversation) in the terminal, through
    /// the same engine as the gateway.
    Simulate {
        /// The code to dial, e.g. '*144#' or a direct dial '*144*3#'.
        #[arg(long, required_unless_present = "sms")]
        service: Option<String>,
        /// Simulate SMS instead of USSD: each line typed is one SMS to --to.
        #[arg(long, requires = "to")]
        sms: bool,
        /// The short code the SMS go to, e.g. 144 or 1088.
        #[arg(long)]
        to: Option<String>,
        /// The caller's number.
        #[arg(long, default_value = "+2250700000001")]
        msisdn: String,
    },
}

/// Runs the command line.
pub async fn run(cli: Cli) -> ExitCode {
    match cli.command.unwrap_or(Command::Serve) {
        Command::Serve => run_serve(&cli.config).await,
        Command::Check => run_check(&cli.config),
        Command::Outbox { dead } => run_outbox(&cli.config, dead).await,
        Command::Simulate {
            service,
            sms,
            to,
            msisdn,
        } => match (sms, to, service) {
            (true, Some(to), _) => run_simulate_sms(&cli.config, &to, &msisdn).await,
            (_, _, Some(service)) => run_simulate(&cli.config, &service, &msisdn).await,
            _ => {
                eprintln!("give --service '*144#' for USSD, or --sms --to 144 for SMS");
                ExitCode::FAILURE
            }
        },
    }
}

/// Loads configuration and tenants, printing every problem; `None` when any is an error.
fn load(
    path: &Path,
    overrides: &Overrides,
    print: impl Fn(&Diagnostic),
) -> Option<(Config, Vec<Tenant>)> {
    let config = match Config::from_file(path, overrides) {
        Ok(c) => c,
        Err(problems) => {
            problems.iter().for_each(&print);
            return None;
        }
    };
    let (tenants, problems) = load_tenants(&config);
    problems.iter().for_each(&print);
    Some((config, tenants?))
}

async fn run_serve(path: &Path) -> ExitCode {
    let print = |d: &Diagnostic| match d.severity {
        Severity::Error => tracing::error!("{d}"),
        Severity::Warning => tracing::warn!("{d}"),
    };
    let Some((config, tenants)) = load(path, &Overrides::from_env(), print) else {
        tracing::error!("not starting: fix the problems above (`tamtam check` lists them)");
        return ExitCode::FAILURE;
    };
    let store = match &config.redis_url {
        Some(url) => match RedisStore::open(url, config.session.redis_timeout) {
            Ok(r) => Store::Redis(r),
            Err(e) => {
                tracing::error!(cause = %e, "not starting");
                return ExitCode::FAILURE;
            }
        },
        None => Store::Memory(MemoryStore::new()),
    };
    if let Err(e) = store.ping().await {
        tracing::warn!(cause = %e, "session store not reachable yet; /readyz says so until it is");
    }
    let listener = match tokio::net::TcpListener::bind(&config.listen).await {
        Ok(l) => l,
        Err(e) => {
            tracing::error!(address = %config.listen, cause = %e, "cannot listen");
            return ExitCode::FAILURE;
        }
    };
    let addr = listener
        .local_addr()
        .map(|a| a.to_string())
        .unwrap_or_default();
    let names: Vec<String> = tenants
        .iter()
        .map(|t| format!("{} {}", t.id, t.ussd_codes.join(",")))
        .collect();
    let mut gateway = Gateway::new(tenants, &config, store);
    // The outbound queue and its worker, when senders are configured.
    let (stop_worker, stopped) = tokio::sync::watch::channel(false);
    let mut worker = None;
    if !config.senders.is_empty() {
        let outbox = match open_outbox(&config) {
            Ok(o) => o,
            Err(e) => {
                tracing::error!(cause = %e, "not starting");
                return ExitCode::FAILURE;
            }
        };
        let senders: HashMap<String, Sender> = config
            .senders
            .iter()
            .map(|s| (s.name.clone(), Sender::new(s.clone())))
            .collect();
        for s in &config.senders {
            let timeout = s.timeout();
            if config.outbox.claim_after < timeout * 2 {
                tracing::warn!(
                    sender = %s.name,
                    "timeout_ms is more than half of [outbox] claim_after_secs: a slow send may be taken over by another replica and sent twice"
                );
            }
        }
        let settings = worker_settings(&config);
        worker = Some(tokio::spawn(run_worker(
            outbox.queue.clone(),
            Arc::new(senders),
            settings,
            stopped,
        )));
        gateway = gateway.with_outbox(outbox);
    }
    tracing::info!(
        address = %addr,
        store = gateway.store().kind(),
        tenants = %names.join("; "),
        senders = config.senders.len(),
        "tamtam listening"
    );
    let state = Arc::new(AppState::new(
        gateway,
        config.max_body_bytes,
        &config.senders,
    ));
    let app = router(state, &config.channels, &|name| std::env::var(name).ok());
    let served = serve(listener, app, shutdown_signal()).await;
    let _ = stop_worker.send(true);
    if let Some(w) = worker {
        let _ = w.await;
    }
    match served {
        Ok(()) => {
            tracing::info!("stopped");
            ExitCode::SUCCESS
        }
        Err(e) => {
            tracing::error!(cause = %e, "server failed");
            ExitCode::FAILURE
        }
    }
}

/// The outbound queue of `config`: Redis when `redis_url` is set, else in memory.
pub fn open_outbox(config: &Config) -> Result<Outbox, crate::outbox::OutboxError> {
    let queue = match &config.redis_url {
        Some(url) => Queue::Redis(RedisQueue::open(
            url,
            &config.session.key_prefix,
            config.session.redis_timeout,
        )?),
        None => Queue::Memory(MemoryQueue::new()),
    };
    Ok(Outbox {
        queue,
        status_ttl: config.outbox.status_ttl,
    })
}

/// The worker settings of `config`, with a consumer name unique to this process.
pub fn worker_settings(config: &Config) -> WorkerSettings {
    let host = std::env::var("HOSTNAME").unwrap_or_else(|_| "tamtam".into());
    // A worker sends its batch one message after another; the whole batch must finish well
    // before `claim_after`, or another replica would take over messages still waiting in
    // it and send them twice. So: at most half of `claim_after` of worst-case sends.
    let slowest = config
        .senders
        .iter()
        .map(|s| s.timeout_ms.unwrap_or(crate::outbox::DEFAULT_TIMEOUT_MS))
        .max()
        .unwrap_or(crate::outbox::DEFAULT_TIMEOUT_MS)
        .max(1);
    let claim_ms = u64::try_from(config.outbox.claim_after.as_millis()).unwrap_or(u64::MAX);
    let batch = usize::try_from(claim_ms / 2 / slowest)
        .unwrap_or(16)
        .clamp(1, 16);
    WorkerSettings {
        consumer: format!("{host}-{}-{}", std::process::id(), crate::outbox::now_ms()),
        batch,
        wait: std::time::Duration::from_secs(2),
        claim_after: config.outbox.claim_after,
        base_backoff: config.outbox.base_backoff,
        max_backoff: config.outbox.max_backoff,
        status_ttl: config.outbox.status_ttl,
    }
}

async fn run_outbox(path: &Path, dead: usize) -> ExitCode {
    let config = match Config::from_file(path, &Overrides::from_env()) {
        Ok(c) => c,
        Err(problems) => {
            problems.iter().for_each(|d| eprintln!("{d}"));
            return ExitCode::FAILURE;
        }
    };
    if config.redis_url.is_none() {
        eprintln!("no Redis configured (TAMTAM_REDIS_URL): the in-memory outbox lives inside each gateway process and cannot be inspected from outside");
        return ExitCode::FAILURE;
    }
    let outbox = match open_outbox(&config) {
        Ok(o) => o,
        Err(e) => {
            eprintln!("{e}");
            return ExitCode::FAILURE;
        }
    };
    let stats = match outbox.queue.stats().await {
        Ok(s) => s,
        Err(e) => {
            eprintln!("{e}");
            return ExitCode::FAILURE;
        }
    };
    println!(
        "ready {}  in flight {}  waiting for a retry {}  dead {}",
        stats.ready, stats.in_flight, stats.delayed, stats.dead
    );
    match outbox.queue.dead_letters(dead).await {
        Ok(letters) => {
            for l in letters {
                println!(
                    "dead {} sender={} tenant={} to={} attempts={} at_ms={}: {}",
                    l.message.id,
                    l.message.sender,
                    l.message.tenant,
                    crate::message::mask_msisdn(&l.message.to),
                    l.message.attempts,
                    l.at_ms,
                    l.reason
                );
            }
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("{e}");
            ExitCode::FAILURE
        }
    }
}

fn run_check(path: &Path) -> ExitCode {
    let mut errors = 0;
    let mut warnings = 0;
    let config = Config::from_file(path, &Overrides::default());
    let (tenants, problems) = match &config {
        Ok(c) => load_tenants(c),
        Err(p) => (None, p.clone()),
    };
    for d in &problems {
        match d.severity {
            Severity::Error => errors += 1,
            Severity::Warning => warnings += 1,
        }
        println!("{d}");
    }
    if let Some(tenants) = &tenants {
        for t in tenants {
            let screens = &t.menu.screens;
            let long: Vec<String> = screens
                .iter()
                .filter_map(|s| {
                    let n = s.static_pages()?.len();
                    (n > 1).then(|| format!("{} ({n})", s.id))
                })
                .collect();
            println!(
                "{}: tenant {} ({}): {} screens; on several pages: {}",
                t.menu.file,
                t.id,
                t.ussd_codes.join(", "),
                screens.len(),
                if long.is_empty() {
                    "none".to_string()
                } else {
                    long.join(", ")
                }
            );
            let parts: Vec<String> = screens
                .iter()
                .filter_map(|s| {
                    // An `sms` screen sends its own text, or its target's without choices.
                    let sent = match &s.kind {
                        crate::menu::Kind::Sms {
                            screen: Some(target),
                        } => t.menu.screen(*target).static_sms_plain(),
                        _ => s.static_sms(),
                    };
                    let seg = text::sms_segments(sent?);
                    let cut = if seg.count > t.sms_max_segments {
                        ", cut: SUITE"
                    } else {
                        ""
                    };
                    Some(format!(
                        "{} {} {}{cut}",
                        s.id,
                        seg.count,
                        seg.encoding.as_str()
                    ))
                })
                .collect();
            println!(
                "{}: tenant {} SMS {} ({} keywords), parts per reply: {}",
                t.menu.file,
                t.id,
                if t.sms_codes.is_empty() {
                    "-".to_string()
                } else {
                    t.sms_codes.join(", ")
                },
                t.menu.sms.keywords.len(),
                parts.join(", ")
            );
        }
    }
    println!("{errors} error(s), {warnings} warning(s)");
    if errors > 0 {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    }
}

async fn run_simulate_sms(path: &Path, to: &str, msisdn: &str) -> ExitCode {
    let print = |d: &Diagnostic| eprintln!("{d}");
    let Some((config, tenants)) = load(path, &Overrides::default(), print) else {
        eprintln!("cannot simulate: fix the problems above");
        return ExitCode::FAILURE;
    };
    let gateway = Gateway::new(tenants, &config, Store::Memory(MemoryStore::new()));
    let Some(tenant) = gateway.resolve_sms(to) else {
        eprintln!("no tenant answers SMS to {to}; configured codes:");
        for t in gateway.tenants() {
            eprintln!("  {} {}", t.id, t.sms_codes.join(", "));
        }
        return ExitCode::FAILURE;
    };
    let msisdn = crate::message::normalize_msisdn(msisdn);
    println!(
        "Simulating SMS to {to} ({}) from {msisdn}. Type each SMS; an empty line or Ctrl-D ends.",
        tenant.id
    );
    let mut lines = BufReader::new(tokio::io::stdin()).lines();
    let mut n = 0;
    loop {
        print!("> ");
        let _ = std::io::stdout().flush();
        let line = match lines.next_line().await {
            Ok(Some(l)) if !l.trim().is_empty() => l,
            _ => return ExitCode::SUCCESS,
        };
        n += 1;
        let inbound = crate::message::SmsInbound {
            id: Some(format!("simulator-{n}")),
            from: msisdn.clone(),
            to: to.to_string(),
            text: line.trim().to_string(),
        };
        let (reply, _) = gateway.sms("simulator", &inbound).await;
        let m = text::measure(&reply.text);
        println!(
            "┌─ SMS · {} part(s) · {} · {} units ─",
            reply.segments,
            reply.encoding.as_str(),
            m.units
        );
        for l in reply.text.lines() {
            println!("│ {l}");
        }
        println!("└{}", "─".repeat(40));
    }
}

async fn run_simulate(path: &Path, service: &str, msisdn: &str) -> ExitCode {
    let print = |d: &Diagnostic| eprintln!("{d}");
    let Some((config, tenants)) = load(path, &Overrides::default(), print) else {
        eprintln!("cannot simulate: fix the problems above");
        return ExitCode::FAILURE;
    };
    // SMS the menu sends are queued in memory and shown, not sent.
    let outbox = Outbox {
        queue: Queue::Memory(MemoryQueue::new()),
        status_ttl: config.outbox.status_ttl,
    };
    let gateway = Gateway::new(tenants, &config, Store::Memory(MemoryStore::new()))
        .with_outbox(outbox.clone());
    let Some((tenant, _)) = gateway.resolve(service) else {
        eprintln!("no tenant answers {service}; configured codes:");
        for t in gateway.tenants() {
            eprintln!("  {} {}", t.id, t.ussd_codes.join(", "));
        }
        return ExitCode::FAILURE;
    };
    let limits = tenant.menu.limits;
    let tenant_id = tenant.id.clone();
    let msisdn = crate::message::normalize_msisdn(msisdn);
    println!("Simulating {service} ({tenant_id}) for {msisdn}. Type your answers; an empty line or Ctrl-D hangs up.");
    let mut inbound = Inbound {
        session_id: "simulator".into(),
        msisdn,
        service_code: service.to_string(),
        hop: Hop::Start,
    };
    let mut lines = BufReader::new(tokio::io::stdin()).lines();
    let mut seq = 1;
    loop {
        let (reply, _) = gateway.ussd("simulator", &inbound).await;
        let m = text::measure(&reply.text);
        let room = limits.for_encoding(m.encoding);
        let rule = "─".repeat(40);
        println!(
            "┌─ {} · {}/{} {} ─",
            if reply.end { "END" } else { "CON" },
            m.units,
            room,
            m.encoding.as_str()
        );
        for line in reply.text.lines() {
            println!("│ {line}");
        }
        println!("└{rule}");
        let queued = outbox
            .queue
            .claim(
                "simulator",
                16,
                std::time::Duration::ZERO,
                std::time::Duration::ZERO,
            )
            .await
            .unwrap_or_default();
        for d in queued {
            let seg = text::sms_segments(&d.message.text);
            println!(
                "(SMS from {} to {}, {} part(s), {}, would be sent by `{}`:)",
                d.message.from,
                d.message.to,
                seg.count,
                seg.encoding.as_str(),
                d.message.sender
            );
            for line in d.message.text.lines() {
                println!("  {line}");
            }
        }
        if reply.end {
            println!("(session ended)");
            return ExitCode::SUCCESS;
        }
        print!("> ");
        let _ = std::io::stdout().flush();
        let line = match lines.next_line().await {
            Ok(Some(l)) if !l.trim().is_empty() => l,
            _ => {
                println!("(hung up)");
                return ExitCode::SUCCESS;
            }
        };
        seq += 1;
        inbound.hop = Hop::Answer {
            text: line.trim().to_string(),
            seq: Some(seq),
        };
    }
}
