"""Is the compare verdict right in practice? A against A, and A against a slower configuration.

A is a ResNet-50 async job (`-t 3`, `repeats: 3`, the default hint); B is the same with
`nthreads: 1`. Each round submits two jobs back to back and asks the service's
`GET /compare` (default threshold 2%):
- A against A (`--pairs` rounds): the verdict should be `no_change` (target: 9 of 10 or more);
- A against B (`--pairs` rounds, which job runs first alternating): B is the candidate and
  should be `regressed` (target: 10 of 10).
Prints per round the throughput ratio with its 95% interval and method, and the verdict;
then the counts.

    .venv/bin/python bench/compare_verdict.py [--pairs 10] [--duration-s 3] [--repeats 3]
"""

from __future__ import annotations

import argparse
import collections
import sys
from typing import Any

from _service import Service, sample_model


def _compare(svc: Service, baseline: str, candidate: str) -> dict[str, Any]:
    response = svc.client.get("/compare", params={"baseline": baseline, "candidate": candidate})
    response.raise_for_status()
    return dict(response.json())


def _line(kind: str, index: int, comparison: dict[str, Any]) -> str:
    metric = next(m for m in comparison["metrics"] if m["metric"] == "throughput_fps")
    interval = (
        f"[{metric['ci_low']:.3f}, {metric['ci_high']:.3f}]"
        if metric["ci_low"] is not None
        else "-"
    )
    return (
        f"{kind:<7} {index:>3} {metric['baseline']:>9.2f} {metric['candidate']:>9.2f} "
        f"{metric['ratio']:>7.3f} {interval:>16}  {comparison['verdict']:<10} "
        f"{metric['method'][:60]}"
    )


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--pairs", type=int, default=10)
    parser.add_argument("--duration-s", type=float, default=3)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    counts: dict[str, collections.Counter[str]] = collections.defaultdict(collections.Counter)
    with Service() as svc:
        model_id = svc.upload_model(sample_model("resnet50"))
        a = {
            "model_id": model_id,
            "api": "async",
            "duration_s": args.duration_s,
            "repeats": args.repeats,
        }
        b = {**a, "nthreads": 1}
        print(
            f"{'pair':<7} {'#':>3} {'base fps':>9} {'cand fps':>9} {'ratio':>7} "
            f"{'95% interval':>16}  {'verdict':<10} method"
        )
        for index in range(1, args.pairs + 1):
            first, second = svc.submit(a), svc.submit(a)
            svc.wait(first), svc.wait(second)
            comparison = _compare(svc, first, second)
            counts["A vs A"][comparison["verdict"]] += 1
            print(_line("A vs A", index, comparison), flush=True)
        for index in range(1, args.pairs + 1):
            if index % 2:
                base, cand = svc.submit(a), svc.submit(b)
            else:
                cand, base = svc.submit(b), svc.submit(a)
            svc.wait(base), svc.wait(cand)
            comparison = _compare(svc, base, cand)
            counts["A vs B"][comparison["verdict"]] += 1
            print(_line("A vs B", index, comparison), flush=True)
    same = counts["A vs A"]["no_change"]
    slower = counts["A vs B"]["regressed"]
    need_same = args.pairs - max(1, args.pairs // 10)
    ok = same >= need_same and slower == args.pairs
    print(
        f"A vs A: {dict(counts['A vs A'])}: no_change {same}/{args.pairs} (target >= "
        f"{need_same}); A vs nthreads 1: {dict(counts['A vs B'])}: regressed "
        f"{slower}/{args.pairs} (target {args.pairs}) {'PASS' if ok else 'FAIL'}"
    )
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
