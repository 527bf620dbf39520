//! # sluice-sdk: Sluice plugins as plain Rust functions
//!
//! A plugin is a `cdylib` crate built with
//! `cargo build --release --target wasm32-wasip2`; the `.wasm` it produces is
//! uploaded to Sluice (`PUT /plugins/{name}`).
//!
//! ```ignore
//! use sluice_sdk::{transform, Output, Record};
//!
//! /// Keeps records whose value mentions "error", upper-cased.
//! #[transform]
//! fn errors_only(record: &Record, out: &mut Output) -> Result<(), String> {
//!     if record.value().windows(5).any(|w| w == b"error") {
//!         out.emit(record.key(), &record.value().to_ascii_uppercase(), &[])?;
//!     }
//!     Ok(())
//! }
//! ```
//!
//! * `#[transform]` — `fn(&Record, &mut Output) -> Result<(), E>`: for each
//!   input record push zero (filter), one (map) or many (fan-out) records.
//!   An `Err` fails the whole batch, which Sluice then does not write.
//! * `#[compaction_policy]` — `fn(&Record) -> Result<Decision, E>`.
//! * Both take `init = my_init`, a `fn(&Config) -> Result<(), E>` called once
//!   with the configuration before any record; [`config`] also returns it.
//!
//! `E` is any type that implements `Display`. Records are views into the
//! batch Sluice sent: reading them copies nothing.

use std::fmt::Display;
use std::sync::OnceLock;

pub mod json_pointer;

pub use sluice_sdk_macros::{compaction_policy, transform};
pub use sluice_wire::{HeaderIter, Headers, NullableHeaderIter};

/// A record of the input batch.
#[derive(Debug, Clone, Copy)]
pub struct Record<'a> {
    offset: u64,
    view: sluice_wire::RecordView<'a>,
}

impl<'a> Record<'a> {
    /// Offset in the input stream.
    pub fn offset(&self) -> u64 {
        self.offset
    }
    /// Milliseconds since the Unix epoch.
    pub fn timestamp_ms(&self) -> u64 {
        self.view.timestamp_ms
    }
    pub fn key(&self) -> Option<&'a [u8]> {
        self.view.key
    }
    pub fn value(&self) -> &'a [u8] {
        self.view.value
    }
    /// The value as UTF-8 text, if it is.
    pub fn value_str(&self) -> Option<&'a str> {
        std::str::from_utf8(self.view.value).ok()
    }
    pub fn headers(&self) -> Headers<'a> {
        self.view.headers()
    }
    /// The first header with this name.
    pub fn header(&self, name: &str) -> Option<&'a [u8]> {
        self.view.headers().get(name)
    }
}

/// Where a transform puts its output records.
#[derive(Debug, Default)]
pub struct Output {
    batch: sluice_wire::BatchWriter,
    offset: u64,
}

/// A problem building an output record (a field too long for the encoding).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutputError(String);

impl Display for OutputError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for OutputError {}

impl Output {
    /// Passes `record` through unchanged (copies its encoded bytes once).
    pub fn keep(&mut self, record: &Record<'_>) {
        // A record that was decoded fits the encoding, so this cannot fail.
        let _ = self.batch.push_raw(self.offset, &record.view);
    }

    /// Emits a new record with the input record's timestamp.
    pub fn emit(&mut self, key: Option<&[u8]>, value: &[u8], headers: &[(&str, &[u8])]) -> Result<(), OutputError> {
        let ts = CURRENT_TS.with(|c| c.get());
        self.emit_at(ts, key, value, headers)
    }

    /// Emits a new record with an explicit timestamp (ms since the epoch).
    pub fn emit_at(
        &mut self,
        timestamp_ms: u64,
        key: Option<&[u8]>,
        value: &[u8],
        headers: &[(&str, &[u8])],
    ) -> Result<(), OutputError> {
        self.batch
            .push(self.offset, timestamp_ms, key, value, headers.iter().copied())
            .map_err(|e| OutputError(e.to_string()))
    }

    /// Records emitted so far.
    pub fn len(&self) -> usize {
        self.batch.len() as usize
    }

    pub fn is_empty(&self) -> bool {
        self.batch.is_empty()
    }
}

std::thread_local! {
    static CURRENT_TS: std::cell::Cell<u64> = const { std::cell::Cell::new(0) };
}

/// What compaction does with a record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    /// Never removed by compaction.
    KeepAlways,
    /// Only the latest record with this key is kept.
    Key(Vec<u8>),
    /// Deletes the key; the tombstone itself goes after `delete_retention`.
    Tombstone(Vec<u8>),
    /// Removed at the next compaction.
    Drop,
}

/// Configuration given to the plugin (key/value pairs, in order).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Config {
    pairs: Vec<(String, String)>,
}

impl Config {
    pub fn new(pairs: Vec<(String, String)>) -> Self {
        Config { pairs }
    }
    /// The last value given for `name`.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.pairs
            .iter()
            .rev()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }
    /// The value for `name`, or an error message naming it.
    pub fn require(&self, name: &str) -> Result<&str, String> {
        self.get(name)
            .ok_or_else(|| format!("missing required config `{name}`"))
    }
    pub fn iter(&self) -> impl Iterator<Item = (&str, &str)> {
        self.pairs.iter().map(|(k, v)| (k.as_str(), v.as_str()))
    }
}

static CONFIG: OnceLock<Config> = OnceLock::new();

/// The configuration this instance was initialized with (empty before init).
pub fn config() -> &'static Config {
    static EMPTY: OnceLock<Config> = OnceLock::new();
    CONFIG.get().unwrap_or_else(|| EMPTY.get_or_init(Config::default))
}

/// Runs a transform over a decoded batch; used by the macro and by tests.
pub fn run_transform_on<E: Display>(
    batch: &[u8],
    f: impl Fn(&Record<'_>, &mut Output) -> Result<(), E>,
) -> Result<Vec<u8>, String> {
    let records = sluice_wire::decode_batch(batch).map_err(|e| format!("bad input batch: {e}"))?;
    let mut out = Output {
        batch: sluice_wire::BatchWriter::with_capacity(batch.len()),
        offset: 0,
    };
    for r in &records {
        let rec = Record {
            offset: r.offset,
            view: r.record,
        };
        out.offset = r.offset;
        CURRENT_TS.with(|c| c.set(r.record.timestamp_ms));
        f(&rec, &mut out).map_err(|e| format!("record at offset {}: {e}", r.offset))?;
    }
    Ok(out.batch.finish())
}

/// Runs a compaction policy over a decoded batch; used by the macro and tests.
pub fn run_policy_on<E: Display>(
    batch: &[u8],
    f: impl Fn(&Record<'_>) -> Result<Decision, E>,
) -> Result<Vec<Decision>, String> {
    let records = sluice_wire::decode_batch(batch).map_err(|e| format!("bad input batch: {e}"))?;
    records
        .iter()
        .map(|r| {
            let rec = Record {
                offset: r.offset,
                view: r.record,
            };
            f(&rec).map_err(|e| format!("record at offset {}: {e}", r.offset))
        })
        .collect()
}

#[doc(hidden)]
pub mod __private {
    use super::*;

    pub mod transform_bindings {
        wit_bindgen::generate!({
            path: "../wit",
            world: "transform",
            pub_export_macro: true,
            export_macro_name: "__export_transform",
            default_bindings_module: "::sluice_sdk::__private::transform_bindings",
        });
    }

    pub mod compaction_bindings {
        wit_bindgen::generate!({
            path: "../wit",
            world: "compaction",
            pub_export_macro: true,
            export_macro_name: "__export_compaction",
            default_bindings_module: "::sluice_sdk::__private::compaction_bindings",
        });
    }

    use compaction_bindings::exports::sluice::plugin::compactor::Decision as WitDecision;

    /// A plugin's `init = ...` hook, with its error already turned into text.
    pub type InitHook = fn(&Config) -> Result<(), String>;

    pub fn init(pairs: Vec<(String, String)>, hook: Option<InitHook>) -> Result<(), String> {
        let config = Config::new(pairs);
        if let Some(h) = hook {
            h(&config)?;
        }
        // A second init (the host re-initializes only fresh instances) keeps the first.
        let _ = CONFIG.set(config);
        Ok(())
    }

    pub fn run_transform<E: Display>(
        batch: &[u8],
        f: impl Fn(&Record<'_>, &mut Output) -> Result<(), E>,
    ) -> Result<Vec<u8>, String> {
        run_transform_on(batch, f)
    }

    pub fn run_decide<E: Display>(
        batch: &[u8],
        f: impl Fn(&Record<'_>) -> Result<Decision, E>,
    ) -> Result<Vec<WitDecision>, String> {
        Ok(run_policy_on(batch, f)?
            .into_iter()
            .map(|d| match d {
                Decision::KeepAlways => WitDecision::KeepAlways,
                Decision::Key(k) => WitDecision::Key(k),
                Decision::Tombstone(k) => WitDecision::Tombstone(k),
                Decision::Drop => WitDecision::Drop,
            })
            .collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn batch() -> Vec<u8> {
        let mut w = sluice_wire::BatchWriter::default();
        w.push(10, 5, Some(b"k1"), b"hello", [("h", &b"x"[..])]).unwrap();
        w.push(11, 6, None, b"world", []).unwrap();
        w.finish()
    }

    #[test]
    fn transform_can_filter_map_and_fan_out() {
        let out = run_transform_on(&batch(), |r, out| -> Result<(), String> {
            if r.offset() == 10 {
                out.keep(r);
                out.emit(Some(b"extra"), &r.value().to_ascii_uppercase(), &[("n", b"1")])
                    .map_err(|e| e.to_string())?;
            }
            Ok(())
        })
        .unwrap();
        let got = sluice_wire::decode_batch(&out).unwrap();
        assert_eq!(got.len(), 2);
        assert_eq!(got[0].record.value, b"hello");
        assert_eq!(got[0].record.headers().get("h"), Some(&b"x"[..]));
        assert_eq!(got[1].record.value, b"HELLO");
        assert_eq!(got[1].record.timestamp_ms, 5, "emit keeps the input timestamp");
    }

    #[test]
    fn errors_name_the_record() {
        let err = run_transform_on(&batch(), |r, _| if r.offset() == 11 { Err("boom") } else { Ok(()) }).unwrap_err();
        assert_eq!(err, "record at offset 11: boom");
        assert!(
            run_transform_on(&[1, 2, 3], |_, _| Ok::<(), String>(()))
                .unwrap_err()
                .starts_with("bad input batch")
        );
    }

    #[test]
    fn policy_decides_per_record() {
        let d = run_policy_on(&batch(), |r| {
            Ok::<_, String>(match r.key() {
                Some(k) => Decision::Key(k.to_vec()),
                None => Decision::KeepAlways,
            })
        })
        .unwrap();
        assert_eq!(d, vec![Decision::Key(b"k1".to_vec()), Decision::KeepAlways]);
    }

    #[test]
    fn config_lookup() {
        let c = Config::new(vec![("a".into(), "1".into()), ("a".into(), "2".into())]);
        assert_eq!(c.get("a"), Some("2"));
        assert!(c.require("b").unwrap_err().contains("`b`"));
    }
}
