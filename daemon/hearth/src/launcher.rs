//! `hearth __exec-worker RUNTIME VERSION INTERPRETER [ARGS...]`: a worker
//! started before its function is known, for a runtime that cannot become
//! the function's user by itself (Lua has no setuid).
//!
//! The daemon starts it like any generic worker (in its own cgroup, its
//! namespaces, with a private /tmp: what costs time is paid ahead of need).
//! It answers `ready` for the runtime, waits for the `load` message, then
//! takes the function's user and group, working directory and environment
//! and execs the interpreter, passing the `load` on
//! (`--load HEX-OF-THE-FRAME-BODY`): the shim answers it as if it had read
//! it (PROTOCOL.md, "Generic workers"). The daemon sees an ordinary generic
//! worker. Nothing here allocates after a failure it cannot report; every
//! failure exits with a message on stderr (the worker's log).

use std::ffi::{CString, OsString};
use std::io::{Read, Write};
use std::os::fd::FromRawFd;
use std::os::unix::ffi::OsStrExt;
use std::process::ExitCode;

use hearth_protocol::{FromWorker, ToWorker, PROTOCOL_VERSION};
use hearth_sandbox::isolation::{take_identity, CHILD_IN_FD as IN_FD, CHILD_OUT_FD as OUT_FD};

pub use hearth_engine::pool::EXEC_WORKER as SUBCOMMAND;

fn fail(why: String) -> ExitCode {
    eprintln!("hearth worker launcher: {why}");
    ExitCode::from(70)
}

/// Run the launcher with the arguments after the subcommand.
pub fn main(args: &[OsString]) -> ExitCode {
    let [runtime, version, interpreter, rest @ ..] = args else {
        return fail(format!(
            "usage: hearth {SUBCOMMAND} RUNTIME VERSION INTERPRETER [ARGS...] (the daemon starts this)"
        ));
    };
    // SAFETY: fds 3 and 4 are the protocol pipes the daemon gave this
    // process; nothing else in it owns them.
    let mut input = unsafe { std::fs::File::from_raw_fd(IN_FD) };
    let mut output = unsafe { std::fs::File::from_raw_fd(OUT_FD) };
    let ready = FromWorker::Ready {
        protocol: PROTOCOL_VERSION,
        runtime: runtime.to_string_lossy().into_owned(),
        runtime_version: version.to_string_lossy().into_owned(),
        pid: std::process::id(),
    };
    match hearth_protocol::encode(&ready) {
        Ok(frame) => {
            if let Err(e) = output.write_all(&frame) {
                return fail(format!("cannot write `ready`: {e}"));
            }
        }
        Err(e) => return fail(format!("cannot encode `ready`: {e}")),
    }
    let mut head = [0u8; 4];
    if let Err(e) = input.read_exact(&mut head) {
        // The daemon let it go (shutdown, idle generic worker ended).
        return if e.kind() == std::io::ErrorKind::UnexpectedEof {
            ExitCode::SUCCESS
        } else {
            fail(format!("cannot read the protocol pipe: {e}"))
        };
    }
    let len = u32::from_be_bytes(head) as usize;
    if len > hearth_protocol::MAX_FRAME {
        return fail(format!("a frame of {len} bytes is over the limit"));
    }
    let mut body = vec![0u8; len];
    if let Err(e) = input.read_exact(&mut body) {
        return fail(format!("cannot read the `load` message: {e}"));
    }
    let message: ToWorker = match hearth_protocol::decode(&body) {
        Ok(m) => m,
        Err(e) => return fail(format!("cannot decode the first message: {e}")),
    };
    let ToWorker::Load {
        dir,
        env,
        uid,
        gid,
        tmp,
        ..
    } = message
    else {
        return fail("the first message is not `load`".into());
    };
    // The pipes stay open across exec; they become the function user's (a
    // runtime may reopen them by path, as Lua does with /dev/fd/3).
    std::mem::forget(input);
    std::mem::forget(output);
    if let (Some(uid), Some(gid)) = (uid, gid) {
        if let Err(why) = become_user(uid, gid) {
            return fail(why);
        }
    }
    if let Err(e) = std::env::set_current_dir(&dir) {
        return fail(format!("cannot enter {dir}: {e}"));
    }
    for (k, v) in &env {
        std::env::set_var(k, v);
    }
    if let Some(tmp) = tmp.as_deref().filter(|t| !t.is_empty()) {
        for key in ["TMPDIR", "TMP", "TEMP", "HOME"] {
            std::env::set_var(key, tmp);
        }
    }
    let mut argv: Vec<CString> = Vec::with_capacity(rest.len() + 3);
    for a in std::iter::once(interpreter).chain(rest.iter()) {
        match CString::new(a.as_bytes()) {
            Ok(c) => argv.push(c),
            Err(_) => return fail("an argument holds a NUL byte".into()),
        }
    }
    argv.push(c"--load".to_owned());
    argv.push(CString::new(hex(&body)).unwrap_or_default());
    let Ok(path) = CString::new(interpreter.as_bytes()) else {
        return fail("the interpreter's path holds a NUL byte".into());
    };
    let err = match nix::unistd::execv(&path, &argv) {
        Ok(never) => match never {},
        Err(e) => e,
    };
    fail(format!(
        "cannot start {}: {err}",
        interpreter.to_string_lossy()
    ))
}

/// Take the function's user and group for good (no supplementary groups),
/// then ask again to be killed with the daemon (a change of credentials
/// clears that).
fn become_user(uid: u32, gid: u32) -> Result<(), String> {
    // SAFETY: plain system calls on this process's own descriptors and
    // credentials.
    unsafe {
        take_identity(uid, gid).map_err(|e| format!("cannot become uid {uid} gid {gid}: {e}"))?;
        if libc::getuid() != uid || libc::geteuid() != uid || libc::getegid() != gid {
            return Err(format!("still not uid {uid} gid {gid} after the switch"));
        }
        if uid != 0 && libc::setuid(0) == 0 {
            return Err(format!(
                "could become root again after switching to uid {uid}"
            ));
        }
        if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL) < 0 {
            return Err(format!(
                "cannot ask to end with the daemon: {}",
                std::io::Error::last_os_error()
            ));
        }
        // The daemon may have died before the request above.
        if libc::getppid() == 1 {
            return Err("the daemon is gone".into());
        }
    }
    Ok(())
}

fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut out = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        out.push(DIGITS[(b >> 4) as usize] as char);
        out.push(DIGITS[(b & 15) as usize] as char);
    }
    out
}
