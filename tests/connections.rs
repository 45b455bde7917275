//! Connections are bounded: a slow or silent client is cut while others are
//! served, a call in flight is never cut as idle, and past
//! `--max-connections` the management API still answers while calls get a
//! clear 503.

mod common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use common::{http_anon, Daemon, FnDir};

/// Whether the server closes `s` within `secs` (reads EOF or an error).
fn closed_within(s: &mut TcpStream, secs: u64) -> bool {
    s.set_read_timeout(Some(Duration::from_millis(200)))
        .expect("timeout");
    let end = Instant::now() + Duration::from_secs(secs);
    let mut buf = [0u8; 512];
    while Instant::now() < end {
        match s.read(&mut buf) {
            Ok(0) => return true,
            Ok(_) => {}
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) => {}
            Err(_) => return true,
        }
    }
    false
}

#[test]
fn slow_and_silent_clients_are_cut_while_others_are_served() {
    let d = Daemon::start_with(&["--header-timeout", "1", "--idle-timeout", "2"], &[]);
    let f = FnDir::python("hi", "def handler(e, c):\n    return 'hi'\n");
    d.ok(&["deploy", f.path()]);

    // Slowloris: one header byte every 200 ms, never finishing.
    let mut slow = TcpStream::connect(&d.addr).expect("connect");
    let started = Instant::now();
    let head = b"POST /fn/hi HTTP/1.1\r\nHost: x\r\nX-Slow: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa";
    let mut cut = false;
    for b in head.iter() {
        if slow.write_all(&[*b]).is_err() {
            cut = true;
            break;
        }
        // Others are served meanwhile.
        if started.elapsed() < Duration::from_millis(600) {
            assert_eq!(d.post("/fn/hi", "{}").status, 200);
        }
        std::thread::sleep(Duration::from_millis(200));
        if started.elapsed() > Duration::from_secs(10) {
            break;
        }
    }
    assert!(
        cut || closed_within(&mut slow, 5),
        "a slowloris client keeps its connection"
    );

    // Silent: connects and sends nothing.
    let mut silent = TcpStream::connect(&d.addr).expect("connect");
    assert!(
        closed_within(&mut silent, 8),
        "a silent connection stays open"
    );

    // Keep-alive after an answer: closed once idle.
    let mut kept = TcpStream::connect(&d.addr).expect("connect");
    kept.write_all(b"GET /fn/hi HTTP/1.1\r\nHost: x\r\n\r\n")
        .expect("send");
    let mut first = [0u8; 256];
    let n = kept.read(&mut first).expect("answer");
    assert!(String::from_utf8_lossy(&first[..n]).starts_with("HTTP/1.1 200"));
    assert!(
        closed_within(&mut kept, 8),
        "an idle keep-alive connection stays open"
    );

    assert_eq!(d.post("/fn/hi", "{}").status, 200);
}

#[test]
fn a_long_call_is_not_cut_as_idle() {
    let d = Daemon::start_with(&["--header-timeout", "1", "--idle-timeout", "1"], &[]);
    let f = FnDir::python_with(
        "slow",
        "import time\ndef handler(e, c):\n    time.sleep(3)\n    return 'done'\n",
        "[limits]\ntimeout_ms = 10000\n",
    );
    d.ok(&["deploy", f.path()]);
    let r = d.post("/fn/slow", "{}");
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.json(), "done");
}

#[test]
fn past_max_connections_the_management_api_still_answers() {
    let d = Daemon::start_with(&["--max-connections", "4"], &[]);
    let f = FnDir::python("hi", "def handler(e, c):\n    return 'hi'\n");
    d.ok(&["deploy", f.path()]);
    // Four connections held open use the allowance.
    let held: Vec<TcpStream> = (0..4)
        .map(|_| TcpStream::connect(&d.addr).expect("connect"))
        .collect();
    std::thread::sleep(Duration::from_millis(200));
    let call = http_anon(&d.addr, "POST", "/fn/hi", b"{}", &[]);
    assert_eq!(call.status, 503, "{}", call.text());
    assert_eq!(call.code(), "too_many_connections");
    assert!(call.text().contains("max_connections"), "{}", call.text());
    assert!(call.header("retry-after").is_some());
    // The management API is served from the reserve.
    assert_eq!(d.get("/api/v1/workers").status, 200);
    assert!(d.ok(&["list"]).contains("hi"));

    // Past the reserve (64) too: a 503 at once, and the daemon lives on.
    let reserve: Vec<TcpStream> = (0..64)
        .map(|_| TcpStream::connect(&d.addr).expect("connect"))
        .collect();
    std::thread::sleep(Duration::from_millis(300));
    let mut extra = TcpStream::connect(&d.addr).expect("connect");
    extra
        .set_read_timeout(Some(Duration::from_secs(5)))
        .expect("timeout");
    let mut answer = String::new();
    let _ = extra.read_to_string(&mut answer);
    assert!(answer.starts_with("HTTP/1.1 503"), "{answer}");
    assert!(answer.contains("too_many_connections"), "{answer}");

    drop(reserve);
    drop(held);
    assert!(
        common::eventually(10, || http_anon(&d.addr, "POST", "/fn/hi", b"{}", &[])
            .status
            == 200),
        "calls are served again once connections close"
    );
}

#[test]
fn a_stalled_body_is_refused_and_frees_its_deploy_slot() {
    let d = Daemon::start_with(
        &[
            "--header-timeout",
            "1",
            "--max-concurrent-deploys",
            "1",
            "--deploy-wait",
            "20",
        ],
        &[],
    );
    // A deploy whose body stops after a few bytes holds the only slot...
    let mut stalled =
        common::start_request(&d.addr, "POST", "/api/v1/deploy", 1000, &[], b"{\"files\"");
    // ... until the body times out: 408 naming the setting.
    let reply = common::read_reply(stalled.try_clone().expect("clone"));
    assert_eq!(reply.status, 408, "{}", reply.text());
    assert_eq!(reply.code(), "body_timeout");
    assert!(reply.text().contains("header_timeout"), "{}", reply.text());
    let _ = stalled.write_all(b"x");
    // The slot is free again: a deploy goes through.
    let f = FnDir::python("after", "def handler(e, c):\n    return 1\n");
    d.ok(&["deploy", f.path()]);
    // A call body that stalls is refused the same way.
    let mut call = common::start_request(&d.addr, "POST", "/fn/after", 100, &[], b"{");
    let reply = common::read_reply(call.try_clone().expect("clone"));
    assert_eq!(reply.status, 408, "{}", reply.text());
    let _ = call.write_all(b"}");
}
