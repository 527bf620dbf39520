//! Pipeline metadata on the log: definitions and pause state are control
//! entries (like streams), positions come from output entries' trailers and
//! from progress control entries for input that produced no output.

use super::error::LogError;
use super::meta::{ControlOp, PipelineMeta};
use super::progress::Progress;
use super::{Log, Record, meta};
use crate::fsutil::now_ms;

impl Log {
    /// Durably creates a pipeline definition; `meta.id` is assigned here.
    pub async fn create_pipeline(&self, mut m: PipelineMeta) -> Result<PipelineMeta, LogError> {
        meta::validate_name(&m.name)?;
        let mut snap = self.admin.lock().await;
        if snap.pipelines.values().any(|p| p.name == m.name) {
            return Err(LogError::PipelineExists { name: m.name });
        }
        self.stream(&m.input)?;
        self.stream(&m.output)?;
        if m.input == m.output {
            return Err(LogError::InvalidBatch(
                "a pipeline's output must differ from its input".into(),
            ));
        }
        m.id = snap.next_pipeline_id;
        m.created_ms = now_ms();
        self.apply_control(&mut snap, &ControlOp::CreatePipeline(m.clone()))
            .await?;
        Ok(m)
    }

    pub async fn delete_pipeline(&self, name: &str) -> Result<(), LogError> {
        let mut snap = self.admin.lock().await;
        let id = pipeline_id(&snap, name)?;
        self.apply_control(&mut snap, &ControlOp::DeletePipeline { id }).await?;
        self.progress.forget(id);
        Ok(())
    }

    pub async fn set_pipeline_paused(&self, name: &str, paused: bool) -> Result<PipelineMeta, LogError> {
        let mut snap = self.admin.lock().await;
        let id = pipeline_id(&snap, name)?;
        self.apply_control(&mut snap, &ControlOp::SetPipelinePaused { id, paused })
            .await?;
        snap.pipelines
            .get(&id)
            .cloned()
            .ok_or_else(|| LogError::PipelineNotFound { name: name.into() })
    }

    /// Records input consumed without output.
    pub async fn record_progress(&self, p: Progress) -> Result<(), LogError> {
        let mut snap = self.admin.lock().await;
        let op = ControlOp::PipelineProgress {
            id: p.pipeline,
            partition: p.input_partition,
            next_offset: p.next_offset,
        };
        self.apply_control(&mut snap, &op).await?;
        self.progress.advance(p);
        Ok(())
    }

    /// Appends a pipeline's output together with its new input position.
    pub async fn append_output(
        &self,
        stream: &str,
        partition: u32,
        records: &[Record],
        p: Progress,
    ) -> Result<(), LogError> {
        if records.is_empty() {
            return self.record_progress(p).await;
        }
        self.append_with_progress(stream, partition, records, p)
            .await
            .map(|_| ())
    }

    pub async fn pipelines(&self) -> Vec<PipelineMeta> {
        self.admin.lock().await.pipelines.values().cloned().collect()
    }

    pub async fn pipeline(&self, name: &str) -> Result<PipelineMeta, LogError> {
        let snap = self.admin.lock().await;
        let id = pipeline_id(&snap, name)?;
        snap.pipelines
            .get(&id)
            .cloned()
            .ok_or_else(|| LogError::PipelineNotFound { name: name.into() })
    }

    /// Next input offset of a pipeline on one input partition.
    pub fn pipeline_position(&self, pipeline: u32, partition: u32) -> u64 {
        self.progress.get(pipeline, partition)
    }

    /// Partition count of a stream.
    pub fn partitions_of(&self, stream: &str) -> Result<u32, LogError> {
        Ok(self.stream(stream)?.meta.partitions)
    }
}

fn pipeline_id(snap: &meta::Snapshot, name: &str) -> Result<u32, LogError> {
    snap.pipelines
        .values()
        .find(|p| p.name == name)
        .map(|p| p.id)
        .ok_or_else(|| LogError::PipelineNotFound { name: name.into() })
}
