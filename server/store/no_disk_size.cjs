"use strict";
// Loaded into the embedded store before PouchDB Server (`node --require`, server/store/embedded.py).
//
// PouchDB Server answers every request after asking its `_users` database for its info (its
// session handling), and pouchdb-size adds to every info a `disk_size` measured by walking the
// database's folder with lstat: about 30 % of the store's CPU per request, the store being the
// one core every phone's sync goes through. Nothing reads `disk_size` (CouchDB
// deprecated it; PouchDB's replication reads `update_seq`), so the info is left as PouchDB gives
// it. A PouchDB Server without pouchdb-size (LINLI_POUCHDB_SERVER) is left as it is.
const fs = require("fs");
const path = require("path");

try {
  // the pouchdb-size that PouchDB Server's express-pouchdb loads, wherever npm put it
  const server = path.dirname(fs.realpathSync(process.argv[1]));
  const express = path.dirname(require.resolve("express-pouchdb", { paths: [server] }));
  const sizes = require(require.resolve("pouchdb-size", { paths: [express] }));
  sizes.installSizeWrapper = function leaveInfoAsItIs() {};
} catch (err) {
  if (err.code !== "MODULE_NOT_FOUND") {
    throw err;
  }
}
