use sluice_sdk::{Output, Record, transform};

#[transform]
async fn t(record: &Record, out: &mut Output) -> Result<(), String> {
    out.keep(record);
    Ok(())
}

fn main() {}
