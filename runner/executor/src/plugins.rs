//! Finding a Task's plugin bytes.

use std::path::{Path, PathBuf};

use runbook_engine::Resource;

/// Name shown in errors and logs.
pub fn display_name(r: &Resource) -> String {
    match r {
        Resource::Plugin(n) => n.clone(),
        Resource::Wasm(p) => Path::new(p)
            .file_stem()
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_else(|| p.clone()),
        Resource::Other(s) => s.clone(),
    }
}

/// `plugin:<name>`: `<dir>/<name>.wasm` for each dir of the plugin path, then the
/// built-in plugins. A `.wasm` path: relative to the runbook's directory.
pub fn resolve_plugin(
    r: &Resource,
    base: &Path,
    plugin_path: &[PathBuf],
) -> Result<Vec<u8>, String> {
    match r {
        Resource::Plugin(name) => {
            for dir in plugin_path {
                for file in [
                    format!("{name}.wasm"),
                    format!("{}.wasm", name.replace('-', "_")),
                ] {
                    let p = dir.join(file);
                    if p.is_file() {
                        return std::fs::read(&p)
                            .map_err(|e| format!("reading {}: {e}", p.display()));
                    }
                }
            }
            if let Some(b) = runbook_plugins_builtin::get(name) {
                return Ok(b.to_vec());
            }
            let builtin: Vec<&str> = runbook_plugins_builtin::names().collect();
            Err(format!(
                "plugin '{name}' not found in the plugin path ({}) nor among the built-ins ({})",
                plugin_path
                    .iter()
                    .map(|p| p.display().to_string())
                    .collect::<Vec<_>>()
                    .join(":"),
                builtin.join(", ")
            ))
        }
        Resource::Wasm(p) => {
            let path = if Path::new(p).is_absolute() {
                PathBuf::from(p)
            } else {
                base.join(p)
            };
            std::fs::read(&path).map_err(|e| format!("plugin file {}: {e}", path.display()))
        }
        Resource::Other(s) => Err(format!(
            "Resource '{s}' is not a runbook plugin: use 'plugin:<name>' or a path to a .wasm file"
        )),
    }
}
