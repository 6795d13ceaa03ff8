"""The claims ledger (``replication/paper/claims.yaml``): every empirical claim of the paper, with what
measures it and the rule that decides it."""

from __future__ import annotations

from dataclasses import dataclass, field
from importlib import resources
from typing import Any

import yaml

REQUIRED_KEYS = ("id", "source", "statement", "measure", "rule")


@dataclass(frozen=True)
class Claim:
    id: str
    source: str
    statement: str
    measure: dict[str, Any]
    rule: str
    paper: str = ""
    requires: str | None = None   # "imagenet" or "cuda": what a profile must run to test the claim
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def kind(self) -> str:
        return self.measure["kind"]


class LedgerError(ValueError):
    """The ledger is malformed; the message names the entry and the key."""


def load_claims(text: str | None = None) -> list[Claim]:
    """The packaged ledger (or ``text`` in the same format), checked for required keys and unique ids."""
    if text is None:
        text = resources.files("replication.paper").joinpath("claims.yaml").read_text()
    entries = yaml.safe_load(text)
    if not isinstance(entries, list):
        raise LedgerError("claims ledger: expected a list of claims at the top level")
    claims, seen = [], set()
    for index, entry in enumerate(entries):
        name = entry.get("id", f"entry {index}") if isinstance(entry, dict) else f"entry {index}"
        if not isinstance(entry, dict):
            raise LedgerError(f"claims ledger: {name} is not a mapping")
        missing = [key for key in REQUIRED_KEYS if key not in entry]
        if missing:
            raise LedgerError(f"claims ledger: {name} lacks {', '.join(missing)}")
        if not isinstance(entry["measure"], dict) or "kind" not in entry["measure"]:
            raise LedgerError(f"claims ledger: {name}: 'measure' needs a 'kind'")
        if entry["id"] in seen:
            raise LedgerError(f"claims ledger: duplicate id {entry['id']!r}")
        seen.add(entry["id"])
        known = {*REQUIRED_KEYS, "paper", "requires"}
        claims.append(Claim(id=entry["id"], source=str(entry["source"]), statement=str(entry["statement"]),
                            measure=dict(entry["measure"]), rule=str(entry["rule"]), paper=str(entry.get("paper", "")),
                            requires=entry.get("requires"),
                            extra={k: v for k, v in entry.items() if k not in known}))
    return claims
