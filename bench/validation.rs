//! What input and output validation cost a warm call.
//!
//!     cargo bench --bench validation
//!     cargo bench --bench validation -- --checks 200000 --rounds 20 --calls 500
//!
//! 1. In process: `Contract::check_input` and the output check on a typical
//!    event (an object of six fields, one nested, one list), µs per check.
//! 2. End to end, on a real `hearth serve` (release build): two Python
//!    functions with the same code, one with `[input]` and `[output]`
//!    schemas (`output_validation = "enforce"`), one without; `--rounds`
//!    rounds alternating between them, each `--calls` sequential warm calls
//!    on one keep-alive connection; prints each one's median p50 and the
//!    paired difference (checked minus plain), in µs.

mod common;

use std::time::{Duration, Instant};

use common::{deploy, stats, Conn};
use hearth::bundle::{Bundle, BundleFile};
use hearth_engine::contract::Contract;

const SCHEMAS: &str = r#"
[input]
type = "object"
required = ["user", "limit", "page"]
additionalProperties = false
properties.user = { type = "integer", minimum = 1 }
properties.limit = { type = "integer", minimum = 1, maximum = 100 }
properties.page = { type = "integer", minimum = 0 }
properties.lang = { type = "string", enum = ["en", "fr", "de"] }
properties.tags = { type = "array", items = { type = "string", maxLength = 32 }, maxItems = 16 }
[input.properties.device]
type = "object"
required = ["kind"]
properties.kind = { type = "string", enum = ["tv", "phone", "web"] }
properties.width = { type = "integer" }
[output]
type = "object"
required = ["items"]
properties.items = { type = "array", items = { type = "object", required = ["id", "title"], properties = { id = { type = "integer" }, title = { type = "string" } } } }
"#;

const EVENT: &str = r#"{"user": 42, "limit": 20, "page": 0, "lang": "en", "tags": ["news", "sport"], "device": {"kind": "tv", "width": 1920}}"#;

const CODE: &str = "def handler(event):\n    return {\"items\": [{\"id\": 1, \"title\": \"News\"}, {\"id\": 2, \"title\": \"Weather\"}]}\n";

struct Args {
    checks: usize,
    rounds: usize,
    calls: usize,
}

fn args() -> Args {
    let mut a = Args {
        checks: 100_000,
        rounds: 16,
        calls: 400,
    };
    let mut it = std::env::args().skip(1);
    while let Some(arg) = it.next() {
        let mut num = |d: usize| it.next().and_then(|v| v.parse().ok()).unwrap_or(d);
        match arg.as_str() {
            "--checks" => a.checks = num(a.checks),
            "--rounds" => a.rounds = num(a.rounds),
            "--calls" => a.calls = num(a.calls),
            _ => {}
        }
    }
    a
}

fn in_process(checks: usize) {
    let manifest = hearth::manifest::parse(&format!(
        "name='b'\nruntime='python'\nentry='main.handler'\noutput_validation='enforce'\n{SCHEMAS}"
    ))
    .expect("manifest");
    let contract = Contract::of("b@1", &manifest);
    let json: serde_json::Value = serde_json::from_str(EVENT).expect("event");
    let event = hearth::protocol::json_to_value(EVENT.as_bytes()).expect("event");
    let output: serde_json::Value = serde_json::from_str(
        r#"{"items": [{"id": 1, "title": "News"}, {"id": 2, "title": "Weather"}]}"#,
    )
    .expect("output");
    // Warm up, then time.
    for _ in 0..1000 {
        let _ = contract.check_input("b", 1, &event);
    }
    let t = Instant::now();
    for _ in 0..checks {
        contract.check_input("b", 1, &event).expect("valid");
    }
    let input_us = t.elapsed().as_secs_f64() * 1e6 / checks as f64;
    let t = Instant::now();
    for _ in 0..checks {
        assert!(contract.output_failures(&output).is_empty());
    }
    let output_us = t.elapsed().as_secs_f64() * 1e6 / checks as f64;
    let t = Instant::now();
    for _ in 0..checks {
        std::hint::black_box(hearth::protocol::value_to_json(&event));
    }
    let convert_us = t.elapsed().as_secs_f64() * 1e6 / checks as f64;
    let _ = json;
    println!("in process ({checks} checks each):");
    println!("  input check (MessagePack value → JSON → validate): {input_us:.2} µs");
    println!("    of which the conversion to JSON:                {convert_us:.2} µs");
    println!("  output check (JSON, already made for the answer):  {output_us:.2} µs");
}

fn bundle(name: &str, schemas: bool) -> Bundle {
    let extra = if schemas {
        format!("output_validation = \"enforce\"\n{SCHEMAS}")
    } else {
        String::new()
    };
    Bundle {
        files: vec![
            BundleFile {
                path: "hearth.toml".into(),
                executable: false,
                data: format!(
                    "name = \"{name}\"\nruntime = \"python\"\nentry = \"main.handler\"\n{extra}"
                )
                .into_bytes(),
            },
            BundleFile {
                path: "main.py".into(),
                executable: false,
                data: CODE.as_bytes().to_vec(),
            },
        ],
    }
}

fn round(conn: &mut Conn, name: &str, calls: usize) -> f64 {
    let mut times = Vec::with_capacity(calls);
    let path = format!("/fn/{name}");
    for _ in 0..calls {
        let t = Instant::now();
        let (status, body) = conn.post(&path, EVENT.as_bytes());
        times.push(t.elapsed());
        assert_eq!(status, 200, "{}", String::from_utf8_lossy(&body));
    }
    stats(times).p50
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn main() {
    let a = args();
    in_process(a.checks);

    let daemon = common::Daemon::start();
    let mut conn = Conn::open(&daemon.addr);
    for (name, schemas) in [("plain", false), ("checked", true)] {
        deploy(&mut conn, &bundle(name, schemas), true);
    }
    // Warm both.
    round(&mut conn, "plain", 200);
    round(&mut conn, "checked", 200);
    let (mut plain, mut checked, mut diff) = (Vec::new(), Vec::new(), Vec::new());
    for r in 0..a.rounds {
        // Alternate which goes first.
        let (p, c) = if r % 2 == 0 {
            let p = round(&mut conn, "plain", a.calls);
            (p, round(&mut conn, "checked", a.calls))
        } else {
            let c = round(&mut conn, "checked", a.calls);
            (round(&mut conn, "plain", a.calls), c)
        };
        plain.push(p);
        checked.push(c);
        diff.push(c - p);
        std::thread::sleep(Duration::from_millis(20));
    }
    println!(
        "end to end ({} rounds × {} sequential warm calls each, median of the rounds' p50):",
        a.rounds, a.calls
    );
    println!("  plain:   {:.1} µs", median(plain) * 1000.0);
    println!("  checked: {:.1} µs", median(checked) * 1000.0);
    println!(
        "  paired difference (checked − plain): {:.1} µs",
        median(diff) * 1000.0
    );
}
