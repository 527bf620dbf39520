//! Pipelines: stream → transform plugin → stream, exactly once.
//!
//! Each running pipeline has one task per input partition. A task reads a
//! batch from the pipeline's *durable* input position, calls the plugin off
//! the async workers, and appends the output to partition
//! `input_partition % output_partitions` together with the new input
//! position in one WAL entry (see `log::progress`). The next read starts
//! from the position that entry made durable, so after a crash at any point
//! the output is neither lost nor duplicated.
//!
//! Invariants:
//! * at most one task per (pipeline, input partition) runs at a time: pause,
//!   delete and shutdown wait for the tasks to finish before returning;
//! * a batch whose transform fails is not written; the pipeline is paused
//!   (durably) with the error and the failing offset in its status;
//! * input deleted below the position before it was read (DeleteRecords,
//!   retention) is skipped: the position moves to the partition's start,
//!   durably, and `records_skipped` counts what was lost;
//! * a stream that grows restarts the tasks of the pipelines using it.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use serde::Serialize;
use tokio::task::JoinHandle;

use crate::log::meta::PipelineMeta;
use crate::log::progress::Progress;
use crate::log::{Log, LogError};
use crate::plugin::Registry;
pub use error::PipelineError;

mod error;

/// Runs `f` off the async workers.
async fn blocking<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> Result<T, PipelineError> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| PipelineError::Task(e.to_string()))
}

/// How often an idle task looks for new input.
const IDLE_POLL: Duration = Duration::from_millis(25);
/// Byte budget of one input batch.
const BATCH_BYTES: usize = 4 * 1024 * 1024;

/// A pipeline as shown in its status.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
#[schema(as = PipelineStatus)]
pub struct Status {
    pub name: String,
    pub input: String,
    pub output: String,
    pub plugin: String,
    pub plugin_version: Option<u32>,
    pub config: Vec<(String, String)>,
    pub batch_records: u32,
    /// `running`, `paused` or `failed` (paused by an error).
    pub state: &'static str,
    pub error: Option<String>,
    pub records_in: u64,
    pub records_out: u64,
    /// Input records deleted (or dropped by retention) before the pipeline
    /// read them, since this node started.
    pub records_skipped: u64,
    pub partitions: Vec<PartitionStatus>,
}

#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
#[schema(as = PipelinePartitionStatus)]
pub struct PartitionStatus {
    pub partition: u32,
    /// Next input offset to process.
    pub position: u64,
    /// Input records not processed yet.
    pub lag: u64,
}

#[derive(Default)]
struct Counters {
    records_in: AtomicU64,
    records_out: AtomicU64,
    records_skipped: AtomicU64,
    error: std::sync::Mutex<Option<String>>,
}

struct Running {
    stop: Arc<AtomicBool>,
    tasks: Vec<JoinHandle<()>>,
}

/// The set of pipelines of a host.
pub struct Pipelines {
    log: Arc<Log>,
    plugins: Arc<Registry>,
    /// Serializes start/stop transitions; holds the running tasks by name.
    running: tokio::sync::Mutex<HashMap<String, Running>>,
    counters: std::sync::Mutex<HashMap<String, Arc<Counters>>>,
}

impl Pipelines {
    pub fn new(log: Arc<Log>, plugins: Arc<Registry>) -> Self {
        Pipelines {
            log,
            plugins,
            running: tokio::sync::Mutex::new(HashMap::new()),
            counters: std::sync::Mutex::new(HashMap::new()),
        }
    }

    /// Starts every pipeline that is not paused (on host start).
    pub async fn start_all(self: &Arc<Self>) {
        for m in self.log.pipelines().await {
            if !m.paused {
                let mut running = self.running.lock().await;
                self.spawn(&mut running, m);
            }
        }
    }

    pub async fn create(self: &Arc<Self>, m: PipelineMeta) -> Result<Status, PipelineError> {
        // Resolve the plugin now so a bad name or version fails the request.
        let (plugins, name, version) = (self.plugins.clone(), m.plugin.clone(), m.plugin_version);
        blocking(move || plugins.transform(&name, version)).await??;
        let m = self.log.create_pipeline(m).await?;
        let name = m.name.clone();
        {
            let mut running = self.running.lock().await;
            if !m.paused {
                self.spawn(&mut running, m);
            }
        }
        self.status(&name).await
    }

    pub async fn pause(self: &Arc<Self>, name: &str) -> Result<Status, PipelineError> {
        let mut running = self.running.lock().await;
        self.log.set_pipeline_paused(name, true).await?;
        stop(&mut running, name).await;
        drop(running);
        self.status(name).await
    }

    pub async fn resume(self: &Arc<Self>, name: &str) -> Result<Status, PipelineError> {
        let mut running = self.running.lock().await;
        let m = self.log.set_pipeline_paused(name, false).await?;
        if let Some(c) = self.counters_of(name) {
            *c.error.lock().unwrap_or_else(|p| p.into_inner()) = None;
        }
        if !running.contains_key(name) {
            self.spawn(&mut running, m);
        }
        drop(running);
        self.status(name).await
    }

    /// Restarts the running pipelines that read or write `stream` (it grew:
    /// tasks are per input partition, and each picks its output partition
    /// when it starts). Positions are durable, so nothing is read twice.
    pub async fn restart_using(self: &Arc<Self>, stream: &str) {
        let mut running = self.running.lock().await;
        for m in self.log.pipelines().await {
            if (m.input == stream || m.output == stream) && running.contains_key(&m.name) {
                stop(&mut running, &m.name).await;
                self.spawn(&mut running, m);
            }
        }
    }

    pub async fn delete(&self, name: &str) -> Result<(), PipelineError> {
        let mut running = self.running.lock().await;
        self.log.pipeline(name).await?;
        stop(&mut running, name).await;
        self.log.delete_pipeline(name).await?;
        self.counters.lock().unwrap_or_else(|p| p.into_inner()).remove(name);
        Ok(())
    }

    /// Stops every task (on shutdown); durable state is untouched.
    pub async fn stop_all(&self) {
        let mut running = self.running.lock().await;
        let names: Vec<String> = running.keys().cloned().collect();
        for n in names {
            stop(&mut running, &n).await;
        }
    }

    pub async fn list(&self) -> Vec<Status> {
        let mut out = Vec::new();
        for m in self.log.pipelines().await {
            out.push(self.status_of(&m).await);
        }
        out
    }

    pub async fn status(&self, name: &str) -> Result<Status, PipelineError> {
        let m = self.log.pipeline(name).await?;
        Ok(self.status_of(&m).await)
    }

    /// Names of plugins and streams that pipelines use.
    pub async fn uses(&self) -> Vec<(String, String, String)> {
        self.log
            .pipelines()
            .await
            .into_iter()
            .map(|m| (m.plugin, m.input, m.output))
            .collect()
    }

    async fn status_of(&self, m: &PipelineMeta) -> Status {
        let c = self.counters_of(&m.name).unwrap_or_default();
        let error = c.error.lock().unwrap_or_else(|p| p.into_inner()).clone();
        let state = match (m.paused, &error) {
            (true, Some(_)) => "failed",
            (true, None) => "paused",
            (false, _) => "running",
        };
        let parts = self.log.partitions_of(&m.input).unwrap_or(0);
        let partitions = match self.log.describe_stream(&m.input) {
            Ok(info) => (0..parts)
                .map(|p| {
                    let position = self.log.pipeline_position(m.id, p);
                    let end = info.partitions.get(p as usize).map_or(0, |r| r.end);
                    PartitionStatus {
                        partition: p,
                        position,
                        lag: end.saturating_sub(position),
                    }
                })
                .collect(),
            Err(_) => Vec::new(),
        };
        Status {
            name: m.name.clone(),
            input: m.input.clone(),
            output: m.output.clone(),
            plugin: m.plugin.clone(),
            plugin_version: m.plugin_version,
            config: m.config.clone(),
            batch_records: m.batch_records,
            state,
            error,
            records_in: c.records_in.load(Ordering::Relaxed),
            records_out: c.records_out.load(Ordering::Relaxed),
            records_skipped: c.records_skipped.load(Ordering::Relaxed),
            partitions,
        }
    }

    fn counters_of(&self, name: &str) -> Option<Arc<Counters>> {
        self.counters
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(name)
            .cloned()
    }

    fn spawn(self: &Arc<Self>, running: &mut HashMap<String, Running>, m: PipelineMeta) {
        let stop = Arc::new(AtomicBool::new(false));
        let counters = {
            let mut all = self.counters.lock().unwrap_or_else(|p| p.into_inner());
            all.entry(m.name.clone()).or_default().clone()
        };
        let parts = self.log.partitions_of(&m.input).unwrap_or(0);
        let tasks = (0..parts)
            .map(|p| {
                let task = Task {
                    pipelines: self.clone(),
                    meta: m.clone(),
                    partition: p,
                    stop: stop.clone(),
                    counters: counters.clone(),
                };
                tokio::spawn(task.run())
            })
            .collect();
        running.insert(m.name, Running { stop, tasks });
    }
}

async fn stop(running: &mut HashMap<String, Running>, name: &str) {
    if let Some(r) = running.remove(name) {
        r.stop.store(true, Ordering::Release);
        for t in r.tasks {
            let _ = t.await;
        }
    }
}

struct Task {
    pipelines: Arc<Pipelines>,
    meta: PipelineMeta,
    partition: u32,
    stop: Arc<AtomicBool>,
    counters: Arc<Counters>,
}

impl Task {
    async fn run(self) {
        if let Err(e) = self.work().await {
            if self.stop.load(Ordering::Acquire) {
                return;
            }
            tracing::error!(pipeline = %self.meta.name, partition = self.partition, error = %e, "pipeline paused by an error");
            *self.counters.error.lock().unwrap_or_else(|p| p.into_inner()) = Some(e.to_string());
            self.stop.store(true, Ordering::Release);
            // Durable pause: a restart does not retry a batch that fails.
            if let Err(e) = self.pipelines.log.set_pipeline_paused(&self.meta.name, true).await {
                tracing::error!(pipeline = %self.meta.name, error = %e, "cannot record the pause");
            }
        }
    }

    async fn work(&self) -> Result<(), PipelineError> {
        let log = &self.pipelines.log;
        let m = &self.meta;
        let (plugins, name, version, config) = (
            self.pipelines.plugins.clone(),
            m.plugin.clone(),
            m.plugin_version,
            m.config.clone(),
        );
        let mut instance = blocking(move || -> Result<_, PipelineError> {
            Ok(plugins.transform(&name, version)?.instantiate(&config)?)
        })
        .await??;
        let out_parts = log.partitions_of(&m.output)?;
        if out_parts == 0 {
            return Err(PipelineError::Invalid(format!(
                "output stream `{}` has no partitions",
                m.output
            )));
        }
        let out_partition = self.partition % out_parts;
        while !self.stop.load(Ordering::Acquire) {
            let position = log.pipeline_position(m.id, self.partition);
            let batch = match log
                .read(
                    &m.input,
                    self.partition,
                    position,
                    m.batch_records as usize,
                    BATCH_BYTES,
                )
                .await
            {
                Ok(b) => b,
                Err(LogError::StreamNotFound { .. }) => {
                    return Err(PipelineError::Invalid(format!(
                        "input stream `{}` no longer exists",
                        m.input
                    )));
                }
                // The records at the position are gone (deleted below an
                // offset, or dropped by retention) before the pipeline read
                // them: nothing can bring them back, so go on from the
                // partition's start, durably, and say so.
                Err(LogError::OffsetOutOfRange { start, .. }) if start > position => {
                    tracing::warn!(
                        pipeline = %m.name, partition = self.partition, from = position, to = start,
                        "input records were deleted before the pipeline read them; going on from the start"
                    );
                    self.counters
                        .records_skipped
                        .fetch_add(start - position, Ordering::Relaxed);
                    let progress = Progress {
                        pipeline: m.id,
                        input_partition: self.partition,
                        next_offset: start,
                    };
                    log.append_output(&m.output, out_partition, &[], progress).await?;
                    continue;
                }
                Err(e) => return Err(e.into()),
            };
            if batch.records.is_empty() {
                tokio::time::sleep(IDLE_POLL).await;
                continue;
            }
            let first = batch.records[0].offset;
            let input = batch.records;
            let n_in = input.len() as u64;
            let (back, result) = blocking(move || {
                let r = instance.transform(&input);
                (instance, r)
            })
            .await?;
            instance = back;
            let output = result.map_err(|source| PipelineError::Batch {
                source,
                context: format!("batch at input offset {first} of partition {}", self.partition),
            })?;
            let progress = Progress {
                pipeline: m.id,
                input_partition: self.partition,
                next_offset: batch.next_offset,
            };
            log.append_output(&m.output, out_partition, &output, progress).await?;
            self.counters.records_in.fetch_add(n_in, Ordering::Relaxed);
            self.counters
                .records_out
                .fetch_add(output.len() as u64, Ordering::Relaxed);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests;
