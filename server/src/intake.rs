//! What a source hands the pipeline, and what it gets back: records with their origin,
//! batches with the source's position, and the bounded queue (`PipelineHandle`) every
//! source sends into. Sources, the archive and the checkpoint writer depend on this
//! module alone, never on the pipeline's loop.

use std::borrow::Cow;
use std::fmt;
use std::sync::Arc;

use bytes::Bytes;
use instabrand_shared::{DecodeError, EventKind};
use tokio::sync::{mpsc, oneshot};

use crate::align::LogPosition;

/// Where a record came from: shown with its dead letter.
#[derive(Debug, Clone)]
pub enum Origin {
    Generator,
    Ingest {
        line: u64,
    },
    Kafka {
        topic: Arc<str>,
        partition: i32,
        offset: i64,
    },
    Replay,
    File {
        offset: u64,
    },
    /// Held for ordering when the last checkpoint was taken; this was its origin.
    Restored(Arc<str>),
}

impl Origin {
    /// The input the record belongs to, for event-time alignment: a Kafka partition
    /// (`topic/partition`), or the source.
    pub fn input_name(&self) -> Cow<'static, str> {
        match self {
            Origin::Kafka {
                topic, partition, ..
            } => Cow::Owned(format!("{topic}/{partition}")),
            Origin::Generator => Cow::Borrowed("generator"),
            Origin::Ingest { .. } => Cow::Borrowed("ingest"),
            Origin::Replay => Cow::Borrowed("replay"),
            Origin::File { .. } => Cow::Borrowed("file"),
            Origin::Restored(_) => Cow::Borrowed("restored"),
        }
    }

    /// Whether its source reports the input's end of log itself (Kafka). Every other
    /// source sends each batch complete and in order: its input is caught up after it.
    pub(crate) fn reports_end_of_log(&self) -> bool {
        matches!(self, Origin::Kafka { .. })
    }
}

impl fmt::Display for Origin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Origin::Generator => f.write_str("generator"),
            Origin::Ingest { line } => write!(f, "ingest:line {line}"),
            Origin::Kafka {
                topic,
                partition,
                offset,
            } => write!(f, "kafka:{topic}/{partition}@{offset}"),
            Origin::Replay => f.write_str("replay"),
            Origin::File { offset } => write!(f, "file:byte {offset}"),
            Origin::Restored(o) => f.write_str(o),
        }
    }
}

impl Origin {
    /// The origin a `Display` string names (as archived with each event), for the
    /// sources whose positions it determines; `None` for the others.
    pub fn parse(s: &str) -> Option<Origin> {
        if let Some(rest) = s.strip_prefix("kafka:") {
            let (tp, offset) = rest.rsplit_once('@')?;
            let (topic, partition) = tp.rsplit_once('/')?;
            return Some(Origin::Kafka {
                topic: topic.into(),
                partition: partition.parse().ok()?,
                offset: offset.parse().ok()?,
            });
        }
        if let Some(offset) = s.strip_prefix("file:byte ") {
            return Some(Origin::File {
                offset: offset.parse().ok()?,
            });
        }
        (s == "generator").then_some(Origin::Generator)
    }
}

#[derive(Debug, Clone)]
pub struct Record {
    pub bytes: Bytes,
    /// The event type implied by the topic, used when the payload lacks `event`.
    pub hint: Option<EventKind>,
    pub origin: Origin,
}

impl Record {
    pub fn new(bytes: impl Into<Bytes>, origin: Origin) -> Self {
        Record {
            bytes: bytes.into(),
            hint: None,
            origin,
        }
    }
}

/// What happened to a batch.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct BatchResult {
    /// The batch's sequence number: it is durable once `durable_seq() >= seq`.
    pub seq: u64,
    /// Records that decoded: applied, or only archived when `pipeline.apply` is off.
    pub applied: u64,
    /// Records that did not decode: (index in the batch, error).
    pub rejected: Vec<(usize, DecodeError)>,
}

pub struct Batch {
    pub records: Vec<Record>,
    pub done: Option<oneshot::Sender<BatchResult>>,
    /// The source's position after this batch: (source name, position).
    pub position: Option<(String, serde_json::Value)>,
    /// Also wait until the batch is in a checkpoint before answering `done`.
    pub durable: bool,
    /// Checkpoint now (shutdown), answering when done.
    pub checkpoint: Option<oneshot::Sender<Result<(), String>>>,
    /// Where the source's inputs stand in their logs (Kafka partitions), by input name.
    /// Inputs of other sources are at their end after each of their batches.
    pub inputs: Vec<(String, LogPosition)>,
}

impl Batch {
    pub(crate) fn records(records: Vec<Record>) -> Batch {
        Batch {
            records,
            done: None,
            position: None,
            durable: false,
            checkpoint: None,
            inputs: Vec::new(),
        }
    }
}

#[derive(Debug, thiserror::Error)]
#[error("the pipeline has stopped")]
pub struct PipelineClosed;

/// The sending side, cloned into every source.
#[derive(Clone)]
pub struct PipelineHandle {
    tx: mpsc::Sender<Batch>,
}

impl PipelineHandle {
    pub fn new(queue_batches: usize) -> (PipelineHandle, mpsc::Receiver<Batch>) {
        let (tx, rx) = mpsc::channel(queue_batches.max(1));
        (PipelineHandle { tx }, rx)
    }

    /// Sends a batch and waits until it is applied.
    pub async fn submit(&self, records: Vec<Record>) -> Result<BatchResult, PipelineClosed> {
        self.submit_batch(records, None, false).await
    }

    /// Sends a batch with the source's position after it, and waits until it is applied
    /// (and, with `durable`, until it is in a checkpoint).
    pub async fn submit_batch(
        &self,
        records: Vec<Record>,
        position: Option<(String, serde_json::Value)>,
        durable: bool,
    ) -> Result<BatchResult, PipelineClosed> {
        let mut batch = Batch::records(records);
        batch.position = position;
        batch.durable = durable;
        self.round_trip(batch).await
    }

    /// Queues `batch` and waits for its result.
    async fn round_trip(&self, mut batch: Batch) -> Result<BatchResult, PipelineClosed> {
        let (done, wait) = oneshot::channel();
        batch.done = Some(done);
        self.enqueue(batch).await?;
        wait.await.map_err(|_| PipelineClosed)
    }

    /// Queues `batch` (waits only for queue room).
    async fn enqueue(&self, batch: Batch) -> Result<(), PipelineClosed> {
        self.tx.send(batch).await.map_err(|_| PipelineClosed)
    }

    /// Sends a batch without waiting for it to be applied (waits only for queue room).
    pub async fn send(&self, records: Vec<Record>) -> Result<(), PipelineClosed> {
        self.enqueue(Batch::records(records)).await
    }

    /// Like `send`, with the source's position after the batch.
    pub async fn send_at(
        &self,
        records: Vec<Record>,
        position: (String, serde_json::Value),
    ) -> Result<(), PipelineClosed> {
        let mut batch = Batch::records(records);
        batch.position = Some(position);
        self.enqueue(batch).await
    }

    /// Like `send_at`, for a source with more to send right behind this batch (a file
    /// read from the middle): its input stays `Behind`, so the batch's last events
    /// wait for the next batch in case it brings more of the same second.
    pub async fn send_behind(
        &self,
        records: Vec<Record>,
        position: (String, serde_json::Value),
        input: &str,
    ) -> Result<(), PipelineClosed> {
        let mut batch = Batch::records(records);
        batch.position = Some(position);
        batch.inputs = vec![(input.to_string(), LogPosition::Behind)];
        self.enqueue(batch).await
    }

    /// Checkpoints now and waits for it (used at shutdown).
    pub async fn checkpoint(&self) -> Result<(), String> {
        let (done, wait) = oneshot::channel();
        let mut batch = Batch::records(Vec::new());
        batch.checkpoint = Some(done);
        self.tx.send(batch).await.map_err(|e| e.to_string())?;
        wait.await.map_err(|e| e.to_string())?
    }

    /// Like `submit_batch`, also saying which of the source's inputs are at the end of
    /// their logs (`Batch::inputs`). An empty `records` only reports them.
    pub async fn submit_with_inputs(
        &self,
        records: Vec<Record>,
        position: Option<(String, serde_json::Value)>,
        inputs: Vec<(String, LogPosition)>,
    ) -> Result<BatchResult, PipelineClosed> {
        let mut batch = Batch::records(records);
        batch.position = position;
        batch.inputs = inputs;
        self.round_trip(batch).await
    }

    /// Tells the pipeline where a source's inputs stand, without records and without
    /// waiting. `false` if the queue was full (say it again later).
    pub fn report_inputs(&self, inputs: Vec<(String, LogPosition)>) -> bool {
        let mut batch = Batch::records(Vec::new());
        batch.inputs = inputs;
        self.tx.try_send(batch).is_ok()
    }

    /// Wakes the pipeline so a due checkpoint happens even when no batch arrives.
    pub fn tick(&self) {
        let _ = self.tx.try_send(Batch::records(Vec::new()));
    }
}
