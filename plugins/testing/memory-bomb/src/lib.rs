//! Allocates 1 MiB blocks forever on a record whose value is `bomb`.
use sluice_sdk::{Output, Record, transform};

#[transform]
fn bomb(record: &Record, out: &mut Output) -> Result<(), String> {
    if record.value() == b"bomb" {
        let mut hoard: Vec<Vec<u8>> = Vec::new();
        loop {
            hoard.push(std::hint::black_box(vec![1u8; 1 << 20]));
        }
    }
    out.keep(record);
    Ok(())
}
