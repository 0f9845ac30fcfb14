//! HTTP ingest as a source: an NDJSON body split into records, one per line, sent
//! through the intake and answered only once they are in a durable checkpoint (an
//! acknowledged ingest must survive a crash). The route (`web/ingest.rs`) checks the
//! token and hands the body here.

use bytes::Bytes;
use instabrand_shared::api::{IngestError, IngestReport};

use crate::intake::{Origin, PipelineClosed, PipelineHandle, Record};

/// The records of an NDJSON body: blank lines skipped, each record's origin its line
/// number (counted from 1).
pub fn records(body: &Bytes) -> Vec<Record> {
    let mut records = Vec::new();
    let mut start = 0;
    for (i, line) in body.split(|&b| b == b'\n').enumerate() {
        let end = start + line.len();
        let slice = body.slice(start..end);
        start = end + 1;
        let trimmed = line.trim_ascii();
        if trimmed.is_empty() {
            continue;
        }
        let slice = if trimmed.len() == line.len() {
            slice
        } else {
            Bytes::copy_from_slice(trimmed)
        };
        records.push(Record::new(slice, Origin::Ingest { line: i as u64 + 1 }));
    }
    records
}

/// Sends `body`'s records in batches of at most `max_batch`, each waiting for its
/// durable checkpoint; the report lists at most `listed` rejected lines.
pub async fn ingest(
    intake: &PipelineHandle,
    body: &Bytes,
    max_batch: usize,
    listed: usize,
) -> Result<IngestReport, PipelineClosed> {
    let mut records = records(body);
    let mut report = IngestReport::default();
    let max = max_batch.max(1);
    while !records.is_empty() {
        let rest = records.split_off(records.len().min(max));
        let lines: Vec<u64> = records
            .iter()
            .map(|r| match r.origin {
                Origin::Ingest { line } => line,
                _ => 0,
            })
            .collect();
        let result = intake
            .submit_batch(std::mem::replace(&mut records, rest), None, true)
            .await?;
        report.accepted += result.applied;
        report.rejected += result.rejected.len() as u64;
        for (i, e) in result.rejected {
            if report.errors.len() < listed {
                report.errors.push(IngestError {
                    line: lines[i],
                    reason: e.reason.code().into(),
                    detail: e.detail,
                });
            }
        }
    }
    Ok(report)
}
