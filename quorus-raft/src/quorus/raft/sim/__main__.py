"""``python -m quorus.raft.sim``: run seeded scenarios; a failing seed replays exactly.

Examples::

    python -m quorus.raft.sim --seed 42 --nodes 5 --steps 3000
    python -m quorus.raft.sim --seeds 0..999 --nodes 3,4,5,7
"""

from __future__ import annotations

import argparse
import sys
import time

from quorus.raft.sim.cluster import InvariantViolation
from quorus.raft.sim.scenario import run_scenario


def _seeds(text: str) -> range:
    lo, sep, hi = text.partition("..")
    if not sep:
        raise argparse.ArgumentTypeError("--seeds takes a range such as 0..999")
    return range(int(lo), int(hi) + 1)


def _sizes(text: str) -> list[int]:
    sizes = [int(part) for part in text.split(",") if part]
    if not sizes or any(n < 1 for n in sizes):
        raise argparse.ArgumentTypeError("--nodes takes cluster sizes such as 3 or 3,5,7")
    return sizes


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m quorus.raft.sim", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    which = parser.add_mutually_exclusive_group(required=True)
    which.add_argument("--seed", type=int, help="run this one seed")
    which.add_argument("--seeds", type=_seeds, help="run every seed in LO..HI (inclusive)")
    parser.add_argument("--nodes", type=_sizes, default=[3],
                        help="initial voters; a list cycles over the seeds (default 3)")
    parser.add_argument("--steps", type=int, default=1500,
                        help="steps of chaos per scenario; a tick is 10 steps (default 1500)")
    parser.add_argument("-v", "--verbose", action="store_true", help="one line per scenario")
    args = parser.parse_args(argv)
    seeds = range(args.seed, args.seed + 1) if args.seed is not None else args.seeds
    started = time.monotonic()
    failures = 0
    ops = 0
    for i, seed in enumerate(seeds):
        nodes = args.nodes[i % len(args.nodes)]
        try:
            result = run_scenario(seed, nodes=nodes, steps=args.steps)
        except InvariantViolation as exc:
            failures += 1
            print(f"FAIL {exc}", flush=True)
            print(f"  replay: python -m quorus.raft.sim --seed {seed} --nodes {nodes} "
                  f"--steps {args.steps}", flush=True)
            continue
        ops += len(result.history)
        if args.verbose or args.seed is not None:
            print(f"ok seed={seed} nodes={nodes} ops={len(result.history)} "
                  f"acked={result.ok_ops} leaders={result.leaders} crashes={result.crashes} "
                  f"membership={result.membership_changes} transfers={result.transfers} "
                  f"committed={result.max_committed} messages={result.stats['sent']}",
                  flush=True)
    elapsed = time.monotonic() - started
    total = len(seeds)
    print(f"{total - failures} passed, {failures} failed in {elapsed:.1f}s "
          f"({ops} client operations checked)")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
