//! Running under a service manager (systemd, or anything speaking its
//! protocols): the listening socket it passes (socket activation,
//! `LISTEN_FDS`), readiness, status and watchdog notifications
//! (`NOTIFY_SOCKET`, sd_notify), heartbeats that the watchdog keep-alives
//! depend on, and `hearth install-service` (install.rs). The unit files
//! are dist/systemd/; docs/SERVICE.md describes them.

pub mod install;

use std::os::fd::{FromRawFd as _, RawFd};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use sd_notify::NotifyState;
use tracing::debug;

#[derive(Debug, thiserror::Error)]
pub enum ServiceError {
    #[error("cannot read the sockets passed by the service manager (LISTEN_FDS): {0}")]
    ListenFds(std::io::Error),
    #[error("file descriptor {fd} passed by the service manager (LISTEN_FDS) is not a listening TCP socket; give hearth.socket a ListenStream= with an address and port (docs/SERVICE.md)")]
    NotTcpListener { fd: RawFd },
}

/// The listening socket passed by the service manager, if any: the first
/// descriptor of `LISTEN_FDS` when `LISTEN_PID` is this process. The
/// variables are removed (so nothing started later sees them). Call it
/// before other threads start.
pub fn take_listener() -> Result<Option<std::net::TcpListener>, ServiceError> {
    let mut fds = sd_notify::listen_fds().map_err(ServiceError::ListenFds)?;
    let Some(fd) = fds.next() else {
        return Ok(None);
    };
    for extra in fds {
        tracing::warn!(
            fd = extra,
            "the service manager passed more than one socket; only the first is used"
        );
    }
    if !is_listening_socket(fd) {
        return Err(ServiceError::NotTcpListener { fd });
    }
    // SAFETY: the service manager handed this descriptor to this process
    // (LISTEN_PID) and nothing else owns it.
    let listener = unsafe { std::net::TcpListener::from_raw_fd(fd) };
    if listener.local_addr().is_err() {
        return Err(ServiceError::NotTcpListener { fd });
    }
    listener
        .set_nonblocking(true)
        .map_err(ServiceError::ListenFds)?;
    Ok(Some(listener))
}

fn is_listening_socket(fd: RawFd) -> bool {
    let mut value: libc::c_int = 0;
    let mut len = std::mem::size_of::<libc::c_int>() as libc::socklen_t;
    // SAFETY: getsockopt writes at most `len` bytes into `value`.
    let rc = unsafe {
        libc::getsockopt(
            fd,
            libc::SOL_SOCKET,
            libc::SO_ACCEPTCONN,
            (&mut value as *mut libc::c_int).cast(),
            &mut len,
        )
    };
    rc == 0 && value == 1
}

/// Notifications to the service manager; a no-op without NOTIFY_SOCKET.
#[derive(Clone, Copy, Debug)]
pub struct Notifier {
    enabled: bool,
}

impl Notifier {
    pub fn from_env() -> Notifier {
        Notifier {
            enabled: std::env::var_os("NOTIFY_SOCKET").is_some_and(|v| !v.is_empty()),
        }
    }

    pub fn enabled(&self) -> bool {
        self.enabled
    }

    fn send(&self, states: &[NotifyState]) {
        if !self.enabled {
            return;
        }
        if let Err(e) = sd_notify::notify(false, states) {
            debug!(error = %e, "cannot notify the service manager");
        }
    }

    /// Started: the store is open and the listener bound.
    pub fn ready(&self, status: &str) {
        self.send(&[NotifyState::Ready, NotifyState::Status(status)]);
    }

    pub fn status(&self, status: &str) {
        self.send(&[NotifyState::Status(status)]);
    }

    /// A configuration reload begins; `ready` ends it.
    pub fn reloading(&self) {
        match NotifyState::monotonic_usec_now() {
            Ok(now) => self.send(&[NotifyState::Reloading, now]),
            Err(_) => self.send(&[NotifyState::Reloading]),
        }
    }

    /// A reload is over (whether it applied or not).
    pub fn reloaded(&self) {
        self.send(&[NotifyState::Ready]);
    }

    pub fn stopping(&self, status: &str) {
        self.send(&[NotifyState::Stopping, NotifyState::Status(status)]);
    }

    pub fn watchdog(&self) {
        self.send(&[NotifyState::Watchdog]);
    }
}

/// The watchdog period the service manager asks for (`WATCHDOG_USEC`, for
/// this process if `WATCHDOG_PID` is set), as sd_watchdog_enabled reads it.
pub fn watchdog_period() -> Option<Duration> {
    let usec: u64 = std::env::var("WATCHDOG_USEC").ok()?.parse().ok()?;
    if usec == 0 {
        return None;
    }
    if let Ok(pid) = std::env::var("WATCHDOG_PID") {
        if pid.parse::<u32>().ok()? != std::process::id() {
            return None;
        }
    }
    Some(Duration::from_micros(usec))
}

/// Proof that a loop is still turning: it calls `beat` every `every`; the
/// watchdog keep-alive is sent only while every heartbeat is fresh.
#[derive(Clone, Debug)]
pub struct Heartbeat {
    origin: Instant,
    /// Milliseconds after `origin` of the last beat.
    last_ms: Arc<AtomicU64>,
    every: Duration,
}

impl Heartbeat {
    pub fn new(every: Duration) -> Heartbeat {
        Heartbeat {
            origin: Instant::now(),
            last_ms: Arc::new(AtomicU64::new(0)),
            every,
        }
    }

    /// How often the loop should beat.
    pub fn every(&self) -> Duration {
        self.every
    }

    pub fn beat(&self) {
        let now = self.origin.elapsed().as_millis() as u64;
        self.last_ms.store(now, Ordering::Relaxed);
    }

    /// Time since the last beat.
    pub fn age(&self) -> Duration {
        let now = self.origin.elapsed().as_millis() as u64;
        Duration::from_millis(now.saturating_sub(self.last_ms.load(Ordering::Relaxed)))
    }
}
