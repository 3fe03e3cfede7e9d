//! The configuration's version: a short hash of the contents of the configuration file and
//! of every tenant's menu file, computed when they are loaded, shown by `/readyz` and the
//! start-up log so an operator can tell which files a replica runs.
//!
//! [`ConfigVersion`] is the one place it is kept: a cheap handle shared by the composition
//! root and the HTTP state; a reload computes the new version with [`version_of`] and
//! stores it with [`ConfigVersion::set`].

use std::sync::{Arc, RwLock};

use sha2::{Digest, Sha256};

use super::Config;

/// Hex digits of the version.
pub const VERSION_LEN: usize = 12;

/// The version of `config`: the first [`VERSION_LEN`] hex digits of the SHA-256 over the
/// configuration file's contents, then each tenant's menu file's, each preceded by its
/// length (so moving bytes from one file to the next changes it). A file that cannot be
/// read counts as empty: a configuration built from text in a test still has a version.
pub fn version_of(config: &Config) -> String {
    let mut hash = Sha256::new();
    let files = std::iter::once(std::path::PathBuf::from(&config.file))
        .chain(config.tenants.iter().map(|t| t.menu.clone()));
    for path in files {
        let bytes = std::fs::read(&path).unwrap_or_default();
        hash.update((bytes.len() as u64).to_le_bytes());
        hash.update(&bytes);
    }
    let digest = hash.finalize();
    digest[..VERSION_LEN / 2]
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// The running configuration's version, shared; cheap to clone and to read.
#[derive(Debug, Clone)]
pub struct ConfigVersion(Arc<RwLock<Arc<str>>>);

impl ConfigVersion {
    /// A version holding `version`.
    pub fn new(version: &str) -> ConfigVersion {
        ConfigVersion(Arc::new(RwLock::new(Arc::from(version))))
    }

    /// The current version.
    pub fn get(&self) -> Arc<str> {
        self.0.read().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// Replaces the version (after a reload), for every holder of this handle.
    pub fn set(&self, version: &str) {
        *self.0.write().unwrap_or_else(|e| e.into_inner()) = Arc::from(version);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_version_set_is_seen_by_every_clone() {
        let v = ConfigVersion::new("aaaaaaaaaaaa");
        let seen = v.clone();
        v.set("bbbbbbbbbbbb");
        assert_eq!(&*seen.get(), "bbbbbbbbbbbb");
    }
}
