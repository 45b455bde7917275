//! Tests of the cgroup module. `host` runs on the real cgroupfs (as root,
//! skipping otherwise); `v1` and `v2` run the back ends on fake cgroupfs
//! trees built by `fixture`, as any user.

mod fixture;
mod host;
mod v1;
mod v2;

use super::tree::app_rel;
use super::v1::capped;
use super::*;
use crate::cgroup::fs::keyed_value;

#[test]
fn handles_are_send_and_sync() {
    fn check<T: Send + Sync>() {}
    check::<Cgroups>();
    check::<WorkerCgroup>();
    check::<CgroupError>();
}

#[test]
fn small_helpers() {
    assert_eq!(
        keyed_value("low 0\nhigh 2\noom_kill 3\n", "oom_kill"),
        Some(3)
    );
    assert_eq!(keyed_value("oom_kill_disable 0\n", "oom_kill"), None);
    assert_eq!(quota_us(0), -1);
    assert_eq!(quota_us(1000), 100_000);
    assert_eq!(quota_us(250), 25_000);
    assert_eq!(quota_us(1), MIN_CPU_QUOTA_US);
    assert_eq!(capped(-1, 50_000), 50_000);
    assert_eq!(capped(100_000, 50_000), 50_000);
    assert_eq!(capped(20_000, -1), 20_000);
    assert!(app_rel("page-title").is_ok());
    for bad in ["", "..", ".x", "a/b", "a b", &"x".repeat(201)] {
        assert!(app_rel(bad).is_err(), "{bad:?} accepted");
    }
    assert_eq!(memory_bytes(0), None);
    assert_eq!(memory_bytes(2), Some(2 << 20));
}
