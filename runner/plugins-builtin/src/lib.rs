//! The plugins that ship with runbook, built from `plugins/` by this crate's build
//! script and embedded, so `Resource: plugin:<name>` works from any install.

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
