//! The Python shim's own tests (shared protocol vectors, handler shapes),
//! run with the real interpreter from the Rust test suite.

mod common;

#[test]
fn python_shim_decodes_the_protocol_vectors() {
    let dir = common::repo().join("shims/python");
    let python = std::env::var("HEARTH_PYTHON").unwrap_or_else(|_| "python3".into());
    let out = std::process::Command::new(&python)
        .args(["-m", "unittest", "-v", "test_protocol"])
        .current_dir(&dir)
        .env("PYTHONDONTWRITEBYTECODE", "1")
        .output()
        .unwrap_or_else(|e| panic!("cannot run {python}: {e}; install Python 3 (./scripts/setup)"));
    let report = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "Python shim tests failed:\n{report}");
    assert!(report.contains("Ran 5 tests"), "{report}");
}
