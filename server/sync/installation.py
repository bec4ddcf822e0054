"""What makes this installation itself: a uuid that never changes (PouchDB builds its checkpoint
ids from the server's uuid, so a new one would restart every phone's replication from zero) and
the secret that signs session cookies. Both live in the directory database, so every server
process in front of the same CouchDB shares them."""

from __future__ import annotations

import dataclasses
import secrets
import uuid

from server.domain.scope import DIRECTORY_DB, INTERNAL_DBS
from server.store.couch import Conflict, CouchClient, NotFound, db_path

INSTALLATION_DOC = "_local/installation"


@dataclasses.dataclass(frozen=True)
class Installation:
    uuid: str
    secret: bytes


def new_installation_doc() -> dict[str, str]:
    return {"_id": INSTALLATION_DOC, "uuid": uuid.uuid4().hex, "secret": secrets.token_hex(32)}


async def load_installation(couch: CouchClient) -> Installation:
    """Create the internal databases and the installation record if missing; two processes
    starting at once converge on one record (the loser of the write reads the winner's)."""
    for db in INTERNAL_DBS:
        await couch.ensure_db(db)
    path = db_path(DIRECTORY_DB, INSTALLATION_DOC)
    try:
        doc = await couch.get(path)
    except NotFound:
        doc = new_installation_doc()
        try:
            await couch.put(path, doc)
        except Conflict:
            doc = await couch.get(path)
    return Installation(uuid=str(doc["uuid"]), secret=bytes.fromhex(str(doc["secret"])))
