// A database behind the gateway (`/couch/<db>`) as PouchDB's replication peer: with the session
// cookie, and named by the server alone.
//
// PouchDB names a replication, and so finds its checkpoints (`_local/<name>`, on the phone and
// on the server), after the peer's id: the server's uuid (its welcome, `/couch/`) and the
// database. When the welcome does not answer it names the peer after its URL instead, a name
// with no checkpoint. A retry that asked the welcome just before the network came back, and the
// database just after, then began again from 0: the whole grid read again, for nothing. Here
// the id is the server's or the replication fails, and its retry asks again; the name is the one
// PouchDB gave when the welcome answered, so checkpoints already on phones stay theirs.

/* global PouchDB */

import { toldRevoked } from "./revoke.js";

export function remoteDatabase(name) {
  const remote = new PouchDB(new URL(`/couch/${name}`, location.origin).href, {
    skip_setup: true,
    fetch: async (url, opts) => {
      const response = await PouchDB.fetch(url, { ...opts, credentials: "same-origin" });
      toldRevoked(response); // a revoked phone starts over and wipes (pwa/revoke.js)
      return response;
    },
  });
  remote.id = async () => {
    const response = await remote.fetch("/"); // a TypeError with no network
    const welcome = response.ok ? await response.json().catch(() => ({})) : {};
    if (typeof welcome.uuid !== "string" || !welcome.uuid) {
      throw Object.assign(new Error("服务器未回答 / The server did not answer"), {
        status: response.ok ? 0 : response.status,
      });
    }
    return welcome.uuid + encodeURIComponent(name);
  };
  return remote;
}
