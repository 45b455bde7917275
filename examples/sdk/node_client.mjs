#!/usr/bin/env node
// Call the example function `hello` (examples/python/hello, deployed by
// scripts/up), then `recommended-row` (a field-mapping function calling two
// data sources), with the Node SDK and print what came back.
//
//   cd examples/sdk && npm install      # scripts/setup does this
//   node node_client.mjs [NAME]         # HEARTH_ADDR: default 127.0.0.1:7700
//
// The token (needed for the call's log, not for the call) is HEARTH_TOKEN,
// else the admin.token of a daemon on this host that listens at the address
// (HEARTH_DATA's, ./hearth-data, the default data directory), as the CLI
// finds it.
import { Client, HearthError } from '@hearth/sdk';

const client = new Client();
const who = process.argv[2] ?? 'Ada';
try {
  const r = await client.invoke('hello', { name: who }, { log: Boolean(client.token) });
  console.log(JSON.stringify(r.value));
  console.log(
    `hello@${r.version} answered ${r.requestId} in ${r.durationMs.toFixed(1)} ms ` +
      `(${r.cold ? `cold start: ${r.start}` : 'warm'}, run ${r.timing?.runMs ?? '?'} ms)`,
  );
  for (const line of r.log ?? []) console.log(`  ${line.stream}: ${line.text}`);
  // The field-mapping example: a page's row from two data sources (its
  // nested calls run inside hearth; this is one call).
  try {
    const row = await client.invoke('recommended-row', { user: 'u1' });
    const how = row.value.personalised ? 'personalised' : 'not personalised';
    console.log(`${row.value.title} (${how}, ${row.durationMs.toFixed(1)} ms):`);
    for (const item of row.value.items) console.log(`  ${item.title} [${item.genre}]`);
  } catch (e) {
    if (e?.code !== 'function_not_found') throw e;
    console.log('(recommended-row is not deployed; scripts/up deploys every example)');
  }
} catch (e) {
  if (!(e instanceof HearthError)) throw e;
  console.error(`error: ${e.message} (${e.code})${e.hint ? `\nhint: ${e.hint}` : ''}`);
  process.exitCode = 1;
} finally {
  client.close();
}
