//! Crash safety: the real binary consumes a fixed stream (an NDJSON file) and is killed
//! with SIGKILL at random points, many times, restarting each time from its last
//! checkpoint. The final leaderboard, reach, timelines and counts must equal those of
//! an uninterrupted run exactly.

use std::io::{BufRead, BufReader, Write};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use instabrand_generator::{Config as GenConfig, Generator, write_original_json};
use serde_json::Value;

const RATE: &str = "25000";

fn write_stream(path: &Path) {
    let mut g = Generator::new(GenConfig {
        seed: 11,
        users: 3_000,
        mean_follows: 12.0,
        rate: 50.0,
        ..GenConfig::default()
    });
    let mut out = std::io::BufWriter::new(std::fs::File::create(path).unwrap());
    let mut buf = Vec::new();
    for i in 0..120_000u32 {
        buf.clear();
        write_original_json(&g.next_event(), &mut buf);
        out.write_all(&buf).unwrap();
        out.write_all(b"\n").unwrap();
        if i % 10_000 == 0 {
            out.write_all(b"{\"event\": \"garbage\n").unwrap(); // bad lines stay bad
        }
    }
}

struct Server {
    child: Child,
    base: String,
}

fn start(events: &Path, data: &Path) -> Server {
    let mut child = Command::new(env!("CARGO_BIN_EXE_instabrand"))
        .args(["serve", "--port", "0", "--events"])
        .arg(events)
        .args(["--events-rate", RATE, "--data-dir"])
        .arg(data)
        .env("INSTABRAND_STATE__CHECKPOINT_INTERVAL_MS", "250")
        .env("RUST_LOG", "warn")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("server starts");
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let base = line.trim().rsplit(' ').next().unwrap().to_string();
    assert!(base.starts_with("http://"), "{line}");
    Server { child, base }
}

fn get(base: &str, path: &str) -> Value {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        match ureq_get(&format!("{base}{path}")) {
            Ok(v) => return v,
            Err(e) if Instant::now() > deadline => panic!("GET {path}: {e}"),
            Err(_) => std::thread::sleep(Duration::from_millis(100)),
        }
    }
}

/// A minimal blocking HTTP GET (keeps this test free of an async runtime).
fn ureq_get(url: &str) -> Result<Value, String> {
    let rest = url.strip_prefix("http://").ok_or("not http")?;
    let (host, path) = rest.split_at(rest.find('/').unwrap_or(rest.len()));
    let mut s = std::net::TcpStream::connect(host).map_err(|e| e.to_string())?;
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n"
    )
    .map_err(|e| e.to_string())?;
    let mut resp = Vec::new();
    std::io::Read::read_to_end(&mut s, &mut resp).map_err(|e| e.to_string())?;
    let text = String::from_utf8_lossy(&resp);
    let (head, body) = text.split_once("\r\n\r\n").ok_or("no body")?;
    if !head.starts_with("HTTP/1.1 200") {
        return Err(head.lines().next().unwrap_or("").to_string());
    }
    let body = if head
        .to_ascii_lowercase()
        .contains("transfer-encoding: chunked")
    {
        dechunk(body)
    } else {
        body.to_string()
    };
    serde_json::from_str(&body).map_err(|e| e.to_string())
}

fn dechunk(mut s: &str) -> String {
    let mut out = String::new();
    while let Some((size, rest)) = s.split_once("\r\n") {
        let n = usize::from_str_radix(size.trim(), 16).unwrap_or(0);
        if n == 0 {
            break;
        }
        out.push_str(&rest[..n]);
        s = &rest[n + 2..];
    }
    out
}

fn finished(base: &str) -> bool {
    let h = get(base, "/api/health");
    h["sources"]
        .as_array()
        .unwrap()
        .iter()
        .any(|s| s["kind"] == "file" && s["detail"].as_str().unwrap_or("").starts_with("finished"))
}

/// Everything the state determines, as the API shows it.
fn final_view(base: &str) -> Value {
    let deadline = Instant::now() + Duration::from_secs(300);
    while !finished(base) {
        assert!(Instant::now() < deadline, "the stream did not finish");
        std::thread::sleep(Duration::from_millis(200));
    }
    let health = get(base, "/api/health");
    let top = get(base, "/api/influencers?window=all&limit=5");
    let users: Vec<Value> = top
        .as_array()
        .unwrap()
        .iter()
        .map(|i| {
            get(
                base,
                &format!("/api/users/{}?limit=100", i["username"].as_str().unwrap()),
            )
        })
        .collect();
    serde_json::json!({
        "leaderboard": get(base, "/api/leaderboard?window=all"),
        "leaderboard_5m": get(base, "/api/leaderboard?window=5m"),
        "brand_metrics": get(base, "/brand-metrics"),
        "influencers": top,
        "users": users,
        "counts": [health["users"], health["photos"], health["events_by_kind"], health["pending_engagements"], health["stream_clock_ms"]],
    })
}

#[test]
fn killing_the_server_at_random_points_changes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let events = dir.path().join("events.ndjson");
    write_stream(&events);

    let mut calm = start(&events, &dir.path().join("calm"));
    let expected = final_view(&calm.base);
    calm.child.kill().unwrap();
    calm.child.wait().unwrap();

    let data = dir.path().join("crashy");
    // A fixed seed for the kill points, so a failure can be reproduced.
    let mut seed: u64 = 0x5EED_1234;
    let mut kills = 0;
    for _ in 0..8 {
        let mut s = start(&events, &data);
        seed = seed
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        let wait_ms = 300 + (seed >> 33) % 1200;
        std::thread::sleep(Duration::from_millis(wait_ms));
        let done = finished(&s.base);
        s.child.kill().unwrap(); // SIGKILL: no chance to checkpoint
        s.child.wait().unwrap();
        kills += 1;
        if done {
            break;
        }
    }
    assert!(kills >= 3, "the server was killed mid-stream several times");
    let mut last = start(&events, &data);
    let got = final_view(&last.base);
    last.child.kill().unwrap();
    last.child.wait().unwrap();
    assert_eq!(got["counts"], expected["counts"]);
    assert_eq!(got["leaderboard"], expected["leaderboard"]);
    assert_eq!(got["leaderboard_5m"], expected["leaderboard_5m"]);
    assert_eq!(got["brand_metrics"], expected["brand_metrics"]);
    assert_eq!(got["influencers"], expected["influencers"]);
    assert_eq!(got["users"], expected["users"]);
}

/// Stops the server as an operator would (SIGTERM: a last checkpoint, the archive
/// flushed).
fn stop(mut s: Server) {
    let pid = s.child.id().to_string();
    let ok = Command::new("kill").args(["-TERM", &pid]).status().unwrap();
    assert!(ok.success());
    let status = s.child.wait().unwrap();
    assert!(status.success(), "a clean stop: {status}");
}

#[test]
fn a_damaged_store_is_reported_and_the_state_rebuilt_from_the_archive_is_the_same() {
    use std::io::{Seek, SeekFrom};
    let dir = tempfile::tempdir().unwrap();
    let events = dir.path().join("events.ndjson");
    write_stream(&events);
    let data = dir.path().join("data");
    let s = start(&events, &data);
    let expected = final_view(&s.base);
    stop(s);

    // Random bytes over the store file.
    let store = data.join("state.redb");
    let len = std::fs::metadata(&store).unwrap().len();
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .open(&store)
        .unwrap();
    let mut x = 0x2545_F491_4F6C_DD1Du64;
    for at in (0..len).step_by(2048) {
        f.seek(SeekFrom::Start(at)).unwrap();
        let junk: Vec<u8> = (0..256)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                x as u8
            })
            .collect();
        f.write_all(&junk).unwrap();
    }
    drop(f);

    // Start-up refuses, says why and what to do, and prints no stack trace.
    let out = Command::new(env!("CARGO_BIN_EXE_instabrand"))
        .args(["serve", "--port", "0", "--events"])
        .arg(&events)
        .arg("--data-dir")
        .arg(&data)
        .env("RUST_LOG", "warn")
        .env_remove("RUST_BACKTRACE")
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{err}");
    assert!(err.contains("is damaged"), "{err}");
    assert!(err.contains("instabrand rebuild"), "{err}");
    assert!(!err.contains("stack backtrace"), "{err}");

    let out = Command::new(env!("CARGO_BIN_EXE_instabrand"))
        .arg("rebuild")
        .arg("--data-dir")
        .arg(&data)
        .env("RUST_LOG", "warn")
        .output()
        .unwrap();
    let said = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{said}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(said.contains("kept as"), "{said}");
    // The damaged store is kept for inspection, never deleted: moved as it was into
    // a folder of its own.
    let kept: Vec<_> = std::fs::read_dir(&data)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| {
            p.file_name()
                .unwrap()
                .to_string_lossy()
                .starts_with("state.redb.damaged-")
        })
        .collect();
    assert_eq!(kept.len(), 1, "{kept:?}");
    assert!(kept[0].join("state.redb").is_file(), "{kept:?}");

    // The rebuilt state resumes after the last archived line: same numbers.
    let s = start(&events, &data);
    let got = final_view(&s.base);
    stop(s);
    std::fs::write("/tmp/got.json", serde_json::to_string_pretty(&got).unwrap()).unwrap();
    std::fs::write(
        "/tmp/exp.json",
        serde_json::to_string_pretty(&expected).unwrap(),
    )
    .unwrap();
    assert_eq!(got["counts"], expected["counts"]);
    assert_eq!(got["leaderboard"], expected["leaderboard"]);
    assert_eq!(got["leaderboard_5m"], expected["leaderboard_5m"]);
    assert_eq!(got["brand_metrics"], expected["brand_metrics"]);
    assert_eq!(got["influencers"], expected["influencers"]);
    assert_eq!(got["users"], expected["users"]);
}
