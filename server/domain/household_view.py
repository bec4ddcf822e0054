"""What a resident's phone receives of their household (我的住户): the household and its present
members as the registry and the worker's last visit hold them, less what is not theirs to
carry around.

1. ID numbers (身份证号) show their last two characters only (`****************2X`). The first
   six and the birth date beside them (a person's birth year and month are shown) would leave a
   single digit hidden, which the check character gives away (docs: GB 11643-1999), so the
   masking of the supervisors' screens (server/domain/masking.py, first three and last four)
   is not enough on a phone that leaves the house; nor is the last four: with the birth year
   and month and the place of registration beside them, only the day is hidden and the check
   character leaves about three numbers (an attacker's review counted 2.94 over 2,000). The
   last two leave the day and two digits of the sequence: about 280. The full number is
   shown only to the person themself after re-entering their password: a logged action of the
   web layer, not a replicated document.
2. Phones show their first three and last four digits (masking.mask_phone).
3. The worker's bookkeeping stays on the server: who changed which field when (`edits`) and
   the worker's notes (`remarks`).
Everything else the household's residents may see, special groups included: it is their own
household's record (PIPL art. 45), and a correction request points at it.

A view keeps the document's `_id` and `_rev`, so replication to the phone works as for any
document; the phone never writes these types back (server/domain/resident_writes.py), so no
masked value can return to the store.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from server.domain.masking import mask_phone

VIEWED_TYPES = ("household", "person")
DROPPED = ("edits", "remarks", "_revisions", "_revs_info", "_conflicts", "_deleted_conflicts")
SHOWN_ID_CHARS = 2


def mask_id_number_for_resident(value: Any) -> str:
    """Rule 1: the last two characters, the rest as stars (the length stays)."""
    text = str(value or "")
    if len(text) <= SHOWN_ID_CHARS:
        return "*" * len(text)
    return "*" * (len(text) - SHOWN_ID_CHARS) + text[-SHOWN_ID_CHARS:]


def resident_view(doc: Mapping[str, Any]) -> dict[str, Any]:
    """A household or person record as a resident's phone receives it (rules 1-3); any other
    type unchanged but for the store's revision bookkeeping."""
    shown = {k: v for k, v in doc.items() if k not in DROPPED}
    if doc.get("type") not in VIEWED_TYPES:
        return shown
    if "id_number" in shown:
        shown["id_number"] = mask_id_number_for_resident(shown["id_number"])
    if "phone" in shown:
        shown["phone"] = mask_phone(shown["phone"])
    return shown
