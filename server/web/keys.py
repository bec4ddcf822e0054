"""Every piece of shared state the app holds, declared in one place (no module singletons)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Mapping
from typing import Any

from aiohttp import web

from server.config import Config
from server.domain.scope import Directory, User
from server.domain.validation import SchemaRegistry
from server.store.couch import CouchClient
from server.store.embedded import EmbeddedStore
from server.sync.aggregates import Aggregates
from server.sync.allocation import Allocator
from server.sync.allowed import ResidentIndex
from server.sync.authors import AuthorIndex
from server.sync.centre import Centre
from server.sync.conflicts import Resolver
from server.sync.deliberation import Deliberation
from server.sync.door_links import DoorLinks
from server.sync.feeds import LiveFeeds
from server.sync.fees import Fees
from server.sync.installation import Installation
from server.sync.lease import Leases
from server.sync.liaison import Liaison
from server.sync.mediation import Mediation
from server.sync.mutual_aid import Board, MutualAid
from server.sync.mydata import MyData
from server.sync.notices import Notices
from server.sync.ordering import ReceiptCache
from server.sync.party import Party
from server.sync.questionnaires import Questionnaires
from server.sync.ratings import Ratings
from server.sync.receipts import ReceiptLog
from server.sync.replication import FeedLimiter
from server.sync.reports import ReportRows, Reports
from server.sync.residents import Residents
from server.sync.stars import Stars
from server.sync.supervisor import Supervisor
from server.sync.verification import Verification
from server.sync.volunteering import Ledgers, Volunteering
from server.sync.votes import Votes
from server.web.auth import Authenticator, FailureCounter, Session
from server.web.limits import ActLimits, SignupLimits

CONFIG = web.AppKey("config", Config)
DemoLoader = Callable[[Config, str], None]  # (configuration, store URL): writes the demo city
DEMO_LOADER = web.AppKey("demo_loader", DemoLoader)
COUCH = web.AppKey("couch", CouchClient)
STORE = web.AppKey("store", EmbeddedStore)  # only when running on the embedded store
INSTALLATION = web.AppKey("installation", Installation)
# True when the backend is PouchDB Server (embedded or not), whose known crashes we steer around.
POUCHDB_BACKEND = web.AppKey("pouchdb_backend", bool)
DIRECTORY = web.AppKey("directory", Directory)
AUTH = web.AppKey("auth", Authenticator)
SCHEMAS = web.AppKey("schemas", SchemaRegistry)
RECEIPTS = web.AppKey("receipts", ReceiptLog)
RESOLVER = web.AppKey("resolver", Resolver)
RECEIPT_TIMES = web.AppKey("receipt_times", ReceiptCache)  # receipts by revision, remembered
AGGREGATES = web.AppKey("aggregates", Aggregates)
SUPERVISOR = web.AppKey("supervisor", Supervisor)  # starts every background task, keeps them up
# This process's leases in the store: a job that must run once among several processes
LEASES = web.AppKey("leases", Leases)

FEEDS_HELD = web.AppKey("feeds_held", FeedLimiter)
LIVE_FEEDS = web.AppKey("live_feeds", LiveFeeds)
# Residents (居民): their records in the store, the verification codes sent, how often they try.
RESIDENTS = web.AppKey("residents", Residents)
VERIFICATION = web.AppKey("verification", Verification)
SIGNUP_LIMITS = web.AppKey("signup_limits", SignupLimits)
MY_DATA = web.AppKey("my_data", MyData)  # what is held about a resident; their data requests
DOOR_LINKS = web.AppKey("door_links", DoorLinks)  # links of sign-ups decided at the door
PARTY = web.AppKey("party", Party)  # party members, branches and letters (党员双报到)
NOTICES = web.AppKey("notices", Notices)  # notices, their receipts and follow-up
VOLUNTEERING = web.AppKey("volunteering", Volunteering)  # volunteer tasks (任务抢单)
VOLUNTEER_LIMITS = web.AppKey("volunteer_limits", ActLimits)  # claims per account and task
ALLOCATOR = web.AppKey("allocator", Allocator)  # limited places, allocated in order received
QUESTIONNAIRES = web.AppKey("questionnaires", Questionnaires)  # definitions, answers, results
VOTES = web.AppKey("votes", Votes)  # owners' votes: motions, ballots, the count
DELIBERATION = web.AppKey("deliberation", Deliberation)  # topics, comments, support
STARS = web.AppKey("stars", Stars)  # community star rating (三类五星): sheets per round
FEES = web.AppKey("fees", Fees)  # property fees: bills, orders, the ledger (智缴)
RATINGS = web.AppKey("ratings", Ratings)  # service ratings and the red/black list (红黑榜)
REPORTS = web.AppKey("reports", Reports)  # problem reports and their handling (问题上报)
REPORT_ROWS = web.AppKey("report_rows", ReportRows)  # every report's row, kept from the feed
LIAISON = web.AppKey("liaison", Liaison)  # liaison officers, messages, patrols (执法进小区)
MEDIATION = web.AppKey("mediation", Mediation)  # mediation cases, their circle only (老娘舅调解)
MUTUAL_AID = web.AppKey("mutual_aid", MutualAid)  # listings, deals, messages (邻里互助)
MUTUAL_AID_BOARD = web.AppKey("mutual_aid_board", Board)  # listings by area, in memory
MUTUAL_AID_LIMITS = web.AppKey("mutual_aid_limits", ActLimits)  # claims per account, listing
CENTRE = web.AppKey("centre", Centre)  # neighbourhood centre: providers, slots (邻里中心)
CENTRE_LIMITS = web.AppKey("centre_limits", ActLimits)  # bookings per account and slot
BALLOT_LIMITS = web.AppKey("ballot_limits", FailureCounter)  # ballots per account (votes.py)
# The ids each resident's phone may hold, kept from the feeds (server/sync/allowed.py).
RESIDENT_INDEX = web.AppKey("resident_index", ResidentIndex)
AUTHORS = web.AppKey("authors", AuthorIndex)  # who created each record (sync/authors.py)
# Told each residents database document the index applies (set by features' `setup`).
RESIDENT_OBSERVERS: web.AppKey[tuple[Callable[[Mapping[str, Any]], None], ...]] = web.AppKey(
    "resident_observers")
LEDGERS = web.AppKey("ledgers", Ledgers)  # the volunteers' ledgers' sums (rankings, summary)
RESIDENT_FEEDS_HELD = web.AppKey("resident_feeds_held", FeedLimiter)  # residents' own count

# Per request: who is asking (None: anonymous), set by the auth middleware, and whether their
# session cookie is due to be renewed on the answer.
USER: web.RequestKey[User | None] = web.RequestKey("user", User)
RENEW_SESSION = web.RequestKey("renew_session", bool)
SESSION = web.RequestKey("session", Session)  # the cookie's session, when a cookie was used
PURGING = web.AppKey("purging", asyncio.Lock)  # one campaign purge at a time (web/campaigns.py)
