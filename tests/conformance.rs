//! One conformance suite that every runtime's shim passes unchanged: real
//! interpreters started by the daemon's own worker code, speaking the real
//! protocol. Fixtures (the same handlers in each language) are in
//! tests/conformance/<runtime>/. A runtime that is not installed is skipped
//! with the reason (scripts/setup installs all three).

mod common;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use hearth::isolation::Isolation;
use hearth::manifest::{Limits, RuntimeKind};
use hearth::pool::{Worker, WorkerError, WorkerSpec};
use hearth::runtime::{RuntimeOptions, Runtimes};
use rmpv::Value;

struct Harness {
    runtimes: Runtimes,
    kind: RuntimeKind,
    _tmp: tempfile::TempDir,
}

impl Harness {
    async fn new(kind: RuntimeKind) -> Option<Harness> {
        let tmp = tempfile::tempdir().expect("tempdir");
        let runtimes = Runtimes::discover(tmp.path(), &RuntimeOptions::default(), false).await;
        if let Err(e) = runtimes.get(kind) {
            eprintln!("SKIP: {e}");
            return None;
        }
        Some(Harness {
            runtimes,
            kind,
            _tmp: tmp,
        })
    }

    fn dir(&self) -> PathBuf {
        common::repo()
            .join("tests/conformance")
            .join(self.kind.as_str())
    }

    async fn worker(&self, handler: &str) -> Result<Worker, WorkerError> {
        let spec = WorkerSpec {
            function: format!("conformance-{}", self.kind),
            version: 1,
            dir: self.dir(),
            entry: format!("main.{handler}"),
            calls: vec![],
            contract: Default::default(),
            page: None,
            limits: Limits::default(),
            runtime: self.runtimes.get(self.kind).expect("runtime").clone(),
            env: vec![],
            app: "default".into(),
            identity: None,
            isolation: Arc::new(Isolation::minimal(self._tmp.path().join("tmp"))),
        };
        Worker::start(Arc::new(spec), deadline()).await
    }

    async fn call(&self, worker: &mut Worker, payload: Value) -> hearth::pool::Answer {
        let deadline_ms = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .expect("clock")
            .as_millis() as u64
            + 30_000;
        worker
            .invoke("req-1", payload, deadline(), deadline_ms, None)
            .await
            .unwrap_or_else(|e| panic!("{} worker failed: {e}", self.kind))
    }
}

fn deadline() -> tokio::time::Instant {
    tokio::time::Instant::now() + Duration::from_secs(30)
}

fn map(entries: Vec<(&str, Value)>) -> Value {
    Value::Map(
        entries
            .into_iter()
            .map(|(k, v)| (Value::from(k), v))
            .collect(),
    )
}

/// Maps compare without regard to key order (Lua tables have none).
fn normalize(v: Value) -> Value {
    match v {
        Value::Map(entries) => {
            let mut entries: Vec<(Value, Value)> = entries
                .into_iter()
                .map(|(k, v)| (normalize(k), normalize(v)))
                .collect();
            entries.sort_by_key(|(k, _)| format!("{k:?}"));
            Value::Map(entries)
        }
        Value::Array(items) => Value::Array(items.into_iter().map(normalize).collect()),
        other => other,
    }
}

/// Every MessagePack type at its boundaries, in the forms all runtimes can
/// carry both ways (see the shims' READMEs for what each maps them to).
/// Not here: float 32 (shims answer float 64) and floats with a whole value
/// such as 3.0 (JavaScript has one number type, so Node answers int 3).
fn every_type() -> Value {
    let ints: Vec<Value> = vec![
        Value::from(0),
        Value::from(127),
        Value::from(128),
        Value::from(255),
        Value::from(256),
        Value::from(65535),
        Value::from(65536),
        Value::from(u64::from(u32::MAX)),
        Value::from(u64::from(u32::MAX) + 1),
        Value::from(i64::MAX),
        Value::from(i64::MAX as u64 + 1),
        Value::from(u64::MAX),
        Value::from(-1),
        Value::from(-32),
        Value::from(-33),
        Value::from(-128),
        Value::from(-129),
        Value::from(-32768),
        Value::from(-32769),
        Value::from(i64::from(i32::MIN)),
        Value::from(i64::from(i32::MIN) - 1),
        Value::from(i64::MIN),
    ];
    let mut deep = Value::from("bottom");
    for i in 0..100 {
        deep = if i % 2 == 0 {
            Value::Array(vec![deep])
        } else {
            map(vec![("down", deep)])
        };
    }
    map(vec![
        (
            "nil_in_array",
            Value::Array(vec![Value::Nil, Value::from(1), Value::Nil]),
        ),
        (
            "bools",
            Value::Array(vec![Value::from(true), Value::from(false)]),
        ),
        ("ints", Value::Array(ints)),
        (
            "floats",
            Value::Array(vec![
                Value::F64(1.5),
                Value::F64(-0.25),
                Value::F64(1e300),
                Value::F64(-1e-300),
            ]),
        ),
        (
            "strings",
            Value::Array(vec![
                Value::from("plain"),
                Value::from("h\u{e9}llo \u{2603} \u{1F525} \u{4e2d}\u{6587}"),
                Value::from("x".repeat(70_000)),
            ]),
        ),
        ("binary", Value::Binary(vec![0xff, 0x00, 0xfe, 0x80, 0x01])),
        ("empty_array", Value::Array(vec![])),
        ("empty_map", Value::Map(vec![])),
        (
            "nested",
            map(vec![(
                "a",
                Value::Array(vec![map(vec![(
                    "b",
                    Value::Array(vec![Value::Array(vec![])]),
                )])]),
            )]),
        ),
        ("deep", deep),
    ])
}

async fn round_trip(kind: RuntimeKind) {
    let Some(h) = Harness::new(kind).await else {
        return;
    };
    let mut w = h.worker("echo").await.expect("start echo");
    let value = every_type();
    let answer = h.call(&mut w, value.clone()).await;
    let got = answer
        .result
        .unwrap_or_else(|e| panic!("{kind}: echo failed: {e:?}"));
    assert_eq!(
        normalize(got),
        normalize(value),
        "{kind}: round trip changed the value"
    );
    // Scalars at the top level, too.
    for v in [
        Value::Nil,
        Value::from(true),
        Value::from(-129),
        Value::from(u64::MAX),
        Value::F64(2.5),
        Value::from("top"),
    ] {
        let got = h.call(&mut w, v.clone()).await.result.expect("echo");
        assert_eq!(got, v, "{kind}: top-level {v:?}");
    }
}

async fn eight_mib(kind: RuntimeKind) {
    let Some(h) = Harness::new(kind).await else {
        return;
    };
    let mut w = h.worker("echo").await.expect("start echo");
    let big = "0123456789abcdef".repeat(8 * 1024 * 1024 / 16);
    let got = h
        .call(&mut w, Value::from(big.as_str()))
        .await
        .result
        .expect("echo 8 MiB");
    assert_eq!(
        got.as_str().map(str::len),
        Some(big.len()),
        "{kind}: 8 MiB string"
    );
    assert!(
        got.as_str() == Some(big.as_str()),
        "{kind}: 8 MiB string changed"
    );
    let records: Vec<Value> = (0..80_000)
        .map(|i| {
            map(vec![
                ("id", Value::from(i)),
                ("name", Value::from(format!("record number {i:06} of many"))),
            ])
        })
        .collect();
    let value = Value::Array(records);
    let got = h
        .call(&mut w, value.clone())
        .await
        .result
        .expect("echo records");
    assert_eq!(normalize(got), normalize(value), "{kind}: 80,000 records");
}

async fn raises(kind: RuntimeKind) {
    let Some(h) = Harness::new(kind).await else {
        return;
    };
    let mut w = h.worker("fail").await.expect("start fail");
    let answer = h
        .call(&mut w, map(vec![("msg", Value::from("bad input"))]))
        .await;
    let err = answer.result.expect_err("fail must fail");
    assert!(
        err.message.contains("boom: bad input"),
        "{kind}: message {:?}",
        err.message
    );
    assert!(!err.kind.is_empty(), "{kind}: error kind");
    assert!(
        err.traceback.contains("main."),
        "{kind}: traceback should name the fixture: {}",
        err.traceback
    );
    // The worker keeps serving after a failed call.
    let again = h
        .call(&mut w, map(vec![("msg", Value::from("again"))]))
        .await;
    assert!(again
        .result
        .expect_err("fails again")
        .message
        .contains("again"));
}

async fn raises_an_error_code(kind: RuntimeKind) {
    let Some(h) = Harness::new(kind).await else {
        return;
    };
    let mut w = h.worker("fail_code").await.expect("start fail_code");
    let event = |code: &str| {
        map(vec![
            ("code", Value::from(code)),
            ("msg", Value::from("no program 42")),
        ])
    };
    let err = h
        .call(&mut w, event("NOT_FOUND"))
        .await
        .result
        .expect_err("fail_code must fail");
    assert_eq!(err.code.as_deref(), Some("NOT_FOUND"), "{kind}: code");
    assert_eq!(err.message, "no program 42", "{kind}: message");
    assert!(!err.kind.is_empty(), "{kind}: error kind");
    assert!(
        err.traceback.contains("main."),
        "{kind}: traceback should name the fixture: {}",
        err.traceback
    );
    // A code that is not valid comes as a plain error saying why.
    let bad = h
        .call(&mut w, event("not valid"))
        .await
        .result
        .expect_err("fail_code must fail");
    assert_eq!(bad.code, None, "{kind}: an invalid code is not sent");
    assert!(
        bad.message.starts_with("invalid error code ") && bad.message.ends_with("no program 42"),
        "{kind}: message {:?}",
        bad.message
    );
    // Other errors have no code.
    let mut plain = h.worker("fail").await.expect("start fail");
    let other = h
        .call(&mut plain, map(vec![("msg", Value::from("x"))]))
        .await
        .result
        .expect_err("fail must fail");
    assert_eq!(other.code, None, "{kind}: a plain error has no code");
}

async fn prints_while_returning(kind: RuntimeKind) {
    let Some(h) = Harness::new(kind).await else {
        return;
    };
    let mut w = h.worker("chatty").await.expect("start chatty");
    for lines in [3i64, 5000] {
        let answer = h
            .call(&mut w, map(vec![("lines", Value::from(lines))]))
            .await;
        let got = answer.result.expect("chatty returns");
        assert_eq!(
            normalize(got),
            normalize(map(vec![
                ("ok", Value::from(true)),
                ("n", Value::from(lines))
            ])),
            "{kind}"
        );
        let log = &answer.log.text();
        assert!(log.starts_with("[stdout] out line 0\n"), "{kind}: {log}");
        if lines == 3 {
            // Everything, and nothing but this call's output.
            let want = "[stdout] out line 0\n[stdout] out line 1\n[stdout] out line 2\n";
            assert!(log.starts_with(want), "{kind}: {log}");
            assert!(log.contains("[stderr] err line\n"), "{kind}: {log}");
            assert!(
                log.contains("[stdout] no newline at the end\n"),
                "{kind}: {log}"
            );
            assert_eq!(log.lines().count(), 5, "{kind}: {log}");
        } else {
            // A big log is kept up to its cap; the rest is counted.
            assert!(
                answer.log.dropped > 0 && log.len() > 60_000,
                "{kind}: {} kept, {} dropped",
                log.len(),
                answer.log.dropped
            );
        }
    }
}

async fn one_and_two_parameters(kind: RuntimeKind) {
    let Some(h) = Harness::new(kind).await else {
        return;
    };
    let mut one = h.worker("echo").await.expect("start echo");
    let got = h
        .call(&mut one, map(vec![("x", Value::from(1))]))
        .await
        .result
        .expect("echo");
    assert_eq!(normalize(got), normalize(map(vec![("x", Value::from(1))])));
    let mut two = h.worker("echo_ctx").await.expect("start echo_ctx");
    let got = h
        .call(&mut two, map(vec![("x", Value::from(2))]))
        .await
        .result
        .expect("echo_ctx");
    let want = map(vec![
        ("event", map(vec![("x", Value::from(2))])),
        ("function", Value::from(format!("conformance-{kind}"))),
        ("request_id", Value::from("req-1")),
    ]);
    assert_eq!(normalize(got), normalize(want), "{kind}: context");
}

async fn reads_a_shipped_file(kind: RuntimeKind) {
    let Some(h) = Harness::new(kind).await else {
        return;
    };
    let mut w = h.worker("read_file").await.expect("start read_file");
    let got = h.call(&mut w, map(vec![])).await.result.expect("read_file");
    assert_eq!(got.as_str(), Some("shipped with the code\n"), "{kind}");
}

async fn load_errors(kind: RuntimeKind) {
    let Some(h) = Harness::new(kind).await else {
        return;
    };
    match h.worker("no_such_handler").await {
        Err(WorkerError::LoadFailed { error, .. }) => {
            assert_eq!(error.kind, "EntryNotFound", "{kind}")
        }
        Err(e) => panic!("{kind}: unexpected {e}"),
        Ok(_) => panic!("{kind}: a missing handler must not load"),
    }
}

fn shim_own_tests(kind: RuntimeKind) {
    let repo = common::repo();
    // Each shim's suites: the protocol vectors, and its worker played
    // against (nested calls among them).
    let (suites, dir): (Vec<(&str, Vec<&str>)>, PathBuf) = match kind {
        RuntimeKind::Python => (
            vec![("python3", vec!["-m", "unittest", "-v", "test_protocol"])],
            repo.join("shims/python"),
        ),
        RuntimeKind::Node => (vec![("node", vec!["--test"])], repo.join("shims/node")),
        RuntimeKind::Page => return,
        RuntimeKind::Lua => (
            vec![
                ("lua5.4", vec!["test_protocol.lua"]),
                ("/usr/bin/python3", vec!["test_worker.py"]),
            ],
            repo.join("shims/lua"),
        ),
    };
    for (program, args) in suites {
        let out = match std::process::Command::new(program)
            .args(&args)
            .current_dir(&dir)
            .env("PYTHONDONTWRITEBYTECODE", "1")
            .env_remove("NODE_EXTRA_CA_CERTS")
            .output()
        {
            Ok(out) => out,
            Err(e) => {
                eprintln!("SKIP: cannot run {program}: {e}; scripts/setup installs it");
                continue;
            }
        };
        assert!(
            out.status.success(),
            "{kind} shim's own tests ({program} {args:?}) failed:\n{}\n{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

macro_rules! conformance {
    ($module:ident, $kind:expr) => {
        mod $module {
            use super::*;

            #[test]
            fn protocol_vectors_in_the_shims_own_tests() {
                shim_own_tests($kind);
            }
            #[tokio::test]
            async fn every_messagepack_type_round_trips() {
                round_trip($kind).await;
            }
            #[tokio::test]
            async fn eight_mib_in_and_out() {
                eight_mib($kind).await;
            }
            #[tokio::test]
            async fn a_handler_that_raises() {
                raises($kind).await;
            }
            #[tokio::test]
            async fn a_handler_that_raises_an_error_code() {
                raises_an_error_code($kind).await;
            }
            #[tokio::test]
            async fn printing_while_returning_is_the_calls_log() {
                prints_while_returning($kind).await;
            }
            #[tokio::test]
            async fn handlers_with_one_and_two_parameters() {
                one_and_two_parameters($kind).await;
            }
            #[tokio::test]
            async fn a_handler_reads_a_file_shipped_next_to_it() {
                reads_a_shipped_file($kind).await;
            }
            #[tokio::test]
            async fn a_missing_handler_is_a_load_error() {
                load_errors($kind).await;
            }
        }
    };
}

conformance!(python, RuntimeKind::Python);
conformance!(node, RuntimeKind::Node);
conformance!(lua, RuntimeKind::Lua);
