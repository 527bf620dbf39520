//! Spins forever on a record whose value is `loop`; passes others through.
use sluice_sdk::{Output, Record, transform};

#[transform]
fn looper(record: &Record, out: &mut Output) -> Result<(), String> {
    if record.value() == b"loop" {
        let mut x: u64 = 1;
        loop {
            x = std::hint::black_box(x.wrapping_mul(6364136223846793005).wrapping_add(1));
        }
    }
    out.keep(record);
    Ok(())
}
