//! A TCP proxy on loopback that delays every byte by a fixed time in each direction, so one
//! machine can stage a broker whose acknowledgements take milliseconds, as real clusters'
//! do (network, replication, `acks=all`).
//!
//! Bytes are read as they come and written out in order once their delay has passed, so the
//! added latency is the same for every request and does not cost bandwidth. Plain threads: a
//! Kafka client opens a handful of connections.

use std::io::{Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};

/// A running proxy; it stops accepting when dropped (open connections end with their peers).
pub struct LatencyProxy {
    stop: Arc<AtomicBool>,
    port: u16,
}

impl LatencyProxy {
    /// Listens on 127.0.0.1:`port` and forwards every connection to 127.0.0.1:`upstream`,
    /// each direction delayed by `delay`.
    pub fn start(port: u16, upstream: u16, delay: Duration) -> Result<Self> {
        let listener = TcpListener::bind(("127.0.0.1", port))
            .with_context(|| format!("the latency proxy cannot listen on 127.0.0.1:{port}"))?;
        listener.set_nonblocking(true)?;
        let stop = Arc::new(AtomicBool::new(false));
        let accepting = stop.clone();
        std::thread::Builder::new()
            .name("latency-proxy".into())
            .spawn(move || {
                while !accepting.load(Ordering::Acquire) {
                    match listener.accept() {
                        Ok((client, _)) => {
                            let _ = client.set_nonblocking(false);
                            if let Ok(server) = TcpStream::connect(("127.0.0.1", upstream)) {
                                connect(client, server, delay);
                            }
                        }
                        Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                            std::thread::sleep(Duration::from_millis(5));
                        }
                        Err(_) => std::thread::sleep(Duration::from_millis(5)),
                    }
                }
            })?;
        Ok(Self { stop, port })
    }

    /// The port clients connect to.
    pub fn port(&self) -> u16 {
        self.port
    }
}

impl Drop for LatencyProxy {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Release);
    }
}

/// Pipes both directions of one connection, each through its own delay line.
fn connect(client: TcpStream, server: TcpStream, delay: Duration) {
    let _ = client.set_nodelay(true);
    let _ = server.set_nodelay(true);
    for (from, to) in [(&client, &server), (&server, &client)] {
        let (Ok(from), Ok(to)) = (from.try_clone(), to.try_clone()) else {
            return;
        };
        delay_line(from, to, delay);
    }
}

/// One direction: a reader stamps each chunk with the time it arrived, a writer sends it on
/// once `delay` has passed since.
fn delay_line(mut from: TcpStream, mut to: TcpStream, delay: Duration) {
    let (tx, rx) = mpsc::channel::<(Instant, Vec<u8>)>();
    let _ = std::thread::Builder::new()
        .name("latency-read".into())
        .spawn(move || {
            let mut buf = vec![0u8; 64 * 1024];
            loop {
                match from.read(&mut buf) {
                    Ok(0) | Err(_) => break,
                    Ok(n) => {
                        if tx.send((Instant::now(), buf[..n].to_vec())).is_err() {
                            break;
                        }
                    }
                }
            }
        });
    let _ = std::thread::Builder::new()
        .name("latency-write".into())
        .spawn(move || {
            while let Ok((arrived, chunk)) = rx.recv() {
                let due = arrived + delay;
                let now = Instant::now();
                if due > now {
                    std::thread::sleep(due - now);
                }
                if to.write_all(&chunk).is_err() {
                    break;
                }
            }
            let _ = to.shutdown(Shutdown::Write);
        });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bytes_arrive_in_order_after_the_delay_each_way() {
        let upstream = TcpListener::bind("127.0.0.1:0").unwrap();
        let upstream_port = upstream.local_addr().unwrap().port();
        std::thread::spawn(move || {
            let (mut s, _) = upstream.accept().unwrap();
            let mut buf = [0u8; 5];
            s.read_exact(&mut buf).unwrap();
            s.write_all(&buf).unwrap();
        });
        let port = ferry_tansu::free_port().unwrap();
        let _proxy = LatencyProxy::start(port, upstream_port, Duration::from_millis(30)).unwrap();
        let mut c = TcpStream::connect(("127.0.0.1", port)).unwrap();
        let started = Instant::now();
        c.write_all(b"hello").unwrap();
        let mut back = [0u8; 5];
        c.read_exact(&mut back).unwrap();
        assert_eq!(&back, b"hello");
        assert!(
            started.elapsed() >= Duration::from_millis(60),
            "delayed both ways: {:?}",
            started.elapsed()
        );
    }
}
