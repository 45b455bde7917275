//! HTTPS built in: with --tls-cert and --tls-key the gateway speaks TLS
//! only (HTTP/2 or HTTP/1.1), curl and the CLI reach it with the CA, and
//! plain HTTP is refused.

mod common;

use std::process::Command;

use common::FnDir;

fn have_curl() -> bool {
    Command::new("curl")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success())
}

#[test]
fn the_gateway_serves_https_with_the_given_certificate() {
    if !have_curl() {
        eprintln!("SKIPPED: curl is not installed");
        return;
    }
    let (d, cert, _dir) = common::https_daemon();
    let https = format!("https://{}", d.addr);
    // The CLI, trusting the certificate through HEARTH_CA_CERT.
    let f = FnDir::python("hi", "def handler(e, c):\n    return {'hi': e.get('n')}\n");
    let cli = |args: &[&str]| {
        Command::new(common::BIN)
            .args(args)
            .env("HEARTH_ADDR", &https)
            .env("HEARTH_DATA", &d.data)
            .env("HEARTH_CA_CERT", &cert)
            .output()
            .expect("run hearth")
    };
    let out = cli(&["deploy", f.path()]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = cli(&["invoke", "hi", "--data", r#"{"n": 1}"#]);
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("\"hi\""),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // Without the CA the certificate is not trusted.
    let out = Command::new(common::BIN)
        .args(["--addr", &https, "list"])
        .env("HEARTH_DATA", &d.data)
        .env_remove("HEARTH_CA_CERT")
        .output()
        .expect("run hearth");
    assert!(!out.status.success());

    // curl over HTTP/2 and HTTP/1.1.
    for version in ["--http2", "--http1.1"] {
        let out = Command::new("curl")
            .args(["-sS", version, "--cacert"])
            .arg(&cert)
            .args([
                "-X",
                "POST",
                "-H",
                "content-type: application/json",
                "-d",
                r#"{"n":2}"#,
            ])
            .arg(format!("{https}/fn/hi"))
            .output()
            .expect("curl");
        assert_eq!(
            String::from_utf8_lossy(&out.stdout).trim(),
            r#"{"hi":2}"#,
            "{version}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    // Plain HTTP to the TLS port gets no answer.
    let out = Command::new("curl")
        .args([
            "-sS",
            "--max-time",
            "5",
            "-o",
            "/dev/null",
            "-w",
            "%{http_code}",
        ])
        .arg(format!("http://{}/api/v1/health", d.addr))
        .output()
        .expect("curl");
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "000");
}

#[test]
fn a_bad_certificate_is_a_clear_error_at_start() {
    let dir = tempfile::tempdir().expect("tempdir");
    let cert = dir.path().join("cert.pem");
    std::fs::write(&cert, "not a certificate").expect("write");
    let out = Command::new(common::BIN)
        .args(["serve", "--listen", "127.0.0.1:0", "--data-dir"])
        .arg(dir.path().join("data"))
        .arg("--tls-cert")
        .arg(&cert)
        .arg("--tls-key")
        .arg(&cert)
        .output()
        .expect("run");
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("--tls-cert") && err.contains("cert.pem"),
        "{err}"
    );
}
