//! Golden files: a text the tests produce, compared whole against a file under
//! `tests/golden/`. With `UPDATE_EXPECT=1` the file is (re)written instead; otherwise it
//! must exist and match exactly, so a layout change common to every dialect (navigation
//! lines, page breaks, wording) shows up as a reviewed diff of the file.

use super::root;

/// Compares `actual` with `tests/golden/{name}`, or writes it when `UPDATE_EXPECT=1`.
pub fn check(name: &str, actual: &str) {
    let path = root().join("tests/golden").join(name);
    if std::env::var("UPDATE_EXPECT").is_ok_and(|v| v == "1") {
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, actual).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        return;
    }
    let expected = std::fs::read_to_string(&path).unwrap_or_else(|e| {
        panic!(
            "{}: {e}; run the test with UPDATE_EXPECT=1 to write it, then review it",
            path.display()
        )
    });
    if expected != actual {
        let line = expected
            .lines()
            .zip(actual.lines())
            .position(|(e, a)| e != a)
            .unwrap_or_else(|| expected.lines().count().min(actual.lines().count()));
        panic!(
            "{} differs from what the gateway now shows, first at line {}\n\
             (UPDATE_EXPECT=1 rewrites it; review the diff)\n--- expected\n{expected}\n--- actual\n{actual}",
            path.display(),
            line + 1
        );
    }
}
