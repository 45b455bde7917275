'use strict';
// MessagePack codec for the hearth Node shim: no dependencies, CommonJS.
//
// Why our own codec and not msgpackr or @msgpack/msgpack: measured with
// bench_codec.js (README.md has the command and the whole table), Node 20.20,
// 2 shared CPUs, encode+decode per frame:
//   small invoke frame (69 bytes): codec.js 1.31 µs, msgpackr 2.1.4 (native
//     addon) 1.15 µs, @msgpack/msgpack 3.1.3 3.14 µs;
//   8 MiB ASCII string: 10 ms / 22 ms / 32 ms; 8 MiB UTF-8 string:
//     37 ms / 47 ms / 59 ms; a map of 134k small entries (9 MiB): 541 / 440 / 620 ms.
// A whole warm invoke round trip through the pipes costs about 100 µs, so no
// library comes near the "over 2x faster end to end" bar that would justify
// shipping node_modules. And both libraries write a JS number of 2^32 or more
// (deadline_ms, Date.now()) as float 64, which the protocol does not allow.
//
// Values, both ways:
//   nil <-> null (undefined encodes as nil too), bool <-> boolean,
//   str <-> string (UTF-8), bin <-> Buffer (Uint8Array/ArrayBuffer encode as bin),
//   array <-> Array, map <-> plain object (keys become strings; a Map encodes as
//   a map with keys of any type), float 32/64 -> number, number -> float 64
//   unless it is an integer in the 64-bit range, which takes the smallest int
//   encoding. 64-bit ints beyond +-(2^53 - 1) decode as BigInt, and a BigInt
//   encodes as an int (an error beyond 64 bits). ext <-> Ext.
//   An object with toJSON() (Date, ...) encodes as what toJSON() returns.
//   Functions, symbols, Set, Promise, WeakMap, typed arrays other than
//   Uint8Array, ... throw an EncodeError, as do cycles and over-deep nesting.

/** Largest frame body either side accepts (64 MiB), see shims/PROTOCOL.md. */
const MAX_FRAME = 64 * 1024 * 1024;
/** Deepest nesting that encode and decode accept (cycles hit it too). */
const MAX_DEPTH = 512;

/** A value that cannot be encoded (the message says what it is). */
class EncodeError extends TypeError {
  get name() {
    return 'EncodeError';
  }
}

/** A frame body that is not valid MessagePack. */
class DecodeError extends Error {
  get name() {
    return 'DecodeError';
  }
}

/** A MessagePack extension value: `type` (-128..127) and its raw `data`. */
class Ext {
  constructor(type, data) {
    this.type = type;
    this.data = data;
  }
}

/** Wraps a number that must be encoded as float 64 even when it is integral. */
class Float64 {
  constructor(value) {
    this.value = value;
  }
}

// ---------------------------------------------------------------- encoding
//
// Frames are written into a shared chunk. A finished frame is handed out as a
// subarray of it and the next frame starts after it, so nothing is copied and
// a frame stays valid while a stream still holds it; a fresh chunk is taken
// when the current one runs low (or is too small for a big frame).

const CHUNK = 64 * 1024;
let out = Buffer.allocUnsafeSlow(CHUNK);
let start = 0; // where the frame being encoded starts in `out`
let pos = 0; // next byte to write

/** Make room for `n` more bytes, moving the frame so far to a bigger chunk. */
function reserve(n) {
  if (pos + n <= out.length) return;
  const used = pos - start;
  const size = Math.max(CHUNK, 2 * (used + n));
  const bigger = Buffer.allocUnsafeSlow(size);
  out.copy(bigger, 0, start, pos);
  out = bigger;
  start = 0;
  pos = used;
}

const float64Scratch = new Float64Array(1);
const float64Bytes = new Uint8Array(float64Scratch.buffer);
const bigEndianHost = new Uint8Array(new Uint16Array([1]).buffer)[0] === 0;

function writeFloat64(v) {
  reserve(9);
  out[pos] = 0xcb;
  float64Scratch[0] = v;
  if (bigEndianHost) {
    for (let i = 0; i < 8; i++) out[pos + 1 + i] = float64Bytes[i];
  } else {
    for (let i = 0; i < 8; i++) out[pos + 1 + i] = float64Bytes[7 - i];
  }
  pos += 9;
}

function writeUint32(v) {
  out[pos] = v >>> 24;
  out[pos + 1] = v >>> 16;
  out[pos + 2] = v >>> 8;
  out[pos + 3] = v;
  pos += 4;
}

function writeNumber(v) {
  if (!Number.isInteger(v)) return writeFloat64(v);
  reserve(9);
  if (v >= 0) {
    if (v < 128) {
      out[pos++] = v;
    } else if (v < 256) {
      out[pos++] = 0xcc;
      out[pos++] = v;
    } else if (v < 65536) {
      out[pos++] = 0xcd;
      out[pos++] = v >>> 8;
      out[pos++] = v;
    } else if (v < 4294967296) {
      out[pos++] = 0xce;
      writeUint32(v);
    } else if (v < 18446744073709551616) {
      out[pos++] = 0xcf;
      writeUint32(Math.floor(v / 4294967296));
      writeUint32(v >>> 0);
    } else {
      writeFloat64(v);
    }
  } else if (v >= -32) {
    out[pos++] = v & 0xff;
  } else if (v >= -128) {
    out[pos++] = 0xd0;
    out[pos++] = v & 0xff;
  } else if (v >= -32768) {
    out[pos++] = 0xd1;
    out[pos++] = v >> 8;
    out[pos++] = v;
  } else if (v >= -2147483648) {
    out[pos++] = 0xd2;
    writeUint32(v >>> 0);
  } else if (v >= -9223372036854775808) {
    // Every integral double this large is a multiple of 2^11, so the two
    // halves of its two's complement come out exact.
    out[pos++] = 0xd3;
    const high = Math.floor(v / 4294967296);
    writeUint32(high >>> 0);
    writeUint32((v - high * 4294967296) >>> 0);
  } else {
    writeFloat64(v);
  }
}

const BIG_2_32 = 4294967296n;
function writeBigInt(v) {
  if (v >= -9223372036854775808n && v <= 18446744073709551615n) {
    if (v >= -9007199254740991n && v <= 9007199254740991n) return writeNumber(Number(v));
    reserve(9);
    out[pos++] = v < 0n ? 0xd3 : 0xcf;
    const u = BigInt.asUintN(64, v);
    writeUint32(Number(u / BIG_2_32));
    writeUint32(Number(u % BIG_2_32));
    return;
  }
  throw new EncodeError(`the integer ${v} does not fit in 64 bits`);
}

/** Bytes a string header takes for a body of `n` bytes. */
function strHeaderSize(n) {
  return n < 32 ? 1 : n < 256 ? 2 : n < 65536 ? 3 : 5;
}

function writeStrHeader(at, n) {
  if (n < 32) {
    out[at] = 0xa0 | n;
  } else if (n < 256) {
    out[at] = 0xd9;
    out[at + 1] = n;
  } else if (n < 65536) {
    out[at] = 0xda;
    out[at + 1] = n >>> 8;
    out[at + 2] = n;
  } else {
    out[at] = 0xdb;
    out[at + 1] = n >>> 24;
    out[at + 2] = n >>> 16;
    out[at + 3] = n >>> 8;
    out[at + 4] = n;
  }
}

/** UTF-8 of `s` at `at` in plain JS (quicker than a native call for short strings). */
function utf8Write(s, at) {
  let p = at;
  const len = s.length;
  for (let i = 0; i < len; i++) {
    let c = s.charCodeAt(i);
    if (c < 0x80) {
      out[p++] = c;
    } else if (c < 0x800) {
      out[p++] = 0xc0 | (c >> 6);
      out[p++] = 0x80 | (c & 63);
    } else {
      if (c >= 0xd800 && c < 0xe000) {
        const d = i + 1 < len ? s.charCodeAt(i + 1) : 0;
        if (c < 0xdc00 && d >= 0xdc00 && d < 0xe000) {
          const cp = 0x10000 + ((c - 0xd800) << 10) + (d - 0xdc00);
          i++;
          out[p++] = 0xf0 | (cp >> 18);
          out[p++] = 0x80 | ((cp >> 12) & 63);
          out[p++] = 0x80 | ((cp >> 6) & 63);
          out[p++] = 0x80 | (cp & 63);
          continue;
        }
        c = 0xfffd; // a lone surrogate, as Buffer.write() does
      }
      out[p++] = 0xe0 | (c >> 12);
      out[p++] = 0x80 | ((c >> 6) & 63);
      out[p++] = 0x80 | (c & 63);
    }
  }
  return p - at;
}

const SHORT_STRING = 64;

function writeString(s) {
  const len = s.length;
  if (len < SHORT_STRING) {
    // At most 3 bytes per UTF-16 unit. Guess the header from the length
    // (exact for ASCII), then move the bytes if the guess was short.
    reserve(len * 3 + 5);
    const guess = strHeaderSize(len);
    const n = utf8Write(s, pos + guess);
    const size = strHeaderSize(n);
    if (size !== guess) out.copyWithin(pos + size, pos + guess, pos + guess + n);
    writeStrHeader(pos, n);
    pos += size + n;
  } else {
    const n = Buffer.byteLength(s, 'utf8');
    const size = strHeaderSize(n);
    reserve(size + n);
    writeStrHeader(pos, n);
    pos += size;
    pos += out.write(s, pos, n, 'utf8');
  }
}

function writeBin(bytes) {
  const n = bytes.length;
  reserve(n + 5);
  if (n < 256) {
    out[pos++] = 0xc4;
    out[pos++] = n;
  } else if (n < 65536) {
    out[pos++] = 0xc5;
    out[pos++] = n >>> 8;
    out[pos++] = n;
  } else {
    out[pos++] = 0xc6;
    writeUint32(n);
  }
  out.set(bytes, pos);
  pos += n;
}

function writeExt(ext) {
  const data = ext.data;
  const n = data.length;
  if (!Number.isInteger(ext.type) || ext.type < -128 || ext.type > 127 || !(data instanceof Uint8Array)) {
    throw new EncodeError('an Ext needs an integer type in -128..127 and Uint8Array data');
  }
  reserve(n + 6);
  const fixed = { 1: 0xd4, 2: 0xd5, 4: 0xd6, 8: 0xd7, 16: 0xd8 }[n];
  if (fixed !== undefined) {
    out[pos++] = fixed;
  } else if (n < 256) {
    out[pos++] = 0xc7;
    out[pos++] = n;
  } else if (n < 65536) {
    out[pos++] = 0xc8;
    out[pos++] = n >>> 8;
    out[pos++] = n;
  } else {
    out[pos++] = 0xc9;
    writeUint32(n);
  }
  out[pos++] = ext.type & 0xff;
  out.set(data, pos);
  pos += n;
}

function writeArrayHeader(n) {
  reserve(5);
  if (n < 16) {
    out[pos++] = 0x90 | n;
  } else if (n < 65536) {
    out[pos++] = 0xdc;
    out[pos++] = n >>> 8;
    out[pos++] = n;
  } else {
    out[pos++] = 0xdd;
    writeUint32(n);
  }
}

function writeMapHeader(n) {
  reserve(5);
  if (n < 16) {
    out[pos++] = 0x80 | n;
  } else if (n < 65536) {
    out[pos++] = 0xde;
    out[pos++] = n >>> 8;
    out[pos++] = n;
  } else {
    out[pos++] = 0xdf;
    writeUint32(n);
  }
}

function describe(v) {
  if (typeof v !== 'object') return `a ${typeof v}`;
  const name = v.constructor && v.constructor.name;
  return name ? `a ${name}` : 'an object';
}

function writeValue(v, depth) {
  switch (typeof v) {
    case 'string':
      return writeString(v);
    case 'number':
      return writeNumber(v);
    case 'boolean':
      reserve(1);
      out[pos++] = v ? 0xc3 : 0xc2;
      return;
    case 'undefined':
      reserve(1);
      out[pos++] = 0xc0;
      return;
    case 'bigint':
      return writeBigInt(v);
    case 'object':
      if (v === null) {
        reserve(1);
        out[pos++] = 0xc0;
        return;
      }
      return writeObject(v, depth + 1);
    default:
      throw new EncodeError(`cannot encode ${describe(v)}`);
  }
}

function writeObject(v, depth) {
  if (depth > MAX_DEPTH) {
    throw new EncodeError(`nesting deeper than ${MAX_DEPTH} levels (is the value circular?)`);
  }
  if (Array.isArray(v)) {
    const n = v.length;
    writeArrayHeader(n);
    for (let i = 0; i < n; i++) writeValue(v[i], depth);
    return;
  }
  const proto = Object.getPrototypeOf(v);
  if (proto !== Object.prototype && proto !== null) return writeSpecialObject(v, depth);
  const keys = Object.keys(v);
  const n = keys.length;
  writeMapHeader(n);
  for (let i = 0; i < n; i++) {
    const key = keys[i];
    writeString(key);
    writeValue(v[key], depth);
  }
}

/** Objects that are not plain: bytes, Map, Ext, Float64, toJSON(), class instances. */
function writeSpecialObject(v, depth) {
  if (v instanceof Uint8Array) return writeBin(v);
  if (v instanceof ArrayBuffer) return writeBin(new Uint8Array(v));
  if (v instanceof Float64) return writeFloat64(Number(v.value));
  if (v instanceof Ext) return writeExt(v);
  if (typeof v.toJSON === 'function') return writeValue(v.toJSON(), depth);
  if (v instanceof Number || v instanceof String || v instanceof Boolean || v instanceof BigInt) {
    return writeValue(v.valueOf(), depth);
  }
  if (v instanceof Map) {
    writeMapHeader(v.size);
    for (const [key, value] of v) {
      writeValue(key, depth);
      writeValue(value, depth);
    }
    return;
  }
  if (
    ArrayBuffer.isView(v) ||
    v instanceof Set ||
    v instanceof WeakMap ||
    v instanceof WeakSet ||
    v instanceof Promise ||
    v instanceof RegExp ||
    v instanceof Error ||
    typeof v.then === 'function'
  ) {
    throw new EncodeError(`cannot encode ${describe(v)}`);
  }
  // Any other class instance: its own enumerable properties, as JSON does.
  const keys = Object.keys(v);
  writeMapHeader(keys.length);
  for (const key of keys) {
    writeString(key);
    writeValue(v[key], depth);
  }
}

function finish() {
  const body = out.subarray(start, pos);
  // Start the next value on an 8-byte boundary, in a fresh chunk if this one
  // is low, or was grown for a big value (do not keep that memory alive).
  pos = (pos + 7) & ~7;
  if (out.length - pos < 1024 || out.length > CHUNK) {
    out = Buffer.allocUnsafeSlow(CHUNK);
    pos = 0;
  }
  start = pos;
  return body;
}

function abandon() {
  pos = start;
}

/** Encode `value` as MessagePack; returns a Buffer. Throws EncodeError. */
function encode(value) {
  try {
    writeValue(value, 0);
  } catch (err) {
    abandon();
    throw err instanceof RangeError && /call stack/.test(err.message)
      ? new EncodeError('the value is nested too deeply')
      : err;
  }
  return finish();
}

/**
 * Encode `message` as a whole frame: 4-byte big-endian length, then the
 * MessagePack body. Throws EncodeError, or a RangeError when the body is over
 * MAX_FRAME.
 */
function encodeFrame(message) {
  reserve(4);
  pos += 4;
  try {
    writeValue(message, 0);
  } catch (err) {
    abandon();
    throw err instanceof RangeError && /call stack/.test(err.message)
      ? new EncodeError('the value is nested too deeply')
      : err;
  }
  const n = pos - start - 4;
  if (n > MAX_FRAME) {
    abandon();
    throw new RangeError(`the frame is ${n} bytes, over the ${MAX_FRAME} byte limit`);
  }
  const at = pos;
  pos = start;
  writeUint32(n);
  pos = at;
  return finish();
}

// ---------------------------------------------------------------- decoding
//
// A recursive reader over one Buffer; the state lives in module variables
// (decoding is synchronous and not reentrant).

let src = null;
let at = 0; // next byte to read
let end = 0;

function truncated() {
  return new DecodeError(`truncated MessagePack data at byte ${at}`);
}

function need(n) {
  if (at + n > end) throw truncated();
}

function readUint32() {
  const v = src[at] * 16777216 + ((src[at + 1] << 16) | (src[at + 2] << 8) | src[at + 3]);
  at += 4;
  return v;
}

function readUint64() {
  const high = readUint32();
  const low = readUint32();
  if (high < 0x200000) return high * 4294967296 + low; // below 2^53: exact
  return (BigInt(high) << 32n) | BigInt(low);
}

function readInt64() {
  const high = readUint32() | 0;
  const low = readUint32();
  if (high >= -0x200000 && high < 0x200000) {
    const v = high * 4294967296 + low;
    if (v !== -9007199254740992) return v;
  }
  return (BigInt(high) << 32n) | BigInt(low);
}

function readFloat64() {
  need(8);
  const v = src.readDoubleBE(at);
  at += 8;
  return v;
}

function readFloat32() {
  need(4);
  const v = src.readFloatBE(at);
  at += 4;
  return v;
}

const fromCharCode = String.fromCharCode;

function readString(n) {
  need(n);
  const from = at;
  at += n;
  if (n < 16) {
    // Short ASCII strings (keys, ids) are quicker in JS than through a native call.
    let s = '';
    for (let i = from; i < at; i++) {
      const c = src[i];
      if (c >= 0x80) return src.toString('utf8', from, at);
      s += fromCharCode(c);
    }
    return s;
  }
  return src.toString('utf8', from, at);
}

// Map keys recur from frame to frame ("t", "id", "payload", the user's field
// names): a short ASCII key is looked up in a small cache (one key per slot,
// compared byte for byte), which is quicker than building the string again.
const KEY_SLOTS = 4096;
const cachedKeys = new Array(KEY_SLOTS).fill('');

function readKey(n) {
  if (n >= 16) return readString(n);
  need(n);
  const from = at;
  at += n;
  let hash = n;
  for (let i = from; i < at; i++) {
    const c = src[i];
    if (c >= 0x80) return src.toString('utf8', from, at);
    hash = (hash * 31 + c) | 0;
  }
  const slot = hash & (KEY_SLOTS - 1);
  const cached = cachedKeys[slot];
  if (cached.length === n) {
    let i = 0;
    while (i < n && cached.charCodeAt(i) === src[from + i]) i++;
    if (i === n) return cached;
  }
  let key = '';
  for (let i = from; i < at; i++) key += fromCharCode(src[i]);
  cachedKeys[slot] = key;
  return key;
}

function readBin(n) {
  need(n);
  const bytes = Buffer.from(src.subarray(at, at + n)); // a copy: the frame is not kept
  at += n;
  return bytes;
}

function readExt(n) {
  need(n + 1);
  const type = (src[at] << 24) >> 24;
  at += 1;
  return new Ext(type, readBin(n));
}

function readArray(n, depth) {
  if (depth > MAX_DEPTH) throw new DecodeError(`nesting deeper than ${MAX_DEPTH} levels`);
  if (n > end - at) throw truncated(); // each item takes at least one byte
  const items = new Array(n);
  for (let i = 0; i < n; i++) items[i] = readValue(depth);
  return items;
}

function readMap(n, depth) {
  if (depth > MAX_DEPTH) throw new DecodeError(`nesting deeper than ${MAX_DEPTH} levels`);
  if (2 * n > end - at) throw truncated();
  const map = {};
  for (let i = 0; i < n; i++) {
    const b = src[at];
    let key;
    if (b >= 0xa0 && b < 0xc0) {
      at++;
      key = readKey(b & 31);
    } else {
      key = readValue(depth);
      if (typeof key !== 'string') key = keyText(key);
    }
    const value = readValue(depth);
    if (key === '__proto__') {
      // A plain assignment would replace the object's prototype.
      Object.defineProperty(map, key, { value, enumerable: true, writable: true, configurable: true });
    } else {
      map[key] = value;
    }
  }
  return map;
}

/** A map key that is not a string, as JSON text (1, true, null); bytes as UTF-8. */
function keyText(key) {
  if (key instanceof Uint8Array) return Buffer.from(key).toString('utf8');
  if (key === null || typeof key !== 'object') return String(key);
  try {
    return JSON.stringify(key, (_, v) => (typeof v === 'bigint' ? v.toString() : v));
  } catch {
    return String(key);
  }
}

function readValue(depth) {
  if (at >= end) throw truncated();
  const b = src[at++];
  if (b < 0x80) return b;
  if (b < 0x90) return readMap(b & 15, depth + 1);
  if (b < 0xa0) return readArray(b & 15, depth + 1);
  if (b < 0xc0) return readString(b & 31);
  if (b >= 0xe0) return b - 256;
  switch (b) {
    case 0xc0:
      return null;
    case 0xc2:
      return false;
    case 0xc3:
      return true;
    case 0xc4:
      need(1);
      return readBin(src[at++]);
    case 0xc5:
      need(2);
      at += 2;
      return readBin((src[at - 2] << 8) | src[at - 1]);
    case 0xc6:
      need(4);
      return readBin(readUint32());
    case 0xc7:
      need(1);
      return readExt(src[at++]);
    case 0xc8:
      need(2);
      at += 2;
      return readExt((src[at - 2] << 8) | src[at - 1]);
    case 0xc9:
      need(4);
      return readExt(readUint32());
    case 0xca:
      return readFloat32();
    case 0xcb:
      return readFloat64();
    case 0xcc:
      need(1);
      return src[at++];
    case 0xcd:
      need(2);
      at += 2;
      return (src[at - 2] << 8) | src[at - 1];
    case 0xce:
      need(4);
      return readUint32();
    case 0xcf:
      need(8);
      return readUint64();
    case 0xd0:
      need(1);
      return (src[at++] << 24) >> 24;
    case 0xd1:
      need(2);
      at += 2;
      return (((src[at - 2] << 8) | src[at - 1]) << 16) >> 16;
    case 0xd2:
      need(4);
      return readUint32() | 0;
    case 0xd3:
      need(8);
      return readInt64();
    case 0xd4:
      return readExt(1);
    case 0xd5:
      return readExt(2);
    case 0xd6:
      return readExt(4);
    case 0xd7:
      return readExt(8);
    case 0xd8:
      return readExt(16);
    case 0xd9:
      need(1);
      return readString(src[at++]);
    case 0xda:
      need(2);
      at += 2;
      return readString((src[at - 2] << 8) | src[at - 1]);
    case 0xdb:
      need(4);
      return readString(readUint32());
    case 0xdc:
      need(2);
      at += 2;
      return readArray((src[at - 2] << 8) | src[at - 1], depth + 1);
    case 0xdd:
      need(4);
      return readArray(readUint32(), depth + 1);
    case 0xde:
      need(2);
      at += 2;
      return readMap((src[at - 2] << 8) | src[at - 1], depth + 1);
    case 0xdf:
      need(4);
      return readMap(readUint32(), depth + 1);
    default: // 0xc1 is never used
      throw new DecodeError(`invalid MessagePack byte 0x${b.toString(16)} at ${at - 1}`);
  }
}

/**
 * Decode exactly one MessagePack value from `buffer` (a Buffer) between
 * `offset` and `limit`. Throws DecodeError on bad or trailing data.
 */
function decode(buffer, offset = 0, limit = buffer.length) {
  if (!Buffer.isBuffer(buffer)) buffer = Buffer.from(buffer.buffer, buffer.byteOffset, buffer.byteLength);
  src = buffer;
  at = offset;
  end = limit;
  try {
    const value = readValue(0);
    if (at !== end) throw new DecodeError(`${end - at} bytes after the MessagePack value`);
    return value;
  } catch (err) {
    if (err instanceof RangeError) throw new DecodeError(`cannot decode: ${err.message}`);
    throw err;
  } finally {
    src = null;
  }
}

module.exports = {
  MAX_FRAME,
  MAX_DEPTH,
  EncodeError,
  DecodeError,
  Ext,
  Float64,
  encode,
  encodeFrame,
  decode,
};
