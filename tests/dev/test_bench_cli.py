"""`make bench`'s command line: a benchmark that cannot run says why in one line, not a traceback."""

from __future__ import annotations

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
