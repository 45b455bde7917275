//! Pieces shared by the benchmarks: a daemon on a free loopback port, a
//! keep-alive HTTP/1.1 connection, percentiles.

#![allow(dead_code)]

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use hearth::api::DeployRequest;
use hearth::bundle::Bundle;

pub const BIN: &str = env!("CARGO_BIN_EXE_hearth");

/// A release build of `hearth serve` with a temporary data directory.
pub struct Daemon {
    child: Child,
    pub addr: String,
    pub data: std::path::PathBuf,
    /// Remove the data directory when dropped.
    pub remove_data: bool,
    /// Its local admin token (sent by `Conn` on /api/ requests).
    pub token: String,
}

impl Daemon {
    pub fn start() -> Daemon {
        let data = std::env::temp_dir().join(format!("hearth-bench-{}", std::process::id()));
        Daemon::start_in(data)
    }

    /// A daemon on `data` (kept when it is dropped only if `remove_data` is
    /// set to false).
    pub fn start_in(data: std::path::PathBuf) -> Daemon {
        Daemon::start_with(data, &[])
    }

    /// The same with more flags of `hearth serve`.
    pub fn start_with(data: std::path::PathBuf, args: &[&str]) -> Daemon {
        let mut child = Command::new(BIN)
            .args(["serve", "--listen", "127.0.0.1:0", "--data-dir"])
            .arg(&data)
            .args(args)
            .env("HEARTH_LOG", "warn")
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("start hearth serve");
        let mut first = String::new();
        BufReader::new(child.stdout.take().expect("stdout"))
            .read_line(&mut first)
            .expect("listening line");
        let addr = first
            .split("http://")
            .nth(1)
            .and_then(|r| r.split_whitespace().next())
            .expect("address")
            .to_owned();
        let token = std::fs::read_to_string(data.join("admin.token"))
            .map(|t| t.trim().to_owned())
            .expect("the daemon's admin token");
        if let Ok(mut tokens) = TOKENS.lock() {
            tokens.push((addr.clone(), token.clone()));
        }
        Daemon {
            child,
            addr,
            data,
            token,
            remove_data: true,
        }
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        unsafe {
            libc::kill(self.child.id() as i32, libc::SIGTERM);
        }
        let _ = self.child.wait();
        if self.remove_data {
            let _ = std::fs::remove_dir_all(&self.data);
        }
    }
}

/// Each started daemon's admin token, by address (sent by `Conn` on /api/).
static TOKENS: std::sync::Mutex<Vec<(String, String)>> = std::sync::Mutex::new(Vec::new());

/// One keep-alive HTTP/1.1 connection.
pub struct Conn {
    reader: BufReader<TcpStream>,
    writer: TcpStream,
    addr: String,
    /// `Authorization: ...\r\n` for management requests, or empty.
    auth: String,
    /// The last answer's `Server-Timing` header (empty: none).
    pub server_timing: String,
}

impl Conn {
    pub fn open(addr: &str) -> Conn {
        let stream = TcpStream::connect(addr).expect("connect");
        stream.set_nodelay(true).expect("nodelay");
        stream
            .set_read_timeout(Some(Duration::from_secs(120)))
            .expect("timeout");
        Conn {
            reader: BufReader::new(stream.try_clone().expect("clone")),
            writer: stream,
            addr: addr.to_owned(),
            auth: TOKENS
                .lock()
                .ok()
                .and_then(|t| {
                    t.iter()
                        .rev()
                        .find(|(a, _)| a == addr)
                        .map(|(_, t)| t.clone())
                })
                .map(|t| format!("Authorization: Bearer {t}\r\n"))
                .unwrap_or_default(),
            server_timing: String::new(),
        }
    }

    fn auth_for(&self, path: &str) -> &str {
        if path.starts_with("/api/") {
            &self.auth
        } else {
            ""
        }
    }

    pub fn get(&mut self, path: &str) -> Vec<u8> {
        let req = format!(
            "GET {path} HTTP/1.1\r\nHost: {}\r\n{}\r\n",
            self.addr,
            self.auth_for(path)
        );
        self.writer.write_all(req.as_bytes()).expect("send");
        self.read_answer().1
    }

    pub fn post(&mut self, path: &str, body: &[u8]) -> (u16, Vec<u8>) {
        let head = format!(
            "POST {path} HTTP/1.1\r\nHost: {}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n{}\r\n",
            self.addr,
            body.len(),
            self.auth_for(path)
        );
        let mut req = head.into_bytes();
        req.extend_from_slice(body);
        self.writer.write_all(&req).expect("send");
        self.read_answer()
    }

    fn read_answer(&mut self) -> (u16, Vec<u8>) {
        let mut line = String::new();
        self.reader.read_line(&mut line).expect("status line");
        let status = line
            .split_whitespace()
            .nth(1)
            .and_then(|s| s.parse().ok())
            .unwrap_or(0);
        let mut length = 0usize;
        self.server_timing.clear();
        loop {
            line.clear();
            self.reader.read_line(&mut line).expect("header");
            let l = line.trim_end();
            if l.is_empty() {
                break;
            }
            if let Some((k, v)) = l.split_once(':') {
                if k.eq_ignore_ascii_case("content-length") {
                    length = v.trim().parse().unwrap_or(0);
                } else if k.eq_ignore_ascii_case("server-timing") {
                    self.server_timing = v.trim().to_owned();
                }
            }
        }
        let mut body = vec![0u8; length];
        self.reader.read_exact(&mut body).expect("body");
        (status, body)
    }
}

pub struct Stats {
    pub p50: f64,
    pub p99: f64,
    pub max: f64,
}

pub fn stats(mut times: Vec<Duration>) -> Stats {
    times.sort();
    let at = |p: f64| {
        let idx = ((times.len() as f64 - 1.0) * p).round() as usize;
        times[idx.min(times.len() - 1)].as_secs_f64() * 1000.0
    };
    Stats {
        p50: at(0.50),
        p99: at(0.99),
        max: at(1.0),
    }
}

pub fn deploy(conn: &mut Conn, bundle: &Bundle, publish: bool) -> serde_json::Value {
    let req = DeployRequest {
        files: bundle.files.clone(),
        message: "bench".into(),
        publish,
        allow_breaking: true,
    };
    let (status, body) = conn.post("/api/v1/deploy", &serde_json::to_vec(&req).expect("json"));
    let v: serde_json::Value = serde_json::from_slice(&body).expect("deploy answer");
    assert!(status < 300, "deploy failed: {v}");
    v
}
