#!/usr/bin/env node
// Many simulated devices in one node process, each a real PouchDB 9 client with its own local
// database (in memory), for scripts/bench-load and tests/test_load.py.
//
// stdin, line 1: one JSON command; later lines: "go" (storm) or "stop" (held).
// op: "storm" | "held" | "trickle" (below).
// stdout: JSON lines; anything else goes to stderr.
//
// Common fields: op, devices: [{id, remote (database URL), cookie
// ("AuthSession=..." | null), auth ({username,password} | null), user, grid, records (storm: the
// queue), seed}], batch_size (100), batches_limit (10).
//
// storm: every device first writes its queue of `records` household visits into its local
//   database (created_by = user, ids household_visit:<grid>-<device id>-<n>), then the process
//   prints {"ready":true}. On "go" every device at once pushes its queue, then pulls its grid
//   (one-shot replications; "pull": false leaves the pull out). A replication that fails (a 429 or 503 from the server, a dropped
//   connection) is resumed from its checkpoint after the Retry-After the server sent (or a
//   back-off), up to `attempts` tries and within `deadline_ms`. Final line:
//   {"ok":true,"devices":[{id,grid,elapsed_ms,push_ms,pull_ms,pushed,pulled,denied,local_docs,
//    attempts,failed,error}],"http":{...}}
// held: every device keeps a live pull (live, retry) of its grid open. Once each has caught up
//   ("paused" without error) the process prints {"ready":true,"devices":N}. Every document whose
//   id starts with `watch_prefix` that reaches a device is printed as it arrives:
//   {"arrived":id,"device":device id,"t":epoch ms}. On "stop" (or after `hold_ms`): the
//   replications are cancelled and the final line is {"ok":true,"devices":N,"errors":[...],
//   "http":{...}}.
//
// trickle: every device keeps a live push (live, retry) of its local database open while it
//   saves `records` visits over `rounds` rounds `interval_ms` apart; from the second round on it
//   also edits one of its earlier visits (another outcome) and, every third round, deletes one.
//   Once all is saved and pushed (the replication's checkpoint caught up with the local
//   database): final line {"ok":true,"devices":[{id,grid,written,edited,deleted,caught_up,
//   errors,retried}],"http":{...}}; retried: the 429/503 answers the replication waited out.
//
// "http" counts the answers every device saw: 429s and 503s, those without Retry-After, other
// 5xx, and requests that failed without an answer.

import readline from 'node:readline';
import { performance } from 'node:perf_hooks';

import nodeFetch from 'node-fetch';

import { PouchDB, UsageError, describeDenied, describeError, emit, log, requireField } from './lib.mjs';

let memoryAdapter = false;
try {
  PouchDB.plugin((await import('pouchdb-adapter-memory')).default);
  memoryAdapter = true;
} catch (err) {
  log('pouchdb-adapter-memory not available, falling back to leveldb:', err.message);
}

const http = { requests: 0, status_429: 0, status_503: 0, missing_retry_after: 0,
  other_5xx: 0, network_errors: 0, retry_after_values: {} };

/** A fetch for one device: its session cookie on every request, every answer counted. The
 * device remembers the last Retry-After it was sent, so it waits as long as the server asked. */
function deviceFetch(device) {
  return async (url, options) => {
    if (device.cookie) options.headers.set('Cookie', device.cookie);
    http.requests += 1;
    let resp;
    try {
      resp = await nodeFetch(url, options);
    } catch (err) {
      http.network_errors += 1;
      throw err;
    }
    if (resp.status === 429 || resp.status === 503) {
      http[`status_${resp.status}`] += 1;
      const after = resp.headers.get('retry-after');
      if (after === null) http.missing_retry_after += 1;
      else {
        http.retry_after_values[after] = (http.retry_after_values[after] || 0) + 1;
        device.retryAfter = Number(after);
      }
    } else if (resp.status >= 500) {
      http.other_5xx += 1;
    }
    return resp;
  };
}

function openDevice(cmd, device) {
  const name = `load-${process.pid}-${device.id}`;
  const local = memoryAdapter
    ? new PouchDB(name, { adapter: 'memory' })
    : new PouchDB(`${requireField(cmd, 'leveldb_dir')}/${name}`, { adapter: 'leveldb' });
  const opts = { skip_setup: true, fetch: deviceFetch(device) };
  if (device.auth) opts.auth = device.auth;
  const remote = new PouchDB(requireField(device, 'remote'), opts);
  return { local, remote };
}

// -- records ----------------------------------------------------------------------------------

const NOTES = ['老人独居，子女在外地工作，已登记紧急联系人电话。', '住户反映楼道灯损坏，已报物业维修。',
  '新搬入的租户，已登记居住信息，提醒办理居住证。', '家中有在读小学生两名，询问了课后托管需求。',
  '已宣传反诈骗知识，发放宣传册一份。', '户主血压偏高，建议到社区卫生服务站复查。',
  '电动自行车在楼道充电，已劝导并登记。', '家庭成员信息无变化，核对户口簿一致。'];
const OUTCOMES = ['completed', 'completed', 'completed', 'completed', 'nobody_home', 'refused'];

function rng(seed) { // mulberry32: the same queue for the same seed
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** A device's queue: household visits valid against household_visit.v1, as the PWA saves them. */
export function queue(device) {
  const random = rng(device.seed ?? 1);
  const pick = (list) => list[Math.floor(random() * list.length)];
  const docs = [];
  for (let n = 1; n <= device.records; n += 1) {
    const outcome = pick(OUTCOMES);
    const day = 1 + Math.floor(random() * 28);
    const doc = {
      _id: `household_visit:${device.grid}-${device.id}-${String(n).padStart(5, '0')}`,
      type: 'household_visit', schema_version: 1, grid: device.grid, created_by: device.user,
      household: `household:${device.grid}-${String(1 + Math.floor(random() * 400)).padStart(4, '0')}`,
      visited_on: `2026-11-${String(day).padStart(2, '0')}`, outcome,
      persons_present: outcome === 'completed' ? 1 + Math.floor(random() * 5) : 0,
      notes: outcome === 'completed' ? pick(NOTES) + pick(NOTES) : '无人在家，已留联系卡。',
      device_time: `2026-11-${String(day).padStart(2, '0')}T${String(8 + Math.floor(random() * 10)).padStart(2, '0')}:00:00+08:00`,
    };
    docs.push(doc);
  }
  return docs;
}

// -- storm ------------------------------------------------------------------------------------

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

/** One replication, resumed from its checkpoint after each failure until it completes. */
async function untilComplete(device, run, cmd, deadline, state) {
  let docs = 0;
  for (;;) {
    state.attempts += 1;
    try {
      const result = await run();
      docs += result.docs_written;
      if (result.status === 'complete') return docs;
      throw Object.assign(new Error(`replication ended ${result.status}`), { result });
    } catch (err) {
      docs += err?.result?.docs_written ?? 0;
      state.errors.push(describeError(err));
      const attempts = cmd.attempts ?? 20;
      if (state.attempts >= attempts || performance.now() > deadline) throw err;
      // As the server asked (Retry-After), else PouchDB's own back-off (up to 2 s), jittered so
      // the devices that were refused together do not return together.
      const wait = device.retryAfter ? device.retryAfter * 1000 : 2000;
      device.retryAfter = 0;
      await sleep(wait * (0.5 + Math.random()));
    }
  }
}

async function stormDevice(cmd, device, local, remote) {
  const opts = { batch_size: cmd.batch_size ?? 100, batches_limit: cmd.batches_limit ?? 10 };
  const deadline = performance.now() + (cmd.deadline_ms ?? 600_000);
  const state = { attempts: 0, errors: [] };
  const denied = [];
  const start = performance.now();
  const out = { id: device.id, grid: device.grid, failed: false };
  try {
    out.pushed = await untilComplete(device, () => {
      const rep = PouchDB.replicate(local, remote, opts);
      rep.on('denied', (err) => denied.push(describeDenied(err)));
      return rep;
    }, cmd, deadline, state);
    out.push_ms = performance.now() - start;
    out.pulled = cmd.pull === false ? 0 : await untilComplete(
      device, () => PouchDB.replicate(remote, local, opts), cmd, deadline, state);
  } catch (err) {
    out.failed = true;
    out.error = describeError(err);
  }
  out.elapsed_ms = Math.round((performance.now() - start) * 10) / 10;
  out.push_ms = Math.round((out.push_ms ?? NaN) * 10) / 10;
  out.pull_ms = Math.round((out.elapsed_ms - out.push_ms) * 10) / 10;
  out.denied = denied.length;
  if (denied.length) out.first_denied = denied[0];
  out.attempts = state.attempts;
  out.retried_errors = state.errors.slice(0, 3);
  out.local_docs = (await local.info()).doc_count;
  if (denied.length) out.failed = true;
  return out;
}

async function storm(cmd, lines) {
  const devices = cmd.devices.map((device) => ({ ...device, ...openDevice(cmd, device) }));
  for (const device of devices) {
    const docs = queue(device);
    const results = await device.local.bulkDocs(docs);
    const bad = results.filter((r) => r.error);
    if (bad.length) throw new Error(`local write refused ${bad.length} docs: ${JSON.stringify(bad[0])}`);
  }
  await emit({ ready: true, devices: devices.length, adapter: memoryAdapter ? 'memory' : 'leveldb' });
  const line = await lines.next();
  if (line.done || line.value.trim() !== 'go') throw new UsageError('expected "go" on stdin');
  const started = Date.now();
  const results = await Promise.all(devices.map((d) => stormDevice(cmd, d, d.local, d.remote)));
  await Promise.all(devices.map((d) => d.local.destroy().catch(() => {})));
  return { ok: true, started_at: started, devices: results, http };
}

// -- held -------------------------------------------------------------------------------------

async function held(cmd, lines) {
  const prefix = requireField(cmd, 'watch_prefix');
  const devices = cmd.devices.map((device) => ({ ...device, ...openDevice(cmd, device) }));
  const errors = [];
  let ready = 0;
  const allReady = new Promise((resolve) => {
    if (devices.length === 0) resolve();
    for (const device of devices) {
      device.seen = new Set();
      // Arrivals are read from the local database's own feed: a record counts once it is on
      // the phone, as the app would show it.
      device.feed = device.local.changes({ since: 'now', live: true }).on('change', (change) => {
        if (!change.id.startsWith(prefix) || device.seen.has(change.id)) return;
        device.seen.add(change.id);
        emit({ arrived: change.id, device: device.id, t: Date.now() });
      });
      device.rep = PouchDB.replicate(device.remote, device.local, {
        live: true, retry: true, batch_size: cmd.batch_size ?? 100,
        batches_limit: cmd.batches_limit ?? 10,
        back_off_function: (delay) => {
          // Honour the server's Retry-After when it sent one; else PouchDB's default.
          if (device.retryAfter) {
            const wait = device.retryAfter * 1000 * (0.5 + Math.random());
            device.retryAfter = 0;
            return wait;
          }
          return delay ? Math.min(delay * 2, 60_000) : 500 + Math.random() * 1500;
        },
      });
      device.rep.on('paused', (err) => {
        if (err) {
          errors.push({ device: device.id, ...describeError(err) });
          return;
        }
        if (!device.ready) {
          device.ready = true;
          ready += 1;
          if (ready === devices.length) resolve();
        }
      });
      device.rep.on('error', (err) => errors.push({ device: device.id, fatal: true,
        ...describeError(err) }));
    }
  });
  const readyTimeout = cmd.ready_timeout_ms ?? 300_000;
  const timedOut = await Promise.race([allReady.then(() => false), sleep(readyTimeout).then(() => true)]);
  await emit({ ready: !timedOut, devices: devices.length, caught_up: ready, errors: errors.slice(0, 5), http });
  const hold = cmd.hold_ms ?? 900_000;
  await Promise.race([lines.next(), sleep(hold)]);
  for (const device of devices) {
    device.feed.cancel();
    device.rep.cancel();
  }
  await sleep(100);
  await Promise.all(devices.map((d) => d.local.destroy().catch(() => {})));
  return { ok: true, devices: devices.length, caught_up: ready, errors: errors.slice(0, 50),
    error_count: errors.length, http };
}

// -- trickle ----------------------------------------------------------------------------------

const RETRY_LATER = new Set([429, 503]);

async function trickleDevice(cmd, device) {
  const docs = queue(device);
  const rounds = cmd.rounds ?? 5;
  const per = Math.ceil(docs.length / rounds);
  const out = { id: device.id, grid: device.grid, written: 0, edited: 0, deleted: 0, errors: [],
    retried: [] };
  let pushedSeq = 0;
  const pushed = (seq) => { pushedSeq = Math.max(pushedSeq, Number(seq) || 0); };
  const rep = PouchDB.replicate(device.local, device.remote, { live: true, retry: true,
    batch_size: cmd.batch_size ?? 100, batches_limit: cmd.batches_limit ?? 10,
    back_off_function: (delay) => (delay ? Math.min(delay * 2, 10_000) : 500) });
  rep.on('change', (info) => pushed(info.last_seq));
  // How far the push got is its checkpoint. 'change' fires only for a batch that wrote
  // something: when a batch was stored but its answer or its checkpoint failed (a 503 under
  // load), the retry finds the documents already there and writes only the checkpoint.
  rep.on('checkpoint', (info) => pushed(info.checkpoint));
  // A 429 or 503 says "retry later" (with Retry-After, counted in http): the replication does,
  // so it is reported apart; any other failure or refusal is an error.
  rep.on('paused', (err) => {
    if (err) (RETRY_LATER.has(err.status) ? out.retried : out.errors).push(describeError(err));
  });
  rep.on('denied', (err) => out.errors.push(describeDenied(err)));
  const random = rng((device.seed ?? 1) * 7919);
  const saved = [];
  for (let round = 0; round < rounds; round += 1) {
    const batch = docs.slice(round * per, (round + 1) * per);
    if (batch.length) {
      await device.local.bulkDocs(batch);
      out.written += batch.length;
      saved.push(...batch.map((d) => d._id));
    }
    if (round > 0 && saved.length > 1) {
      const id = saved[Math.floor(random() * saved.length)];
      const doc = await device.local.get(id);
      doc.outcome = doc.outcome === 'completed' ? 'refused' : 'completed';
      doc.persons_present = doc.outcome === 'completed' ? 2 : 0;
      await device.local.put(doc);
      out.edited += 1;
      if (round % 3 === 2) {
        const gone = saved.splice(Math.floor(random() * saved.length), 1)[0];
        await device.local.remove(await device.local.get(gone));
        out.deleted += 1;
      }
    }
    await sleep(cmd.interval_ms ?? 500);
  }
  const target = (await device.local.info()).update_seq;
  const deadline = performance.now() + (cmd.deadline_ms ?? 120_000);
  while (pushedSeq < target && performance.now() < deadline) await sleep(100);
  out.caught_up = pushedSeq >= target;
  rep.cancel();
  return out;
}

async function trickle(cmd) {
  const devices = cmd.devices.map((device) => ({ ...device, ...openDevice(cmd, device) }));
  const results = await Promise.all(devices.map((d) => trickleDevice(cmd, d)));
  await Promise.all(devices.map((d) => d.local.destroy().catch(() => {})));
  return { ok: true, devices: results, http };
}

// -- main -------------------------------------------------------------------------------------

async function main() {
  const rl = readline.createInterface({ input: process.stdin, crlfDelay: Infinity });
  const lines = rl[Symbol.asyncIterator]();
  let code = 0;
  try {
    const first = await lines.next();
    if (first.done) throw new UsageError('expected a JSON command on the first line of stdin');
    let cmd;
    try {
      cmd = JSON.parse(first.value);
    } catch (err) {
      throw new UsageError(`the first line is not JSON: ${err.message}`);
    }
    if (!Array.isArray(cmd.devices)) throw new UsageError('"devices" must be a list');
    let out;
    if (cmd.op === 'storm') out = await storm(cmd, lines);
    else if (cmd.op === 'held') out = await held(cmd, lines);
    else if (cmd.op === 'trickle') out = await trickle(cmd);
    else throw new UsageError(`op must be "storm", "held" or "trickle", got ${JSON.stringify(cmd.op)}`);
    await emit(out);
  } catch (err) {
    code = err instanceof UsageError ? 2 : 1;
    if (code === 1) log(err?.stack || err);
    await emit({ ok: false, error: describeError(err), http }).catch(() => {});
  }
  process.exit(code);
}

await main();
