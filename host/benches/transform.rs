//! Benchmark of transform plugins (`upper`, `json-filter`) running in Wasm
//! against the same logic compiled natively, in the same process and run.
//!
//! Run with `cargo bench -p sluice-host --bench transform`. Set
//! `SLUICE_BENCH_QUICK=1` for a fast smoke run (~0.2 s per measurement
//! instead of ~1 s).
//!
//! For each plugin, batch size (1, 100, 1000 records) and value size (100 B,
//! 1 KiB) it measures, per input record:
//!
//! * **wasm call**: `TransformInstance::call(&encoded)`, an already encoded
//!   plugin batch in, the encoded output batch back: the Wasm boundary (copy
//!   in, copy out, canonical ABI) plus the guest's decode, logic and encode.
//! * **wasm e2e**: `TransformInstance::transform(&records)`, which also
//!   encodes `OffsetRecord`s and decodes the output into `Record`s on the host.
//! * **native**: the same logic as plain Rust, doing the same work per batch
//!   as the guest: `sluice_wire::decode_batch`, the logic, a
//!   `sluice_wire::BatchWriter` for the output (what `sluice_sdk`'s
//!   `run_transform_on` does inside the plugin).
//! * **native e2e**: `encode_input` + native + `decode_output`, the
//!   counterpart of wasm e2e.
//!
//! `SLUICE_BENCH_UPPER_WASM` / `SLUICE_BENCH_JSON_FILTER_WASM` replace the
//! plugin files from `sluice-test-artifacts` (e.g. a build with other flags).
//!
//! `SLUICE_BENCH_FILTER=upper/1000/1024` runs only the configurations whose
//! `plugin/batch/value-bytes` label contains that text.
//!
//! Each measurement warms up, then runs for a fixed time split into samples;
//! the table shows the median sample. Before timing, the Wasm and native
//! outputs are checked to be byte-identical.

use std::hint::black_box;
use std::time::{Duration, Instant};

use anyhow::{Context, ensure};
use bytes::Bytes;
use serde_json::Value;
use sluice_host::bench::{Limits, Runtime, TransformInstance, TransformPlugin, decode_output, encode_input};
use sluice_host::{OffsetRecord, Record};
use sluice_wire::BatchWriter;

const BATCH_SIZES: [usize; 3] = [1, 100, 1000];
const VALUE_SIZES: [usize; 2] = [100, 1024];

struct Settings {
    warmup: Duration,
    /// Total measured time of one measurement, split into `samples`.
    time: Duration,
    samples: u32,
}

impl Settings {
    fn from_env() -> (Settings, bool) {
        let quick = std::env::var("SLUICE_BENCH_QUICK").is_ok_and(|v| !v.is_empty() && v != "0");
        let settings = if quick {
            Settings {
                warmup: Duration::from_millis(30),
                time: Duration::from_millis(200),
                samples: 8,
            }
        } else {
            Settings {
                warmup: Duration::from_millis(100),
                time: Duration::from_secs(1),
                samples: 20,
            }
        };
        (settings, quick)
    }
}

/// Nanoseconds per call of one measurement (over its samples).
#[derive(Debug, Clone, Copy)]
struct Stat {
    median: f64,
    min: f64,
    max: f64,
}

impl Stat {
    fn per_record(self, records: usize) -> Stat {
        let n = records.max(1) as f64;
        Stat {
            median: self.median / n,
            min: self.min / n,
            max: self.max / n,
        }
    }
}

/// Measures `variants` alternatives of one configuration; `f(v)` runs
/// variant `v` once. Each variant is warmed up, then the variants are timed
/// in turns, one sample of `settings.time / settings.samples` each, so a
/// burst of background load on the machine hits all of them alike. The clock
/// is read once per chunk of calls (~1 ms), not per call. Returns ns per
/// call for each variant.
fn measure(settings: &Settings, variants: usize, mut f: impl FnMut(usize)) -> Vec<Stat> {
    let chunks: Vec<u64> = (0..variants)
        .map(|v| {
            let start = Instant::now();
            let mut calls = 0u64;
            while start.elapsed() < settings.warmup {
                f(v);
                calls += 1;
            }
            let per_call = start.elapsed().as_secs_f64() / calls as f64;
            ((1e-3 / per_call) as u64).max(1)
        })
        .collect();
    let sample_time = settings.time / settings.samples;
    let mut samples = vec![Vec::with_capacity(settings.samples as usize); variants];
    for _ in 0..settings.samples {
        for (v, &chunk) in chunks.iter().enumerate() {
            let t0 = Instant::now();
            let mut calls = 0u64;
            loop {
                for _ in 0..chunk {
                    f(v);
                }
                calls += chunk;
                if t0.elapsed() >= sample_time {
                    break;
                }
            }
            samples[v].push(t0.elapsed().as_nanos() as f64 / calls as f64);
        }
    }
    samples
        .into_iter()
        .map(|mut s| {
            s.sort_by(f64::total_cmp);
            Stat {
                median: s[s.len() / 2],
                min: s[0],
                max: s[s.len() - 1],
            }
        })
        .collect()
}

// ---------------------------------------------------------------------------
// Native equivalents of the plugins, batch in / batch out like the guest.

/// `plugins/testing/upper`: upper-cases values, keeps key, headers and
/// timestamp, drops records whose value is `drop`.
fn native_upper(batch: &[u8]) -> Vec<u8> {
    let records = sluice_wire::decode_batch(batch).expect("valid batch");
    let mut out = BatchWriter::with_capacity(batch.len());
    for r in &records {
        let rec = &r.record;
        if rec.value == b"drop" {
            continue;
        }
        let headers: Vec<(&str, &[u8])> = rec.headers().iter().collect();
        out.push(
            r.offset,
            rec.timestamp_ms,
            rec.key,
            &rec.value.to_ascii_uppercase(),
            headers.iter().copied(),
        )
        .expect("fits the encoding");
    }
    out.finish()
}

/// `plugins/json-filter` with `field=/level`, `value=error` (op `eq`,
/// invalid JSON dropped): keeps matching records unchanged.
fn native_json_filter(batch: &[u8], field: &str, want: &Value) -> Vec<u8> {
    let records = sluice_wire::decode_batch(batch).expect("valid batch");
    let mut out = BatchWriter::with_capacity(batch.len());
    for r in &records {
        if let Ok(doc) = serde_json::from_slice::<Value>(r.record.value)
            && doc.pointer(field) == Some(want)
        {
            out.push_raw(r.offset, &r.record).expect("fits the encoding");
        }
    }
    out.finish()
}

/// Codec only: decode the batch and copy every record through (no logic).
fn native_passthrough(batch: &[u8]) -> Vec<u8> {
    let records = sluice_wire::decode_batch(batch).expect("valid batch");
    let mut out = BatchWriter::with_capacity(batch.len());
    for r in &records {
        out.push_raw(r.offset, &r.record).expect("fits the encoding");
    }
    out.finish()
}

// ---------------------------------------------------------------------------

#[derive(Clone, Copy, PartialEq)]
enum Kind {
    Upper,
    JsonFilter,
}

impl Kind {
    fn name(self) -> &'static str {
        match self {
            Kind::Upper => "upper",
            Kind::JsonFilter => "json-filter",
        }
    }
}

struct Plugin {
    kind: Kind,
    instance: TransformInstance,
    /// json-filter's `value`, parsed once like the plugin's `init` does.
    want: Value,
}

impl Plugin {
    fn native(&self, batch: &[u8]) -> Vec<u8> {
        match self.kind {
            Kind::Upper => native_upper(batch),
            Kind::JsonFilter => native_json_filter(batch, "/level", &self.want),
        }
    }
}

/// A JSON-ish value of exactly `size` bytes; level `error` or `info`.
fn make_value(size: usize, error: bool, seed: usize) -> Vec<u8> {
    const FILLER: &[u8] = b"lorem ipsum dolor sit amet consectetur adipiscing elit ";
    let head: &[u8] = if error {
        br#"{"level":"error","msg":""#
    } else {
        br#"{"level":"info","msg":""#
    };
    let tail = br#""}"#;
    assert!(size >= head.len() + tail.len());
    let mut v = Vec::with_capacity(size);
    v.extend_from_slice(head);
    let pad = size - head.len() - tail.len();
    v.extend((0..pad).map(|i| FILLER[(i + seed) % FILLER.len()]));
    v.extend_from_slice(tail);
    debug_assert_eq!(v.len(), size);
    v
}

/// `n` records with a key, one header and values of `size` bytes; every
/// other record has level `error`.
fn make_records(n: usize, size: usize) -> Vec<OffsetRecord> {
    (0..n)
        .map(|i| OffsetRecord {
            offset: 1_000 + i as u64,
            record: Record {
                key: Some(Bytes::from(format!("key-{i:06}"))),
                value: Some(Bytes::from(make_value(size, i % 2 == 0, i))),
                headers: vec![("source".to_string(), Some(Bytes::from_static(b"bench")))],
                timestamp_ms: 1_700_000_000_000 + i as u64,
            },
        })
        .collect()
}

struct Row {
    plugin: &'static str,
    batch: usize,
    value: usize,
    out_records: usize,
    wasm_call: Stat,
    wasm_e2e: Stat,
    native: Stat,
    native_e2e: Stat,
}

fn main() -> anyhow::Result<()> {
    let (settings, quick) = Settings::from_env();
    // Only configurations whose `plugin/batch/value` label contains this
    // text, e.g. `upper/1000/1024` (for profiling one configuration).
    let filter = std::env::var("SLUICE_BENCH_FILTER").ok().filter(|f| !f.is_empty());
    let filter = filter.as_ref();
    println!(
        "# Transform plugins vs native{}",
        if quick { " (QUICK mode)" } else { "" }
    );
    println!();
    let runtime = Runtime::new(Limits::default()).context("create runtime")?;
    let load = |kind: Kind, path: &str, config: &[(&str, &str)]| -> anyhow::Result<Plugin> {
        // A differently built plugin (other flags, other toolchain) can be
        // compared by pointing SLUICE_BENCH_UPPER_WASM / ..._JSON_FILTER_WASM at it.
        let var = format!("SLUICE_BENCH_{}_WASM", kind.name().replace('-', "_").to_uppercase());
        let path = std::env::var(&var).unwrap_or_else(|_| path.to_string());
        println!("plugin {}: {path}", kind.name());
        let wasm = sluice_test_artifacts::read(&path);
        let plugin = TransformPlugin::load(&runtime, kind.name(), &wasm).context("load plugin")?;
        let config: Vec<(String, String)> = config.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        let instance = plugin.instantiate(&config).context("instantiate plugin")?;
        Ok(Plugin {
            kind,
            instance,
            want: Value::String("error".into()),
        })
    };
    let mut plugins = vec![
        load(Kind::Upper, sluice_test_artifacts::UPPER, &[])?,
        load(
            Kind::JsonFilter,
            sluice_test_artifacts::JSON_FILTER,
            &[("field", "/level"), ("value", "error")],
        )?,
    ];

    println!(
        "warm-up {} ms, then {} ms per measurement in {} interleaved samples (median shown)",
        settings.warmup.as_millis(),
        settings.time.as_millis(),
        settings.samples
    );
    println!("load average at start: {}", load_average());
    println!();

    // Fixed cost per call: an empty batch (4 bytes).
    let empty = BatchWriter::default().finish();
    println!("## Fixed cost per call (empty batch)");
    println!();
    println!("| plugin | wasm call ns/call | native ns/call |");
    println!("|---|---:|---:|");
    for p in &mut plugins {
        let stats = measure(&settings, 2, |v| match v {
            0 => drop(black_box(p.instance.call(black_box(&empty)).expect("plugin call"))),
            _ => drop(black_box(p.native(black_box(&empty)))),
        });
        println!(
            "| {} | {:.0} | {:.0} |",
            p.kind.name(),
            stats[0].median,
            stats[1].median
        );
    }
    println!();

    let mut rows = Vec::new();
    let mut codec = Vec::new();
    for p in &mut plugins {
        for &batch in &BATCH_SIZES {
            for &value in &VALUE_SIZES {
                if !filter.is_none_or(|f| format!("{}/{batch}/{value}", p.kind.name()).contains(f.as_str())) {
                    continue;
                }
                let records = make_records(batch, value);
                let encoded = encode_input(&records)?;

                // Same bytes from the plugin and from the native code.
                let from_wasm = p.instance.call(&encoded)?;
                let from_native = p.native(&encoded);
                ensure!(
                    from_wasm == from_native,
                    "{}: wasm and native outputs differ (batch {batch}, value {value})",
                    p.kind.name()
                );
                let out_records = sluice_wire::decode_batch(&from_native)?.len();
                let expected = match p.kind {
                    Kind::Upper => batch,
                    Kind::JsonFilter => batch.div_ceil(2),
                };
                ensure!(out_records == expected, "{}: {out_records} records out", p.kind.name());

                let stats = measure(&settings, 4, |v| match v {
                    0 => drop(black_box(p.instance.call(black_box(&encoded)).expect("plugin call"))),
                    1 => drop(black_box(
                        p.instance.transform(black_box(&records)).expect("plugin transform"),
                    )),
                    2 => drop(black_box(p.native(black_box(&encoded)))),
                    _ => {
                        let input = encode_input(black_box(&records)).expect("encode");
                        let output = Bytes::from(p.native(&input));
                        drop(black_box(decode_output(&output).expect("decode")));
                    }
                });
                let [wasm_call, wasm_e2e, native, native_e2e] = stats[..] else {
                    unreachable!("four variants")
                };
                let row = Row {
                    plugin: p.kind.name(),
                    batch,
                    value,
                    out_records,
                    wasm_call: wasm_call.per_record(batch),
                    wasm_e2e: wasm_e2e.per_record(batch),
                    native: native.per_record(batch),
                    native_e2e: native_e2e.per_record(batch),
                };
                eprintln!(
                    "{} batch {} value {}: wasm call {:.1} [{:.1}..{:.1}], wasm e2e {:.1} [{:.1}..{:.1}], \
                     native {:.1} [{:.1}..{:.1}], native e2e {:.1} [{:.1}..{:.1}] ns/record",
                    row.plugin,
                    batch,
                    value,
                    row.wasm_call.median,
                    row.wasm_call.min,
                    row.wasm_call.max,
                    row.wasm_e2e.median,
                    row.wasm_e2e.min,
                    row.wasm_e2e.max,
                    row.native.median,
                    row.native.min,
                    row.native.max,
                    row.native_e2e.median,
                    row.native_e2e.min,
                    row.native_e2e.max,
                );
                rows.push(row);

                if p.kind == Kind::Upper {
                    // Plugin-independent parts, measured natively once per shape.
                    // Variant 1 is what the boundary copies: the input batch
                    // into guest memory and an output batch of about the same
                    // size back.
                    let stats = measure(&settings, 2, |v| match v {
                        0 => drop(black_box(native_passthrough(black_box(&encoded)))),
                        _ => {
                            let a = black_box(&encoded[..]).to_vec();
                            let b = black_box(&a[..]).to_vec();
                            drop(black_box((a, b)));
                        }
                    });
                    let [passthrough, copy] = stats[..] else {
                        unreachable!("two variants")
                    };
                    codec.push((
                        batch,
                        value,
                        encoded.len(),
                        passthrough.per_record(batch),
                        copy.per_record(batch),
                    ));
                }
            }
        }
    }

    println!("## Throughput per input record");
    println!();
    println!(
        "| plugin | batch | value | out/in | wasm call ns/rec | wasm e2e ns/rec | native ns/rec | native e2e ns/rec \
         | native/wasm (call) | native/wasm (e2e) | wasm call rec/s | native rec/s |"
    );
    println!("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|");
    for r in &rows {
        println!(
            "| {} | {} | {} | {}/{} | {:.1} | {:.1} | {:.1} | {:.1} | {:.2} | {:.2} | {} | {} |",
            r.plugin,
            r.batch,
            size_label(r.value),
            r.out_records,
            r.batch,
            r.wasm_call.median,
            r.wasm_e2e.median,
            r.native.median,
            r.native_e2e.median,
            r.native.median / r.wasm_call.median,
            r.native_e2e.median / r.wasm_e2e.median,
            rate(r.wasm_call.median),
            rate(r.native.median),
        );
    }
    println!();
    println!("Target: Wasm at least 1/3 of native per record at batch 1000 (native/wasm >= 0.33).");
    println!();
    for r in rows.iter().filter(|r| r.batch == 1000) {
        let verdict = |ratio: f64| if ratio >= 1.0 / 3.0 { "met" } else { "NOT met" };
        println!(
            "- {} {}: call {:.2} ({}), end-to-end {:.2} ({})",
            r.plugin,
            size_label(r.value),
            r.native.median / r.wasm_call.median,
            verdict(r.native.median / r.wasm_call.median),
            r.native_e2e.median / r.wasm_e2e.median,
            verdict(r.native_e2e.median / r.wasm_e2e.median),
        );
    }
    println!();
    println!("## Native reference costs (no plugin logic)");
    println!();
    println!("| batch | value | batch bytes | decode + copy-through ns/rec | memcpy in + out ns/rec |");
    println!("|---:|---:|---:|---:|---:|");
    for (batch, value, bytes, passthrough, copy) in &codec {
        println!(
            "| {} | {} | {} | {:.1} | {:.1} |",
            batch,
            size_label(*value),
            bytes,
            passthrough.median,
            copy.median
        );
    }
    println!();
    println!("load average at end: {}", load_average());
    Ok(())
}

fn size_label(bytes: usize) -> String {
    if bytes.is_multiple_of(1024) {
        format!("{} KiB", bytes / 1024)
    } else {
        format!("{bytes} B")
    }
}

/// Records per second for a cost in ns per record, human-readable.
fn rate(ns_per_record: f64) -> String {
    let per_s = 1e9 / ns_per_record;
    if per_s >= 1e6 {
        format!("{:.2} M", per_s / 1e6)
    } else {
        format!("{:.0} k", per_s / 1e3)
    }
}

/// `/proc/loadavg` (1, 5, 15 minutes), to tell a busy machine from an idle one.
fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|s| s.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_else(|_| "unknown".into())
}
