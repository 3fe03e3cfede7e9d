//! The configuration's version and how the last reload went, as operators read them
//! (`/readyz` details, metrics).
//!
//! The version is a short hash of the bytes of every file loaded (the configuration, each
//! menu, each data file), so two replicas serving the same files show the same version,
//! whatever the files' timestamps. The reloader (`crate::app`) writes it; readers take a
//! copy. Never on a hop's path.

use std::sync::{Arc, Mutex, PoisonError};

/// How one reload went.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReloadResult {
    /// When it finished, Unix milliseconds.
    pub at_ms: u64,
    /// Whether the new version was swapped in (`false`: the running version was kept).
    pub ok: bool,
    /// How many problems it found: errors and warnings, each logged as `check` prints it.
    pub problems: usize,
    /// The version of the files it read (the running version only when `ok`).
    pub version: String,
}

#[derive(Debug, Default)]
struct Inner {
    version: String,
    last: Option<ReloadResult>,
    succeeded: u64,
    failed: u64,
}

/// The running configuration version and the last reload's result. Cloning shares it.
#[derive(Debug, Clone, Default)]
pub struct ReloadStatus(Arc<Mutex<Inner>>);

impl ReloadStatus {
    fn with<T>(&self, f: impl FnOnce(&mut Inner) -> T) -> T {
        f(&mut self.0.lock().unwrap_or_else(PoisonError::into_inner))
    }

    /// The running configuration's version (12 hex digits of a SHA-256 of the files
    /// loaded); empty when the gateway was not built from files (tests building by hand).
    pub fn version(&self) -> String {
        self.with(|s| s.version.clone())
    }

    /// The last reload's result; `None` before the first reload.
    pub fn last_result(&self) -> Option<ReloadResult> {
        self.with(|s| s.last.clone())
    }

    /// Reloads since start: (swapped in, refused).
    pub fn totals(&self) -> (u64, u64) {
        self.with(|s| (s.succeeded, s.failed))
    }

    /// Records the version loaded at start.
    pub fn started(&self, version: &str) {
        self.with(|s| s.version = version.to_string());
    }

    /// Records a reload; a successful one changes the running version.
    pub fn record(&self, result: ReloadResult) {
        self.with(|s| {
            if result.ok {
                s.version = result.version.clone();
                s.succeeded += 1;
            } else {
                s.failed += 1;
            }
            s.last = Some(result);
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_failed_reload_keeps_the_running_version_and_is_counted() {
        let status = ReloadStatus::default();
        status.started("aaa");
        let result = |ok, version: &str| ReloadResult {
            at_ms: 1,
            ok,
            problems: usize::from(!ok),
            version: version.into(),
        };
        status.record(result(false, "bbb"));
        assert_eq!(status.version(), "aaa");
        assert_eq!(status.last_result(), Some(result(false, "bbb")));
        status.record(result(true, "ccc"));
        assert_eq!(status.version(), "ccc");
        assert_eq!(status.totals(), (1, 1));
    }
}
