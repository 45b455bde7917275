//! Functions that call functions, through their workers' protocol channel:
//! chains across the three runtimes, the callee's error reaching its
//! caller, cycles, depth, the root's budget, deadline propagation, their
//! call records, no second run when a caller dies, and `calls = [...]`.

mod common;

use common::{eventually, Daemon, FnDir};
use serde_json::{json, Value};

fn node(name: &str, code: &str) -> FnDir {
    let manifest = format!(
        "name = \"{name}\"\nruntime = \"node\"\nentry = \"main.handler\"\napp = \"tests\"\n"
    );
    FnDir::new(&manifest, &[("main.js", code)])
}

fn lua(name: &str, code: &str) -> FnDir {
    let manifest = format!(
        "name = \"{name}\"\nruntime = \"lua\"\nentry = \"main.handler\"\napp = \"tests\"\n"
    );
    FnDir::new(&manifest, &[("main.lua", code)])
}

fn deploy(d: &Daemon, f: &FnDir) {
    d.ok(&["deploy", f.path()]);
}

fn call(d: &Daemon, name: &str, body: Value) -> (u16, Value, String) {
    let r = d.post(&format!("/fn/{name}"), &body.to_string());
    let id = r.header("x-request-id").unwrap_or("").to_owned();
    let v = serde_json::from_str(&r.text()).unwrap_or(Value::Null);
    (r.status, v, id)
}

/// The records of `function`, once `n` are written.
fn records(d: &Daemon, function: &str, n: usize) -> Vec<Value> {
    let mut got = Vec::new();
    let found = eventually(20, || {
        let r = d.get(&format!("/api/v1/functions/{function}/calls"));
        got = r.json()["calls"].as_array().cloned().unwrap_or_default();
        got.len() >= n
    });
    assert!(
        found,
        "{function} has {} records, not {n}:\n{}",
        got.len(),
        d.log()
    );
    got
}

#[test]
fn a_chain_across_the_three_runtimes_returns_each_value() {
    let d = Daemon::start();
    let py_last = FnDir::python(
        "chain-d",
        "def handler(event, context):\n    return {'d': event['n'] + 1}\n",
    );
    let lua_c = lua(
        "chain-c",
        "local M = {}\nfunction M.handler(event, context)\n  local v, err = context.invoke('chain-d', { n = event.n + 1 })\n  if err then error(err.message) end\n  return { c = v }\nend\nreturn M\n",
    );
    let node_b = node(
        "chain-b",
        "exports.handler = async (event, context) => ({ b: await context.invoke('chain-c', { n: event.n + 1 }) });\n",
    );
    let py_a = FnDir::python(
        "chain-a",
        "def handler(event, context):\n    return {'a': context.invoke('chain-b', {'n': event['n'] + 1})}\n",
    );
    for f in [&py_last, &lua_c, &node_b, &py_a] {
        deploy(&d, f);
    }
    let (status, v, root_id) = call(&d, "chain-a", json!({"n": 0}));
    assert_eq!(status, 200, "{v}\n{}", d.log());
    assert_eq!(v, json!({"a": {"b": {"c": {"d": 4}}}}));

    // Each link has its own record, linked to its caller's request id.
    let b = &records(&d, "chain-b", 1)[0];
    assert_eq!(b["caller"], "nested");
    assert_eq!(b["parent_id"], root_id.as_str());
    let c = &records(&d, "chain-c", 1)[0];
    assert_eq!(c["parent_id"], b["request_id"]);
    let last = &records(&d, "chain-d", 1)[0];
    assert_eq!(last["parent_id"], c["request_id"]);
    assert_eq!(last["outcome"], "ok");
}

#[test]
fn the_callees_error_reaches_the_caller_with_its_code_and_traceback() {
    let d = Daemon::start();
    deploy(
        &d,
        &FnDir::python(
            "raiser",
            "def handler(event):\n    raise ValueError('bad input ' + str(event.get('x')))\n",
        ),
    );
    deploy(
        &d,
        &FnDir::python(
            "catcher",
            "import hearth\n\ndef handler(event, context):\n    try:\n        context.invoke('raiser', {'x': 7})\n    except hearth.InvokeError as e:\n        return {'code': e.code, 'function': e.function, 'version': e.version,\n                'type': e.error['type'], 'traceback': e.error['traceback'], 'retryable': e.retryable}\n    return {'code': None}\n",
        ),
    );
    let (status, v, _) = call(&d, "catcher", json!({}));
    assert_eq!(status, 200, "{v}\n{}", d.log());
    assert_eq!(v["code"], "function_error");
    assert_eq!(v["function"], "raiser");
    assert_eq!(v["version"], 1);
    assert_eq!(v["type"], "ValueError");
    assert_eq!(v["retryable"], false);
    let tb = v["traceback"].as_str().unwrap_or("");
    assert!(tb.contains("bad input 7"), "{tb}");

    // Not caught: the root fails as its own function_error, naming it.
    deploy(
        &d,
        &FnDir::python(
            "passer",
            "def handler(event, context):\n    return context.invoke('raiser', {})\n",
        ),
    );
    let (status, v, _) = call(&d, "passer", json!({}));
    assert_eq!(status, 500, "{v}");
    assert_eq!(v["error"]["code"], "function_error");
    assert_eq!(v["error"]["details"]["type"], "InvokeError");
}

#[test]
fn a_cycle_and_an_over_deep_chain_are_refused_with_their_codes() {
    let d = Daemon::start();
    // cyc-a -> cyc-b -> cyc-a: cyc-b's call is refused.
    deploy(
        &d,
        &FnDir::python(
            "cyc-a",
            "def handler(event, context):\n    return context.invoke('cyc-b', {})\n",
        ),
    );
    deploy(
        &d,
        &FnDir::python(
            "cyc-b",
            "import hearth\n\ndef handler(event, context):\n    try:\n        context.invoke('cyc-a', {})\n    except hearth.InvokeError as e:\n        return {'code': e.code, 'message': e.message}\n",
        ),
    );
    let (status, v, _) = call(&d, "cyc-a", json!({}));
    assert_eq!(status, 200, "{v}\n{}", d.log());
    assert_eq!(v["code"], "recursion", "{v}");
    let message = v["message"].as_str().unwrap_or("");
    assert!(message.contains("cyc-a@1 -> cyc-b@1 -> cyc-a"), "{message}");

    // deep-1 -> deep-2 (max_depth = 1) -> deep-3: refused at deep-2.
    deploy(
        &d,
        &FnDir::python(
            "deep-1",
            "def handler(event, context):\n    return context.invoke('deep-2', {})\n",
        ),
    );
    deploy(
        &d,
        &FnDir::python_with(
            "deep-2",
            "import hearth\n\ndef handler(event, context):\n    try:\n        return context.invoke('deep-3', {})\n    except hearth.InvokeError as e:\n        return {'code': e.code}\n",
            "[limits]\nmax_depth = 1\n",
        ),
    );
    deploy(
        &d,
        &FnDir::python("deep-3", "def handler(event):\n    return 'deep'\n"),
    );
    let (status, v, _) = call(&d, "deep-1", json!({}));
    assert_eq!(status, 200, "{v}");
    assert_eq!(v["code"], "chain_too_deep", "{v}");
    // Called directly, deep-2 is the root: one level is allowed.
    let (status, v, _) = call(&d, "deep-2", json!({}));
    assert_eq!(status, 200, "{v}");
    assert_eq!(v, json!("deep"));
}

#[test]
fn fan_out_returns_in_order_within_the_roots_budget() {
    let d = Daemon::start();
    deploy(
        &d,
        &FnDir::python_with(
            "leaf",
            "def handler(event):\n    return event['i'] * 10\n",
            "[limits]\nmax_workers = 4\n",
        ),
    );
    deploy(
        &d,
        &FnDir::python_with(
            "fan",
            "import hearth\n\ndef handler(event, context):\n    out = context.invoke_many([('leaf', {'i': i}) for i in range(event['n'])])\n    return [x.code if isinstance(x, hearth.InvokeError) else x for x in out]\n",
            "[limits]\nmax_nested_calls = 6\n",
        ),
    );
    let (status, v, _) = call(&d, "fan", json!({"n": 4}));
    assert_eq!(status, 200, "{v}\n{}", d.log());
    assert_eq!(v, json!([0, 10, 20, 30]));
    // Past the root's budget of 6, the rest are refused.
    let (status, v, _) = call(&d, "fan", json!({"n": 8}));
    assert_eq!(status, 200, "{v}");
    let list = v.as_array().expect("list");
    let ok = list.iter().filter(|x| x.is_number()).count();
    let refused = list.iter().filter(|x| *x == "budget_exhausted").count();
    assert_eq!((ok, refused), (6, 2), "{v}");
}

#[test]
fn a_callee_is_cut_at_its_callers_deadline() {
    let d = Daemon::start();
    deploy(
        &d,
        &FnDir::python_with(
            "slow-callee",
            "import time\n\ndef handler(event):\n    time.sleep(5)\n    return 'late'\n",
            "[limits]\ntimeout_ms = 8000\n",
        ),
    );
    deploy(
        &d,
        &FnDir::python_with(
            "hasty",
            "def handler(event, context):\n    return context.invoke('slow-callee', {})\n",
            "[limits]\ntimeout_ms = 700\n",
        ),
    );
    let began = std::time::Instant::now();
    let (status, v, root_id) = call(&d, "hasty", json!({}));
    assert_eq!(status, 504, "{v}");
    assert_eq!(v["error"]["code"], "timeout");
    assert!(
        began.elapsed() < std::time::Duration::from_secs(4),
        "the root waited for its callee"
    );
    let callee = &records(&d, "slow-callee", 1)[0];
    assert_eq!(callee["parent_id"], root_id.as_str());
    assert_eq!(callee["code"], "timeout", "{callee}");
    let error = callee["error"].as_str().unwrap_or("");
    assert!(error.contains("cut at its caller's deadline"), "{error}");
}

#[test]
fn a_call_that_cannot_start_in_time_gets_deadline_exceeded_at_once() {
    let d = Daemon::start();
    deploy(
        &d,
        &FnDir::python(
            "never-run",
            "def handler(event):\n    print('ran')\n    return 'ran'\n",
        ),
    );
    // Less time than a call can be made in (1 ms, under the 2 ms a call
    // needs): refused before it is dispatched, at once, and the callee
    // never runs.
    deploy(
        &d,
        &FnDir::python(
            "out-of-time",
            "import time, hearth\n\ndef handler(event, context):\n    began = time.perf_counter()\n    try:\n        context.invoke('never-run', {}, timeout_ms=1)\n        return {'code': 'none'}\n    except hearth.InvokeError as e:\n        return {'code': e.code, 'function': e.function, 'message': e.message, 'ms': (time.perf_counter() - began) * 1000}\n",
        ),
    );
    let (status, v, root_id) = call(&d, "out-of-time", json!({}));
    assert_eq!(status, 200, "{v}\n{}", d.log());
    assert_eq!(v["code"], "deadline_exceeded", "{v}");
    assert_eq!(v["function"], "never-run", "{v}");
    assert!(
        v["message"].as_str().unwrap_or("").contains("no time left"),
        "{v}"
    );
    assert!(v["ms"].as_f64().unwrap_or(1e9) < 1000.0, "not at once: {v}");
    // The caller's record is written; the callee has none (it never ran).
    let root = &records(&d, "out-of-time", 1)[0];
    assert_eq!(root["request_id"], root_id.as_str());
    let r = d.get("/api/v1/functions/never-run/calls");
    assert_eq!(r.json()["calls"], json!([]), "the callee ran: {}", r.text());
}

#[test]
fn a_nested_call_runs_once_when_its_caller_dies() {
    let d = Daemon::start();
    deploy(
        &d,
        &FnDir::python(
            "once",
            "import time\n\ndef handler(event):\n    time.sleep(0.5)\n    return 'done'\n",
        ),
    );
    deploy(
        &d,
        &FnDir::python(
            "dier",
            "import asyncio, os\n\nasync def handler(event, context):\n    task = asyncio.ensure_future(context.invoke_async('once', {}))\n    await asyncio.sleep(0.1)\n    os._exit(3)\n",
        ),
    );
    let (status, v, _) = call(&d, "dier", json!({}));
    assert_eq!(status, 502, "{v}");
    assert_eq!(v["error"]["code"], "worker_died");
    // The callee finishes on its own worker, once.
    let got = records(&d, "once", 1);
    std::thread::sleep(std::time::Duration::from_secs(2));
    let again = records(&d, "once", 1);
    assert_eq!(again.len(), 1, "{again:?}");
    assert_eq!(got[0]["outcome"], "ok");
}

#[test]
fn declared_calls_are_warmed_at_publish_and_listed() {
    let d = Daemon::start();
    deploy(
        &d,
        &FnDir::python("source-x", "def handler(event):\n    return 'x'\n"),
    );
    let caller = FnDir::python_with(
        "mapper-y",
        "def handler(event, context):\n    return context.invoke('source-x', {})\n",
        "calls = [\"source-x\"]\n",
    );
    deploy(&d, &caller);
    // source-x gets a worker without being called.
    let warmed = eventually(20, || {
        let w = d.get("/api/v1/workers").json();
        w["pools"].as_array().is_some_and(|pools| {
            pools
                .iter()
                .any(|p| p["function"] == "source-x" && p["idle"].as_u64().unwrap_or(0) >= 1)
        })
    });
    assert!(warmed, "source-x was not warmed:\n{}", d.log());
    let y = d.get("/api/v1/functions/mapper-y").json();
    assert_eq!(y["calls"], json!(["source-x"]));
    let x = d.get("/api/v1/functions/source-x").json();
    assert_eq!(x["called_by"], json!(["mapper-y"]));
    let listing = d.ok(&["list"]);
    assert!(listing.contains("CALLED BY"), "{listing}");
    let (status, v, _) = call(&d, "mapper-y", json!({}));
    assert_eq!((status, v), (200, json!("x")));

    // A manifest naming itself is refused, saying why.
    let own = FnDir::python_with(
        "selfish",
        "def handler(event):\n    return 1\n",
        "calls = [\"selfish\"]\n",
    );
    let err = d.fails(&["deploy", own.path()]);
    assert!(err.contains("cannot call itself"), "{err}");
}

#[test]
fn a_node_worker_serves_nested_answers_to_concurrent_calls() {
    let d = Daemon::start();
    deploy(
        &d,
        &FnDir::python_with(
            "echo-slow",
            "import time\n\ndef handler(event):\n    time.sleep(event['s'])\n    return event['tag']\n",
            "[limits]\nmax_workers = 4\n",
        ),
    );
    let n = node(
        "node-fan",
        "exports.handler = async (event, context) => {\n  const r = await context.invokeMany([['echo-slow', { s: 0.2, tag: event.tag + '1' }], ['echo-slow', { s: 0.1, tag: event.tag + '2' }]]);\n  return r;\n};\n",
    );
    deploy(&d, &n);
    let handles: Vec<_> = ["p", "q", "r"]
        .into_iter()
        .map(|tag| {
            let addr = d.addr.clone();
            std::thread::spawn(move || {
                let r = common::http(
                    &addr,
                    "POST",
                    "/fn/node-fan",
                    json!({"tag": tag}).to_string().as_bytes(),
                );
                (tag, r.status, r.text())
            })
        })
        .collect();
    for h in handles {
        let (tag, status, text) = h.join().expect("thread");
        assert_eq!(status, 200, "{text}");
        let v: Value = serde_json::from_str(&text).expect("json");
        assert_eq!(v, json!([format!("{tag}1"), format!("{tag}2")]));
    }
}

#[test]
fn a_pipelined_python_worker_serves_nested_calls_of_its_queued_invokes() {
    let d = Daemon::start();
    deploy(
        &d,
        &FnDir::python_with(
            "pipe-leaf",
            "import time\n\ndef handler(event):\n    time.sleep(0.2)\n    return event['tag']\n",
            "[limits]\nmax_workers = 2\n",
        ),
    );
    // One worker, two calls in its pipe: the second invoke arrives while
    // the first waits for its nested call's answer.
    deploy(
        &d,
        &FnDir::python_with(
            "pipe-root",
            "def handler(event, context):\n    return 'root ' + context.invoke('pipe-leaf', event)\n",
            "[limits]\nmax_workers = 1\nconcurrency = 2\n",
        ),
    );
    let handles: Vec<_> = ["one", "two"]
        .into_iter()
        .map(|tag| {
            let addr = d.addr.clone();
            std::thread::spawn(move || {
                let body = json!({"tag": tag}).to_string();
                let r = common::http(&addr, "POST", "/fn/pipe-root", body.as_bytes());
                (tag, r.status, r.text())
            })
        })
        .collect();
    for h in handles {
        let (tag, status, text) = h.join().expect("thread");
        assert_eq!(status, 200, "{text}\n{}", d.log());
        assert_eq!(text, format!("\"root {tag}\""));
    }
    let w = d.get("/api/v1/workers").json();
    let root = w["pools"]
        .as_array()
        .and_then(|p| p.iter().find(|p| p["function"] == "pipe-root").cloned())
        .expect("pipe-root's pool");
    assert_eq!(root["started"], 1, "both calls ran on one worker: {root}");
}

#[test]
fn a_fan_out_past_a_full_pool_fails_clearly_and_may_be_retried() {
    let d = Daemon::start();
    deploy(
        &d,
        &FnDir::python_with(
            "narrow",
            "import time\n\ndef handler(event):\n    time.sleep(0.3)\n    return event['i']\n",
            "[limits]\nmax_workers = 1\nmax_queue = 0\nmin_workers = 1\n",
        ),
    );
    deploy(
        &d,
        &FnDir::python(
            "wide",
            "import hearth\n\ndef handler(event, context):\n    out = context.invoke_many([('narrow', {'i': i}) for i in range(3)])\n    return [[x.code, x.retryable] if isinstance(x, hearth.InvokeError) else x for x in out]\n",
        ),
    );
    let (status, v, _) = call(&d, "wide", json!({}));
    assert_eq!(status, 200, "{v}\n{}", d.log());
    let list = v.as_array().expect("list");
    let ran = list.iter().filter(|x| x.is_number()).count();
    let refused = list
        .iter()
        .filter(|x| **x == json!(["queue_full", true]))
        .count();
    assert_eq!((ran, refused), (1, 2), "{v}");
}
