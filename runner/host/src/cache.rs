//! On-disk cache of compiled components.
//!
//! Keyed by the component's SHA-256 and the engine's compatibility hash (wasmtime
//! version + every codegen setting). Deserializing is `unsafe` in wasmtime because a
//! crafted file is native code, so each entry carries an HMAC under a per-cache secret
//! key (mode 0600): only files this runner wrote itself are ever deserialized.

use std::fs;
use std::hash::{Hash, Hasher};
use std::io::Write;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};
use wasmtime::Engine;
use wasmtime::component::Component;

/// Where a loaded plugin's machine code came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub enum CacheSource {
    Compiled,
    Disk,
}

pub struct DiskCache {
    dir: PathBuf,
    key: [u8; 32],
    engine_hash: String,
}

impl DiskCache {
    pub fn open(dir: &Path, engine: &Engine) -> std::io::Result<DiskCache> {
        fs::create_dir_all(dir)?;
        fs::set_permissions(dir, fs::Permissions::from_mode(0o700))?;
        let key_path = dir.join("cache.key");
        let key = match fs::read(&key_path) {
            Ok(k) if k.len() == 32 => k.try_into().unwrap(),
            _ => {
                let mut k = [0u8; 32];
                let mut f = fs::File::open("/dev/urandom")?;
                std::io::Read::read_exact(&mut f, &mut k)?;
                let tmp = dir.join(format!("cache.key.{}", std::process::id()));
                fs::OpenOptions::new()
                    .write(true)
                    .create(true)
                    .truncate(true)
                    .mode(0o600)
                    .open(&tmp)?
                    .write_all(&k)?;
                fs::rename(&tmp, &key_path)?;
                // Another process may have won the race; use whatever landed.
                fs::read(&key_path)?
                    .try_into()
                    .map_err(|_| std::io::Error::other("bad cache key"))?
            }
        };
        let mut h = std::collections::hash_map::DefaultHasher::new();
        engine.precompile_compatibility_hash().hash(&mut h);
        let engine_hash = format!("{:016x}", h.finish());
        Ok(DiskCache {
            dir: dir.to_path_buf(),
            key,
            engine_hash,
        })
    }

    fn path(&self, sha256: &str) -> PathBuf {
        self.dir
            .join(format!("{sha256}-{}.cwasm", self.engine_hash))
    }

    /// The cached component, or why wasmtime refused the cached code (pool limits);
    /// `None` when nothing usable is cached.
    pub fn get(&self, engine: &Engine, sha256: &str) -> Option<wasmtime::Result<Component>> {
        let data = fs::read(self.path(sha256)).ok()?;
        if data.len() < 32 {
            return None;
        }
        let (mac, body) = data.split_at(32);
        if !constant_time_eq(mac, &hmac(&self.key, body)) {
            tracing::warn!("compile cache: ignoring {sha256}: not written by this runner");
            return None;
        }
        // SAFETY: the HMAC proves this runner serialized these bytes with an engine of
        // the same compatibility hash; wasmtime re-checks the header on top of that.
        Some(unsafe { Component::deserialize(engine, body) })
    }

    /// Store `body`, the output of `Engine::precompile_component`.
    pub fn put(&self, sha256: &str, body: &[u8]) -> wasmtime::Result<()> {
        let mac = hmac(&self.key, body);
        let tmp = self
            .dir
            .join(format!(".{sha256}.{}.tmp", std::process::id()));
        let mut f = fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(&tmp)?;
        f.write_all(&mac)?;
        f.write_all(body)?;
        drop(f);
        fs::rename(&tmp, self.path(sha256))?;
        Ok(())
    }
}

/// A component from code this process just compiled with `engine`.
pub fn own_component(engine: &Engine, body: &[u8]) -> wasmtime::Result<Component> {
    // SAFETY: `body` is `engine.precompile_component`'s output, made in this process.
    unsafe { Component::deserialize(engine, body) }
}

/// HMAC-SHA256 (RFC 2104).
fn hmac(key: &[u8; 32], msg: &[u8]) -> [u8; 32] {
    let mut block = [0u8; 64];
    block[..32].copy_from_slice(key);
    let ipad: Vec<u8> = block.iter().map(|b| b ^ 0x36).collect();
    let opad: Vec<u8> = block.iter().map(|b| b ^ 0x5c).collect();
    let inner = Sha256::new()
        .chain_update(&ipad)
        .chain_update(msg)
        .finalize();
    Sha256::new()
        .chain_update(&opad)
        .chain_update(inner)
        .finalize()
        .into()
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hmac_matches_rfc4231_style_vector() {
        // Same key/message gives the same MAC; any change gives another.
        let k = [7u8; 32];
        assert_eq!(hmac(&k, b"abc"), hmac(&k, b"abc"));
        assert_ne!(hmac(&k, b"abc"), hmac(&k, b"abd"));
        assert_ne!(hmac(&k, b"abc"), hmac(&[8u8; 32], b"abc"));
    }
}
