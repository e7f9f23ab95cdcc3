"""`make bench`'s command line: a benchmark that cannot run says why in one line, not a traceback."""

from __future__ import annotations

import pytest

from dev import bench
from dev.bench import __main__ as bench_cli


def test_a_bench_error_is_one_line_on_stderr_and_exit_1(monkeypatch, capsys):
    def section():
        yield "first_figure", 1
        raise bench.BenchError("run the etl section first: the load section stages its rows")

    monkeypatch.setitem(bench_cli.SECTIONS, "load", section)
    assert bench_cli.main(["load"]) == 1
    out, err = capsys.readouterr()
    assert out == "first_figure: 1\n"
    assert err == "bench: run the etl section first: the load section stages its rows\n"


def test_an_unknown_section_is_refused_with_the_choices(capsys):
    assert bench_cli.main(["nosuch"]) == 2
    assert "choose from etl" in capsys.readouterr().err


def test_the_report_section_is_registered():
    assert "report" in bench_cli.SECTIONS


def test_the_report_bench_uses_a_database_of_its_own_on_the_warehouse_server():
    from psycopg2.extensions import parse_dsn

    from dev.bench import report

    for warehouse in (
        "postgresql://stack:s3cret@127.0.0.1:5433/warehouse",
        "host=127.0.0.1 port=5433 user=stack password=s3cret dbname=warehouse",
    ):
        parsed = parse_dsn(report.bench_dsn(warehouse))
        assert parsed == {
            "host": "127.0.0.1", "port": "5433", "user": "stack", "password": "s3cret", "dbname": "bench_report",
        }
    with pytest.raises(bench.BenchError, match="database of its own"):
        report.bench_dsn("postgresql://stack@127.0.0.1/bench_report")


def test_the_report_child_figures_are_read_from_its_output_among_other_lines():
    from dev.bench import report

    stdout = "some line the report printed\nbuild_seconds: 12.345\npeak_rss_kib: 1048576\n"
    assert report.parse_child_output(stdout) == {"build_seconds": 12.345, "peak_rss_kib": 1048576.0}
    with pytest.raises(bench.BenchError, match="peak_rss_kib"):
        report.parse_child_output("build_seconds: 1.0\n")


def test_help_names_the_sections(capsys):
    assert bench_cli.main(["--help"]) == 0
    assert "sections: etl, scaling, exposure, load, backfill, report" in capsys.readouterr().out
