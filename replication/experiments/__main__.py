"""Entry points the workflow's shell rules call (so training can run under torchrun).

    python -m replication.experiments train-run --payload '<json>' --dataset cifar10 \
        --metrics results/x/metrics.csv --checkpoint-dir runs/x --seed 0
"""

from __future__ import annotations

import argparse
import json
import sys

from .training_runs import train_run


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m replication.experiments")
    commands = parser.add_subparsers(dest="command", required=True)
    run = commands.add_parser("train-run", help="train one configured run of the workflow")
    run.add_argument("--payload", required=True, help="JSON: {run, data, training, profile}")
    run.add_argument("--dataset", required=True)
    run.add_argument("--metrics", required=True)
    run.add_argument("--checkpoint-dir", required=True)
    run.add_argument("--threads", type=int)
    run.add_argument("--seed", type=int, help="default: the payload's training.seed")
    args = parser.parse_args(argv)
    payload = json.loads(args.payload)
    train_run(payload["run"], dataset=args.dataset, data=payload["data"], training=payload["training"],
              profile=payload["profile"], metrics_csv=args.metrics, checkpoint_dir=args.checkpoint_dir,
              threads=args.threads, seed=args.seed)
    return 0


if __name__ == "__main__":
    sys.exit(main())
