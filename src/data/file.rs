//! The `file` data source: a CSV file read once at start-up into memory. The header names
//! the fields; the first column is the key (`msisdn,minutes,sms`).
//!
//! Its only option is `path`, relative to the configuration file's folder. A bad line stops
//! the start-up (every bad line is reported); a key that is not in the file is
//! [`LookupOutcome::Missing`]. A file source never fails a lookup.

use std::collections::HashMap;
use std::path::Path;

use super::config::{resolve_path, RawSource, SourceContext};
use crate::menu::LookupOutcome;

/// The options a `file` source takes.
pub(super) const OPTIONS: &[&str] = &["path"];

/// Checks a `kind = "file"` source: it needs `path`, resolved against the configuration's
/// folder. Gives the resolved path.
pub(super) fn check(
    raw: &RawSource,
    cx: &SourceContext,
    problems: &mut Vec<String>,
) -> Option<std::path::PathBuf> {
    match &raw.path {
        Some(path) => Some(resolve_path(cx.base, path)),
        None => {
            problems.push("a file source needs `path`".into());
            None
        }
    }
}

/// Records read from a CSV file.
#[derive(Debug)]
pub struct FileSource {
    /// Field names, the key column excluded.
    pub(super) fields: Vec<String>,
    rows: HashMap<String, Vec<String>>,
}

impl FileSource {
    /// Reads a CSV file: a header line, then one record a line; the first column is the key.
    pub fn from_path(path: &Path) -> Result<FileSource, String> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
        FileSource::parse(&text)
    }

    /// Parses CSV text (see [`FileSource::from_path`]). Every bad line is reported.
    pub fn parse(text: &str) -> Result<FileSource, String> {
        let mut reader = csv::ReaderBuilder::new()
            .trim(csv::Trim::All)
            .from_reader(text.as_bytes());
        let header = reader
            .headers()
            .map_err(|e| format!("bad header: {e}"))?
            .clone();
        if header.len() < 2 {
            return Err("the header needs a key column and at least one field".into());
        }
        let fields: Vec<String> = header.iter().skip(1).map(str::to_string).collect();
        let mut rows = HashMap::new();
        let mut problems = Vec::new();
        for (i, record) in reader.records().enumerate() {
            let line = i + 2;
            match record {
                Ok(r) if r.len() == header.len() => {
                    let key = r[0].to_string();
                    if rows
                        .insert(key.clone(), r.iter().skip(1).map(str::to_string).collect())
                        .is_some()
                    {
                        problems.push(format!("line {line}: key {key} appears twice"));
                    }
                }
                Ok(r) => problems.push(format!(
                    "line {line}: {} columns, the header has {}",
                    r.len(),
                    header.len()
                )),
                Err(e) => problems.push(format!("line {line}: {e}")),
            }
        }
        if !problems.is_empty() {
            return Err(problems.join("; "));
        }
        Ok(FileSource { fields, rows })
    }

    pub(super) fn lookup(&self, key: &str) -> LookupOutcome {
        match self.rows.get(key) {
            Some(values) => LookupOutcome::Found(
                self.fields
                    .iter()
                    .cloned()
                    .zip(values.iter().cloned())
                    .collect(),
            ),
            None => LookupOutcome::Missing,
        }
    }

    /// Number of records.
    pub fn len(&self) -> usize {
        self.rows.len()
    }

    /// True when the file holds no record.
    pub fn is_empty(&self) -> bool {
        self.rows.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn csv_records_are_found_by_their_first_column() {
        let f = FileSource::parse("msisdn,minutes,sms\n+1, 12 ,3\n+2,0,0\n").unwrap();
        assert_eq!(f.len(), 2);
        assert_eq!(
            f.lookup("+1"),
            LookupOutcome::Found(vec![
                ("minutes".into(), "12".into()),
                ("sms".into(), "3".into())
            ])
        );
        assert_eq!(f.lookup("+3"), LookupOutcome::Missing);
    }

    #[test]
    fn every_bad_line_is_reported() {
        let err = FileSource::parse("k,a\n1,2\n1,3\n2\n").unwrap_err();
        assert!(err.contains("line 3: key 1 appears twice"), "{err}");
        assert!(err.contains("line 4"), "{err}");
        assert!(FileSource::parse("k\n1\n").is_err());
    }
}
