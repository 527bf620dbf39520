//! Upper-cases every value; records whose value is `drop` are filtered out.
use sluice_sdk::{Output, Record, transform};

#[transform]
fn upper(record: &Record, out: &mut Output) -> Result<(), String> {
    if record.value() == b"drop" {
        return Ok(());
    }
    let headers: Vec<(&str, &[u8])> = record.headers().iter().collect();
    out.emit(record.key(), &record.value().to_ascii_uppercase(), &headers)
        .map_err(|e| e.to_string())
}
