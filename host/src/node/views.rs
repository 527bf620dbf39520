//! Views: named, read-only topics over a stream. Readers (HTTP, Kafka,
//! consumer groups) read a view like a stream; its records are the input's
//! passed through a transform plugin at read time, and nothing is stored.
//!
//! Invariants:
//! * a view's offsets are its input's: an output record carries the offset
//!   of the input record it came from, filtered-out offsets are skipped, and
//!   `next_offset` follows the input, so commits and resets work unchanged;
//! * a read of a view never returns the input unfiltered: the log refuses a
//!   view's name on the record path, and every read here goes through the
//!   plugin;
//! * a view is deleted only while no group has offsets committed on it,
//!   unless forced (then those offsets go with it).

use std::sync::Arc;

use std::collections::HashMap;

use super::{Host, ReadLimits};
use crate::error::{Error, ErrorKind};
use crate::log::ReadBatch;
use crate::log::views::ViewMeta;
use crate::plugin::TransformInstance;
use crate::task::blocking;

/// Input steps one read of a view takes at most while the plugin filters
/// everything out; it then returns no records and a `next_offset` past
/// what it skipped, so a reader moves on without waiting for output.
const SCAN_STEPS: usize = 16;

/// Idle plugin instances kept per view (and plugin version): about the
/// number of readers of one view at once.
const POOL_PER_VIEW: usize = 4;

/// (view name, its creation time, plugin version): an instance is reused
/// only for the view definition and plugin version it was made for, so a
/// re-created view or a new plugin version never sees an old instance.
type PoolKey = (String, u64, u32);

/// Initialized plugin instances of views between reads (instantiating one
/// costs more than transforming a small read).
#[derive(Default)]
pub(super) struct InstancePool {
    idle: std::sync::Mutex<HashMap<PoolKey, Vec<TransformInstance>>>,
}

impl InstancePool {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<PoolKey, Vec<TransformInstance>>> {
        self.idle.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn take(&self, key: &PoolKey) -> Option<TransformInstance> {
        self.lock().get_mut(key).and_then(Vec::pop)
    }

    /// Keeps an instance that just finished a read without error.
    fn give(&self, key: PoolKey, instance: TransformInstance) {
        let mut idle = self.lock();
        // Instances of other versions of this view are stale now.
        idle.retain(|k, _| k.0 != key.0 || k == &key);
        let v = idle.entry(key).or_default();
        if v.len() < POOL_PER_VIEW {
            v.push(instance);
        }
    }

    fn forget(&self, view: &str) {
        self.lock().retain(|k, _| k.0 != view);
    }
}

/// A view to create.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ViewSpec {
    pub name: String,
    pub input: String,
    pub plugin: String,
    /// A pinned plugin version; the latest at each read when `None`.
    pub plugin_version: Option<u32>,
    pub config: Vec<(String, String)>,
}

/// A view as listed and described.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, utoipa::ToSchema)]
pub struct ViewInfo {
    pub name: String,
    pub input: String,
    pub plugin: String,
    pub plugin_version: Option<u32>,
    pub config: Vec<(String, String)>,
    pub created_ms: u64,
    /// The input's partition count (the view's).
    pub partitions: u32,
    /// Groups with offsets committed on the view.
    pub groups: Vec<String>,
}

impl Host {
    /// Creates a view after checking that its plugin is a transform that
    /// accepts the config.
    pub async fn create_view(&self, spec: ViewSpec) -> Result<ViewInfo, Error> {
        super::committed::refuse_internal(&spec.name, "create")?;
        super::committed::refuse_internal(&spec.input, "make a view of")?;
        // Name conflicts first (cheap); the log checks again under its lock.
        if self.inner.log.view(&spec.name).is_some() {
            return Err(crate::log::LogError::ViewExists { name: spec.name }.into());
        }
        if self.inner.log.describe_stream(&spec.name).is_ok() {
            return Err(crate::log::LogError::StreamExists { name: spec.name }.into());
        }
        let plugins = self.inner.plugins.clone();
        let (plugin, version, config) = (spec.plugin.clone(), spec.plugin_version, spec.config.clone());
        blocking(move || -> Result<(), Error> {
            plugins.transform(&plugin, version)?.instantiate(&config)?;
            Ok(())
        })
        .await??;
        let m = ViewMeta {
            name: spec.name,
            input: spec.input,
            plugin: spec.plugin,
            plugin_version: spec.plugin_version,
            config: spec.config,
            created_ms: 0,
        };
        let m = self.inner.log.create_view(m).await?;
        self.view_info(&m, Vec::new())
    }

    /// Every view, by name.
    pub async fn list_views(&self) -> Result<Vec<ViewInfo>, Error> {
        let mut out = Vec::new();
        for m in self.inner.log.views() {
            let groups = self.groups_on(&m.name).await?;
            out.push(self.view_info(&m, groups)?);
        }
        Ok(out)
    }

    pub async fn describe_view(&self, name: &str) -> Result<ViewInfo, Error> {
        let m = self.view_meta(name)?;
        let groups = self.groups_on(name).await?;
        self.view_info(&m, groups)
    }

    /// The definition of view `name`, if it is one (faces route reads and
    /// topic listings by it).
    pub fn view(&self, name: &str) -> Option<Arc<ViewMeta>> {
        self.inner.log.view(name)
    }

    /// The names of every view (cheap: no offsets are loaded).
    pub fn list_view_names(&self) -> Vec<String> {
        self.inner.log.views().iter().map(|v| v.name.clone()).collect()
    }

    /// The input stream of view `name`, as described now.
    pub fn describe_view_input(&self, name: &str) -> Result<crate::log::StreamInfo, Error> {
        let m = self.view_meta(name)?;
        Ok(self.inner.log.describe_stream(&m.input)?)
    }

    /// Deletes a view. Refused while a group has offsets committed on it,
    /// unless `force`, which deletes those offsets too.
    pub async fn delete_view(&self, name: &str, force: bool) -> Result<(), Error> {
        self.view_meta(name)?;
        let groups = self.groups_on(name).await?;
        if !groups.is_empty() && !force {
            return Err(Error::new(
                ErrorKind::Conflict,
                "view_in_use",
                format!(
                    "groups {} have offsets committed on view `{name}`; delete with force to drop them too",
                    groups.join(", ")
                ),
            ));
        }
        self.inner.log.delete_view(name).await?;
        self.inner.view_instances.forget(name);
        self.delete_topic_offsets(name).await?;
        Ok(())
    }

    /// Reads view `view` like [`Host::read`] reads a stream: input records
    /// through the plugin, at most [`SCAN_STEPS`] input reads while
    /// everything is filtered out.
    pub(super) async fn read_view(
        &self,
        view: &ViewMeta,
        partition: u32,
        offset: u64,
        limits: ReadLimits,
    ) -> Result<ReadBatch, Error> {
        let (max_records, max_bytes) = self.clamp(limits);
        let version = self.inner.plugins.resolve_version(&view.plugin, view.plugin_version)?;
        let key: PoolKey = (view.name.clone(), view.created_ms, version);
        let mut instance = self.inner.view_instances.take(&key);
        let mut from = offset;
        let mut steps = 0;
        loop {
            let mut batch = self
                .inner
                .log
                .read(&view.input, partition, from, max_records, max_bytes)
                .await?;
            let input = std::mem::take(&mut batch.records);
            if input.is_empty() {
                // At the end (or a gap): nothing for the plugin to see.
                if let Some(i) = instance {
                    self.inner.view_instances.give(key, i);
                }
                return Ok(batch);
            }
            let (plugins, plugin, config) = (self.inner.plugins.clone(), view.plugin.clone(), view.config.clone());
            let (output, kept) = blocking(move || -> Result<_, Error> {
                let mut instance = match instance {
                    Some(i) => i,
                    None => plugins.transform(&plugin, Some(version))?.instantiate(&config)?,
                };
                let output = instance.transform_with_offsets(&input)?;
                Ok((output, instance))
            })
            .await??;
            batch.records = output;
            steps += 1;
            let at_end = batch.next_offset >= batch.end_offset || batch.next_offset == from;
            if !batch.records.is_empty() || at_end || steps >= SCAN_STEPS {
                self.inner.view_instances.give(key, kept);
                return Ok(batch);
            }
            instance = Some(kept);
            from = batch.next_offset;
        }
    }

    fn view_meta(&self, name: &str) -> Result<Arc<ViewMeta>, Error> {
        self.inner
            .log
            .view(name)
            .ok_or_else(|| crate::log::LogError::ViewNotFound { name: name.into() }.into())
    }

    fn view_info(&self, m: &ViewMeta, groups: Vec<String>) -> Result<ViewInfo, Error> {
        let input = self.inner.log.describe_stream(&m.input)?;
        Ok(ViewInfo {
            name: m.name.clone(),
            input: m.input.clone(),
            plugin: m.plugin.clone(),
            plugin_version: m.plugin_version,
            config: m.config.clone(),
            created_ms: m.created_ms,
            partitions: input.partitions.len() as u32,
            groups,
        })
    }

    /// The stream a read of `name` goes to: a view's input, or `name`.
    pub(super) fn source_of(&self, name: &str) -> Option<String> {
        self.inner.log.view(name).map(|v| v.input.clone())
    }
}
