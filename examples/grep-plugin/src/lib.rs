//! The example plugin of `guest-sdk/README.md`, built and tested for real:
//! keeps records whose value contains the configured `needle`, upper-cased.
//!
//! Build: `cargo build --release --target wasm32-wasip2` (from `plugins/`,
//! whose workspace this crate belongs to).

use sluice_sdk::{Config, Output, Record, transform};

fn init(config: &Config) -> Result<(), String> {
    config.require("needle").map(|_| ()) // refuse a config without it
}

/// Keeps records whose value contains `needle`, upper-cased.
#[transform(init = init)]
fn grep(record: &Record, out: &mut Output) -> Result<(), String> {
    let needle = sluice_sdk::config().get("needle").unwrap_or_default();
    if record.value_str().is_some_and(|v| v.contains(needle)) {
        out.emit(record.key(), &record.value().to_ascii_uppercase(), &[])
            .map_err(|e| e.to_string())?;
    }
    Ok(())
}
