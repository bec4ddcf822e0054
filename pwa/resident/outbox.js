// What the resident did on the phone that the server has not taken yet (待发送): a notice read
// or confirmed, a correction request. Each is a call of the server's own route for it (POST
// /api/notices/{id}/receipt, POST /api/residents/corrections), kept in a local document of the
// phone's database (`_local/` never replicates) and made in order when the network is there.
// The server decides (a receipt once per notice, a correction checked against the household);
// what it has taken comes back through the sync as its own record, and leaves the outbox.
// A refusal is kept with its reason for the screen to show; a failure of the network or the
// server is tried again later, never dropped.

const OUTBOX = "_local/linli-resident-outbox";

export class Outbox {
  constructor(db) {
    this.db = db;
    this.items = [];
    this.lastSync = 0;
    this.rev = undefined;
    this.queue = Promise.resolve();
  }

  async load() {
    try {
      const box = await this.db.get(OUTBOX);
      this.items = Array.isArray(box.items) ? box.items : [];
      this.lastSync = box.last_sync || 0;
      this.rev = box._rev;
    } catch (err) {
      if (err.status !== 404) throw err;
    }
    return this;
  }

  // Read-modify-write of one local document, one at a time. A write that failed (the disk
  // full, say) fails for its caller only: the next change still runs.
  change(edit) {
    this.queue = this.queue.catch(() => {}).then(async () => {
      edit(this);
      for (;;) {
        try {
          const res = await this.db.put({ _id: OUTBOX, _rev: this.rev, items: this.items, last_sync: this.lastSync });
          this.rev = res.rev;
          return;
        } catch (err) {
          if (err.status !== 409) throw err;
          this.rev = (await this.db.get(OUTBOX))._rev;
        }
      }
    });
    return this.queue;
  }

  waiting() {
    return this.items.filter((i) => !i.refused);
  }

  refused() {
    return this.items.filter((i) => i.refused);
  }

  // `key` names what the item is about (a notice's receipt: one item, a confirmation replaces
  // a read), `path` and `body` the call, `shown` what the screens show of it until sent.
  add(item) {
    return this.change((box) => {
      const same = box.items.findIndex((i) => i.key === item.key);
      const entry = { ...item, at: Date.now() };
      if (same < 0) box.items.push(entry);
      else if (item.replaces) box.items[same] = entry;
    });
  }

  drop(item) {
    return this.change((box) => {
      box.items = box.items.filter((i) => i !== item && i.key !== item.key);
    });
  }

  // Sends what waits, in order, through `call(path, body)` ({status, ok, body, retryAfter}).
  // Stops at the first failure that is not the item's own (network, server, login, a pause):
  // returns it. `sent(item, reply)` hears of each one the server took.
  async flush(call, sent = () => {}) {
    for (const item of this.waiting()) {
      const reply = await call(item.path, item.body);
      if (reply.ok) {
        sent(item, reply);
        await this.change((box) => {
          box.items = box.items.filter((i) => i.key !== item.key || i.at !== item.at);
        });
      } else if ([400, 403, 404, 409].includes(reply.status) || (reply.status === 429 && !reply.retryAfter)) {
        await this.change(() => {
          item.refused = { status: reply.status, reason: reply.body.reason || String(reply.status) };
        });
      } else {
        return reply;
      }
    }
    return null;
  }

  synced() {
    return this.change((box) => {
      box.lastSync = Date.now();
    });
  }
}
