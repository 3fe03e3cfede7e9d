//! The `tamtam` binary: logging set-up (`TAMTAM_LOG_FORMAT`: `text` or `json`, see
//! `tamtam::logs`), then the command line (`tamtam --help`).

use std::process::ExitCode;

use clap::Parser;
use tamtam::logs::{LogFormat, LOG_FORMAT_ENV};
use tracing_subscriber::EnvFilter;

#[tokio::main]
async fn main() -> ExitCode {
    let cli = tamtam::cli::Cli::parse();
    // The gateway logs at INFO by default; the content-team commands only warn.
    let default = match cli.command {
        None | Some(tamtam::cli::Command::Serve) => "info",
        Some(_) => "warn",
    };
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(default));
    let format = match LogFormat::from_env() {
        Ok(format) => format,
        Err(name) => {
            eprintln!("{LOG_FORMAT_ENV}={name:?}: the log format is `text` or `json`");
            return ExitCode::from(2);
        }
    };
    // Colour codes only on a terminal: log collectors and files get plain text.
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr());
    let subscriber = tamtam::logs::subscriber(format, filter, std::io::stderr, ansi);
    if tracing::subscriber::set_global_default(subscriber).is_err() {
        eprintln!("cannot install the logger");
    }
    tamtam::cli::run(cli).await
}
