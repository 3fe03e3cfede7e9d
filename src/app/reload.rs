//! Hot reload: the tenants, their menus and data sources loaded anew while the gateway
//! serves, on `SIGHUP` or when a loaded file changes.
//!
//! A reload goes through the one loading function ([`super::load`], with the overrides
//! the process started with), so it judges exactly what `tamtam check` judges. A change
//! with any error keeps the running version; every problem is logged as `check` prints it
//! (errors at ERROR, warnings at WARN). A good one is swapped in atomically
//! ([`TenantsHandle`]): the next hop reads it, a hop in flight finishes on the version it
//! started with, and sessions continue (records name screens; a screen that disappeared
//! sends its subscriber home).
//!
//! What is reloaded: every `[[tenant]]` (codes, menus, texts, SMS codes and limits, data
//! sources, opened anew) and the files they name. Everything else in the configuration
//! file (listeners, `redis_url`, `[http]`, `[limits]`, `[session]`, `[outbox]`, channels,
//! senders, `hop_timeout_ms`, `max_body_bytes`, `trusted_proxies`, `dlr_secret`) is read
//! once at start: a reload that finds it changed names it at WARN and keeps running as
//! started.
//!
//! The watcher ([`watch`]) follows the folders of the loaded files (editors replace a file
//! by renaming a new one over it), waits until events stop for [`WATCH_DEBOUNCE`], then
//! reloads only when the bytes of the loaded files differ from the last ones read: the
//! files' contents decide, never their timestamps.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use crate::config::{files_of, version_of_files, Config, Overrides};
use crate::diagnostic::Diagnostic;
use crate::gateway::{ReloadResult, ReloadStatus, Tenants, TenantsHandle};

/// How long the files must stay quiet after a change before the watcher reloads (an
/// editor's save is several events; a deploy copies several files).
pub const WATCH_DEBOUNCE: Duration = Duration::from_millis(500);

/// The settings read once at start: the configuration file's top-level keys other than
/// `tenant`. A reload names each one that changed.
const TENANT_KEY: &str = "tenant";

/// Reloads a running gateway's tenants from its configuration file. Shared by the signal
/// handler and the watcher; one reload at a time.
#[derive(Debug)]
pub struct Reloader {
    path: PathBuf,
    overrides: Overrides,
    tenants: TenantsHandle,
    status: ReloadStatus,
    /// The files of the running version and the hash of their bytes as last read; held for
    /// the whole of a reload, so reloads never overlap.
    seen: Mutex<Seen>,
}

#[derive(Debug)]
struct Seen {
    files: Vec<PathBuf>,
    version: String,
    /// The configuration file's settings as started (the tenants left out).
    started: toml::Table,
}

impl Reloader {
    /// A reloader for a gateway started from the configuration file at `path` with
    /// `overrides`, whose running `config` was loaded from it; records the starting version.
    pub fn new(
        path: &Path,
        overrides: Overrides,
        config: &Config,
        tenants: TenantsHandle,
        status: ReloadStatus,
    ) -> Reloader {
        let files = files_of(config);
        let version = version_of_files(&files);
        status.started(&version);
        Reloader {
            path: path.to_path_buf(),
            overrides,
            tenants,
            status,
            seen: Mutex::new(Seen {
                files,
                version,
                started: settings(path),
            }),
        }
    }

    /// The files the running version was loaded from: the configuration, each menu, each
    /// data file.
    pub fn files(&self) -> Vec<PathBuf> {
        self.lock().files.clone()
    }

    /// The configuration version and the last reload's result.
    pub fn status(&self) -> &ReloadStatus {
        &self.status
    }

    /// Whether the loaded files' bytes differ from the last ones a reload (or the start)
    /// read.
    pub fn changed(&self) -> bool {
        let seen = self.lock();
        version_of_files(&seen.files) != seen.version
    }

    /// Loads everything anew, checks it, and swaps the new tenants in when nothing is an
    /// error; else keeps the running version. Every problem is logged, and the result is
    /// recorded in [`Reloader::status`]. Blocking (reads files): call it off the async
    /// threads ([`tokio::task::spawn_blocking`]).
    pub fn reload(&self) -> ReloadResult {
        let mut seen = self.lock();
        let (loaded, problems) = super::load(&self.path, &self.overrides);
        problems.iter().for_each(Diagnostic::log);
        let files = match &loaded {
            Some(l) => files_of(&l.config),
            None => seen.files.clone(),
        };
        let version = version_of_files(&files);
        seen.version.clone_from(&version);
        let running = self.status.version();
        let ok = loaded.is_some();
        let mut swap_in = None;
        if let Some(loaded) = loaded {
            for key in changed_settings(&seen.started, &settings(&self.path)) {
                tracing::warn!(
                    setting = %key,
                    "changed in the configuration file, but only a restart applies it; still running as started"
                );
            }
            let count = loaded.tenants.len();
            swap_in = Some(Tenants::new(loaded.tenants));
            seen.files = files;
            tracing::info!(
                version = %version,
                previous = %running,
                tenants = count,
                problems = problems.len(),
                "configuration reloaded"
            );
        } else {
            tracing::error!(
                version = %running,
                problems = problems.len(),
                "reload refused: still serving the running version; fix the problems above (`tamtam check` lists them)"
            );
        }
        let result = ReloadResult {
            at_ms: crate::outbox::now_ms(),
            ok,
            problems: problems.len(),
            version,
        };
        // Recorded before the swap, so whoever is served the new version also sees it
        // counted (`/readyz`, the metrics).
        self.status.record(result.clone());
        crate::metrics::reload_result(result.ok, &result.version);
        if let Some(tenants) = swap_in {
            self.tenants.store(Arc::new(tenants));
        }
        result
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Seen> {
        self.seen.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// The configuration file's top-level settings, the tenants left out; empty when it cannot
/// be read or parsed (the loader reports that).
fn settings(path: &Path) -> toml::Table {
    let mut table = std::fs::read_to_string(path)
        .ok()
        .and_then(|text| toml::from_str::<toml::Table>(&text).ok())
        .unwrap_or_default();
    table.remove(TENANT_KEY);
    table
}

/// The top-level settings whose value differs between `before` and `after`, by name
/// (`listen`, `http`, `channel`…), in order.
fn changed_settings(before: &toml::Table, after: &toml::Table) -> Vec<String> {
    let keys: BTreeSet<&String> = before.keys().chain(after.keys()).collect();
    keys.into_iter()
        .filter(|k| before.get(*k) != after.get(*k))
        .map(|k| k.to_string())
        .collect()
}

/// Reloads on every `SIGHUP`, for as long as the process runs.
pub fn on_sighup(reloader: Arc<Reloader>) {
    #[cfg(unix)]
    tokio::spawn(async move {
        use tokio::signal::unix::{signal, SignalKind};
        let mut hup = match signal(SignalKind::hangup()) {
            Ok(s) => s,
            Err(e) => {
                tracing::error!(cause = %e, "cannot listen for SIGHUP: reload by saving a file");
                return;
            }
        };
        while hup.recv().await.is_some() {
            tracing::info!("SIGHUP: reloading the configuration");
            let r = reloader.clone();
            let _ = tokio::task::spawn_blocking(move || r.reload()).await;
        }
    });
}

/// Watches the folders of the loaded files and reloads once they have been quiet for
/// `debounce` after a change, if the files' bytes changed. Runs until the returned task is
/// aborted; an error when the system refuses to watch (the log says SIGHUP still works).
pub fn watch(
    reloader: Arc<Reloader>,
    debounce: Duration,
) -> notify::Result<tokio::task::JoinHandle<()>> {
    use notify::{EventKind, RecursiveMode, Watcher};
    // One pending wake-up is enough: events are coalesced, the contents compared after.
    let (wake, mut woken) = tokio::sync::mpsc::channel::<()>(1);
    let mut watcher = notify::recommended_watcher(move |event: notify::Result<notify::Event>| {
        // Reading a file (our own hashing included) is no change.
        if matches!(&event, Ok(e) if !matches!(e.kind, EventKind::Access(_))) {
            let _ = wake.try_send(());
        }
    })?;
    let mut watched = BTreeSet::new();
    let mut follow = move |watcher: &mut notify::RecommendedWatcher, files: &[PathBuf]| {
        let folders: BTreeSet<PathBuf> = files.iter().map(|f| folder(f)).collect();
        for gone in watched.difference(&folders) {
            let _ = watcher.unwatch(gone);
        }
        for new in folders.difference(&watched) {
            if let Err(e) = watcher.watch(new, RecursiveMode::NonRecursive) {
                tracing::warn!(folder = %new.display(), cause = %e, "cannot watch this folder: reload its files with SIGHUP");
            }
        }
        watched = folders;
    };
    follow(&mut watcher, &reloader.files());
    Ok(tokio::spawn(async move {
        while woken.recv().await.is_some() {
            // Debounce: wait until nothing happened for `debounce`.
            while let Ok(Some(())) = tokio::time::timeout(debounce, woken.recv()).await {}
            let r = reloader.clone();
            // Off the async threads: hashing and loading read files, and wait for a reload
            // SIGHUP may have started.
            let reloaded = tokio::task::spawn_blocking(move || {
                r.changed().then(|| {
                    tracing::info!("a loaded file changed: reloading the configuration");
                    r.reload();
                    r.files()
                })
            });
            if let Ok(Some(files)) = reloaded.await {
                follow(&mut watcher, &files);
            }
        }
    }))
}

/// The folder holding `file` (`.` for a bare name).
fn folder(file: &Path) -> PathBuf {
    match file.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_settings_that_differ_are_named() {
        let before: toml::Table = toml::from_str("listen = \"a\"\n[http]\nx = 1\n").unwrap();
        let after: toml::Table =
            toml::from_str("listen = \"a\"\nadmin_listen = \"b\"\n[http]\nx = 2\n").unwrap();
        assert_eq!(changed_settings(&before, &after), ["admin_listen", "http"]);
        assert!(changed_settings(&before, &before).is_empty());
    }

    #[test]
    fn the_version_follows_the_bytes_not_the_file_times() {
        let dir = std::env::temp_dir().join(format!("tamtam-version-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("a.toml");
        std::fs::write(&file, "one").unwrap();
        let files = [file.clone()];
        let first = version_of_files(&files);
        assert_eq!(first.len(), crate::config::VERSION_LEN);
        std::fs::write(&file, "one").unwrap();
        assert_eq!(
            version_of_files(&files),
            first,
            "rewritten with the same bytes"
        );
        std::fs::write(&file, "two").unwrap();
        assert_ne!(version_of_files(&files), first);
        std::fs::remove_file(&file).unwrap();
        assert_ne!(
            version_of_files(&files),
            first,
            "a missing file is a change"
        );
        let _ = std::fs::remove_dir_all(&dir);
    }
}
