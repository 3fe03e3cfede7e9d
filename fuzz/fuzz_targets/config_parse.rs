//! Any text as `config/tamtam.toml`: a configuration or every problem as
//! `file:place: message`, never a panic.

#![no_main]

use std::path::Path;

use libfuzzer_sys::fuzz_target;
use tamtam::config::{Config, Overrides};

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Err(problems) = Config::parse("c.toml", text, Path::new("."), &Overrides::default()) {
        assert!(!problems.is_empty());
        for p in &problems {
            assert!(p.to_string().starts_with("c.toml"), "{p}");
        }
    }
});
