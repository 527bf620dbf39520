//! A compaction policy for failure tests: the record's key is its key
//! (kept always when it has none), except that a record whose value is
//! `panic` traps the plugin and one whose value is `loop` spins forever.
use sluice_sdk::{Decision, Record, compaction_policy};

#[compaction_policy]
fn bad_policy(record: &Record) -> Result<Decision, String> {
    match record.value() {
        b"panic" => panic!("asked to panic"),
        b"loop" => {
            let mut x: u64 = 1;
            loop {
                x = std::hint::black_box(x.wrapping_mul(6364136223846793005).wrapping_add(1));
            }
        }
        b"fail" => Err("asked to fail".into()),
        _ => Ok(record.key().map_or(Decision::KeepAlways, |k| Decision::Key(k.to_vec()))),
    }
}
