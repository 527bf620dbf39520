//! Rendering for people and scripts: plain aligned tables, JSON output,
//! small formatting helpers, and progress bars (only on a terminal).

use std::io::{IsTerminal, Write};

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use serde_json::Value;

use super::error::ClientError;

/// A table with a header row; columns are padded to their widest cell.
pub struct Table {
    header: Vec<String>,
    rows: Vec<Vec<String>>,
}

impl Table {
    pub fn new(header: &[&str]) -> Table {
        Table {
            header: header.iter().map(|h| h.to_string()).collect(),
            rows: Vec::new(),
        }
    }

    pub fn row(&mut self, cells: Vec<String>) {
        self.rows.push(cells);
    }

    pub fn render(&self) -> String {
        let n = self.header.len();
        let mut widths: Vec<usize> = self.header.iter().map(|h| h.chars().count()).collect();
        for r in &self.rows {
            for (i, c) in r.iter().enumerate().take(n) {
                widths[i] = widths[i].max(c.chars().count());
            }
        }
        let mut out = String::new();
        for r in std::iter::once(&self.header).chain(&self.rows) {
            let mut line = String::new();
            for (i, c) in r.iter().enumerate().take(n) {
                if i + 1 == n {
                    line.push_str(c);
                } else {
                    line.push_str(&format!("{c:<w$}  ", w = widths[i]));
                }
            }
            out.push_str(line.trim_end());
            out.push('\n');
        }
        out
    }
}

/// Writes `text` to stdout (a closed pipe is not an error worth a message).
pub fn print(text: &str) -> Result<(), ClientError> {
    let mut out = std::io::stdout().lock();
    match out.write_all(text.as_bytes()).and_then(|()| out.flush()) {
        Err(e) if e.kind() != std::io::ErrorKind::BrokenPipe => Err(ClientError::Io {
            what: "cannot write to stdout",
            source: e,
        }),
        _ => Ok(()),
    }
}

/// Pretty JSON and a newline.
pub fn print_json(v: &Value) -> Result<(), ClientError> {
    let text = serde_json::to_string_pretty(v).unwrap_or_else(|_| v.to_string());
    print(&format!("{text}\n"))
}

/// A JSON field as text: strings bare, `null`/missing as `-`.
pub fn cell(v: &Value) -> String {
    match v {
        Value::Null => "-".to_string(),
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// A byte count like `1.5 MiB`.
pub fn bytes(n: u64) -> String {
    bytesize::ByteSize::b(n).display().iec().to_string()
}

/// Milliseconds since the epoch as `YYYY-MM-DD HH:MM:SS` UTC.
pub fn time_ms(v: &Value) -> String {
    let Some(ms) = v.as_u64() else {
        return "-".to_string();
    };
    let secs = ms / 1000;
    let (days, rem) = (secs / 86_400, secs % 86_400);
    let (y, m, d) = civil_from_days(days as i64);
    format!(
        "{y:04}-{m:02}-{d:02} {:02}:{:02}:{:02}",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

/// Days since 1970-01-01 to a proleptic Gregorian date (H. Hinnant's algorithm).
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d)
}

/// A progress bar on stderr when it is a terminal, hidden otherwise.
/// `total` is in bytes when `in_bytes`, else in records; `None` is a spinner.
pub fn progress(total: Option<u64>, in_bytes: bool, what: &str) -> ProgressBar {
    if !std::io::stderr().is_terminal() {
        return ProgressBar::hidden();
    }
    let (bar, template) = match (total, in_bytes) {
        (Some(t), true) => (
            ProgressBar::new(t),
            "{msg} [{bar:30}] {bytes}/{total_bytes} ({bytes_per_sec}, {eta})",
        ),
        (Some(t), false) => (ProgressBar::new(t), "{msg} [{bar:30}] {pos}/{len} records ({per_sec})"),
        (None, _) => (ProgressBar::new_spinner(), "{spinner} {msg} {pos} records ({per_sec})"),
    };
    bar.set_draw_target(ProgressDrawTarget::stderr());
    if let Ok(style) = ProgressStyle::with_template(template) {
        bar.set_style(style.progress_chars("=> "));
    }
    bar.set_message(what.to_string());
    bar
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn tables_align() {
        let mut t = Table::new(&["NAME", "N"]);
        t.row(vec!["orders".into(), "4".into()]);
        t.row(vec!["x".into(), "10".into()]);
        assert_eq!(t.render(), "NAME    N\norders  4\nx       10\n");
    }

    #[test]
    fn cells_and_times() {
        assert_eq!(cell(&json!("a")), "a");
        assert_eq!(cell(&Value::Null), "-");
        assert_eq!(cell(&json!(3)), "3");
        assert_eq!(time_ms(&json!(0)), "1970-01-01 00:00:00");
        assert_eq!(time_ms(&json!(1_700_000_000_000u64)), "2023-11-14 22:13:20");
        assert_eq!(bytes(1536), "1.5 KiB");
    }
}
