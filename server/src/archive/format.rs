//! The Parquet layout of archive files, written and read with parquet's column API
//! (no Arrow: the archive has two flat schemas, and leaving Arrow out keeps the
//! dependency's build small).
//!
//! Events: `event` (string), `event_time` (timestamp ms UTC), `username` (string),
//! `source` (string), `ingest_time` (timestamp ms UTC), `ingest_seq` (int64), `raw`
//! (string: the original JSON bytes). Rows in a file are sorted by
//! (`event_time`, `ingest_time`, `ingest_seq`), the order a replay reads them in.
//!
//! Dead letters: `reason`, `detail`, `source` (strings), `dead_letter_time` (timestamp
//! ms UTC), `ingest_seq`, `raw` (binary: the bytes may not be UTF-8) and `raw_text`
//! (the same bytes as UTF-8, lossy, for people and SQL).
//!
//! Snappy compression: every engine reads it and it is cheap to write.

use std::sync::{Arc, LazyLock};

use bytes::Bytes;
use parquet::basic::Compression;
use parquet::column::reader::{ColumnReader, ColumnReaderImpl};
use parquet::data_type::{ByteArray, ByteArrayType, DataType, Int64Type};
use parquet::errors::{ParquetError, Result};
use parquet::file::properties::{EnabledStatistics, WriterProperties, WriterVersion};
use parquet::file::reader::RowGroupReader;
use parquet::file::writer::{SerializedFileWriter, SerializedRowGroupWriter};
use parquet::schema::parser::parse_message_type;
use parquet::schema::types::{ColumnPath, Type as SchemaType};

pub const EVENT_COLUMNS: [&str; 7] = [
    "event",
    "event_time",
    "username",
    "source",
    "ingest_time",
    "ingest_seq",
    "raw",
];

pub const DEAD_LETTER_COLUMNS: [&str; 7] = [
    "reason",
    "detail",
    "source",
    "dead_letter_time",
    "ingest_seq",
    "raw",
    "raw_text",
];

const EVENT_SCHEMA: &str = "
message instabrand_event {
  REQUIRED BYTE_ARRAY event (STRING);
  REQUIRED INT64 event_time (TIMESTAMP(MILLIS,true));
  REQUIRED BYTE_ARRAY username (STRING);
  REQUIRED BYTE_ARRAY source (STRING);
  REQUIRED INT64 ingest_time (TIMESTAMP(MILLIS,true));
  REQUIRED INT64 ingest_seq;
  REQUIRED BYTE_ARRAY raw (STRING);
}";

const DEAD_LETTER_SCHEMA: &str = "
message instabrand_dead_letter {
  REQUIRED BYTE_ARRAY reason (STRING);
  REQUIRED BYTE_ARRAY detail (STRING);
  REQUIRED BYTE_ARRAY source (STRING);
  REQUIRED INT64 dead_letter_time (TIMESTAMP(MILLIS,true));
  REQUIRED INT64 ingest_seq;
  REQUIRED BYTE_ARRAY raw;
  REQUIRED BYTE_ARRAY raw_text (STRING);
}";

static EVENT_TYPE: LazyLock<Arc<SchemaType>> =
    LazyLock::new(|| Arc::new(parse_message_type(EVENT_SCHEMA).expect("event schema parses")));
static DEAD_LETTER_TYPE: LazyLock<Arc<SchemaType>> = LazyLock::new(|| {
    Arc::new(parse_message_type(DEAD_LETTER_SCHEMA).expect("dead-letter schema parses"))
});

fn properties(unique_columns: &[&str]) -> Arc<WriterProperties> {
    let mut b = WriterProperties::builder()
        .set_writer_version(WriterVersion::PARQUET_1_0)
        .set_compression(Compression::SNAPPY)
        .set_created_by(format!("instabrand {}", env!("CARGO_PKG_VERSION")))
        // We size row groups ourselves (by records, see ArchiveConfig).
        .set_max_row_group_row_count(None);
    // Raw payloads are all different: a dictionary would only be abandoned, and min/max
    // statistics over them would only bloat the footer.
    for c in unique_columns {
        b = b
            .set_column_dictionary_enabled(ColumnPath::from(*c), false)
            .set_column_statistics_enabled(ColumnPath::from(*c), EnabledStatistics::None);
    }
    Arc::new(b.build())
}

/// One event row as the writer holds it. The text columns are `Bytes` (the event
/// name static, the username a slice of the payload, the sources slices of one
/// buffer), so handing them to Parquet copies and allocates nothing per row.
pub struct EventRow<'a> {
    pub event: &'static str,
    pub event_time_ms: i64,
    pub username: &'a Bytes,
    pub source: &'a Bytes,
    pub ingest_time_ms: i64,
    pub ingest_seq: i64,
    pub raw: &'a Bytes,
}

/// One dead-letter row as the writer holds it.
pub struct DeadLetterOut<'a> {
    pub reason: &'a str,
    pub detail: &'a str,
    pub source: &'a str,
    pub time_ms: i64,
    pub ingest_seq: i64,
    pub raw: &'a Bytes,
}

type RowGroup<'a> = SerializedRowGroupWriter<'a, Vec<u8>>;

fn next<'a, 'b>(
    rg: &'b mut RowGroup<'a>,
) -> Result<parquet::file::writer::SerializedColumnWriter<'b>> {
    rg.next_column()?
        .ok_or_else(|| ParquetError::General("fewer columns than values".into()))
}

/// Writes one column of a row group (required columns: no levels).
fn put<T: DataType>(rg: &mut RowGroup<'_>, values: impl Iterator<Item = T::T>) -> Result<()> {
    let v: Vec<T::T> = values.collect();
    let mut c = next(rg)?;
    c.typed::<T>().write_batch(&v, None, None)?;
    c.close()
}

fn put_strings<'s>(rg: &mut RowGroup<'_>, values: impl Iterator<Item = &'s str>) -> Result<()> {
    put::<ByteArrayType>(rg, values.map(ByteArray::from))
}

/// Static strings, without copying each into a buffer of its own.
fn put_static(rg: &mut RowGroup<'_>, values: impl Iterator<Item = &'static str>) -> Result<()> {
    put::<ByteArrayType>(
        rg,
        values.map(|s| ByteArray::from(Bytes::from_static(s.as_bytes()))),
    )
}

fn put_bytes<'s>(rg: &mut RowGroup<'_>, values: impl Iterator<Item = &'s Bytes>) -> Result<()> {
    // `Bytes` clones share the buffer: no copy of the payloads.
    put::<ByteArrayType>(rg, values.map(|b| ByteArray::from(b.clone())))
}

fn put_i64(rg: &mut RowGroup<'_>, values: impl Iterator<Item = i64>) -> Result<()> {
    put::<Int64Type>(rg, values)
}

/// A Parquet file of event rows (already sorted), `row_group` rows per row group.
pub fn encode_events(rows: &[EventRow<'_>], row_group: usize) -> Result<Vec<u8>> {
    let mut w = SerializedFileWriter::new(
        Vec::new(),
        EVENT_TYPE.clone(),
        // `source` too: from Kafka (`kafka:like/0@42`), files and HTTP ingest every
        // row's source is different, so its dictionary only cost time (8 % of the
        // archive thread) and footer; where it is one constant (`generator`,
        // `replay`) snappy still packs the plain values well (files ~1.5 % larger).
        properties(&["raw", "source", "ingest_seq", "ingest_time"]),
    )?;
    for chunk in rows.chunks(row_group.max(1)) {
        let mut rg = w.next_row_group()?;
        put_static(&mut rg, chunk.iter().map(|r| r.event))?;
        put_i64(&mut rg, chunk.iter().map(|r| r.event_time_ms))?;
        put_bytes(&mut rg, chunk.iter().map(|r| r.username))?;
        put_bytes(&mut rg, chunk.iter().map(|r| r.source))?;
        put_i64(&mut rg, chunk.iter().map(|r| r.ingest_time_ms))?;
        put_i64(&mut rg, chunk.iter().map(|r| r.ingest_seq))?;
        put_bytes(&mut rg, chunk.iter().map(|r| r.raw))?;
        rg.close()?;
    }
    w.into_inner()
}

/// A Parquet file of dead-letter rows.
pub fn encode_dead_letters(rows: &[DeadLetterOut<'_>], row_group: usize) -> Result<Vec<u8>> {
    let mut w = SerializedFileWriter::new(
        Vec::new(),
        DEAD_LETTER_TYPE.clone(),
        properties(&["raw", "raw_text", "ingest_seq", "detail"]),
    )?;
    for chunk in rows.chunks(row_group.max(1)) {
        let mut rg = w.next_row_group()?;
        put_strings(&mut rg, chunk.iter().map(|r| r.reason))?;
        put_strings(&mut rg, chunk.iter().map(|r| r.detail))?;
        put_strings(&mut rg, chunk.iter().map(|r| r.source))?;
        put_i64(&mut rg, chunk.iter().map(|r| r.time_ms))?;
        put_i64(&mut rg, chunk.iter().map(|r| r.ingest_seq))?;
        put_bytes(&mut rg, chunk.iter().map(|r| r.raw))?;
        let text: Vec<String> = chunk
            .iter()
            .map(|r| String::from_utf8_lossy(r.raw).into_owned())
            .collect();
        put_strings(&mut rg, text.iter().map(String::as_str))?;
        rg.close()?;
    }
    w.into_inner()
}

/// Checks that a file's columns are the ones we wrote, in order.
pub fn check_columns(
    rg: &dyn RowGroupReader,
    expected: &[&str],
) -> std::result::Result<(), String> {
    let schema = rg.metadata().schema_descr();
    let names: Vec<String> = (0..schema.num_columns())
        .map(|i| schema.column(i).name().to_string())
        .collect();
    if names == expected {
        Ok(())
    } else {
        Err(format!("columns {names:?}, expected {expected:?}"))
    }
}

/// All values of column `i` of a row group (required columns: no levels).
pub fn read_byte_arrays(rg: &dyn RowGroupReader, i: usize) -> Result<Vec<ByteArray>> {
    let ColumnReader::ByteArrayColumnReader(r) = rg.get_column_reader(i)? else {
        return Err(ParquetError::General(format!("column {i} is not binary")));
    };
    read_all(r, rg.metadata().num_rows() as usize)
}

pub fn read_i64s(rg: &dyn RowGroupReader, i: usize) -> Result<Vec<i64>> {
    let ColumnReader::Int64ColumnReader(r) = rg.get_column_reader(i)? else {
        return Err(ParquetError::General(format!("column {i} is not int64")));
    };
    read_all(r, rg.metadata().num_rows() as usize)
}

/// Reads up to `n` values from a typed column reader (fewer if the column ends early).
fn read_all<T: DataType>(mut r: ColumnReaderImpl<T>, n: usize) -> Result<Vec<T::T>> {
    let mut out = Vec::with_capacity(n);
    while out.len() < n {
        let (records, _, _) = r.read_records(n - out.len(), None, None, &mut out)?;
        if records == 0 {
            break;
        }
    }
    Ok(out)
}

pub fn read_strings(rg: &dyn RowGroupReader, i: usize) -> Result<Vec<String>> {
    read_byte_arrays(rg, i)?
        .into_iter()
        .map(|b| {
            String::from_utf8(b.data().to_vec())
                .map_err(|e| ParquetError::General(format!("column {i} is not UTF-8: {e}")))
        })
        .collect()
}
