//! An NDJSON file as the source: a fixed stream for demos, benchmarks and the crash
//! test. Its position is the byte offset after the last line of each batch, saved in
//! checkpoints, so a restarted server continues from exactly where its state left off.

use std::io::{BufRead, BufReader, Seek, SeekFrom};
use std::path::PathBuf;
use std::time::{Duration, Instant};

use bytes::Bytes;
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

use super::SourceCtx;
use crate::align::LogPosition;
use crate::intake::{Origin, Record};

pub const NAME: &str = "file";

pub async fn run(state: SourceCtx, path: PathBuf, rate: f64, shutdown: CancellationToken) {
    let start = state
        .restored
        .get(NAME)
        .and_then(|p| p.get("offset"))
        .and_then(|o| o.as_u64())
        .unwrap_or(0);
    let st = state.clone();
    let report = move |connected: bool, detail: String| {
        st.health.update(NAME, |h| {
            h.connected = connected;
            h.detail = detail;
            h.rate = (rate > 0.0).then_some(rate);
        })
    };
    let file = match std::fs::File::open(&path) {
        Ok(f) => f,
        Err(e) => {
            report(false, format!("cannot open {}: {e}", path.display()));
            return;
        }
    };
    let mut reader = BufReader::with_capacity(1 << 20, file);
    if let Err(e) = reader.seek(SeekFrom::Start(start)) {
        report(false, format!("cannot seek {}: {e}", path.display()));
        return;
    }
    if start > 0 {
        info!(offset = start, "file source resumes from its checkpoint");
    }
    report(true, format!("reading {}", path.display()));
    let max = state.pipeline.max_batch_records.max(1);
    let batch_len = if rate > 0.0 {
        ((rate / 20.0).ceil() as usize).clamp(1, max)
    } else {
        max
    };
    let mut offset = start;
    let mut sent = 0u64;
    let started = Instant::now();
    let mut line = Vec::new();
    loop {
        if shutdown.is_cancelled() {
            return;
        }
        let mut batch = Vec::with_capacity(batch_len);
        while batch.len() < batch_len {
            line.clear();
            match reader.read_until(b'\n', &mut line) {
                Ok(0) => break,
                Ok(n) => {
                    offset += n as u64;
                    let rec = line.trim_ascii();
                    if !rec.is_empty() {
                        batch.push(Record::new(
                            Bytes::copy_from_slice(rec),
                            Origin::File { offset },
                        ));
                    }
                }
                Err(e) => {
                    warn!(error = %e, "file source read failed");
                    report(false, format!("read failed: {e}"));
                    return;
                }
            }
        }
        if batch.is_empty() {
            // Everything sent earlier is applied once this empty batch is answered.
            if state
                .intake
                .submit_with_inputs(
                    Vec::new(),
                    None,
                    vec![(NAME.to_string(), LogPosition::AtEnd)],
                )
                .await
                .is_err()
            {
                return;
            }
            report(
                true,
                format!("finished: {} at byte {offset}", path.display()),
            );
            info!(events = sent, "file source finished");
            return;
        }
        sent += batch.len() as u64;
        let pos = (NAME.to_string(), serde_json::json!({ "offset": offset }));
        let last = batch.len() < batch_len;
        let ok = if last {
            // The end: wait until it is applied, so "finished" means applied.
            state
                .intake
                .submit_batch(batch, Some(pos), false)
                .await
                .is_ok()
        } else {
            state.intake.send_behind(batch, pos, NAME).await.is_ok()
        };
        if !ok {
            return;
        }
        if rate > 0.0 {
            let due = started + Duration::from_secs_f64(sent as f64 / rate);
            tokio::select! {
                _ = shutdown.cancelled() => return,
                _ = tokio::time::sleep_until(due.into()) => {}
            }
        }
    }
}
