//! Call latency per runtime: cold start (the first call of a version, which
//! starts its worker and loads its code) and warm calls.
//!
//!     cargo bench --bench latency
//!     cargo bench --bench latency -- --warm 5000 --cold 100 --examples python/hello,lua/hello
//!
//! Starts a real `hearth serve` (release build) on a free loopback port with a
//! temporary data directory. For each example: deploys `--cold` distinct
//! versions without publishing them and times the first call to each
//! (`POST /fn/NAME@N`: spawn, imports, code load, call); then times `--warm`
//! sequential calls to the live version on one keep-alive HTTP/1.1
//! connection. Prints one table.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use hearth::api::DeployRequest;
use hearth::bundle::{Bundle, BundleFile};

const BIN: &str = env!("CARGO_BIN_EXE_hearth");

struct Args {
    warm: usize,
    cold: usize,
    examples: Vec<String>,
}

fn args() -> Args {
    let mut a = Args {
        warm: 1000,
        cold: 50,
        examples: vec![
            "python/hello".into(),
            "node/hello".into(),
            "lua/hello".into(),
        ],
    };
    let mut it = std::env::args().skip(1);
    while let Some(arg) = it.next() {
        match arg.as_str() {
            "--warm" => a.warm = it.next().and_then(|v| v.parse().ok()).unwrap_or(a.warm),
            "--cold" => a.cold = it.next().and_then(|v| v.parse().ok()).unwrap_or(a.cold),
            "--examples" => {
                a.examples = it
                    .next()
                    .map(|v| v.split(',').map(str::to_owned).collect())
                    .unwrap_or(a.examples)
            }
            _ => {} // cargo passes --bench
        }
    }
    a
}

/// One keep-alive HTTP/1.1 connection.
struct Conn {
    reader: BufReader<TcpStream>,
    writer: TcpStream,
    addr: String,
}

impl Conn {
    fn open(addr: &str) -> Conn {
        let stream = TcpStream::connect(addr).expect("connect");
        stream.set_nodelay(true).expect("nodelay");
        stream
            .set_read_timeout(Some(Duration::from_secs(120)))
            .expect("timeout");
        Conn {
            reader: BufReader::new(stream.try_clone().expect("clone")),
            writer: stream,
            addr: addr.to_owned(),
        }
    }

    fn post(&mut self, path: &str, body: &[u8]) -> (u16, Vec<u8>) {
        let head = format!(
            "POST {path} HTTP/1.1\r\nHost: {}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n",
            self.addr,
            body.len()
        );
        let mut req = head.into_bytes();
        req.extend_from_slice(body);
        self.writer.write_all(&req).expect("send");
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
        (status, body)
    }
}

struct Stats {
    p50: f64,
    p99: f64,
    max: f64,
}

fn stats(mut times: Vec<Duration>) -> Stats {
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

fn deploy(conn: &mut Conn, bundle: &Bundle, publish: bool) -> serde_json::Value {
    let req = DeployRequest {
        files: bundle.files.clone(),
        message: "bench".into(),
        publish,
    };
    let (status, body) = conn.post("/api/v1/deploy", &serde_json::to_vec(&req).expect("json"));
    let v: serde_json::Value = serde_json::from_slice(&body).expect("deploy answer");
    assert!(status < 300, "deploy failed: {v}");
    v
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

    let mut rows = Vec::new();
    for example in &a.examples {
        let dir = Path::new(repo).join("examples").join(example);
        let bundle = Bundle::from_dir(&dir).expect("example");
        let name = bundle.validate().expect("manifest").name;
        let mut conn = Conn::open(&addr);
        let body = br#"{"name":"Ada"}"#;

        eprintln!("{example}: {} cold starts…", a.cold);
        let mut cold = Vec::with_capacity(a.cold);
        for i in 0..a.cold {
            let mut b = bundle.clone();
            b.files.push(BundleFile {
                path: "bench-nonce.txt".into(),
                data: format!("{i}").into_bytes(),
                executable: false,
            });
            let v = deploy(&mut conn, &b, false)["version"]
                .as_u64()
                .expect("version");
            let t = Instant::now();
            let (status, out) = conn.post(&format!("/fn/{name}@{v}"), body);
            cold.push(t.elapsed());
            assert_eq!(
                status,
                200,
                "cold call failed: {}",
                String::from_utf8_lossy(&out)
            );
        }

        eprintln!("{example}: {} warm calls…", a.warm);
        deploy(&mut conn, &bundle, true);
        let path = format!("/fn/{name}");
        for _ in 0..200 {
            conn.post(&path, body);
        }
        let mut warm = Vec::with_capacity(a.warm);
        let started = Instant::now();
        for _ in 0..a.warm {
            let t = Instant::now();
            let (status, _) = conn.post(&path, body);
            warm.push(t.elapsed());
            assert_eq!(status, 200);
        }
        let rate = a.warm as f64 / started.elapsed().as_secs_f64();
        rows.push((example.clone(), stats(cold), stats(warm), rate));
    }

    println!();
    println!(
        "{:<14} {:>10} {:>10} {:>10}   {:>10} {:>10} {:>10} {:>10}",
        "example",
        "cold p50",
        "cold p99",
        "cold max",
        "warm p50",
        "warm p99",
        "warm max",
        "calls/s"
    );
    for (example, c, w, rate) in rows {
        println!(
            "{:<14} {:>8.2}ms {:>8.2}ms {:>8.2}ms   {:>8.3}ms {:>8.3}ms {:>8.3}ms {:>10.0}",
            example, c.p50, c.p99, c.max, w.p50, w.p99, w.max, rate
        );
    }
    println!(
        "({} cold starts and {} sequential warm calls per example, one keep-alive connection)",
        a.cold, a.warm
    );

    unsafe {
        libc::kill(daemon.id() as i32, libc::SIGTERM);
    }
    let _ = daemon.wait();
    let _ = std::fs::remove_dir_all(&tmp);
}
