//! Pure parsers of the two texts cgroup detection starts from:
//! `/proc/self/mountinfo` (which cgroup hierarchies are mounted where) and
//! `/proc/self/cgroup` (which cgroup the daemon is in, per hierarchy). No
//! file is read here; callers pass the text.

use std::path::PathBuf;

/// One line of `/proc/self/cgroup`: `<hierarchy id>:<controllers>:<path>`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct OwnCgroup {
    /// "0" for the v2 hierarchy.
    pub(crate) id: String,
    /// v1 controllers of the hierarchy (`cpu,cpuacct` gives two;
    /// `name=systemd` is kept as is); empty for v2.
    pub(crate) controllers: Vec<String>,
    /// The daemon's cgroup in that hierarchy, from its root (or from the
    /// cgroup namespace's root).
    pub(crate) path: String,
}

/// The lines of a `/proc/self/cgroup` text; malformed lines are skipped.
pub(crate) fn parse_proc_cgroup(text: &str) -> Vec<OwnCgroup> {
    text.lines()
        .filter_map(|line| {
            // The path may itself contain ':', so split only twice.
            let mut parts = line.splitn(3, ':');
            let id = parts.next()?.to_string();
            let controllers = parts.next()?;
            let path = parts.next()?.to_string();
            Some(OwnCgroup {
                id,
                controllers: controllers
                    .split(',')
                    .filter(|c| !c.is_empty())
                    .map(str::to_string)
                    .collect(),
                path,
            })
        })
        .collect()
}

/// A cgroup filesystem mount from `/proc/self/mountinfo`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct CgroupMount {
    /// The directory of the hierarchy that is mounted (`/` unless a
    /// container bind-mounted a subtree).
    pub(crate) root: String,
    /// Where it is mounted, as the host's absolute path.
    pub(crate) mount_point: PathBuf,
    /// v1: the controllers of the hierarchy (from the super options).
    pub(crate) controllers: Vec<String>,
    pub(crate) v2: bool,
}

/// The cgroup mounts in `mountinfo` (format: proc(5)); other mounts and
/// malformed lines are skipped.
pub(crate) fn parse_mountinfo(text: &str) -> Vec<CgroupMount> {
    text.lines()
        .filter_map(|line| {
            // Optional fields end with a lone "-"; then fstype, source,
            // super options.
            let (left, right) = line.split_once(" - ")?;
            let mut left = left.split(' ');
            let root = unescape_octal(left.nth(3)?);
            let mount_point = PathBuf::from(unescape_octal(left.next()?));
            let mut right = right.split(' ');
            let fstype = right.next()?;
            let _source = right.next()?;
            let options = right.next().unwrap_or("");
            let v2 = match fstype {
                "cgroup" => false,
                "cgroup2" => true,
                _ => return None,
            };
            let controllers = if v2 {
                Vec::new()
            } else {
                options
                    .split(',')
                    .filter(|o| !matches!(*o, "rw" | "ro") && !o.contains('='))
                    .map(str::to_string)
                    .collect()
            };
            Some(CgroupMount {
                root,
                mount_point,
                controllers,
                v2,
            })
        })
        .collect()
}

/// mountinfo escapes space, tab, newline and backslash as `\ooo`.
pub(crate) fn unescape_octal(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'\\' && i + 3 < bytes.len() {
            let digits = &bytes[i + 1..i + 4];
            if digits.iter().all(|d| (b'0'..=b'7').contains(d)) {
                let value = digits
                    .iter()
                    .fold(0u32, |acc, d| acc * 8 + u32::from(d - b'0'));
                if let Ok(byte) = u8::try_from(value) {
                    out.push(byte);
                    i += 4;
                    continue;
                }
            }
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// `path` (a cgroup path from /proc/self/cgroup) relative to a mount's
/// `root`, or `None` if the mount does not show it (a path outside the
/// mounted subtree, or with `..`, as seen from another cgroup namespace).
pub(crate) fn relative_to<'a>(path: &'a str, root: &str) -> Option<&'a str> {
    if path.split('/').any(|p| p == "..") {
        return None;
    }
    let rest = if root == "/" {
        path
    } else {
        path.strip_prefix(root.trim_end_matches('/'))?
    };
    if !(rest.is_empty() || rest.starts_with('/')) {
        return None;
    }
    Some(rest.trim_start_matches('/'))
}

#[cfg(test)]
pub(crate) mod samples {
    //! Texts of real hosts, for these tests and the fixture tests.

    /// A cgroup v1 host (this project's CI machine): one hierarchy per
    /// controller, the daemon in a memory cgroup of its own, and an
    /// unused cgroup2 at `unified`.
    pub(crate) const V1_MOUNTINFO: &str = "\
22 28 0:20 / /proc rw,nosuid,nodev,noexec,relatime - proc proc rw
31 23 0:28 / /sys/fs/cgroup rw,relatime - tmpfs tmpfs rw,mode=755
32 31 0:29 / /sys/fs/cgroup/cpu rw,relatime - cgroup cgroup rw,cpu
33 31 0:30 / /sys/fs/cgroup/cpuacct rw,relatime - cgroup cgroup rw,cpuacct
35 31 0:32 / /sys/fs/cgroup/memory rw,relatime - cgroup cgroup rw,memory
37 31 0:34 / /sys/fs/cgroup/freezer rw,relatime - cgroup cgroup rw,freezer
39 31 0:36 / /sys/fs/cgroup/pids rw,relatime - cgroup cgroup rw,pids
40 31 0:37 / /sys/fs/cgroup/systemd rw,relatime - cgroup cgroup rw,name=systemd
41 31 0:38 / /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw
";

    /// `/proc/self/cgroup` on [`V1_MOUNTINFO`]'s host.
    pub(crate) const V1_PROC_CGROUP: &str = "\
9:name=systemd:/
8:pids:/
6:freezer:/
4:memory:/process_api/95aed931
2:cpuacct:/
1:cpu:/
0::/
";

    /// A cgroup v2 host under systemd, the daemon in its own service.
    pub(crate) const V2_MOUNTINFO: &str = "\
24 30 0:22 / /sys rw,nosuid,nodev,noexec,relatime shared:7 - sysfs sysfs rw
29 24 0:26 / /sys/fs/cgroup rw,nosuid,nodev,noexec,relatime shared:4 - cgroup2 cgroup2 rw,nsdelegate,memory_recursiveprot
30 1 8:1 / / rw,relatime shared:1 - ext4 /dev/sda1 rw
";

    /// `/proc/self/cgroup` on [`V2_MOUNTINFO`]'s host.
    pub(crate) const V2_PROC_CGROUP: &str = "0::/system.slice/hearth.service\n";

    /// A hybrid host (systemd's "hybrid" mode): v1 controllers, with
    /// systemd's own tree on a cgroup2 mount at `unified`.
    pub(crate) const HYBRID_MOUNTINFO: &str = "\
25 24 0:23 / /sys/fs/cgroup ro,nosuid,nodev,noexec shared:9 - tmpfs tmpfs ro,mode=755
26 25 0:24 / /sys/fs/cgroup/unified rw,nosuid,nodev,noexec,relatime shared:10 - cgroup2 cgroup2 rw,nsdelegate
27 25 0:25 / /sys/fs/cgroup/systemd rw,nosuid,nodev,noexec,relatime shared:11 - cgroup cgroup rw,xattr,name=systemd
30 25 0:28 / /sys/fs/cgroup/cpu,cpuacct rw,nosuid,nodev,noexec,relatime shared:14 - cgroup cgroup rw,cpu,cpuacct
31 25 0:29 / /sys/fs/cgroup/memory rw,nosuid,nodev,noexec,relatime shared:15 - cgroup cgroup rw,memory
33 25 0:31 / /sys/fs/cgroup/pids rw,nosuid,nodev,noexec,relatime shared:17 - cgroup cgroup rw,pids
";

    /// `/proc/self/cgroup` on [`HYBRID_MOUNTINFO`]'s host.
    pub(crate) const HYBRID_PROC_CGROUP: &str = "\
12:pids:/system.slice/hearth.service
5:memory:/system.slice/hearth.service
3:cpu,cpuacct:/system.slice/hearth.service
1:name=systemd:/system.slice/hearth.service
0::/system.slice/hearth.service
";
}

#[cfg(test)]
mod tests {
    use super::samples::*;
    use super::*;
    use std::path::Path;

    #[test]
    fn parses_proc_cgroup() {
        let text = "12:cpu,cpuacct:/system.slice/x.service\n\
                    4:memory:/process_api/0234e\n\
                    9:name=systemd:/\n\
                    0::/user.slice/a:b\n";
        let own = parse_proc_cgroup(text);
        assert_eq!(own.len(), 4);
        assert_eq!(own[0].controllers, ["cpu", "cpuacct"]);
        assert_eq!(own[0].path, "/system.slice/x.service");
        assert_eq!(own[3].id, "0");
        assert!(own[3].controllers.is_empty());
        assert_eq!(own[3].path, "/user.slice/a:b");
    }

    #[test]
    fn parses_mountinfo() {
        let text = "\
31 23 0:28 / /sys/fs/cgroup rw,relatime - tmpfs tmpfs rw,mode=755
32 31 0:29 / /sys/fs/cgroup/cpu,cpuacct rw,relatime shared:9 - cgroup cgroup rw,cpu,cpuacct
35 31 0:32 /docker/abc /sys/fs/cgroup/mem\\040ory rw - cgroup cgroup ro,memory
40 31 0:37 / /sys/fs/cgroup/systemd rw - cgroup cgroup rw,xattr,name=systemd
41 31 0:38 / /sys/fs/cgroup/unified rw - cgroup2 cgroup2 rw,nsdelegate
";
        let mounts = parse_mountinfo(text);
        assert_eq!(mounts.len(), 4);
        assert_eq!(mounts[0].controllers, ["cpu", "cpuacct"]);
        assert_eq!(
            mounts[0].mount_point,
            Path::new("/sys/fs/cgroup/cpu,cpuacct")
        );
        assert_eq!(mounts[1].root, "/docker/abc");
        assert_eq!(mounts[1].mount_point, Path::new("/sys/fs/cgroup/mem ory"));
        assert_eq!(mounts[1].controllers, ["memory"]);
        assert_eq!(mounts[2].controllers, ["xattr"]);
        assert!(mounts[3].v2);
    }

    #[test]
    fn relative_paths() {
        assert_eq!(relative_to("/a/b", "/"), Some("a/b"));
        assert_eq!(relative_to("/", "/"), Some(""));
        assert_eq!(relative_to("/docker/abc/x", "/docker/abc"), Some("x"));
        assert_eq!(relative_to("/docker/abc", "/docker/abc"), Some(""));
        assert_eq!(relative_to("/docker/abcd", "/docker/abc"), None);
        assert_eq!(relative_to("/other", "/docker/abc"), None);
        assert_eq!(relative_to("/../..", "/"), None);
    }

    #[test]
    fn unescapes_octal() {
        assert_eq!(unescape_octal("a\\040b\\134c\\04"), "a b\\c\\04");
        assert_eq!(unescape_octal("tab\\011end"), "tab\tend");
        assert_eq!(unescape_octal("\\999"), "\\999");
    }

    #[test]
    fn v1_host() {
        let mounts = parse_mountinfo(V1_MOUNTINFO);
        let points: Vec<&Path> = mounts.iter().map(|m| m.mount_point.as_path()).collect();
        assert_eq!(
            points,
            [
                "/sys/fs/cgroup/cpu",
                "/sys/fs/cgroup/cpuacct",
                "/sys/fs/cgroup/memory",
                "/sys/fs/cgroup/freezer",
                "/sys/fs/cgroup/pids",
                "/sys/fs/cgroup/systemd",
                "/sys/fs/cgroup/unified",
            ]
            .map(Path::new)
        );
        assert_eq!(mounts[2].controllers, ["memory"]);
        assert!(mounts.iter().all(|m| m.root == "/"));
        assert_eq!(mounts.iter().filter(|m| m.v2).count(), 1);
        assert!(
            mounts[5].controllers.is_empty(),
            "name=systemd is no controller"
        );
        let own = parse_proc_cgroup(V1_PROC_CGROUP);
        let memory = own
            .iter()
            .find(|l| l.controllers == ["memory"])
            .expect("memory line");
        assert_eq!(memory.id, "4");
        assert_eq!(
            relative_to(&memory.path, &mounts[2].root),
            Some("process_api/95aed931")
        );
        assert_eq!(
            own.last().map(|l| (l.id.as_str(), l.path.as_str())),
            Some(("0", "/"))
        );
    }

    #[test]
    fn v2_host() {
        let mounts = parse_mountinfo(V2_MOUNTINFO);
        assert_eq!(mounts.len(), 1, "{mounts:?}");
        assert!(mounts[0].v2);
        assert!(mounts[0].controllers.is_empty());
        assert_eq!(mounts[0].mount_point, Path::new("/sys/fs/cgroup"));
        let own = parse_proc_cgroup(V2_PROC_CGROUP);
        assert_eq!(
            own,
            [OwnCgroup {
                id: "0".into(),
                controllers: Vec::new(),
                path: "/system.slice/hearth.service".into(),
            }]
        );
        assert_eq!(
            relative_to(&own[0].path, &mounts[0].root),
            Some("system.slice/hearth.service")
        );
    }

    #[test]
    fn hybrid_host() {
        let mounts = parse_mountinfo(HYBRID_MOUNTINFO);
        assert_eq!(mounts.len(), 5, "the tmpfs is not a cgroup mount");
        assert!(mounts[0].v2);
        assert_eq!(mounts[0].mount_point, Path::new("/sys/fs/cgroup/unified"));
        assert_eq!(mounts[2].controllers, ["cpu", "cpuacct"]);
        assert_eq!(mounts[3].controllers, ["memory"]);
        assert_eq!(mounts[4].controllers, ["pids"]);
        let own = parse_proc_cgroup(HYBRID_PROC_CGROUP);
        assert_eq!(own.len(), 5);
        assert_eq!(own[2].controllers, ["cpu", "cpuacct"]);
        assert!(own.iter().all(|l| l.path == "/system.slice/hearth.service"));
    }

    #[test]
    fn container_subtree_and_junk() {
        // A container sees its own subtree mounted at the usual place; a
        // cgroup outside it is not reachable through the mount.
        let text = "\
900 800 0:40 /docker/abc /sys/fs/cgroup/memory ro,nosuid - cgroup cgroup ro,memory
not a mountinfo line
901 800 0:41 / /sys/fs/cgroup rw - cgroup2
";
        let mounts = parse_mountinfo(text);
        assert_eq!(mounts.len(), 1, "{mounts:?}");
        assert_eq!(relative_to("/docker/abc/w", &mounts[0].root), Some("w"));
        assert_eq!(relative_to("/", &mounts[0].root), None);
        let own = parse_proc_cgroup("junk\n4:memory\n0::/\n");
        assert_eq!(own.len(), 1);
        assert_eq!(own[0].path, "/");
    }
}
