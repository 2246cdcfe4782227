"""The `mlops-assets` command line."""

from __future__ import annotations

import argparse
import sys


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="mlops-assets", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    gen = sub.add_parser("generate", help="write the seeded synthetic sample into a landing zone")
    gen.add_argument("--tasks", type=int, default=6000)
    gen.add_argument("--out", default="data/landing")
    gen.add_argument("--seed", type=int, default=7)
    gen.add_argument("--drift", action="store_true")
    gen.add_argument("--if-empty", action="store_true", help="do nothing when the landing zone has files")
    args = parser.parse_args(argv)
    if args.command == "generate":
        from mlops_assets.lib import synthetic

        return synthetic.cli_generate(args)
    return 2


if __name__ == "__main__":
    sys.exit(main())
