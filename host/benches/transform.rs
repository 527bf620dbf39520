//! Benchmark of transform plugins against native code (being written).
fn main() {}
