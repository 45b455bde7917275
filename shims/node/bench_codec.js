'use strict';
// Compare MessagePack codecs for the hearth Node shim: ./codec.js (ours, no
// dependencies) against msgpackr and @msgpack/msgpack when they can be
// required. The shim itself never needs them; to include them in the run:
//
//   npm install --prefix /tmp/hearth-codec-bench msgpackr @msgpack/msgpack
//   NODE_PATH=/tmp/hearth-codec-bench/node_modules node shims/node/bench_codec.js
//
// Prints encode, decode and encode+decode operations per second for each
// case, and whether each codec writes the protocol vectors byte for byte.
// BENCH_SECONDS (default 1) is the time spent per measurement.

const fs = require('fs');
const path = require('path');
const own = require('./codec');

const SECONDS = Number(process.env.BENCH_SECONDS || 1);

function optional(name) {
  try {
    return require(name);
  } catch {
    return null;
  }
}

const codecs = [{ name: 'codec.js', encode: (v) => own.encode(v), decode: (b) => own.decode(b) }];

const msgpackr = optional('msgpackr');
if (msgpackr) {
  const packr = new msgpackr.Packr({ useRecords: false, variableMapSize: true, int64AsType: 'auto' });
  const version = optional('msgpackr/package.json');
  codecs.push({
    name: `msgpackr ${version ? version.version : ''}${msgpackr.isNativeAccelerationEnabled ? ' (native)' : ''}`,
    encode: (v) => packr.pack(v),
    decode: (b) => packr.unpack(b),
  });
}

const msgpack = optional('@msgpack/msgpack');
if (msgpack) {
  const encoder = new msgpack.Encoder({ useBigInt64: true });
  const decoder = new msgpack.Decoder({ useBigInt64: true });
  const version = optional('@msgpack/msgpack/package.json');
  codecs.push({
    name: `@msgpack/msgpack ${version ? version.version : ''}`,
    encode: (v) => encoder.encode(v),
    decode: (b) => decoder.decode(b),
  });
}

// ---- the cases

const EIGHT_MIB = 8 * 1024 * 1024;

const smallInvoke = {
  t: 'invoke',
  id: '5f3a000000000001',
  deadline_ms: 1800000000000,
  payload: { name: 'Ada' },
};

const bigString = {
  t: 'invoke',
  id: '5f3a000000000002',
  deadline_ms: 1800000000000,
  payload: { body: 'x'.repeat(EIGHT_MIB) },
};

const unicodeUnit = 'héllo ☃ 🔥 ';
const bigUnicode = {
  t: 'invoke',
  id: '5f3a000000000003',
  deadline_ms: 1800000000000,
  payload: { body: unicodeUnit.repeat(Math.floor(EIGHT_MIB / Buffer.byteLength(unicodeUnit))) },
};

// One map with many small entries, about 8 MiB encoded.
// Each entry encodes to about 60 bytes; sized from a sample of 1024.
function entry(i) {
  return { id: i, name: 'name ' + i, score: i + 0.5, active: i % 2 === 0, tags: ['a', 'b'] };
}
const sample = {};
for (let i = 0; i < 1024; i++) sample['user-' + i] = entry(i);
const entryCount = Math.ceil((EIGHT_MIB / own.encode(sample).length) * 1024);
const entries = {};
for (let i = 0; i < entryCount; i++) entries['user-' + i] = entry(i);
const bigMap = { t: 'invoke', id: '5f3a000000000004', deadline_ms: 1800000000000, payload: entries };

const cases = [
  { name: 'small invoke frame', value: smallInvoke },
  { name: '8 MiB ASCII string', value: bigString },
  { name: '8 MiB UTF-8 string', value: bigUnicode },
  { name: `map of ${Object.keys(entries).length} small entries`, value: bigMap },
];

// ---- measuring

function rate(fn) {
  // Warm up, then run batches until SECONDS have passed.
  const warm = Date.now() + 200 * SECONDS;
  let batch = 1;
  while (Date.now() < warm) {
    for (let i = 0; i < batch; i++) fn();
    if (batch < 1 << 16) batch *= 2;
  }
  let ops = 0;
  const t0 = process.hrtime.bigint();
  const stop = t0 + BigInt(Math.round(SECONDS * 1e9));
  let now = t0;
  while (now < stop) {
    for (let i = 0; i < batch; i++) fn();
    ops += batch;
    now = process.hrtime.bigint();
    // keep each batch around 10 ms
    const per = Number(now - t0) / ops;
    batch = Math.max(1, Math.round(1e7 / per));
  }
  return ops / (Number(now - t0) / 1e9);
}

function fmt(x) {
  if (x >= 1e6) return (x / 1e6).toFixed(2) + ' M/s';
  if (x >= 1e3) return (x / 1e3).toFixed(1) + ' k/s';
  return x.toFixed(1) + ' /s';
}

let sink = 0;
function main() {
  console.log(`node ${process.version}, ${SECONDS}s per figure`);
  for (const c of cases) {
    const size = own.encode(c.value).length;
    console.log(`\n${c.name} (${size} bytes)`);
    console.log('codec'.padEnd(30) + 'encode'.padStart(13) + 'decode'.padStart(13) + 'enc+dec'.padStart(13) + '  µs/enc+dec');
    for (const codec of codecs) {
      const bytes = codec.encode(c.value);
      const enc = rate(() => {
        sink += codec.encode(c.value).length;
      });
      const dec = rate(() => {
        sink += codec.decode(bytes) === null ? 1 : 0;
      });
      const both = rate(() => {
        sink += codec.decode(codec.encode(c.value)) === null ? 1 : 0;
      });
      console.log(
        codec.name.padEnd(30) +
          fmt(enc).padStart(13) +
          fmt(dec).padStart(13) +
          fmt(both).padStart(13) +
          (1e6 / both).toFixed(2).padStart(12),
      );
    }
  }

  // Which codecs reproduce the protocol vectors exactly (smallest encodings,
  // float 64 for load_ms, 64-bit ints)?
  const vectors = JSON.parse(fs.readFileSync(path.join(__dirname, '..', 'protocol-vectors.json'), 'utf8')).vectors;
  console.log('\nprotocol vectors (decode the body, encode it again, compare bytes)');
  for (const codec of codecs) {
    const bad = [];
    for (const v of vectors) {
      const body = Buffer.from(v.hex, 'hex').subarray(4);
      try {
        const again = Buffer.from(codec.encode(codec.decode(body)));
        if (!again.equals(body)) bad.push(v.name);
      } catch (err) {
        bad.push(`${v.name} (${err.message})`);
      }
    }
    console.log(`${codec.name.padEnd(30)}${bad.length ? 'differs: ' + bad.join(', ') : 'all byte-exact'}`);
  }
  // A JS number such as deadline_ms or Date.now() must go out as an int.
  console.log('\nthe JS number 1800000000000 (a deadline_ms) encodes as');
  for (const codec of codecs) {
    const hex = Buffer.from(codec.encode(1800000000000)).toString('hex');
    console.log(`${codec.name.padEnd(30)}${hex} (${hex.startsWith('cf') ? 'uint 64' : hex.startsWith('cb') ? 'float 64' : '?'})`);
  }
  if (sink === -1) console.log(sink);
}

main();
