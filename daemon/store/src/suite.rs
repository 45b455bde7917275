//! The tests every store back end must pass, written against the [`Store`]
//! trait. A back end's own tests open a fresh, empty store and call
//! [`run_all`] (SQLite: in `sqlite.rs`; a Postgres back end would do the same
//! against a real server).

use std::time::Duration;

use hearth_api::bundle::{Bundle, BundleFile};
use hearth_api::manifest::{self, Manifest};
use hearth_api::{AliasTarget, InvokeMode, Scope};

use crate::{AppRecord, StatsQuery, StatsRecord, Store, StoreChange, TemplateRecord, TokenRecord};

/// Every case, in order, on one fresh store.
pub async fn run_all(store: &dyn Store) {
    versions_are_numbered_and_deduplicated(store).await;
    releases_move_the_live_version(store).await;
    batch_releases_are_all_or_none(store).await;
    aliases_are_releases(store).await;
    apps_keep_their_budgets(store).await;
    the_watch_sees_releases(store).await;
    tokens_are_kept_by_hash(store).await;
    versions_are_deleted_but_never_live_or_aliased(store).await;
    stats_add_up_by_minute_and_prune(store).await;
    functions_are_edited_taken_offline_and_deleted(store).await;
    templates_are_saved_listed_and_deleted(store).await;
}

fn bundle(name: &str, app: &str, code: &str) -> (Manifest, Bundle) {
    bundle_with(name, app, code, "")
}

/// A bundle whose hearth.toml has `extra` lines too.
fn bundle_with(name: &str, app: &str, code: &str, extra: &str) -> (Manifest, Bundle) {
    let text =
        format!("name='{name}'\nruntime='python'\nentry='main.handler'\napp='{app}'\n{extra}\n");
    let b = Bundle {
        files: vec![
            BundleFile {
                path: "hearth.toml".into(),
                data: text.as_bytes().to_vec(),
                executable: false,
            },
            BundleFile {
                path: "main.py".into(),
                data: code.as_bytes().to_vec(),
                executable: false,
            },
        ],
    };
    (manifest::parse(&text).expect("manifest"), b)
}

async fn versions_are_numbered_and_deduplicated(store: &dyn Store) {
    let (m, b1) = bundle("hello", "demo", "def handler(e): return 1");
    let (_, b2) = bundle("hello", "demo", "def handler(e): return 2");
    let v1 = store.put_version(&m, &b1, "first").await.expect("put");
    let again = store.put_version(&m, &b1, "again").await.expect("put");
    let v2 = store.put_version(&m, &b2, "").await.expect("put");
    assert_eq!((v1.version, v1.created), (1, true));
    assert_eq!((again.version, again.created), (1, false));
    assert_eq!((v2.version, v2.created), (2, true));
    assert_eq!(v1.hash, b1.hash());
    let files = store.version_files("hello", 1).await.expect("files");
    assert_eq!(files, b1.files);
    let versions = store.versions("hello").await.expect("versions");
    assert_eq!(
        versions.iter().map(|v| v.version).collect::<Vec<_>>(),
        [1, 2]
    );
    assert_eq!(versions[0].message, "first");
    assert_eq!(versions[0].file_count, 2);
    assert_eq!(versions[0].manifest.app, "demo");
    assert_ne!(versions[0].id, versions[1].id);
    assert!(store.version("hello", 3).await.expect("q").is_none());
    assert!(store.function("nope").await.expect("q").is_none());
    let f = store.function("hello").await.expect("q").expect("exists");
    assert_eq!(
        (f.state.as_str(), f.live_version, f.versions),
        ("draft", None, 2)
    );
}

async fn releases_move_the_live_version(store: &dyn Store) {
    let rec = store.version("hello", 2).await.expect("q").expect("exists");
    let mark = store.release_mark().await.expect("mark");
    assert_eq!(
        store
            .release("hello", &rec, "publish", "go", "ada")
            .await
            .expect("release"),
        None
    );
    assert_ne!(store.release_mark().await.expect("mark"), mark);
    let rec1 = store.version("hello", 1).await.expect("q").expect("exists");
    assert_eq!(
        store
            .release("hello", &rec1, "rollback", "", "")
            .await
            .expect("release"),
        Some(2)
    );
    let f = store.function("hello").await.expect("q").expect("exists");
    assert_eq!(
        (f.live_version, f.versions, f.app.as_str(), f.state.as_str()),
        (Some(1), 2, "demo", "live")
    );
    let history = store.releases("hello").await.expect("history");
    assert_eq!(history.len(), 2);
    assert_eq!((history[0].version, history[0].from_version), (1, Some(2)));
    assert_eq!(history[0].action, "rollback");
    assert_eq!(
        (history[1].message.as_str(), history[1].actor.as_str()),
        ("go", "ada")
    );
}

async fn batch_releases_are_all_or_none(store: &dyn Store) {
    let (m, b) = bundle("other", "demo", "def handler(e): return 3");
    store.put_version(&m, &b, "").await.expect("put");
    let hello2 = store.version("hello", 2).await.expect("q").expect("exists");
    let other1 = store.version("other", 1).await.expect("q").expect("exists");
    let previous = store
        .release_many(
            &[("hello".into(), hello2.clone()), ("other".into(), other1)],
            "publish",
            "both",
            "",
        )
        .await
        .expect("batch");
    assert_eq!(previous, [Some(1), None]);
    // A batch naming a function that does not exist changes nothing.
    let failed = store
        .release_many(
            &[("hello".into(), hello2.clone()), ("ghost".into(), hello2)],
            "publish",
            "",
            "",
        )
        .await;
    assert!(failed.is_err());
    assert_eq!(store.releases("hello").await.expect("history").len(), 3);
    let names: Vec<String> = store
        .list_functions()
        .await
        .expect("list")
        .into_iter()
        .map(|f| f.name)
        .collect();
    assert_eq!(names, ["hello", "other"]);
}

async fn aliases_are_releases(store: &dyn Store) {
    let prod = AliasTarget {
        version: 1,
        split: Some((2, 10)),
    };
    let before = store
        .set_alias("hello", "prod", &prod, "canary", "ada")
        .await
        .expect("alias");
    assert_eq!(before, None);
    let moved = AliasTarget {
        version: 2,
        split: None,
    };
    let before = store
        .set_alias("hello", "prod", &moved, "", "")
        .await
        .expect("alias");
    assert_eq!(before, Some(prod));
    let aliases = store.aliases().await.expect("aliases");
    assert_eq!(aliases.len(), 1);
    assert_eq!(
        (aliases[0].function.as_str(), aliases[0].alias.as_str()),
        ("hello", "prod")
    );
    assert_eq!(aliases[0].target, moved);
    let history = store.releases("hello").await.expect("history");
    assert_eq!(
        (history[0].action.as_str(), history[0].alias.as_str()),
        ("alias", "prod")
    );
    assert_eq!(history[1].split, Some((2, 10)));
}

async fn apps_keep_their_budgets(store: &dyn Store) {
    let budget = AppRecord {
        name: "demo".into(),
        max_workers: 3,
        memory_mb: 512,
        cpu_percent: 150,
        invoke: InvokeMode::Key,
    };
    store.set_app(&budget).await.expect("set");
    store
        .set_app(&AppRecord {
            name: "fresh".into(),
            ..AppRecord::default()
        })
        .await
        .expect("set");
    let apps = store.apps().await.expect("apps");
    assert_eq!(apps.len(), 2);
    assert_eq!(apps[0], budget);
    assert_eq!(apps[1].name, "fresh");
}

async fn the_watch_sees_releases(store: &dyn Store) {
    let mut watch = store.watch(Duration::from_millis(20));
    let first = tokio::time::timeout(Duration::from_secs(5), watch.recv())
        .await
        .expect("the first event comes at once");
    let Some(StoreChange::Releases { mark }) = first else {
        panic!("watch ended");
    };
    let rec = store.version("other", 1).await.expect("q").expect("exists");
    store
        .release("other", &rec, "publish", "", "")
        .await
        .expect("release");
    let next = tokio::time::timeout(Duration::from_secs(5), watch.recv())
        .await
        .expect("a release is seen");
    match next {
        Some(StoreChange::Releases { mark: after }) => assert_ne!(after, mark),
        None => panic!("watch ended"),
    }
}

async fn tokens_are_kept_by_hash(store: &dyn Store) {
    let token = TokenRecord {
        name: "ci".into(),
        id: "0123456789ab".into(),
        sha256: "ab".repeat(32),
        scopes: vec![Scope::Deploy, Scope::Read],
        apps: vec!["shop".into(), "video".into()],
        origin: "api".into(),
        created_at: 1_000,
        last_used: None,
    };
    assert!(store.put_token(&token).await.expect("put"));
    let again = TokenRecord {
        id: "ffffffffffff".into(),
        ..token.clone()
    };
    assert!(
        !store.put_token(&again).await.expect("put"),
        "a second token of the same name is refused"
    );
    assert_eq!(store.tokens().await.expect("tokens"), vec![token.clone()]);
    store
        .touch_tokens(&[("ci".into(), 5_000), ("ci".into(), 4_000)])
        .await
        .expect("touch");
    let listed = store.tokens().await.expect("tokens");
    assert_eq!(listed[0].last_used, Some(5_000), "last use never goes back");
    assert!(store.revoke_token("ci").await.expect("revoke"));
    assert!(!store.revoke_token("ci").await.expect("revoke"));
    assert!(store.tokens().await.expect("tokens").is_empty());
}

async fn versions_are_deleted_but_never_live_or_aliased(store: &dyn Store) {
    for n in 1..=5 {
        let (m, mut b) = bundle("gc-me", "demo", &format!("def handler(e): return {n}"));
        b.files.push(BundleFile {
            path: "requirements.txt".into(),
            data: format!("six=={n}\n").into_bytes(),
            executable: false,
        });
        store.put_version(&m, &b, "").await.expect("put");
    }
    let named = store
        .version_files_named("gc-me", 2, &["requirements.txt", "package.json"])
        .await
        .expect("files");
    assert_eq!(named.len(), 1);
    assert_eq!(named[0].data, b"six==2\n");
    assert!(store
        .version_files_named("gc-me", 2, &[])
        .await
        .expect("files")
        .is_empty());
    let v3 = store.version("gc-me", 3).await.expect("q").expect("exists");
    store
        .release("gc-me", &v3, "publish", "", "")
        .await
        .expect("release");
    let canary = AliasTarget {
        version: 4,
        split: Some((1, 5)),
    };
    store
        .set_alias("gc-me", "canary", &canary, "", "")
        .await
        .expect("alias");
    let deleted = store
        .delete_versions("gc-me", &[4, 1, 2, 3, 2, 9])
        .await
        .expect("delete");
    assert_eq!(deleted, [2], "live 3 and aliased 4 and 1 stay; 9 never was");
    let left: Vec<u32> = store
        .versions("gc-me")
        .await
        .expect("versions")
        .iter()
        .map(|v| v.version)
        .collect();
    assert_eq!(left, [1, 3, 4, 5]);
    assert!(store
        .version_files("gc-me", 2)
        .await
        .expect("files")
        .is_empty());
    let f = store.function("gc-me").await.expect("q").expect("exists");
    assert_eq!((f.versions, f.live_version), (4, Some(3)));
    // Numbers are never given again: the next version is 6.
    let (m, b) = bundle("gc-me", "demo", "def handler(e): return 6");
    assert_eq!(store.put_version(&m, &b, "").await.expect("put").version, 6);
    assert_eq!(
        store.delete_versions("gc-me", &[5]).await.expect("delete"),
        [5]
    );
    // A first deploy taken back leaves no function behind.
    let (m, b) = bundle("taken-back", "demo", "def handler(e): return 0");
    let put = store.put_version(&m, &b, "").await.expect("put");
    assert_eq!(
        store
            .delete_versions("taken-back", &[put.version])
            .await
            .expect("delete"),
        [1]
    );
    assert!(store.function("taken-back").await.expect("q").is_none());
    assert!(store.function("gc-me").await.expect("q").is_some());
}

fn minute(function: &str, version: u32, minute: i64, ok: u64, ms: f64) -> StatsRecord {
    let mut m = StatsRecord {
        app: "shop".into(),
        function: function.into(),
        version,
        minute,
        calls: ok + 1,
        ok,
        rejected: 1,
        cold: 1,
        total_ms: ms * ok as f64,
        max_ms: ms,
        peak: ok,
        function_peak: ok + 1,
        app_peak: ok + 2,
        ..StatsRecord::default()
    };
    for _ in 0..ok {
        m.durations.record(ms);
    }
    m.errors.insert("queue_full".into(), 1);
    m
}

async fn stats_add_up_by_minute_and_prune(store: &dyn Store) {
    store
        .add_stats(&[
            minute("cart", 1, 100, 3, 10.0),
            minute("cart", 2, 101, 2, 40.0),
        ])
        .await
        .expect("add");
    // A second flush of the same minute adds to it.
    store
        .add_stats(&[
            minute("cart", 1, 100, 4, 20.0),
            minute("pay", 1, 90, 1, 5.0),
        ])
        .await
        .expect("add again");
    let all = store
        .stats(&StatsQuery {
            app: Some("shop".into()),
            function: None,
            since_minute: 95,
        })
        .await
        .expect("stats");
    let names: Vec<(&str, u32)> = all
        .iter()
        .map(|s| (s.function.as_str(), s.version))
        .collect();
    assert_eq!(
        names,
        [("cart", 1), ("cart", 2)],
        "pay's minute is before the window"
    );
    let v1 = &all[0];
    assert_eq!((v1.calls, v1.ok, v1.rejected, v1.cold), (9, 7, 2, 2));
    assert_eq!(v1.minute, 100);
    assert_eq!(v1.total_ms, 110.0);
    assert_eq!(v1.max_ms, 20.0);
    assert_eq!(
        (v1.peak, v1.function_peak, v1.app_peak),
        (4, 5, 6),
        "peaks keep the larger"
    );
    assert_eq!(v1.errors.get("queue_full"), Some(&2));
    assert_eq!(v1.durations.count(), 7);
    let mut expected = minute("cart", 1, 100, 3, 10.0).durations;
    expected.merge(&minute("cart", 1, 100, 4, 20.0).durations);
    assert_eq!(v1.durations, expected, "histograms merge bucket by bucket");

    let pay = store
        .stats(&StatsQuery {
            app: None,
            function: Some("pay".into()),
            since_minute: 0,
        })
        .await
        .expect("stats");
    assert_eq!(pay.len(), 1);
    assert_eq!(pay[0].calls, 2);

    assert_eq!(
        store.prune_stats(100).await.expect("prune"),
        1,
        "pay's minute 90"
    );
    let left = store.stats(&StatsQuery::default()).await.expect("stats");
    assert_eq!(left.len(), 2);
    assert!(left.iter().all(|s| s.function == "cart"));
    assert_eq!(store.prune_stats(102).await.expect("prune"), 2);
    assert!(store
        .stats(&StatsQuery::default())
        .await
        .expect("stats")
        .is_empty());
}

async fn functions_are_edited_taken_offline_and_deleted(store: &dyn Store) {
    use hearth_api::metadata::FunctionType;
    let toml = "category='shop'\ndescription='from toml'";
    let put = |code: &'static str, extra: &'static str| async move {
        let (m, b) = bundle_with("managed", "demo", code, extra);
        let v = store.put_version(&m, &b, "").await.expect("put").version;
        store
            .version("managed", v)
            .await
            .expect("q")
            .expect("stored")
    };
    let info = || async { store.function("managed").await.expect("q").expect("exists") };
    let v1 = put("def handler(e): return 1", toml).await;
    assert_eq!(info().await.kind, FunctionType::Function);
    store
        .release("managed", &v1, "publish", "", "")
        .await
        .expect("release");
    // An edit is the function's, not a version's: a redeploy whose
    // hearth.toml leaves the keys as they were keeps it.
    assert!(store
        .edit_function("managed", Some("edited"), None)
        .await
        .expect("edit"));
    assert!(!store
        .edit_function("ghost", Some("x"), None)
        .await
        .expect("edit"));
    let v2 = put("def handler(e): return 2", toml).await;
    store
        .release("managed", &v2, "publish", "", "")
        .await
        .expect("release");
    let f = info().await;
    assert_eq!(
        (f.description.as_str(), f.category.as_str()),
        ("edited", "shop")
    );
    // A hearth.toml that changes a key applies it (and only it).
    let v3 = put(
        "def handler(e): return 3",
        "type='datasource'\ncategory='shop'\ndescription='new toml'\n[output]\ntype='object'",
    )
    .await;
    store
        .release("managed", &v3, "publish", "", "")
        .await
        .expect("release");
    let f = info().await;
    assert_eq!(
        (f.description.as_str(), f.category.as_str(), f.kind),
        ("new toml", "shop", FunctionType::Datasource)
    );

    // Offline: recorded as a release (the mark moves), once.
    let mark = store.release_mark().await.expect("mark");
    assert!(store
        .set_offline("managed", true, "maintenance", "ada")
        .await
        .expect("offline"));
    assert_ne!(store.release_mark().await.expect("mark"), mark);
    assert!(!store
        .set_offline("managed", true, "", "")
        .await
        .expect("again"));
    let f = info().await;
    assert!(f.offline);
    assert_eq!(hearth_api::FunctionInfo::from(f).state, "offline");
    // Publishing while offline moves the live version and stays offline.
    store
        .release("managed", &v2, "publish", "", "")
        .await
        .expect("release");
    let f = info().await;
    assert_eq!((f.offline, f.live_version), (true, Some(2)));
    assert!(store
        .set_offline("managed", false, "", "")
        .await
        .expect("online"));
    let history = store.releases("managed").await.expect("history");
    let actions: Vec<&str> = history.iter().map(|r| r.action.as_str()).collect();
    assert_eq!(
        actions,
        ["online", "publish", "offline", "publish", "publish", "publish"]
    );
    assert_eq!(
        (history[2].version, history[2].message.as_str()),
        (3, "maintenance")
    );

    // Delete: not listed, nothing live, history and versions kept.
    let mark = store.release_mark().await.expect("mark");
    assert!(store
        .delete_function("managed", "gone", "ada")
        .await
        .expect("delete"));
    assert_ne!(store.release_mark().await.expect("mark"), mark);
    assert!(!store
        .delete_function("managed", "", "")
        .await
        .expect("again"));
    assert!(!store
        .set_offline("managed", true, "", "")
        .await
        .expect("offline"));
    assert!(!store
        .edit_function("managed", None, Some("x"))
        .await
        .expect("edit"));
    let f = info().await;
    assert!(f.deleted_at.is_some());
    assert_eq!((f.live_version, f.versions, f.offline), (None, 3, false));
    let listed = |all: Vec<crate::FunctionRecord>| all.iter().any(|f| f.name == "managed");
    assert!(!listed(store.list_functions().await.expect("list")));
    assert!(listed(store.list_all_functions().await.expect("list")));
    let history = store.releases("managed").await.expect("history");
    assert_eq!(
        (
            history[0].action.as_str(),
            history[0].version,
            history[0].from_version
        ),
        ("delete", 2, Some(2))
    );
    assert_eq!(history.len(), 7);

    // Deploying it again brings it back, its numbers going on.
    let v4 = put("def handler(e): return 4", toml).await;
    assert_eq!(v4.version, 4);
    let f = info().await;
    assert_eq!(
        (f.deleted_at, f.live_version, f.state.as_str(), f.kind),
        (None, None, "draft", FunctionType::Function)
    );
    assert!(listed(store.list_functions().await.expect("list")));
    // Publishing v2 again (while offline) took its description back from
    // its hearth.toml, as v3's had replaced it. v4's says the same as v2's,
    // so an edit made now survives v4's publish.
    assert!(store
        .edit_function("managed", Some("kept"), Some("tools"))
        .await
        .expect("edit"));
    store
        .release("managed", &v4, "publish", "", "")
        .await
        .expect("release");
    let f = info().await;
    assert_eq!(
        (
            f.live_version,
            f.state.as_str(),
            f.description.as_str(),
            f.category.as_str()
        ),
        (Some(4), "live", "kept", "tools")
    );
}

/// Leaves one template, "kept", for the reopen check.
async fn templates_are_saved_listed_and_deleted(store: &dyn Store) {
    assert!(store.templates().await.expect("list").is_empty());
    assert!(store.template("gone").await.expect("get").is_none());
    let record = |name: &str| TemplateRecord {
        name: name.into(),
        description: "greets".into(),
        runtime: "python".into(),
        kind: "function".into(),
        from_function: "hello".into(),
        from_version: 2,
        app: "demo".into(),
        created_at: 1_700_000_000_000,
        created_by: "ada".into(),
    };
    let file = |path: &str, data: &[u8], executable: bool| BundleFile {
        path: path.into(),
        data: data.to_vec(),
        executable,
    };
    // By path, as they are read back.
    let files = vec![
        file("bin/run", &[0, 159, 146, 150], true),
        file(
            "hearth.toml",
            b"name = '{{name}}'\nruntime = 'python'\nentry = 'main.handler'\napp = '{{app}}'\n",
            false,
        ),
        file("main.py", b"def handler(e): return '{{name}}'", false),
    ];
    assert!(store
        .put_template(&record("kept"), &files)
        .await
        .expect("put"));
    assert!(store
        .put_template(&record("gone"), &files[..1])
        .await
        .expect("put"));
    // A name taken: refused, nothing written over.
    let mut other = record("kept");
    other.description = "another".into();
    assert!(!store.put_template(&other, &[]).await.expect("put again"));
    let (got, got_files) = store.template("kept").await.expect("get").expect("exists");
    assert_eq!(got, record("kept"));
    assert_eq!(got_files, files);
    let names: Vec<String> = store
        .templates()
        .await
        .expect("list")
        .into_iter()
        .map(|t| t.name)
        .collect();
    assert_eq!(names, ["gone", "kept"]);
    assert!(store.delete_template("gone").await.expect("delete"));
    assert!(!store.delete_template("gone").await.expect("delete again"));
    assert!(store.template("gone").await.expect("get").is_none());
    // Its files went with it: saving the name again starts empty.
    assert!(store.put_template(&record("gone"), &[]).await.expect("put"));
    let (_, none) = store.template("gone").await.expect("get").expect("exists");
    assert!(none.is_empty());
    assert!(store.delete_template("gone").await.expect("delete"));
}
