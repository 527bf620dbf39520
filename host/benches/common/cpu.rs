//! CPU time of the bench process, for benches that report CPU per
//! operation beside wall time.

/// This process's CPU time (user + system) in seconds, from `/proc` (10 ms
/// ticks: measure enough work).
pub fn process_cpu_seconds() -> f64 {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    // The fields after the command name (which is in parentheses): utime
    // and stime, fields 14 and 15 of the line, are 12th and 13th here.
    let rest = stat.rsplit_once(')').map_or("", |(_, r)| r);
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let ticks = |i: usize| fields.get(i).and_then(|f| f.parse::<f64>().ok()).unwrap_or(0.0);
    (ticks(11) + ticks(12)) / 100.0
}
