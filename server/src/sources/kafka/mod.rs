//! The Kafka source: one consumer in the group `kafka.group_id`, subscribed to the six
//! event topics (or the combined topic), feeding the pipeline in batches.
//!
//! Delivery guarantee: at-least-once, with replays suppressed inside one process.
//! - Auto-commit and librdkafka's automatic offset store are off. A batch's offsets are
//!   committed only after the pipeline acknowledges the batch, that is after it has been
//!   applied to the processor and its dead letters acknowledged by the dead-letter
//!   topic. A crash, or a rebalance, before the commit makes the next owner of the
//!   partition read those records again.
//! - The group falls back to its last committed offset whenever the consumer re-joins
//!   (broker restarted, commit lost in a rebalance). This process remembers, per
//!   partition, the next offset it has already handed to the pipeline and skips records
//!   below it, so such a rewind applies nothing twice. That matters: comments are
//!   counted, not kept as a set, so a replayed comment would count again.
//! - Batching adapts to the load: a record read while the pipeline is idle is handed
//!   over at once; while a batch is being applied, records gather (up to
//!   `pipeline.max_batch_records`, or `kafka.flush_interval_ms`). Up to
//!   `kafka.batches_in_flight` batches are handed over and awaited in order, so
//!   reading overlaps applying. Applied offsets are committed every
//!   `kafka.commit_interval_ms` (and at shutdown), not once per batch: small batches
//!   must not turn into a commit request each.
//! - The broker being away never ends this loop: librdkafka reconnects by itself, the
//!   health view (source `kafka`) says what is wrong meanwhile, and consumption resumes
//!   at the next offset not yet handed over.
//!
//! - Event-time order: every batch also says where each assigned partition stands in
//!   its log (at its end, or behind it, from the high watermarks in librdkafka's
//!   statistics and the offsets handed over), so the pipeline's aligner knows which
//!   partitions may still deliver older events. A partition whose events wait far
//!   ahead of the others (`align.pause_held_per_input`) is paused until they drain,
//!   so a topic far ahead in a backlog costs bounded memory.
//! - With durable state, each batch carries the next offset of every partition handed
//!   over so far, and the checkpoint stores them with the state they produced. Offsets
//!   are committed to Kafka only once a checkpoint covers them (the pipeline's durable
//!   sequence), and at start the remembered offsets are seeded from the restored
//!   checkpoint: records the restored state already holds are skipped, records after
//!   it are applied, so a kill -9 neither loses nor double-counts anything.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures_util::StreamExt;
use futures_util::stream::FuturesOrdered;
use instabrand_shared::EventKind;
use rdkafka::client::ClientContext;
use rdkafka::config::RDKafkaLogLevel;
use rdkafka::consumer::{
    BaseConsumer, CommitMode, Consumer, ConsumerContext, Rebalance, StreamConsumer,
};
use rdkafka::error::{KafkaError as RdKafkaError, KafkaResult};
use rdkafka::message::{BorrowedMessage, Message};
use rdkafka::statistics::Statistics;
use rdkafka::types::RDKafkaErrorCode;
use rdkafka::{Offset, TopicPartitionList};
use tokio::time::MissedTickBehavior;
use tokio_util::sync::CancellationToken;
use tracing::{debug, error, info, instrument, warn};

mod group;

pub use group::{INSTANCE_FILE, instance_id};

use super::SourceCtx;
use crate::align::LogPosition;
use crate::intake::{BatchResult, Origin, PipelineClosed, PipelineHandle, Record};
use crate::kafka::{KafkaConfig, KafkaError, client_config, ensure_topics, logging, source_topics};

/// The name the source reports its health under.
pub(crate) const SOURCE: &str = "kafka";
/// Retry delays while the broker cannot be reached at start.
const RETRY_FIRST: Duration = Duration::from_secs(1);
const RETRY_MAX: Duration = Duration::from_secs(30);
/// How long shutdown waits for batches already handed to the pipeline.
const SHUTDOWN_WAIT: Duration = Duration::from_secs(10);

/// Consumes until `shutdown`, feeding `state.intake`. Never returns early because of
/// the broker: it retries until it is reachable.
///
/// `instance` names this server across restarts (see `group.rs`): its consumer's client
/// id, by which the group guard tells its own earlier run from another instance.
pub async fn run(
    state: SourceCtx,
    cfg: KafkaConfig,
    instance: String,
    shutdown: CancellationToken,
) {
    let brokers = cfg.brokers.clone().unwrap_or_default();
    state.report(SOURCE, false, format!("connecting to {brokers}"));
    let mut retry = RETRY_FIRST;
    let mut watch = group::SplitWatch::default();
    loop {
        let outcome = match setup(&state, &cfg, &instance).await {
            Ok((consumer, guard)) => {
                consume(&state, &cfg, consumer, guard, &mut watch, &shutdown).await
            }
            Err(KafkaError::SharedGroup(why)) => {
                refuse(&state, why);
                return;
            }
            Err(e) => Err(e.to_string()),
        };
        match outcome {
            Ok(()) => return,
            Err(why) => {
                warn!(%why, retry_in = ?retry, "Kafka consumer not running");
                state.report(SOURCE, false, why);
            }
        }
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = tokio::time::sleep(retry) => {}
        }
        retry = (retry * 2).min(RETRY_MAX);
    }
}

/// Creates the topics (when configured to) and a subscribed consumer.
#[instrument(skip_all)]
async fn setup(
    state: &SourceCtx,
    cfg: &KafkaConfig,
    instance: &str,
) -> Result<(StreamConsumer<GroupContext>, Arc<group::GroupGuard>), KafkaError> {
    let topics = source_topics(cfg);
    let mut names: Vec<&str> = topics.iter().map(|(t, _)| t.as_str()).collect();
    if cfg.create_topics {
        names.push(&cfg.dead_letter_topic);
        ensure_topics(cfg, &names).await?;
        names.pop();
    }
    let mut c = client_config(cfg)?;
    c.set("group.id", &cfg.group_id)
        .set("enable.auto.commit", "false")
        .set("enable.auto.offset.store", "false")
        .set("auto.offset.reset", "earliest")
        .set("enable.partition.eof", "false")
        // Lag for the health view and /metrics comes from librdkafka's statistics.
        .set("statistics.interval.ms", "1000")
        // Bounds how long a fetch waits for data: part of the live latency.
        .set("fetch.wait.max.ms", cfg.fetch_wait_max_ms.to_string())
        // Once its prefetch queue is full, librdkafka stops fetching a partition for
        // this long (1 s by default). A consumer working through a backlog empties the
        // queue well within that and then sat idle for most of each second: the
        // default cut our catch-up rate by more than half.
        .set(
            "fetch.queue.backoff.ms",
            cfg.fetch_queue_backoff_ms.to_string(),
        );
    c.set("client.id", group::client_id(instance));
    for (k, v) in &cfg.client {
        c.set(k, v);
    }
    // Before joining: a group another instance already uses is refused, not split.
    let me = c.get("client.id").unwrap_or_default().to_string();
    let topic_names = names.iter().map(|n| n.to_string()).collect();
    let guard = tokio::task::spawn_blocking({
        let cfg = cfg.clone();
        move || {
            let guard = group::GroupGuard::new(&cfg, &me, topic_names)?;
            guard.check_alone().map(|()| guard)
        }
    })
    .await
    .map_err(|e| KafkaError::Guard(e.to_string()))??;
    let consumer: StreamConsumer<GroupContext> = c
        .create_with_context(GroupContext {
            state: state.clone(),
            brokers: cfg.brokers.clone().unwrap_or_default(),
            connected: AtomicBool::new(false),
            ends: Mutex::default(),
            assigned: Mutex::default(),
        })
        .map_err(|source| KafkaError::Client {
            what: "consumer",
            source,
        })?;
    consumer
        .subscribe(&names)
        .map_err(|source| KafkaError::Client {
            what: "subscription",
            source,
        })?;
    info!(topics = ?names, group = %cfg.group_id, "consuming from Kafka");
    Ok((consumer, Arc::new(guard)))
}

/// Stops the server: its group is shared with an instance it cannot merge with.
fn refuse(state: &SourceCtx, why: String) {
    error!(%why, "refusing to consume");
    state.report(SOURCE, false, format!("refused: {why}"));
    state.refusal.refuse(why);
}

/// A topic we read, interned so records share its name.
struct SourceTopic {
    name: Arc<str>,
    hint: Option<EventKind>,
}

/// The next offset per (topic index, partition).
type Positions = BTreeMap<(usize, i32), i64>;

/// Records read and not yet handed to the pipeline.
struct PendingBatch {
    records: Vec<Record>,
    next: Positions,
}

/// The select loop. `Ok` on shutdown; `Err` when the consumer must be rebuilt.
async fn consume(
    state: &SourceCtx,
    cfg: &KafkaConfig,
    consumer: StreamConsumer<GroupContext>,
    guard: Arc<group::GroupGuard>,
    watch: &mut group::SplitWatch,
    shutdown: &CancellationToken,
) -> Result<(), String> {
    let topics: Vec<SourceTopic> = source_topics(cfg)
        .into_iter()
        .map(|(name, hint)| SourceTopic {
            name: name.into(),
            hint,
        })
        .collect();
    let max_batch = state.pipeline.max_batch_records.max(1);
    let max_in_flight = cfg.batches_in_flight.max(1);
    let mut batch = PendingBatch {
        records: Vec::with_capacity(max_batch),
        next: Positions::new(),
    };
    // Next offset already handed to the pipeline, per partition: below it is a replay.
    // A restored checkpoint says where its state ends.
    let mut handed: HashMap<(usize, i32), i64> = restored_offsets(state, &topics);
    // Applied batches whose offsets wait for a checkpoint before being committed.
    let mut awaiting: std::collections::VecDeque<(u64, Positions)> = Default::default();
    let mut in_flight = FuturesOrdered::new();
    let mut ticker = tokio::time::interval(cfg.flush_interval());
    ticker.set_missed_tick_behavior(MissedTickBehavior::Delay);
    let mut commit_ticker = tokio::time::interval(cfg.commit_interval());
    commit_ticker.set_missed_tick_behavior(MissedTickBehavior::Delay);
    // Applied and not yet committed.
    let mut to_commit = Positions::new();
    let mut replays_skipped = 0u64;
    let mut ends = LogEnds::new(&topics, state.align.pause_held_per_input);
    // Partitions whose held events the checkpoint restored: once the assignment is
    // known, those not assigned to us are reported at their end, so they stop waiting.
    ends.last_sent = handed
        .keys()
        .map(|(t, p)| (format!("{}/{p}", topics[*t].name), LogPosition::Behind))
        .collect();
    // What librdkafka has ready, taken in one go (up to a batch): one pass of the
    // select loop per message cost as much as the rest of the consumer together.
    let mut messages = consumer.stream().ready_chunks(max_batch);

    let result = loop {
        // Biased, in this order, so a steady stream of records cannot starve the
        // acknowledgements and the tickers.
        tokio::select! {
            biased;
            _ = shutdown.cancelled() => break Ok(()),
            Some((done, next)) = in_flight.next(), if !in_flight.is_empty() => {
                let done: Result<BatchResult, PipelineClosed> = done;
                match done {
                    Ok(r) => awaiting.push_back((r.seq, next)),
                    // The server is stopping: nothing more will be applied.
                    Err(PipelineClosed) => break Ok(()),
                }
                // What gathered while the pipeline was busy goes now.
                if in_flight.is_empty() && !batch.records.is_empty() {
                    in_flight.push_back(hand_over(&state.intake, &topics, &mut batch, &mut handed, &mut ends, &consumer));
                }
            }
            _ = commit_ticker.tick(), if !awaiting.is_empty() || !to_commit.is_empty() => {
                durable_only(state, &mut awaiting, &mut to_commit);
                if !to_commit.is_empty() {
                    commit(&consumer, &topics, &std::mem::take(&mut to_commit), CommitMode::Async);
                }
            }
            _ = ticker.tick() => {
                // No silent split (group.rs): each assignment is weighed, and holding
                // part of the partitions past the grace is refused or said.
                let assigned = consumer.context().assigned.lock().expect("assigned lock poisoned").take();
                if let Some(n) = assigned {
                    let guard = guard.clone();
                    if let Ok(holding) = tokio::task::spawn_blocking(move || guard.holding(n)).await {
                        if holding == group::Holding::All && !watch.held_all() {
                            info!(group = %cfg.group_id, partitions = n,
                                "this instance holds every partition of its topics: a full replica \
                                 for its group; another instance must use a group id of its own");
                        }
                        watch.assigned(holding, std::time::Instant::now());
                    }
                }
                match watch.verdict(cfg.split_grace(), std::time::Instant::now()) {
                    group::Verdict::Fine => {}
                    group::Verdict::Refuse { assigned, total, since } => {
                        let guard = guard.clone();
                        let why = tokio::task::spawn_blocking(move || guard.refusal(assigned, total, since))
                            .await
                            .unwrap_or_else(|e| e.to_string());
                        refuse(state, why);
                        break Ok(());
                    }
                    group::Verdict::Warn { assigned, total } => {
                        let m = group::sharing_message(&cfg.group_id, assigned, total);
                        warn!("{m}");
                        state.report(SOURCE, true, m);
                    }
                }
                if !batch.records.is_empty() && in_flight.len() < max_in_flight {
                    in_flight.push_back(hand_over(&state.intake, &topics, &mut batch, &mut handed, &mut ends, &consumer));
                } else if in_flight.is_empty() && batch.records.is_empty() {
                    // Nothing to hand over: still tell the pipeline when a partition
                    // reached its end (or was revoked), so it holds nobody back.
                    ends.refresh_assignment(&consumer);
                    if let Some(inputs) = ends.changed(&consumer, &handed)
                        && !state.intake.report_inputs(inputs)
                    {
                        ends.last_sent.clear(); // the queue was full: again next tick
                    }
                }
                ends.pause_far_ahead(&consumer, &state.stats.order_view());
            }
            Some(chunk) = messages.next(), if in_flight.len() < max_in_flight => {
                let (mut fatal, mut read_any) = (None, false);
                // The payloads of the whole chunk go into one buffer, each record a
                // slice of it: one allocation per chunk, not one per message (freed
                // later on the archive thread).
                let size = chunk.iter().flatten().map(|m| m.payload_len()).sum();
                let mut payloads = bytes::BytesMut::with_capacity(size);
                // Messages come in runs from one partition (librdkafka hands over a
                // fetched batch at a time): its topic and handed offset are looked up
                // once per run.
                let mut run: Option<Run> = None;
                for msg in chunk {
                    let m = match msg {
                        Ok(m) => m,
                        Err(e) => {
                            if let Some(why) = consumer.context().on_error(&e) {
                                fatal = Some(why);
                            }
                            continue;
                        }
                    };
                    read_any = true;
                    let r = match run.take() {
                        Some(r) if r.partition == m.partition() && *topics[r.topic].name == *m.topic() => r,
                        _ => match topics.iter().position(|t| *t.name == *m.topic()) {
                            Some(t) => Run {
                                topic: t,
                                partition: m.partition(),
                                handed: handed.get(&(t, m.partition())).copied(),
                            },
                            None => continue,
                        },
                    };
                    let key = (r.topic, r.partition);
                    let skip = r.handed.is_some_and(|next| m.offset() < next);
                    run = Some(r);
                    if skip {
                        replays_skipped += 1;
                        if replays_skipped.is_power_of_two() {
                            debug!(replays_skipped, "skipped records this process already applied");
                        }
                        continue;
                    }
                    payloads.extend_from_slice(m.payload().unwrap_or_default());
                    batch.records.push(to_record(&topics[key.0], &m, payloads.split().freeze()));
                    batch.next.insert(key, m.offset() + 1);
                    if batch.records.len() >= max_batch {
                        in_flight.push_back(hand_over(&state.intake, &topics, &mut batch, &mut handed, &mut ends, &consumer));
                        // The hand-over moved this partition's handed offset.
                        run = None;
                    }
                }
                if read_any {
                    consumer.context().mark_connected();
                }
                if let Some(why) = fatal {
                    break Err(why);
                }
                // Adaptive batching: an idle pipeline gets what was read at once (low
                // latency when the stream is slow); a busy one lets records gather
                // into a larger batch (throughput when it is not).
                if in_flight.is_empty() && !batch.records.is_empty() {
                    in_flight.push_back(hand_over(&state.intake, &topics, &mut batch, &mut handed, &mut ends, &consumer));
                }
            }
        }
    };

    // Batches already handed over are applied (or the pipeline is gone): wait for them,
    // bounded, and commit what they cover. The partial batch is dropped uncommitted, so
    // it is read again by whoever consumes next.
    let drain = async {
        while let Some((done, next)) = in_flight.next().await {
            match done {
                Ok(r) => awaiting.push_back((r.seq, next)),
                Err(_) => break,
            }
        }
    };
    let _ = tokio::time::timeout(SHUTDOWN_WAIT, drain).await;
    // Only what a checkpoint holds; the rest is skipped after a restart by the restored
    // positions, or read again by another owner of the partition.
    durable_only(state, &mut awaiting, &mut to_commit);
    if !to_commit.is_empty() {
        commit(&consumer, &topics, &to_commit, CommitMode::Sync);
    }
    if result.is_ok() && state.refusal.reason().is_none() {
        state.report(SOURCE, false, "stopped".into());
    }
    result
}

/// The partition the last messages of a chunk came from.
struct Run {
    topic: usize,
    partition: i32,
    /// Its next offset already handed to the pipeline, when known.
    handed: Option<i64>,
}

fn to_record(topic: &SourceTopic, m: &BorrowedMessage<'_>, bytes: bytes::Bytes) -> Record {
    Record {
        bytes,
        hint: topic.hint,
        origin: Origin::Kafka {
            topic: topic.name.clone(),
            partition: m.partition(),
            offset: m.offset(),
        },
    }
}

/// Hands the pending batch to the pipeline; the future resolves once it is applied,
/// with the positions to commit. The batch carries every partition's next offset so a
/// checkpoint stores them with the state.
fn hand_over(
    pipeline: &PipelineHandle,
    topics: &[SourceTopic],
    batch: &mut PendingBatch,
    handed: &mut HashMap<(usize, i32), i64>,
    ends: &mut LogEnds,
    consumer: &StreamConsumer<GroupContext>,
) -> impl Future<Output = (Result<BatchResult, PipelineClosed>, Positions)> + use<> {
    let records = std::mem::take(&mut batch.records);
    let next = std::mem::take(&mut batch.next);
    batch.records.reserve(records.len());
    for (k, v) in &next {
        handed.insert(*k, *v);
        ends.note_read(*k);
    }
    let inputs = ends.positions(consumer, handed);
    let position: serde_json::Map<String, serde_json::Value> = handed
        .iter()
        .map(|((t, p), o)| (format!("{}/{p}", topics[*t].name), serde_json::json!(o)))
        .collect();
    let pipeline = pipeline.clone();
    async move {
        let done = pipeline
            .submit_with_inputs(
                records,
                Some((SOURCE.to_string(), serde_json::Value::Object(position))),
                inputs,
            )
            .await;
        (done, next)
    }
}

/// Where a partition's log ends, from librdkafka's statistics.
#[derive(Debug, Clone, Copy)]
struct PartitionEnd {
    /// The high watermark: the offset the next record produced gets.
    hi: i64,
    /// The log's start (equal to `hi` when it is empty).
    lo: i64,
}

/// What this consumer knows of each assigned partition's end of log, for the
/// pipeline's event-time alignment, and which partitions it paused.
struct LogEnds {
    names: Vec<Arc<str>>,
    /// Assigned partitions (refreshed from librdkafka), with their input names.
    assigned: BTreeMap<(usize, i32), String>,
    /// Read from since the assignment was last refreshed: refresh before reporting.
    unseen: bool,
    paused: HashSet<(usize, i32)>,
    pause_at: usize,
    last_sent: Vec<(String, LogPosition)>,
}

impl LogEnds {
    fn new(topics: &[SourceTopic], pause_at: usize) -> Self {
        LogEnds {
            names: topics.iter().map(|t| t.name.clone()).collect(),
            assigned: BTreeMap::new(),
            unseen: true,
            paused: HashSet::new(),
            pause_at: pause_at.max(1),
            last_sent: Vec::new(),
        }
    }

    fn note_read(&mut self, key: (usize, i32)) {
        if !self.assigned.contains_key(&key) {
            self.unseen = true;
        }
    }

    /// Re-reads the assignment (after a rebalance it changes; revoked partitions are
    /// reported at their end so they hold nobody back).
    fn refresh_assignment(&mut self, consumer: &StreamConsumer<GroupContext>) {
        let Ok(tpl) = consumer.assignment() else {
            return;
        };
        let mut assigned = BTreeMap::new();
        for e in tpl.elements() {
            if let Some(t) = self.names.iter().position(|n| **n == *e.topic()) {
                assigned.insert(
                    (t, e.partition()),
                    format!("{}/{}", e.topic(), e.partition()),
                );
            }
        }
        self.paused.retain(|k| assigned.contains_key(k));
        self.assigned = assigned;
        self.unseen = false;
    }

    /// Every assigned partition's position: at its end when the offsets handed over
    /// (or known to librdkafka) reach its high watermark, behind it otherwise, and
    /// behind while nothing is known yet (just assigned: its records may be coming).
    fn positions(
        &mut self,
        consumer: &StreamConsumer<GroupContext>,
        handed: &HashMap<(usize, i32), i64>,
    ) -> Vec<(String, LogPosition)> {
        if self.unseen {
            self.refresh_assignment(consumer);
        }
        let ends = consumer.context().ends.lock().expect("ends lock poisoned");
        let mut out: Vec<(String, LogPosition)> = self
            .assigned
            .iter()
            .map(|(k, name)| {
                // Only offsets this process handed over count: the group's committed
                // offset and librdkafka's application offset were seen to claim the end
                // of a partition whose records (after a restart) were still unread.
                let at_end = ends.get(name).is_some_and(|e| {
                    let pos = handed.get(k).copied().unwrap_or(-1);
                    e.hi >= 0 && (pos >= e.hi || e.lo >= e.hi)
                });
                let position = if at_end && !self.paused.contains(k) {
                    LogPosition::AtEnd
                } else {
                    LogPosition::Behind
                };
                (name.clone(), position)
            })
            .collect();
        // Partitions no longer ours hold nobody back.
        for (name, _) in &self.last_sent {
            if !out.iter().any(|(n, _)| n == name) {
                out.push((name.clone(), LogPosition::AtEnd));
            }
        }
        self.last_sent = out.clone();
        out
    }

    /// The positions, if they changed since last sent.
    fn changed(
        &mut self,
        consumer: &StreamConsumer<GroupContext>,
        handed: &HashMap<(usize, i32), i64>,
    ) -> Option<Vec<(String, LogPosition)>> {
        if self.assigned.is_empty() {
            // Not in the group yet (or between assignments): nothing known to report.
            return None;
        }
        let before = self.last_sent.clone();
        let now = self.positions(consumer, handed);
        (now != before).then_some(now)
    }

    /// Pauses partitions whose events wait in the aligner far ahead of the others, and
    /// resumes them once half have gone. The partitions furthest behind are never
    /// paused (and are resumed): they are what the others wait for, and pausing them
    /// would stall the merge until they count as idle.
    fn pause_far_ahead(
        &mut self,
        consumer: &StreamConsumer<GroupContext>,
        view: &crate::stats::OrderView,
    ) {
        let slowest = view
            .inputs
            .iter()
            .filter(|i| !i.idle)
            .filter_map(|i| i.watermark)
            .min();
        let held: HashMap<&str, (usize, bool)> = view
            .inputs
            .iter()
            .map(|i| {
                let ahead = i.watermark.zip(slowest).is_some_and(|(w, s)| w > s);
                (i.name.as_str(), (i.held, ahead))
            })
            .collect();
        let (mut pause, mut resume) = (TopicPartitionList::new(), TopicPartitionList::new());
        let mut changed = Vec::new();
        for (k, name) in &self.assigned {
            let (n, ahead) = held.get(name.as_str()).copied().unwrap_or((0, false));
            let paused = self.paused.contains(k);
            if !paused && ahead && n >= self.pause_at {
                let _ = pause.add_partition(&self.names[k.0], k.1);
                changed.push((*k, true));
            } else if paused && (!ahead || n <= self.pause_at / 2) {
                let _ = resume.add_partition(&self.names[k.0], k.1);
                changed.push((*k, false));
            }
        }
        if pause.count() > 0 {
            match consumer.pause(&pause) {
                Ok(()) => debug!(partitions = %describe(&pause), "paused: far ahead of the others"),
                Err(e) => warn!(error = %e, "could not pause partitions"),
            }
        }
        if resume.count() > 0 {
            match consumer.resume(&resume) {
                Ok(()) => debug!(partitions = %describe(&resume), "resumed"),
                Err(e) => warn!(error = %e, "could not resume partitions"),
            }
        }
        for (k, paused) in changed {
            if paused {
                self.paused.insert(k);
            } else {
                self.paused.remove(&k);
            }
        }
    }
}

/// The next offsets the restored checkpoint's state ends at, per partition.
fn restored_offsets(state: &SourceCtx, topics: &[SourceTopic]) -> HashMap<(usize, i32), i64> {
    let mut out = HashMap::new();
    let Some(serde_json::Value::Object(m)) = state.restored.get(SOURCE) else {
        return out;
    };
    for (key, offset) in m {
        let Some((topic, partition)) = key.rsplit_once('/') else {
            continue;
        };
        let (Some(t), Ok(p), Some(o)) = (
            topics.iter().position(|x| *x.name == *topic),
            partition.parse::<i32>(),
            offset.as_i64(),
        ) else {
            continue;
        };
        out.insert((t, p), o);
    }
    if !out.is_empty() {
        info!(
            partitions = out.len(),
            "resuming after the offsets of the restored checkpoint"
        );
    }
    out
}

/// Moves the offsets of batches a durable checkpoint covers into `to_commit`.
fn durable_only(
    state: &SourceCtx,
    awaiting: &mut std::collections::VecDeque<(u64, Positions)>,
    to_commit: &mut Positions,
) {
    let durable = *state.durable.borrow();
    while awaiting.front().is_some_and(|(seq, _)| *seq <= durable) {
        if let Some((_, next)) = awaiting.pop_front() {
            to_commit.extend(next);
        }
    }
}

/// Commits `next` (the offsets after the last applied records).
fn commit(
    consumer: &StreamConsumer<GroupContext>,
    topics: &[SourceTopic],
    next: &Positions,
    mode: CommitMode,
) {
    let mut tpl = TopicPartitionList::with_capacity(next.len());
    for ((t, p), o) in next {
        if let Err(e) = tpl.add_partition_offset(&topics[*t].name, *p, Offset::Offset(*o)) {
            warn!(error = %e, "bad offset to commit");
        }
    }
    // A failed commit only means these records may be read again after a rebalance or
    // restart: at-least-once holds, so it is logged, not fatal.
    if let Err(e) = consumer.commit(&tpl, mode) {
        warn!(error = %e, "could not commit offsets");
    }
}

/// The consumer's callbacks: rebalances and commits logged, statistics turned into lag
/// and broker state for the health view.
struct GroupContext {
    state: SourceCtx,
    brokers: String,
    /// Mirrors the health view's flag, so the hot path takes no lock.
    connected: AtomicBool,
    /// Each consumed `topic/partition`'s end of log, from the statistics.
    ends: Mutex<HashMap<String, PartitionEnd>>,
    /// Partitions in the last assignment, until the consume loop has checked it.
    assigned: Mutex<Option<usize>>,
}

impl GroupContext {
    fn mark_connected(&self) {
        if !self.connected.swap(true, Ordering::Relaxed) {
            info!(brokers = %self.brokers, "Kafka broker reachable; consuming");
            self.state
                .report(SOURCE, true, format!("consuming from {}", self.brokers));
        }
    }

    fn mark_disconnected(&self, why: String) {
        if self.connected.swap(false, Ordering::Relaxed) {
            warn!(brokers = %self.brokers, %why, "Kafka broker unreachable; retrying");
        }
        self.state.report(SOURCE, false, why);
    }

    /// Handles an error from `recv`. `Some` when the consumer must be rebuilt.
    fn on_error(&self, e: &RdKafkaError) -> Option<String> {
        match e {
            RdKafkaError::MessageConsumptionFatal(code) => {
                error!(%code, "fatal Kafka consumer error; rebuilding the consumer");
                Some(format!("fatal consumer error: {code}"))
            }
            RdKafkaError::MessageConsumption(
                code @ (RDKafkaErrorCode::AllBrokersDown
                | RDKafkaErrorCode::BrokerTransportFailure
                | RDKafkaErrorCode::NetworkException
                | RDKafkaErrorCode::RequestTimedOut),
            ) => {
                self.mark_disconnected(format!("broker {}: {code}", self.brokers));
                None
            }
            other => {
                // Transient (a topic not yet known, a coordinator moving): librdkafka
                // recovers by itself.
                warn!(error = %other, "Kafka consumer error");
                None
            }
        }
    }
}

impl ClientContext for GroupContext {
    fn log(&self, level: RDKafkaLogLevel, facility: &str, message: &str) {
        logging::log("consumer", level, facility, message);
    }

    fn error(&self, error: RdKafkaError, reason: &str) {
        self.mark_disconnected(format!("{error}: {reason}"));
    }

    fn stats(&self, s: Statistics) {
        let up = s
            .brokers
            .values()
            .any(|b| b.source != "logical" && b.state == "UP");
        let lag = partition_lag(&s);
        self.state.health.update(SOURCE, |h| h.lag = lag);
        {
            let mut ends = self.ends.lock().expect("ends lock poisoned");
            for (topic, t) in &s.topics {
                for (p, part) in &t.partitions {
                    if *p < 0 || part.fetch_state == "none" {
                        continue;
                    }
                    ends.insert(
                        format!("{topic}/{p}"),
                        PartitionEnd {
                            hi: part.hi_offset,
                            lo: part.lo_offset,
                        },
                    );
                }
            }
        }
        if up {
            self.mark_connected();
        } else {
            self.mark_disconnected(format!("no connection to broker {}", self.brokers));
        }
    }
}

/// Lag in messages per `topic/partition` we consume: the high watermark minus the
/// committed offset (minus the start of the log while nothing is committed yet).
fn partition_lag(s: &Statistics) -> BTreeMap<String, i64> {
    let mut lag = BTreeMap::new();
    for (topic, t) in &s.topics {
        for (p, part) in &t.partitions {
            if *p < 0 || part.fetch_state == "none" {
                continue;
            }
            let n = if part.consumer_lag >= 0 {
                part.consumer_lag
            } else if part.hi_offset >= 0 {
                part.hi_offset - part.lo_offset.max(0)
            } else {
                continue;
            };
            lag.insert(format!("{topic}/{p}"), n);
        }
    }
    lag
}

impl ConsumerContext for GroupContext {
    fn pre_rebalance(&self, _: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        match rebalance {
            Rebalance::Revoke(tpl) => info!(partitions = %describe(tpl), "partitions revoked"),
            Rebalance::Assign(_) => {}
            Rebalance::Error(e) => warn!(error = %e, "rebalance failed"),
        }
    }

    fn post_rebalance(&self, _: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        if let Rebalance::Assign(tpl) = rebalance {
            info!(partitions = %describe(tpl), "partitions assigned");
            *self.assigned.lock().expect("assigned lock poisoned") = Some(tpl.count());
        }
    }

    fn commit_callback(&self, result: KafkaResult<()>, offsets: &TopicPartitionList) {
        match result {
            Ok(()) => debug!(partitions = offsets.count(), "offsets committed"),
            Err(e) => warn!(error = %e, partitions = %describe(offsets), "offset commit failed"),
        }
    }
}

/// `topic/partition` list for logs.
fn describe(tpl: &TopicPartitionList) -> String {
    tpl.elements()
        .iter()
        .map(|e| format!("{}/{}", e.topic(), e.partition()))
        .collect::<Vec<_>>()
        .join(",")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lag_is_reported_per_consumed_partition() {
        use rdkafka::statistics::{Partition, Topic};
        let part = |partition, fetch_state: &str, consumer_lag, lo_offset, hi_offset| Partition {
            partition,
            fetch_state: fetch_state.into(),
            consumer_lag,
            lo_offset,
            hi_offset,
            ..Partition::default()
        };
        let mut topic = Topic::default();
        for p in [
            part(0, "active", 5, 0, 10),
            // Nothing committed yet: everything retained is lag.
            part(1, "active", -1, 2, 7),
            // Not ours (another member of the group reads it).
            part(2, "none", -1, -1, -1),
            // librdkafka's "unassigned" pseudo-partition.
            part(-1, "none", -1, -1, -1),
        ] {
            topic.partitions.insert(p.partition, p);
        }
        let mut s = Statistics::default();
        s.topics.insert("like".into(), topic);
        assert_eq!(
            partition_lag(&s),
            BTreeMap::from([("like/0".to_string(), 5), ("like/1".to_string(), 5)])
        );
    }
}
