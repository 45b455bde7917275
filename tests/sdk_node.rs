//! The Node.js SDK (sdk-node/) against a real daemon: its own test suite
//! (`node --test sdk-node/test/`, with HEARTH_ADDR, HEARTH_TOKEN and the
//! daemon's error codes in HEARTH_ERROR_CODES), and the example client of
//! examples/sdk/.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use common::{repo, Daemon};

/// The node binary: `/usr/bin/node`, else the first `node` on PATH.
fn node() -> Option<PathBuf> {
    let fixed = PathBuf::from("/usr/bin/node");
    if fixed.is_file() {
        return Some(fixed);
    }
    std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|dir| dir.join("node"))
            .find(|p| p.is_file())
    })
}

/// `node` with an environment fit for the tests: NODE_EXTRA_CA_CERTS makes
/// every start slow, and a caller's HEARTH_* must not leak in.
fn node_command(node: &Path) -> Command {
    let mut cmd = Command::new(node);
    cmd.env_remove("NODE_EXTRA_CA_CERTS")
        .env_remove("NODE_OPTIONS")
        .env_remove("HEARTH_ADDR")
        .env_remove("HEARTH_TOKEN")
        .env_remove("HEARTH_DATA")
        .env_remove("HEARTH_CA_CERT");
    cmd
}

fn report(what: &str, out: &Output, d: &Daemon) -> String {
    format!(
        "{what} failed ({}):\n--- stdout ---\n{}\n--- stderr ---\n{}\n--- daemon log ---\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr),
        d.log()
    )
}

#[test]
fn node_sdk_test_suite_passes_against_a_real_daemon() {
    let Some(node) = node() else {
        eprintln!("skipped: node is not installed (scripts/setup installs it)");
        return;
    };
    let d = Daemon::start();
    let codes: Vec<&str> = hearth_api::ErrorCode::ALL
        .iter()
        .map(|c| c.as_str())
        .collect();
    let sdk = repo().join("sdk-node");
    // The test files, named (a directory argument is read differently by
    // different Node versions).
    let mut files: Vec<PathBuf> = std::fs::read_dir(sdk.join("test"))
        .expect("sdk-node/test")
        .map(|e| e.expect("entry").path())
        .filter(|p| {
            let name = p.file_name().and_then(|n| n.to_str()).unwrap_or("");
            name.ends_with(".test.mjs") || name.ends_with(".test.cjs")
        })
        .collect();
    files.sort();
    assert!(files.len() >= 2, "no tests in sdk-node/test: {files:?}");
    let out = node_command(&node)
        .arg("--test")
        .args(&files)
        .current_dir(&sdk)
        .env("HEARTH_ADDR", &d.addr)
        .env("HEARTH_TOKEN", &d.token)
        .env("HEARTH_ERROR_CODES", codes.join(","))
        .output()
        .expect("run node --test");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{}", report("node --test", &out, &d));
    // The suite ran against the daemon: nothing was skipped for want of one.
    assert!(!stdout.contains("# SKIP"), "tests were skipped:\n{stdout}");
    assert!(stdout.contains("# fail 0"), "{stdout}");
}

#[test]
fn the_example_client_calls_hello() {
    let Some(node) = node() else {
        eprintln!("skipped: node is not installed (scripts/setup installs it)");
        return;
    };
    let example = repo().join("examples/sdk");
    if !example.join("node_modules/@hearth/sdk").exists() {
        // What scripts/setup does (a file: dependency: no registry needed).
        let npm = Command::new("npm")
            .args(["install", "--no-audit", "--no-fund", "--no-package-lock"])
            .current_dir(&example)
            .env_remove("NODE_EXTRA_CA_CERTS")
            .output();
        match npm {
            Ok(out) if out.status.success() => {}
            Ok(out) => panic!(
                "npm install in examples/sdk failed:\n{}",
                String::from_utf8_lossy(&out.stderr)
            ),
            Err(e) => {
                eprintln!("skipped: examples/sdk is not installed and npm cannot run ({e}); run scripts/setup");
                return;
            }
        }
    }
    let d = Daemon::start();
    d.ok(&[
        "deploy",
        repo().join("examples/python/hello").to_str().expect("path"),
    ]);
    // The token comes from the daemon's data directory, as the CLI finds it.
    let out = node_command(&node)
        .arg("node_client.mjs")
        .arg("Grace")
        .current_dir(&example)
        .env("HEARTH_ADDR", &d.addr)
        .env("HEARTH_DATA", &d.data)
        .output()
        .expect("run the example");
    assert!(
        out.status.success(),
        "{}",
        report("node_client.mjs", &out, &d)
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    let mut lines = stdout.lines();
    assert_eq!(
        lines.next(),
        Some(r#"{"greeting":"Hello, Grace!"}"#),
        "{stdout}"
    );
    assert!(
        lines
            .next()
            .is_some_and(|l| l.starts_with("hello@1 answered ")),
        "{stdout}"
    );
}

#[test]
fn the_sdk_reaches_an_https_daemon_with_hearth_ca_cert() {
    let Some(node) = node() else {
        eprintln!("skipped: node is not installed (scripts/setup installs it)");
        return;
    };
    let (d, cert, _dir) = common::https_daemon();
    let f = common::FnDir::python("tls-hi", "def handler(e):\n    return {'hi': e['n']}\n");
    let script = r#"
        const { Client } = await import(process.env.SDK);
        const c = new Client();
        const out = await c.deploy(process.env.FN_DIR);
        const r = await c.invoke('tls-hi', { n: 7 });
        console.log(JSON.stringify([out.version, r.value, r.version]));
        c.close();
    "#;
    let out = node_command(&node)
        .args(["--input-type=module", "-e", script])
        .env("SDK", repo().join("sdk-node/index.mjs"))
        .env("FN_DIR", f.path())
        .env("HEARTH_ADDR", format!("https://{}", d.addr))
        .env("HEARTH_TOKEN", &d.token)
        .env("HEARTH_CA_CERT", &cert)
        .output()
        .expect("run node");
    assert!(
        out.status.success(),
        "{}",
        report("node over https", &out, &d)
    );
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        r#"[1,{"hi":7},1]"#
    );
}
