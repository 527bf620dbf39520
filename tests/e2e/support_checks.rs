//! Test-run helpers with no server in them: a seeded PRNG whose seed a
//! failing run prints (replay with `SLUICE_E2E_SEED`), and a check that
//! fails a test with the problems it collected.

/// A small deterministic PRNG (splitmix64), so a failing run can be replayed
/// with `SLUICE_E2E_SEED`.
#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    pub fn from_env_or_time() -> (Rng, u64) {
        let seed = std::env::var("SLUICE_E2E_SEED")
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or_else(|| {
                std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .map(|d| d.as_nanos() as u64)
                    .unwrap_or(1)
            });
        (Rng(seed), seed)
    }

    pub fn new(seed: u64) -> Rng {
        Rng(seed)
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in `lo..=hi`.
    pub fn range(&mut self, lo: u64, hi: u64) -> u64 {
        lo + self.next_u64() % (hi - lo + 1)
    }
}

/// Fails the test listing (the first 40 of) `problems`, if there are any.
pub fn assert_no_problems(problems: &[String], context: &str) {
    if !problems.is_empty() {
        let shown = problems.len().min(40);
        panic!(
            "{} problems {context} (first {shown}):\n{}",
            problems.len(),
            problems[..shown].join("\n")
        );
    }
}
