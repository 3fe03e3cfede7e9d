//! What every command loads: the configuration file, the environment's overrides
//! (`TAMTAM_LISTEN`, `TAMTAM_REDIS_URL`), the tenants and their menus, through the one
//! loading function `serve` uses (`tamtam::app::load`). A `redis` data source without its
//! own `url` takes the gateway's Redis, so `check` and `simulate` must accept it when
//! `TAMTAM_REDIS_URL` is set, exactly as `serve` does, and must refuse it when nothing
//! gives a Redis. Also: the binary's logs carry no colour codes when they go to a pipe.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use tamtam::app::{has_errors, load};
use tamtam::config::Overrides;

use crate::support::outbox_fake::{tamtam_bin, TempDir};
use crate::support::root;

/// The redis address of the report; nothing is connected at load time.
const REDIS: &str = "redis://127.0.0.1:6379";

/// What `check` says when a `redis` source has no Redis at all.
const NO_REDIS: &str = "a redis source needs `url`";

/// The shipped configuration, written into `dir`, with opt-nc's consumption from a `redis`
/// source that has no `url` of its own.
fn redis_source_config(dir: &Path) -> PathBuf {
    let shipped = std::fs::read_to_string(root().join("config/tamtam.toml")).unwrap();
    let file_source = "name = \"conso\"\nkind = \"file\"\npath = \"../data/opt-nc-conso.csv\"";
    assert!(
        shipped.contains(file_source),
        "the shipped opt-nc source moved"
    );
    let text = shipped
        .replace(
            file_source,
            "name = \"conso\"\nkind = \"redis\"\nkey = \"conso:{key}\"",
        )
        .replace("\"../", &format!("\"{}/", root().display()));
    let path = dir.join("tamtam.toml");
    std::fs::write(&path, text).unwrap();
    path
}

/// Runs the built binary with `args` on `config`, `TAMTAM_REDIS_URL` set to `redis` (or
/// unset), stdin closed, stdout and stderr pipes; returns whether it succeeded, and its stdout and stderr.
fn run(config: &Path, redis: Option<&str>, args: &[&str]) -> (bool, String, String) {
    let mut cmd = Command::new(tamtam_bin());
    cmd.args(args)
        .env("TAMTAM_CONFIG", config)
        .env_remove("TAMTAM_LISTEN")
        .env_remove("TAMTAM_REDIS_URL")
        .env_remove("NO_COLOR")
        .stdin(Stdio::null());
    if let Some(url) = redis {
        cmd.env("TAMTAM_REDIS_URL", url);
    }
    let out = cmd.output().expect("running the tamtam binary");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn a_redis_source_without_url_takes_the_overridden_gateway_redis() {
    let dir = TempDir::new("loading-lib");
    let config = redis_source_config(&dir.0);

    let overrides = Overrides {
        listen: None,
        redis_url: Some(REDIS.into()),
        admin_listen: None,
    };
    let (loaded, problems) = load(&config, &overrides);
    assert!(!has_errors(&problems), "{problems:#?}");
    let loaded = loaded.expect("loaded with the override");
    assert_eq!(loaded.config.redis_url.as_deref(), Some(REDIS));
    assert!(loaded.tenants.iter().any(|t| t.config.id == "opt-nc"));

    // Without any Redis, the same file is refused, naming the way out.
    let (loaded, problems) = load(&config, &Overrides::default());
    assert!(loaded.is_none());
    assert!(
        problems
            .iter()
            .any(|d| d.message.contains(NO_REDIS) && d.message.contains("TAMTAM_REDIS_URL")),
        "{problems:#?}"
    );
}

#[test]
fn check_reads_tamtam_redis_url_as_serve_does() {
    let dir = TempDir::new("loading-check");
    let config = redis_source_config(&dir.0);

    let (ok, stdout, stderr) = run(&config, Some(REDIS), &["check"]);
    assert!(
        ok,
        "check with TAMTAM_REDIS_URL failed:\n{stdout}\n{stderr}"
    );
    assert!(!stdout.contains(NO_REDIS), "{stdout}");
    assert!(stdout.contains("\n0 error(s)"), "{stdout}");

    let (ok, stdout, _) = run(&config, None, &["check"]);
    assert!(!ok, "check without any Redis must fail:\n{stdout}");
    assert!(stdout.contains(NO_REDIS), "{stdout}");
}

#[test]
fn simulate_reads_tamtam_redis_url_as_serve_does() {
    let dir = TempDir::new("loading-simulate");
    let config = redis_source_config(&dir.0);
    let args = ["simulate", "--service", "*100#"];

    // Stdin is closed: the first screen, then the caller hangs up.
    let (ok, stdout, stderr) = run(&config, Some(REDIS), &args);
    assert!(
        ok,
        "simulate with TAMTAM_REDIS_URL failed:\n{stdout}\n{stderr}"
    );
    assert!(stdout.contains("(hung up)"), "{stdout}");

    let (ok, _, stderr) = run(&config, None, &args);
    assert!(!ok, "simulate without any Redis must fail");
    assert!(stderr.contains(NO_REDIS), "{stderr}");
}

#[test]
fn logs_written_to_a_pipe_carry_no_colour_codes() {
    let dir = TempDir::new("loading-ansi");
    let missing = dir.0.join("missing.toml");
    // `serve` logs why it does not start; stderr is a pipe here, as under a log collector.
    let (ok, _, stderr) = run(&missing, None, &["serve"]);
    assert!(!ok, "serve without a configuration file must fail");
    assert!(stderr.contains("cannot read the configuration"), "{stderr}");
    assert!(!stderr.contains('\x1b'), "ANSI codes in {stderr:?}");
}
