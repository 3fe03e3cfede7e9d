//! Any text as a menu: a menu exactly when there is no error, every problem as
//! `file:place: message`, never a panic.

#![no_main]

use libfuzzer_sys::fuzz_target;
use tamtam::diagnostic::Severity;
use tamtam::menu::LoadOptions;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let options = LoadOptions {
        sources: [("conso".to_string(), vec!["credit".to_string()])]
            .into_iter()
            .collect(),
        ..LoadOptions::default()
    };
    let (menu, problems) = tamtam::menu::load("m.toml", text, &options);
    let errors = problems.iter().filter(|p| p.severity == Severity::Error).count();
    assert_eq!(menu.is_some(), errors == 0);
    for p in &problems {
        assert!(p.to_string().starts_with("m.toml"), "{p}");
    }
});
