#!/usr/bin/env node
// Time one PouchDB 9 replication against a CouchDB-compatible URL.
//
// stdin:  {"op":"pull"|"push", "remote", "auth" ({username,password}|null),
//          "local" (leveldb dir), "batch_size" (100), "batches_limit" (10),
//          "docs_file" (push only: JSON array of docs)}
// stdout: {"ok":true,"op","docs","elapsed_ms","docs_per_sec","denied":N,
//          "docs_read","docs_written","doc_write_failures","status"}
//
// Both ops start from an empty local db (the directory is wiped), so a pull
// measures a full initial sync and a push sends exactly the docs in
// docs_file. Writing those docs locally happens before the clock starts.
// PouchDB revision ids are content hashes, so pushing the same docs_file to
// a remote that already holds those docs sends nothing (docs 0): push
// benchmarks need a fresh remote db or new doc ids each run.
// "docs" is docs_read, i.e. what the replicator moved end-to-end, denied
// docs included; docs_per_sec is docs / elapsed seconds.

import {
  UsageError,
  batchOptions,
  closeAll,
  loadDocs,
  log,
  openFreshLocal,
  openRemote,
  replicateOnce,
  requireField,
  runCli,
  writeLocalDocs,
} from './lib.mjs';

runCli(async (cmd) => {
  const { op } = cmd;
  if (op !== 'pull' && op !== 'push') throw new UsageError(`op must be "pull" or "push", got ${JSON.stringify(op)}`);
  if (op === 'push') requireField(cmd, 'docs_file');

  const local = await openFreshLocal(requireField(cmd, 'local'));
  const remote = openRemote(cmd);
  try {
    let loaded = 0;
    if (op === 'push') {
      // Not timed: only the replication is measured.
      loaded = await writeLocalDocs(local, await loadDocs(cmd));
    }
    const [src, target] = op === 'pull' ? [remote, local] : [local, remote];
    const { result, denied, elapsed_ms } = await replicateOnce(src, target, batchOptions(cmd));
    if (op === 'push' && result.docs_read < loaded) {
      log(`only ${result.docs_read}/${loaded} docs were pushed: the remote already had the rest`);
    }
    const docs = result.docs_read;
    return {
      ok: true,
      op,
      docs,
      elapsed_ms,
      docs_per_sec: elapsed_ms > 0 ? Math.round((docs / elapsed_ms) * 1000 * 10) / 10 : null,
      denied: denied.length,
      docs_read: result.docs_read,
      docs_written: result.docs_written,
      doc_write_failures: result.doc_write_failures,
      status: result.status,
    };
  } finally {
    await closeAll(local, remote);
  }
});
