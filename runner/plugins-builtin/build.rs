//! Builds every plugin of the `plugins/` workspace for `wasm32-wasip2`, so that nobody
//! runs a separate manual step (modelled on wasmtime's test-programs artifacts build).
//! The nested cargo gets its own target dir next to ours: the outer build holds the
//! lock on the normal one.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::{env, fs};

fn main() {
    let manifest_dir = PathBuf::from(env::var("CARGO_MANIFEST_DIR").unwrap());
    let root = manifest_dir
        .parent()
        .unwrap()
        .parent()
        .unwrap()
        .to_path_buf();
    let plugins = root.join("plugins");
    let out_dir = PathBuf::from(env::var("OUT_DIR").unwrap());
    // OUT_DIR = <target>/<profile>/build/<pkg>-<hash>/out
    let target_dir = out_dir.ancestors().nth(4).unwrap().to_path_buf();
    // One nested target dir per checkout: clones sharing CARGO_TARGET_DIR must not
    // overwrite each other's .wasm files (the last build would embed the other's).
    let checkout = {
        use std::hash::{Hash, Hasher};
        let mut h = std::collections::hash_map::DefaultHasher::new();
        root.hash(&mut h);
        h.finish()
    };
    let wasm_target_dir = target_dir.join(format!("wasm-plugins-{checkout:016x}"));

    println!("cargo:rerun-if-changed={}", plugins.display());
    println!("cargo:rerun-if-changed={}", root.join("wit").display());
    for entry in walk(&plugins) {
        println!("cargo:rerun-if-changed={}", entry.display());
    }
    for entry in walk(&root.join("wit")) {
        println!("cargo:rerun-if-changed={}", entry.display());
    }

    let cargo = env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let mut cmd = Command::new(cargo);
    cmd.current_dir(&plugins)
        .args([
            "build",
            "--release",
            "--target",
            "wasm32-wasip2",
            "--target-dir",
        ])
        .arg(&wasm_target_dir);
    // The outer build's settings (rustflags for the host, its target dir, profile
    // overrides) must not leak into the guest build.
    for (k, _) in env::vars() {
        if (k.starts_with("CARGO_") && k != "CARGO_HOME" && k != "CARGO_NET_OFFLINE")
            || k == "RUSTFLAGS"
            || k == "RUSTC_WRAPPER"
            || k == "RUSTC_WORKSPACE_WRAPPER"
        {
            cmd.env_remove(k);
        }
    }
    let status = cmd.status().expect("running cargo for the plugins");
    if !status.success() {
        panic!(
            "building plugins for wasm32-wasip2 failed (is the target installed? \
             run `rustup target add wasm32-wasip2`, or ./scripts/setup.sh)"
        );
    }

    let release = wasm_target_dir.join("wasm32-wasip2").join("release");
    // Test fixtures (plugins/fixtures/*) are not embedded: they are copied to a
    // directory of their own that tests put on the plugin path, so users never see them.
    let fixture_dir = wasm_target_dir.join("fixtures");
    fs::create_dir_all(&fixture_dir).unwrap();
    let mut names: Vec<(String, PathBuf)> = Vec::new();
    let mut fixtures: Vec<(String, PathBuf)> = Vec::new();
    for (member, dir) in plugin_members(&plugins) {
        let file = release.join(format!("{}.wasm", member.replace('-', "_")));
        if !file.exists() {
            panic!("plugin {member} built but {} is missing", file.display());
        }
        if dir.starts_with("fixtures/") {
            let copy = fixture_dir.join(format!("{member}.wasm"));
            fs::copy(&file, &copy).unwrap();
            fixtures.push((member, copy));
        } else {
            names.push((member, file));
        }
    }
    names.sort();
    fixtures.sort();

    let mut src = String::from(
        "/// Every plugin under plugins/ (fixtures aside), built for wasm32-wasip2: (name, bytes, path).\n",
    );
    src.push_str("pub static PLUGINS: &[(&str, &[u8], &str)] = &[\n");
    for (name, file) in &names {
        src.push_str(&format!(
            "    ({name:?}, include_bytes!({path:?}), {path:?}),\n",
            path = file.display().to_string()
        ));
    }
    src.push_str("];\n");
    src.push_str(&format!(
        "/// Directory holding the built `.wasm` files.\npub const PLUGIN_DIR: &str = {:?};\n",
        release.display().to_string()
    ));
    src.push_str("/// Test fixtures under plugins/fixtures/: (name, path of the built file).\n");
    src.push_str("pub static FIXTURES: &[(&str, &str)] = &[\n");
    for (name, file) in &fixtures {
        src.push_str(&format!(
            "    ({name:?}, {:?}),\n",
            file.display().to_string()
        ));
    }
    src.push_str("];\n");
    src.push_str(&format!(
        "/// Directory holding only the fixtures' `.wasm` files (a plugin path for tests).\npub const FIXTURE_DIR: &str = {:?};\n",
        fixture_dir.display().to_string()
    ));
    fs::write(out_dir.join("plugins.rs"), src).unwrap();
}

/// Workspace members of plugins/ that build a component (crate-type cdylib; the SDK
/// and shared libraries are not): (package name, member directory).
fn plugin_members(plugins: &Path) -> Vec<(String, String)> {
    let manifest = fs::read_to_string(plugins.join("Cargo.toml")).unwrap();
    let start = manifest
        .find("members")
        .expect("plugins/Cargo.toml has members");
    let list = &manifest[start..];
    let list = &list[list.find('[').unwrap() + 1..list.find(']').unwrap()];
    list.split(',')
        .map(|s| s.trim().trim_matches('"').to_string())
        .filter(|s| !s.is_empty())
        .filter_map(|dir| {
            let cargo = fs::read_to_string(plugins.join(&dir).join("Cargo.toml")).unwrap();
            if !cargo.contains("cdylib") {
                return None;
            }
            let name = cargo
                .lines()
                .find_map(|l| {
                    l.strip_prefix("name = ")
                        .map(|n| n.trim_matches('"').to_string())
                })
                .unwrap_or_else(|| dir.clone());
            Some((name, dir))
        })
        .collect()
}

fn walk(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let Ok(rd) = fs::read_dir(dir) else {
        return out;
    };
    for e in rd.flatten() {
        let p = e.path();
        if p.file_name().is_some_and(|n| n == "target") {
            continue;
        }
        if p.is_dir() {
            out.extend(walk(&p));
        } else {
            out.push(p);
        }
    }
    out
}
