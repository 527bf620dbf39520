//! Plugins kept in the object store too, for nodes on the object-store WAL
//! (`wal = "object"`): such a node may restart with an empty data dir, so
//! every stored plugin version is also an object
//! `plugins/<name>/<version:010>.wasm`, restored into the data dir before
//! the registry opens.
//!
//! Uploads are also bounded here: compile slots, and pruning of old
//! versions once a new one is durable.
//!
//! Invariants: a version is acknowledged only once both copies exist; a
//! delete removes the objects before the local files, so a failed delete
//! leaves the plugin whole in both places (and a restart cannot bring back
//! a plugin whose delete was acknowledged).

use std::collections::BTreeSet;
use std::path::Path;

use bytes::Bytes;

use super::Host;
use crate::error::{Error, ErrorKind};
use crate::plugin::VersionInfo;
use crate::task::blocking;
use crate::tier::Remote;

const PLUGINS_DIR: &str = "plugins";

fn version_key(name: &str, version: u32) -> String {
    format!("{PLUGINS_DIR}/{name}/{version:010}.wasm")
}

/// Writes every plugin version in the store that the data dir lacks into
/// `<data_dir>/plugins/<name>/`. Returns how many were restored.
pub(super) async fn restore(remote: &Remote, data_dir: &Path) -> Result<usize, Error> {
    let mut restored = 0;
    for m in remote.list(PLUGINS_DIR).await? {
        let key = m.location.to_string();
        let mut tail = key.rsplit('/');
        let (Some(file), Some(name)) = (tail.next(), tail.next()) else {
            continue;
        };
        if file.strip_suffix(".wasm").and_then(|v| v.parse::<u32>().ok()).is_none()
            || crate::log::meta::validate_name(name).is_err()
        {
            continue;
        }
        let path = data_dir.join(PLUGINS_DIR).join(name).join(file);
        if path.exists() {
            continue;
        }
        let Some(wasm) = remote.get(&m.location).await? else {
            continue;
        };
        let target = path.clone();
        blocking(move || -> Result<(), Error> {
            let io = |e: std::io::Error| {
                Error::new(
                    ErrorKind::Internal,
                    "io_error",
                    format!("cannot restore plugin `{}`: {e}", target.display()),
                )
            };
            if let Some(dir) = target.parent() {
                std::fs::create_dir_all(dir).map_err(io)?;
            }
            crate::fsutil::write_atomic(&target, &wasm).map_err(io)
        })
        .await??;
        restored += 1;
    }
    if restored > 0 {
        tracing::info!(restored, "plugin versions restored from the object store");
    }
    Ok(restored)
}

impl Host {
    fn plugins_in_store(&self) -> bool {
        self.inner.settings.wal == crate::config::WalKind::Object
    }

    /// Validates and stores a new version of plugin `name` (also in the
    /// object store on an object-store WAL node). At most
    /// `[plugins] max_concurrent_compiles` uploads compile at once; one
    /// that waits longer than `compile_wait` for its turn is answered
    /// `busy`. Past `max_versions`, the oldest versions nothing pins go.
    pub async fn put_plugin(&self, name: &str, wasm: Vec<u8>) -> Result<VersionInfo, Error> {
        let caps = &self.inner.settings.plugins;
        let slot = tokio::time::timeout(caps.compile_wait, self.inner.compile_slots.acquire())
            .await
            .map_err(|_| {
                Error::new(
                    ErrorKind::Unavailable,
                    "busy",
                    format!(
                        "other plugin uploads are compiling (plugins.max_concurrent_compiles = {}); retry later",
                        caps.max_concurrent_compiles
                    ),
                )
            })?
            .map_err(|_| Error::new(ErrorKind::Unavailable, "shutting_down", "the node is shutting down"))?;
        let wasm = Bytes::from(wasm);
        let pinned = self.pinned_versions(name).await;
        let (host, n, w, p) = (self.clone(), name.to_string(), wasm.clone(), pinned.clone());
        let info = blocking(move || Ok::<_, Error>(host.inner.plugins.put(&n, &w, &p)?)).await??;
        drop(slot);
        if self.plugins_in_store() {
            let remote = self.inner.tier.remote();
            if let Err(e) = remote.put(&remote.path(&version_key(name, info.version)), wasm).await {
                // Not acknowledged, so not kept: a restart from the store
                // would not have it either.
                let (host, n, v) = (self.clone(), name.to_string(), info.version);
                blocking(move || host.inner.plugins.remove_version(&n, v)).await??;
                return Err(e.into());
            }
        }
        let (host, n) = (self.clone(), name.to_string());
        let pruned = blocking(move || host.inner.plugins.prune(&n, &pinned)).await??;
        if self.plugins_in_store() {
            let remote = self.inner.tier.remote();
            for v in &pruned {
                // Left behind, it would come back at the next start from an
                // empty data dir, as one more old version (pruned again at
                // the next upload): worth a warning, not a failed upload.
                if let Err(e) = remote.delete(&remote.path(&version_key(name, *v))).await {
                    tracing::warn!(plugin = name, version = v, error = %e, "cannot delete a pruned plugin version from the object store");
                }
            }
        }
        if !pruned.is_empty() {
            tracing::info!(plugin = name, versions = ?pruned, "old plugin versions removed (plugins.max_versions)");
        }
        Ok(info)
    }

    /// Versions of plugin `name` that a pipeline, view or compacted stream
    /// names by number.
    async fn pinned_versions(&self, name: &str) -> BTreeSet<u32> {
        let mut pinned = BTreeSet::new();
        for p in self.inner.log.pipelines().await {
            if p.plugin == name {
                pinned.extend(p.plugin_version);
            }
        }
        for v in self.inner.log.views() {
            if v.plugin == name {
                pinned.extend(v.plugin_version);
            }
        }
        for s in self.list_streams() {
            if let Some(c) = s.compaction.filter(|c| c.plugin == name) {
                pinned.extend(c.plugin_version);
            }
        }
        pinned
    }

    /// Deletes every version of plugin `name`; refused while a pipeline, a
    /// view or a compacted stream uses it (they would fail at their next
    /// batch, read or compaction run).
    pub async fn delete_plugin(&self, name: &str) -> Result<(), Error> {
        let in_use = |by: String| {
            Error::new(
                ErrorKind::Conflict,
                "plugin_in_use",
                format!("plugin `{name}` is used by {by}; delete or change that first"),
            )
        };
        if self.inner.pipelines.uses().await.iter().any(|(p, _, _)| p == name) {
            return Err(in_use("a pipeline".into()));
        }
        if let Some(v) = self.inner.log.views().iter().find(|v| v.plugin == name) {
            return Err(in_use(format!("view `{}`", v.name)));
        }
        let compacted = self
            .list_streams()
            .into_iter()
            .find(|s| s.compaction.as_ref().is_some_and(|c| c.plugin == name));
        if let Some(s) = compacted {
            return Err(in_use(format!("the compaction of stream `{}`", s.name)));
        }
        if self.plugins_in_store() {
            let info = self.inner.plugins.get(name)?;
            let remote = self.inner.tier.remote();
            for v in &info.versions {
                remote.delete(&remote.path(&version_key(name, v.version))).await?;
            }
        }
        let (host, name) = (self.clone(), name.to_string());
        blocking(move || Ok(host.inner.plugins.delete(&name)?)).await?
    }
}

#[cfg(test)]
impl Host {
    /// The plugin registry, for tests.
    pub(crate) fn registry_for_test(&self) -> &crate::plugin::Registry {
        &self.inner.plugins
    }

    /// Takes a compile slot as an upload would, for tests.
    pub(crate) async fn hold_compile_slot(&self) -> tokio::sync::SemaphorePermit<'_> {
        match self.inner.compile_slots.acquire().await {
            Ok(permit) => permit,
            Err(e) => panic!("compile slots closed: {e}"),
        }
    }
}
