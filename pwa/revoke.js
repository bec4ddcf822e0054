// A phone the admin revoked (server/domain/devices.py): to anything its cookie still asks, the
// server answers 401 with `X-Linli-Revoked: 1`. The phone then wipes what it holds of the city
// at once, before any database is opened again: the page starts over, deletes every IndexedDB
// database the page can reach (the grids' copies and their outboxes), every cache, and what
// localStorage and sessionStorage remember (the last login, its grids), then says why.

const WIPE_KEY = "linli.wipe"; // told: the next start wipes first
const WIPED_KEY = "linli.wiped"; // when the wipe ran: the notice stays until the next login

// Whether a server answer says this phone is revoked; if so, the page starts over to wipe.
export function toldRevoked(response) {
  if (!response || response.status !== 401 || response.headers.get("X-Linli-Revoked") !== "1") return false;
  if (!localStorage.getItem(WIPE_KEY)) {
    localStorage.setItem(WIPE_KEY, new Date().toISOString());
    location.reload();
  }
  return true;
}

function deleteDatabase(name) {
  return new Promise((done) => {
    const request = indexedDB.deleteDatabase(name);
    request.onsuccess = request.onerror = () => done();
  });
}

// At start, before anything opens a database: the wipe, if the server asked for it. Returns
// whether it ran.
export async function wipeIfRevoked() {
  if (!localStorage.getItem(WIPE_KEY)) return false;
  for (const { name } of await indexedDB.databases()) await deleteDatabase(name);
  if (globalThis.caches) for (const key of await caches.keys()) await caches.delete(key);
  localStorage.clear();
  sessionStorage.clear();
  localStorage.setItem(WIPED_KEY, new Date().toISOString());
  return true;
}

// When this phone was wiped, while no one has logged in since; else null.
export function wipedAt() {
  return localStorage.getItem(WIPED_KEY);
}

export function forgetWipe() {
  localStorage.removeItem(WIPED_KEY);
}
