//! json-filter: keeps records whose JSON value matches a condition.
//!
//! Config:
//! * `field` (required): a JSON pointer into the value, e.g. `/level` or `/user/country`.
//! * `op`: `eq` (default), `ne`, `exists`, `missing`, `contains` (string field contains text),
//!   `gt`, `lt` (numbers).
//! * `value`: the value to compare with, as JSON (`"error"`, `42`, `true`); a bare
//!   word that is not JSON is taken as a string. Not needed for `exists`/`missing`.
//! * `on_invalid`: what to do with a value that is not JSON: `drop` (default) or `fail`.
use std::sync::OnceLock;

use serde_json::Value;
use sluice_sdk::{Config, Output, Record, transform};

struct Filter {
    field: String,
    op: Op,
    value: Value,
    fail_on_invalid: bool,
}

#[derive(Clone, Copy, PartialEq)]
enum Op {
    Eq,
    Ne,
    Exists,
    Missing,
    Contains,
    Gt,
    Lt,
}

static FILTER: OnceLock<Filter> = OnceLock::new();

fn parse(config: &Config) -> Result<Filter, String> {
    let field = config.require("field")?.to_string();
    if !field.is_empty() && !field.starts_with('/') {
        return Err(format!(
            "`field` must be a JSON pointer starting with '/', got `{field}`"
        ));
    }
    let op = match config.get("op").unwrap_or("eq") {
        "eq" => Op::Eq,
        "ne" => Op::Ne,
        "exists" => Op::Exists,
        "missing" => Op::Missing,
        "contains" => Op::Contains,
        "gt" => Op::Gt,
        "lt" => Op::Lt,
        other => {
            return Err(format!(
                "unknown `op` `{other}` (eq, ne, exists, missing, contains, gt, lt)"
            ));
        }
    };
    let value = match config.get("value") {
        Some(v) => serde_json::from_str(v).unwrap_or_else(|_| Value::String(v.to_string())),
        None if matches!(op, Op::Exists | Op::Missing) => Value::Null,
        None => return Err("`value` is required for this `op`".to_string()),
    };
    if matches!(op, Op::Gt | Op::Lt) && !value.is_number() {
        return Err("`gt`/`lt` need a numeric `value`".into());
    }
    let fail_on_invalid = match config.get("on_invalid").unwrap_or("drop") {
        "drop" => false,
        "fail" => true,
        other => return Err(format!("unknown `on_invalid` `{other}` (drop, fail)")),
    };
    Ok(Filter {
        field,
        op,
        value,
        fail_on_invalid,
    })
}

fn init(config: &Config) -> Result<(), String> {
    let f = parse(config)?;
    let _ = FILTER.set(f);
    Ok(())
}

fn matches(f: &Filter, doc: &Value) -> bool {
    let found = doc.pointer(&f.field);
    match f.op {
        Op::Exists => found.is_some(),
        Op::Missing => found.is_none(),
        Op::Eq => found == Some(&f.value),
        Op::Ne => found != Some(&f.value),
        Op::Contains => match (found, &f.value) {
            (Some(Value::String(s)), Value::String(needle)) => s.contains(needle.as_str()),
            (Some(Value::Array(items)), v) => items.contains(v),
            _ => false,
        },
        Op::Gt | Op::Lt => match (found.and_then(Value::as_f64), f.value.as_f64()) {
            (Some(a), Some(b)) => {
                if f.op == Op::Gt {
                    a > b
                } else {
                    a < b
                }
            }
            _ => false,
        },
    }
}

#[transform(init = init)]
fn json_filter(record: &Record, out: &mut Output) -> Result<(), String> {
    let f = FILTER.get().ok_or("json-filter was not initialized with a config")?;
    match serde_json::from_slice::<Value>(record.value()) {
        Ok(doc) => {
            if matches(f, &doc) {
                out.keep(record);
            }
            Ok(())
        }
        Err(e) if f.fail_on_invalid => Err(format!("value is not JSON: {e}")),
        Err(_) => Ok(()),
    }
}
