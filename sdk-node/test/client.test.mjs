// The client against a real hearth (HEARTH_ADDR, HEARTH_TOKEN): every
// method, and every error class a test can provoke for real.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';

import * as sdk from '../index.mjs';
import { ADDR, TOKEN, noDaemon, fname, pyDir, sleep, eventually } from './helpers.mjs';

if (noDaemon) console.log(`# skipped: ${noDaemon}`);
const skip = noDaemon;

const client = noDaemon ? null : new sdk.Client({ addr: ADDR, token: TOKEN });
after(() => client && client.close());

const ECHO = `import sys

def handler(event, context):
    name = event.get("name", "world")
    print(f"hello from {name}")
    print("a line on stderr", file=sys.stderr)
    return {"greeting": f"Hello, {name}!", "version": context.function_version}
`;

test('invoke: value, function, version, request id, timing, keep-alive', { skip }, async () => {
  const name = fname('echo');
  // Count the connections a new client opens: one, kept alive.
  const own = new sdk.Client({ addr: ADDR, token: TOKEN });
  const agent = own.transport.agent;
  const original = agent.createConnection;
  let opened = 0;
  agent.createConnection = function (...args) {
    opened += 1;
    return original.apply(this, args);
  };
  try {
    const out = await own.deploy(pyDir(name, ECHO, { limits: 'max_workers = 1' }), { message: 'first' });
    assert.equal(out.function, name);
    assert.equal(out.version, 1);
    assert.equal(out.created, true);
    assert.equal(out.live, true);
    const r = await own.invoke(name, { name: 'Ada' });
    assert.deepEqual(r.value, { greeting: 'Hello, Ada!', version: 1 });
    assert.equal(r.function, name);
    assert.equal(r.version, 1);
    assert.match(r.requestId, /^[A-Za-z0-9._:-]+$/);
    assert.equal(typeof r.durationMs, 'number');
    assert.ok(r.durationMs > 0);
    assert.equal(typeof r.cold, 'boolean');
    assert.ok(['warm', 'generic', 'fresh'].includes(r.start), r.start);
    assert.equal(typeof r.timing.runMs, 'number');
    assert.equal(typeof r.timing.queueMs, 'number');
    assert.equal(r.attempts, 1);
    assert.equal(r.log, undefined);
    const again = await own.invoke(name, { name: 'Bob' }, { requestId: 'sdk-node-test-1' });
    assert.equal(again.cold, false, 'the second call finds the warm worker');
    assert.equal(again.start, 'warm');
    assert.equal(again.requestId, 'sdk-node-test-1');
    await own.invoke(name);
    assert.equal(opened, 1, 'a deploy and three calls, one keep-alive connection');
  } finally {
    own.close();
  }
});

test('invoke with log: the call record\'s lines', { skip }, async () => {
  const name = fname('logged');
  await client.deploy(pyDir(name, ECHO));
  const r = await client.invoke(name, { name: 'Ada' }, { log: true });
  assert.ok(Array.isArray(r.log), `no log: ${JSON.stringify(r)}`);
  assert.deepEqual(
    r.log.map((l) => [l.stream, l.text]).sort(),
    [
      ['stderr', 'a line on stderr'],
      ['stdout', 'hello from Ada'],
    ],
  );
  assert.equal(r.record.request_id, r.requestId);
  assert.equal(r.record.outcome, 'ok');
  assert.match(r.logTail, /hello from Ada/);
});

test('deploy, versions, publish, rollback, aliases, releases', { skip }, async () => {
  const name = fname('releases');
  const v1 = pyDir(name, 'def handler(event):\n    return 1\n');
  const v2 = pyDir(name, 'def handler(event):\n    return 2\n');
  assert.equal((await client.deploy(v1, { message: 'one' })).version, 1);
  const second = await client.deploy(v2, { message: 'two', publish: false });
  assert.equal(second.version, 2);
  assert.equal(second.live, false);
  assert.equal((await client.invoke(name)).value, 1);
  const pinned = await client.invoke(name, {}, { version: 2 });
  assert.equal(pinned.value, 2);
  assert.equal(pinned.version, 2);

  const vs = await client.versions(name);
  assert.equal(vs.function, name);
  assert.equal(vs.live_version, 1);
  assert.deepEqual(vs.versions.map((v) => v.version).sort(), [1, 2]);
  assert.ok(vs.versions.some((v) => v.message === 'two'));

  await client.setAlias(name, 'beta', { version: 2, message: 'try two' });
  const aliases = await client.aliases(name);
  assert.deepEqual(aliases.map((a) => [a.alias, a.target.version]), [['beta', 2]]);
  const viaAlias = await client.invoke(name, {}, { alias: 'beta' });
  assert.equal(viaAlias.version, 2);

  const published = await client.publish(name, 2, { message: 'go' });
  assert.equal(published.version, 2);
  assert.equal(published.previous, 1);
  assert.equal((await client.invoke(name)).version, 2);

  const rolled = await client.rollback(name, { message: 'back' });
  assert.equal(rolled.version, 1);
  assert.equal((await client.invoke(name)).version, 1);

  const history = await client.releases(name);
  assert.ok(history.length >= 3, JSON.stringify(history));
  assert.equal(history[0].message, 'back');

  // The same code again makes no new version.
  const same = await client.deploy(v1);
  assert.equal(same.created, false);
  assert.equal(same.version, 1);
});

test('deploy reads a directory as the CLI does: skips caches, keeps the executable bit', { skip }, async () => {
  const name = fname('files');
  const dir = pyDir(
    name,
    'import os\n\ndef handler(event):\n    return {"exec": bool(os.stat("run.sh").st_mode & 0o111), "files": sorted(os.listdir("."))}\n',
    {
      files: {
        'run.sh': '#!/bin/sh\necho hi\n',
        'lib/data.txt': 'data',
        'node_modules/left/out.js': 'x',
        '__pycache__/main.cpython-311.pyc': 'x',
        '.git/config': 'x',
        'stale.pyc': 'x',
      },
    },
  );
  fs.chmodSync(path.join(dir, 'run.sh'), 0o755);
  const out = await client.deploy(dir);
  const vs = await client.versions(name);
  assert.equal(vs.versions[0].file_count, 4, JSON.stringify(vs.versions[0]));
  const r = await client.invoke(name);
  assert.equal(r.value.exec, true);
  assert.ok(!r.value.files.includes('.git') && !r.value.files.includes('stale.pyc'), r.value.files.join());
  assert.equal(out.version, 1);
  // A list of files in memory works too.
  const listed = await client.deploy([
    { path: 'hearth.toml', data: `name = "${name}"\nruntime = "python"\nentry = "main.handler"\napp = "sdk-node"\n` },
    { path: 'main.py', data: Buffer.from('def handler(event):\n    return "listed"\n') },
  ]);
  assert.equal(listed.version, 2);
  assert.equal((await client.invoke(name)).value, 'listed');
});

test('functions, function, health, workers, logs, call, stats, appStats', { skip }, async () => {
  const name = fname('reads');
  await client.deploy(pyDir(name, ECHO));
  const ok = await client.invoke(name, { name: 'Ada' });
  const health = await client.health();
  assert.equal(typeof health.status, 'string');
  const all = await client.functions();
  assert.ok(all.some((f) => f.name === name));
  const one = await client.function(name);
  assert.equal(one.name, name);
  assert.equal(one.app, 'sdk-node');
  assert.equal(one.live_version, 1);
  const workers = await client.workers();
  assert.ok(Array.isArray(workers.pools));

  const record = await eventually(5000, () => client.call(ok.requestId).catch(() => null));
  assert.ok(record, 'the call record is written');
  assert.equal(record.function, name);
  assert.equal(record.outcome, 'ok');

  const logs = await client.logs(name, { requestId: ok.requestId, status: 'ok', version: 1, limit: 5, since: '10m' });
  assert.equal(logs.function, name);
  assert.deepEqual(logs.calls.map((c) => c.request_id), [ok.requestId]);
  const none = await client.logs(name, { status: 'error' });
  assert.deepEqual(none.calls, []);
  const future = await client.logs(name, { since: new Date(Date.now() + 3600e3) });
  assert.deepEqual(future.calls, []);

  const stats = await client.stats(name, { window: '1h' });
  assert.equal(stats.function, name);
  assert.ok(stats.calls >= 1, JSON.stringify(stats));
  const app = await client.appStats('sdk-node', { window: '1m' });
  assert.ok(app.calls >= 1, JSON.stringify(app));
});

test('not found: function, version, alias, not published, call record, app, token', { skip }, async () => {
  await assert.rejects(client.invoke(fname('missing')), (e) => {
    assert.ok(e instanceof sdk.FunctionNotFoundError, e.name);
    assert.ok(e instanceof sdk.HearthError);
    assert.equal(e.code, 'function_not_found');
    assert.equal(e.status, 404);
    assert.equal(e.function, fname('missing'));
    assert.ok(e.hint.length > 0);
    assert.ok(e.requestId);
    return true;
  });
  const name = fname('lookups');
  await client.deploy(pyDir(name, 'def handler(event):\n    return 0\n'));
  await assert.rejects(client.invoke(name, {}, { version: 99 }), sdk.VersionNotFoundError);
  await assert.rejects(client.invoke(name, {}, { alias: 'nope' }), sdk.AliasNotFoundError);
  await assert.rejects(client.setAlias(name, 'Not_An_Alias', { version: 1 }), sdk.BadAliasError);
  await assert.rejects(client.rollback(name), (e) => e instanceof sdk.NothingToRollBackError && e.status === 409);

  const unpublished = fname('unpublished');
  await client.deploy(pyDir(unpublished, 'def handler(event):\n    return 0\n'), { publish: false });
  await assert.rejects(client.invoke(unpublished), (e) => e instanceof sdk.NotPublishedError && e.status === 404);

  await assert.rejects(client.call('no-such-call'), sdk.CallNotFoundError);
  await assert.rejects(client.appStats('no-such-app'), sdk.AppNotFoundError);
  await assert.rejects(client.revokeToken('no-such-token'), sdk.TokenNotFoundError);
});

test('function_error carries the traceback and is not retried', { skip }, async () => {
  const name = fname('raises');
  await client.deploy(
    pyDir(name, 'def handler(event):\n    print("about to fail")\n    raise ValueError("bad input")\n'),
  );
  await assert.rejects(client.invoke(name, {}, { retries: 5, log: true }), (e) => {
    assert.ok(e instanceof sdk.FunctionError, e.name);
    assert.ok(e instanceof sdk.CallFailedError);
    assert.ok(!(e instanceof sdk.RefusedError));
    assert.equal(e.status, 500);
    assert.equal(e.errorType, 'ValueError');
    assert.equal(e.errorMessage, 'bad input');
    assert.match(e.traceback, /ValueError: bad input/);
    assert.match(e.traceback, /main\.py/);
    assert.equal(e.version, 1);
    assert.equal(e.attempts, 1);
    assert.match(e.log, /about to fail/);
    return true;
  });
  // Exactly one call reached hearth (records are written in batches: wait
  // for the first, then long enough for any other to show up).
  const first = await eventually(5000, async () => (await client.logs(name)).calls.length >= 1);
  assert.ok(first, 'the call is recorded');
  await sleep(1500);
  const { calls } = await client.logs(name);
  assert.equal(calls.length, 1, JSON.stringify(calls.map((c) => c.request_id)));
  assert.equal(calls[0].outcome, 'function_error');
});

test('page: data, errors with fallbacks, a required field failing the page', { skip }, async () => {
  const title = fname('ptitle');
  const boom = fname('pboom');
  await client.deploy(pyDir(title, 'def handler(event):\n    return "Hi " + event["who"]\n'));
  await client.deploy(pyDir(boom, 'def handler(event):\n    raise ValueError("no")\n'));
  const name = fname('page');
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'hearth-sdk-page-'));
  const write = (required) =>
    fs.writeFileSync(
      path.join(dir, 'hearth.toml'),
      `name = "${name}"\ntype = "page"\napp = "sdk-node"\n` +
        `[fields.title]\nfn = "${title}"\ninput = { who = "$request.user" }\n` +
        `[fields.rows.broken]\nfn = "${boom}"\n${required ? 'required = true' : 'fallback = "omit"'}\n`,
    );
  write(false);
  await client.deploy(dir);
  const r = await client.page(name, { user: 'Ada' });
  assert.deepEqual(r.data, { title: 'Hi Ada' });
  assert.equal(r.errors.length, 1);
  assert.equal(r.errors[0].field, 'rows.broken');
  assert.equal(r.errors[0].fallback, 'omit');
  assert.equal(r.version, 1);
  assert.equal(r.page, name);
  assert.ok(r.timing && typeof r.timing.criticalMs === 'number', JSON.stringify(r.timing));
  await assert.rejects(client.page(title), sdk.NotAPageError);
  write(true);
  await client.deploy(dir);
  await assert.rejects(client.page(name, { user: 'Ada' }), (e) => {
    assert.ok(e instanceof sdk.FieldFailedError, e.name);
    assert.equal(e.field, 'rows.broken');
    assert.equal(e.status, 502);
    return true;
  });
  assert.equal((await client.page(name, { user: 'Bo' }, { version: 1 })).data.title, 'Hi Bo');
});

test('timeout: the function ran past limits.timeout_ms', { skip }, async () => {
  const name = fname('sleeper');
  await client.deploy(
    pyDir(name, 'import time\n\ndef handler(event):\n    time.sleep(event.get("s", 0))\n    return "done"\n', {
      limits: 'timeout_ms = 500',
    }),
  );
  await assert.rejects(client.invoke(name, { s: 5 }, { retries: 3 }), (e) => {
    assert.ok(e instanceof sdk.TimeoutError, e.name);
    assert.ok(e instanceof sdk.CallFailedError);
    assert.equal(e.status, 504);
    assert.equal(e.attempts, 1, 'a call that ran is not retried');
    return true;
  });
  // The client's own deadline is another error.
  await assert.rejects(client.invoke(name, { s: 0.4 }, { timeoutMs: 100 }), (e) => {
    assert.ok(e instanceof sdk.ClientTimeoutError, e.name);
    assert.equal(e.code, 'client_timeout');
    assert.match(e.message, /100 ms/);
    return true;
  });
});

test('queue_full: refused at once, retried after Retry-After', { skip }, async () => {
  const name = fname('narrow');
  await client.deploy(
    pyDir(name, 'import time\n\ndef handler(event):\n    time.sleep(event.get("s", 0))\n    return "done"\n', {
      limits: 'max_workers = 1\nmax_queue = 0',
    }),
  );
  await client.invoke(name); // the worker is warm
  const busy = client.invoke(name, { s: 2 });
  const running = await eventually(5000, async () => {
    const w = await client.workers();
    return w.pools.some((p) => p.function === name && p.busy >= 1);
  });
  assert.ok(running, 'the slow call is running');
  await assert.rejects(client.invoke(name, {}, { retries: 0 }), (e) => {
    assert.ok(e instanceof sdk.QueueFullError, `${e.name}: ${e.message}`);
    assert.ok(e instanceof sdk.RefusedError);
    assert.equal(e.status, 429);
    assert.equal(typeof e.retryAfter, 'number');
    assert.ok(sdk.isRetryable(e));
    return true;
  });
  const retried = await client.invoke(name, {}, { retries: 5 });
  assert.equal(retried.value, 'done');
  assert.ok(retried.attempts >= 2, `attempts ${retried.attempts}`);
  assert.equal((await busy).value, 'done');
});

test('unauthorized and forbidden; a read-only token reads', { skip }, async () => {
  const bogus = new sdk.Client({ addr: ADDR, token: 'hearth_not-a-real-token' });
  await assert.rejects(bogus.functions(), (e) => e instanceof sdk.UnauthorizedError && e.status === 401);
  const none = new sdk.Client({ addr: ADDR, token: null });
  await assert.rejects(none.functions(), sdk.UnauthorizedError);
  bogus.close();
  none.close();

  const tokenName = fname('reader');
  const created = await client.createToken(tokenName, { scopes: ['read'] });
  assert.match(created.token, /^hearth_/);
  assert.equal(created.info.name, tokenName);
  assert.ok((await client.tokens()).some((t) => t.name === tokenName));
  const reader = new sdk.Client({ addr: ADDR, token: created.token });
  try {
    assert.ok(Array.isArray(await reader.functions()));
    await assert.rejects(reader.deploy(pyDir(fname('denied'), 'def handler(e):\n    return 0\n')), (e) => {
      assert.ok(e instanceof sdk.ForbiddenError, e.name);
      assert.equal(e.status, 403);
      assert.match(e.message, /deploy/);
      return true;
    });
    const revoked = await client.revokeToken(tokenName);
    assert.equal(revoked.name, tokenName);
    await assert.rejects(reader.functions(), sdk.UnauthorizedError);
  } finally {
    reader.close();
  }
});

test('bad_manifest on deploy', { skip }, async () => {
  await assert.rejects(
    client.deploy([
      { path: 'hearth.toml', data: 'name = "x"\nruntime = "cobol"\nentry = "main.handler"\n' },
      { path: 'main.py', data: 'def handler(e):\n    return 0\n' },
    ]),
    (e) => e instanceof sdk.BadManifestError && e.status === 400 && e.code === 'bad_manifest',
  );
  await assert.rejects(client.deploy('/nonexistent/dir'), /no such directory/);
});

test('a daemon that is not there: a connection error naming the address', async () => {
  const c = new sdk.Client({ addr: '127.0.0.1:1', token: null, retries: 3 });
  await assert.rejects(c.invoke('hello'), (e) => {
    assert.ok(e instanceof sdk.ConnectionError, e.name);
    assert.equal(e.code, 'connection_failed');
    assert.equal(e.sent, false);
    assert.match(e.message, /http:\/\/127\.0\.0\.1:1/);
    assert.match(e.message, /hearth serve/);
    assert.match(e.message, /HEARTH_ADDR/);
    return true;
  });
  c.close();
});

test('every code of ErrorCode::ALL has its class', (t) => {
  const env = process.env.HEARTH_ERROR_CODES;
  if (!env) {
    t.skip('HEARTH_ERROR_CODES is not set (tests/sdk_node.rs passes hearth_api::ErrorCode::ALL)');
    return;
  }
  const codes = env.split(',').filter(Boolean);
  assert.ok(codes.length > 30, env);
  for (const code of codes) {
    const Cls = sdk.errorClassFor(code);
    assert.notEqual(Cls, sdk.HearthError, `no class for ${code}`);
    assert.ok(sdk[Cls.name] === Cls, `${Cls.name} is exported`);
    const e = sdk.fromResponse(400, {}, JSON.stringify({ error: { code, message: 'm' } }));
    assert.ok(e instanceof Cls && e instanceof sdk.HearthError, code);
    assert.equal(e.code, code);
  }
  assert.deepEqual([...sdk.KNOWN_CODES].sort(), [...codes].sort(), 'the SDK knows exactly the daemon\'s codes');
  for (const code of sdk.RETRYABLE) assert.ok(codes.includes(code), code);
  // A code from a newer daemon is still a HearthError.
  const unknown = sdk.fromResponse(418, {}, JSON.stringify({ error: { code: 'brand_new', message: 'm' } }));
  assert.equal(unknown.constructor, sdk.HearthError);
  assert.equal(unknown.code, 'brand_new');
});
