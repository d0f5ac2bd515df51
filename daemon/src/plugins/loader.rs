//! Turning a `[[plugins]]` entry into a compiled component: read the file, check its pin and
//! signature, check the world version it targets, then compile it (or take the compiled
//! artifact from the disk cache, keyed by the file's hash and the engine's configuration).

use std::hash::{Hash, Hasher};
use std::path::{Path, PathBuf};

use wasmtime::Engine;
use wasmtime::component::Component;

use super::bindings::{SUPPORTED_WORLD_VERSIONS, WORLD_PACKAGE, World};

/// Why a plugin was refused, naming the config field at fault when there is one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LoadError {
    pub plugin: String,
    pub field: &'static str,
    pub message: String,
}

impl std::fmt::Display for LoadError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "plugin {}: {}", self.plugin, self.message)
    }
}

/// The file's bytes and hash, once its pin and signature have been checked.
pub struct VerifiedFile {
    pub bytes: Vec<u8>,
    pub sha256: String,
}

/// Reads `path` and checks it against the pinned hash and the trusted signers.
pub fn read_verified(
    plugin: &str,
    path: &Path,
    pinned_sha256: Option<&str>,
    trusted_signers: &[String],
) -> Result<VerifiedFile, LoadError> {
    let error = |field, message: String| LoadError {
        plugin: plugin.to_owned(),
        field,
        message,
    };
    let bytes = std::fs::read(path)
        .map_err(|e| error("path", format!("cannot read {}: {e}", path.display())))?;
    let sha256 = hex::encode(ring::digest::digest(&ring::digest::SHA256, &bytes));
    if let Some(pinned) = pinned_sha256
        && !pinned.eq_ignore_ascii_case(&sha256)
    {
        return Err(error(
            "sha256",
            format!(
                "{} has SHA-256 {sha256}, but the config pins {pinned}; the file was changed or replaced",
                path.display()
            ),
        ));
    }
    if !trusted_signers.is_empty() {
        verify_signature(path, &bytes, trusted_signers).map_err(|m| error("path", m))?;
    }
    Ok(VerifiedFile { bytes, sha256 })
}

/// Checks `<path>.sig` (hex Ed25519 signature of the file) against the trusted keys.
fn verify_signature(path: &Path, bytes: &[u8], trusted_signers: &[String]) -> Result<(), String> {
    let sig_path = signature_path(path);
    let text = std::fs::read_to_string(&sig_path).map_err(|e| {
        format!(
            "trusted signers are configured but {} cannot be read: {e}",
            sig_path.display()
        )
    })?;
    let signature = hex::decode(text.trim())
        .map_err(|_| format!("{} is not a hex signature", sig_path.display()))?;
    let valid = trusted_signers.iter().any(|signer| {
        hex::decode(signer).is_ok_and(|key| {
            ring::signature::UnparsedPublicKey::new(&ring::signature::ED25519, key)
                .verify(bytes, &signature)
                .is_ok()
        })
    });
    if valid {
        Ok(())
    } else {
        Err(format!(
            "{} does not carry a valid signature by a trusted signer",
            path.display()
        ))
    }
}

/// Where a plugin's detached signature lives: `<file>.sig`.
pub fn signature_path(path: &Path) -> PathBuf {
    let mut name = path.as_os_str().to_owned();
    name.push(".sig");
    PathBuf::from(name)
}

/// The `paygate:provider` version a component targets, checked against the versions this
/// daemon links ([`SUPPORTED_WORLD_VERSIONS`]): compatible with one of them (its world is
/// then `World::of_version`), and the same world for its export and all its imports.
pub fn check_world(engine: &Engine, component: &Component) -> Result<String, String> {
    let ty = component.component_type();
    let prefix = format!("{WORLD_PACKAGE}/provider@");
    let version = ty
        .exports(engine)
        .find_map(|(name, _)| name.strip_prefix(&prefix).map(str::to_owned))
        .ok_or_else(|| {
            format!(
                "the component does not export {WORLD_PACKAGE}/provider; is it a paygate plugin?"
            )
        })?;
    let world = World::of_version(&version).ok_or_else(|| unsupported(&version))?;
    for (name, _) in ty.imports(engine) {
        let Some((interface, v)) = name
            .strip_prefix(&format!("{WORLD_PACKAGE}/"))
            .and_then(|rest| rest.split_once('@'))
        else {
            continue;
        };
        match World::of_version(v) {
            None => return Err(unsupported(v)),
            Some(w) if w != world => {
                return Err(format!(
                    "the plugin mixes world versions: it exports {WORLD_PACKAGE}/provider@{version} but imports {WORLD_PACKAGE}/{interface}@{v}; rebuild it against one paygate-plugin-api"
                ));
            }
            Some(_) => {}
        }
    }
    Ok(version)
}

/// The refusal of a world version this daemon does not link, naming every one it does.
fn unsupported(version: &str) -> String {
    let supported: Vec<String> = SUPPORTED_WORLD_VERSIONS
        .iter()
        .map(|v| format!("{WORLD_PACKAGE}@{v}"))
        .collect();
    format!(
        "the plugin targets {WORLD_PACKAGE}@{version}, but this paygated supports {} (and their patch releases); rebuild the plugin against a compatible paygate-plugin-api",
        match supported.split_last() {
            Some((last, [])) => last.clone(),
            Some((last, rest)) => format!("{} and {last}", rest.join(", ")),
            None => String::new(),
        }
    )
}

/// Semver compatibility: the same major version, and for 0.x the same minor version.
pub fn compatible(theirs: &str, ours: &str) -> bool {
    let parse = |v: &str| -> Option<(u64, u64)> {
        let mut parts = v.split('.');
        Some((parts.next()?.parse().ok()?, parts.next()?.parse().ok()?))
    };
    match (parse(theirs), parse(ours)) {
        (Some((0, a)), Some((0, b))) => a == b,
        (Some((a, _)), Some((b, _))) => a == b,
        _ => false,
    }
}

/// Where the SHA-256 of each compiled artifact is recorded when this daemon compiles it, out
/// of reach of whoever can write the cache dir (the daemon records them in its store). A
/// cached artifact is deserialized, which runs its machine code, only if its bytes still have
/// the digest recorded for its name.
pub trait ArtifactLedger: Send + Sync {
    /// The digest recorded for `artifact` (the cache file's name), if any.
    fn digest(&self, artifact: &str) -> Option<String>;
    /// Records `sha256` for `artifact`.
    fn record(&self, artifact: &str, sha256: &str);
}

/// A ledger that lasts as long as the process (in-process hosts of tests and benchmarks):
/// each process compiles its plugins once, then trusts only what it compiled itself.
#[derive(Default)]
pub struct MemoryLedger(std::sync::Mutex<std::collections::HashMap<String, String>>);

impl ArtifactLedger for MemoryLedger {
    fn digest(&self, artifact: &str) -> Option<String> {
        self.0.lock().ok()?.get(artifact).cloned()
    }
    fn record(&self, artifact: &str, sha256: &str) {
        if let Ok(mut map) = self.0.lock() {
            map.insert(artifact.to_owned(), sha256.to_owned());
        }
    }
}

fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(ring::digest::digest(&ring::digest::SHA256, bytes))
}

/// Compiles `bytes`, or loads the artifact a previous run cached for the same file and
/// engine configuration, if `ledger` holds its digest.
pub fn compile_cached(
    engine: &Engine,
    file: &VerifiedFile,
    cache_dir: &Path,
    ledger: &dyn ArtifactLedger,
) -> Result<(Component, bool), String> {
    let mut hasher = std::collections::hash_map::DefaultHasher::new();
    engine.precompile_compatibility_hash().hash(&mut hasher);
    let name = format!("{}-{:016x}.cwasm", file.sha256, hasher.finish());
    let cached = cache_dir.join(&name);
    // Read once: the bytes that are checked are the bytes that are loaded.
    if let Ok(artifact) = std::fs::read(&cached) {
        let digest = sha256_hex(&artifact);
        match ledger.digest(&name) {
            Some(recorded) if recorded == digest => {
                // SAFETY: these bytes are the artifact this daemon serialized from the
                // verified component (pinned and signed as configured), as its recorded
                // digest shows; wasmtime checks the engine's compatibility as it loads them.
                match unsafe { Component::deserialize(engine, &artifact) } {
                    Ok(component) => return Ok((component, true)),
                    Err(e) => {
                        tracing::warn!(path = %cached.display(), error = %e, "ignoring unusable plugin cache entry")
                    }
                }
            }
            Some(_) => tracing::warn!(
                path = %cached.display(),
                "the cached compiled plugin does not match the digest recorded when it was compiled (replaced or corrupted); compiling it again"
            ),
            None => {
                tracing::debug!(path = %cached.display(), "cached compiled plugin not compiled by this store; compiling it again")
            }
        }
    }
    let component =
        Component::new(engine, &file.bytes).map_err(|e| format!("not a valid component: {e:#}"))?;
    match component.serialize() {
        Ok(artifact) => {
            ledger.record(&name, &sha256_hex(&artifact));
            let tmp = cached.with_extension("tmp");
            let written = std::fs::create_dir_all(cache_dir)
                .and_then(|()| std::fs::write(&tmp, artifact))
                .and_then(|()| std::fs::rename(&tmp, &cached));
            if let Err(e) = written {
                tracing::warn!(dir = %cache_dir.display(), error = %e, "cannot cache the compiled plugin");
            }
        }
        Err(e) => tracing::warn!(error = %e, "cannot serialize the compiled plugin"),
    }
    Ok((component, false))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn world_versions_follow_semver() {
        assert!(compatible("0.1.0", "0.1.0"));
        assert!(compatible("0.1.7", "0.1.0"));
        assert!(!compatible("0.2.0", "0.1.0"));
        assert!(compatible("0.2.1", "0.2.0"));
        assert!(compatible("1.4.0", "1.0.0"));
        assert!(!compatible("2.0.0", "1.0.0"));
        assert!(!compatible("x", "0.1.0"));
    }

    #[test]
    fn an_unsupported_version_is_refused_naming_every_supported_one() {
        let message = unsupported("0.9.0");
        assert!(
            message.contains("targets paygate:provider@0.9.0"),
            "{message}"
        );
        assert!(
            message.contains(
                "supports paygate:provider@0.1.0, paygate:provider@0.2.0, paygate:provider@0.3.0, paygate:provider@0.4.0 and paygate:provider@0.5.0"
            ),
            "{message}"
        );
    }
}
