use sluice_sdk::{Record, transform};

#[transform]
fn t(record: &Record) -> Result<(), String> {
    let _ = record;
    Ok(())
}

fn main() {}
