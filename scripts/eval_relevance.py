#!/usr/bin/env python3
"""Precision, recall and F1 of the scorer on labelled JSON lines (id, title, text, label).

    python scripts/eval_relevance.py ../shared/eval/relevance-dev.jsonl [--keywords FILE]
                                     [--db DB] [-v]

Runs the same scorer as `monitor score` over each line and lists the misses with the reason:
the keyword rules, and with --db what was learned from that database's labels when it may
act (as `monitor --db DB score`).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from monitor.scoring import load_rules, score  # noqa: E402


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("file")
    ap.add_argument("--keywords",
                    default=str(Path(__file__).parent.parent / "config" / "keywords.yaml"))
    ap.add_argument("--db", help="a monitor database: its learned model decides, once trusted")
    ap.add_argument("-v", "--verbose", action="store_true", help="print every line's score")
    args = ap.parse_args()
    rules = load_rules(args.keywords)
    if args.db:
        if not Path(args.db).is_file():
            ap.error(f"{args.db}: no such database")
        from monitor.learning import attach
        from monitor.store import Store

        store = Store(Path(args.db))
        try:
            rules = attach(store, rules, learning=True)
        finally:
            store.close()
        print(f"learned model: {'acts' if rules.learned else 'none that may act'} ({args.db})")
    tp = fp = fn = tn = 0
    misses = []
    with open(args.file, encoding="utf-8") as fh:
        for line in fh:
            if not line.strip():
                continue
            row = json.loads(line)
            s = score(rules, row.get("title", ""), row.get("text", ""))
            label = int(row["label"])
            if s.flagged and label:
                tp += 1
            elif s.flagged:
                fp += 1
                misses.append(("false positive", row, s))
            elif label:
                fn += 1
                misses.append(("false negative", row, s))
            else:
                tn += 1
            if args.verbose:
                print(f"{row['id']:>6} label={label} flagged={int(s.flagged)} {s.score:6.2f} "
                      f"{s.reason}")
    precision = tp / (tp + fp) if tp + fp else 0.0
    recall = tp / (tp + fn) if tp + fn else 0.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    for kind, row, s in misses:
        top = ", ".join(f"{m.term}({m.concept}) {m.contribution:+.1f}" for m in s.matches[:8])
        print(f"{kind}: {row['id']} {row.get('title', '')[:70]!r}\n    {s.score:.2f}: {s.reason}"
              f"\n    {top}")
    print(f"n={tp + fp + fn + tn} tp={tp} fp={fp} fn={fn} tn={tn}")
    print(f"precision={precision:.3f} recall={recall:.3f} f1={f1:.3f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
