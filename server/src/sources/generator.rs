//! The embedded generator as a source: the default when no broker is configured.
//!
//! It emits the bootstrap (every user and the initial follow graph) as fast as the
//! pipeline takes it, then paces the steady state at the configured rate, stamping
//! events with the wall clock, or with a clock running `generator.time_scale` times
//! faster (see [`EventClock`]). Every event is written in the original JSON shape and
//! goes through the same decoding as Kafka records, so the embedded demo exercises the
//! real path. Presenter controls reach it through [`GeneratorControl`].

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use bytes::Bytes;
use instabrand_generator::{Generator, write_original_json};
use instabrand_shared::api::GeneratorStatus;
use tokio::sync::{mpsc, oneshot};
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

use instabrand_shared::Millis;

use super::SourceCtx;
use crate::clock::wall_ms;
use crate::intake::{Origin, Record};

/// The generator's event clock: event time `scale` times faster than the wall clock
/// from an anchor. At scale 1 it is the wall clock itself (from an anchor at the wall
/// clock). A pure function of wall time rather than a count of events, so the event
/// rate and the time scale stay independent knobs, and a pause skips event time just
/// as it skips wall time at scale 1.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct EventClock {
    wall0: Millis,
    event0: Millis,
    scale: f64,
}

impl EventClock {
    /// Event time `event0` at wall time `wall0`, running `scale` times faster from then.
    pub fn new(wall0: Millis, event0: Millis, scale: f64) -> EventClock {
        EventClock {
            wall0,
            event0,
            scale,
        }
    }

    /// Event time at wall time `wall`. A wall clock stepping back (NTP) holds event
    /// time at the anchor rather than running it backwards.
    pub fn at(&self, wall: Millis) -> Millis {
        let since = (wall - self.wall0).max(0) as f64;
        self.event0.saturating_add((since * self.scale) as Millis)
    }
}

pub enum Command {
    Pause,
    Resume,
    SetRate(f64),
    Campaign {
        brand: String,
        city: Option<String>,
        photos: u32,
        seconds: u32,
        reply: oneshot::Sender<Result<(), String>>,
    },
}

#[derive(Default)]
struct Status {
    paused: AtomicBool,
    rate_bits: AtomicU64,
    sent: AtomicU64,
    running: AtomicBool,
}

impl Status {
    fn rate(&self) -> f64 {
        f64::from_bits(self.rate_bits.load(Ordering::Relaxed))
    }
}

/// A handle for the presenter controls.
#[derive(Clone)]
pub struct GeneratorControl {
    tx: mpsc::Sender<Command>,
    status: Arc<Status>,
}

#[derive(Debug, thiserror::Error)]
pub enum ControlError {
    #[error("the generator has stopped")]
    Stopped,
    #[error("{0}")]
    Refused(String),
}

impl GeneratorControl {
    pub fn new(rate: f64) -> (GeneratorControl, mpsc::Receiver<Command>) {
        let (tx, rx) = mpsc::channel(16);
        let status = Arc::new(Status::default());
        status.rate_bits.store(rate.to_bits(), Ordering::Relaxed);
        (GeneratorControl { tx, status }, rx)
    }

    pub fn status(&self) -> GeneratorStatus {
        GeneratorStatus {
            running: self.status.running.load(Ordering::Relaxed),
            paused: self.status.paused.load(Ordering::Relaxed),
            rate: self.status.rate(),
            events_sent: self.status.sent.load(Ordering::Relaxed),
        }
    }

    pub async fn send(&self, cmd: Command) -> Result<(), ControlError> {
        self.tx.send(cmd).await.map_err(|_| ControlError::Stopped)
    }

    pub async fn campaign(
        &self,
        brand: String,
        city: Option<String>,
        photos: u32,
        seconds: u32,
    ) -> Result<(), ControlError> {
        let (reply, wait) = oneshot::channel();
        self.send(Command::Campaign {
            brand,
            city,
            photos,
            seconds,
            reply,
        })
        .await?;
        wait.await
            .map_err(|_| ControlError::Stopped)?
            .map_err(ControlError::Refused)
    }
}

pub const NAME: &str = "generator";

fn position(generator: &Generator) -> (String, serde_json::Value) {
    (
        NAME.to_string(),
        serde_json::json!({ "emitted": generator.events_emitted() }),
    )
}

/// Puts a generator back after a restart. The bootstrap (users and the initial follow
/// graph) does not depend on time, so replaying it rebuilds the same network exactly;
/// the steady state does (no user posts twice in one second), so rather than replay it
/// with the wrong times, the generator reseeds and continues with a fresh stream over
/// the same network. Returns how many events were skipped.
pub fn resume(generator: &mut Generator, restored: &crate::store::Positions, now: i64) -> u64 {
    let emitted = restored
        .get(NAME)
        .and_then(|p| p.get("emitted"))
        .and_then(|v| v.as_u64())
        .unwrap_or(0);
    let skip = emitted.min(generator.bootstrap_len());
    for _ in 0..skip {
        generator.next_event_at(now);
    }
    if emitted > skip {
        generator.reseed(emitted);
    }
    skip
}

fn encode(generator: &mut Generator, now: i64, buf: &mut Vec<u8>) -> Record {
    let ev = generator.next_event_at(now);
    buf.clear();
    write_original_json(&ev, buf);
    Record::new(Bytes::copy_from_slice(buf), Origin::Generator)
}

/// Runs the generator until `shutdown`; its event time runs `scale` times the wall clock.
pub async fn run(
    state: SourceCtx,
    scale: f64,
    mut generator: Generator,
    control: GeneratorControl,
    mut commands: mpsc::Receiver<Command>,
    shutdown: CancellationToken,
) {
    let status = control.status.clone();
    status.running.store(true, Ordering::Relaxed);
    let max_batch = state.pipeline.max_batch_records.max(1);
    let mut buf = Vec::with_capacity(512);
    let report = || {
        state.health.update(NAME, |h| {
            h.connected = true;
            h.paused = status.paused.load(Ordering::Relaxed);
            h.rate = Some(status.rate());
            h.detail = if scale == 1.0 {
                "embedded generator".into()
            } else {
                format!("embedded generator, event time ×{scale}")
            };
        })
    };
    report();
    // Event time starts at the wall clock, or where a restored state left off if that
    // is later (a scaled run is ahead of the wall clock): events stamped behind the
    // applied stream would arrive late.
    let restored_time = state.stats.applied_time().unwrap_or(Millis::MIN);
    let start_wall = wall_ms();
    // The bootstrap runs unpaced and at scale 1: a fast clock would spread the
    // network's creation over hours of event time for nothing.
    let bootstrap_clock = EventClock::new(start_wall, start_wall.max(restored_time), 1.0);
    let started = Instant::now();
    while generator.in_bootstrap() && !shutdown.is_cancelled() {
        let now = bootstrap_clock.at(wall_ms());
        let mut batch = Vec::with_capacity(max_batch);
        while batch.len() < max_batch && generator.in_bootstrap() {
            batch.push(encode(&mut generator, now, &mut buf));
        }
        status.sent.fetch_add(batch.len() as u64, Ordering::Relaxed);
        if state
            .intake
            .send_at(batch, position(&generator))
            .await
            .is_err()
        {
            return;
        }
    }
    info!(
        events = generator.bootstrap_len(),
        took_ms = started.elapsed().as_millis() as u64,
        "generator bootstrap sent"
    );
    // From the bootstrap's last event, or from the start when a restore skipped the
    // whole bootstrap (the generator's clock is then still at its construction).
    let steady_wall = wall_ms();
    let clock = EventClock::new(
        steady_wall,
        generator.clock_ms().max(bootstrap_clock.at(steady_wall)),
        scale,
    );
    if scale != 1.0 {
        info!(
            time_scale = scale,
            "generator event time runs faster than the wall clock"
        );
    }

    let tick = Duration::from_millis(50);
    let mut ticker = tokio::time::interval(tick);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut last = Instant::now();
    let mut owed = 0.0f64;
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => break,
            cmd = commands.recv() => {
                let Some(cmd) = cmd else { break };
                match cmd {
                    Command::Pause => status.paused.store(true, Ordering::Relaxed),
                    Command::Resume => {
                        status.paused.store(false, Ordering::Relaxed);
                        last = Instant::now();
                    }
                    Command::SetRate(r) => status.rate_bits.store(r.to_bits(), Ordering::Relaxed),
                    Command::Campaign { brand, city, photos, seconds, reply } => {
                        let r = generator.campaign(&brand, city.as_deref(), photos, seconds).map_err(|e| e.to_string());
                        if r.is_ok() {
                            info!(%brand, ?city, photos, seconds, "campaign scheduled");
                        }
                        let _ = reply.send(r);
                    }
                }
                report();
            }
            _ = ticker.tick() => {
                let now_i = Instant::now();
                let elapsed = now_i.duration_since(last).as_secs_f64();
                last = now_i;
                if status.paused.load(Ordering::Relaxed) {
                    owed = 0.0;
                    continue;
                }
                owed += status.rate() * elapsed;
                let n = (owed.floor() as usize).min(max_batch);
                if n == 0 {
                    continue;
                }
                // Anything beyond one batch a tick is dropped, not accumulated: a stalled
                // pipeline must not come back to a flood.
                owed = (owed - n as f64).min(max_batch as f64);
                let now = clock.at(wall_ms());
                let batch: Vec<Record> = (0..n).map(|_| encode(&mut generator, now, &mut buf)).collect();
                status.sent.fetch_add(n as u64, Ordering::Relaxed);
                if state.intake.send_at(batch, position(&generator)).await.is_err() {
                    warn!("pipeline closed; generator stops");
                    break;
                }
            }
        }
    }
    status.running.store(false, Ordering::Relaxed);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn event_time_runs_time_scale_times_faster_than_the_wall_clock() {
        let scale = 2_880.0;
        let wall0: Millis = 1_700_000_000_000;
        let mut g = Generator::new(instabrand_generator::Config {
            users: 200,
            ..instabrand_generator::Config::default()
        });
        while g.in_bootstrap() {
            g.next_event_at(wall0);
        }
        let clock = EventClock::new(wall0, g.clock_ms(), scale);
        // Ten seconds of wall time in the run loop's 50 ms ticks, ten events a tick.
        let mut times = Vec::new();
        for tick in 1..=200 {
            let now = clock.at(wall0 + tick * 50);
            for _ in 0..10 {
                times.push(g.next_event_at(now).time());
            }
        }
        assert!(
            times.windows(2).all(|w| w[0] <= w[1]),
            "event time never goes back"
        );
        // 199 ticks of 50 ms apart are 9.95 s of wall time: 2,880 times that in event
        // time, within the whole second events are stamped in.
        let span = times[times.len() - 1] - times[0];
        let want = (199.0 * 50.0 * scale) as Millis;
        assert!((span - want).abs() <= 1_000, "{span} vs {want}");
        // Scale 1 is the wall clock; a wall clock stepping back holds at the anchor.
        let wall = EventClock::new(wall0, wall0, 1.0);
        assert_eq!(wall.at(wall0 + 1_234), wall0 + 1_234);
        assert_eq!(clock.at(wall0 - 5_000), clock.at(wall0));
    }
}
