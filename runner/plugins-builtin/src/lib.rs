//! The plugins that ship with runbook, built from `plugins/` by this crate's build
//! script and embedded, so `Resource: plugin:<name>` works from any install.
//!
//! The test fixtures of `plugins/fixtures/` (`echo`, `spin`, `membomb`, `trap`,
//! `ungranted`, `logger`) are built too but not embedded: tests find them in
//! [`FIXTURE_DIR`] (put it on the plugin path) or through [`fixture`].

use std::collections::HashMap;
use std::sync::{Mutex, OnceLock};

include!(concat!(env!("OUT_DIR"), "/plugins.rs"));

/// The embedded bytes of a built-in plugin.
pub fn get(name: &str) -> Option<&'static [u8]> {
    PLUGINS
        .iter()
        .find(|(n, _, _)| *n == name)
        .map(|(_, b, _)| *b)
}

/// The path of a built-in plugin's `.wasm` file in the build tree.
pub fn path(name: &str) -> Option<std::path::PathBuf> {
    PLUGINS
        .iter()
        .find(|(n, _, _)| *n == name)
        .map(|(_, _, p)| p.into())
}

/// Names of all built-in plugins.
pub fn names() -> impl Iterator<Item = &'static str> {
    PLUGINS.iter().map(|(n, _, _)| *n)
}

/// The path of a test fixture's `.wasm` file in the build tree.
pub fn fixture_path(name: &str) -> Option<std::path::PathBuf> {
    FIXTURES
        .iter()
        .find(|(n, _)| *n == name)
        .map(|(_, p)| p.into())
}

/// A test fixture's bytes, read from the build tree once per process (tests only: an
/// installed runner has no build tree).
pub fn fixture(name: &str) -> Option<&'static [u8]> {
    static READ: OnceLock<Mutex<HashMap<String, &'static [u8]>>> = OnceLock::new();
    let mut read = READ.get_or_init(Default::default).lock().unwrap();
    if let Some(b) = read.get(name) {
        return Some(b);
    }
    let bytes: &'static [u8] = std::fs::read(fixture_path(name)?).ok()?.leak();
    read.insert(name.to_string(), bytes);
    Some(bytes)
}
