#!/usr/bin/env python3
"""What learning from labels does, measured through the commands a team would run.

    python scripts/eval_learning.py ../shared/eval/relevance-dev.jsonl [--seed-labels FILE]
                                    [--folds 5]

FILE is cut into folds; for each, a fresh database imports the other folds (and
--seed-labels, if given) with `monitor labels import`, runs `monitor learn`, and scores the
held-out fold with `monitor --db DB score` (the learned model taking part) and with
`monitor score` (the keyword rules alone). Prints precision, recall and F1 of both per fold
and overall.

    python scripts/eval_learning.py FILE --curve

How many labels of each kind are enough (MIN_PER_CLASS): for n of each, ten random draws
from FILE are learned from (in this process, as `monitor learn` does) and the rest of FILE
scored by the model alone, by the rules alone, and as the monitor decides (the model when it
is trusted, else the rules). Prints mean and worst F1 of each, and how often it was trusted.
"""

from __future__ import annotations

import argparse
import json
import random
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def monitor(*args: str, stdin: str | None = None) -> str:
    done = subprocess.run([sys.executable, "-m", "monitor", *args], input=stdin, cwd=ROOT,
                          capture_output=True, text=True, check=True)
    return done.stdout


def quality(pairs: list[tuple[int, bool]]) -> tuple[float, float, float]:
    tp = sum(1 for y, p in pairs if y and p)
    fp = sum(1 for y, p in pairs if not y and p)
    fn = sum(1 for y, p in pairs if y and not p)
    precision = tp / (tp + fp) if tp + fp else 0.0
    recall = tp / (tp + fn) if tp + fn else 0.0
    return precision, recall, (2 * precision * recall / (precision + recall)
                               if precision + recall else 0.0)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("file", type=Path)
    ap.add_argument("--seed-labels", type=Path, help="labels every fold also learns from")
    ap.add_argument("--folds", type=int, default=5)
    ap.add_argument("--curve", action="store_true", help="the learning curve (see above)")
    args = ap.parse_args()
    rows = [json.loads(x) for x in args.file.read_text(encoding="utf-8").splitlines() if x]
    if args.curve:
        return curve(rows)
    random.Random(0).shuffle(rows)
    learned_all: list[tuple[int, bool]] = []
    rules_all: list[tuple[int, bool]] = []
    for k in range(args.folds):
        held = rows[k::args.folds]
        rest = [r for i, r in enumerate(rows) if i % args.folds != k]
        with tempfile.TemporaryDirectory() as tmp:
            labels, db = Path(tmp) / "labels.jsonl", str(Path(tmp) / "fold.db")
            labels.write_text("\n".join(json.dumps(r) for r in rest) + "\n", encoding="utf-8")
            monitor("--db", db, "labels", "import", str(labels))
            if args.seed_labels:
                monitor("--db", db, "labels", "import", str(args.seed_labels))
            monitor("--db", db, "learn")
            lines = "\n".join(json.dumps({"id": r["id"], "title": r.get("title", ""),
                                          "text": r.get("text", "")}) for r in held) + "\n"
            learned = [json.loads(x) for x in monitor("--db", db, "score",
                                                      stdin=lines).splitlines()]
            alone = [json.loads(x) for x in monitor("score", stdin=lines).splitlines()]
        truth = [int(r["label"]) for r in held]
        fold_learned = list(zip(truth, (x["flagged"] for x in learned), strict=True))
        fold_rules = list(zip(truth, (x["flagged"] for x in alone), strict=True))
        learned_all += fold_learned
        rules_all += fold_rules
        print(f"fold {k + 1}: {len(held)} held out; learned P/R/F1 "
              f"{'/'.join(f'{v:.3f}' for v in quality(fold_learned))}, rules "
              f"{'/'.join(f'{v:.3f}' for v in quality(fold_rules))}", flush=True)
    print(f"overall ({len(rows)}): learned P/R/F1 "
          f"{'/'.join(f'{v:.3f}' for v in quality(learned_all))}; rules alone "
          f"{'/'.join(f'{v:.3f}' for v in quality(rules_all))}")
    return 0


def curve(rows: list[dict]) -> int:
    from dataclasses import replace

    sys.path.insert(0, str(ROOT))
    from monitor.learning import trusted
    from monitor.scoring import load_rules, score
    from monitor.scoring.learn import MIN_PER_CLASS, Labelled, train
    from monitor.scoring.learned import Learned

    rules = load_rules(ROOT / "config" / "keywords.yaml")
    relevant = [r for r in rows if int(r["label"])]
    other = [r for r in rows if not int(r["label"])]
    print(f"{len(relevant)} relevant, {len(other)} not; MIN_PER_CLASS is {MIN_PER_CLASS}")
    for n in (5, 10, 15, 20, 30, 40):
        if n >= min(len(relevant), len(other)):
            break
        f1s: dict[str, list[float]] = {"model": [], "rules": [], "decided": []}
        acted = 0
        for draw in range(10):
            rng = random.Random(draw)
            picked = rng.sample(relevant, n) + rng.sample(other, n)
            ids = {id(r) for r in picked}
            held = [r for r in rows if id(r) not in ids]
            data, _ = train([Labelled(r.get("title") or "", r.get("text") or "",
                                      bool(int(r["label"]))) for r in picked], rules)
            model = replace(rules, learned=Learned.from_data(data))
            acts = trusted(data)
            acted += acts
            truth = [int(r["label"]) for r in held]
            by_model = [score(model, r.get("title") or "", r.get("text") or "").flagged
                        for r in held]
            by_rules = [score(rules, r.get("title") or "", r.get("text") or "").flagged
                        for r in held]
            for name, flags in (("model", by_model), ("rules", by_rules),
                                ("decided", by_model if acts else by_rules)):
                f1s[name].append(quality(list(zip(truth, flags, strict=True)))[2])
        print(f"{n:3} of each: F1 on the other {len(rows) - 2 * n}: " + "; ".join(
            f"{name} {sum(v) / len(v):.3f} (worst {min(v):.3f})" for name, v in f1s.items())
            + f"; trusted in {acted} of 10", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
