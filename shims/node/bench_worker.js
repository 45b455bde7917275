'use strict';
// Time the Node worker as the daemon sees it:
//   - start to ready: spawn `node hearth_worker.js` with the daemon's clean
//     environment until its `ready` frame arrives (and, as a floor, a bare
//     `node -e` writing one byte to fd 4);
//   - a warm worker: invoke -> result round trips with a small payload, and
//     with an 8 MiB string echoed back.
//
//   node shims/node/bench_worker.js [spawns=30] [round_trips=20000]

const { spawn } = require('child_process');
const fs = require('fs');
const os = require('os');
const path = require('path');
const { FrameReader, encodeFrame } = require('./hearth_worker');

const WORKER = path.join(__dirname, 'hearth_worker.js');
const SPAWNS = Number(process.argv[2] || 30);
const ROUND_TRIPS = Number(process.argv[3] || 20000);

function cleanEnv() {
  const tmp = os.tmpdir();
  return { PATH: '/usr/local/bin:/usr/bin:/bin', LANG: 'C.UTF-8', HOME: tmp, TMPDIR: tmp, HEARTH_PROTOCOL: '1', HEARTH_FUNCTION: 'bench', HEARTH_VERSION: '1' };
}

/** Spawn `args` with fds 3 and 4 as pipes; resolves with ms until the first byte on fd 4. */
function timeToFirstByte(args) {
  return new Promise((resolve, reject) => {
    const started = process.hrtime.bigint();
    const child = spawn(process.execPath, args, { stdio: ['ignore', 'ignore', 'inherit', 'pipe', 'pipe'], env: cleanEnv() });
    child.stdio[4].once('data', () => {
      resolve(Number(process.hrtime.bigint() - started) / 1e6);
      child.stdio[3].end();
    });
    child.on('error', reject);
  });
}

function summary(ms) {
  const s = [...ms].sort((a, b) => a - b);
  const at = (q) => s[Math.min(s.length - 1, Math.floor(q * s.length))].toFixed(1);
  return `min ${s[0].toFixed(1)} ms, median ${at(0.5)} ms, p90 ${at(0.9)} ms (${s.length} runs)`;
}

async function startToReady() {
  const floor = [];
  const ready = [];
  for (let i = 0; i < SPAWNS; i++) {
    floor.push(await timeToFirstByte(['-e', "require('fs').writeSync(4, 'x')"]));
    ready.push(await timeToFirstByte([WORKER]));
  }
  console.log(`node ${process.version}, ${os.cpus().length} CPUs`);
  console.log(`bare node -e, spawn -> first byte on fd 4: ${summary(floor)}`);
  console.log(`hearth_worker.js, spawn -> ready frame:    ${summary(ready)}`);
}

/** A worker loaded with an echo handler; `call(message)` resolves with the reply. */
async function echoWorker() {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'hearth-node-bench-'));
  fs.writeFileSync(path.join(dir, 'main.js'), 'exports.handler = (event) => event;');
  const child = spawn(process.execPath, [WORKER], { stdio: ['ignore', 'inherit', 'inherit', 'pipe', 'pipe'], env: cleanEnv() });
  const waiting = [];
  const reader = new FrameReader((message) => waiting.shift()(message));
  child.stdio[4].on('data', (chunk) => reader.push(chunk));
  const call = (message) =>
    new Promise((resolve) => {
      waiting.push(resolve);
      if (message) child.stdio[3].write(encodeFrame(message));
    });
  await call(null); // ready
  const loaded = await call({ t: 'load', id: 'l', dir, entry: 'main.handler', function: 'bench', version: 1, timeout_ms: 1000, memory_mb: 128 });
  if (loaded.t !== 'loaded') throw new Error(JSON.stringify(loaded));
  const close = () => {
    child.stdio[3].end();
    fs.rmSync(dir, { recursive: true, force: true });
  };
  return { call, close };
}

async function roundTrips() {
  const w = await echoWorker();
  const deadline = Date.now() + 3600000;
  const small = { name: 'Ada' };
  for (let i = 0; i < 2000; i++) await w.call({ t: 'invoke', id: 'w' + i, deadline_ms: deadline, payload: small });
  let t0 = process.hrtime.bigint();
  for (let i = 0; i < ROUND_TRIPS; i++) {
    await w.call({ t: 'invoke', id: '5f3a' + String(i).padStart(12, '0'), deadline_ms: deadline, payload: small });
  }
  let us = Number(process.hrtime.bigint() - t0) / 1e3 / ROUND_TRIPS;
  console.log(`warm invoke -> result, small payload: ${us.toFixed(1)} µs per round trip (${Math.round(1e6 / us)}/s, ${ROUND_TRIPS} sequential)`);

  t0 = process.hrtime.bigint();
  for (let i = 0; i < ROUND_TRIPS; i++) await w.call({ t: 'ping', id: 'p' + i });
  us = Number(process.hrtime.bigint() - t0) / 1e3 / ROUND_TRIPS;
  console.log(`ping -> pong: ${us.toFixed(1)} µs per round trip`);

  const big = { body: 'x'.repeat(8 * 1024 * 1024) };
  const times = [];
  for (let i = 0; i < 10; i++) {
    t0 = process.hrtime.bigint();
    const reply = await w.call({ t: 'invoke', id: 'big' + i, deadline_ms: deadline, payload: big });
    times.push(Number(process.hrtime.bigint() - t0) / 1e6);
    if (reply.value.body.length !== big.body.length) throw new Error('8 MiB echo came back wrong');
  }
  console.log(`8 MiB string echo (encode, pipe, decode, handler, encode, pipe, decode): ${summary(times)}`);
  w.close();
}

(async () => {
  await startToReady();
  await roundTrips();
})();
