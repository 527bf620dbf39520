use sluice_sdk::{Output, Record, transform};

#[transform]
fn t(record: &Record, out: &mut Output) {
    out.keep(record);
}

fn main() {}
