//! Changing a stream's retention after it was created (HTTP `PATCH
//! /streams/{name}`, Kafka AlterConfigs and IncrementalAlterConfigs).
//!
//! The log checks the new retention with the stream's other settings by the
//! same rule as at creation and makes it durable as a control entry before
//! the call returns. Replicated streams keep the retention they were
//! created with: their nodes tier on their own, and a change reaching some
//! replicas and not others would be worse than none.

use super::Host;
use super::committed;
use crate::error::Error;
use crate::log::StreamInfo;
use crate::log::meta::RetentionChange;

impl Host {
    /// Changes `name`'s retention; `validate_only` checks without changing
    /// anything. Answers the stream as it is (or would be) afterwards.
    pub async fn set_retention(
        &self,
        name: &str,
        change: RetentionChange,
        validate_only: bool,
    ) -> Result<StreamInfo, Error> {
        committed::refuse_internal(name, "change")?;
        Ok(self.inner.log.set_retention(name, change, validate_only).await?)
    }
}
