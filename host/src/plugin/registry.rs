//! The plugin registry: uploaded plugins, stored durably and versioned.
//!
//! Layout: `<data-dir>/plugins/<name>/<version:010>.wasm` with a sibling
//! `<version:010>.json` holding its metadata. A version is written (wasm,
//! then metadata, each atomically) only after it compiled and matched a
//! world, so every stored version is loadable. Versions start at 1 and only
//! grow; deleting a plugin removes all its versions. Compiled plugins are
//! cached in memory by (name, version), at most [`Caps::max_compiled`] of
//! them (least recently used dropped first, compiled again when needed).
//! A plugin keeps at most [`Caps::max_versions`] versions: an upload past
//! it is refused unless a version nothing pins can go, and [`Registry::prune`]
//! removes the oldest such versions once the upload is durable.
//!
//! Invariant: on start-up every stored version is listed again; a version
//! whose metadata is missing or damaged is re-validated from its wasm rather
//! than dropped.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use serde::{Deserialize, Serialize};

use super::compaction::CompactionPlugin;
use super::error::PluginError;
use super::runtime::Runtime;
use super::transform::TransformPlugin;
use crate::fsutil::{now_ms, write_atomic};

/// Which world a plugin implements.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PluginKind {
    Transform,
    Compaction,
}

/// What is known about one stored plugin version.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct VersionInfo {
    pub version: u32,
    pub kind: PluginKind,
    pub size: u64,
    pub uploaded_ms: u64,
}

/// A plugin and its versions, ascending.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PluginInfo {
    pub name: String,
    pub versions: Vec<VersionInfo>,
}

#[derive(Debug, thiserror::Error)]
pub enum RegistryError {
    #[error("plugin `{name}` does not exist")]
    NotFound { name: String },
    #[error("plugin `{name}` has no version {version}")]
    VersionNotFound { name: String, version: u32 },
    #[error("invalid plugin name `{name}`: {reason}")]
    InvalidName { name: String, reason: &'static str },
    #[error("plugin `{name}` is a {found:?} plugin, not a {wanted:?} plugin")]
    WrongKind {
        name: String,
        wanted: PluginKind,
        found: PluginKind,
    },
    #[error(
        "plugin `{name}` has {count} versions, the most plugins.max_versions allows, and every one is pinned \
         by a pipeline, view or compacted stream; unpin or delete some first"
    )]
    TooManyVersions { name: String, count: usize },
    #[error(transparent)]
    Plugin(#[from] PluginError),
    #[error("plugin storage I/O error on `{}`: {source}", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

/// What the registry keeps and accepts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Caps {
    /// Core functions an uploaded component may define.
    pub max_functions: u32,
    /// Versions kept per plugin.
    pub max_versions: u32,
    /// Compiled versions held in memory.
    pub max_compiled: usize,
}

impl Default for Caps {
    fn default() -> Self {
        Caps {
            max_functions: 20_000,
            max_versions: 100,
            max_compiled: 64,
        }
    }
}

pub struct Registry {
    dir: PathBuf,
    runtime: Arc<Runtime>,
    caps: Caps,
    /// name -> version -> info
    index: Mutex<BTreeMap<String, BTreeMap<u32, VersionInfo>>>,
    compiled: Mutex<CompiledCache>,
}

/// Compiled plugins by (name, version), with a use counter for eviction.
#[derive(Default)]
struct CompiledCache {
    entries: HashMap<(String, u32), (Compiled, u64)>,
    clock: u64,
}

impl CompiledCache {
    fn get(&mut self, key: &(String, u32)) -> Option<Compiled> {
        self.clock += 1;
        let clock = self.clock;
        self.entries.get_mut(key).map(|(c, used)| {
            *used = clock;
            c.clone()
        })
    }

    /// Inserts `compiled`, dropping the least recently used beyond `cap`.
    fn insert(&mut self, key: (String, u32), compiled: Compiled, cap: usize) {
        self.clock += 1;
        self.entries.insert(key, (compiled, self.clock));
        while self.entries.len() > cap {
            let oldest = self
                .entries
                .iter()
                .min_by_key(|(_, (_, used))| *used)
                .map(|(k, _)| k.clone());
            match oldest {
                Some(k) => self.entries.remove(&k),
                None => break,
            };
        }
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        self.entries.len()
    }
}

/// A compiled plugin of either world.
#[derive(Clone)]
pub enum Compiled {
    Transform(TransformPlugin),
    Compaction(CompactionPlugin),
}

/// Compiles `wasm` (named `name` in errors) and finds which world it
/// implements, without storing it: what an upload validates, and what
/// `sluice plugin test` runs. Blocking (compiles).
pub fn load_any(runtime: &Arc<Runtime>, name: &str, wasm: &[u8]) -> Result<Compiled, PluginError> {
    let component = runtime.compile(name, wasm)?;
    match TransformPlugin::from_component(runtime, name, &component) {
        Ok(p) => Ok(Compiled::Transform(p)),
        Err(PluginError::WrongWorld { found, .. }) if found.contains("compaction") => Ok(Compiled::Compaction(
            CompactionPlugin::from_component(runtime, name, &component)?,
        )),
        Err(e) => Err(e),
    }
}

impl Compiled {
    pub fn kind(&self) -> PluginKind {
        match self {
            Compiled::Transform(_) => PluginKind::Transform,
            Compiled::Compaction(_) => PluginKind::Compaction,
        }
    }
}

impl Registry {
    /// Opens (and indexes) the registry under `data_dir/plugins` with the
    /// default [`Caps`]. Blocking.
    #[cfg(test)]
    pub fn open(data_dir: &Path, runtime: Arc<Runtime>) -> Result<Registry, RegistryError> {
        Self::open_with(data_dir, runtime, Caps::default())
    }

    /// Opens (and indexes) the registry under `data_dir/plugins`. Blocking.
    pub fn open_with(data_dir: &Path, runtime: Arc<Runtime>, caps: Caps) -> Result<Registry, RegistryError> {
        let dir = data_dir.join("plugins");
        std::fs::create_dir_all(&dir).map_err(|e| io(&dir, e))?;
        let reg = Registry {
            dir,
            runtime,
            caps,
            index: Mutex::new(BTreeMap::new()),
            compiled: Mutex::new(CompiledCache::default()),
        };
        reg.scan()?;
        Ok(reg)
    }

    fn scan(&self) -> Result<(), RegistryError> {
        let mut index = BTreeMap::new();
        for ent in std::fs::read_dir(&self.dir).map_err(|e| io(&self.dir, e))?.flatten() {
            let name = ent.file_name().to_string_lossy().into_owned();
            if validate_name(&name).is_err() || !ent.path().is_dir() {
                continue;
            }
            let mut versions = BTreeMap::new();
            for f in std::fs::read_dir(ent.path()).map_err(|e| io(&ent.path(), e))?.flatten() {
                let fname = f.file_name().to_string_lossy().into_owned();
                let Some(v) = fname.strip_suffix(".wasm").and_then(|s| s.parse::<u32>().ok()) else {
                    continue;
                };
                let meta_path = ent.path().join(format!("{v:010}.json"));
                let info = match std::fs::read(&meta_path)
                    .ok()
                    .and_then(|b| serde_json::from_slice(&b).ok())
                {
                    Some(info) => info,
                    None => {
                        // Metadata is derived: rebuild it from the wasm.
                        let wasm = std::fs::read(f.path()).map_err(|e| io(&f.path(), e))?;
                        match self.classify(&name, &wasm) {
                            Ok(compiled) => {
                                let kind = compiled.kind();
                                let info = VersionInfo {
                                    version: v,
                                    kind,
                                    size: wasm.len() as u64,
                                    uploaded_ms: now_ms(),
                                };
                                self.write_meta(&meta_path, &info)?;
                                info
                            }
                            Err(e) => {
                                tracing::error!(plugin = %name, version = v, error = %e, "stored plugin version no longer loads; skipped");
                                continue;
                            }
                        }
                    }
                };
                versions.insert(v, info);
            }
            if !versions.is_empty() {
                index.insert(name, versions);
            }
        }
        *self.index.lock().unwrap_or_else(|p| p.into_inner()) = index;
        Ok(())
    }

    /// Compiles `wasm` and finds which world it implements.
    fn classify(&self, name: &str, wasm: &[u8]) -> Result<Compiled, PluginError> {
        load_any(&self.runtime, name, wasm)
    }

    fn write_meta(&self, path: &Path, info: &VersionInfo) -> Result<(), RegistryError> {
        let bytes = serde_json::to_vec_pretty(info).map_err(|e| io(path, std::io::Error::other(e)))?;
        write_atomic(path, &bytes).map_err(|e| io(path, e))
    }

    /// Validates and stores a new version of `name`. `pinned` are the
    /// versions of `name` something uses by number: when the plugin is at
    /// its version cap, the upload is refused unless one other version
    /// could go. Blocking (compiles).
    pub fn put(&self, name: &str, wasm: &[u8], pinned: &BTreeSet<u32>) -> Result<VersionInfo, RegistryError> {
        validate_name(name)?;
        self.check_room(name, pinned)?;
        super::precheck::check(name, wasm, self.caps.max_functions)?;
        let compiled = self.classify(name, wasm)?;
        let kind = compiled.kind();
        let mut index = self.index.lock().unwrap_or_else(|p| p.into_inner());
        let versions = index.entry(name.to_string()).or_default();
        let version = versions.keys().next_back().map_or(1, |v| v + 1);
        let pdir = self.dir.join(name);
        std::fs::create_dir_all(&pdir).map_err(|e| io(&pdir, e))?;
        let wasm_path = pdir.join(format!("{version:010}.wasm"));
        write_atomic(&wasm_path, wasm).map_err(|e| io(&wasm_path, e))?;
        let info = VersionInfo {
            version,
            kind,
            size: wasm.len() as u64,
            uploaded_ms: now_ms(),
        };
        self.write_meta(&pdir.join(format!("{version:010}.json")), &info)?;
        versions.insert(version, info.clone());
        drop(index);
        // Validation compiled it already: keep it for the first use.
        self.compiled.lock().unwrap_or_else(|p| p.into_inner()).insert(
            (name.to_string(), version),
            compiled,
            self.caps.max_compiled,
        );
        Ok(info)
    }

    /// Refuses a new version of `name` when it is at its version cap and
    /// every version is pinned or the latest.
    fn check_room(&self, name: &str, pinned: &BTreeSet<u32>) -> Result<(), RegistryError> {
        let index = self.index.lock().unwrap_or_else(|p| p.into_inner());
        let Some(versions) = index.get(name) else {
            return Ok(());
        };
        let cap = usize::try_from(self.caps.max_versions).unwrap_or(usize::MAX);
        // The latest may go too: it is not the latest after this upload.
        if versions.len() < cap || !prunable(versions, pinned, cap.saturating_sub(1), false).is_empty() {
            return Ok(());
        }
        Err(RegistryError::TooManyVersions {
            name: name.into(),
            count: versions.len(),
        })
    }

    /// Removes the oldest versions of `name` that are neither pinned nor
    /// the latest until it has at most `max_versions`; returns them.
    pub fn prune(&self, name: &str, pinned: &BTreeSet<u32>) -> Result<Vec<u32>, RegistryError> {
        let doomed = {
            let index = self.index.lock().unwrap_or_else(|p| p.into_inner());
            let cap = usize::try_from(self.caps.max_versions).unwrap_or(usize::MAX);
            match index.get(name) {
                Some(versions) => prunable(versions, pinned, cap, true),
                None => Vec::new(),
            }
        };
        for v in &doomed {
            self.remove_version(name, *v)?;
        }
        Ok(doomed)
    }

    /// Compiled plugin versions held in memory now.
    #[cfg(test)]
    pub fn compiled_count(&self) -> usize {
        self.compiled.lock().unwrap_or_else(|p| p.into_inner()).len()
    }

    pub fn list(&self) -> Vec<PluginInfo> {
        let index = self.index.lock().unwrap_or_else(|p| p.into_inner());
        index
            .iter()
            .map(|(name, v)| PluginInfo {
                name: name.clone(),
                versions: v.values().cloned().collect(),
            })
            .collect()
    }

    pub fn get(&self, name: &str) -> Result<PluginInfo, RegistryError> {
        let index = self.index.lock().unwrap_or_else(|p| p.into_inner());
        index
            .get(name)
            .map(|v| PluginInfo {
                name: name.to_string(),
                versions: v.values().cloned().collect(),
            })
            .ok_or_else(|| RegistryError::NotFound { name: name.into() })
    }

    /// Removes one version of `name` (undoing a `put` whose copy in the
    /// object store failed). Callers check that nothing uses it.
    pub fn remove_version(&self, name: &str, version: u32) -> Result<(), RegistryError> {
        let mut index = self.index.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(versions) = index.get_mut(name) {
            versions.remove(&version);
            if versions.is_empty() {
                index.remove(name);
            }
        }
        self.compiled
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .entries
            .remove(&(name.to_string(), version));
        let pdir = self.dir.join(name);
        for ext in ["wasm", "json"] {
            let path = pdir.join(format!("{version:010}.{ext}"));
            match std::fs::remove_file(&path) {
                Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(io(&path, e)),
                _ => {}
            }
        }
        crate::fsutil::sync_dir(&pdir).map_err(|e| io(&pdir, e))
    }

    /// Removes every version of `name`. Callers check that nothing uses it.
    pub fn delete(&self, name: &str) -> Result<(), RegistryError> {
        let mut index = self.index.lock().unwrap_or_else(|p| p.into_inner());
        if index.remove(name).is_none() {
            return Err(RegistryError::NotFound { name: name.into() });
        }
        self.compiled
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .entries
            .retain(|(n, _), _| n != name);
        let pdir = self.dir.join(name);
        std::fs::remove_dir_all(&pdir).map_err(|e| io(&pdir, e))?;
        crate::fsutil::sync_dir(&self.dir).map_err(|e| io(&self.dir, e))
    }

    /// The transform plugin `name` at `version` (latest when `None`),
    /// compiled once and cached. Blocking on first use.
    pub fn transform(&self, name: &str, version: Option<u32>) -> Result<TransformPlugin, RegistryError> {
        match self.compiled(name, version, PluginKind::Transform)? {
            Compiled::Transform(p) => Ok(p),
            Compiled::Compaction(_) => Err(wrong_kind(name, PluginKind::Transform, PluginKind::Compaction)),
        }
    }

    /// The compaction plugin `name` at `version` (latest when `None`),
    /// compiled once and cached. Blocking on first use.
    pub fn compaction(&self, name: &str, version: Option<u32>) -> Result<CompactionPlugin, RegistryError> {
        match self.compiled(name, version, PluginKind::Compaction)? {
            Compiled::Compaction(p) => Ok(p),
            Compiled::Transform(_) => Err(wrong_kind(name, PluginKind::Compaction, PluginKind::Transform)),
        }
    }

    /// The version `version` names: itself if stored, else (for `None`)
    /// the latest.
    pub fn resolve_version(&self, name: &str, version: Option<u32>) -> Result<u32, RegistryError> {
        Ok(self.version_info(name, version)?.version)
    }

    fn version_info(&self, name: &str, version: Option<u32>) -> Result<VersionInfo, RegistryError> {
        let index = self.index.lock().unwrap_or_else(|p| p.into_inner());
        let versions = index
            .get(name)
            .ok_or_else(|| RegistryError::NotFound { name: name.into() })?;
        let found = match version {
            Some(v) => versions.get(&v),
            None => versions.values().next_back(),
        };
        found.cloned().ok_or(RegistryError::VersionNotFound {
            name: name.into(),
            version: version.unwrap_or(0),
        })
    }

    fn compiled(&self, name: &str, version: Option<u32>, wanted: PluginKind) -> Result<Compiled, RegistryError> {
        let info = self.version_info(name, version)?;
        if info.kind != wanted {
            return Err(wrong_kind(name, wanted, info.kind));
        }
        let key = (name.to_string(), info.version);
        if let Some(p) = self.compiled.lock().unwrap_or_else(|p| p.into_inner()).get(&key) {
            return Ok(p.clone());
        }
        let path = self.dir.join(name).join(format!("{:010}.wasm", info.version));
        let wasm = std::fs::read(&path).map_err(|e| io(&path, e))?;
        let plugin = self.classify(name, &wasm)?;
        self.compiled
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(key, plugin.clone(), self.caps.max_compiled);
        Ok(plugin)
    }
}

/// The oldest versions to remove so that at most `keep` remain, never a
/// pinned one, nor the latest when `keep_latest` (unpinned users read it).
fn prunable(versions: &BTreeMap<u32, VersionInfo>, pinned: &BTreeSet<u32>, keep: usize, keep_latest: bool) -> Vec<u32> {
    let excess = versions.len().saturating_sub(keep);
    let latest = versions.keys().next_back().copied().filter(|_| keep_latest);
    versions
        .keys()
        .copied()
        .filter(|v| !pinned.contains(v) && Some(*v) != latest)
        .take(excess)
        .collect()
}

fn wrong_kind(name: &str, wanted: PluginKind, found: PluginKind) -> RegistryError {
    RegistryError::WrongKind {
        name: name.into(),
        wanted,
        found,
    }
}

fn io(path: &Path, source: std::io::Error) -> RegistryError {
    RegistryError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// Plugin names follow stream names: 1–128 of `[A-Za-z0-9._-]`, not `.`/`..`.
fn validate_name(name: &str) -> Result<(), RegistryError> {
    crate::log::meta::validate_name(name).map_err(|e| match e {
        crate::log::LogError::InvalidName { reason, .. } => RegistryError::InvalidName {
            name: name.chars().take(200).collect(),
            reason,
        },
        _ => RegistryError::InvalidName {
            name: name.into(),
            reason: "invalid",
        },
    })
}
