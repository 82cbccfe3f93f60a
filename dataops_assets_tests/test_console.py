"""The progress line of ``dataops run``: months done of all, elapsed, time left; redrawn in place on a terminal
(and cleared before any other line), one line per finished month elsewhere."""

from __future__ import annotations

import io

from dataops_ops.console import Console, Progress, clock_text


class FakeClock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_clock_text() -> None:
    assert [clock_text(s) for s in (0, 59.6, 61, 3599, 3600 + 62)] == ["0:00", "1:00", "1:01", "59:59", "1:01:02"]


def test_time_left_follows_the_pace_of_the_months_after_the_reference_tables() -> None:
    clock = FakeClock()
    progress = Progress(12, clock)
    clock.now += 5
    assert progress.line() == "0/12 months done, 0:05 elapsed, loading the reference tables"
    progress.months_started()
    assert progress.line() == "0/12 months done, 0:05 elapsed, estimating time left"
    clock.now += 30
    progress.month_done()
    progress.month_done()
    progress.month_done()  # 3 months in 30 s: 9 left at 10 s each
    assert progress.line() == "3/12 months done, 0:35 elapsed, about 1:30 left"
    assert progress.line(final=True) == "3/12 months done, 0:35 elapsed"
    for _ in range(9):
        progress.month_done()
    assert progress.line() == "12/12 months done, 0:35 elapsed"


def test_elsewhere_one_plain_line_per_finished_month() -> None:
    clock = FakeClock()
    out, err = io.StringIO(), io.StringIO()
    console = Console(out, err, Progress(2, clock), live=False)
    with console.running():
        console.line("dev reference ok")
        console.months_started()
        clock.now += 20
        console.month_done()
        console.stderr.write("a log line\n")
        console.month_done()
    assert out.getvalue().splitlines() == [
        "dev reference ok",
        "progress: 1/2 months done, 0:20 elapsed, about 0:20 left",
        "progress: 2/2 months done, 0:20 elapsed",
    ]
    assert "\r" not in out.getvalue()
    assert err.getvalue() == "a log line\n"


def test_on_a_terminal_the_line_is_redrawn_in_place_and_cleared_before_other_lines() -> None:
    clock = FakeClock()
    out, err = io.StringIO(), io.StringIO()
    console = Console(out, err, Progress(2, clock), live=True)
    with console.running():
        console.months_started()
        clock.now += 10
        console.month_done()
        console.stderr.write("a log ")
        console.stderr.write("line\n")  # held until complete, then written over the cleared progress line
        console.line("dev 2013-02 ok: 3/3 checks passed, run r2")
        console.month_done()
    shown = out.getvalue()
    clear = "\r\x1b[K"
    assert shown.startswith(f"{clear}0/2 months done, 0:00 elapsed, loading the reference tables")
    assert f"{clear}1/2 months done, 0:10 elapsed, about 0:10 left{clear}dev 2013-02 ok" in shown
    assert shown.endswith(f"{clear}2/2 months done, 0:10 elapsed{clear}2/2 months done, 0:10 elapsed\n")
    assert err.getvalue() == "a log line\n"
    # what a terminal shows once the carriage returns have done their work: every line whole
    screen = [line.rsplit(clear, 1)[-1] for line in shown.split("\n")[:-1]]
    assert screen == ["dev 2013-02 ok: 3/3 checks passed, run r2", "2/2 months done, 0:10 elapsed"]
