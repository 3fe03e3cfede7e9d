//! The configuration's version: a short hash of the contents of every file a configuration
//! loads (the configuration file, each tenant's menu, each file data source), shown by
//! `/readyz`, the metrics and the start-up log so an operator can tell which files a
//! replica runs, and compared by hot reload to tell a real change from a touched file.

use std::path::PathBuf;

use sha2::{Digest, Sha256};

use super::Config;
use crate::data::SourceConfig;

/// Hex digits of a version.
pub const VERSION_LEN: usize = 12;

/// The files `config` loads: the configuration file, each tenant's menu, each file data
/// source.
pub fn files_of(config: &Config) -> Vec<PathBuf> {
    let mut files = vec![PathBuf::from(&config.file)];
    for t in &config.tenants {
        files.push(t.menu.clone());
        for s in &t.sources {
            if let SourceConfig::File { path, .. } = s {
                files.push(path.clone());
            }
        }
    }
    files
}

/// The version of `config`: [`version_of_files`] over [`files_of`].
pub fn version_of(config: &Config) -> String {
    version_of_files(&files_of(config))
}

/// The first [`VERSION_LEN`] hex digits of a SHA-256 over each file's contents, each
/// preceded by its length (so moving bytes from one file to the next changes it); a file
/// that cannot be read counts as a marker of its own, so its return is a change. Names do
/// not count: the same files elsewhere have the same version.
pub fn version_of_files(files: &[PathBuf]) -> String {
    let mut hash = Sha256::new();
    for path in files {
        match std::fs::read(path) {
            Ok(bytes) => {
                hash.update((bytes.len() as u64).to_le_bytes());
                hash.update(&bytes);
            }
            Err(_) => hash.update(b"\xffunreadable"),
        }
    }
    let digest = hash.finalize();
    digest[..VERSION_LEN / 2]
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_version_follows_the_contents_not_the_names() {
        let dir =
            std::env::temp_dir().join(format!("tamtam-config-version-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let (a, b) = (dir.join("a.toml"), dir.join("b.toml"));
        std::fs::write(&a, "x = 1\n").unwrap();
        std::fs::write(&b, "x = 1\n").unwrap();
        let first = version_of_files(std::slice::from_ref(&a));
        assert_eq!(first.len(), VERSION_LEN);
        assert_eq!(
            version_of_files(std::slice::from_ref(&b)),
            first,
            "same bytes elsewhere"
        );
        std::fs::write(&b, "x = 2\n").unwrap();
        assert_ne!(version_of_files(std::slice::from_ref(&b)), first);
        std::fs::remove_file(&b).unwrap();
        assert_ne!(
            version_of_files(&[b]),
            first,
            "a missing file is a version too"
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
