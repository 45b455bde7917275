//! Latency of sequential warm calls over HTTP.
//!
//!     cargo bench --bench warm_calls                  # 1,000 calls to examples/python/hello
//!     cargo bench --bench warm_calls -- --calls 5000 --example python/hello
//!
//! Starts a real `hearth serve` (release build) on a free loopback port with
//! a temporary data directory, deploys the example, warms it up, then makes
//! the calls one after another on one keep-alive HTTP/1.1 connection and
//! prints p50/p90/p99/max.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const BIN: &str = env!("CARGO_BIN_EXE_hearth");

struct Args {
    calls: usize,
    warmup: usize,
    example: String,
    body: String,
}

fn args() -> Args {
    let mut a = Args {
        calls: 1000,
        warmup: 200,
        example: "python/hello".into(),
        body: r#"{"name":"Ada"}"#.into(),
    };
    let mut it = std::env::args().skip(1);
    while let Some(arg) = it.next() {
        match arg.as_str() {
            "--calls" => a.calls = it.next().and_then(|v| v.parse().ok()).unwrap_or(a.calls),
            "--warmup" => a.warmup = it.next().and_then(|v| v.parse().ok()).unwrap_or(a.warmup),
            "--example" => a.example = it.next().unwrap_or(a.example),
            "--body" => a.body = it.next().unwrap_or(a.body),
            _ => {} // cargo passes --bench
        }
    }
    a
}

/// One keep-alive HTTP/1.1 connection.
struct Conn {
    reader: BufReader<TcpStream>,
    writer: TcpStream,
    request: Vec<u8>,
}

impl Conn {
    fn open(addr: &str, path: &str, body: &str) -> Conn {
        let stream = TcpStream::connect(addr).expect("connect");
        stream.set_nodelay(true).expect("nodelay");
        stream
            .set_read_timeout(Some(Duration::from_secs(30)))
            .expect("timeout");
        let request = format!(
            "POST {path} HTTP/1.1\r\nHost: {addr}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
            body.len()
        )
        .into_bytes();
        Conn {
            reader: BufReader::new(stream.try_clone().expect("clone")),
            writer: stream,
            request,
        }
    }

    /// Send the request, read the whole answer; returns the status.
    fn call(&mut self) -> u16 {
        self.writer.write_all(&self.request).expect("send");
        let mut line = String::new();
        self.reader.read_line(&mut line).expect("status line");
        let status = line
            .split_whitespace()
            .nth(1)
            .and_then(|s| s.parse().ok())
            .unwrap_or(0);
        let mut length = 0usize;
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
                }
            }
        }
        let mut body = vec![0u8; length];
        self.reader.read_exact(&mut body).expect("body");
        status
    }
}

fn pct(sorted: &[Duration], p: f64) -> f64 {
    let idx = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[idx.min(sorted.len() - 1)].as_secs_f64() * 1000.0
}

fn main() {
    let a = args();
    let repo = env!("CARGO_MANIFEST_DIR");
    let tmp = std::env::temp_dir().join(format!("hearth-bench-{}", std::process::id()));
    let mut daemon = Command::new(BIN)
        .args(["serve", "--listen", "127.0.0.1:0", "--data-dir"])
        .arg(&tmp)
        .env("HEARTH_LOG", "warn")
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("start hearth serve");
    let mut first = String::new();
    BufReader::new(daemon.stdout.take().expect("stdout"))
        .read_line(&mut first)
        .expect("listening line");
    let addr = first
        .split("http://")
        .nth(1)
        .and_then(|r| r.split_whitespace().next())
        .expect("address")
        .to_owned();

    let dir = format!("{repo}/examples/{}", a.example);
    let out = Command::new(BIN)
        .args(["--addr", &addr, "deploy", &dir])
        .output()
        .expect("deploy");
    assert!(
        out.status.success(),
        "deploy failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let name = String::from_utf8_lossy(&out.stdout)
        .split(':')
        .next()
        .unwrap_or("hello")
        .to_owned();

    eprintln!(
        "hearth bench: {} warm-up + {} sequential calls to {name} at {addr}",
        a.warmup, a.calls
    );
    let mut conn = Conn::open(&addr, &format!("/fn/{name}"), &a.body);
    for _ in 0..a.warmup {
        assert_eq!(conn.call(), 200, "warm-up call failed");
    }
    let mut times = Vec::with_capacity(a.calls);
    let started = Instant::now();
    for i in 0..a.calls {
        let t = Instant::now();
        let status = conn.call();
        times.push(t.elapsed());
        assert_eq!(status, 200, "call {i} failed");
    }
    let total = started.elapsed();
    times.sort();
    let mean = times.iter().sum::<Duration>().as_secs_f64() * 1000.0 / times.len() as f64;
    println!("function       {name} ({})", a.example);
    println!(
        "calls          {} sequential, one keep-alive connection",
        a.calls
    );
    println!("p50            {:.3} ms", pct(&times, 0.50));
    println!("p90            {:.3} ms", pct(&times, 0.90));
    println!("p99            {:.3} ms", pct(&times, 0.99));
    println!("max            {:.3} ms", pct(&times, 1.0));
    println!("mean           {mean:.3} ms");
    println!(
        "throughput     {:.0} calls/s",
        a.calls as f64 / total.as_secs_f64()
    );

    unsafe {
        libc::kill(daemon.id() as i32, libc::SIGTERM);
    }
    let _ = daemon.wait();
    let _ = std::fs::remove_dir_all(&tmp);
}
