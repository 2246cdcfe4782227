"""The synthetic sample's world: calendar anchors, teams, projects, people and the vocabularies.

Everything here is fixed, independent of the seed: :mod:`.simulation` draws the tasks of a batch
from it, :mod:`.truth` and the per-source writers spell them out.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

import numpy as np

US = 1_000_000
DAY = 86_400 * US
MAIN_START = datetime(2024, 9, 1, tzinfo=UTC)
MAIN_EXPORT = datetime(2026, 8, 31, 18, 0, tzinfo=UTC)
DRIFT_START = datetime(2026, 9, 1, tzinfo=UTC)
DRIFT_EXPORT = datetime(2026, 10, 31, 18, 0, tzinfo=UTC)
DEFECT_RATE = 0.003
PR_SHARE = 0.25  # pull requests per GitHub issue mixed into the issue pages (not tasks)
PAGE_SIZE = 100

CANONICAL_PRIORITIES = ("lowest", "low", "medium", "high", "highest")
CANONICAL_TYPES = ("bug", "task", "story", "improvement", "epic", "subtask")


def _us(dt: datetime) -> int:
    return int(dt.timestamp()) * US


# --- the organisation -------------------------------------------------------------------------


@dataclass(frozen=True)
class Team:
    name: str
    speed: float  # cycle-time multiplier (>1 slower)
    pools: tuple[tuple[str, int], ...]  # (source, members): a person works in one tool only


@dataclass(frozen=True)
class Project:
    key: str  # Jira key, repo, board or project name
    name: str
    source: str  # jira | github | asana | trello | csv
    team: str
    share: float
    layout: str = ""  # jira: "api" | "csv"; priority scheme below
    scheme: str = ""  # jira: "classic" (Blocker..Trivial) | "cloud" (Highest..Lowest)


TEAMS = (
    Team("platform", 1.00, (("jira", 10),)),
    Team("payments", 0.80, (("jira", 7), ("csv", 5))),
    Team("mobile", 1.35, (("github", 9),)),
    Team("web", 1.15, (("asana", 7), ("trello", 5))),
)
DRIFT_TEAM = Team("growth", 1.25, (("jira", 7),))

PROJECTS = (
    Project("PLAT", "Platform Services", "jira", "platform", 0.14, "api", "classic"),
    Project("CORE", "Core Libraries", "jira", "platform", 0.10, "api", "classic"),
    Project("PAY", "Payments", "jira", "payments", 0.13, "api", "cloud"),
    Project("OPS", "Operations", "jira", "payments", 0.08, "csv", "cloud"),
    Project("acme/mobile-app", "mobile-app", "github", "mobile", 0.12),
    Project("acme/design-system", "design-system", "github", "mobile", 0.08),
    Project("Website Relaunch", "Website Relaunch", "asana", "web", 0.15),
    Project("Campaigns", "Campaigns", "trello", "web", 0.10),
    Project("helpdesk", "Helpdesk", "csv", "payments", 0.10),
)
DRIFT_PROJECT = Project("GROW", "Growth Experiments", "jira", "growth", 0.15, "api", "cloud")

_FIRST = (
    "Anna", "Ben", "Chloe", "David", "Elif", "Farid", "Greta", "Hugo", "Ines", "Jonas", "Kira", "Luca",
    "Maya", "Noah", "Olga", "Pavel", "Quinn", "Rosa", "Sami", "Tara", "Umar", "Vera", "Wen", "Xavier",
    "Yara", "Zoe", "Amir", "Bea", "Carlos", "Dana", "Emil", "Fatima", "Goran", "Hana", "Ivan", "Julia",
    "Kenji", "Lea", "Marco", "Nadia", "Omar", "Priya", "Rafael", "Sofia", "Tomas", "Ula", "Viktor", "Ying",
)  # fmt: skip
_LAST = (
    "Keller", "Novak", "Schmidt", "Rossi", "Yilmaz", "Haddad", "Larsen", "Moreau", "Costa", "Weber",
    "Ivanova", "Bianchi", "Kowalski", "Nakamura", "Okafor", "Petrov", "Quintero", "Sato", "Torres",
    "Usman", "Varga", "Wagner", "Xu", "Zimmermann", "Berg", "Dubois", "Fischer", "Garcia", "Horvat",
    "Jensen", "Kaya", "Lindqvist", "Müller", "Nilsson", "Ortega", "Park",
)  # fmt: skip


@dataclass(frozen=True)
class Person:
    index: int
    team: str
    source: str
    name: str
    login: str
    account_id: str  # 24 hex: Jira Cloud accountId style and Trello member id


def _people(teams: tuple[Team, ...], first_index: int = 0) -> list[Person]:
    """Team members with stable fake names (independent of the seed, so identities do not churn)."""
    rng = np.random.default_rng(20240901 + first_index)
    out: list[Person] = []
    i = first_index
    for team in teams:
        for source, n in team.pools:
            for _ in range(n):
                first = _FIRST[(i * 7 + 3) % len(_FIRST)]
                last = _LAST[(i * 11 + 5) % len(_LAST)]
                login = f"{first[0].lower()}{last.lower().replace('ü', 'ue')}{i}"
                account = "".join(f"{b:02x}" for b in rng.integers(0, 256, 12))
                out.append(Person(i, team.name, source, f"{first} {last}", login, account))
                i += 1
    return out


# --- vocabularies (titles, labels, descriptions) ------------------------------------------------

_VERBS = (
    "Fix",
    "Add",
    "Update",
    "Refactor",
    "Investigate",
    "Remove",
    "Improve",
    "Document",
    "Migrate",
    "Test",
)
_OBJECTS = (
    "login timeout", "invoice export", "search index", "push notifications", "dark mode", "rate limiter",
    "payment retries", "cache invalidation", "onboarding flow", "CSV import", "audit log", "user avatars",
    "webhook delivery", "session handling", "report builder", "landing page", "newsletter signup",
    "API pagination", "password reset", "currency rounding", "build pipeline", "error banner",
    "café menu ☕", "date picker", "SSO integration", "file uploads", "billing page", "feature flags",
)  # fmt: skip
_CONTEXTS = (
    "on Android", "for EU customers", "in the admin UI", "after the upgrade", "under load", "in Safari",
    "for new accounts", "in the nightly job", "on the dashboard", "for large files", "", "", "", "",
)  # fmt: skip
_LABELS = ("backend", "frontend", "api", "security", "tech-debt", "customer", "ux", "infra")
_LOREM = (
    "The current behaviour differs from what users expect. Steps to reproduce are listed below. "
    "We agreed in the planning meeting to address this before the next release. Acceptance criteria: "
    "the change is covered by tests, documented, and reviewed by a second engineer. Logs and screenshots "
    "are attached where available. Related discussions happened in the team channel last week. "
) * 40
