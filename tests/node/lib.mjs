// Shared helpers for the Node-side test/benchmark CLIs (pouch_client.mjs,
// bench_sync.mjs). They drive a real PouchDB 9 client so the Python tests can
// check the gateway against the replication protocol as browsers speak it.
//
// Protocol with the caller: one JSON command object on stdin, JSON result
// line(s) on stdout, anything else on stderr.

import fs from 'node:fs/promises';
import path from 'node:path';
import { performance } from 'node:perf_hooks';

import PouchDB from 'pouchdb';

// stdout is reserved for result lines, so a stray console.log from a library
// (or from us) must not corrupt it: route every console stream to stderr.
console.log = console.error;
console.info = console.error;
console.debug = console.error;

export const DEFAULT_BATCH_SIZE = 100;
export const DEFAULT_BATCHES_LIMIT = 10;

/** An error whose message is meant for the caller as-is (bad command etc.). */
export class UsageError extends Error {
  constructor(message) {
    super(message);
    this.name = 'usage_error';
  }
}

/** Read all of stdin and parse it as one JSON object. */
export async function readCommand() {
  const chunks = [];
  for await (const chunk of process.stdin) chunks.push(chunk);
  const text = Buffer.concat(chunks).toString('utf8').trim();
  if (!text) throw new UsageError('expected a JSON command object on stdin');
  let cmd;
  try {
    cmd = JSON.parse(text);
  } catch (err) {
    throw new UsageError(`stdin is not valid JSON: ${err.message}`);
  }
  if (!cmd || typeof cmd !== 'object' || Array.isArray(cmd)) {
    throw new UsageError('the command must be a JSON object');
  }
  return cmd;
}

/** Write one JSON line to stdout; resolves once it has been handed to the OS. */
export function emit(obj) {
  return new Promise((resolve, reject) => {
    process.stdout.write(JSON.stringify(obj) + '\n', (err) => (err ? reject(err) : resolve()));
  });
}

export function log(...args) {
  console.error('[pouch]', ...args);
}

export function requireField(cmd, name) {
  if (cmd[name] === undefined || cmd[name] === null || cmd[name] === '') {
    throw new UsageError(`missing required field "${name}"`);
  }
  return cmd[name];
}

/** Replication tuning shared by every op, with the documented defaults. */
export function batchOptions(cmd) {
  const options = {
    batch_size: cmd.batch_size ?? DEFAULT_BATCH_SIZE,
    batches_limit: cmd.batches_limit ?? DEFAULT_BATCHES_LIMIT,
  };
  // PouchDB's own replication filters, passed as given: filter ('ddoc/name' or '_view'),
  // query_params, selector, view, doc_ids.
  for (const key of ['filter', 'query_params', 'selector', 'view', 'doc_ids']) {
    if (cmd[key] !== undefined) options[key] = cmd[key];
  }
  return options;
}

/** Open (creating if needed) the local leveldb database stored in directory `dir`. */
export async function openLocal(dir) {
  const full = path.resolve(dir);
  // leveldown creates the database directory itself but not its parents.
  await fs.mkdir(path.dirname(full), { recursive: true });
  return new PouchDB(full, { adapter: 'leveldb' });
}

/** Open `dir` as an empty local database, destroying whatever was there. */
export async function openFreshLocal(dir) {
  const old = await openLocal(dir);
  await old.destroy();
  return openLocal(dir);
}

/**
 * Remote database handle. `auth` goes through PouchDB's own `auth` option so
 * every request carries Basic credentials, as a browser client configured
 * that way would. skip_setup defaults to true: the client must not try to
 * create the database (the gateway decides which databases exist).
 */
export function openRemote(cmd) {
  const url = requireField(cmd, 'remote');
  const opts = { skip_setup: cmd.skip_setup ?? true };
  if (cmd.auth) {
    opts.auth = { username: cmd.auth.username, password: cmd.auth.password };
  }
  return new PouchDB(url, opts);
}

/** Close databases, ignoring errors: we are shutting down either way. */
export async function closeAll(...dbs) {
  await Promise.all(
    dbs.filter(Boolean).map((db) => db.close().catch((err) => log('close failed:', err.message))),
  );
}

/** JSON-safe view of a PouchDB / HTTP / JS error (no stack, no circular refs). */
export function describeError(err) {
  if (err === null || typeof err !== 'object') return { message: String(err) };
  const out = {};
  for (const key of ['id', 'name', 'error', 'status', 'reason', 'message', 'code']) {
    if (err[key] !== undefined && typeof err[key] !== 'object') out[key] = err[key];
  }
  return out;
}

/**
 * Shape of one `denied` event. In PouchDB 9 the payload is the per-doc error
 * from the target's _bulk_docs response, run through
 * generateErrorFromResponse: CouchDB's {id, error, reason} plus name/message.
 */
export function describeDenied(err) {
  return {
    id: err?.id ?? null,
    error: err?.error ?? err?.name ?? null,
    reason: err?.reason ?? err?.message ?? null,
  };
}

/** Docs for an op: inline `docs` array, else a JSON array file `docs_file`, else []. */
export async function loadDocs(cmd) {
  if (Array.isArray(cmd.docs) && cmd.docs.length > 0) return cmd.docs;
  if (cmd.docs_file) {
    const docs = JSON.parse(await fs.readFile(cmd.docs_file, 'utf8'));
    if (!Array.isArray(docs)) throw new UsageError(`${cmd.docs_file} does not hold a JSON array`);
    return docs;
  }
  return [];
}

/**
 * Write docs into the local db as ordinary edits (new_edits true), so each
 * gets a fresh revision the replicator will then push. Any per-doc failure
 * (typically a conflict because the id already exists locally) means the
 * test set-up is wrong, so it is an error rather than something to report.
 */
export async function writeLocalDocs(db, docs) {
  if (docs.length === 0) return 0;
  const results = await db.bulkDocs(docs);
  const failed = results.filter((r) => r.error);
  if (failed.length > 0) {
    const first = describeError(failed[0]);
    throw new Error(
      `local bulkDocs rejected ${failed.length}/${docs.length} docs; first: ${JSON.stringify(first)}`,
    );
  }
  return results.length;
}

const roundMs = (ms) => Math.round(ms * 10) / 10;

/** Milliseconds since `start` (a performance.now() value), 0.1 ms resolution. */
export function since(start) {
  return roundMs(performance.now() - start);
}

/**
 * Run one one-shot replication and time it.
 *
 * `onChange(info, replication)` sees every `change` event (info is the
 * running result: docs_read, docs_written, ...), which lets a caller cancel
 * mid-way. Denied docs are collected, not fatal; a replication `error` (e.g.
 * 401 on the changes feed, a 5xx) rejects, with the partial result attached
 * as `err.result` by PouchDB.
 */
export async function replicateOnce(src, target, opts, { onChange } = {}) {
  const denied = [];
  const start = performance.now();
  const rep = PouchDB.replicate(src, target, opts);
  rep.on('denied', (err) => denied.push(describeDenied(err)));
  if (onChange) rep.on('change', (info) => onChange(info, rep));
  const result = await rep;
  const elapsed_ms = since(start);
  return { result, denied, elapsed_ms };
}

/** The result fields every replication op reports. */
export function summarize(result) {
  return {
    docs_read: result.docs_read,
    docs_written: result.docs_written,
    doc_write_failures: result.doc_write_failures,
    status: result.status,
    last_seq: result.last_seq ?? null,
    errors: (result.errors || []).map(describeError),
  };
}

/**
 * Run a CLI: read the command, hand it to `handler`, print what it returns as
 * the final line. Failures print {"ok":false,"error":...} and exit non-zero
 * (2 for a bad command, 1 otherwise). We exit explicitly once stdout is
 * flushed, because HTTP keep-alive sockets or a cancelled live feed could
 * otherwise keep the process around after the answer is out.
 */
export async function runCli(handler) {
  let code = 0;
  try {
    const cmd = await readCommand();
    const out = await handler(cmd);
    await emit(out);
  } catch (err) {
    code = err instanceof UsageError ? 2 : 1;
    if (code === 1) log(err?.stack || err);
    const out = { ok: false, error: describeError(err) };
    // PouchDB attaches the partial replication result to fatal errors.
    if (err?.result) out.result = summarize(err.result);
    await emit(out).catch(() => {});
  }
  process.exit(code);
}

export { PouchDB };
