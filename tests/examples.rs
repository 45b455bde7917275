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
