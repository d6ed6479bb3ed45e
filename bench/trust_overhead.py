"""Does the new recording change the measurement? The engine before and after, in pairs.

"Before" is a checkout of `--before` (default ae2905f, the last commit before repeats,
steady state, the host guard's frequency recorder, provenance and the outputs check), made
with `git worktree` in a temp dir; "after" is this checkout. Each pair runs the same
`ovbench run` (tiny CNN, `-api async -t 3`, `repeats` 1, the default guard) once from each,
each in a fresh process, in A B B A order, and takes after / before of the reported
throughput. Target: median ratio >= 0.99.

    .venv/bin/python bench/trust_overhead.py [--pairs 10] [--duration-s 3] [--before ae2905f]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

from _service import sample_model

REPO = Path(__file__).resolve().parent.parent


def _throughput(checkout: Path, xml: Path, duration_s: float, extra: list[str]) -> float:
    env = {**os.environ, "PYTHONPATH": str(checkout)}
    command = [sys.executable, "-m", "app.cli", "run", "-m", str(xml), "-api", "async"]
    command += ["-t", str(duration_s), "--json", *extra]
    done = subprocess.run(
        command, cwd=checkout, env=env, capture_output=True, text=True, check=True
    )
    return float(json.loads(done.stdout)["throughput_fps"])


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--pairs", type=int, default=10)
    parser.add_argument("--duration-s", type=float, default=3)
    parser.add_argument("--before", default="ae2905f")
    parser.add_argument(
        "--after-args",
        default="",
        help="Extra options for the after side, e.g. '--guard-sample-s 0' (no host guard)",
    )
    args = parser.parse_args()
    extra = args.after_args.split()
    xml = sample_model("tiny_cnn")
    before = Path(tempfile.mkdtemp(prefix="ovbench-before-")) / "checkout"
    subprocess.run(
        ["git", "-C", str(REPO), "worktree", "add", "--detach", str(before), args.before],
        check=True,
        capture_output=True,
    )
    ratios = []
    try:
        print(
            f"before: {args.before} ({before}); after: this checkout ({REPO}) "
            f"{args.after_args}".rstrip()
        )
        print(f"{'pair':>4} {'before fps':>11} {'after fps':>11} {'after/before':>13}")
        for pair in range(1, args.pairs + 1):
            if pair % 2:
                old = _throughput(before, xml, args.duration_s, [])
                new = _throughput(REPO, xml, args.duration_s, extra)
            else:
                new = _throughput(REPO, xml, args.duration_s, extra)
                old = _throughput(before, xml, args.duration_s, [])
            ratios.append(new / old)
            print(f"{pair:>4} {old:>11.1f} {new:>11.1f} {new / old:>13.3f}", flush=True)
    finally:
        subprocess.run(
            ["git", "-C", str(REPO), "worktree", "remove", "--force", str(before)],
            check=False,
            capture_output=True,
        )
    median = statistics.median(ratios)
    print(
        f"median after/before {median:.3f} (min {min(ratios):.3f}, max {max(ratios):.3f}) "
        f"(target >= 0.99) {'PASS' if median >= 0.99 else 'FAIL'}"
    )
    return 0 if median >= 0.99 else 1


if __name__ == "__main__":
    sys.exit(main())
