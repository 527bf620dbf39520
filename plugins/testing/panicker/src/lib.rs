//! Panics on a record whose value is `panic`, returns an error on `fail`,
//! and refuses a config with `refuse = yes`.
use sluice_sdk::{Config, Output, Record, transform};

fn init(config: &Config) -> Result<(), String> {
    match config.get("refuse") {
        Some("yes") => Err("refusing this config as asked".into()),
        _ => Ok(()),
    }
}

#[transform(init = init)]
fn panicker(record: &Record, out: &mut Output) -> Result<(), String> {
    match record.value() {
        b"panic" => panic!("asked to panic"),
        b"fail" => Err("asked to fail".into()),
        _ => {
            out.keep(record);
            Ok(())
        }
    }
}
