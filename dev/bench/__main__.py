"""`make bench`: every benchmark section in turn, one `name: value` line per figure.

    python -m dev.bench                  # all sections
    python -m dev.bench etl load         # some of them, by name

A section is a function that yields (name, value) pairs; add one to SECTIONS to add figures.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator

Figures = Iterator[tuple[str, object]]


def etl_section() -> Figures:
    from dev.bench import etl

    yield from etl.etl_vs_duckdb()


def scaling_section() -> Figures:
    from dev.bench import etl

    yield from etl.etl_scaling()


def exposure_section() -> Figures:
    from dev.bench import etl

    yield from etl.exposure_cost()


def load_section() -> Figures:
    from dev.bench import etl

    yield from etl.load_vs_copy()


def backfill_section() -> Figures:
    from dev.bench import backfill

    yield from backfill.run().items()


def report_section() -> Figures:
    from dev.bench import report

    yield from report.run()


SECTIONS: dict[str, Callable[[], Figures]] = {
    "etl": etl_section,
    "scaling": scaling_section,
    "exposure": exposure_section,
    "load": load_section,
    "backfill": backfill_section,
    "report": report_section,
}


def main(argv: list[str]) -> int:
    if argv[:1] in (["-h"], ["--help"]):
        print(f"{__doc__.strip()}\n\nsections: {', '.join(SECTIONS)}")
        return 0
    names = argv or list(SECTIONS)
    unknown = [name for name in names if name not in SECTIONS]
    if unknown:
        print(f"unknown section(s) {', '.join(unknown)}; choose from {', '.join(SECTIONS)}", file=sys.stderr)
        return 2
    from dev.bench import BenchError

    try:
        for name in names:
            for figure, value in SECTIONS[name]():
                print(f"{figure}: {value}", flush=True)
    except BenchError as error:
        print(f"bench: {error}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
