//! The node-wide budget of request bytes being read and decoded, shared by
//! both faces: HTTP produce bodies and large Kafka frames reserve their size
//! before they are read and give it back once handled (the WAL queue's own
//! byte bound takes over from there).
//!
//! Invariant: a request bigger than the whole budget still goes through,
//! alone; the budget never goes negative (permits count KiB in `u32`).

use std::sync::Arc;

use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use super::Host;
use crate::error::{Error, ErrorKind};

const UNIT: u64 = 1024;

/// The budget, in KiB permits.
pub(super) struct Budget {
    permits: Arc<Semaphore>,
    total: u32,
}

impl Budget {
    pub(super) fn new(bytes: u64) -> Budget {
        let total = u32::try_from(bytes.div_ceil(UNIT).max(1))
            .unwrap_or(u32::MAX)
            .min(u32::try_from(Semaphore::MAX_PERMITS).unwrap_or(u32::MAX));
        Budget {
            permits: Arc::new(Semaphore::new(total as usize)),
            total,
        }
    }
}

/// Bytes reserved from the budget; given back when dropped.
#[derive(Debug)]
pub struct InFlight {
    _permit: OwnedSemaphorePermit,
}

impl Host {
    /// Reserves `bytes` of `max_in_flight_bytes`, waiting while other
    /// requests hold it.
    pub async fn reserve_in_flight(&self, bytes: u64) -> Result<InFlight, Error> {
        let budget = &self.inner.in_flight;
        let units = u32::try_from(bytes.div_ceil(UNIT))
            .unwrap_or(u32::MAX)
            .min(budget.total);
        let permit = budget
            .permits
            .clone()
            .acquire_many_owned(units)
            .await
            .map_err(|_| Error::new(ErrorKind::Unavailable, "shutting_down", "the node is shutting down"))?;
        Ok(InFlight { _permit: permit })
    }
}
