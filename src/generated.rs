//! Checks the JS files generated from Rust definitions (lib/generated/):
//! a test fails while one is stale, and rewrites it when `UPDATE_GENERATED`
//! is set.

/// Asserts that the file at `path` (relative to the crate) holds `text`.
pub fn check(path: &str, text: &str) {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join(path);
    if std::env::var_os("UPDATE_GENERATED").is_some() {
        std::fs::write(&path, text).expect("write the generated file");
    }
    let got = std::fs::read_to_string(&path).unwrap_or_default();
    assert!(
        got == text,
        "{} is stale: run UPDATE_GENERATED=1 cargo test --release",
        path.display()
    );
}
