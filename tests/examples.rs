//! Every example under examples/ deploys and answers, as `scripts/up` shows them.
//! An example with an `example.json` (`{"event": ..., "expect": "text"}`)
//! is called with its event and must answer with the text in it; the
//! others get the hello event.

mod common;

use common::Daemon;

#[test]
fn every_example_deploys_and_answers() {
    let d = Daemon::start();
    let root = common::repo().join("examples");
    let mut names = Vec::new();
    for runtime in std::fs::read_dir(&root).expect("examples") {
        for example in std::fs::read_dir(runtime.expect("entry").path()).expect("runtime dir") {
            let dir = example.expect("entry").path();
            if !dir.join("hearth.toml").is_file() {
                continue;
            }
            let out = d.ok(&["deploy", dir.to_str().expect("path")]);
            let name = out.split(':').next().expect("name").to_owned();
            names.push((name, dir));
        }
    }
    assert!(
        names.len() >= 9,
        "expected hello, a template and a data example per runtime: {names:?}"
    );
    for (name, dir) in &names {
        let sample: Option<serde_json::Value> = std::fs::read_to_string(dir.join("example.json"))
            .ok()
            .map(|t| serde_json::from_str(&t).expect("example.json is JSON"));
        let event = match &sample {
            Some(s) => s["event"].to_string(),
            None if name.starts_with("country") => r#"{"code":"fr"}"#.to_owned(),
            None => r#"{"name":"Ada","items":["a","<b>"]}"#.to_owned(),
        };
        let reply = d.post(&format!("/fn/{name}"), &event);
        assert_eq!(
            reply.status,
            200,
            "{name} ({}): {}",
            dir.display(),
            reply.text()
        );
        let text = reply.text();
        let expected = match &sample {
            Some(s) => s["expect"]
                .as_str()
                .expect("example.json has expect")
                .to_owned(),
            None if name.starts_with("country") => "Paris".to_owned(),
            None => "Hello, Ada!".to_owned(),
        };
        assert!(text.contains(&expected), "{name}: {text}");
        if name.starts_with("greeting-page") {
            assert!(
                text.contains("&lt;b&gt;"),
                "{name} must escape HTML: {text}"
            );
        }
    }
}

/// examples/pages/home: every data source and field function deploys and
/// answers its example.json, then the page composes them, as `scripts/up`
/// deploys it.
#[test]
fn the_home_page_example_composes_its_functions() {
    let d = Daemon::start();
    let root = common::repo().join("examples/pages/home");
    let mut runtimes = std::collections::BTreeMap::<String, Vec<String>>::new();
    for (group, least) in [("sources", 6), ("fields", 10)] {
        let mut dirs: Vec<_> = std::fs::read_dir(root.join(group))
            .expect(group)
            .map(|e| e.expect("entry").path())
            .collect();
        dirs.sort();
        assert!(dirs.len() >= least, "{group}: {dirs:?}");
        for dir in dirs {
            let manifest = std::fs::read_to_string(dir.join("hearth.toml")).expect("hearth.toml");
            let runtime = manifest
                .lines()
                .find_map(|l| l.strip_prefix("runtime = "))
                .expect("runtime")
                .trim_matches('"')
                .to_owned();
            runtimes
                .entry(format!("{group} {runtime}"))
                .or_default()
                .push(dir.display().to_string());
            let out = d.ok(&["deploy", dir.to_str().expect("path")]);
            let name = out.split(':').next().expect("name").to_owned();
            let sample: serde_json::Value = serde_json::from_str(
                &std::fs::read_to_string(dir.join("example.json")).expect("example.json"),
            )
            .expect("example.json is JSON");
            let reply = d.post(&format!("/fn/{name}"), &sample["event"].to_string());
            assert_eq!(reply.status, 200, "{name}: {}", reply.text());
            let expect = sample["expect"].as_str().expect("expect");
            assert!(reply.text().contains(expect), "{name}: {}", reply.text());
        }
    }
    for group in ["sources", "fields"] {
        for runtime in ["python", "node", "lua"] {
            assert!(
                runtimes.contains_key(&format!("{group} {runtime}")),
                "no {runtime} function in {group}: {runtimes:?}"
            );
        }
    }
    let out = d.ok(&["deploy", root.join("page").to_str().expect("path")]);
    assert!(out.starts_with("home:"), "{out}");
    let sample: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(root.join("page/example.json")).expect("example.json"),
    )
    .expect("JSON");
    // The first calls start the fields' workers; their 100 ms budgets are
    // for warm calls, so a loaded machine may need a few calls.
    let mut last = String::new();
    let ok = common::eventually(30, || {
        let reply = d.post("/page/home", &sample["event"].to_string());
        last = reply.text();
        reply.status == 200 && reply.json()["errors"] == serde_json::json!([])
    });
    assert!(ok, "the home page never answered without errors: {last}");
    assert!(
        last.contains(sample["expect"].as_str().expect("expect")),
        "{last}"
    );
    let page: serde_json::Value = serde_json::from_str(&last).expect("JSON");
    for path in ["hero", "greeting", "badges", "channels"] {
        assert!(page["data"].get(path).is_some(), "no {path}: {page}");
    }
    assert!(page["data"]["rows"]["recommended"].is_object(), "{page}");
    // Hidden data sources are not in the answer.
    assert!(page["data"].get("programs").is_none(), "{page}");
}
