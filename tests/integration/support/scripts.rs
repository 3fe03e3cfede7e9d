//! The cross-dialect runner shared by the USSD and SMS conversation scripts (regex's
//! `testdata` idea applied to dialects): every script of a folder is played through every
//! dialect, each dialect on a gateway of its own, and every dialect must show exactly the
//! same texts. A script type says how one of its scripts is played ([`Script::play`]);
//! the runner loads, counts, compares and reports every failure at once.

use std::fmt::Debug;
use std::future::Future;

use serde::de::DeserializeOwned;

use super::{files, name, Server};

/// One kind of conversation script (a TOML file).
pub trait Script: DeserializeOwned {
    /// The ways the script reaches the gateway (USSD or SMS dialects).
    type Dialect: Copy + Debug;

    /// How many steps (hops or SMS) the script has.
    fn steps(&self) -> usize;

    /// What the subscriber sends at each step, for transcripts (the dial first for USSD).
    fn inputs(&self) -> Vec<String>;

    /// Plays the script on `server` through `dialect`: records each broken expectation in
    /// `failures`, prefixed with `file`, and returns the text the phone got at each step.
    fn play(
        &self,
        server: &Server,
        dialect: Self::Dialect,
        file: &str,
        failures: &mut Vec<String>,
    ) -> impl Future<Output = Vec<String>>;
}

/// A played script: its file name, the script, and the texts every dialect agreed on.
pub struct Played<S> {
    pub file: String,
    pub script: S,
    pub texts: Vec<String>,
}

impl<S: Script> Played<S> {
    /// The whole transcript: each input, then the full text answered to it.
    pub fn transcript(&self) -> String {
        let mut out = String::new();
        for (input, text) in self.script.inputs().iter().zip(&self.texts) {
            out.push_str(&format!("> {input}\n{text}\n\n"));
        }
        out
    }
}

/// Compares the whole transcripts of the `golden` scripts among `played` with their files
/// under `tests/golden/{folder}/` (see [`super::golden`]).
pub fn check_golden<S: Script>(played: &[Played<S>], golden: &[&str], folder: &str) {
    for file in golden {
        let p = played
            .iter()
            .find(|p| p.file == *file)
            .unwrap_or_else(|| panic!("golden conversation {file} is missing"));
        super::golden::check(
            &format!("{folder}/{}.txt", file.trim_end_matches(".toml")),
            &p.transcript(),
        );
    }
}

/// Plays every script of `folder` (at least `at_least` of them, so the suite cannot shrink
/// unnoticed) through each of `dialects`, each dialect on a fresh gateway from `start`,
/// so that a conversation left open in one dialect cannot change what the next shows.
/// Fails with every problem found; returns the scripts with their agreed texts.
pub async fn play_scripts<S, F, Fut>(
    folder: &str,
    at_least: usize,
    dialects: &[S::Dialect],
    start: F,
) -> Vec<Played<S>>
where
    S: Script,
    F: Fn() -> Fut,
    Fut: Future<Output = Server>,
{
    let scripts: Vec<(String, S)> = files(folder, "toml")
        .into_iter()
        .map(|path| {
            let file = name(&path);
            let script: S = toml::from_str(&std::fs::read_to_string(&path).unwrap())
                .unwrap_or_else(|e| panic!("{file}: {e}"));
            assert!(script.steps() > 0, "{file}: no step");
            (file, script)
        })
        .collect();
    assert!(
        scripts.len() >= at_least,
        "only {} scripts found in {folder}",
        scripts.len()
    );
    let mut failures = Vec::new();
    let mut runs: Vec<Vec<Vec<String>>> = vec![Vec::new(); scripts.len()];
    for &dialect in dialects {
        let server = start().await;
        for (n, (file, script)) in scripts.iter().enumerate() {
            let texts = script.play(&server, dialect, file, &mut failures).await;
            runs[n].push(texts);
        }
        server.stop().await;
    }
    for ((file, _), texts) in scripts.iter().zip(&runs) {
        for (d, t) in dialects.iter().zip(texts).skip(1) {
            if t != &texts[0] {
                failures.push(format!(
                    "{file}: {d:?} shows other texts than {:?}: {t:#?} vs {:#?}",
                    dialects[0], texts[0]
                ));
            }
        }
    }
    assert!(
        failures.is_empty(),
        "{} failure(s):\n{}",
        failures.len(),
        failures.join("\n")
    );
    scripts
        .into_iter()
        .zip(runs)
        .map(|((file, script), mut texts)| Played {
            file,
            script,
            texts: texts.swap_remove(0),
        })
        .collect()
}
