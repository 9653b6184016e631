"""``python -m storage [--storage URL]``: check a storage and list its studies.

The quickest way to see whether a URL works before launching a study on it, and what is stored there.
"""

from __future__ import annotations

import sys
from collections import Counter

import optuna

from objectives.cli import Parser, one_line_errors
from storage import open_storage, redact, resolve_url
from storage.cli import add_storage_argument


@one_line_errors
def main(argv: list[str] | None = None) -> int:
    parser = Parser(prog="python -m storage", description=__doc__)
    add_storage_argument(parser)
    args = parser.parse_args(argv)
    url = resolve_url(args.storage)
    storage = open_storage(url)
    summaries = optuna.get_all_study_summaries(storage, include_best_trial=False)
    print(f"ok: {redact(url)} ({len(summaries)} studies)")
    for summary in summaries:
        states = Counter(
            t.state.name for t in storage.get_all_trials(summary._study_id, deepcopy=False)
        )
        counts = ", ".join(f"{n} {s.lower()}" for s, n in sorted(states.items())) or "no trials"
        print(f"  {summary.study_name}: {counts}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
