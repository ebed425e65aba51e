"""Sequential sample agreement against drawing all k samples, over recorded streams of sampled labels.

Run from the repository root: python -m bench.bench_sampling [--items 5000] [--seed 0]. Prints figures from
this one run. For each item a stream of k labels is recorded first (the majority label with probability
1 - p, else one of the other labels; p is the rate at which samples disagree), then both rules read the same
stream: all k samples (today's cost) and `sequential_label_agreement` (the tier's rule), which stops once
the verdict against the threshold is settled. Printed: mean samples per item, prompt tokens billed per item
as a share of today's k prompts (one request per sample, each paying the whole prompt; "rounds" counts the
requests if each round were one request with n choices, for comparison with asking all k in one such
request, which is 1/k), and the share of items whose accept/escalate decision equals the k-sample one. Targets (issue 14): >= 99% equal decisions at <= 50% of the prompt tokens.
"""

from __future__ import annotations

import argparse
import math
import random

from shared.core.confidence import sequential_label_agreement

LABELS = ["billing", "technical", "account", "other"]


def recorded_stream(rng: random.Random, k: int, disagreement: float) -> list[str]:
    majority = rng.choice(LABELS)
    return [majority if rng.random() >= disagreement else rng.choice([x for x in LABELS if x != majority])
            for _ in range(k)]


class Replay:
    """Draws from a recorded stream, counting the rounds (requests, where one request can carry n samples)."""

    def __init__(self, stream: list[str]) -> None:
        self.stream, self.position, self.rounds = stream, 0, 0

    def __call__(self, n: int) -> list[str | None]:
        self.rounds += 1
        self.position += n
        return list(self.stream[self.position - n : self.position])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--items", type=int, default=5000)
    parser.add_argument("--k", type=int, default=5)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    k = args.k
    print(f"{args.items} recorded streams of k={k} per row; sequential rule vs all k samples")
    print(f"{'threshold':>9} {'disagree':>8} {'samples/item':>12} {'prompt tokens':>13} {'rounds':>7} "
          f"{'equal decisions':>15}")
    for threshold in (0.6, 0.8, 1.0):
        need = math.ceil(threshold * k - 1e-9)
        for disagreement in (0.05, 0.1, 0.2, 0.3, 0.5):
            rng = random.Random(args.seed)
            drawn = rounds = equal = 0
            for _ in range(args.items):
                stream = recorded_stream(rng, k, disagreement)
                _, full, _ = sequential_label_agreement(Replay(stream), k, None)
                replay = Replay(stream)
                _, early, used = sequential_label_agreement(replay, k, need)
                drawn, rounds = drawn + used, rounds + replay.rounds
                equal += (full >= threshold) == (early >= threshold)
            print(f"{threshold:>9.1f} {disagreement:>8.2f} {drawn / args.items:>12.2f} "
                  f"{drawn / (args.items * k):>12.0%} {rounds / (args.items * k):>7.0%} {equal / args.items:>15.2%}")


if __name__ == "__main__":
    main()
