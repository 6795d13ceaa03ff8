"""Claims of the paper and their verdicts: the ledger (``replication/paper/claims.yaml``) and the
rules that decide each claim from a profile's results CSVs."""

from .ledger import Claim, LedgerError, load_claims
from .verdicts import VERDICTS, Evidence, Verdict, decide, judge

__all__ = ["VERDICTS", "Claim", "Evidence", "LedgerError", "Verdict", "decide", "judge", "load_claims"]
