//! A worker's stdout and stderr: the function's log.
//!
//! Both pipes are drained continuously by a task of their own (so a chatty
//! function never blocks on a full pipe), line by line into the daemon's log.
//! While a call runs, its lines are also kept as that call's log. Shims flush
//! stdout and stderr before they send a result, so when the result arrives
//! everything the call printed is already in the pipes: `end_call` reads what
//! is left, under the same lock the drain tasks use, and nothing is lost or
//! attributed to the wrong call.

use std::io::ErrorKind;
use std::os::fd::{AsRawFd, OwnedFd};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{SystemTime, UNIX_EPOCH};

use hearth_api::{LogLine, Stream};

use tokio::net::unix::pipe;
use tracing::info;

/// Longest line kept as one line (a longer one is split).
const LINE_MAX: usize = 16 * 1024;
/// Default of the most bytes of output kept per call (`records.max_output`);
/// beyond that only a count is kept.
pub const CALL_LOG_MAX: usize = 64 * 1024;
/// Lines of stderr kept to explain a crash.
const TAIL_LINES: usize = 8;

/// The cap on a call's kept output, set once by the daemon at start
/// (`records.max_output`); every worker of the process uses it.
static CALL_LOG_CAP: AtomicUsize = AtomicUsize::new(CALL_LOG_MAX);

/// Set the most bytes of output kept per call (at least 1 KiB).
pub fn set_call_log_max(bytes: usize) {
    CALL_LOG_CAP.store(bytes.max(1024), Ordering::Relaxed);
}

/// The most bytes of output kept per call.
pub fn call_log_max() -> usize {
    CALL_LOG_CAP.load(Ordering::Relaxed)
}

/// What one call printed: its lines, each with its stream and time.
#[derive(Debug, Clone, Default)]
pub struct CallLog {
    pub lines: Vec<LogLine>,
    /// Bytes of line text kept.
    pub kept: usize,
    /// Bytes printed past the cap and not kept.
    pub dropped: usize,
    /// Other calls ran on the same worker meanwhile: output that could not
    /// be told to be this call's was left out (it is in the daemon's log).
    pub unattributed: bool,
}

impl CallLog {
    fn push(&mut self, stream: Stream, line: &str) {
        let cap = call_log_max();
        if self.dropped > 0 || self.kept + line.len() + 1 > cap {
            self.dropped += line.len() + 1;
            return;
        }
        self.kept += line.len() + 1;
        self.lines.push(LogLine {
            stream,
            time_ms: now_ms(),
            text: line.to_owned(),
        });
    }

    /// A log for a call whose output cannot be told from other calls'.
    pub fn unattributed() -> CallLog {
        CallLog {
            unattributed: true,
            ..CallLog::default()
        }
    }

    /// As text: one `[stream] line` per line, then a note of what was
    /// dropped or left out.
    pub fn text(&self) -> String {
        let mut text = String::with_capacity(self.kept + self.lines.len() * 10);
        for l in &self.lines {
            text.push('[');
            text.push_str(l.stream.as_str());
            text.push_str("] ");
            text.push_str(&l.text);
            text.push('\n');
        }
        if self.unattributed {
            text.push_str("[hearth] other calls ran on this worker at the same time: output that could not be told to be this call's is in the daemon's log\n");
        }
        if self.dropped > 0 {
            text.push_str(&format!(
                "[hearth] {} more bytes not kept (records.max_output)\n",
                self.dropped
            ));
        }
        text
    }
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

struct Inner {
    /// Whose output this is (a generic worker gets its function at load).
    function: String,
    version: u32,
    partial: [Vec<u8>; 2],
    call: Option<(String, CallLog)>,
    tail: std::collections::VecDeque<String>,
}

pub struct Output {
    pid: u32,
    pipes: [pipe::Receiver; 2],
    inner: Mutex<Inner>,
}

const NAMES: [&str; 2] = ["stdout", "stderr"];
const STREAMS: [Stream; 2] = [Stream::Stdout, Stream::Stderr];

impl Output {
    /// Take the daemon's ends of the worker's stdout and stderr pipes and
    /// start draining them.
    pub fn start(
        function: &str,
        version: u32,
        pid: u32,
        stdout: OwnedFd,
        stderr: OwnedFd,
    ) -> std::io::Result<Arc<Output>> {
        let output = Arc::new(Output {
            pid,
            pipes: [
                pipe::Receiver::from_owned_fd(stdout)?,
                pipe::Receiver::from_owned_fd(stderr)?,
            ],
            inner: Mutex::new(Inner {
                function: function.to_owned(),
                version,
                partial: [Vec::new(), Vec::new()],
                call: None,
                tail: Default::default(),
            }),
        });
        for which in 0..2 {
            let o = output.clone();
            tokio::spawn(async move {
                loop {
                    if o.pipes[which].readable().await.is_err() {
                        break;
                    }
                    match o.pump(which) {
                        Ok(true) | Err(_) => break,
                        Ok(false) => {}
                    }
                }
            });
        }
        Ok(output)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Read whatever the pipe holds now; true at end of file.
    fn pump(&self, which: usize) -> std::io::Result<bool> {
        let mut inner = self.lock();
        self.pump_locked(&mut inner, which, false)
    }

    /// Read until the pipe is empty. The drain tasks go through tokio's
    /// `try_read`, which keeps the reactor's readiness in step; `end_call`
    /// must not trust that readiness (the reactor may not have seen the
    /// last bytes yet), so it reads the non-blocking fd directly (`raw`).
    fn pump_locked(&self, inner: &mut Inner, which: usize, raw: bool) -> std::io::Result<bool> {
        let mut buf = [0u8; 16 * 1024];
        loop {
            let read = if raw {
                let fd = self.pipes[which].as_raw_fd();
                // SAFETY: reading into a local buffer of the given length
                // from an fd this struct owns.
                let n = unsafe { libc::read(fd, buf.as_mut_ptr().cast(), buf.len()) };
                if n < 0 {
                    Err(std::io::Error::last_os_error())
                } else {
                    Ok(n as usize)
                }
            } else {
                self.pipes[which].try_read(&mut buf)
            };
            match read {
                Ok(0) => {
                    self.flush_partial(inner, which);
                    return Ok(true);
                }
                Ok(n) => self.feed(inner, which, &buf[..n]),
                Err(e) if e.kind() == ErrorKind::WouldBlock => return Ok(false),
                Err(e) if e.kind() == ErrorKind::Interrupted => continue,
                Err(e) => return Err(e),
            }
        }
    }

    fn feed(&self, inner: &mut Inner, which: usize, mut data: &[u8]) {
        while !data.is_empty() {
            match data.iter().position(|b| *b == b'\n') {
                Some(pos) => {
                    let mut line = std::mem::take(&mut inner.partial[which]);
                    line.extend_from_slice(&data[..pos]);
                    self.line(inner, which, &line);
                    data = &data[pos + 1..];
                }
                None => {
                    inner.partial[which].extend_from_slice(data);
                    data = &[];
                }
            }
            if inner.partial[which].len() >= LINE_MAX {
                self.flush_partial(inner, which);
            }
        }
    }

    fn flush_partial(&self, inner: &mut Inner, which: usize) {
        if !inner.partial[which].is_empty() {
            let line = std::mem::take(&mut inner.partial[which]);
            self.line(inner, which, &line);
        }
    }

    fn line(&self, inner: &mut Inner, which: usize, line: &[u8]) {
        let text = String::from_utf8_lossy(line);
        let text = text.trim_end_matches('\r');
        let request_id = inner.call.as_ref().map(|(id, _)| id.as_str()).unwrap_or("");
        info!(target: "hearth::function", function = %inner.function, version = inner.version, pid = self.pid,
            stream = NAMES[which], request_id, "{text}");
        if let Some((_, log)) = inner.call.as_mut() {
            log.push(STREAMS[which], text);
        }
        if which == 1 {
            if inner.tail.len() == TAIL_LINES {
                inner.tail.pop_front();
            }
            inner.tail.push_back(text.chars().take(512).collect());
        }
    }

    /// The worker now runs `function` `version` (a generic worker at load).
    pub fn set_owner(&self, function: &str, version: u32) {
        let mut inner = self.lock();
        inner.function = function.to_owned();
        inner.version = version;
    }

    /// From now on, lines belong to call `request_id`.
    pub fn begin_call(&self, request_id: &str) {
        self.lock().call = Some((request_id.to_owned(), CallLog::default()));
    }

    /// The call has answered: collect what is left in the pipes and return
    /// everything it printed.
    pub fn end_call(&self) -> CallLog {
        let mut inner = self.lock();
        for which in 0..2 {
            let _ = self.pump_locked(&mut inner, which, true);
            self.flush_partial(&mut inner, which);
        }
        inner.call.take().map(|(_, log)| log).unwrap_or_default()
    }

    /// The last lines of stderr, to explain a crash.
    pub fn stderr_tail(&self) -> String {
        let mut inner = self.lock();
        let _ = self.pump_locked(&mut inner, 1, true);
        self.flush_partial(&mut inner, 1);
        inner.tail.iter().cloned().collect::<Vec<_>>().join(" | ")
    }
}
