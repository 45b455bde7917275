//! The global worker cap: more functions than workers are served by ending
//! the least recently used function's idle workers, never more workers than
//! the cap, and no call fails for it.

mod common;

use common::{Daemon, FnDir};

#[test]
fn more_functions_than_the_cap_are_all_served_within_it() {
    let d = Daemon::start_with(&["--max-workers-total", "3", "--generic-workers", "0"], &[]);
    let dirs: Vec<FnDir> = (0..6)
        .map(|i| {
            FnDir::python(
                &format!("cap-{i}"),
                &format!("def handler(event):\n    return {i}\n"),
            )
        })
        .collect();
    for dir in &dirs {
        d.ok(&["deploy", dir.path()]);
    }
    let within_cap = |d: &Daemon| {
        let workers = d.get("/api/v1/workers").json();
        let counted = workers["budget"]["workers"].as_u64().unwrap_or(99);
        let idle: usize = workers["pools"]
            .as_array()
            .map(|p| {
                p.iter()
                    .map(|p| p["pids"].as_array().map_or(0, Vec::len))
                    .sum()
            })
            .unwrap_or(99);
        assert!(counted <= 3 && idle <= 3, "over the cap of 3: {workers}");
    };
    within_cap(&d);
    for round in 0..3 {
        for i in 0..6 {
            let reply = d.post(&format!("/fn/cap-{i}"), "{}");
            assert_eq!(
                reply.status,
                200,
                "round {round}, cap-{i}: {}",
                reply.text()
            );
            assert_eq!(reply.json(), i);
            within_cap(&d);
        }
    }
}
