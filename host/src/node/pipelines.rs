//! The facade's pipelines: creating (within `[plugins] max_pipelines`),
//! listing, pausing, resuming and deleting them. The pipeline tasks and
//! their durable positions are `crate::pipeline`'s.

use super::{Host, PipelineMeta, PipelineStatus};
use crate::error::{Error, ErrorKind};

impl Host {
    /// Creates and starts a pipeline (`id` and `created_ms` are assigned).
    pub async fn create_pipeline(&self, spec: PipelineMeta) -> Result<PipelineStatus, Error> {
        if spec.batch_records == 0 || spec.batch_records > 100_000 {
            return Err(Error::invalid("batch_records must be between 1 and 100000"));
        }
        let cap = self.inner.settings.plugins.max_pipelines;
        if self.inner.log.pipelines().await.len() >= cap {
            return Err(Error::new(
                ErrorKind::Conflict,
                "node_full",
                format!("the node has {cap} pipelines, the most plugins.max_pipelines allows"),
            ));
        }
        Ok(self.inner.pipelines.create(spec).await?)
    }

    pub async fn list_pipelines(&self) -> Vec<PipelineStatus> {
        self.inner.pipelines.list().await
    }

    pub async fn pipeline_status(&self, name: &str) -> Result<PipelineStatus, Error> {
        Ok(self.inner.pipelines.status(name).await?)
    }

    pub async fn pause_pipeline(&self, name: &str) -> Result<PipelineStatus, Error> {
        Ok(self.inner.pipelines.pause(name).await?)
    }

    /// Resumes a paused (or failed) pipeline from its durable position.
    pub async fn resume_pipeline(&self, name: &str) -> Result<PipelineStatus, Error> {
        Ok(self.inner.pipelines.resume(name).await?)
    }

    pub async fn delete_pipeline(&self, name: &str) -> Result<(), Error> {
        Ok(self.inner.pipelines.delete(name).await?)
    }
}
