use sluice_sdk::{Config, Decision, Output, Record, compaction_policy, transform};

fn init(config: &Config) -> Result<(), String> {
    config.require("x").map(|_| ())
}

#[transform(init = init)]
fn t(record: &Record, out: &mut Output) -> Result<(), String> {
    out.keep(record);
    Ok(())
}

mod policy {
    use super::*;

    #[compaction_policy]
    fn p(record: &Record) -> Result<Decision, std::fmt::Error> {
        Ok(record.key().map_or(Decision::KeepAlways, |k| Decision::Key(k.to_vec())))
    }
}

fn main() {}
