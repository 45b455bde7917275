// A function that misbehaves on request: `event.mode` picks the fault.
// Every fault is bounded so that it cannot harm the test machine when the
// daemon's limits are missing: bombs stop at `event.max` and their children
// end by themselves after `event.linger` seconds.
'use strict';

const childProcess = require('child_process');
const fs = require('fs');
const net = require('net');
const os = require('os');
const path = require('path');

const MB = 1024 * 1024;

const modes = {
  ok: () => ({ ok: true, pid: process.pid }),

  // Burn CPU until killed. With ignore_term a SIGTERM listener is installed:
  // it never gets to run during the busy loop, so only SIGKILL ends the
  // worker. With child, a child in a session of its own shares stdout and
  // stderr (only a whole-tree kill ends that one).
  loop: (event) => {
    if (event.ignore_term) {
      process.on('SIGTERM', () => fs.writeSync(2, 'chaos: got SIGTERM, ignoring it\n'));
    }
    if (event.child) {
      const child = childProcess.spawn('sleep', [String(event.linger ?? 60)], {
        detached: true,
        stdio: 'inherit',
      });
      fs.writeSync(2, `chaos: sleeping child ${child.pid}\n`);
    }
    const end = Date.now() + (event.seconds ?? 60) * 1000;
    while (Date.now() < end) {
      // spin
    }
    return { looped: true };
  },

  sleep: (event) =>
    new Promise((resolve) => setTimeout(() => resolve({ slept: true }), (event.seconds ?? 60) * 1000)),

  // Allocate and touch `mb` MiB outside the JS heap, one MiB at a time.
  alloc: (event) => {
    const chunks = [];
    for (let i = 0; i < (event.mb ?? 512); i++) chunks.push(Buffer.alloc(MB, 1));
    return { allocated_mb: chunks.length };
  },

  // Start processes until that fails (the error propagates) or `max` run.
  forkbomb: async (event) => {
    let started = 0;
    for (let i = 0; i < (event.max ?? 256); i++) {
      await new Promise((resolve, reject) => {
        const child = childProcess.spawn('sleep', [String(event.linger ?? 30)], {
          detached: true,
          stdio: 'ignore',
        });
        child.once('spawn', resolve);
        child.once('error', reject);
        child.unref();
      });
      started++;
    }
    return { forked: started };
  },

  segv: () => {
    process.abort();
  },

  exit: (event) => {
    process.exit(event.status ?? 3);
  },

  // Bytes that are not a protocol frame on the protocol pipe, then wait: the
  // daemon must notice the garbage, not the timeout.
  garbage: (event) => {
    fs.writeSync(4, Buffer.from([0, 0, 0, 8, 0xc1, 0xc1, 0xc1, 0xc1, 0xc1, 0xc1, 0xc1, 0xc1]));
    return modes.sleep({ seconds: event.seconds ?? 30 });
  },

  closefds: () => {
    fs.closeSync(3);
    fs.closeSync(4);
    return { closed: [3, 4] };
  },

  stdout100mb: (event) => {
    const block = ('x'.repeat(1023) + '\n').repeat(1024);
    const mb = event.mb ?? 100;
    for (let i = 0; i < mb; i++) process.stdout.write(block);
    return { printed_mb: mb };
  },

  big_response: (event) => 'x'.repeat((event.kb ?? 2048) * 1024),

  // Leave a process running after the call (in a session of its own).
  child: (event) => {
    const child = childProcess.spawn('sleep', [String(event.seconds ?? 1000)], {
      detached: true,
      stdio: 'ignore',
    });
    child.unref();
    return { child: child.pid, pid: process.pid };
  },

  // Try each path: read, list, write; write a file in the temp dir and one in
  // /tmp; report identity and temp dir.
  probe: (event) => {
    const outcome = (action) => {
      try {
        action();
        return 'allowed';
      } catch (err) {
        if (['EACCES', 'EPERM', 'EROFS'].includes(err.code)) return 'denied';
        return `${err.code}: ${err.message}`;
      }
    };
    const each = (paths, action) =>
      Object.fromEntries((paths ?? []).map((p) => [p, outcome(() => action(p))]));
    const result = {
      read: each(event.read, (p) => fs.readFileSync(p)),
      list: each(event.list, (p) => fs.readdirSync(p)),
      write: each(event.write, (p) => {
        fs.writeFileSync(p, 'chaos was here\n');
        fs.unlinkSync(p);
      }),
    };
    if (event.tmp_name) {
      // Left in place, for the test to find where they landed.
      result.tmp_write = {};
      for (const [label, where] of [['tmpdir', os.tmpdir()], ['slash_tmp', '/tmp']]) {
        const p = path.join(where, `${event.tmp_name}-${label}`);
        fs.writeFileSync(p, 'private');
        result.tmp_write[label] = fs.readFileSync(p, 'utf8');
      }
    }
    result.identity = {
      uid: process.getuid(),
      gid: process.getgid(),
      pid: process.pid,
      tmpdir: process.env.TMPDIR ?? '',
      gettempdir: os.tmpdir(),
      cgroup: fs.readFileSync('/proc/self/cgroup', 'utf8'),
    };
    return result;
  },

  connect: (event) =>
    new Promise((resolve) => {
      const socket = net.connect({ host: event.host, port: event.port, timeout: 1000 });
      socket.once('connect', () => {
        socket.destroy();
        resolve('connected');
      });
      socket.once('error', (err) => resolve(`${err.code}: ${err.message}`));
      socket.once('timeout', () => {
        socket.destroy();
        resolve('timeout');
      });
    }),
};

exports.handler = async (event) => {
  const mode = event.mode ?? 'ok';
  const fault = modes[mode];
  if (!fault) throw new Error(`unknown mode ${mode}; known: ${Object.keys(modes).sort().join(', ')}`);
  return fault(event);
};
