//! A TCP proxy on loopback in front of a broker, to stage on one machine what a real
//! cluster's network does:
//!
//! - a fixed delay per direction, so acknowledgements take milliseconds as real clusters' do
//!   (network, replication, `acks=all`): bytes are read as they come and written out in order
//!   once their delay has passed, so the delay costs no bandwidth;
//! - a bandwidth limit towards the broker (a slow broker), changeable while it runs;
//! - a stall: nothing is forwarded towards the broker until it is lifted (a broker that
//!   accepts connections and then does not answer).
//!
//! Plain threads: a Kafka client opens a handful of connections.

use std::io::{Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use std::sync::atomic::AtomicU64;

/// What can be changed while the proxy runs; shared by every connection.
#[derive(Debug, Default)]
struct Controls {
    /// Bytes per second towards the broker; 0 is no limit.
    upstream_rate: AtomicU64,
    /// While set, nothing is forwarded towards the broker.
    stalled: AtomicBool,
}

/// A running proxy; it stops accepting when dropped (open connections end with their peers).
pub struct BrokerProxy {
    stop: Arc<AtomicBool>,
    controls: Arc<Controls>,
    port: u16,
}

impl BrokerProxy {
    /// Listens on 127.0.0.1:`port` and forwards every connection to 127.0.0.1:`upstream`,
    /// each direction delayed by `delay`.
    pub fn start(port: u16, upstream: u16, delay: Duration) -> std::io::Result<Self> {
        let listener = TcpListener::bind(("127.0.0.1", port)).map_err(|e| {
            std::io::Error::new(
                e.kind(),
                format!("the broker proxy cannot listen on 127.0.0.1:{port}: {e}"),
            )
        })?;
        listener.set_nonblocking(true)?;
        let stop = Arc::new(AtomicBool::new(false));
        let controls = Arc::new(Controls::default());
        let accepting = stop.clone();
        let shared = controls.clone();
        std::thread::Builder::new()
            .name("broker-proxy".into())
            .spawn(move || {
                while !accepting.load(Ordering::Acquire) {
                    match listener.accept() {
                        Ok((client, _)) => {
                            let _ = client.set_nonblocking(false);
                            if let Ok(server) = TcpStream::connect(("127.0.0.1", upstream)) {
                                connect(client, server, delay, &shared);
                            }
                        }
                        Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                            std::thread::sleep(Duration::from_millis(5));
                        }
                        Err(_) => std::thread::sleep(Duration::from_millis(5)),
                    }
                }
            })?;
        Ok(Self { stop, controls, port })
    }

    /// The port clients connect to.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// Limits what goes towards the broker to `bytes_per_second` (`None`: no limit).
    pub fn limit_upstream(&self, bytes_per_second: Option<u64>) {
        self.controls
            .upstream_rate
            .store(bytes_per_second.unwrap_or(0), Ordering::Release);
    }

    /// Stops (`true`) or resumes (`false`) forwarding towards the broker. Connections stay
    /// open: the broker simply hears nothing, so requests time out on the client's side.
    pub fn stall(&self, stalled: bool) {
        self.controls.stalled.store(stalled, Ordering::Release);
    }
}

impl Drop for BrokerProxy {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Release);
    }
}

/// Pipes both directions of one connection, each through its own delay line; the controls
/// apply towards the broker only.
fn connect(client: TcpStream, server: TcpStream, delay: Duration, controls: &Arc<Controls>) {
    let _ = client.set_nodelay(true);
    let _ = server.set_nodelay(true);
    for (from, to, controls) in [
        (&client, &server, Some(controls.clone())),
        (&server, &client, None),
    ] {
        let (Ok(from), Ok(to)) = (from.try_clone(), to.try_clone()) else {
            return;
        };
        delay_line(from, to, delay, controls);
    }
}

/// Waits until `controls` let `bytes` more go: not while stalled, and no faster than the
/// rate (paced per chunk, which is smooth enough for requests of a few KiB to a MiB).
fn pace(controls: &Controls, bytes: usize) {
    while controls.stalled.load(Ordering::Acquire) {
        std::thread::sleep(Duration::from_millis(10));
    }
    let rate = controls.upstream_rate.load(Ordering::Acquire);
    if rate > 0 {
        std::thread::sleep(Duration::from_secs_f64(bytes as f64 / rate as f64));
    }
}

/// One direction: a reader stamps each chunk with the time it arrived, a writer sends it on
/// once `delay` has passed since (and the controls, if any, let it).
fn delay_line(mut from: TcpStream, mut to: TcpStream, delay: Duration, controls: Option<Arc<Controls>>) {
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
                if let Some(controls) = &controls {
                    pace(controls, chunk.len());
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
        let port = crate::free_port().unwrap();
        let _proxy = BrokerProxy::start(port, upstream_port, Duration::from_millis(30)).unwrap();
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

    #[test]
    fn a_stall_holds_bytes_towards_the_broker_until_it_is_lifted() {
        let upstream = TcpListener::bind("127.0.0.1:0").unwrap();
        let upstream_port = upstream.local_addr().unwrap().port();
        let (got_tx, got_rx) = mpsc::channel();
        std::thread::spawn(move || {
            let (mut s, _) = upstream.accept().unwrap();
            let mut buf = [0u8; 5];
            s.read_exact(&mut buf).unwrap();
            got_tx.send(Instant::now()).unwrap();
        });
        let port = crate::free_port().unwrap();
        let proxy = BrokerProxy::start(port, upstream_port, Duration::ZERO).unwrap();
        proxy.stall(true);
        let mut c = TcpStream::connect(("127.0.0.1", port)).unwrap();
        c.write_all(b"hello").unwrap();
        assert!(
            got_rx.recv_timeout(Duration::from_millis(300)).is_err(),
            "nothing passes a stall"
        );
        let lifted = Instant::now();
        proxy.stall(false);
        let arrived = got_rx
            .recv_timeout(Duration::from_secs(5))
            .expect("bytes pass once lifted");
        assert!(arrived >= lifted);
    }

    #[test]
    fn the_upstream_limit_paces_bytes_towards_the_broker() {
        let upstream = TcpListener::bind("127.0.0.1:0").unwrap();
        let upstream_port = upstream.local_addr().unwrap().port();
        let reader = std::thread::spawn(move || {
            let (mut s, _) = upstream.accept().unwrap();
            let mut buf = vec![0u8; 200_000];
            s.read_exact(&mut buf).unwrap();
        });
        let port = crate::free_port().unwrap();
        let proxy = BrokerProxy::start(port, upstream_port, Duration::ZERO).unwrap();
        proxy.limit_upstream(Some(1_000_000));
        let mut c = TcpStream::connect(("127.0.0.1", port)).unwrap();
        let started = Instant::now();
        c.write_all(&vec![7u8; 200_000]).unwrap();
        reader.join().unwrap();
        assert!(
            started.elapsed() >= Duration::from_millis(150),
            "200 kB at 1 MB/s takes about 0.2 s: {:?}",
            started.elapsed()
        );
    }
}
