//! The archive on S3-compatible object storage (AWS S3, MinIO, Cloudflare R2, Ceph,
//! moto in tests): [`S3Store`] publishes each complete Parquet file with one signed
//! `PUT`, and [`S3Client`] lists and downloads them again for replay.
//!
//! Why this keeps the local folder's contract: an S3 object becomes visible only once
//! its `PUT` has completed, whole, so a reader never sees half a file, just as with
//! the local store's write-to-temporary-then-rename. No multipart upload is used (a
//! file is at most `archive.roll_bytes` of raw events, compressed, far below the 5 GB
//! single-`PUT` limit), so an interrupted upload leaves nothing behind to clean up.
//! Each `PUT` carries `Content-MD5`, so the store refuses a body damaged on the way.
//!
//! Outages lose nothing: a failed or timed-out `PUT` is an error to the writer thread
//! (`writer.rs`), which keeps the file's records buffered and tries again every
//! `archive.retry_ms` under the same object name (so a `PUT` that landed but whose
//! answer was lost is overwritten by its retry, not duplicated). While it fails, the
//! writer's buffer fills, then its bounded queue, and then the pipeline waits
//! (back-pressure); `flush` fails, so no state checkpoint is taken past records that
//! are not stored, Kafka offsets are not committed and HTTP ingest is not answered.
//! A kill during the outage is therefore a crash like any other: the source delivers
//! those records again. Every request has explicit timeouts (connect, each read and
//! write, the whole exchange), so a store that hangs is a failure, not a stuck thread.
//!
//! Start-up checks the bucket with one cheap signed request (a one-key listing under
//! the prefix), so a wrong endpoint, bucket, region or key fails `serve` at once with
//! the store's own error code instead of surfacing as retries later.
//!
//! Why these crates: `rusty-s3` only builds and signs requests (SigV4, no I/O of its
//! own) and `ureq` sends them, blocking, which suits the writer's own thread; together
//! they add about 30 s to a cold build, where `object_store` or the AWS SDK bring an
//! async HTTP and cloud-auth stack several times that size.

use std::fmt;
use std::io::{self, Read, Write};
use std::path::Path;
use std::time::Duration;

use base64::Engine;
use md5::{Digest, Md5};
use rusty_s3::actions::{GetObject, ListObjectsV2, PutObject};
use rusty_s3::{Bucket, Credentials, S3Action, UrlStyle};
use serde::{Deserialize, Serialize};

use super::store::ArchiveStore;

/// `[archive.s3]` in the TOML file, `INSTABRAND_ARCHIVE__S3__*`. The archive goes to S3
/// when `bucket` is set; the connection settings also serve `replay --from s3://…`.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct S3Config {
    /// Archive to this bucket instead of the local folder.
    pub bucket: Option<String>,
    /// Keys start with `<prefix>/` (e.g. `raw/dt=2017-06-12/part-….parquet`); empty
    /// puts the partitions at the bucket's root.
    pub prefix: String,
    /// The service's URL, for MinIO, R2, moto and the like (`http://127.0.0.1:9000`).
    /// Default: `AWS_ENDPOINT_URL`, else AWS itself, `https://s3.<region>.amazonaws.com`.
    pub endpoint: Option<String>,
    /// Default: `AWS_REGION`, else `AWS_DEFAULT_REGION`, else `us-east-1`.
    pub region: Option<String>,
    /// `http://host/bucket/key` instead of `http://bucket.host/key`. Default: on
    /// with a custom endpoint (what MinIO and moto expect), off on AWS.
    pub path_style: Option<bool>,
    /// Credentials; default: `AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY` and
    /// `AWS_SESSION_TOKEN` from the environment.
    pub access_key_id: Option<String>,
    pub secret_access_key: Option<String>,
    pub session_token: Option<String>,
    /// Giving up on connecting after this long.
    pub connect_timeout_ms: u64,
    /// ... on a connection where no byte moves either way for this long ...
    pub io_timeout_ms: u64,
    /// ... and on any one request (upload or download included) after this long.
    pub request_timeout_ms: u64,
}

impl Default for S3Config {
    fn default() -> Self {
        S3Config {
            bucket: None,
            prefix: String::new(),
            endpoint: None,
            region: None,
            path_style: None,
            access_key_id: None,
            secret_access_key: None,
            session_token: None,
            connect_timeout_ms: 5_000,
            io_timeout_ms: 30_000,
            request_timeout_ms: 300_000,
        }
    }
}

/// The secrets stay out of logs and panics.
impl fmt::Debug for S3Config {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let hidden = |v: &Option<String>| v.as_ref().map(|_| "…");
        f.debug_struct("S3Config")
            .field("bucket", &self.bucket)
            .field("prefix", &self.prefix)
            .field("endpoint", &self.endpoint)
            .field("region", &self.region)
            .field("path_style", &self.path_style)
            .field("access_key_id", &self.access_key_id)
            .field("secret_access_key", &hidden(&self.secret_access_key))
            .field("session_token", &hidden(&self.session_token))
            .field("connect_timeout_ms", &self.connect_timeout_ms)
            .field("io_timeout_ms", &self.io_timeout_ms)
            .field("request_timeout_ms", &self.request_timeout_ms)
            .finish()
    }
}

/// What went wrong talking to the object store.
#[derive(Debug, thiserror::Error)]
pub enum S3Error {
    #[error("S3 configuration: {0}")]
    Config(String),
    /// No answer: refused, reset, timed out, TLS failure.
    #[error("{op} {url}: {source}")]
    Transport {
        op: &'static str,
        url: String,
        #[source]
        source: Box<ureq::Error>,
    },
    /// An answer that is not a success, with S3's error code when it sent one.
    #[error("{op} {url}: HTTP {status} {code}{}{}", if message.is_empty() { "" } else { ": " }, message)]
    Status {
        op: &'static str,
        url: String,
        status: u16,
        code: String,
        message: String,
    },
    #[error("{op} {url}: {detail}")]
    Response {
        op: &'static str,
        url: String,
        detail: String,
    },
}

impl S3Error {
    /// A hint for the usual start-up mistakes, after the store's own words.
    fn hint(&self) -> Option<&'static str> {
        let S3Error::Status { status, code, .. } = self else {
            return match self {
                S3Error::Transport { .. } => {
                    Some("is archive.s3.endpoint (or AWS_ENDPOINT_URL) right, and the service up?")
                }
                _ => None,
            };
        };
        Some(match (code.as_str(), status) {
            ("NoSuchBucket", _) | (_, 404) => "create the bucket first, or fix archive.s3.bucket",
            ("InvalidAccessKeyId" | "SignatureDoesNotMatch" | "ExpiredToken", _) => {
                "check archive.s3.access_key_id / secret_access_key (or AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, AWS_SESSION_TOKEN)"
            }
            ("AuthorizationHeaderMalformed" | "PermanentRedirect", _) | (_, 301) => {
                "check archive.s3.region (or AWS_REGION)"
            }
            (_, 403) => {
                "the credentials were refused: they need s3:ListBucket and s3:PutObject on the bucket"
            }
            _ => return None,
        })
    }
}

/// Parsed `s3://bucket/prefix`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct S3Location {
    pub bucket: String,
    /// Without leading or trailing `/`; may be empty.
    pub prefix: String,
}

impl S3Location {
    /// `Some` for `s3://…` (an error if it has no bucket), `None` for anything else.
    pub fn parse(s: &str) -> Option<Result<S3Location, String>> {
        let rest = s.strip_prefix("s3://")?;
        let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
        Some(if bucket.is_empty() {
            Err(format!("{s:?}: no bucket; write s3://BUCKET[/PREFIX]"))
        } else {
            Ok(S3Location {
                bucket: bucket.to_string(),
                prefix: normalize_prefix(prefix),
            })
        })
    }
}

impl fmt::Display for S3Location {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "s3://{}", self.bucket)?;
        if !self.prefix.is_empty() {
            write!(f, "/{}", self.prefix)?;
        }
        Ok(())
    }
}

fn normalize_prefix(p: &str) -> String {
    p.trim_matches('/').to_string()
}

fn env_nonempty(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.trim().is_empty())
}

/// Signed requests to one bucket and prefix, sent blocking with timeouts.
pub struct S3Client {
    bucket: Bucket,
    credentials: Credentials,
    agent: ureq::Agent,
    location: S3Location,
    endpoint: String,
    /// How long a signed URL stays valid: the whole request must start within it.
    sign_for: Duration,
}

/// A listed object: its key relative to the prefix, and its size.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Listed {
    pub rel: String,
    pub size: u64,
}

impl S3Client {
    /// A client for `location`, with the connection settings of `cfg` (its own
    /// `bucket` and `prefix` are not used). Makes no request.
    pub fn new(cfg: &S3Config, location: S3Location) -> Result<Self, S3Error> {
        let region = cfg
            .region
            .clone()
            .or_else(|| env_nonempty("AWS_REGION"))
            .or_else(|| env_nonempty("AWS_DEFAULT_REGION"))
            .unwrap_or_else(|| "us-east-1".into());
        let custom = cfg
            .endpoint
            .clone()
            .filter(|e| !e.trim().is_empty())
            .or_else(|| env_nonempty("AWS_ENDPOINT_URL"));
        let path_style = cfg.path_style.unwrap_or(custom.is_some());
        let endpoint = custom.unwrap_or_else(|| format!("https://s3.{region}.amazonaws.com"));
        let url = endpoint
            .parse()
            .map_err(|e| S3Error::Config(format!("endpoint {endpoint:?}: {e}")))?;
        let style = if path_style {
            UrlStyle::Path
        } else {
            UrlStyle::VirtualHost
        };
        let bucket = Bucket::new(url, style, location.bucket.clone(), region).map_err(|e| {
            S3Error::Config(format!(
                "bucket {:?} at {endpoint}: {e:?} (an IP address or a bucket name with dots needs path_style = true)",
                location.bucket
            ))
        })?;
        let credentials = match (&cfg.access_key_id, &cfg.secret_access_key) {
            (Some(key), Some(secret)) => match &cfg.session_token {
                Some(token) => Credentials::new_with_token(key, secret, token),
                None => Credentials::new(key, secret),
            },
            (None, None) => Credentials::from_env().ok_or_else(|| {
                S3Error::Config(
                    "no credentials: set archive.s3.access_key_id and secret_access_key, or AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY".into(),
                )
            })?,
            _ => {
                return Err(S3Error::Config(
                    "give both archive.s3.access_key_id and archive.s3.secret_access_key".into(),
                ));
            }
        };
        let ms = Duration::from_millis;
        let agent = ureq::Agent::config_builder()
            .timeout_connect(Some(ms(cfg.connect_timeout_ms.max(1))))
            .timeout_per_read(Some(ms(cfg.io_timeout_ms.max(1))))
            .timeout_per_write(Some(ms(cfg.io_timeout_ms.max(1))))
            .timeout_per_call(Some(ms(cfg.request_timeout_ms.max(1))))
            // Error bodies carry S3's error code: read them rather than get a bare status.
            .http_status_as_error(false)
            .build()
            .new_agent();
        Ok(S3Client {
            bucket,
            credentials,
            agent,
            location,
            endpoint,
            sign_for: ms(cfg.request_timeout_ms.max(1)) + Duration::from_secs(60),
        })
    }

    pub fn location(&self) -> &S3Location {
        &self.location
    }

    /// `s3://bucket/prefix at endpoint`, for logs and health.
    pub fn describe(&self) -> String {
        format!("{} at {}", self.location, self.endpoint)
    }

    fn key(&self, rel: &str) -> String {
        if self.location.prefix.is_empty() {
            rel.to_string()
        } else {
            format!("{}/{rel}", self.location.prefix)
        }
    }

    fn display(&self, rel: &str) -> String {
        format!("s3://{}/{}", self.location.bucket, self.key(rel))
    }

    /// One cheap signed request (a one-key listing under the prefix): proves the
    /// endpoint answers, the bucket exists and the credentials and region are right.
    pub fn check(&self) -> Result<(), S3Error> {
        self.list_page(None, Some(1)).map(|_| ())
    }

    /// Start-up's check, with a hint added to the error for the usual mistakes.
    pub fn check_for_startup(&self) -> Result<(), String> {
        self.check().map_err(|e| match e.hint() {
            Some(hint) => format!("{e} ({hint})"),
            None => e.to_string(),
        })
    }

    /// Stores `data` at `<prefix>/<rel>` with one `PUT`.
    pub fn put(&self, rel: &str, data: &[u8]) -> Result<(), S3Error> {
        let key = self.key(rel);
        let url = PutObject::new(&self.bucket, Some(&self.credentials), &key).sign(self.sign_for);
        let md5 = base64::engine::general_purpose::STANDARD.encode(Md5::digest(data));
        let what = || self.display(rel);
        let mut resp = self
            .agent
            .put(url.as_str())
            .header("Content-MD5", &md5)
            .header("Content-Type", "application/vnd.apache.parquet")
            .send(data)
            .map_err(|e| transport("PUT", what(), e))?;
        check_status("PUT", what(), &mut resp)
    }

    /// A signed `GET` of `<prefix>/<rel>` (with a `Range` header if given) that
    /// answered 2xx; the body is the caller's to read.
    fn get(
        &self,
        rel: &str,
        range: Option<&str>,
    ) -> Result<ureq::http::Response<ureq::Body>, S3Error> {
        let key = self.key(rel);
        let url = GetObject::new(&self.bucket, Some(&self.credentials), &key).sign(self.sign_for);
        let mut req = self.agent.get(url.as_str());
        if let Some(range) = range {
            req = req.header("Range", range);
        }
        let mut resp = req
            .call()
            .map_err(|e| transport("GET", self.display(rel), e))?;
        check_status("GET", self.display(rel), &mut resp)?;
        Ok(resp)
    }

    /// Writes the object `<prefix>/<rel>` to `out`, streaming; returns its length.
    pub fn get_to(&self, rel: &str, out: &mut impl Write) -> Result<u64, S3Error> {
        let mut resp = self.get(rel, None)?;
        io::copy(&mut resp.body_mut().as_reader(), out).map_err(|e| S3Error::Response {
            op: "GET",
            url: self.display(rel),
            detail: e.to_string(),
        })
    }

    /// The last `n` bytes of an object (all of it if it is shorter): a Parquet footer.
    pub fn get_tail(&self, rel: &str, n: u64) -> Result<Vec<u8>, S3Error> {
        let mut resp = self.get(rel, Some(&format!("bytes=-{n}")))?;
        let mut buf = Vec::new();
        resp.body_mut()
            .as_reader()
            .read_to_end(&mut buf)
            .map_err(|e| S3Error::Response {
                op: "GET",
                url: self.display(rel),
                detail: e.to_string(),
            })?;
        // A server that ignores Range sends the whole object: keep its end.
        if buf.len() as u64 > n {
            buf.drain(..buf.len() - n as usize);
        }
        Ok(buf)
    }

    /// Every object under the prefix, relative to it, in key order.
    pub fn list(&self) -> Result<Vec<Listed>, S3Error> {
        let mut out = Vec::new();
        let mut token = None;
        loop {
            let (page, next) = self.list_page(token.as_deref(), None)?;
            out.extend(page);
            match next {
                Some(t) => token = Some(t),
                None => break,
            }
        }
        out.sort_by(|a, b| a.rel.cmp(&b.rel));
        Ok(out)
    }

    fn list_page(
        &self,
        token: Option<&str>,
        max_keys: Option<usize>,
    ) -> Result<(Vec<Listed>, Option<String>), S3Error> {
        let mut action = ListObjectsV2::new(&self.bucket, Some(&self.credentials));
        // `raw/`, not `raw`: `raw2/…` is not ours.
        let under = self.key("");
        if !under.is_empty() {
            action.with_prefix(under.clone());
        }
        if let Some(t) = token {
            action.with_continuation_token(t.to_string());
        }
        if let Some(n) = max_keys {
            action.with_max_keys(n);
        }
        let url = action.sign(self.sign_for);
        let what = || self.describe();
        let mut resp = self
            .agent
            .get(url.as_str())
            .call()
            .map_err(|e| transport("LIST", what(), e))?;
        check_status("LIST", what(), &mut resp)?;
        let body = read_text(&mut resp).map_err(|detail| S3Error::Response {
            op: "LIST",
            url: what(),
            detail,
        })?;
        let parsed = ListObjectsV2::parse_response(&body).map_err(|e| S3Error::Response {
            op: "LIST",
            url: what(),
            detail: format!("unreadable listing: {e}"),
        })?;
        let page = parsed
            .contents
            .into_iter()
            .filter_map(|c| {
                let rel = c.key.strip_prefix(&under)?.to_string();
                Some(Listed {
                    rel,
                    size: c.size.unwrap_or(0),
                })
            })
            .collect();
        Ok((page, parsed.next_continuation_token))
    }
}

fn transport(op: &'static str, url: String, e: ureq::Error) -> S3Error {
    S3Error::Transport {
        op,
        url,
        source: Box::new(e),
    }
}

fn read_text(resp: &mut ureq::http::Response<ureq::Body>) -> Result<String, String> {
    // Listings of 1,000 keys are a few hundred KB; error bodies are small.
    resp.body_mut()
        .with_config()
        .limit(16 << 20)
        .read_to_string()
        .map_err(|e| e.to_string())
}

fn check_status(
    op: &'static str,
    url: String,
    resp: &mut ureq::http::Response<ureq::Body>,
) -> Result<(), S3Error> {
    let status = resp.status().as_u16();
    if (200..300).contains(&status) {
        return Ok(());
    }
    let body = read_text(resp).unwrap_or_default();
    let (code, message) = error_code(&body);
    Err(S3Error::Status {
        op,
        url,
        status,
        code: code.unwrap_or_else(|| {
            resp.status()
                .canonical_reason()
                .unwrap_or("error")
                .to_string()
        }),
        message: message.unwrap_or_default(),
    })
}

/// `<Code>` and `<Message>` of an S3 error body (a flat document: no XML parser needed).
fn error_code(body: &str) -> (Option<String>, Option<String>) {
    let field = |tag: &str| {
        let open = format!("<{tag}>");
        let start = body.find(&open)? + open.len();
        let end = start + body[start..].find(&format!("</{tag}>"))?;
        Some(body[start..end].trim().to_string())
    };
    (field("Code"), field("Message"))
}

/// The archive store on S3: each file one `PUT` under `<prefix>/<rel>`.
pub struct S3Store {
    client: S3Client,
}

impl S3Store {
    /// Connects and checks the bucket (see [`S3Client::check`]); the error says what
    /// to fix.
    pub fn connect(cfg: &S3Config) -> Result<Self, String> {
        let bucket = cfg
            .bucket
            .clone()
            .filter(|b| !b.is_empty())
            .ok_or_else(|| "archive.s3.bucket is not set".to_string())?;
        let location = S3Location {
            bucket,
            prefix: normalize_prefix(&cfg.prefix),
        };
        let client = S3Client::new(cfg, location).map_err(|e| e.to_string())?;
        client
            .check_for_startup()
            .map_err(|e| format!("the S3 archive is not usable: {e}"))?;
        Ok(S3Store { client })
    }
}

/// `dt=2017-06-12/part-….parquet` whatever the platform's separator.
pub(crate) fn rel_key(rel: &Path) -> String {
    rel.components()
        .map(|c| c.as_os_str().to_string_lossy())
        .collect::<Vec<_>>()
        .join("/")
}

impl ArchiveStore for S3Store {
    fn put(&mut self, rel: &Path, data: &[u8]) -> io::Result<()> {
        self.client
            .put(&rel_key(rel), data)
            .map_err(io::Error::other)
    }

    fn describe(&self) -> String {
        self.client.describe()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::BufRead;
    use std::net::TcpListener;
    use std::sync::mpsc;
    use std::time::Instant;

    fn config(endpoint: &str) -> S3Config {
        S3Config {
            bucket: Some("archive".into()),
            prefix: "/raw/".into(),
            endpoint: Some(endpoint.into()),
            access_key_id: Some("key".into()),
            secret_access_key: Some("secret".into()),
            connect_timeout_ms: 500,
            io_timeout_ms: 500,
            request_timeout_ms: 2_000,
            ..S3Config::default()
        }
    }

    /// A one-shot HTTP server on loopback: answers each request with `answer` and
    /// reports the request line and headers it saw.
    fn fake_server(answer: &'static str) -> (String, mpsc::Receiver<String>) {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            for stream in listener.incoming().take(4) {
                let Ok(mut stream) = stream else { return };
                let mut reader = io::BufReader::new(stream.try_clone().unwrap());
                let mut head = String::new();
                let mut len = 0usize;
                loop {
                    let mut line = String::new();
                    if reader.read_line(&mut line).unwrap_or(0) == 0 || line == "\r\n" {
                        break;
                    }
                    if let Some(v) = line.to_ascii_lowercase().strip_prefix("content-length:") {
                        len = v.trim().parse().unwrap_or(0);
                    }
                    head.push_str(&line);
                }
                let mut body = vec![0; len];
                let _ = reader.read_exact(&mut body);
                let _ = tx.send(head);
                let _ = stream.write_all(answer.as_bytes());
            }
        });
        (format!("http://{addr}"), rx)
    }

    #[test]
    fn s3_urls_parse_into_bucket_and_prefix() {
        let loc = |s| S3Location::parse(s).unwrap().unwrap();
        assert_eq!(loc("s3://b").prefix, "");
        assert_eq!(loc("s3://b/").prefix, "");
        assert_eq!(loc("s3://b/raw/events/").prefix, "raw/events");
        assert_eq!(loc("s3://b/raw").to_string(), "s3://b/raw");
        assert_eq!(loc("s3://b").to_string(), "s3://b");
        assert!(S3Location::parse("s3:///raw").unwrap().is_err());
        assert!(S3Location::parse("data/archive").is_none());
    }

    #[test]
    fn a_put_is_one_signed_request_with_the_prefixed_key_and_its_md5() {
        let (endpoint, seen) = fake_server("HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n");
        let mut store = S3Store {
            client: S3Client::new(
                &config(&endpoint),
                S3Location {
                    bucket: "archive".into(),
                    prefix: "raw".into(),
                },
            )
            .unwrap(),
        };
        store
            .put(Path::new("dt=2017-06-12/part-1.parquet"), b"hello")
            .unwrap();
        let head = seen.recv().unwrap();
        assert!(
            head.starts_with("PUT /archive/raw/dt%3D2017-06-12/part-1.parquet?")
                || head.starts_with("PUT /archive/raw/dt=2017-06-12/part-1.parquet?"),
            "{head}"
        );
        assert!(head.contains("X-Amz-Signature="), "{head}");
        // md5("hello"), base64
        assert!(head.contains("XUFAKrxLKna5cZ2REBfFkg=="), "{head}");
    }

    #[test]
    fn refused_credentials_fail_the_start_up_check_with_the_store_s_code_and_a_hint() {
        let body = "<?xml version=\"1.0\"?><Error><Code>InvalidAccessKeyId</Code><Message>The AWS Access Key Id you provided does not exist in our records.</Message></Error>";
        let answer: &'static str = Box::leak(
            format!(
                "HTTP/1.1 403 Forbidden\r\nContent-Length: {}\r\n\r\n{body}",
                body.len()
            )
            .into_boxed_str(),
        );
        let (endpoint, _seen) = fake_server(answer);
        let err = S3Store::connect(&config(&endpoint)).err().expect("refused");
        assert!(err.contains("403"), "{err}");
        assert!(err.contains("InvalidAccessKeyId"), "{err}");
        assert!(err.contains("does not exist in our records"), "{err}");
        assert!(err.contains("AWS_ACCESS_KEY_ID"), "{err}");
    }

    #[test]
    fn an_unreachable_endpoint_fails_the_start_up_check() {
        // Bound then dropped: nothing listens there.
        let port = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let err = S3Store::connect(&config(&format!("http://127.0.0.1:{port}")))
            .err()
            .expect("unreachable");
        assert!(err.contains("endpoint"), "{err}");
    }

    #[test]
    fn a_store_that_never_answers_times_out_instead_of_hanging_the_writer() {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let endpoint = format!("http://{}", listener.local_addr().unwrap());
        // Accepts (the kernel does) but never reads nor answers.
        let mut store = S3Store {
            client: S3Client::new(
                &config(&endpoint),
                S3Location {
                    bucket: "archive".into(),
                    prefix: String::new(),
                },
            )
            .unwrap(),
        };
        let started = Instant::now();
        let err = store.put(Path::new("a.parquet"), b"data").unwrap_err();
        assert!(started.elapsed() < Duration::from_secs(5), "{err}");
        drop(listener);
    }

    #[test]
    fn missing_credentials_are_a_configuration_error() {
        let mut cfg = config("http://127.0.0.1:9");
        cfg.secret_access_key = None;
        let loc = S3Location {
            bucket: "b".into(),
            prefix: String::new(),
        };
        let err = S3Client::new(&cfg, loc).err().expect("half credentials");
        assert!(err.to_string().contains("secret_access_key"), "{err}");
    }

    #[test]
    fn error_bodies_yield_code_and_message() {
        let (c, m) = error_code("<Error><Code>NoSuchBucket</Code><Message>gone</Message></Error>");
        assert_eq!(c.as_deref(), Some("NoSuchBucket"));
        assert_eq!(m.as_deref(), Some("gone"));
        assert_eq!(error_code("not xml"), (None, None));
    }

    #[test]
    fn secrets_are_not_in_debug_output() {
        let cfg = config("http://x");
        let shown = format!("{cfg:?}");
        assert!(!shown.contains("secret\""), "{shown}");
        assert!(shown.contains("bucket"));
    }
}
