//! Upload byte-rate limiting: an async token bucket ([`RateLimiter`]) over a
//! pure, clock-free core ([`Bucket`]).
//!
//! Invariants:
//! * all byte and time arithmetic is unsigned (`u64`, with `u128` for
//!   products) and saturating or checked, so no size — 0, beyond 2^32, up to
//!   `u64::MAX` — can overflow, panic or produce a negative duration;
//! * a bucket holds at most `burst` tokens and `burst >= 1`, `rate >= 1`;
//! * [`Bucket::take`] *reserves*: once it returns a wait, the bytes are
//!   accounted for, so concurrent callers queue behind each other in order;
//! * [`RateLimiter::acquire`] never asks for more than `burst` bytes at once:
//!   larger requests are split by [`Pieces`], whose sizes sum exactly to the
//!   request.

use std::sync::Mutex;
use std::time::{Duration, Instant};

const NANOS_PER_SEC: u128 = 1_000_000_000;

/// Pure token-bucket state, driven by a caller-supplied clock in nanoseconds.
///
/// Time is kept in *ticks* of `1 / rate` ns, in which one byte costs exactly
/// 1e9 ticks, so refills and reservations are exact integers and repeated
/// small requests do not drift; only the returned wait is rounded (up).
#[derive(Debug, Clone)]
pub struct Bucket {
    /// Refill rate in bytes per second, `>= 1`.
    rate: u64,
    /// Bucket capacity in bytes, `>= 1`.
    burst: u64,
    /// Tokens available at time `last`, `<= burst`.
    tokens: u64,
    /// Clock time (ticks) up to which refill has been credited. Ahead of the
    /// clock while reservations are outstanding.
    last: u128,
}

impl Bucket {
    /// A full bucket at clock time 0. `rate` and `burst` are clamped to >= 1.
    pub fn new(bytes_per_sec: u64, burst_bytes: u64) -> Bucket {
        let burst = burst_bytes.max(1);
        Bucket {
            rate: bytes_per_sec.max(1),
            burst,
            tokens: burst,
            last: 0,
        }
    }

    /// Bytes per second.
    #[cfg(test)]
    pub fn rate(&self) -> u64 {
        self.rate
    }

    /// Capacity in bytes.
    pub fn burst(&self) -> u64 {
        self.burst
    }

    /// Reserves `bytes` at clock time `now_nanos` and returns how long the
    /// caller must wait before sending them. Zero bytes never wait. Meant for
    /// pieces of at most [`Bucket::burst`] bytes, but any size is accepted.
    /// A clock that goes backwards is treated as standing still.
    pub fn take(&mut self, now_nanos: u64, bytes: u64) -> Duration {
        // Both factors are < 2^64, so the product fits in u128.
        let now = u128::from(now_nanos) * u128::from(self.rate);
        self.refill(now);
        if bytes <= self.tokens {
            self.tokens -= bytes;
            return Duration::ZERO;
        }
        let deficit = bytes - self.tokens;
        self.tokens = 0;
        // `last <= now` here unless reservations are outstanding; either way
        // the deficit is available `deficit` bytes' worth of ticks after `last`.
        // deficit * 1e9 < 2^94; the sum saturates only after centuries.
        let ready = self.last.saturating_add(u128::from(deficit) * NANOS_PER_SEC);
        self.last = ready;
        duration_from_nanos(ready.saturating_sub(now).div_ceil(u128::from(self.rate)))
    }

    /// Credits whole bytes for the ticks elapsed since `last`, keeping any
    /// fraction of a byte for the next refill.
    fn refill(&mut self, now: u128) {
        let Some(elapsed) = now.checked_sub(self.last) else {
            return;
        };
        let room = self.burst - self.tokens;
        match u64::try_from(elapsed / NANOS_PER_SEC) {
            Ok(credit) if credit < room => {
                self.tokens += credit;
                // credit * 1e9 <= elapsed, so `last` stays <= now.
                self.last += u128::from(credit) * NANOS_PER_SEC;
            }
            _ => {
                self.tokens = self.burst;
                self.last = now;
            }
        }
    }
}

/// Converts nanoseconds to a `Duration`, saturating at `Duration::MAX`-ish
/// (`u64::MAX` seconds) instead of panicking.
fn duration_from_nanos(nanos: u128) -> Duration {
    let secs = u64::try_from(nanos / NANOS_PER_SEC).unwrap_or(u64::MAX);
    // The remainder is < 1e9, so it fits in u32 and `Duration::new` cannot carry.
    let sub = u32::try_from(nanos % NANOS_PER_SEC).unwrap_or(0);
    Duration::new(secs, sub)
}

/// Splits `total` bytes into pieces of at most `max_piece` bytes (clamped to
/// at least 1); every piece but the last is exactly `max_piece`. Zero bytes
/// yield no pieces.
#[derive(Debug, Clone)]
pub struct Pieces {
    remaining: u64,
    max_piece: u64,
}

impl Pieces {
    pub fn new(total: u64, max_piece: u64) -> Pieces {
        Pieces {
            remaining: total,
            max_piece: max_piece.max(1),
        }
    }
}

impl Iterator for Pieces {
    type Item = u64;

    fn next(&mut self) -> Option<u64> {
        if self.remaining == 0 {
            return None;
        }
        let piece = self.remaining.min(self.max_piece);
        self.remaining -= piece;
        Some(piece)
    }
}

/// Async byte-rate limiter for uploads; share it behind an `Arc`.
#[derive(Debug)]
pub struct RateLimiter {
    inner: Option<Limited>,
}

#[derive(Debug)]
struct Limited {
    origin: Instant,
    burst: u64,
    bucket: Mutex<Bucket>,
}

impl RateLimiter {
    /// A limiter allowing `bytes_per_sec` on average with bursts of up to
    /// `burst_bytes` (clamped to >= 1). `bytes_per_sec == 0` means unlimited.
    pub fn new(bytes_per_sec: u64, burst_bytes: u64) -> RateLimiter {
        if bytes_per_sec == 0 {
            return RateLimiter::unlimited();
        }
        let bucket = Bucket::new(bytes_per_sec, burst_bytes);
        RateLimiter {
            inner: Some(Limited {
                origin: Instant::now(),
                burst: bucket.burst(),
                bucket: Mutex::new(bucket),
            }),
        }
    }

    /// A limiter that never waits.
    pub fn unlimited() -> RateLimiter {
        RateLimiter { inner: None }
    }

    /// Whether this limiter never waits.
    #[cfg(test)]
    pub fn is_unlimited(&self) -> bool {
        self.inner.is_none()
    }

    /// Waits until `bytes` (any size, including 0) may be sent. Large
    /// requests go piece by piece, at most `burst` bytes each. If the future
    /// is dropped while waiting, the pieces already reserved stay consumed.
    pub async fn acquire(&self, bytes: u64) {
        let Some(limited) = &self.inner else { return };
        for piece in Pieces::new(bytes, limited.burst) {
            let wait = {
                let now = u64::try_from(limited.origin.elapsed().as_nanos()).unwrap_or(u64::MAX);
                let mut bucket = limited.bucket.lock().unwrap_or_else(|p| p.into_inner());
                bucket.take(now, piece)
            };
            if !wait.is_zero() {
                // tokio clamps deadlines too far in the future instead of panicking.
                tokio::time::sleep(wait).await;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const GIB: u64 = 1 << 30;
    const SEC: u64 = 1_000_000_000;

    /// Drives `bucket` the way `acquire` does, with a simulated clock
    /// starting at `start`; returns the clock after the last piece may go.
    fn simulate(bucket: &mut Bucket, start: u64, bytes: u64) -> u64 {
        let mut now = start;
        for piece in Pieces::new(bytes, bucket.burst()) {
            let wait = bucket.take(now, piece);
            now += u64::try_from(wait.as_nanos()).unwrap();
        }
        now
    }

    #[test]
    fn pieces_of_huge_requests_sum_exactly() {
        for (total, max) in [
            (5 * GIB, 1 << 20),
            (3 * GIB, 7_000_001),
            ((1 << 32) + 7, 1 << 31),
            ((1 << 31) + 1, 1 << 30),
        ] {
            let pieces: Vec<u64> = Pieces::new(total, max).collect();
            assert_eq!(pieces.iter().sum::<u64>(), total);
            assert_eq!(pieces.len() as u64, total.div_ceil(max));
            let (last, full) = pieces.split_last().unwrap();
            assert!(full.iter().all(|&p| p == max), "only the last piece may be short");
            assert!(*last >= 1 && *last <= max);
        }
    }

    #[test]
    fn pieces_edge_cases() {
        assert_eq!(Pieces::new(0, 10).count(), 0);
        assert_eq!(Pieces::new(10, 0).collect::<Vec<_>>(), vec![1; 10]);
        assert_eq!(Pieces::new(25, 10).collect::<Vec<_>>(), vec![10, 10, 5]);
        assert_eq!(Pieces::new(u64::MAX, u64::MAX).collect::<Vec<_>>(), vec![u64::MAX]);
        let halves: Vec<u64> = Pieces::new(u64::MAX, u64::MAX / 2 + 1).collect();
        assert_eq!(halves, vec![u64::MAX / 2 + 1, u64::MAX / 2]);
    }

    #[test]
    fn huge_request_at_tiny_rate_gives_finite_wait() {
        let mut b = Bucket::new(1, 1 << 40);
        assert_eq!(b.take(0, 1 << 40), Duration::ZERO, "a full bucket covers one burst");
        assert_eq!(b.take(0, 1 << 40), Duration::from_secs(1 << 40));
        // Beyond u64 nanoseconds, still no panic and still exact seconds.
        let mut b = Bucket::new(1, u64::MAX);
        b.take(0, u64::MAX);
        assert_eq!(b.take(0, u64::MAX), Duration::from_secs(u64::MAX));
        // A third reservation saturates rather than overflowing.
        let third = b.take(u64::MAX, u64::MAX);
        assert!(third >= Duration::from_secs(u64::MAX - u64::MAX / SEC));
    }

    #[test]
    fn zero_bytes_never_wait() {
        let mut b = Bucket::new(1, 1);
        assert_eq!(b.take(0, 1), Duration::ZERO);
        assert_eq!(b.take(0, 1), Duration::from_secs(1));
        // Bucket empty and reserved ahead; zero bytes still go now.
        assert_eq!(b.take(0, 0), Duration::ZERO);
    }

    #[test]
    fn new_clamps_burst_and_rate() {
        let b = Bucket::new(0, 0);
        assert_eq!((b.rate(), b.burst()), (1, 1));
        assert!(RateLimiter::new(0, 100).is_unlimited());
        assert!(!RateLimiter::new(1, 0).is_unlimited());
    }

    #[test]
    fn steady_rate_after_burst() {
        // 1000 B/s, burst 1000: 10_000 bytes take exactly 9 s of simulated time.
        let mut b = Bucket::new(1000, 1000);
        assert_eq!(simulate(&mut b, 0, 10_000), 9 * SEC);
        // The bucket is now empty: another 5000 bytes need 5 s more.
        assert_eq!(simulate(&mut b, 9 * SEC, 5000), 14 * SEC);
    }

    #[test]
    fn refill_is_capped_at_burst() {
        let mut b = Bucket::new(100, 100);
        assert_eq!(b.take(0, 100), Duration::ZERO);
        // A long idle period refills only one burst.
        assert_eq!(b.take(1000 * SEC, 100), Duration::ZERO);
        assert_eq!(b.take(1000 * SEC, 50), Duration::from_millis(500));
    }

    #[test]
    fn fractional_rates_do_not_drift() {
        // 3 B/s sent one byte at a time: each byte costs 1/3 s, and rounding
        // must not accumulate over 3000 bytes (1000 s).
        let mut b = Bucket::new(3, 1);
        let mut now = 0u64;
        for _ in 0..3001 {
            now += u64::try_from(b.take(now, 1).as_nanos()).unwrap();
        }
        let expected = 1000 * SEC;
        assert!(now >= expected && now <= expected + 1, "drifted: {now} vs {expected}");
    }

    #[test]
    fn reservations_queue_concurrent_callers() {
        let mut b = Bucket::new(10, 10);
        assert_eq!(b.take(0, 10), Duration::ZERO);
        // Two callers arriving at the same instant wait one after the other.
        assert_eq!(b.take(0, 10), Duration::from_secs(1));
        assert_eq!(b.take(0, 10), Duration::from_secs(2));
        // Later arrival: only the remaining part of the queue.
        assert_eq!(b.take(SEC / 2, 5), Duration::from_millis(2000));
    }

    #[test]
    fn backwards_clock_is_harmless() {
        let mut b = Bucket::new(10, 10);
        assert_eq!(b.take(5 * SEC, 10), Duration::ZERO);
        assert_eq!(b.take(SEC, 10), Duration::from_secs(5));
    }

    #[tokio::test]
    async fn unlimited_never_waits() {
        // Real time: these complete at once; a wait would hang the test.
        let unlimited = RateLimiter::unlimited();
        for bytes in [0, 1, (1 << 31) + 1, (1 << 32) + 7, u64::MAX / 2, u64::MAX] {
            unlimited.acquire(bytes).await;
        }
        RateLimiter::new(0, 0).acquire(u64::MAX).await;
    }

    #[tokio::test]
    async fn acquire_within_burst_and_zero_bytes_return() {
        let limiter = RateLimiter::new(1, 5 * GIB);
        limiter.acquire(0).await;
        limiter.acquire(5 * GIB).await; // exactly one full burst
        limiter.acquire(0).await; // empty bucket, still no wait
        let Some(limited) = &limiter.inner else {
            panic!("limited")
        };
        let b = limited.bucket.lock().unwrap();
        assert_eq!(b.tokens, 0, "the burst was consumed");
    }
}
