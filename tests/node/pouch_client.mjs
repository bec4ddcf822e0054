#!/usr/bin/env node
// Drive a real PouchDB 9 client (leveldb local db) against a CouchDB-compatible
// URL, for the Python tests.
//
//   echo '{"op":"pull","remote":"http://.../couch/db","local":"/tmp/x/db"}' \
//     | node tests/node/pouch_client.mjs
//
// Reads one JSON command on stdin; prints exactly one JSON result line on
// stdout (live_wait prints a {"ready":true} line first). Logs go to stderr.
// Exit 0 when the command ran (denied docs included), 1 on a crash or a
// replication error, 2 on a malformed command; failures print
// {"ok":false,"error":{name,status,message,...}} (+ "result" with the partial
// replication counts when PouchDB provides them).
//
// Common fields: op, remote (db URL), local (leveldb dir), auth
// ({username,password} | null), batch_size (100), batches_limit (10),
// skip_setup (true); pull and push also take PouchDB's filter options as given: filter
// ('ddoc/name' or '_view'), query_params, selector, view, doc_ids.
//
//   pull      [stop_after_docs]  -> {ok,docs_read,docs_written,doc_write_failures,
//                                   status,elapsed_ms,local_doc_count,last_seq,errors}
//   push      [docs|docs_file]   -> {ok,docs_read,docs_written,doc_write_failures,
//                                   denied:[{id,error,reason}],status,elapsed_ms,errors}
//   live_wait wait_for_id [timeout_ms=10000] [ready_timeout_ms=60000]
//                                -> {ready:true} then {ok,found:true,latency_ms}
//                                   or {ok,found:false}
//   put       docs|docs_file     -> {ok,results:[{ok,id,rev}|{id,error,reason}]}
//   count     [with_ids]         -> {ok,local_doc_count[,ids]}
//   push_logged [docs|docs_file] [cookie_login] [relogin_rounds=0]
//                                -> {ok,error,acked:[id],denied,rounds,unauthorized,
//                                   docs_written,diffed,checkpoints:[seq],local_doc_count}
//             a push that reports which records the server acknowledged (each batch's
//             `change` event), also when it fails part-way (exit 0 then, ok:false). With
//             cookie_login the client logs in through `_session` (auth) and carries the
//             session cookie (PouchDB's own cookie jar) instead of Basic; with relogin_rounds
//             a 401 makes it log in again and push again, as the PWA does, up to that many times.
//             diffed: how many changes were asked about in _revs_diff (where a resumed push
//             started, whatever its batches); checkpoints: each checkpoint written, in order.

import { performance } from 'node:perf_hooks';

import {
  PouchDB,
  UsageError,
  batchOptions,
  closeAll,
  describeDenied,
  describeError,
  emit,
  loadDocs,
  log,
  openLocal,
  openRemote,
  replicateOnce,
  requireField,
  runCli,
  since,
  summarize,
  writeLocalDocs,
} from './lib.mjs';

const DEFAULT_WAIT_TIMEOUT_MS = 10000;
const DEFAULT_READY_TIMEOUT_MS = 60000;

/** One-shot remote -> local replication, optionally cancelled part-way. */
async function opPull(cmd) {
  const local = await openLocal(requireField(cmd, 'local'));
  const remote = openRemote(cmd);
  try {
    const stopAfter = cmd.stop_after_docs;
    // Cancelling from the `change` event interrupts the replication right
    // after a batch has been written locally but (usually) before its
    // checkpoint is stored: the harsh case a resumed pull must cope with.
    const onChange = stopAfter
      ? (info, rep) => {
          if (info.docs_written >= stopAfter) rep.cancel();
        }
      : undefined;
    const { result, elapsed_ms } = await replicateOnce(remote, local, batchOptions(cmd), { onChange });
    const info = await local.info();
    const s = summarize(result);
    return {
      ok: true,
      docs_read: s.docs_read,
      docs_written: s.docs_written,
      doc_write_failures: s.doc_write_failures,
      status: s.status,
      elapsed_ms,
      local_doc_count: info.doc_count,
      last_seq: s.last_seq,
      errors: s.errors,
    };
  } finally {
    await closeAll(local, remote);
  }
}

/** Write docs locally (untimed), then one-shot local -> remote replication. */
async function opPush(cmd) {
  const local = await openLocal(requireField(cmd, 'local'));
  const remote = openRemote(cmd);
  try {
    await writeLocalDocs(local, await loadDocs(cmd));
    const { result, denied, elapsed_ms } = await replicateOnce(local, remote, batchOptions(cmd));
    const s = summarize(result);
    return {
      ok: true,
      docs_read: s.docs_read,
      docs_written: s.docs_written,
      doc_write_failures: s.doc_write_failures,
      denied,
      status: s.status,
      elapsed_ms,
      errors: s.errors,
    };
  } finally {
    await closeAll(local, remote);
  }
}

/**
 * Live, retrying pull. Once it has caught up, print {"ready":true}; the caller
 * then changes `wait_for_id` through another client and we report how long
 * the change took to arrive in the local db.
 */
async function opLiveWait(cmd) {
  const waitForId = requireField(cmd, 'wait_for_id');
  const timeoutMs = cmd.timeout_ms ?? DEFAULT_WAIT_TIMEOUT_MS;
  const readyTimeoutMs = cmd.ready_timeout_ms ?? DEFAULT_READY_TIMEOUT_MS;
  const local = await openLocal(requireField(cmd, 'local'));
  const remote = openRemote(cmd);
  const { batch_size } = batchOptions(cmd);
  const rep = PouchDB.replicate(remote, local, { live: true, retry: true, batch_size });
  const timers = [];
  try {
    // A live replication only settles on cancel or a fatal (non-retried,
    // e.g. 401/403) error; turn the latter into a rejection we can race.
    const failed = new Promise((_, reject) => rep.catch(reject));

    // `paused` without an error means the feed is caught up; `paused` with
    // an error is the retry back-off and does not count.
    const caughtUp = new Promise((resolve, reject) => {
      timers.push(setTimeout(
        () => reject(new Error(`live pull did not catch up within ${readyTimeoutMs} ms`)),
        readyTimeoutMs,
      ));
      rep.on('paused', (err) => {
        if (err) log('live pull paused on error, will retry:', err.message);
        else resolve();
      });
    });
    await Promise.race([caughtUp, failed]);

    // `change` fires after the batch has been written to the local db, so
    // seeing the id there means the doc is readable locally.
    let readyAt = null;
    const found = new Promise((resolve) => {
      rep.on('change', (info) => {
        if (readyAt !== null && info.docs.some((doc) => doc._id === waitForId)) {
          resolve({ ok: true, found: true, latency_ms: since(readyAt) });
        }
      });
    });
    const timedOut = new Promise((resolve) => {
      timers.push(setTimeout(() => resolve({ ok: true, found: false }), timeoutMs));
    });

    readyAt = performance.now();
    await emit({ ready: true });
    return await Promise.race([found, timedOut, failed]);
  } finally {
    timers.forEach(clearTimeout);
    rep.cancel();
    await closeAll(local, remote);
  }
}

/** Write docs straight into the remote db; return its per-doc results. */
async function opPut(cmd) {
  const remote = openRemote(cmd);
  try {
    const docs = await loadDocs(cmd);
    if (docs.length === 0) throw new UsageError('put needs a non-empty "docs" or "docs_file"');
    const results = await remote.bulkDocs(docs);
    // Successes are CouchDB's {ok,id,rev}; PouchDB turns failures into error
    // objects (with a stack), so reduce those back to CouchDB's shape.
    return {
      ok: true,
      results: results.map((r) =>
        r.error ? { id: r.id, error: r.error, reason: r.reason ?? r.message } : r,
      ),
    };
  } finally {
    await closeAll(remote);
  }
}

/** Local doc count, and optionally the sorted ids of the non-design docs. */
async function opCount(cmd) {
  const local = await openLocal(requireField(cmd, 'local'));
  try {
    const info = await local.info();
    const out = { ok: true, local_doc_count: info.doc_count };
    if (cmd.with_ids) {
      const all = await local.allDocs();
      out.ids = all.rows.map((row) => row.id).filter((id) => !id.startsWith('_design/')).sort();
    }
    if (cmd.with_docs) {  // the documents as the phone holds them, by id
      const all = await local.allDocs({ include_docs: true });
      out.docs = Object.fromEntries(all.rows.map((row) => [row.id, row.doc]));
    }
    return out;
  } finally {
    await closeAll(local);
  }
}

/** The gateway's `_session` URL for a database URL (`.../couch/grid-x` -> `.../couch/_session`). */
function sessionUrl(remoteUrl) {
  return new URL('_session', remoteUrl.replace(/\/?$/, '/').replace(/[^/]+\/$/, '')).href;
}

async function cookieLogin(cmd) {
  const auth = requireField(cmd, 'auth');
  const resp = await PouchDB.fetch(sessionUrl(requireField(cmd, 'remote')), {
    method: 'POST',
    headers: { 'Content-Type': 'application/json' },
    body: JSON.stringify({ name: auth.username, password: auth.password }),
  });
  if (resp.status !== 200) throw new Error(`login answered ${resp.status}`);
}

async function opPushLogged(cmd) {
  const local = await openLocal(requireField(cmd, 'local'));
  const remote = openRemote(cmd.cookie_login ? { ...cmd, auth: null } : cmd);
  try {
    await writeLocalDocs(local, await loadDocs(cmd));
    if (cmd.cookie_login) await cookieLogin(cmd);
    const acked = [];
    const denied = [];
    let docsWritten = 0;
    let unauthorized = 0;
    let rounds = 0;
    let error = null;
    let diffed = 0;
    const checkpoints = [];
    for (;;) {
      rounds += 1;
      error = null;
      const rep = PouchDB.replicate(local, remote, batchOptions(cmd));
      rep.on('change', (info) => acked.push(...(info.docs || []).map((doc) => doc._id)));
      rep.on('denied', (err) => denied.push(describeDenied(err)));
      rep.on('checkpoint', (event) => {
        if (event.revs_diff) diffed += 1;
        if (event.checkpoint !== undefined) checkpoints.push(event.checkpoint);
      });
      try {
        docsWritten += (await rep).docs_written;
      } catch (err) {
        error = describeError(err);
        docsWritten += err?.result?.docs_written ?? 0;
      }
      const authError = error && (error.status === 401 || error.name === 'unauthorized');
      if (authError) unauthorized += 1;
      if (!authError || rounds > (cmd.relogin_rounds ?? 0)) break;
      log('401 during the push: logging in again');
      await cookieLogin(cmd);
    }
    const info = await local.info();
    return {
      ok: error === null,
      error,
      acked,
      denied,
      rounds,
      unauthorized,
      docs_written: docsWritten,
      diffed,
      checkpoints,
      local_doc_count: info.doc_count,
    };
  } finally {
    await closeAll(local, remote);
  }
}

const OPS = {
  pull: opPull,
  push: opPush,
  live_wait: opLiveWait,
  put: opPut,
  count: opCount,
  push_logged: opPushLogged,
};

runCli(async (cmd) => {
  const op = OPS[cmd.op];
  if (!op) throw new UsageError(`unknown op ${JSON.stringify(cmd.op)}; expected one of ${Object.keys(OPS).join(', ')}`);
  return op(cmd);
});
