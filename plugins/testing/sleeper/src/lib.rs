//! Sleeps in WASI (`wasi:clocks` + `wasi:io/poll`) on a record whose value
//! is `sleep` (an hour) or `nap` (10 ms, then keeps it); passes others through.
use std::time::Duration;

use sluice_sdk::{Output, Record, transform};

#[transform]
fn sleeper(record: &Record, out: &mut Output) -> Result<(), String> {
    match record.value() {
        b"sleep" => std::thread::sleep(Duration::from_secs(3600)),
        b"nap" => std::thread::sleep(Duration::from_millis(10)),
        _ => {}
    }
    out.keep(record);
    Ok(())
}
