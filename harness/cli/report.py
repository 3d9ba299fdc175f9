"""`python -m harness report RUN... -o reports/NAME.html`: merge runs into one report.

Writes NAME.html (self-contained), NAME.md (pull-request summary) and NAME.csv (summary table).
"""
from __future__ import annotations

import argparse
from pathlib import Path

from ..errors import HarnessError


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("runs", nargs="+", metavar="RUN",
                        help="run directories, folders of runs (e.g. results/) or globs")
    parser.add_argument("-o", "--output", type=Path, default=Path("reports/report.html"),
                        help="the HTML file to write; .md and .csv get the same stem "
                             "(default: reports/report.html)")
    g = parser.add_argument_group("best configuration per device (the headline)")
    g.add_argument("--objective", default="energy_per_decode_token_j",
                   choices=["energy_per_decode_token_j", "tokens_per_j", "decode_tokens_per_s",
                            "peak_rss_bytes", "hallucination_rate", "ttft_s"],
                   help="what 'best' optimises (default: lowest energy per decode token)")
    g.add_argument("--max-hallucination-rate", type=_fraction, metavar="RATE",
                   help="only configurations whose hallucination rate is at most RATE (0-1)")
    g.add_argument("--min-accuracy", type=_fraction, metavar="RATE",
                   help="only configurations whose accuracy is at least RATE (0-1)")
    g.add_argument("--max-peak-rss-mib", type=_positive, metavar="MIB",
                   help="only configurations whose peak memory (RSS) is at most MIB MiB "
                        "(2^20 bytes, the unit of every memory figure edgebench shows)")
    g.add_argument("--max-peak-rss-mb", type=_removed_mb, help=argparse.SUPPRESS)
    g.add_argument("--min-decode-tokens-per-s", type=_positive, metavar="TOK_S",
                   help="only configurations decoding at least TOK_S tokens per second")
    g.add_argument("--max-ttft-s", type=_positive, metavar="S",
                   help="only configurations whose time to first token is at most S seconds")
    g.add_argument("--quality-floor", choices=["reference", "none"], default="reference",
                   help="'reference' (default): a configuration whose accuracy is significantly "
                        "below the reference level's (paired McNemar test, p < 0.05) cannot be "
                        "best; 'none': no quality floor")
    parser.add_argument("--reference-level", metavar="LEVEL",
                        help="level the paired quality tests compare against "
                             "(default: the highest-precision level of each model)")
    parser.add_argument("--title", default="edgebench report", help="page title")
    parser.add_argument("--strict", action="store_true",
                        help="refuse (exit 2, naming the cells) when a cell finished in two or "
                             "more runs of equal standing, instead of showing the later one; "
                             "a complete run always wins over an interrupted one")


def _removed_mb(text: str) -> float:
    """The old option took 10^6-byte megabytes while every table shows MiB: refused, not
    silently converted, so a script's limit cannot change meaning."""
    raise argparse.ArgumentTypeError(
        f"--max-peak-rss-mb is gone: memory is in MiB (2^20 bytes) everywhere; write "
        f"--max-peak-rss-mib {_positive(text) * 1e6 / 2**20:g} for {text} MB")


def _fraction(text: str) -> float:
    v = _positive(text)
    if v > 1:
        raise argparse.ArgumentTypeError(f"{text} is not a rate between 0 and 1 (0.3 means 30%)")
    return v


def _positive(text: str) -> float:
    try:
        v = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if not v >= 0:
        raise argparse.ArgumentTypeError(f"{text} must be zero or more")
    return v


def constraints_from_args(args: argparse.Namespace) -> dict:
    c = {"objective": args.objective,
         "max_hallucination_rate": args.max_hallucination_rate,
         "min_accuracy": args.min_accuracy,
         "max_peak_rss_bytes": None if args.max_peak_rss_mib is None else args.max_peak_rss_mib * 2**20,
         "min_decode_tokens_per_s": args.min_decode_tokens_per_s,
         "max_ttft_s": args.max_ttft_s,
         "quality_floor": getattr(args, "quality_floor", None)}
    return {k: v for k, v in c.items() if v is not None}


def run(args: argparse.Namespace) -> int:
    from ..report import write_report

    if args.output.exists() and args.output.is_dir():
        raise HarnessError(f"{args.output} is a folder; give the HTML file name, "
                           f"e.g. {args.output / 'report.html'}")
    written = write_report([Path(p) for p in args.runs], args.output, constraints_from_args(args),
                           reference_level=args.reference_level, title=args.title,
                           strict=args.strict)
    for p in written:
        print(p)
    return 0
