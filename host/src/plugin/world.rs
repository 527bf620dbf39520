//! Which world a component implements: the export each plugin kind must
//! have, and one check that names what was found instead (another world,
//! another version of this one, or nothing).

use super::compaction::COMPACTION_EXPORT;
use super::error::PluginError;
use super::transform::{TRANSFORM_EXPORT, TRANSFORM_PREFIX};

/// How a world is recognised among a component's exports.
pub(super) struct WorldSpec {
    pub world: &'static str,
    pub export: &'static str,
    /// The export's name without a version, to tell "wrong version" apart.
    pub prefix: &'static str,
}

pub(super) const COMPACTION_WORLD: WorldSpec = WorldSpec {
    world: "compaction",
    export: COMPACTION_EXPORT,
    prefix: "sluice:plugin/compactor@",
};

/// Checks that `exports` implement `spec`'s world at the supported version;
/// the error names what was found instead (another world, another version).
pub(super) fn check_export(plugin: &str, exports: &[String], spec: &WorldSpec) -> Result<(), PluginError> {
    if exports.iter().any(|e| e == spec.export) {
        return Ok(());
    }
    if let Some(other) = exports.iter().find(|e| e.starts_with(spec.prefix)) {
        return Err(PluginError::IncompatibleVersion {
            plugin: plugin.into(),
            found: other.clone(),
            supported: spec.export,
        });
    }
    let other_world = [&TRANSFORM_WORLD, &COMPACTION_WORLD]
        .into_iter()
        .find(|w| exports.iter().any(|e| e.starts_with(w.prefix)));
    let found = match other_world {
        Some(w) => format!("the `{}` world", w.world),
        None if exports.is_empty() => "no exports".to_string(),
        None => format!("exports [{}]", exports.join(", ")),
    };
    Err(PluginError::WrongWorld {
        plugin: plugin.into(),
        expected: spec.world,
        found,
    })
}

/// How a transform plugin is recognised.
pub(super) const TRANSFORM_WORLD: WorldSpec = WorldSpec {
    world: "transform",
    export: TRANSFORM_EXPORT,
    prefix: TRANSFORM_PREFIX,
};
