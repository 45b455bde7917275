//! The configuration file of `hearth serve`: unknown keys refused with file
//! and line, `--check-config`, flags over environment over file over
//! defaults, the example in dist/, and SIGHUP reloads (a good file applied
//! whole, a bad one leaving the running configuration as it was).

mod common;

use std::path::Path;
use std::process::{Command, Output};

use common::{eventually, reachable_tempdir, Daemon, BIN};

/// `hearth serve ARGS` with only `env` set among HEARTH_* variables.
fn serve(args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut cmd = Command::new(BIN);
    cmd.arg("serve").args(args);
    for (k, _) in std::env::vars() {
        if k.starts_with("HEARTH_") || k == "RUST_LOG" {
            cmd.env_remove(k);
        }
    }
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd.output().expect("run hearth serve")
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

fn write(dir: &Path, name: &str, text: &str) -> String {
    let path = dir.join(name);
    std::fs::write(&path, text).expect("write config");
    path.to_str().expect("utf-8").to_owned()
}

#[test]
fn unknown_key_is_refused_naming_key_file_and_line() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let file = write(
        tmp.path(),
        "hearth.toml",
        "[server]\nlisten = \"127.0.0.1:0\"\n\n[pools]\nmax_workers_total = 8\nmax_wrkers = 3\n",
    );
    for extra in [&["--check-config"][..], &[][..]] {
        let mut args = vec!["--config", file.as_str()];
        args.extend_from_slice(extra);
        let out = serve(&args, &[]);
        assert!(!out.status.success(), "accepted an unknown key");
        let err = stderr(&out);
        assert!(err.contains(&file), "no file in: {err}");
        assert!(err.contains("line 6"), "no line in: {err}");
        assert!(err.contains("`max_wrkers`"), "no key in: {err}");
        assert!(err.contains("[pools]"), "no section in: {err}");
    }

    let section = write(
        tmp.path(),
        "section.toml",
        "[pool]\nmax_workers_total = 8\n",
    );
    let err = stderr(&serve(&["--config", &section, "--check-config"], &[]));
    assert!(
        err.contains("unknown key `pool`") && err.contains("line 1"),
        "{err}"
    );
}

#[test]
fn wrong_values_are_refused_naming_key_and_where() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let typed = write(
        tmp.path(),
        "t.toml",
        "[pools]\n\ngeneric_workers = \"two\"\n",
    );
    let err = stderr(&serve(&["--config", &typed, "--check-config"], &[]));
    assert!(
        err.contains("line 3") && err.contains("generic_workers"),
        "{err}"
    );

    let duration = write(
        tmp.path(),
        "d.toml",
        "[server]\nshutdown_grace = \"soon\"\n",
    );
    let err = stderr(&serve(&["--config", &duration, "--check-config"], &[]));
    assert!(err.contains("line 2") && err.contains("\"30s\""), "{err}");

    let zero = write(tmp.path(), "z.toml", "[pools]\nmax_workers_total = 0\n");
    let err = stderr(&serve(&["--config", &zero, "--check-config"], &[]));
    assert!(
        err.contains("`pools.max_workers_total` is 0") && err.contains(&format!("{zero}, line 2")),
        "{err}"
    );
    // The same mistake made by a flag names the flag.
    let err = stderr(&serve(&["--max-workers-total", "0", "--check-config"], &[]));
    assert!(
        err.contains("--max-workers-total or HEARTH_MAX_WORKERS_TOTAL"),
        "{err}"
    );

    let missing = tmp.path().join("absent.toml");
    let err = stderr(&serve(
        &[
            "--config",
            missing.to_str().expect("utf-8"),
            "--check-config",
        ],
        &[],
    ));
    assert!(
        err.contains("cannot read the configuration file") && err.contains("absent.toml"),
        "{err}"
    );
}

#[test]
fn check_config_validates_without_starting() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let data = tmp.path().join("data");
    let file = write(
        tmp.path(),
        "hearth.toml",
        &format!(
            "[storage]\ndata_dir = \"{}\"\n[pools]\nmax_workers_total = 12\n",
            data.display()
        ),
    );
    let out = serve(&["--config", &file, "--check-config"], &[]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("configuration OK"),
        "{}",
        stderr(&out)
    );
    let printed: toml::Table = stdout(&out).parse().expect("prints TOML");
    assert_eq!(printed["pools"]["max_workers_total"].as_integer(), Some(12));
    assert!(
        !data.exists(),
        "--check-config started the daemon (made its data directory)"
    );
}

#[test]
fn flags_over_environment_over_file_over_defaults() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let file = write(
        tmp.path(),
        "hearth.toml",
        "[pools]\nmax_workers_total = 10\ngeneric_workers = 3\n[isolation]\nkill_grace = \"3s\"\n[log]\nlevel = \"warn\"\n",
    );
    let out = serve(
        &[
            "--config",
            &file,
            "--check-config",
            "--max-workers-total",
            "30",
        ],
        &[
            ("HEARTH_MAX_WORKERS_TOTAL", "20"),
            ("HEARTH_GENERIC_WORKERS", "4"),
        ],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    let c: toml::Table = stdout(&out).parse().expect("TOML");
    assert_eq!(
        c["pools"]["max_workers_total"].as_integer(),
        Some(30),
        "flag over env"
    );
    assert_eq!(
        c["pools"]["generic_workers"].as_integer(),
        Some(4),
        "env over file"
    );
    assert_eq!(
        c["isolation"]["kill_grace"].as_str(),
        Some("3s"),
        "file over default"
    );
    assert_eq!(
        c["log"]["level"].as_str(),
        Some("warn"),
        "file over default"
    );
    assert_eq!(
        c["server"]["listen"].as_str(),
        Some("127.0.0.1:7700"),
        "default"
    );

    // HEARTH_CONFIG names the file as --config does.
    let out = serve(&["--check-config"], &[("HEARTH_CONFIG", &file)]);
    let c: toml::Table = stdout(&out).parse().expect("TOML");
    assert_eq!(c["pools"]["max_workers_total"].as_integer(), Some(10));
}

#[test]
fn example_config_is_accepted_and_holds_the_defaults() {
    let example = common::repo().join("dist/hearth.toml");
    let example = example.to_str().expect("utf-8");
    let out = serve(&["--config", example, "--check-config"], &[]);
    assert!(
        out.status.success(),
        "dist/hearth.toml refused: {}",
        stderr(&out)
    );
    let empty = tempfile::NamedTempFile::new().expect("tempfile");
    let defaults = serve(
        &[
            "--config",
            empty.path().to_str().expect("utf-8"),
            "--check-config",
        ],
        &[],
    );
    assert!(defaults.status.success(), "{}", stderr(&defaults));
    assert_eq!(
        stdout(&out),
        stdout(&defaults),
        "dist/hearth.toml says it holds the defaults"
    );
}

#[test]
fn file_settings_are_in_force() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let file = write(
        tmp.path(),
        "hearth.toml",
        "[pools]\nmax_workers_total = 7\n",
    );
    let d = Daemon::start_with(&["--config", &file], &[]);
    assert_eq!(d.get("/api/v1/workers").json()["budget"]["cap"], 7);
}

/// A daemon whose settings come from `file` alone (no HEARTH_LOG, no
/// --generic-workers from the harness).
fn daemon_from_file(file: &str, data: &Path) -> Daemon {
    let mut cmd = Command::new(BIN);
    cmd.args(["serve", "--config", file, "--data-dir"])
        .arg(data);
    for (k, _) in std::env::vars() {
        if k.starts_with("HEARTH_") || k == "RUST_LOG" {
            cmd.env_remove(k);
        }
    }
    Daemon::spawn(cmd, data)
}

fn generic_target(d: &Daemon) -> Vec<u64> {
    d.get("/api/v1/workers").json()["generic"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|g| g["target"].as_u64())
        .collect()
}

#[test]
fn sighup_applies_a_good_file_and_keeps_the_old_one_on_a_bad_one() {
    let tmp = reachable_tempdir();
    let data = tmp.path().join("data");
    let conf = |listen: &str, total: &str, generic: u32, level: &str| {
        format!(
            "[server]\nlisten = \"{listen}\"\n[pools]\nmax_workers_total = {total}\ngeneric_workers = {generic}\n[log]\nlevel = \"{level}\"\n"
        )
    };
    let file = write(
        tmp.path(),
        "hearth.toml",
        &conf("127.0.0.1:0", "7", 1, "info"),
    );
    let d = daemon_from_file(&file, &data);
    assert_eq!(d.get("/api/v1/workers").json()["budget"]["cap"], 7);
    assert!(!d.log().contains("DEBUG"), "debug lines before the reload");

    // A good file: applied whole; what needs a restart is named.
    write(
        tmp.path(),
        "hearth.toml",
        &conf("127.0.0.1:1", "5", 2, "debug"),
    );
    d.signal(libc::SIGHUP);
    assert!(
        d.wait_log(10, "configuration reloaded"),
        "no reload in the log:\n{}",
        d.log()
    );
    assert_eq!(d.get("/api/v1/workers").json()["budget"]["cap"], 5);
    assert!(
        generic_target(&d).iter().all(|t| *t == 2),
        "{:?}",
        generic_target(&d)
    );
    assert!(!generic_target(&d).is_empty());
    assert!(
        d.log()
            .contains("applied log.level, pools.generic_workers, pools.max_workers_total"),
        "{}",
        d.log()
    );
    assert!(
        d.log()
            .contains("server.listen changed; it takes effect only when hearth restarts"),
        "{}",
        d.log()
    );
    // The new log level is in force: a new generic worker logs at debug.
    assert!(
        eventually(20, || d.log().contains("DEBUG")),
        "no debug line after the reload:\n{}",
        d.log()
    );
    // The daemon still listens where it started.
    assert_eq!(d.get("/api/v1/workers").status, 200);

    // A bad file: nothing changes, the log says why.
    write(
        tmp.path(),
        "hearth.toml",
        "[pools]\nmax_workers_total = \"many\"\n",
    );
    d.signal(libc::SIGHUP);
    assert!(
        d.wait_log(10, "configuration not reloaded, the running one stays"),
        "{}",
        d.log()
    );
    assert!(d.log().contains(&format!("{file}, line 2")), "{}", d.log());
    assert_eq!(d.get("/api/v1/workers").json()["budget"]["cap"], 5);

    // Valid TOML with one bad value among good ones: none is applied.
    write(
        tmp.path(),
        "hearth.toml",
        "[pools]\nmax_workers_total = 9\ngeneric_workers = 1000\n",
    );
    d.signal(libc::SIGHUP);
    assert!(
        eventually(10, || d.log().matches("configuration not reloaded").count()
            >= 2),
        "{}",
        d.log()
    );
    assert!(
        d.log().contains("`pools.generic_workers` is 1000"),
        "{}",
        d.log()
    );
    assert_eq!(d.get("/api/v1/workers").json()["budget"]["cap"], 5);
    assert!(generic_target(&d).iter().all(|t| *t == 2));
}

/// `[limits]` in the configuration: defaults for what a function's
/// hearth.toml does not set; its own keys win; a reload swaps in pools with
/// the new limits; a bad value keeps the old ones.
#[test]
fn limit_defaults_apply_to_unset_keys_and_reload_into_live_pools() {
    let tmp = reachable_tempdir();
    let data = tmp.path().join("data");
    let conf = |timeout: u64| {
        format!("[server]\nlisten = \"127.0.0.1:0\"\n[pools]\ngeneric_workers = 1\n[limits]\ntimeout_ms = {timeout}\n")
    };
    let file = write(tmp.path(), "hearth.toml", &conf(300));
    let d = daemon_from_file(&file, &data);
    let slow = "import time\ndef handler(e, c):\n    time.sleep(1)\n    return 'done'\n";
    let plain = common::FnDir::python("plain-slow", slow);
    let own = common::FnDir::python_with("own-slow", slow, "[limits]\ntimeout_ms = 5000\n");
    d.ok(&["deploy", plain.path()]);
    d.ok(&["deploy", own.path()]);
    let r = d.post("/fn/plain-slow", "{}");
    assert_eq!(r.status, 504, "the daemon's default applies: {}", r.text());
    assert!(r.text().contains("300"), "{}", r.text());
    assert_eq!(
        d.post("/fn/own-slow", "{}").status,
        200,
        "its own limit wins"
    );

    // Reload: the live pool is made again with the new default.
    write(tmp.path(), "hearth.toml", &conf(4000));
    d.signal(libc::SIGHUP);
    assert!(d.wait_log(10, "configuration reloaded"), "{}", d.log());
    assert!(
        eventually(20, || d.post("/fn/plain-slow", "{}").status == 200),
        "the new default did not reach the live pool:\n{}",
        d.log()
    );

    // A bad value: nothing changes, the log says why.
    write(tmp.path(), "hearth.toml", &conf(0));
    d.signal(libc::SIGHUP);
    assert!(d.wait_log(10, "configuration not reloaded"), "{}", d.log());
    assert!(d.log().contains("limits.timeout_ms"), "{}", d.log());
    assert_eq!(d.post("/fn/plain-slow", "{}").status, 200);
}

#[test]
fn serve_says_that_addr_is_for_client_commands_when_it_listens_elsewhere() {
    // HEARTH_ADDR (like --addr) is where client commands connect; a daemon
    // started with one that is not its listen address says where it listens.
    let d = Daemon::start_with(&[], &[("HEARTH_ADDR", "127.0.0.1:1")]);
    assert!(
        d.wait_log(10, "is the address client commands talk to"),
        "{}",
        d.log()
    );
    assert!(d.log().contains("--listen (server.listen)"), "{}", d.log());
    // The daemon serves all the same.
    assert_eq!(d.get("/api/v1/health").status, 200);
}
