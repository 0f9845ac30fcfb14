//! Building and running the application: state, the pipeline thread, the sources, the
//! live hub and the HTTP server. `Application::build` binds the port (0 picks a free
//! one, which `port()` reports) so tests can start the real thing.

use std::net::SocketAddr;
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use anyhow::Context;
use tokio::net::TcpListener;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

use crate::checkpoint::CheckpointCtx;
use crate::clock::wall_ms;
use crate::config::Config;
use crate::deadletter::{DeadLetterLog, DeadLetterSink, FileSink};
use crate::hub::{Hub, HubInputs};
use crate::intake::PipelineHandle;
use crate::pipeline::{self, Applying, Checkpointing};
use crate::processor::Processor;
use crate::sources::generator::{self, Command, GeneratorControl};
use crate::sources::{Refusal, SourceCtx, file};
use crate::stats::PipelineStats;
use crate::store::{Positions, StateStore};
use crate::web::AppState;
use crate::{kafka, web};

pub struct Application {
    listener: TcpListener,
    addr: SocketAddr,
    state: Arc<AppState>,
    /// Set when a source stops the server (a shared consumer group).
    refusal: Refusal,
    /// This server's id across restarts (Kafka mode: its consumer's client id).
    instance: Option<String>,
    generator: Option<(instabrand_generator::Generator, mpsc::Receiver<Command>)>,
}

impl Application {
    pub async fn build(config: Config) -> anyhow::Result<Application> {
        let kafka_mode = config.kafka.brokers.is_some();
        let sink: Box<dyn DeadLetterSink> = if kafka_mode {
            kafka::dead_letter_sink(&config.kafka).context("opening the dead-letter topic")?
        } else {
            let path = config.data_dir.join(&config.dead_letters.file);
            Box::new(
                FileSink::open(&path, config.dead_letters.max_file_bytes)
                    .with_context(|| format!("opening the dead-letter file {}", path.display()))?,
            )
        };
        let (pipeline, rx) = PipelineHandle::new(config.pipeline.queue_batches);
        let (store, processor, restored, held) = if config.state.persist {
            let path = config.data_dir.join(&config.state.file);
            let store = StateStore::open(&path)
                .with_context(|| format!("opening the state store {}", path.display()))?;
            match store.load()? {
                Some(cp) => {
                    let started = std::time::Instant::now();
                    let (p, replayed) = crate::checkpoint::restore(
                        cp.base.as_deref(),
                        &cp.log,
                        config.processor.clone(),
                    )
                    .map_err(|e| crate::store::StoreError::damaged(&path, e))?;
                    info!(
                        users = p.user_count(),
                        photos = p.photo_count(),
                        base_bytes = cp.base.as_ref().map_or(0, Vec::len),
                        changelog_entries = cp.log.len(),
                        replayed,
                        ms = started.elapsed().as_millis() as u64,
                        positions = ?cp.positions,
                        "restored the last checkpoint"
                    );
                    (Some(store), p, cp.positions, cp.held)
                }
                None => (
                    Some(store),
                    Processor::new(config.processor.clone()),
                    Positions::new(),
                    Vec::new(),
                ),
            }
        } else {
            (
                None,
                Processor::new(config.processor.clone()),
                Positions::new(),
                Vec::new(),
            )
        };
        let instance = if kafka_mode {
            let dir = &config.data_dir;
            Some(crate::sources::kafka::instance_id(dir).with_context(|| {
                format!(
                    "keeping this instance's id in {}",
                    dir.join(crate::sources::kafka::INSTANCE_FILE).display()
                )
            })?)
        } else {
            None
        };
        let file_mode = config.file_source.path.is_some();
        let generator_on = config
            .generator
            .enabled
            .unwrap_or(!kafka_mode && !file_mode);
        let (control, generator) = if generator_on {
            let g = &config.generator;
            let generator = instabrand_generator::Generator::new(instabrand_generator::Config {
                seed: g.seed,
                users: g.users,
                mean_follows: g.mean_follows,
                start_ms: wall_ms(),
                rate: g.rate,
                ..instabrand_generator::Config::default()
            });
            let mut generator = generator;
            let skipped = generator::resume(&mut generator, &restored, wall_ms());
            if skipped > 0 {
                info!(
                    events = skipped,
                    "generator resumed: same network, a fresh stream"
                );
            }
            let (control, commands) = GeneratorControl::new(g.rate);
            (Some(control), Some((generator, commands)))
        } else {
            (None, None)
        };
        let control_token = match &config.control_token {
            Some(t) if !t.is_empty() => t.clone(),
            _ => {
                let t = format!("{:032x}", rand::random::<u128>());
                warn!(token = %t, "no control_token configured; presenter controls use this one");
                t
            }
        };
        let listener = TcpListener::bind((config.bind, config.port))
            .await
            .with_context(|| format!("binding {}:{}", config.bind, config.port))?;
        let addr = listener.local_addr()?;
        let checkpointing = Checkpointing {
            store,
            interval: Duration::from_millis(config.state.checkpoint_interval_ms.max(1)),
            min_gap: Duration::from_millis(config.state.durable_wait_ms),
            positions: restored.clone(),
            held,
            max_unlogged: config.state.max_unlogged_events.max(1),
        };
        let archive = crate::archive::Archive::start_if_enabled(&config.archive, &config.data_dir)
            .context("starting the archive")?;
        if !config.pipeline.apply {
            // Offsets are committed for events this server never applies: said loudly
            // so nobody takes an archiver's empty dashboard for a broken one.
            warn!(
                archive = archive.is_some(),
                "pipeline.apply = false: this server only decodes, archives and commits; \
                 nothing is applied to the live state"
            );
        }
        let stats = Arc::new(PipelineStats::default());
        // A restored state's newest time, until the pipeline applies more: the
        // generator starts its event time there.
        stats.set_applied_time(processor.newest_time());
        let state = Arc::new(AppState {
            archive,
            processor: Arc::new(RwLock::new(processor)),
            readers: Default::default(),
            durable: Arc::new(tokio::sync::watch::channel(0).0),
            restored: Arc::new(restored),
            hub: Arc::new(Hub::new(config.live.clone())),
            dead_letters: Arc::new(DeadLetterLog::new(config.dead_letters.keep_recent)),
            pipeline,
            stats,
            sources: Arc::default(),
            generator: control,
            control_token,
            started: Instant::now(),
            config,
        });
        // Every configured source is in the health view from the first moment, as
        // connecting, before its task has run: a client polling health must never see
        // a configured source missing.
        if let Some(brokers) = &state.config.kafka.brokers {
            state.sources.update("kafka", |h| {
                h.connected = false;
                h.detail = format!("connecting to {brokers}");
            });
        }
        if let Some(path) = &state.config.file_source.path {
            state.sources.update(file::NAME, |h| {
                h.connected = false;
                h.detail = format!("opening {}", path.display());
            });
        }
        if state.generator.is_some() {
            state.sources.update(generator::NAME, |h| {
                h.connected = false;
                h.detail = "starting the embedded generator".into();
            });
        }
        let applying = Applying {
            processor: state.processor.clone(),
            readers: state.readers.clone(),
            hub: state.hub.clone(),
            dead_letters: state.dead_letters.clone(),
            stats: state.stats.clone(),
            archive: state.archive.clone(),
            durable: state.durable.clone(),
            align: state.config.align.clone(),
            pipeline: state.config.pipeline.clone(),
            limits: state.config.limits,
            checkpoints: CheckpointCtx {
                state: state.config.state.clone(),
                processor: state.config.processor.clone(),
                archive: state.archive.clone(),
                stats: state.stats.clone(),
                durable: state.durable.clone(),
            },
        };
        std::thread::Builder::new()
            .name("pipeline".into())
            .spawn(move || pipeline::run_blocking(applying, rx, sink, checkpointing))
            .context("starting the pipeline thread")?;
        Ok(Application {
            listener,
            addr,
            state,
            generator,
            refusal: Refusal::default(),
            instance,
        })
    }

    pub fn port(&self) -> u16 {
        self.addr.port()
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    pub fn state(&self) -> Arc<AppState> {
        self.state.clone()
    }

    /// What a source is given: the intake, health, restored positions and counters.
    pub fn source_ctx(&self) -> SourceCtx {
        source_ctx(&self.state, &self.refusal)
    }

    /// Serves until `shutdown` is cancelled, then stops the sources and the hub.
    /// A source that refuses to go on (a shared consumer group) stops the server as
    /// `shutdown` would, and `run` then returns its reason as the error.
    pub async fn run(self, shutdown: CancellationToken) -> anyhow::Result<()> {
        let (state, refusal) = (self.state, self.refusal);
        {
            let (refusal, shutdown) = (refusal.clone(), shutdown.clone());
            tokio::spawn(async move {
                tokio::select! {
                    _ = refusal.refused() => shutdown.cancel(),
                    _ = shutdown.cancelled() => {}
                }
            });
        }
        let hub_inputs = {
            let st = state.clone();
            HubInputs {
                processor: state.processor.clone(),
                readers: state.readers.clone(),
                stats: state.stats.clone(),
                health: Box::new(move || st.health()),
            }
        };
        tokio::spawn(state.hub.clone().run(hub_inputs, shutdown.child_token()));
        if let (Some((generator, commands)), Some(control)) =
            (self.generator, state.generator.clone())
        {
            tokio::spawn(generator::run(
                source_ctx(&state, &refusal),
                state.config.generator.time_scale,
                generator,
                control,
                commands,
                shutdown.child_token(),
            ));
        }
        if state.config.kafka.brokers.is_some() {
            tokio::spawn(crate::sources::kafka::run(
                source_ctx(&state, &refusal),
                state.config.kafka.clone(),
                self.instance.clone().unwrap_or_default(),
                shutdown.child_token(),
            ));
        }
        if let Some(path) = state.config.file_source.path.clone() {
            tokio::spawn(file::run(
                source_ctx(&state, &refusal),
                path,
                state.config.file_source.rate,
                shutdown.child_token(),
            ));
        }
        // Wakes the pipeline so due checkpoints happen even while no batch arrives.
        let ticker = {
            let st = state.clone();
            let stop = shutdown.child_token();
            // Also often enough that an input falling silent stops holding the others
            // back soon after `align.idle_ms`.
            let every = Duration::from_millis(
                st.config
                    .state
                    .durable_wait_ms
                    .min(st.config.align.idle_ms / 2)
                    .clamp(10, 1000),
            );
            tokio::spawn(async move {
                let mut t = tokio::time::interval(every);
                loop {
                    tokio::select! {
                        _ = stop.cancelled() => break,
                        _ = t.tick() => st.pipeline.tick(),
                    }
                }
            })
        };
        info!(addr = %self.addr, "serving");
        let stop = shutdown.clone();
        // The hub writes frames straight into WebSocket sockets: connections are
        // accepted as outlets it can reach (`hub/outlet.rs`).
        let served = axum::serve(
            crate::hub::outlet::Listener(self.listener),
            web::app(state.clone())
                .into_make_service_with_connect_info::<crate::hub::outlet::Socket>(),
        )
        .with_graceful_shutdown(async move { stop.cancelled().await })
        .await
        .context("HTTP server failed");
        ticker.abort();
        // A last checkpoint, so a clean stop loses nothing and replays nothing.
        if let Err(e) = state.pipeline.checkpoint().await {
            warn!(error = %e, "final checkpoint failed");
        }
        if let Some(a) = state.archive.clone() {
            match tokio::task::spawn_blocking(move || a.shutdown()).await {
                Ok(Err(e)) => warn!(error = %e, "final archive write failed"),
                Err(e) => warn!(error = %e, "archive shutdown panicked"),
                Ok(Ok(())) => {}
            }
        }
        if let Some(why) = refusal.reason() {
            return Err(anyhow::anyhow!(why));
        }
        served
    }
}

/// A source's handles, from the application state.
fn source_ctx(state: &AppState, refusal: &Refusal) -> SourceCtx {
    SourceCtx {
        intake: state.pipeline.clone(),
        health: state.sources.clone(),
        restored: state.restored.clone(),
        stats: state.stats.clone(),
        durable: state.durable.subscribe(),
        pipeline: state.config.pipeline.clone(),
        align: state.config.align.clone(),
        refusal: refusal.clone(),
    }
}
