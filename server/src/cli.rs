//! The command line: `serve`, `generate`, `bench`. Flags are the last layer of the
//! configuration (see `config`), so each flag here maps onto a config key.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context;
use clap::{Parser, Subcommand};
use instabrand_generator::Shape;
use instabrand_shared::time::parse_time;
use serde_json::{Map, Value, json};
use tokio_util::sync::CancellationToken;

use crate::config::Config;
use crate::startup::Application;
use crate::{bench, telemetry};

#[derive(Parser, Debug)]
#[command(
    name = "instabrand",
    version,
    about = "Live brand analytics from a social network's event stream"
)]
pub struct Cli {
    /// A TOML configuration file (default: ./instabrand.toml if present).
    #[arg(long, global = true)]
    pub config: Option<PathBuf>,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Run the server: the embedded generator by default, Kafka with --kafka.
    Serve {
        /// Port to listen on (0 picks a free one and prints it).
        #[arg(long)]
        port: Option<u16>,
        /// Address to bind (use 0.0.0.0 to serve other machines, e.g. a wall screen).
        #[arg(long)]
        bind: Option<String>,
        /// The built dashboard (Trunk's dist/).
        #[arg(long)]
        static_dir: Option<PathBuf>,
        /// Where dead letters (and state) are written.
        #[arg(long)]
        data_dir: Option<PathBuf>,
        /// Kafka brokers, host:port[,host:port…]: consume Kafka instead of the generator.
        #[arg(long)]
        kafka: Option<String>,
        /// Do not run the embedded generator.
        #[arg(long)]
        no_generator: bool,
        /// The embedded generator's events per second.
        #[arg(long)]
        rate: Option<f64>,
        /// Event time runs this many times faster than the wall clock in the embedded
        /// generator (2880: 30 minutes of wall time are 60 days of event time).
        #[arg(long)]
        time_scale: Option<f64>,
        /// The embedded generator's seed.
        #[arg(long)]
        seed: Option<u64>,
        /// Users in the embedded generator's network.
        #[arg(long)]
        users: Option<u32>,
        /// Read this NDJSON file as the source (resumable across restarts).
        #[arg(long)]
        events: Option<PathBuf>,
        /// Events per second from --events (0: as fast as possible).
        #[arg(long)]
        events_rate: Option<f64>,
        /// Keep state in memory only (no checkpoints in --data-dir).
        #[arg(long)]
        in_memory: bool,
        /// Archive raw events here: a folder, or s3://BUCKET/PREFIX (connection
        /// settings from [archive.s3] or the AWS_* environment).
        #[arg(long, value_name = "DIR|s3://BUCKET/PREFIX")]
        archive: Option<crate::archive::ArchiveLocation>,
    },
    /// Generate events: to an NDJSON file (--out) or to Kafka (--kafka).
    Generate {
        /// How many events (default: unlimited with --kafka; required with --out).
        #[arg(long)]
        events: Option<u64>,
        #[arg(long, default_value_t = 42)]
        seed: u64,
        #[arg(long, default_value_t = 20_000)]
        users: u32,
        #[arg(long, default_value_t = 20.0)]
        mean_follows: f64,
        /// Events per second (of event time for files; of wall time for Kafka).
        #[arg(long, default_value_t = 200.0)]
        rate: f64,
        /// Files only: spread the events evenly over this many days of event time
        /// (sets the rate), e.g. a file covering several retention windows.
        #[arg(long, conflicts_with_all = ["rate", "kafka"], requires = "out")]
        days: Option<f64>,
        /// Who posts: `activity` (everyone at a rate of their own) or `popular` (drawn
        /// by the same Zipf popularity as who gets followed; engagement likewise).
        #[arg(long, default_value_t = Shape::Activity)]
        shape: Shape,
        /// Event time of the first event, `YYYY-MM-DD HH:MM:SS` (files only).
        #[arg(long, default_value = "2017-06-12 00:00:00")]
        start: String,
        /// Write NDJSON here.
        #[arg(long)]
        out: Option<PathBuf>,
        /// Produce to these Kafka brokers instead.
        #[arg(long)]
        kafka: Option<String>,
    },
    /// Replay an archive: into a server fed by it (`--to embedded`) or to Kafka
    /// (`--to kafka HOST:PORT`).
    Replay {
        /// The archive: a folder holding dt=YYYY-MM-DD/, or s3://BUCKET/PREFIX.
        #[arg(long, value_name = "DIR|s3://BUCKET/PREFIX")]
        from: crate::archive::ArchiveLocation,
        /// Times the original pace; 0 or max: as fast as possible.
        #[arg(long, default_value = "max")]
        speed: crate::sources::replay::Speed,
        /// `embedded`, or `kafka HOST:PORT`.
        #[arg(long, num_args = 1..=2, default_values_t = ["embedded".to_string()])]
        to: Vec<String>,
        #[arg(long)]
        port: Option<u16>,
        #[arg(long)]
        data_dir: Option<PathBuf>,
        #[arg(long)]
        static_dir: Option<PathBuf>,
    },
    /// Rebuild the state store from the archive (when the store is damaged or was
    /// written in another format). The old file is kept beside the new one.
    Rebuild {
        /// The archive: a folder holding dt=YYYY-MM-DD/, or s3://BUCKET/PREFIX.
        /// Default: the configured archive.
        #[arg(long, value_name = "DIR|s3://BUCKET/PREFIX")]
        from: Option<crate::archive::ArchiveLocation>,
        #[arg(long)]
        data_dir: Option<PathBuf>,
    },
    /// Decode and process an event file on one thread; print events/s and peak RSS.
    Bench {
        /// The NDJSON file to process.
        #[arg(long)]
        events: PathBuf,
        /// First generate this many events into that file.
        #[arg(long)]
        generate: Option<u64>,
        /// Users in the generated network (its bootstrap is users × ~21 events; the
        /// rest of the file is the steady mix of uploads and engagement).
        #[arg(long, default_value_t = 20_000)]
        users: u32,
        /// Mean accounts each user of the generated network follows at first.
        #[arg(long, default_value_t = 20.0)]
        mean_follows: f64,
        /// Who posts in the generated network: `activity` or `popular` (see `generate`).
        #[arg(long, default_value_t = Shape::Activity)]
        shape: Shape,
        /// Afterwards, checkpoint the state into this redb file and time it.
        #[arg(long)]
        checkpoint_to: Option<PathBuf>,
        /// Also checkpoint into that file every this many seconds while applying, as
        /// the server does (serialize, then write on a second thread).
        #[arg(long, requires = "checkpoint_to")]
        checkpoint_every: Option<f64>,
        /// The first this many users read their home timelines throughout (noted a
        /// share per 4,096 events, as the pipeline notes the web layer's reads), so
        /// uploads fan out to them.
        #[arg(long, default_value_t = 0)]
        readers: u32,
        /// Instead, run the file through this many partition processors in one process,
        /// each on a thread (1 for the same path on one thread).
        #[arg(long, conflicts_with_all = ["checkpoint_to", "readers"])]
        partitions: Option<usize>,
    },
}

fn put(map: &mut Map<String, Value>, path: &[&str], v: Value) {
    match path {
        [last] => {
            map.insert(last.to_string(), v);
        }
        [first, rest @ ..] => {
            let child = map.entry(first.to_string()).or_insert_with(|| json!({}));
            if let Value::Object(m) = child {
                put(m, rest, v);
            }
        }
        [] => {}
    }
}

pub fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    telemetry::init();
    match cli.command {
        Command::Serve {
            port,
            bind,
            static_dir,
            data_dir,
            kafka,
            no_generator,
            rate,
            time_scale,
            seed,
            users,
            events,
            events_rate,
            in_memory,
            archive,
        } => {
            let mut o = Map::new();
            if let Some(v) = events {
                put(&mut o, &["file_source", "path"], json!(v));
            }
            if let Some(v) = events_rate {
                put(&mut o, &["file_source", "rate"], json!(v));
            }
            if in_memory {
                put(&mut o, &["state", "persist"], json!(false));
            }
            if let Some(v) = port {
                put(&mut o, &["port"], json!(v));
            }
            if let Some(v) = bind {
                put(&mut o, &["bind"], json!(v));
            }
            if let Some(v) = static_dir {
                put(&mut o, &["static_dir"], json!(v));
            }
            if let Some(v) = data_dir {
                put(&mut o, &["data_dir"], json!(v));
            }
            if let Some(v) = kafka {
                put(&mut o, &["kafka", "brokers"], json!(v));
            }
            if no_generator {
                put(&mut o, &["generator", "enabled"], json!(false));
            }
            if let Some(v) = rate {
                put(&mut o, &["generator", "rate"], json!(v));
            }
            if let Some(v) = time_scale {
                put(&mut o, &["generator", "time_scale"], json!(v));
            }
            if let Some(v) = seed {
                put(&mut o, &["generator", "seed"], json!(v));
            }
            if let Some(v) = users {
                put(&mut o, &["generator", "users"], json!(v));
            }
            let mut config = Config::load(cli.config.as_deref(), Value::Object(o))?;
            if let Some(location) = archive {
                config.archive.set_location(location);
            }
            serve(config)
        }
        Command::Generate {
            events,
            seed,
            users,
            mean_follows,
            rate,
            days,
            shape,
            start,
            out,
            kafka,
        } => {
            let start_ms =
                parse_time(&start).map_err(|e| anyhow::anyhow!("--start {start:?}: {e}"))?;
            let rate = match days {
                Some(d) => {
                    let n = events.context("--events is required with --days")?;
                    bench::rate_spanning(n, d).with_context(|| {
                        format!("--days {d} with --events {n}: need 2+ events and days > 0")
                    })?
                }
                None => rate,
            };
            let generator = instabrand_generator::Config {
                seed,
                users,
                mean_follows,
                start_ms,
                rate,
                shape,
            };
            match (out, kafka) {
                (Some(path), None) => {
                    let n = events.context("--events is required with --out")?;
                    bench::generate_file(&path, n, generator)
                        .with_context(|| format!("writing {}", path.display()))?;
                    eprintln!("wrote {n} events to {}", path.display());
                    Ok(())
                }
                (None, Some(brokers)) => {
                    let config = Config::load(
                        cli.config.as_deref(),
                        json!({ "kafka": { "brokers": brokers } }),
                    )?;
                    runtime()?.block_on(crate::kafka::produce(&config.kafka, generator, events))
                }
                _ => anyhow::bail!("give exactly one of --out FILE or --kafka BROKERS"),
            }
        }
        Command::Replay {
            from,
            speed,
            to,
            port,
            data_dir,
            static_dir,
        } => match to.iter().map(String::as_str).collect::<Vec<_>>()[..] {
            ["embedded"] => {
                let mut o = Map::new();
                put(&mut o, &["generator", "enabled"], json!(false));
                if let Some(v) = port {
                    put(&mut o, &["port"], json!(v));
                }
                if let Some(v) = data_dir {
                    put(&mut o, &["data_dir"], json!(v));
                }
                if let Some(v) = static_dir {
                    put(&mut o, &["static_dir"], json!(v));
                }
                let config = Config::load(cli.config.as_deref(), Value::Object(o))?;
                // Its own archive would receive every replayed event again.
                if config.archive.enabled && config.archive.location(&config.data_dir) == from {
                    anyhow::bail!(
                        "the replaying server would archive into {from}, the archive it reads: \
                         give it another archive location or set archive.enabled = false"
                    );
                }
                serve_with(
                    config,
                    Some(crate::sources::replay::ReplayConfig::new(from, speed)),
                )
            }
            ["kafka", brokers] => {
                let mut config = Config::load(cli.config.as_deref(), json!({}))?;
                config.kafka.brokers = Some(brokers.to_string());
                let summary = runtime()?.block_on(crate::sources::replay::replay_to_kafka(
                    &from,
                    speed,
                    &config.kafka,
                    &config.archive.s3,
                ))?;
                eprintln!("{summary}");
                Ok(())
            }
            _ => anyhow::bail!("--to embedded | --to kafka HOST:PORT"),
        },
        Command::Rebuild { from, data_dir } => {
            let mut o = Map::new();
            if let Some(v) = data_dir {
                put(&mut o, &["data_dir"], json!(v));
            }
            let config = Config::load(cli.config.as_deref(), Value::Object(o))?;
            let from = from.unwrap_or_else(|| config.archive.location(&config.data_dir));
            let store = config.data_dir.join(&config.state.file);
            println!("rebuilding {} from the archive {from}", store.display());
            let r = crate::rebuild::rebuild(
                &from,
                &config.archive.s3,
                &store,
                config.processor.clone(),
            )?;
            println!(
                "applied {} events ({} undecodable skipped) in {:.1} s: {} users, {} photos",
                r.events,
                r.undecodable,
                r.took.as_secs_f64(),
                r.users,
                r.photos
            );
            println!("sources resume at {}", serde_json::to_string(&r.positions)?);
            if let Some(old) = r.kept_old {
                println!("the previous store file is kept as {}", old.display());
            }
            Ok(())
        }
        Command::Bench {
            events,
            generate,
            users,
            mean_follows,
            shape,
            checkpoint_to,
            checkpoint_every,
            readers,
            partitions,
        } => {
            let config = Config::load(cli.config.as_deref(), json!({}))?;
            if let Some(n) = generate {
                let started = std::time::Instant::now();
                bench::generate_file(
                    &events,
                    n,
                    instabrand_generator::Config {
                        users,
                        mean_follows,
                        shape,
                        ..instabrand_generator::Config::default()
                    },
                )?;
                eprintln!(
                    "generated {n} events in {:.1} s",
                    started.elapsed().as_secs_f64()
                );
            }
            if let Some(n) = partitions {
                let r = crate::partition_bench::run_file(
                    &events,
                    n,
                    &config.processor,
                    &config.limits,
                )?;
                println!("partitions: {}", r.partitions);
                println!("events: {}", r.events);
                println!("rejected: {}", r.rejected);
                println!("seconds: {:.3}", r.elapsed.as_secs_f64());
                println!("events_per_sec: {:.0}", r.events_per_sec());
                println!("decode_seconds: {:.3}", r.decode.as_secs_f64());
                println!("apply_seconds: {:.3}", r.apply.as_secs_f64());
                println!("brands: {} likes: {}", r.brands, r.likes);
                println!("events_per_partition: {:?}", r.per_partition);
                println!("seconds_met_in: {}", r.meetings);
                println!("peak_rss_mb: {:.0}", r.peak_rss_mb.unwrap_or(f64::NAN));
                return Ok(());
            }
            let r = bench::run_file(
                &events,
                config.processor,
                &config.limits,
                bench::BenchOptions {
                    checkpoint_to: checkpoint_to.as_deref(),
                    checkpoint_every: checkpoint_every
                        .map(std::time::Duration::try_from_secs_f64)
                        .transpose()
                        .map_err(|e| anyhow::anyhow!("--checkpoint-every: {e}"))?,
                    readers,
                },
            )?;
            println!("events: {}", r.events);
            println!("rejected: {}", r.rejected);
            println!("users: {}", r.users);
            println!("photos: {}", r.photos);
            println!("by_type: {}", r.by_kind);
            println!("seconds: {:.3}", r.elapsed.as_secs_f64());
            println!("events_per_sec: {:.0}", r.events_per_sec());
            println!("peak_rss_mb: {:.0}", r.peak_rss_mb.unwrap_or(f64::NAN));
            if readers > 0 {
                println!("home_timelines_materialized: {}", r.active_readers);
            }
            if r.checkpoints_during > 0 {
                println!("checkpoints_while_applying: {}", r.checkpoints_during);
                println!(
                    "applying_paused_for_them_seconds: {:.4}",
                    r.checkpoint_pauses.as_secs_f64()
                );
                println!(
                    "longest_checkpoint_pause_ms: {:.3}",
                    r.checkpoint_pause_max.as_secs_f64() * 1e3
                );
            }
            if let Some(s) = r.checkpoint {
                println!("compactions_while_applying: {}", s.compactions_during);
                println!(
                    "final_compaction_seconds: {:.2} (replayed {} events)",
                    s.final_compaction_secs, s.final_replayed
                );
                println!(
                    "store_base_mb: {:.0}",
                    s.base_bytes as f64 / (1 << 20) as f64
                );
                println!(
                    "store_file_mb: {:.0}",
                    s.file_bytes as f64 / (1 << 20) as f64
                );
            }
            Ok(())
        }
    }
}

fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")
}

/// Every WebSocket holds a file descriptor: raise the soft limit to the hard one
/// (the usual soft limit, 1,024, would refuse the 1,025th dashboard), and say so when
/// even the hard limit is below the connection cap.
fn raise_open_file_limit(max_connections: usize) {
    match rlimit::increase_nofile_limit(u64::MAX) {
        Ok(limit) => {
            tracing::debug!(limit, "open-file limit");
            // Files, the store, Kafka and the listener need some too.
            if (limit as usize) < max_connections + 256 {
                tracing::warn!(
                    limit,
                    max_connections,
                    "the open-file limit is below live.max_connections; raise the hard limit \
                     (ulimit -Hn, LimitNOFILE=) or lower the cap"
                );
            }
        }
        Err(e) => tracing::warn!(error = %e, "could not raise the open-file limit"),
    }
}

fn serve(config: Config) -> anyhow::Result<()> {
    serve_with(config, None)
}

fn serve_with(
    config: Config,
    replay: Option<crate::sources::replay::ReplayConfig>,
) -> anyhow::Result<()> {
    raise_open_file_limit(config.live.max_connections);
    runtime()?.block_on(async move {
        let app = Application::build(config).await?;
        // The first line on stdout: scripts and tests read the port from it.
        println!("instabrand listening on http://{}", app.addr());
        let shutdown = CancellationToken::new();
        let stop = shutdown.clone();
        tokio::spawn(async move {
            let _ = tokio::signal::ctrl_c().await;
            tracing::info!("shutting down");
            stop.cancel();
        });
        #[cfg(unix)]
        {
            let stop = shutdown.clone();
            tokio::spawn(async move {
                if let Ok(mut term) =
                    tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
                {
                    term.recv().await;
                    stop.cancel();
                }
            });
        }
        if let Some(cfg) = replay {
            let (ctx, stop) = (app.source_ctx(), shutdown.child_token());
            let s3 = app.state().config.archive.s3.clone();
            tokio::spawn(async move {
                if let Err(e) = crate::sources::replay::run_replay_source(ctx, s3, cfg, stop).await
                {
                    tracing::warn!(error = %e, "replay failed");
                }
            });
        }
        app.run(shutdown).await?;
        tokio::time::sleep(Duration::from_millis(50)).await;
        Ok(())
    })
}
