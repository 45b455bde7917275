//! The Python client SDK (sdk-python/) against a real daemon: its unittest
//! suite (which deploys its own fixture functions through the SDK) under
//! the `python3` on PATH and under /usr/bin/python3 when that is another
//! interpreter, and the example script examples/sdk/python_client.py.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use common::{repo, Daemon};

/// The interpreter `name` runs as (`sys.executable`), if it runs.
fn executable(python: &Path) -> Option<PathBuf> {
    let out = Command::new(python)
        .args(["-c", "import sys; print(sys.executable)"])
        .output()
        .ok()?;
    if !out.status.success() {
        return None;
    }
    let text = String::from_utf8_lossy(&out.stdout).trim().to_owned();
    std::fs::canonicalize(&text)
        .ok()
        .or(Some(PathBuf::from(text)))
}

/// The interpreters to test with: `python3` on PATH, and /usr/bin/python3
/// (Debian's) when it is another one.
fn pythons() -> Vec<PathBuf> {
    let mut found: Vec<(PathBuf, PathBuf)> = Vec::new();
    for candidate in [PathBuf::from("python3"), PathBuf::from("/usr/bin/python3")] {
        if let Some(exe) = executable(&candidate) {
            if !found.iter().any(|(_, e)| *e == exe) {
                found.push((candidate, exe));
            }
        }
    }
    assert!(!found.is_empty(), "no python3 to run the SDK's tests with");
    found.into_iter().map(|(c, _)| c).collect()
}

/// A command with a small environment: PATH, HOME, pyenv's variables, the
/// daemon's address, and the SDK on PYTHONPATH.
fn python_cmd(python: &Path, d: &Daemon) -> Command {
    let mut cmd = Command::new(python);
    cmd.current_dir(repo()).env_clear();
    for key in [
        "PATH",
        "HOME",
        "PYENV_ROOT",
        "PYENV_VERSION",
        "LANG",
        "TMPDIR",
    ] {
        if let Some(value) = std::env::var_os(key) {
            cmd.env(key, value);
        }
    }
    cmd.env("PYTHONPATH", repo().join("sdk-python"))
        .env("PYTHONDONTWRITEBYTECODE", "1")
        .env("HEARTH_ADDR", &d.addr);
    cmd
}

fn check(what: &str, out: &Output, d: &Daemon) -> String {
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(
        out.status.success(),
        "{what} failed ({}):\n--- stdout\n{stdout}\n--- stderr\n{stderr}\n--- daemon log\n{}",
        out.status,
        d.log()
    );
    format!("{stdout}{stderr}")
}

#[test]
fn python_sdk_suite_and_example() {
    // Kept-alive connections idle 2 s are closed: the suite checks that
    // the client replaces them.
    let d = Daemon::start_with(&["--header-timeout", "2"], &[]);
    let codes: Vec<&str> = hearth_api::ErrorCode::ALL
        .iter()
        .map(|c| c.as_str())
        .collect();
    for python in pythons() {
        let out = python_cmd(&python, &d)
            .args(["-m", "unittest", "discover", "-s", "sdk-python/tests", "-v"])
            .env("HEARTH_TOKEN", &d.token)
            .env("HEARTH_ERROR_CODES", codes.join(","))
            .env("HEARTH_IDLE_CLOSE", "2")
            .output()
            .expect("run python -m unittest");
        let text = check(
            &format!(
                "{} -m unittest discover -s sdk-python/tests",
                python.display()
            ),
            &out,
            &d,
        );
        assert!(!text.contains("skipped '"), "{text}");
        eprintln!(
            "{}: {}",
            python.display(),
            text.lines().last().unwrap_or("")
        );
    }

    // The example calls the README's hello function; it finds the admin
    // token in HEARTH_DATA the way the CLI does.
    let hello = repo().join("examples/python/hello");
    d.ok(&["deploy", hello.to_str().expect("utf-8 path")]);
    let python = &pythons()[0];
    let out = python_cmd(python, &d)
        .arg("examples/sdk/python_client.py")
        .env("HEARTH_DATA", &d.data)
        .output()
        .expect("run the example");
    let text = check("examples/sdk/python_client.py", &out, &d);
    assert!(text.contains("Hello, Ada!"), "{text}");
    assert!(text.contains("version 1"), "{text}");
}
