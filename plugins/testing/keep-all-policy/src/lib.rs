//! A compaction policy that keeps every record; also the "wrong world" for
//! a transform pipeline.
use sluice_sdk::{Decision, Record, compaction_policy};

#[compaction_policy]
fn keep_all(_record: &Record) -> Result<Decision, String> {
    Ok(Decision::KeepAlways)
}
