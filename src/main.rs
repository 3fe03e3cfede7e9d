//! The `tamtam` binary: logging set-up, then the command line (`tamtam --help`).

use std::process::ExitCode;

use clap::Parser;
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
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        // Colour codes only on a terminal: log collectors and files get plain text.
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
    tamtam::cli::run(cli).await
}
