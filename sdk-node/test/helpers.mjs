// Shared by the tests: the daemon they run against, and function directories.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';

export const ADDR = process.env.HEARTH_ADDR;
export const TOKEN = process.env.HEARTH_TOKEN;

/** Why the tests that need a daemon are skipped, or false. */
export const noDaemon =
  ADDR && TOKEN
    ? false
    : 'HEARTH_ADDR and HEARTH_TOKEN are not set: these tests need a running hearth (tests/sdk_node.rs starts one)';

const run = `${process.pid.toString(36)}${Date.now().toString(36).slice(-4)}`;

/** A function name unique to this run. */
export function fname(base) {
  return `sdkn-${base}-${run}`;
}

/** A Python function directory: hearth.toml + main.py (+ extra files). */
export function pyDir(name, code, { limits = '', files = {} } = {}) {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'hearth-sdk-'));
  fs.writeFileSync(
    path.join(dir, 'hearth.toml'),
    `name = "${name}"\nruntime = "python"\nentry = "main.handler"\napp = "sdk-node"\n` +
      (limits ? `\n[limits]\n${limits}\n` : ''),
  );
  fs.writeFileSync(path.join(dir, 'main.py'), code);
  for (const [p, content] of Object.entries(files)) {
    fs.mkdirSync(path.dirname(path.join(dir, p)), { recursive: true });
    fs.writeFileSync(path.join(dir, p), content);
  }
  return dir;
}

export const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

/** Wait up to `ms` for `cond()` (async) to be truthy; returns its value. */
export async function eventually(ms, cond) {
  const end = Date.now() + ms;
  for (;;) {
    const v = await cond();
    if (v || Date.now() > end) return v;
    await sleep(50);
  }
}
