//! Per-function dependencies: installed at deploy time into the version's
//! own space, cached by content, never shared with another version's.
//! These tests install real packages from PyPI and npm.

mod common;

use common::{Daemon, FnDir};

fn python_pinned(name: &str, pin: &str) -> FnDir {
    FnDir::new(
        &format!("name = \"{name}\"\nruntime = \"python\"\nentry = \"main.handler\"\n"),
        &[
            ("requirements.txt", &format!("six=={pin}\n")),
            ("main.py", "import six\n\ndef handler(event):\n    return {'six': six.__version__, 'file': six.__file__}\n"),
        ],
    )
}

#[test]
fn two_python_functions_each_see_their_own_pinned_package() {
    let d = Daemon::start();
    let old = python_pinned("six-old", "1.15.0");
    let new = python_pinned("six-new", "1.16.0");
    let out = d.cli(&["deploy", old.path()]);
    let progress = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(out.status.success(), "{progress}");
    assert!(
        progress.contains("installing dependencies from requirements.txt with pip"),
        "{progress}"
    );
    assert!(
        progress.contains("six"),
        "pip's own output is shown as progress: {progress}"
    );
    d.ok(&["deploy", new.path()]);

    let a = d.post("/fn/six-old", "{}").json();
    let b = d.post("/fn/six-new", "{}").json();
    assert_eq!(a["six"], "1.15.0");
    assert_eq!(b["six"], "1.16.0");
    let data = d.data.display().to_string();
    for v in [&a, &b] {
        assert!(
            v["file"]
                .as_str()
                .unwrap_or("")
                .starts_with(&format!("{data}/deps/python/")),
            "{v}"
        );
    }

    // A new version with unchanged requirements reuses the install at once.
    old.write(
        "main.py",
        "import six\n\ndef handler(event):\n    return {'six': six.__version__, 'v': 2}\n",
    );
    let out = d.cli(&["deploy", old.path()]);
    assert!(String::from_utf8_lossy(&out.stderr).contains("unchanged: using the cached install"));
    assert_eq!(
        d.post("/fn/six-old", "{}").json(),
        serde_json::json!({"six": "1.15.0", "v": 2})
    );
    // Both versions of the function keep their own packages.
    assert_eq!(d.post("/fn/six-old@1", "{}").json()["six"], "1.15.0");
}

#[test]
fn a_failed_install_fails_the_deploy_and_the_previous_version_keeps_serving() {
    let d = Daemon::start();
    let f = python_pinned("deps-fail", "1.16.0");
    d.ok(&["deploy", f.path()]);
    f.write(
        "requirements.txt",
        "hearth-no-such-package-for-tests==0.0.1\n",
    );
    let err = d.fails(&["deploy", f.path()]);
    assert!(
        err.contains("installing deps-fail's dependencies from requirements.txt failed"),
        "{err}"
    );
    assert!(
        err.contains("hearth-no-such-package-for-tests"),
        "the installer's own message: {err}"
    );
    assert!(err.contains("version 1 stays live"), "{err}");
    let reply = d.post("/fn/deps-fail", "{}");
    assert_eq!(reply.json()["six"], "1.16.0");
    assert_eq!(
        d.get("/api/v1/functions/deps-fail").json()["live_version"],
        1
    );
    // The API without streaming answers the same error in one piece.
    let reply = d.post("/fn/deps-fail@2", "{}");
    assert_eq!(reply.status, 422, "{}", reply.text());
    assert_eq!(reply.code(), "dependency_install_failed");
}

fn node_pinned(name: &str, pin: &str) -> FnDir {
    FnDir::new(
        &format!("name = \"{name}\"\nruntime = \"node\"\nentry = \"main.handler\"\n"),
        &[
            ("package.json", &format!("{{\"name\": \"{name}\", \"private\": true, \"dependencies\": {{\"is-number\": \"{pin}\"}}}}\n")),
            (
                "main.js",
                "const isNumber = require('is-number');\nconst pkg = require('is-number/package.json');\nexports.handler = (event) => ({ version: pkg.version, five: isNumber(5), where: require.resolve('is-number') });\n",
            ),
        ],
    )
}

#[test]
fn two_node_functions_each_see_their_own_pinned_package() {
    let d = Daemon::start();
    let old = node_pinned("isnum-old", "6.0.0");
    let new = node_pinned("isnum-new", "7.0.0");
    let out = d.cli(&["deploy", old.path()]);
    let progress = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(out.status.success(), "{progress}");
    assert!(
        progress.contains("installing dependencies from package.json with npm"),
        "{progress}"
    );
    d.ok(&["deploy", new.path()]);
    let a = d.post("/fn/isnum-old", "{}").json();
    let b = d.post("/fn/isnum-new", "{}").json();
    assert_eq!(
        (a["version"].as_str(), a["five"].as_bool()),
        (Some("6.0.0"), Some(true)),
        "{a}"
    );
    assert_eq!(
        (b["version"].as_str(), b["five"].as_bool()),
        (Some("7.0.0"), Some(true)),
        "{b}"
    );
    let deps = format!("{}/deps/node/", d.data.display());
    assert!(a["where"].as_str().unwrap_or("").starts_with(&deps), "{a}");

    // A package that does not exist fails the deploy with npm's own words.
    old.write("package.json", "{\"name\": \"isnum-old\", \"private\": true, \"dependencies\": {\"hearth-no-such-package-for-tests\": \"1.0.0\"}}\n");
    let err = d.fails(&["deploy", old.path()]);
    assert!(
        err.contains("package.json failed") && err.contains("npm"),
        "{err}"
    );
    assert!(err.contains("version 1 stays live"), "{err}");
    assert_eq!(d.post("/fn/isnum-old", "{}").json()["version"], "6.0.0");
}
