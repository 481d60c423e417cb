#!/usr/bin/env python3
"""Scorer throughput: articles per second for ~5 KB texts with the default rules, one core.

    python scripts/bench_score.py [--seconds 5] [--jsonl FILE]

Texts are real news articles (the expected texts of ../shared/corpus/pages/newspaper when
present, else --jsonl excerpts), each joined with the next until it is 5,000 characters.
The baseline, measured in the same run, is the cheapest thing a keyword scorer must do
anyway: case-fold the text and test one substring. The ratio to it is what to compare
between machines; the absolute rate depends on the machine.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from monitor.scoring import load_rules, score  # noqa: E402


def rate(fn, texts, seconds: float) -> float:
    done, started = 0, time.perf_counter()
    while time.perf_counter() - started < seconds:
        for title, text in texts:
            fn(title, text)
        done += len(texts)
    return done / (time.perf_counter() - started)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--seconds", type=float, default=5.0)
    ap.add_argument("--corpus", default=str(ROOT.parent / "shared/corpus/pages/newspaper/text"))
    ap.add_argument("--jsonl", default=str(ROOT / "tests" / "data" / "relevance.jsonl"))
    ap.add_argument("--size", type=int, default=5000)
    ap.add_argument("--labels", help="also score with a model learned from these labelled "
                    "JSON lines (as `monitor learn` would), and say what it costs")
    ap.add_argument("--train", type=int, metavar="N", help="also time `monitor learn` on N "
                    "labels: 2,000-character excerpts of every real page in ../shared "
                    "(extracted by trafilatura), one every 1,000 characters, labelled by a "
                    "stand-in reader (relevant when the rules flag it or it names police, "
                    "privacy, surveillance and the like three times; one in twenty turned "
                    "over)")
    ap.add_argument("--write-labels", metavar="FILE", help="with --train, write those labels "
                    "as JSON lines, for timing `monitor labels import` and `monitor learn`")
    args = ap.parse_args()
    corpus = Path(args.corpus)
    if corpus.is_dir():
        source = f"{corpus} (real news articles)"
        rows = [{"title": "", "text": p.read_text(encoding="utf-8", errors="replace")}
                for p in sorted(corpus.glob("*.txt"))]
        for r in rows:
            r["title"], _, rest = r["text"].strip().partition("\n")
    else:
        source = f"{args.jsonl} (labelled excerpts)"
        rows = [json.loads(x) for x in Path(args.jsonl).read_text(encoding="utf-8").splitlines()
                if x]
    texts = []
    for i, r in enumerate(rows):
        text, k = r["text"], 1
        while len(text) < args.size:
            text += "\n" + rows[(i + k) % len(rows)]["text"]
            k += 1
        texts.append((r["title"], text[: args.size]))
    rules = load_rules(ROOT / "config" / "keywords.yaml")
    baseline = rate(lambda t, x: "surveillance" in x.casefold(), texts, args.seconds)
    scorer = rate(lambda t, x: score(rules, t, x), texts, args.seconds)
    print(f"texts: {len(texts)} of {args.size} characters from {source}; rules: "
          f"{len(rules.matcher.forms)} term forms in {len(rules.concepts)} concepts")
    print(f"baseline (casefold + one substring): {baseline:,.0f} articles/s")
    print(f"scorer:                              {scorer:,.0f} articles/s on one core")
    print(f"scorer / baseline: {scorer / baseline:.3f}")
    if args.labels:
        from dataclasses import replace

        from monitor.scoring.learn import Labelled, train
        from monitor.scoring.learned import Learned

        labelled = [json.loads(x) for x in Path(args.labels).read_text(
            encoding="utf-8").splitlines() if x.strip()]
        examples = [Labelled(r.get("title") or "", r.get("text") or "", bool(int(r["label"])))
                    for r in labelled]
        started = time.perf_counter()
        data, _ = train(examples, rules)
        trained = time.perf_counter() - started
        learned = replace(rules, learned=Learned.from_data(data))
        with_model = rate(lambda t, x: score(learned, t, x), texts, args.seconds)
        print(f"with a model learned from {len(examples)} labels ({len(data['vocabulary']):,} "
              f"terms; trained in {trained:.1f} s): {with_model:,.0f} articles/s, "
              f"{with_model / scorer:.2f} of the rules alone; a worker's memory "
              f"+{worker_growth(data, texts):.1f} MB")
    if args.train:
        data = train_on(args.train, [r["text"] for r in rows] + page_texts(corpus.parent.parent),
                 rules, args.write_labels)
        print(f"a worker holding that model: +{worker_growth(data, texts):.1f} MB")
    return 0


def page_texts(pages: Path) -> list[str]:
    """The text of every shared page (trafilatura, as the pipeline extracts), two at once."""
    from concurrent.futures import ProcessPoolExecutor

    files = sorted(pages.glob("*/*.html.gz")) + sorted(pages.glob("*/*/expected.html.gz"))
    with ProcessPoolExecutor(2) as pool:
        return [t for t in pool.map(_extract, files, chunksize=16) if t]


def _extract(path: Path) -> str:
    import gzip

    import trafilatura

    return trafilatura.extract(gzip.decompress(path.read_bytes()).decode(
        "utf-8", errors="replace")) or ""


def worker_growth(data: dict, texts: list[tuple[str, str]]) -> float:
    """What holding and applying the model adds to a fresh process that scores (as a worker
    does): its resident memory after scoring with the model against without, in MB."""
    import subprocess

    probe = ("import json, sys\n"
             "from dataclasses import replace\n"
             "from monitor.scoring import load_rules, score\n"
             "from monitor.scoring.learned import Learned\n"
             "model, texts = json.loads(sys.stdin.read())\n"
             f"rules = load_rules({str(ROOT / 'config' / 'keywords.yaml')!r})\n"
             "if model:\n"
             "    rules = replace(rules, learned=Learned.from_data(model))\n"
             "for title, text in texts:\n"
             "    score(rules, title, text)\n"
             "del model, texts\n"
             "status = open('/proc/self/status').read()\n"
             "print(status.split('VmRSS:')[1].split()[0])\n")
    peaks = []
    for model in (None, data):
        done = subprocess.run([sys.executable, "-c", probe], input=json.dumps([model, texts]),
                              capture_output=True, text=True, check=True, cwd=ROOT)
        peaks.append(int(done.stdout))
    return (peaks[1] - peaks[0]) / 1024


def train_on(n: int, texts: list[str], rules, write: str | None) -> dict:
    import random
    import re

    from monitor.scoring.learn import Labelled, train

    rng = random.Random(5)
    topic = re.compile(r"\b(police|privacy|security|surveillance|government|cameras?|"
                       r"technology|law|data|military|court)\b", re.IGNORECASE)
    excerpts = [t[at:at + 2000] for t in texts for at in range(0, max(len(t) - 1000, 1), 1000)]
    rng.shuffle(excerpts)
    if len(excerpts) < n:
        print(f"only {len(excerpts):,} excerpts in these texts; training on them")
    examples = [Labelled("", x, (score(rules, "", x).flagged or len(topic.findall(x)) >= 3)
                         != (rng.random() < 0.05)) for x in excerpts[:n]]
    if write:
        Path(write).write_text("".join(json.dumps(
            {"id": i, "title": "", "text": e.text, "label": int(e.relevant)}) + "\n"
            for i, e in enumerate(examples)), encoding="utf-8")
    started = time.perf_counter()
    data, _ = train(examples, rules)
    took = time.perf_counter() - started
    relevant = sum(e.relevant for e in examples)
    check = data["cross_validated"]
    print(f"learning from {len(examples):,} labels ({relevant:,} relevant; "
          f"{len(data['vocabulary']):,} terms kept), with {check['folds']}-fold "
          f"cross-validation as `monitor learn` does: {took:.1f} s (F1 learned "
          f"{check['learned']['f1']:.3f}, rules {check['rules']['f1']:.3f})")
    return data


if __name__ == "__main__":
    raise SystemExit(main())
