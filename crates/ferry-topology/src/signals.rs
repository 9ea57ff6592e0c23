use tokio::signal::unix::{Signal, SignalKind, signal};

/// What a signal asks of a running ferry.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Request {
    /// SIGINT or SIGTERM (named): stop reading, drain, exit.
    Shutdown(&'static str),
    /// SIGHUP: load the configuration files again and, when they are valid, switch to them.
    Reload,
}

/// SIGINT, SIGTERM and SIGHUP, as one stream of requests.
#[derive(Debug)]
pub struct Signals {
    interrupt: Signal,
    terminate: Signal,
    hangup: Signal,
}

impl Signals {
    /// Installs the handlers (from then on the signals no longer kill the process).
    pub fn install() -> std::io::Result<Self> {
        Ok(Self {
            interrupt: signal(SignalKind::interrupt())?,
            terminate: signal(SignalKind::terminate())?,
            hangup: signal(SignalKind::hangup())?,
        })
    }

    /// Waits for the next signal.
    pub async fn recv(&mut self) -> Request {
        tokio::select! {
            _ = self.interrupt.recv() => Request::Shutdown("SIGINT"),
            _ = self.terminate.recv() => Request::Shutdown("SIGTERM"),
            _ = self.hangup.recv() => Request::Reload,
        }
    }

    /// Waits for the next SIGINT or SIGTERM; a SIGHUP meanwhile is logged and ignored (a
    /// reload cannot start while the pipeline is already stopping).
    pub async fn shutdown(&mut self) -> &'static str {
        loop {
            match self.recv().await {
                Request::Shutdown(name) => return name,
                Request::Reload => {
                    tracing::warn!("SIGHUP ignored: ferry is already stopping (or reloading)");
                }
            }
        }
    }
}
