//! The raw-event archive: Parquet files rolled by records, bytes and time, published
//! only when complete, partitioned by the event's own day, dead letters apart, `flush`
//! meaning "visible now" without a spool and "in the spool" with one (taken back after
//! a crash, without cutting files short), no record dropped when the disk refuses a
//! write, and a round trip of generated events that reads back the exact bytes in
//! event-time order.

use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use bytes::Bytes;
use instabrand_generator::{Config as GenConfig, Generator, write_original_json};
use instabrand_server::archive::{
    Archive, ArchiveConfig, ArchiveHandle, ArchiveReader, ArchiveStore, ArchivedEvent, ArchivedRow,
    EventSource, LocalStore, read_dead_letters,
};
use instabrand_server::deadletter::DeadLetter;
use instabrand_server::intake::Origin;
use instabrand_shared::time::parse_time;
use instabrand_shared::{EventKind, Reason};

fn config(root: &Path) -> ArchiveConfig {
    ArchiveConfig {
        dir: Some(root.into()),
        // Large limits: each test lowers the one it exercises.
        roll_records: 1_000_000,
        roll_bytes: 1 << 30,
        roll_secs: 3600,
        // Most tests watch `flush` publish files; the spool's own tests turn it on.
        spool: false,
        ..ArchiveConfig::default()
    }
}

fn start(cfg: &ArchiveConfig) -> ArchiveHandle {
    Archive::start(cfg, Path::new("unused")).expect("archive starts")
}

/// `config(root)` with the spool on, at `spool`.
fn spooled(root: &Path, spool: &Path) -> ArchiveConfig {
    ArchiveConfig {
        spool: true,
        spool_file: Some(spool.into()),
        ..config(root)
    }
}

fn event(n: usize, time: &str) -> ArchivedEvent {
    let raw = format!(
        r#"{{"username": "user{n}", "full_name": "User {n}", "created_time": "{time}", "event": "create-user"}}"#
    );
    ArchivedEvent {
        kind: EventKind::CreateUser,
        event_time_ms: parse_time(time).unwrap(),
        key: format!("user{n}").into(),
        raw: Bytes::from(raw),
        source: format!("ingest:line {n}").into(),
    }
}

fn events(range: std::ops::Range<usize>, time: &str) -> Vec<ArchivedEvent> {
    range.map(|n| event(n, time)).collect()
}

/// Every file under `root`, relative, sorted.
fn listing(root: &Path) -> Vec<String> {
    fn walk(dir: &Path, root: &Path, out: &mut Vec<String>) {
        for e in fs::read_dir(dir).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                walk(&p, root, out);
            } else {
                out.push(p.strip_prefix(root).unwrap().display().to_string());
            }
        }
    }
    let mut out = Vec::new();
    if root.exists() {
        walk(root, root, &mut out);
    }
    out.sort();
    out
}

fn read_all(root: &Path) -> Vec<ArchivedRow> {
    ArchiveReader::open(root)
        .unwrap()
        .collect::<Result<Vec<_>, _>>()
        .unwrap()
}

fn wait_until(what: &str, mut f: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while !f() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn a_file_is_written_each_time_the_record_limit_is_reached() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = ArchiveConfig {
        roll_records: 100,
        ..config(dir.path())
    };
    let archive = start(&cfg);
    for chunk in 0..5 {
        archive
            .append(events(chunk * 50..chunk * 50 + 50, "2017-06-12 10:00:00"))
            .unwrap();
    }
    wait_until("two full files", || archive.stats().files_written == 2);
    assert_eq!(archive.stats().records_written, 200);
    assert_eq!(archive.stats().buffered_records, 50);
    archive.flush().unwrap();
    let stats = archive.stats();
    assert_eq!((stats.files_written, stats.records_written), (3, 250));
    assert_eq!(read_all(dir.path()).len(), 250);
}

#[test]
fn a_file_is_written_when_the_byte_limit_is_reached() {
    let dir = tempfile::tempdir().unwrap();
    let one = event(0, "2017-06-12 10:00:00").raw.len();
    let cfg = ArchiveConfig {
        roll_bytes: one * 30,
        ..config(dir.path())
    };
    let archive = start(&cfg);
    archive
        .append(events(0..20, "2017-06-12 10:00:00"))
        .unwrap();
    std::thread::sleep(Duration::from_millis(100));
    assert_eq!(archive.stats().files_written, 0, "under the byte limit");
    archive
        .append(events(20..40, "2017-06-12 10:00:00"))
        .unwrap();
    wait_until("a file rolled by size", || {
        archive.stats().files_written == 1
    });
    assert_eq!(archive.stats().records_written, 40);
}

#[test]
fn a_quiet_buffer_becomes_visible_after_roll_secs() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = ArchiveConfig {
        roll_secs: 1,
        ..config(dir.path())
    };
    let archive = start(&cfg);
    let t0 = Instant::now();
    archive.append(events(0..5, "2017-06-12 10:00:00")).unwrap();
    std::thread::sleep(Duration::from_millis(300));
    assert!(listing(dir.path()).is_empty(), "not before roll_secs");
    wait_until("the time roll", || archive.stats().files_written == 1);
    assert!(t0.elapsed() >= Duration::from_millis(900));
    assert_eq!(read_all(dir.path()).len(), 5);
}

#[test]
fn partitions_follow_the_event_time_across_midnight_not_the_arrival() {
    let dir = tempfile::tempdir().unwrap();
    let archive = start(&config(dir.path()));
    // One batch straddling midnight UTC, in arrival order late-then-early.
    let mut batch = events(0..3, "2017-06-13 00:00:01");
    batch.extend(events(3..5, "2017-06-12 23:59:59"));
    archive.append(batch).unwrap();
    archive.flush().unwrap();
    let files = listing(dir.path());
    assert_eq!(files.len(), 2, "{files:?}");
    assert!(files[0].starts_with("dt=2017-06-12/part-") && files[0].ends_with(".parquet"));
    assert!(files[1].starts_with("dt=2017-06-13/part-"));
    let rows = read_all(dir.path());
    let users: Vec<_> = rows.iter().map(|r| r.username.as_str()).collect();
    // Event-time order across days; arrival order within the same second.
    assert_eq!(users, ["user3", "user4", "user0", "user1", "user2"]);
}

#[test]
fn flush_returns_once_everything_appended_is_in_visible_files() {
    let dir = tempfile::tempdir().unwrap();
    let archive = start(&config(dir.path()));
    for i in 0..20 {
        archive
            .append(events(i * 10..i * 10 + 10, "2017-06-12 10:00:00"))
            .unwrap();
    }
    assert!(
        listing(dir.path()).is_empty(),
        "limits not reached: nothing yet"
    );
    archive.flush().unwrap();
    assert_eq!(read_all(dir.path()).len(), 200);
    assert_eq!(archive.stats().buffered_records, 0);
    // A flush with nothing buffered writes no empty file.
    archive.flush().unwrap();
    assert_eq!(listing(dir.path()).len(), 1);
}

#[test]
fn unfinished_files_are_never_visible_and_crash_leftovers_are_removed() {
    let dir = tempfile::tempdir().unwrap();
    // A crash left a temporary file behind.
    let part = dir.path().join("dt=2017-06-12");
    fs::create_dir_all(&part).unwrap();
    fs::write(part.join(".part-1-000000.parquet.tmp"), b"half a file").unwrap();
    let cfg = ArchiveConfig {
        roll_records: 50,
        ..config(dir.path())
    };
    let archive = start(&cfg);
    assert!(listing(dir.path()).is_empty(), "leftover removed at start");

    // While the writer publishes files, every visible `*.parquet` reads completely.
    let stop = Arc::new(AtomicBool::new(false));
    let watcher = {
        let (stop, root) = (stop.clone(), dir.path().to_path_buf());
        std::thread::spawn(move || {
            let mut checks = 0;
            while !stop.load(Ordering::Relaxed) {
                for f in listing(&root) {
                    let name = f.rsplit('/').next().unwrap();
                    if !name.starts_with('.') {
                        assert!(f.ends_with(".parquet"), "unexpected visible file {f}");
                        let bytes = fs::read(root.join(&f)).unwrap();
                        assert_eq!(&bytes[bytes.len() - 4..], b"PAR1", "{f} is incomplete");
                        checks += 1;
                    }
                }
            }
            checks
        })
    };
    for i in 0..100 {
        archive
            .append(events(i * 25..i * 25 + 25, "2017-06-12 10:00:00"))
            .unwrap();
    }
    archive.flush().unwrap();
    stop.store(true, Ordering::Relaxed);
    assert!(watcher.join().unwrap() > 0);
    assert_eq!(archive.stats().files_written, 50);
    assert_eq!(read_all(dir.path()).len(), 2500);
}

#[test]
fn dead_letters_are_kept_apart_with_reason_detail_and_exact_bytes() {
    let dir = tempfile::tempdir().unwrap();
    let archive = start(&config(dir.path()));
    let raw: &[u8] = b"\xff\xfe not json {";
    archive
        .append_dead(vec![DeadLetter {
            reason: Reason::NotJson,
            detail: "expected value at line 1".into(),
            source: "ingest:line 7".into(),
            at_ms: parse_time("2017-06-12 10:00:00").unwrap(),
            raw: Bytes::from_static(raw),
        }])
        .unwrap();
    archive.append(events(0..3, "2017-06-12 10:00:00")).unwrap();
    archive.flush().unwrap();
    let files = listing(dir.path());
    assert!(
        files
            .iter()
            .any(|f| f.starts_with("dead-letters/dt=2017-06-12/part-")),
        "{files:?}"
    );
    let dead = read_dead_letters(dir.path()).unwrap();
    assert_eq!(dead.len(), 1);
    assert_eq!(dead[0].reason, "not_json");
    assert_eq!(dead[0].detail, "expected value at line 1");
    assert_eq!(dead[0].source, "ingest:line 7");
    assert_eq!(&dead[0].raw[..], raw);
    // Events are read without the dead letters.
    assert_eq!(read_all(dir.path()).len(), 3);
}

/// A store that refuses the first `failures` writes, as a full disk would.
struct Flaky {
    inner: LocalStore,
    failures: Arc<AtomicUsize>,
}

impl ArchiveStore for Flaky {
    fn put(&mut self, rel: &Path, data: &[u8]) -> io::Result<()> {
        if self
            .failures
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |n| n.checked_sub(1))
            .is_ok()
        {
            return Err(io::Error::other("no space left on device"));
        }
        self.inner.put(rel, data)
    }

    fn describe(&self) -> String {
        "flaky".into()
    }
}

#[test]
fn a_failed_write_keeps_its_records_and_a_later_one_writes_them() {
    let dir = tempfile::tempdir().unwrap();
    let failures = Arc::new(AtomicUsize::new(2));
    let cfg = ArchiveConfig {
        retry_ms: 10,
        ..config(dir.path())
    };
    let store = Flaky {
        inner: LocalStore::open(dir.path()).unwrap(),
        failures: failures.clone(),
    };
    let archive = Archive::start_with_store(&cfg, Box::new(store)).unwrap();
    archive
        .append(events(0..10, "2017-06-12 10:00:00"))
        .unwrap();
    let err = archive.flush().unwrap_err();
    assert!(err.to_string().contains("no space left"), "{err}");
    assert!(archive.stats().last_error.is_some());
    archive
        .append(events(10..20, "2017-06-12 10:00:00"))
        .unwrap();
    // The writer retries on its own; the next flush succeeds with everything.
    wait_until("the retry", || {
        failures.load(Ordering::Relaxed) == 0 && archive.flush().is_ok()
    });
    assert_eq!(read_all(dir.path()).len(), 20);
    assert_eq!(archive.stats().last_error, None);
}

/// Stores the file, then reports a failure: an upload whose answer was lost.
struct LostAnswers {
    inner: LocalStore,
    lost: Arc<AtomicUsize>,
}

impl ArchiveStore for LostAnswers {
    fn put(&mut self, rel: &Path, data: &[u8]) -> io::Result<()> {
        self.inner.put(rel, data)?;
        if self.lost.load(Ordering::Relaxed) > 0 {
            self.lost.fetch_sub(1, Ordering::Relaxed);
            return Err(io::Error::new(io::ErrorKind::TimedOut, "timed out"));
        }
        Ok(())
    }

    fn describe(&self) -> String {
        "lost answers".into()
    }
}

#[test]
fn a_retry_after_a_lost_answer_replaces_the_file_instead_of_duplicating_its_records() {
    let dir = tempfile::tempdir().unwrap();
    let lost = Arc::new(AtomicUsize::new(1));
    let cfg = ArchiveConfig {
        retry_ms: 10,
        ..config(dir.path())
    };
    let store = LostAnswers {
        inner: LocalStore::open(dir.path()).unwrap(),
        lost: lost.clone(),
    };
    let archive = Archive::start_with_store(&cfg, Box::new(store)).unwrap();
    archive
        .append(events(0..10, "2017-06-12 10:00:00"))
        .unwrap();
    assert!(archive.flush().is_err());
    archive
        .append(events(10..15, "2017-06-12 10:00:00"))
        .unwrap();
    wait_until("the retry", || archive.flush().is_ok());
    // One file, holding each record once.
    assert_eq!(listing(dir.path()).len(), 1, "{:?}", listing(dir.path()));
    let mut keys: Vec<String> = read_all(dir.path())
        .into_iter()
        .map(|r| r.username)
        .collect();
    keys.sort();
    keys.dedup();
    assert_eq!(keys.len(), 15);
    assert_eq!(read_all(dir.path()).len(), 15);
    // The next file gets a new name.
    archive
        .append(events(15..16, "2017-06-12 10:00:00"))
        .unwrap();
    archive.flush().unwrap();
    assert_eq!(listing(dir.path()).len(), 2);
}

#[test]
fn with_a_spool_flush_makes_records_durable_without_cutting_a_file() {
    let dir = tempfile::tempdir().unwrap();
    let (root, spool) = (dir.path().join("archive"), dir.path().join("spool.bin"));
    let cfg = spooled(&root, &spool);
    let archive = start(&cfg);
    // Three checkpoints' worth of records: no file, all in the spool.
    for i in 0..3 {
        archive
            .append(events(i * 10..i * 10 + 10, "2017-06-12 10:00:00"))
            .unwrap();
        archive.flush().unwrap();
    }
    assert!(listing(&root).is_empty(), "{:?}", listing(&root));
    assert!(fs::metadata(&spool).unwrap().len() > 0);
    assert_eq!(archive.stats().buffered_records, 30);
    // Shutdown writes one file with all of them and empties the spool.
    archive.shutdown().unwrap();
    assert_eq!(listing(&root).len(), 1);
    assert_eq!(read_all(&root).len(), 30);
    assert_eq!(fs::metadata(&spool).unwrap().len(), 0);
}

#[test]
fn records_flushed_to_the_spool_survive_a_crash_and_are_archived_once() {
    let dir = tempfile::tempdir().unwrap();
    let (root, spool) = (dir.path().join("archive"), dir.path().join("spool.bin"));
    let cfg = ArchiveConfig {
        roll_records: 25,
        ..spooled(&root, &spool)
    };
    let crashed = start(&cfg);
    // 10 flushed to the spool, then 15 more: the 25 roll into a file and leave the
    // spool; 10 more are flushed to it; 5 are appended after the last flush, so no
    // checkpoint covers them.
    for (range, flush) in [
        (0..10, true),
        (10..25, false),
        (25..35, true),
        (35..40, false),
    ] {
        crashed
            .append(events(range, "2017-06-12 10:00:00"))
            .unwrap();
        if flush {
            crashed.flush().unwrap();
        }
    }
    wait_until("the first file", || listing(&root).len() == 1);
    // The crash: this writer never writes again (its thread idles until the test ends).
    std::mem::forget(crashed);

    let restarted = start(&cfg);
    assert_eq!(restarted.stats().buffered_records, 10);
    restarted.shutdown().unwrap();
    let mut users: Vec<String> = read_all(&root).into_iter().map(|r| r.username).collect();
    users.sort_by_key(|u| u[4..].parse::<u32>().unwrap());
    let expected: Vec<String> = (0..35).map(|n| format!("user{n}")).collect();
    assert_eq!(
        users, expected,
        "each durable record once; the unflushed 5 are the source's to resend"
    );
}

#[test]
fn origins_are_archived_as_their_text_in_files_and_through_the_spool() {
    let dir = tempfile::tempdir().unwrap();
    let (root, spool) = (dir.path().join("archive"), dir.path().join("spool.bin"));
    let cfg = spooled(&root, &spool);
    let topic: Arc<str> = "like".into();
    let from_kafka = |range: std::ops::Range<usize>| -> Vec<ArchivedEvent> {
        events(range, "2017-06-12 10:00:00")
            .into_iter()
            .enumerate()
            .map(|(i, mut ev)| {
                ev.source = EventSource::Origin(Origin::Kafka {
                    topic: topic.clone(),
                    partition: 2,
                    offset: 40 + i as i64,
                });
                ev
            })
            .collect()
    };
    let crashed = start(&cfg);
    crashed.append(from_kafka(0..3)).unwrap();
    crashed.flush().unwrap();
    std::mem::forget(crashed);
    // Taken back from the spool as text, then more origins appended.
    let restarted = start(&cfg);
    restarted.append(from_kafka(3..5)).unwrap();
    restarted.shutdown().unwrap();
    let mut sources: Vec<String> = read_all(&root).into_iter().map(|r| r.source).collect();
    sources.sort();
    assert_eq!(
        sources,
        [
            "kafka:like/2@40",
            "kafka:like/2@40",
            "kafka:like/2@41",
            "kafka:like/2@41",
            "kafka:like/2@42"
        ]
    );
}

#[test]
fn shutdown_writes_what_is_buffered() {
    let dir = tempfile::tempdir().unwrap();
    let archive = start(&config(dir.path()));
    archive.append(events(0..7, "2017-06-12 10:00:00")).unwrap();
    archive.shutdown().unwrap();
    assert_eq!(read_all(dir.path()).len(), 7);
    assert!(archive.append(events(7..8, "2017-06-12 10:00:00")).is_err());
}

#[test]
fn zero_limits_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = ArchiveConfig {
        roll_records: 0,
        ..config(dir.path())
    };
    assert!(Archive::start(&cfg, Path::new("unused")).is_err());
}

#[test]
fn generated_events_round_trip_in_event_time_order_with_equal_bytes() {
    const EVENTS: usize = 200_000;
    let dir = tempfile::tempdir().unwrap();
    let root: PathBuf = dir.path().join("archive");
    let cfg = ArchiveConfig {
        roll_records: 30_000,
        row_group_records: 8_192,
        ..config(&root)
    };
    // Start an hour before midnight at 100 events/s of event time: two days.
    let mut generator = Generator::new(GenConfig {
        seed: 11,
        users: 2_000,
        mean_follows: 10.0,
        rate: 40.0,
        start_ms: parse_time("2017-06-12 23:00:00").unwrap(),
        ..GenConfig::default()
    });
    let mut originals = Vec::with_capacity(EVENTS);
    let mut buf = Vec::new();
    for _ in 0..EVENTS {
        let ev = generator.next_event();
        buf.clear();
        write_original_json(&ev, &mut buf);
        originals.push(ArchivedEvent {
            kind: ev.kind(),
            // What the pipeline would archive: the time as decoded (whole seconds).
            event_time_ms: ev.time() / 1000 * 1000,
            key: Bytes::copy_from_slice(ev.key().as_bytes()),
            raw: Bytes::copy_from_slice(&buf),
            source: "generator".into(),
        });
    }
    let raw_bytes: usize = originals.iter().map(|e| e.raw.len()).sum();
    let archive = start(&cfg);
    let t0 = Instant::now();
    for chunk in originals.chunks(4096) {
        archive.append(chunk.to_vec()).unwrap();
    }
    archive.flush().unwrap();
    let write = t0.elapsed();
    let stats = archive.stats();
    archive.shutdown().unwrap();

    let t1 = Instant::now();
    let rows = read_all(&root);
    let read = t1.elapsed();
    eprintln!(
        "archived {EVENTS} events ({:.1} MB raw) in {} files, {:.1} MB Parquet: write {:.0} events/s, read back in order {:.0} events/s",
        raw_bytes as f64 / 1e6,
        stats.files_written,
        stats.bytes_written as f64 / 1e6,
        EVENTS as f64 / write.as_secs_f64(),
        EVENTS as f64 / read.as_secs_f64(),
    );
    assert_eq!(stats.records_written, EVENTS as u64);
    let days: Vec<_> = listing(&root)
        .into_iter()
        .map(|f| f.split('/').next().unwrap().to_string())
        .collect::<std::collections::BTreeSet<_>>()
        .into_iter()
        .collect();
    assert!(days.len() >= 2, "{days:?}");
    assert_eq!(rows.len(), EVENTS);
    // The generator's stream is already in event-time order: the archive gives back
    // exactly that sequence, byte for byte.
    for (i, (row, orig)) in rows.iter().zip(&originals).enumerate() {
        assert_eq!(row.raw, orig.raw, "record {i}");
        assert_eq!(row.event, orig.kind.as_str(), "record {i}");
        assert_eq!(row.username, orig.key, "record {i}");
        assert_eq!(row.event_time_ms, orig.event_time_ms, "record {i}");
    }
}
