//! Configuration, layered in one documented order (later wins):
//!
//! 1. defaults in code (this file);
//! 2. a TOML file: `--config FILE`, else `instabrand.toml` in the working directory if present;
//! 3. environment variables `INSTABRAND_*`, nested keys joined by `__`
//!    (`INSTABRAND_PORT=9000`, `INSTABRAND_CONTROL_TOKEN=…`, `INSTABRAND_KAFKA__BROKERS=…`,
//!    `INSTABRAND_PROCESSOR__TIMELINE_CAP=500`);
//! 4. command-line flags.
//!
//! Every limit the server enforces (sizes, queues, rates) is a field here.

use std::net::IpAddr;
use std::path::{Path, PathBuf};

use figment::Figment;
use figment::providers::{Env, Format, Serialized, Toml};
use instabrand_shared::DecodeLimits;
use serde::{Deserialize, Serialize};

use crate::processor::ProcessorConfig;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Config {
    pub bind: IpAddr,
    /// 0 picks a free port (printed at start).
    pub port: u16,
    /// Where the built dashboard (Trunk's `dist/`) is served from.
    pub static_dir: PathBuf,
    /// Bearer token for `POST /api/ingest`; ingest is refused while unset.
    pub ingest_token: Option<String>,
    /// Bearer token for the presenter controls; a random one is made (and logged) if unset.
    pub control_token: Option<String>,
    /// Where dead letters (and later state and archive) are written.
    pub data_dir: PathBuf,
    pub limits: DecodeLimits,
    pub processor: ProcessorConfig,
    pub live: LiveConfig,
    pub pipeline: PipelineConfig,
    /// Event-time order across inputs (`align.rs`).
    pub align: crate::align::AlignConfig,
    pub generator: GeneratorSettings,
    pub dead_letters: DeadLetterConfig,
    pub http: HttpConfig,
    pub kafka: crate::kafka::KafkaConfig,
    pub archive: crate::archive::ArchiveConfig,
    pub state: StateConfig,
    pub file_source: FileSourceConfig,
    /// Who may read the live stream and the dashboard, and which headers say so.
    pub security: SecurityConfig,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            bind: IpAddr::from([127, 0, 0, 1]),
            port: 8080,
            static_dir: PathBuf::from("dist"),
            ingest_token: None,
            control_token: None,
            data_dir: PathBuf::from("data"),
            limits: DecodeLimits::default(),
            processor: ProcessorConfig::default(),
            live: LiveConfig::default(),
            pipeline: PipelineConfig::default(),
            align: crate::align::AlignConfig::default(),
            generator: GeneratorSettings::default(),
            dead_letters: DeadLetterConfig::default(),
            http: HttpConfig::default(),
            kafka: crate::kafka::KafkaConfig::default(),
            archive: crate::archive::ArchiveConfig::default(),
            state: StateConfig::default(),
            file_source: FileSourceConfig::default(),
            security: SecurityConfig::default(),
        }
    }
}

/// The live hub and WebSocket limits.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct LiveConfig {
    /// Hub ticks per second: what is new (uploads on the map, feed items, alerts) goes
    /// out at most this often, so it is also the main part of the live latency (a
    /// 25 ms period at 40 adds 12.5 ms on average, 25 ms at worst). 40 rather than 25:
    /// at 25 the period alone took 40 of the 100 ms the p99 goal allows, and the
    /// broker path's own p99 is about 50 ms here; the browser draws on its animation
    /// frames whatever arrives, so more frames cost it parsing only.
    pub frames_per_sec: u32,
    /// Leaderboards over 5 minutes and all time are rebuilt at most this often: a table
    /// whose numbers change every frame cannot be read and costs the browser. 200 ms
    /// (5 a second) rather than 100: every frame carries a header of about 250 bytes
    /// and goes to every screen, so at 10,000 dashboards halving the frames halves
    /// the sends and keeps a dashboard under 10 KB/s (docs/live.md).
    pub table_refresh_ms: u64,
    /// Frames queued per connection (those its socket could not take at once) before
    /// it counts as slow: they are dropped and it is resynced with snapshots.
    pub queue_frames: usize,
    /// Topics one connection may subscribe to.
    pub max_subscriptions: usize,
    /// Largest message a client may send.
    pub max_client_message_bytes: usize,
    /// A send taking longer than this closes the connection.
    pub send_timeout_secs: u64,
    /// Most WebSocket connections at once: 10,000 wall screens and dashboards with
    /// room to spare. `serve` raises the open-file limit to its hard limit at start
    /// and warns when that is below this.
    pub max_connections: usize,
    /// Leaderboards over 1 h and 24 h merge many sketches: recompute them at most this often.
    pub slow_refresh_ms: u64,
    /// Map points in a snapshot, and at most per delta frame.
    pub map_snapshot_points: usize,
    pub map_points_per_frame: usize,
    /// Feed items in a snapshot page.
    pub feed_page_size: usize,
    /// Alerts in a snapshot.
    pub alert_snapshot: usize,
    /// Per-connection buffers. tungstenite's defaults (128 KiB to read) cost about
    /// 120 KB per idle connection; clients only send short subscribe messages, and a
    /// larger one still arrives (the buffer grows for it, up to
    /// `max_client_message_bytes`).
    pub read_buffer_bytes: usize,
    /// No longer used: frames are written by the hub straight into each socket, and
    /// only what a socket cannot take at once is queued (up to `queue_frames` frames
    /// and `max_write_buffer_bytes`). Kept so that configurations naming it still load.
    pub write_buffer_bytes: usize,
    /// A connection whose unsent bytes would pass this drops them and is resynced
    /// with snapshots (it is not reading fast enough); one that stays stalled for
    /// `send_timeout_secs` is closed.
    pub max_write_buffer_bytes: usize,
    /// The server pings every connection this often.
    pub ping_interval_ms: u64,
    /// A connection from which nothing (no message, no pong) arrived for this long is
    /// closed: a laptop that slept or a dropped Wi-Fi leaves a half-open socket behind.
    pub idle_timeout_ms: u64,
    /// The top influencers are rebuilt at most this often (and sent only when they
    /// changed): their whole list is one frame of about 2.4 KB, a quarter of an
    /// overview dashboard's 10 KB/s budget if it went every second.
    pub influencers_refresh_ms: u64,
    /// Threads that write one frame to its subscribers' sockets (from 2,048
    /// subscribers on; fewer are written by the ticking thread alone).
    pub fanout_threads: usize,
}

impl LiveConfig {
    pub fn table_refresh(&self) -> std::time::Duration {
        std::time::Duration::from_millis(self.table_refresh_ms)
    }

    pub fn slow_refresh(&self) -> std::time::Duration {
        std::time::Duration::from_millis(self.slow_refresh_ms)
    }
}

impl Default for LiveConfig {
    fn default() -> Self {
        LiveConfig {
            frames_per_sec: 40,
            table_refresh_ms: 200,
            queue_frames: 64,
            max_subscriptions: 32,
            max_client_message_bytes: 4096,
            send_timeout_secs: 10,
            max_connections: 12_000,
            slow_refresh_ms: 1000,
            map_snapshot_points: 5000,
            map_points_per_frame: 1000,
            feed_page_size: 30,
            alert_snapshot: 50,
            read_buffer_bytes: 2048,
            write_buffer_bytes: 8192,
            max_write_buffer_bytes: 4 * 1024 * 1024,
            ping_interval_ms: 10_000,
            idle_timeout_ms: 30_000,
            influencers_refresh_ms: 2_000,
            fanout_threads: 2,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct PipelineConfig {
    /// Batches queued for the processor before sources wait (back-pressure).
    pub queue_batches: usize,
    /// Records per batch a source should send at most.
    pub max_batch_records: usize,
    /// `false` makes this server an archiver: records are decoded, checked, archived
    /// (bad ones dead-lettered) and their offsets committed, but nothing is applied to
    /// the live state, so its dashboard stays empty. For a dedicated archiving instance
    /// in its own consumer group, and for measuring the ingest path alone
    /// (`scripts/bench-kafka.sh`).
    pub apply: bool,
}

impl Default for PipelineConfig {
    fn default() -> Self {
        PipelineConfig {
            queue_batches: 64,
            max_batch_records: 4096,
            apply: true,
        }
    }
}

/// The embedded generator, used when no other source is configured.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct GeneratorSettings {
    /// `None`: on unless Kafka is configured.
    pub enabled: Option<bool>,
    pub seed: u64,
    pub users: u32,
    pub mean_follows: f64,
    /// Events per second after the bootstrap (which runs unpaced).
    pub rate: f64,
    /// How many times faster than the wall clock event time runs after the bootstrap
    /// (1: events carry the wall clock). A soak test needs weeks of event time in
    /// minutes to see retention at work: 2,880 turns 30 minutes into 60 days. Event
    /// time starts at the wall clock (or where a restored state left off, if later).
    pub time_scale: f64,
    /// Highest rate the presenter controls may set.
    pub max_rate: f64,
    /// Largest campaign burst, in photos.
    pub max_campaign_photos: u32,
}

impl Default for GeneratorSettings {
    fn default() -> Self {
        GeneratorSettings {
            enabled: None,
            seed: 42,
            users: 20_000,
            mean_follows: 20.0,
            rate: 150.0,
            time_scale: 1.0,
            max_rate: 20_000.0,
            max_campaign_photos: 5_000,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct DeadLetterConfig {
    /// File name under `data_dir` (embedded mode keeps dead letters in a file).
    pub file: String,
    /// The file is rotated (to `.1`) past this size.
    pub max_file_bytes: u64,
    /// Dead letters kept in memory for the API.
    pub keep_recent: usize,
}

impl Default for DeadLetterConfig {
    fn default() -> Self {
        DeadLetterConfig {
            file: "dead-letters.ndjson".into(),
            max_file_bytes: 256 * 1024 * 1024,
            keep_recent: 500,
        }
    }
}

/// Checkpoints of the whole state, with the sources' positions, in `data_dir`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct StateConfig {
    /// Off: state lives in memory only (tests, throwaway demos).
    pub persist: bool,
    /// File name under `data_dir`.
    pub file: String,
    /// Checkpoint at least this often while anything changed. Each checkpoint also
    /// closes the archive's open Parquet files, so this sets their size too; anyone
    /// waiting for durability (HTTP ingest) gets a checkpoint sooner.
    pub checkpoint_interval_ms: u64,
    /// When a client waits for durability (HTTP ingest, Kafka commits), checkpoint once
    /// this much has passed since the last one.
    pub durable_wait_ms: u64,
    /// A checkpoint is due once this many events were applied since the last one, and
    /// applying waits while the writer is behind: they are buffered in memory (their
    /// original bytes, and the archive's rows for them) until written to the changelog.
    /// So this bounds the memory that comes and goes with checkpoints: at 20,000
    /// events/s the interval alone let 600,000 events (about 600 MB with the entry
    /// being encoded) pile up and drop every 30 s.
    pub max_unlogged_events: usize,
    /// The changelog is compacted into a new base once it holds at least this many
    /// bytes ...
    pub compact_min_bytes: u64,
    /// ... and at least this many times the base's size. 1.0 keeps base plus changelog
    /// within twice the state, and a restart replays at most about one state's worth.
    pub compact_ratio: f64,
}

impl Default for StateConfig {
    fn default() -> Self {
        StateConfig {
            persist: true,
            file: "state.redb".into(),
            checkpoint_interval_ms: 30_000,
            durable_wait_ms: 100,
            max_unlogged_events: 200_000,
            compact_min_bytes: 64 << 20,
            compact_ratio: 1.0,
        }
    }
}

/// An NDJSON file as the source (`serve --events FILE`): a fixed stream, resumable.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
#[serde(default)]
pub struct FileSourceConfig {
    pub path: Option<std::path::PathBuf>,
    /// Events per second; 0 = as fast as the pipeline takes them.
    pub rate: f64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct HttpConfig {
    /// Largest `POST /api/ingest` body.
    pub ingest_max_body_bytes: usize,
    /// Most rejected lines an ingest response lists.
    pub ingest_max_errors_listed: usize,
    /// Most items a list endpoint returns.
    pub max_page: usize,
    /// Most buckets one range series returns (`/api/brands/{brand}/series`,
    /// `/api/series`): 90 days of hours fit.
    pub series_max_points: usize,
    /// Most brands one `/api/series` compares.
    pub series_max_brands: usize,
}

impl Default for HttpConfig {
    fn default() -> Self {
        HttpConfig {
            ingest_max_body_bytes: 16 * 1024 * 1024,
            ingest_max_errors_listed: 100,
            max_page: 500,
            series_max_points: 3_000,
            series_max_brands: 10,
        }
    }
}

/// Same-origin by default: what another site may do with this server.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct SecurityConfig {
    /// Origins besides the server's own whose pages may open `/ws`
    /// (`"https://intranet.example.com"`), for a dashboard embedded on another site.
    /// A browser always sends `Origin` on a WebSocket; one not listed gets 403.
    pub allowed_origins: Vec<String>,
    /// The CSP `frame-ancestors` sources: who may show the dashboard in a frame.
    /// `'self'` by default; `'none'` forbids framing, `https://a.example` allows that site.
    pub frame_ancestors: String,
    /// Bearer token for `GET /api/dead-letters` (raw rejected payloads); the listing
    /// is off while unset. Counts by reason stay in the health view for everyone.
    pub dead_letters_token: Option<String>,
    /// Hashed assets (Trunk's `name-<16 hex>.ext`) are cached this long, as immutable.
    pub asset_max_age_secs: u64,
    /// Longest prefix `GET /api/users?prefix=` accepts, in characters.
    pub search_max_prefix: usize,
    /// User searches running at once; more wait their turn. Each scans the user
    /// index once without allocating per user, so this bounds their total cost.
    pub search_concurrency: usize,
}

impl Default for SecurityConfig {
    fn default() -> Self {
        SecurityConfig {
            allowed_origins: Vec::new(),
            frame_ancestors: "'self'".into(),
            dead_letters_token: None,
            asset_max_age_secs: 365 * 24 * 3600,
            search_max_prefix: 64,
            search_concurrency: 2,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("configuration: {0} is set but empty; remove it or give it a value")]
    EmptyToken(&'static str),
    #[error("configuration: {0}")]
    Invalid(#[from] Box<figment::Error>),
    #[error("configuration file {0} does not exist")]
    MissingFile(PathBuf),
    #[error("configuration: {0}")]
    OutOfRange(String),
}

impl Config {
    /// Layers defaults, the TOML file, the environment and `overrides` (flags, as a
    /// partial tree of the same shape).
    pub fn load(file: Option<&Path>, overrides: serde_json::Value) -> Result<Config, ConfigError> {
        let mut fig = Figment::from(Serialized::defaults(Config::default()));
        match file {
            Some(f) if !f.exists() => return Err(ConfigError::MissingFile(f.into())),
            Some(f) => fig = fig.merge(Toml::file(f)),
            None if Path::new("instabrand.toml").exists() => {
                fig = fig.merge(Toml::file("instabrand.toml"))
            }
            None => {}
        }
        fig = fig.merge(Env::prefixed("INSTABRAND_").split("__"));
        fig = fig.merge(Serialized::defaults(overrides));
        let config: Config = fig
            .extract()
            .map_err(|e| ConfigError::Invalid(Box::new(e)))?;
        config.validate()?;
        Ok(config)
    }

    /// Refuses what would silently weaken the server: a token configured as `""`
    /// (an empty bearer token would be one anybody can send).
    pub fn validate(&self) -> Result<(), ConfigError> {
        let tokens = [
            ("ingest_token", &self.ingest_token),
            ("control_token", &self.control_token),
            (
                "security.dead_letters_token",
                &self.security.dead_letters_token,
            ),
        ];
        for (name, token) in tokens {
            if token.as_ref().is_some_and(|t| t.trim().is_empty()) {
                return Err(ConfigError::EmptyToken(name));
            }
        }
        // Zero or a negative scale would stop or reverse event time, which every
        // window and retention rule assumes moves forward.
        let scale = self.generator.time_scale;
        if !(scale.is_finite() && scale > 0.0) {
            return Err(ConfigError::OutOfRange(format!(
                "generator.time_scale must be a positive number, not {scale}"
            )));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flags_override_the_file_which_overrides_defaults() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("c.toml");
        std::fs::write(&f, "port = 9000\n[processor]\ntimeline_cap = 10\n").unwrap();
        let c = Config::load(
            Some(&f),
            serde_json::json!({ "processor": { "backfill": 7 } }),
        )
        .unwrap();
        assert_eq!(c.port, 9000);
        assert_eq!(c.processor.timeline_cap, 10);
        assert_eq!(c.processor.backfill, 7);
        assert_eq!(c.processor.celebrity_threshold, 10_000);
        let c = Config::load(Some(&f), serde_json::json!({ "port": 1234 })).unwrap();
        assert_eq!(c.port, 1234);
    }

    #[test]
    fn an_empty_token_is_refused_at_start() {
        for key in ["ingest_token", "control_token"] {
            let e = Config::load(None, serde_json::json!({ key: "" })).unwrap_err();
            assert!(e.to_string().contains(key), "{e}");
        }
        let e = Config::load(
            None,
            serde_json::json!({ "security": { "dead_letters_token": "  " } }),
        )
        .unwrap_err();
        assert!(e.to_string().contains("dead_letters_token"), "{e}");
        let c = Config::load(None, serde_json::json!({ "ingest_token": "x" })).unwrap();
        assert_eq!(c.ingest_token.as_deref(), Some("x"));
    }

    #[test]
    fn a_missing_file_or_bad_value_is_a_clear_error() {
        let e =
            Config::load(Some(Path::new("/nonexistent.toml")), serde_json::json!({})).unwrap_err();
        assert!(e.to_string().contains("does not exist"));
        let e = Config::load(None, serde_json::json!({ "port": "eighty" })).unwrap_err();
        assert!(e.to_string().contains("port"), "{e}");
        for scale in [0.0, -1.0] {
            let e = Config::load(
                None,
                serde_json::json!({ "generator": { "time_scale": scale } }),
            )
            .unwrap_err();
            assert!(e.to_string().contains("time_scale"), "{e}");
        }
    }
}
