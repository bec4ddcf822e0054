"""The demo city of `linli serve --demo`: the synthetic city of `linli seed-demo` at 1,000
households (one street (街道), one community (社区), two grids (网格) of 560 and 440 households),
with a login for each role (listed in the README), and residents of the community
(demo/residents.py: most activated, some by a worker's code, some waiting in the workers'
queue), two of them with demo logins; the owners' votes of the demo resident's compound
(demo/votes.py: one open, one closed election), its bills paid and unpaid (demo/fees.py) and
ratings of its company (红榜) and the other's (黑榜) (demo/ratings.py);
and volunteer tasks open, full and past
(demo/volunteering.py), party branches with members, one pending, and a
branch secretary (demo/party.py); a parking survey with the answers of most households
(demo/questionnaires.py); problem reports in every state (demo/reports.py); mutual aid of
every kind (demo/mutual_aid.py); a mediator and a settled mediation case (demo/mediation.py);
the neighbourhood centre's providers, slots and an activity (demo/centre.py); a star-rating
sheet in progress and a published earlier round, with an assessor (demo/stars.py);
liaison officers, a message and a patrol route with a patrol done (demo/liaison.py).
Deterministic and idempotent: loading it twice changes nothing."""

from __future__ import annotations

import couchdb

from server.admin import directory
from server.config import Config
from server.demo.centre import seed_centre
from server.demo.city import generate_city
from server.demo.fees import seed_fees
from server.demo.liaison import seed_liaison
from server.demo.mediation import seed_mediation
from server.demo.mutual_aid import seed_mutual_aid
from server.demo.party import seed_party
from server.demo.questionnaires import seed_questionnaires
from server.demo.ratings import seed_ratings
from server.demo.reports import seed_reports
from server.demo.residents import DEMO_RESIDENT
from server.demo.seed import DEMO_PASSWORD, seed_city, seed_residents
from server.demo.stars import seed_stars
from server.demo.volunteering import seed_volunteering
from server.demo.votes import seed_votes

DEMO_HOUSEHOLDS = 1000
DEMO_SEED = 2020
STREET = "330802001"  # 府山街道
COMMUNITY = "330802001001"  # 坊门街社区
# The community's supervisor, who works with the households, may export personal data unmasked;
# the street's, who watches figures, may not (and is refused when asking).
USERS = (  # name, role, grids, communities, streets, rights, full name (姓名)
    ("admin", "admin", (), (), (), (), "系统管理员"),
    ("wang.fang", "worker", ("g330802001001a",), (), (), (), "王芳"),
    ("li.qiang", "worker", ("g330802001001b",), (), (), (), "李强"),
    ("chen.jing", "supervisor", (), (COMMUNITY,), (), ("unmask",), "陈静"),
    ("sun.lei", "supervisor", (), (), (STREET,), (), "孙磊"),
)

__all__ = ["DEMO_PASSWORD", "load_demo"]


def load_demo(config: Config, url: str) -> None:
    server = directory.prepared(couchdb.Server(url))
    seed_city(server, config, DEMO_HOUSEHOLDS, DEMO_SEED, logins=True, progress=None)
    city = generate_city(DEMO_HOUSEHOLDS, DEMO_SEED)
    seed_residents(server, city, COMMUNITY, DEMO_SEED)
    seed_votes(server, city, DEMO_RESIDENT)
    seed_fees(server, DEMO_RESIDENT)
    seed_ratings(server, city, DEMO_RESIDENT, DEMO_PASSWORD)
    seed_volunteering(server, COMMUNITY, DEMO_RESIDENT)
    seed_party(server, COMMUNITY, STREET, DEMO_RESIDENT, DEMO_PASSWORD)
    seed_questionnaires(server, COMMUNITY, DEMO_RESIDENT)
    seed_reports(server, DEMO_RESIDENT)
    seed_mutual_aid(server, COMMUNITY, DEMO_RESIDENT)
    seed_centre(server, COMMUNITY, DEMO_RESIDENT, DEMO_PASSWORD)
    existing = {u.name for u in directory.list_users(server)}
    for name, role, grids, communities, streets, rights, full_name in USERS:
        if name not in existing:
            directory.add_user(server, name, role, DEMO_PASSWORD, grids=grids,
                               communities=communities, streets=streets, rights=rights,
                               full_name=full_name)
    seed_mediation(server, COMMUNITY, DEMO_RESIDENT, DEMO_PASSWORD)  # after chen.jing is made
    seed_stars(server, city, DEMO_RESIDENT, STREET, DEMO_PASSWORD)
    seed_liaison(server, COMMUNITY, STREET, DEMO_RESIDENT, DEMO_PASSWORD)
