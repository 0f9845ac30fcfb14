//! The write side of every connection, shared: how the hub writes one frame to 10,000
//! WebSockets without waking 10,000 tasks.
//!
//! [`Listener`] accepts TCP connections as [`Conn`]s: hyper (HTTP, then the upgraded
//! WebSocket's reads) owns the `Conn`, but its socket and write queue live in an
//! [`Outlet`] that the WebSocket handler also gets (through `ConnectInfo`). The hub
//! writes each frame, framed and serialized once, straight into every subscriber's
//! socket from its own thread ([`Outlet::offer`]): one `send` per connection, no task
//! woken, no per-connection copy. Only a socket that cannot take the whole frame at
//! once gets the rest queued, and its connection's task is woken to write it when the
//! socket drains.
//!
//! Every writer goes through the outlet's lock, and a frame is always taken whole
//! (written, queued, or refused with nothing written), so frames from the hub, from
//! the connection's task (pings, pongs, errors) and from the WebSocket library
//! (answers to pings, close) never interleave mid-frame. For plain HTTP the queue
//! stays empty and a write is the socket's write.
//!
//! A subscriber that does not keep up lets its queue grow past `live.queue_frames`
//! frames or `live.max_write_buffer_bytes`: what waits is dropped (all but a frame
//! already partly written), [`Outlet::lag_generation`] moves on, and the hub sends it
//! fresh snapshots. Nobody else waits for it.

use std::collections::VecDeque;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, ready};
use std::time::Duration;

use axum::extract::connect_info::Connected;
use axum::serve::IncomingStream;
use bytes::Bytes;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Notify;

/// Accepts connections whose socket the hub can write to.
pub struct Listener(pub TcpListener);

impl axum::serve::Listener for Listener {
    type Io = Conn;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (Conn, SocketAddr) {
        loop {
            match self.0.accept().await {
                Ok((stream, addr)) => {
                    // Frames are whole messages written once: nothing to gain by waiting.
                    let _ = stream.set_nodelay(true);
                    // Halves that share the socket: reads stay tokio's own (they fill
                    // hyper's buffer without zeroing it first), writes go through the
                    // outlet.
                    let (read, write) = stream.into_split();
                    let conn = Conn {
                        outlet: Arc::new(Outlet::new(write)),
                        read,
                    };
                    return (conn, addr);
                }
                Err(e) if is_connection_error(&e) => {}
                Err(e) => {
                    // As axum's own listener: out of descriptors, say, wait a little.
                    tracing::error!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_secs(1)).await;
                }
            }
        }
    }

    fn local_addr(&self) -> io::Result<SocketAddr> {
        self.0.local_addr()
    }
}

fn is_connection_error(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::ConnectionRefused
            | io::ErrorKind::ConnectionAborted
            | io::ErrorKind::ConnectionReset
    )
}

/// The connection's outlet, for the handlers (`ConnectInfo<Socket>`).
#[derive(Clone)]
pub struct Socket(pub Arc<Outlet>);

impl Connected<IncomingStream<'_, Listener>> for Socket {
    fn connect_info(stream: IncomingStream<'_, Listener>) -> Self {
        Socket(stream.io().outlet.clone())
    }
}

/// What hyper reads from and writes to.
pub struct Conn {
    outlet: Arc<Outlet>,
    read: OwnedReadHalf,
}

/// Bytes accepted for a socket and not yet written, in order; the front one may be
/// partly written already.
#[derive(Default)]
struct Queue {
    chunks: VecDeque<Bytes>,
    bytes: usize,
}

pub struct Outlet {
    /// Dropped with the last holder, which shuts the socket's write side.
    write: OwnedWriteHalf,
    queue: Mutex<Queue>,
    /// The connection's task writes what is queued when woken.
    wake: Notify,
    closed: AtomicBool,
    lag: AtomicU64,
    limits: Mutex<Limits>,
}

#[derive(Clone, Copy)]
struct Limits {
    frames: usize,
    bytes: usize,
}

/// What became of an offered frame.
#[derive(Debug, PartialEq, Eq)]
pub enum Offered {
    /// In the socket, or queued behind what is.
    Taken,
    /// The connection is closed or failed: the frame is dropped.
    Closed,
}

impl Outlet {
    fn new(write: OwnedWriteHalf) -> Self {
        Outlet {
            write,
            queue: Mutex::new(Queue::default()),
            wake: Notify::new(),
            closed: AtomicBool::new(false),
            lag: AtomicU64::new(0),
            // HTTP responses never queue more than a partly written write; a WebSocket
            // sets its own limits.
            limits: Mutex::new(Limits {
                frames: usize::MAX,
                bytes: usize::MAX,
            }),
        }
    }

    /// A WebSocket's bounds: past either, the queue is dropped and the hub resyncs it.
    pub fn set_limits(&self, frames: usize, bytes: usize) {
        *self.limits.lock().expect("outlet lock poisoned") = Limits {
            frames: frames.max(1),
            bytes: bytes.max(1),
        };
    }

    fn stream(&self) -> &TcpStream {
        self.write.as_ref()
    }

    pub fn is_closed(&self) -> bool {
        self.closed.load(Ordering::Relaxed)
    }

    /// Stops all writing and tells the peer: the socket itself is closed when the last
    /// holder (the hub's subscriber lists among them) lets go.
    pub fn close(&self) {
        self.closed.store(true, Ordering::Relaxed);
        let _ = socket2::SockRef::from(self.stream()).shutdown(std::net::Shutdown::Both);
        self.wake.notify_one();
    }

    /// Moves on each time this connection's queue was dropped for falling behind: a
    /// subscription synced at an older generation needs a snapshot.
    pub fn lag_generation(&self) -> u64 {
        self.lag.load(Ordering::Relaxed)
    }

    /// Resolves when something was queued (or the outlet closed): the connection's task
    /// then calls [`Outlet::drain`].
    pub async fn wanted(&self) {
        self.wake.notified().await
    }

    /// Writes a whole WebSocket message (see [`ws_frame`]): at once if nothing waits
    /// and the socket takes it, else queued for the connection's task. Never blocks.
    pub fn offer(&self, frame: &Bytes) -> Offered {
        if self.is_closed() {
            return Offered::Closed;
        }
        let mut q = self.queue.lock().expect("outlet lock poisoned");
        if q.chunks.is_empty() {
            match self.stream().try_write(frame) {
                Ok(n) if n == frame.len() => return Offered::Taken,
                Ok(n) => q.push(frame.slice(n..)),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => q.push(frame.clone()),
                Err(_) => {
                    drop(q);
                    self.close();
                    return Offered::Closed;
                }
            }
            drop(q);
            self.wake.notify_one();
            return Offered::Taken;
        }
        let limits = *self.limits.lock().expect("outlet lock poisoned");
        if q.chunks.len() >= limits.frames || q.bytes + frame.len() > limits.bytes {
            // Too slow: drop the backlog (a partly written frame must be finished, or
            // the stream is corrupt) and let the hub send snapshots instead.
            let partial = q.chunks.pop_front();
            *q = Queue::default();
            if let Some(front) = partial {
                q.push(front);
            }
            self.lag.fetch_add(1, Ordering::Relaxed);
        } else {
            q.push(frame.clone());
        }
        Offered::Taken
    }

    /// Writes what is queued. `Ok(true)`: all written; `Ok(false)`: the socket is
    /// full (wait for [`Outlet::writable`]).
    pub fn drain(&self) -> io::Result<bool> {
        let mut q = self.queue.lock().expect("outlet lock poisoned");
        self.drain_locked(&mut q)
    }

    fn drain_locked(&self, q: &mut Queue) -> io::Result<bool> {
        while let Some(front) = q.chunks.front_mut() {
            match self.stream().try_write(front) {
                Ok(n) => {
                    q.bytes -= n;
                    if n == front.len() {
                        q.chunks.pop_front();
                    } else {
                        let _ = front.split_to(n);
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(false),
                Err(e) => return Err(e),
            }
        }
        Ok(true)
    }

    /// Resolves when the socket may take more bytes.
    pub async fn writable(&self) -> io::Result<()> {
        self.stream().writable().await
    }

    fn poll_drain(&self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        loop {
            if self.drain()? {
                return Poll::Ready(Ok(()));
            }
            ready!(self.stream().poll_write_ready(cx))?;
        }
    }

    fn poll_write(&self, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        if self.is_closed() {
            return Poll::Ready(Err(io::ErrorKind::BrokenPipe.into()));
        }
        loop {
            {
                let mut q = self.queue.lock().expect("outlet lock poisoned");
                // Whatever waits goes first; until it is out, nothing of `buf` is taken.
                if self.drain_locked(&mut q)? {
                    match self.stream().try_write(buf) {
                        Ok(n) if n == buf.len() => return Poll::Ready(Ok(n)),
                        // Taken whole: the rest waits in the queue, so a hub frame
                        // offered meanwhile goes after it, not into its middle.
                        Ok(n) => {
                            q.push(Bytes::copy_from_slice(&buf[n..]));
                            drop(q);
                            self.wake.notify_one();
                            return Poll::Ready(Ok(buf.len()));
                        }
                        Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                        Err(e) => return Poll::Ready(Err(e)),
                    }
                }
            }
            ready!(self.stream().poll_write_ready(cx))?;
        }
    }
}

impl Queue {
    fn push(&mut self, b: Bytes) {
        self.bytes += b.len();
        self.chunks.push_back(b);
    }
}

impl AsyncRead for Conn {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.read).poll_read(cx, buf)
    }
}

impl AsyncWrite for Conn {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        self.outlet.poll_write(cx, buf)
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.outlet.poll_drain(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        ready!(self.outlet.poll_drain(cx))?;
        let _ = socket2::SockRef::from(self.outlet.stream()).shutdown(std::net::Shutdown::Write);
        Poll::Ready(Ok(()))
    }
}

/// One WebSocket text message from the server, header and payload in one buffer:
/// built once and written as is to every subscriber (server frames are not masked).
pub fn ws_frame(payload: &[u8]) -> Bytes {
    frame_of(0x1, payload)
}

/// A WebSocket ping with no payload.
pub fn ws_ping() -> Bytes {
    frame_of(0x9, &[])
}

fn frame_of(opcode: u8, payload: &[u8]) -> Bytes {
    let mut f = Vec::with_capacity(payload.len() + 10);
    f.push(0x80 | opcode);
    match payload.len() {
        n if n < 126 => f.push(n as u8),
        n if n <= 0xffff => {
            f.push(126);
            f.extend_from_slice(&(n as u16).to_be_bytes());
        }
        n => {
            f.push(127);
            f.extend_from_slice(&(n as u64).to_be_bytes());
        }
    }
    f.extend_from_slice(payload);
    Bytes::from(f)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_carry_their_length_in_the_shortest_form() {
        assert_eq!(&ws_frame(b"hi")[..], b"\x81\x02hi");
        let mid = ws_frame(&[b'a'; 300]);
        assert_eq!(&mid[..4], &[0x81, 126, 0x01, 0x2c]);
        assert_eq!(mid.len(), 304);
        let big = ws_frame(&vec![b'a'; 70_000]);
        assert_eq!(&big[..2], &[0x81, 127]);
        assert_eq!(u64::from_be_bytes(big[2..10].try_into().unwrap()), 70_000);
        assert_eq!(&ws_ping()[..], &[0x89, 0]);
    }
}
