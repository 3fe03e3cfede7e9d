//! The command line: `serve` (the default), `check`, `simulate` and `outbox` (counts and
//! dead letters, times in RFC 3339; `outbox requeue|purge <id>|--all [--sender NAME]`).
//!
//! Every command loads through [`crate::app::load`], with the same environment overrides
//! (`TAMTAM_LISTEN`, `TAMTAM_REDIS_URL`), so `check` and `simulate` judge exactly what
//! `serve` would start, and run the same engine: what a content team sees in the terminal
//! is what a phone shows. `serve` builds its gateway through [`crate::app::App`].

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use tokio::io::{AsyncBufReadExt, BufReader};

use crate::app::{self, App, Loaded, Options};
use crate::config::{Overrides, DEFAULT_CONFIG};
use crate::diagnostic::{Diagnostic, Severity};
use crate::gateway::Gateway;
use crate::message::{Hop, Inbound};
use crate::outbox::{MemoryQueue, Outbox, Queue};
use crate::server::shutdown_signal;
use crate::session::{MemoryStore, Store};
use crate::text;

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
    /// Inspect the outbound SMS queue: counts, then the newest dead letters; or send dead
    /// letters again (`requeue`), or forget them (`purge`).
    Outbox {
        /// How many dead letters to list.
        #[arg(long, default_value_t = 20)]
        dead: usize,
        #[command(subcommand)]
        action: Option<OutboxAction>,
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

/// What `tamtam outbox` does to dead letters.
#[derive(Debug, Subcommand)]
pub enum OutboxAction {
    /// Send dead letters again: each keeps its id and history (a `requeued` event is
    /// added) and starts over with no attempt counted.
    Requeue(DeadSelection),
    /// Forget dead letters (a `purged` event is added to each history).
    Purge(DeadSelection),
}

/// Which dead letters: one id, or --all; optionally only one sender's.
#[derive(Debug, clap::Args)]
pub struct DeadSelection {
    /// The message id (as `tamtam outbox` lists it).
    #[arg(required_unless_present = "all", conflicts_with = "all")]
    pub id: Option<String>,
    /// Every dead letter.
    #[arg(long)]
    pub all: bool,
    /// Only the dead letters of this `[[sender]]`.
    #[arg(long, value_name = "NAME")]
    pub sender: Option<String>,
}

/// Runs the command line.
pub async fn run(cli: Cli) -> ExitCode {
    match cli.command.unwrap_or(Command::Serve) {
        Command::Serve => run_serve(&cli.config).await,
        Command::Check => run_check(&cli.config),
        Command::Outbox { dead, action } => run_outbox(&cli.config, dead, action).await,
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

/// Loads what `serve` loads (the file, the environment's overrides, the tenants and their
/// menus), printing every problem with `print`; `None` when any is an error.
fn load(path: &Path, print: impl Fn(&Diagnostic)) -> Option<Loaded> {
    let (loaded, problems) = app::load(path, &Overrides::from_env());
    problems.iter().for_each(print);
    loaded
}

async fn run_serve(path: &Path) -> ExitCode {
    let Some(Loaded { config, tenants }) = load(path, Diagnostic::log) else {
        tracing::error!("not starting: fix the problems above (`tamtam check` lists them)");
        return ExitCode::FAILURE;
    };
    let app = match App::build(&config, tenants, Options::default()) {
        Ok(app) => app,
        Err(e) => {
            tracing::error!(cause = %e, "not starting");
            return ExitCode::FAILURE;
        }
    };
    // Hot reload: on SIGHUP, and when a loaded file's contents change.
    let reloader = app.reloader(path, Overrides::from_env(), &config);
    tracing::info!(version = %reloader.status().version(), "configuration version");
    app::on_sighup(reloader.clone());
    if let Err(e) = app::watch(reloader, app::WATCH_DEBOUNCE) {
        tracing::warn!(cause = %e, "cannot watch the configuration files: reload with SIGHUP");
    }
    let listener = match tokio::net::TcpListener::bind(&config.listen).await {
        Ok(l) => l,
        Err(e) => {
            tracing::error!(address = %config.listen, cause = %e, "cannot listen");
            return ExitCode::FAILURE;
        }
    };
    let admin = match tokio::net::TcpListener::bind(&config.admin_listen).await {
        Ok(l) => l,
        Err(e) => {
            tracing::error!(address = %config.admin_listen, cause = %e, "cannot listen (admin_listen)");
            return ExitCode::FAILURE;
        }
    };
    match app.serve(listener, admin, shutdown_signal()).await {
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

/// Unix milliseconds as RFC 3339 (UTC), or the number when out of range.
fn rfc3339(ms: u64) -> String {
    i64::try_from(ms)
        .ok()
        .and_then(|ms| jiff::Timestamp::from_millisecond(ms).ok())
        .map_or_else(|| ms.to_string(), |t| t.to_string())
}

async fn run_outbox(path: &Path, dead: usize, action: Option<OutboxAction>) -> ExitCode {
    let (loaded, problems) = app::load(path, &Overrides::from_env());
    let Some(Loaded { config, .. }) = loaded else {
        problems.iter().for_each(|d| eprintln!("{d}"));
        return ExitCode::FAILURE;
    };
    if config.redis_url.is_none() {
        eprintln!("no Redis configured (TAMTAM_REDIS_URL): the in-memory outbox lives inside each gateway process and cannot be inspected from outside");
        return ExitCode::FAILURE;
    }
    let outbox = match app::open_outbox(&config) {
        Ok(o) => o,
        Err(e) => {
            eprintln!("{e}");
            return ExitCode::FAILURE;
        }
    };
    if let Some(action) = action {
        return run_outbox_action(&outbox, action).await;
    }
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
                    "dead {} sender={} tenant={} to={} attempts={} at={}: {}",
                    l.message.id,
                    l.message.sender,
                    l.message.tenant,
                    crate::message::mask_msisdn(&l.message.to),
                    l.message.attempts,
                    rfc3339(l.at_ms),
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

/// `tamtam outbox requeue|purge`: one line per message taken, then a count. Fails when an
/// id was given and no dead letter has it.
async fn run_outbox_action(outbox: &Outbox, action: OutboxAction) -> ExitCode {
    let (verb, selection) = match &action {
        OutboxAction::Requeue(s) => ("requeued", s),
        OutboxAction::Purge(s) => ("purged", s),
    };
    let filter = crate::outbox::DeadFilter {
        id: selection.id.clone(),
        sender: selection.sender.clone(),
    };
    let taken = match &action {
        OutboxAction::Requeue(_) => outbox.requeue(&filter).await,
        OutboxAction::Purge(_) => outbox.purge(&filter).await,
    };
    match taken {
        Ok(ids) => {
            for id in &ids {
                println!("{verb} {id}");
            }
            println!("{} dead letter(s) {verb}", ids.len());
            if ids.is_empty() {
                if let Some(id) = &selection.id {
                    eprintln!("no dead letter {id}");
                    return ExitCode::FAILURE;
                }
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
    let (loaded, problems) = app::load(path, &Overrides::from_env());
    let tenants = loaded.map(|l| l.tenants);
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
                t.config.id,
                t.config.ussd_codes.join(", "),
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
                    let cut = if seg.count > t.config.sms_max_segments {
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
                t.config.id,
                if t.config.sms_codes.is_empty() {
                    "-".to_string()
                } else {
                    t.config.sms_codes.join(", ")
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
    let Some(Loaded { config, tenants }) = load(path, print) else {
        eprintln!("cannot simulate: fix the problems above");
        return ExitCode::FAILURE;
    };
    let gateway = Gateway::new(tenants, &config, Store::Memory(MemoryStore::new()));
    let Some(tenant) = gateway.resolve_sms(to) else {
        eprintln!("no tenant answers SMS to {to}; configured codes:");
        for t in gateway.tenants().iter() {
            eprintln!("  {} {}", t.config.id, t.config.sms_codes.join(", "));
        }
        return ExitCode::FAILURE;
    };
    let msisdn = crate::message::normalize_msisdn(msisdn);
    println!(
        "Simulating SMS to {to} ({}) from {msisdn}. Type each SMS; an empty line or Ctrl-D ends.",
        tenant.config.id
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
    let Some(Loaded { config, tenants }) = load(path, print) else {
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
        for t in gateway.tenants().iter() {
            eprintln!("  {} {}", t.config.id, t.config.ussd_codes.join(", "));
        }
        return ExitCode::FAILURE;
    };
    let limits = tenant.menu.limits;
    let tenant_id = tenant.config.id.clone();
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
