//! Test helpers: start the real application on port 0 and talk to it over HTTP and
//! WebSocket, as a client would.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use instabrand_server::Application;
use instabrand_server::config::Config;
use instabrand_server::web::AppState;
use instabrand_shared::api::IngestReport;
use instabrand_shared::ws::{ClientMessage, ServerMessage, Topic};
use serde::de::DeserializeOwned;
use serde_json::json;
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};
use tokio_util::sync::CancellationToken;

pub const INGEST_TOKEN: &str = "test-ingest-token";
pub const CONTROL_TOKEN: &str = "test-control-token";
pub const DEAD_LETTERS_TOKEN: &str = "test-dead-letters-token";

pub struct TestApp {
    pub addr: SocketAddr,
    pub state: Arc<AppState>,
    pub http: reqwest::Client,
    shutdown: CancellationToken,
    pub dir: tempfile::TempDir,
}

impl Drop for TestApp {
    fn drop(&mut self) {
        self.shutdown.cancel();
    }
}

/// The application with no generator (tests feed it through ingest), tokens set, and
/// its data in a temporary directory.
pub async fn spawn_app() -> TestApp {
    spawn_app_with(|_| {}).await
}

pub async fn spawn_app_with(tune: impl FnOnce(&mut Config)) -> TestApp {
    let dir = tempfile::tempdir().unwrap();
    let mut config = Config {
        port: 0,
        data_dir: dir.path().into(),
        static_dir: dir.path().join("no-dist"),
        ingest_token: Some(INGEST_TOKEN.into()),
        control_token: Some(CONTROL_TOKEN.into()),
        ..Config::default()
    };
    config.generator.enabled = Some(false);
    config.security.dead_letters_token = Some(DEAD_LETTERS_TOKEN.into());
    tune(&mut config);
    let app = Application::build(config)
        .await
        .expect("application builds");
    let addr = app.addr();
    let state = app.state();
    let shutdown = CancellationToken::new();
    tokio::spawn(app.run(shutdown.clone()));
    TestApp {
        addr,
        state,
        http: reqwest::Client::new(),
        shutdown,
        dir,
    }
}

impl TestApp {
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{}", self.addr, path)
    }

    pub async fn get<T: DeserializeOwned>(&self, path: &str) -> T {
        let res = self.http.get(self.url(path)).send().await.unwrap();
        assert!(res.status().is_success(), "GET {path}: {}", res.status());
        res.json().await.unwrap()
    }

    /// GET with `Authorization: Bearer token`, expecting success.
    pub async fn get_authorized<T: DeserializeOwned>(&self, path: &str, token: &str) -> T {
        let res = self
            .http
            .get(self.url(path))
            .bearer_auth(token)
            .send()
            .await
            .unwrap();
        assert!(res.status().is_success(), "GET {path}: {}", res.status());
        res.json().await.unwrap()
    }

    pub async fn ingest<S: AsRef<str>>(&self, lines: &[S]) -> IngestReport {
        let body: String = lines.iter().map(|l| format!("{}\n", l.as_ref())).collect();
        let res = self
            .http
            .post(self.url("/api/ingest"))
            .bearer_auth(INGEST_TOKEN)
            .body(body)
            .send()
            .await
            .unwrap();
        assert!(res.status().is_success(), "ingest: {}", res.status());
        res.json().await.unwrap()
    }

    pub async fn ws(&self) -> Ws {
        let (ws, _) = tokio_tungstenite::connect_async(format!("ws://{}/ws", self.addr))
            .await
            .expect("websocket connects");
        Ws(ws)
    }
}

pub struct Ws(pub WebSocketStream<MaybeTlsStream<TcpStream>>);

impl Ws {
    pub async fn subscribe(&mut self, topic: Topic) {
        let m = serde_json::to_string(&ClientMessage::Subscribe { topic }).unwrap();
        self.0.send(Message::Text(m.into())).await.unwrap();
    }

    /// The next server message, failing the test after 10 s of silence.
    pub async fn next(&mut self) -> ServerMessage {
        loop {
            let m = tokio::time::timeout(Duration::from_secs(10), self.0.next())
                .await
                .expect("a frame within 10 s")
                .expect("connection open")
                .expect("no websocket error");
            if let Message::Text(t) = m {
                return serde_json::from_str(&t).unwrap();
            }
        }
    }
}

pub fn t(sec: u32) -> String {
    format!("2017-06-12 10:{:02}:{:02}", sec / 60, sec % 60)
}

pub fn user(name: &str, sec: u32) -> String {
    json!({"username": name, "full_name": format!("{name} Example"), "created_time": t(sec), "event": "create-user"}).to_string()
}

pub fn photo(owner: &str, brand: &str, sec: u32) -> String {
    json!({"username": owner, "tags": brand, "photo_link": "https://example.com/p.jpg", "created_time": t(sec),
           "latitude": "48.8566", "longitude": "2.3522", "event": "photo-upload"})
    .to_string()
}

pub fn follow(follower: &str, followed: &str, sec: u32) -> String {
    json!({"followed_username": followed, "follower_username": follower, "created_time": t(sec), "event": "follow"}).to_string()
}

pub fn comment(actor: &str, owner: &str, photo_sec: u32, text: &str, sec: u32) -> String {
    json!({"followed_username": owner, "follower_username": actor, "photo_id": t(photo_sec), "text": text,
           "created_time": t(sec), "event": "comment"})
    .to_string()
}
