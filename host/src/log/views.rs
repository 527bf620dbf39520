//! View definitions on the log. A view is a named, read-only topic over one
//! input stream: readers get the input's records passed through a transform
//! plugin at read time, and nothing is stored for it. The log keeps only the
//! definition, as control entries (like streams and pipelines), so views
//! survive restarts, WAL trims and, with the object WAL, an empty data dir.
//!
//! Invariants: streams and views share one namespace (a name is never both);
//! a stream that a view reads cannot be deleted while the view exists; a
//! view's name never reaches the record path (`Log::stream` refuses it), so
//! no caller can read a view's input unfiltered by asking for the view.

use std::sync::Arc;

use serde::{Deserialize, Serialize};

use super::Log;
use super::error::LogError;
use super::meta::{self, ControlOp};
use crate::fsutil::now_ms;

/// What is durable about a view.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ViewMeta {
    pub name: String,
    /// The stream whose records the view shows.
    pub input: String,
    /// A transform plugin.
    pub plugin: String,
    /// Pinned plugin version; the latest at each read when `None`.
    pub plugin_version: Option<u32>,
    pub config: Vec<(String, String)>,
    pub created_ms: u64,
}

impl Log {
    /// Durably creates a view over an existing stream (`created_ms` is set
    /// here). The caller checks the plugin: the log does not know plugins.
    pub async fn create_view(&self, mut m: ViewMeta) -> Result<ViewMeta, LogError> {
        meta::validate_name(&m.name)?;
        let mut snap = self.admin.lock().await;
        if self.read_streams().contains_key(&m.name) {
            return Err(LogError::StreamExists { name: m.name });
        }
        if snap.views.contains_key(&m.name) {
            return Err(LogError::ViewExists { name: m.name });
        }
        if self.view(&m.input).is_some() {
            return Err(LogError::InvalidBatch(format!(
                "`{}` is a view: a view's input must be a stream",
                m.input
            )));
        }
        self.stream(&m.input)?;
        m.created_ms = now_ms();
        self.apply_control(&mut snap, &ControlOp::CreateView(m.clone())).await?;
        self.write_views().insert(m.name.clone(), Arc::new(m.clone()));
        Ok(m)
    }

    /// Durably deletes a view; returns its definition.
    pub async fn delete_view(&self, name: &str) -> Result<ViewMeta, LogError> {
        let mut snap = self.admin.lock().await;
        let Some(m) = snap.views.get(name).cloned() else {
            return Err(LogError::ViewNotFound { name: name.into() });
        };
        self.apply_control(&mut snap, &ControlOp::DeleteView { name: name.into() })
            .await?;
        self.write_views().remove(name);
        Ok(m)
    }

    /// The view named `name`, if there is one (no lock held across awaits:
    /// the read path asks this on every read).
    pub fn view(&self, name: &str) -> Option<Arc<ViewMeta>> {
        self.read_views().get(name).cloned()
    }

    /// Every view, by name.
    pub fn views(&self) -> Vec<Arc<ViewMeta>> {
        self.read_views().values().cloned().collect()
    }

    /// The views that read `stream`.
    pub(super) fn views_of(&self, stream: &str) -> Vec<String> {
        self.read_views()
            .values()
            .filter(|v| v.input == stream)
            .map(|v| v.name.clone())
            .collect()
    }

    fn read_views(&self) -> std::sync::RwLockReadGuard<'_, Views> {
        self.views.read().unwrap_or_else(|p| p.into_inner())
    }

    fn write_views(&self) -> std::sync::RwLockWriteGuard<'_, Views> {
        self.views.write().unwrap_or_else(|p| p.into_inner())
    }
}

/// The views of a log, by name (a mirror of the snapshot's, readable without
/// the admin lock).
pub(super) type Views = std::collections::BTreeMap<String, Arc<ViewMeta>>;

/// The mirror of `snap`'s views.
pub(super) fn from_snapshot(snap: &meta::Snapshot) -> Views {
    snap.views
        .iter()
        .map(|(n, m)| (n.clone(), Arc::new(m.clone())))
        .collect()
}
