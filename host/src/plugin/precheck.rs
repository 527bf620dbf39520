//! A cheap look at an uploaded component before compiling it: compiling
//! costs seconds and hundreds of times the component's size in memory, so
//! what can be refused from the bytes alone is refused first.
//!
//! Checks, in one pass over the binary without validating code:
//! * it is a component (not a core module) that parses;
//! * it imports only WASI (`wasi:*`) and Sluice's own types
//!   (`sluice:plugin/*`, types without functions): Sluice links nothing
//!   else, so anything else could never instantiate;
//! * its core modules define at most `max_functions` functions together.
//!
//! What passes still goes through wasmtime's full validation and the world
//! check; this only makes refusals cheap.

use wasmparser::{Encoding, Parser, Payload};

use super::error::PluginError;

/// What a component is made of, as far as the checks need.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Shape {
    /// Core functions defined, over all nested modules.
    pub functions: u64,
    /// Core modules, nested ones included.
    pub modules: u64,
    /// Names the component imports from the host.
    pub imports: Vec<String>,
}

/// Reads `wasm`'s [`Shape`]; an error says why it is not a component.
pub fn shape(wasm: &[u8]) -> Result<Shape, String> {
    let mut shape = Shape::default();
    // Nesting depth: 1 is the uploaded component itself.
    let mut depth = 0u32;
    for payload in Parser::new(0).parse_all(wasm) {
        match payload.map_err(|e| format!("not a valid WebAssembly component: {e}"))? {
            Payload::Version { encoding, .. } => {
                if depth == 0 && encoding == Encoding::Module {
                    return Err("a core WebAssembly module, not a component (build for wasm32-wasip2)".into());
                }
                if encoding == Encoding::Module {
                    shape.modules += 1;
                }
                depth += 1;
            }
            Payload::End(_) => depth = depth.saturating_sub(1),
            Payload::CodeSectionStart { count, .. } => shape.functions += u64::from(count),
            Payload::ComponentImportSection(reader) if depth == 1 => {
                for import in reader {
                    let import = import.map_err(|e| format!("not a valid WebAssembly component: {e}"))?;
                    shape.imports.push(import.name.name.to_string());
                }
            }
            _ => {}
        }
    }
    Ok(shape)
}

/// Refuses `wasm` (named `plugin`) when its shape is out of bounds.
pub fn check(plugin: &str, wasm: &[u8], max_functions: u32) -> Result<Shape, PluginError> {
    let invalid = |reason: String| PluginError::Invalid {
        plugin: plugin.into(),
        reason,
    };
    let shape = shape(wasm).map_err(invalid)?;
    let provided = |name: &&String| name.starts_with("wasi:") || name.starts_with("sluice:plugin/");
    if let Some(other) = shape.imports.iter().find(|name| !provided(name)) {
        return Err(invalid(format!(
            "it imports `{other}`, which Sluice does not provide (plugins may import only WASI and sluice:plugin types)"
        )));
    }
    if shape.functions > u64::from(max_functions) {
        return Err(invalid(format!(
            "it defines {} functions; plugins.max_functions allows {max_functions}",
            shape.functions
        )));
    }
    Ok(shape)
}
