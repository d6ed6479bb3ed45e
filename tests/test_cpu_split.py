"""OVBENCH_SERVICE_CPUS: CPU lists read as Linux writes them, the split among the CPUs a
process may use (refused, naming the setting, when it names others or leaves none to run),
and the split a parent hands down to its worker."""

from __future__ import annotations

import os

import pytest

from app import cpu_split
from app.cpu_split import CpuSplit, handed_down, parse_cpu_list, split


@pytest.mark.parametrize(
    ("text", "cpus"),
    [
        ("0", {0}),
        ("3", {3}),
        ("0,2", {0, 2}),
        ("0-2,5", {0, 1, 2, 5}),
        (" 1 - 3 , 7 ", {1, 2, 3, 7}),  # spaces around parts and dashes
        ("2-2", {2}),
        ("0-1,1-2", {0, 1, 2}),  # overlaps are one set
    ],
)
def test_parse_cpu_list_reads_numbers_and_ranges(text: str, cpus: set[int]) -> None:
    assert parse_cpu_list(text) == frozenset(cpus)


@pytest.mark.parametrize(
    ("text", "part", "says"),
    [
        ("x", "x", "is not a CPU number or range"),
        ("0,a", "a", "is not a CPU number or range"),
        ("", "", "is not a CPU number or range"),
        ("0,", "", "is not a CPU number or range"),
        ("1-", "1-", "is not a CPU number or range"),
        ("0-1-2", "0-1-2", "is not a CPU number or range"),
        ("1.5", "1.5", "is not a CPU number or range"),
        ("3-1", "3-1", "is not a CPU range (use low-high)"),
        ("-1", "-1", "is not a CPU number or range"),
    ],
)
def test_parse_cpu_list_refuses_what_is_not_a_cpu_list_naming_the_part(
    text: str, part: str, says: str
) -> None:
    with pytest.raises(ValueError) as caught:
        parse_cpu_list(text)
    message = str(caught.value)
    assert f"{part!r} in {text!r} {says}" in message, message


def test_cpu_list_reads_back() -> None:
    cpus = frozenset({5, 0, 2, 3})
    assert cpu_split.cpu_list(cpus) == "0,2,3,5"
    assert parse_cpu_list(cpu_split.cpu_list(cpus)) == cpus


@pytest.mark.parametrize("text", ["", "   "])
def test_no_split_when_unset(text: str) -> None:
    assert split(text, frozenset({0, 1})) is None
    assert handed_down(text, "1") is None  # a run list without a service list means nothing


def test_split_gives_the_service_its_cpus_and_the_benchmark_the_rest() -> None:
    available = frozenset({0, 1, 2, 3, 8})
    assert split("0", available) == CpuSplit(service=frozenset({0}), run=frozenset({1, 2, 3, 8}))
    assert split("0-1,8", available) == CpuSplit(
        service=frozenset({0, 1, 8}), run=frozenset({2, 3})
    )


def test_split_refuses_cpus_the_process_may_not_use_naming_them_and_what_it_may() -> None:
    with pytest.raises(ValueError) as caught:
        split("0,7,9", frozenset({0, 1, 2}))
    message = str(caught.value)
    assert message.startswith("OVBENCH_SERVICE_CPUS=0,7,9 names CPUs [7, 9]"), message
    assert "it may use 0,1,2" in message, message


def test_split_refuses_to_leave_no_cpu_for_the_benchmark() -> None:
    with pytest.raises(ValueError) as caught:
        split("0-1", frozenset({0, 1}))
    message = str(caught.value)
    assert message.startswith("OVBENCH_SERVICE_CPUS=0-1 leaves no CPU for the benchmark"), message
    assert "(of 0,1)" in message and "leave at least one out, or unset it" in message


def test_split_refuses_a_bad_list_naming_the_setting_and_the_part() -> None:
    with pytest.raises(ValueError) as caught:
        split("0,zero", frozenset({0, 1}))
    message = str(caught.value)
    assert "'zero' in '0,zero' is not a CPU number" in message, message
    assert "OVBENCH_SERVICE_CPUS" in message, message  # serve logs it alone: name the setting


def _two_cpus_or_more() -> frozenset[int]:
    """The CPUs this process may use; fails (not skips) the test on a 1-CPU host."""
    available = frozenset(os.sched_getaffinity(0))
    if len(available) < 2:
        pytest.fail(
            f"This test needs a process allowed 2 CPUs or more; this one may use "
            f"{sorted(available)} (os.sched_getaffinity)",
            pytrace=False,
        )
    return available


def test_split_defaults_to_the_cpus_this_thread_may_use() -> None:
    available = _two_cpus_or_more()
    first = min(available)
    assert split(str(first)) == CpuSplit(service=frozenset({first}), run=available - {first})
    with pytest.raises(ValueError, match="leaves no CPU for the benchmark"):
        split(cpu_split.cpu_list(available))


def test_handed_down_takes_the_parents_lists_as_given() -> None:
    # The child runs pinned to the service CPUs: it must not work the split out again
    # (its own affinity would leave nothing to run on).
    assert handed_down("0", "1-3") == CpuSplit(service=frozenset({0}), run=frozenset({1, 2, 3}))
    assert handed_down("0,4", "1,2") == CpuSplit(service=frozenset({0, 4}), run=frozenset({1, 2}))


def test_handed_down_without_a_run_list_works_the_split_out_here() -> None:
    available = _two_cpus_or_more()
    first = min(available)
    assert handed_down(str(first), "") == split(str(first))
    assert handed_down(str(first), "  ") == CpuSplit(
        service=frozenset({first}), run=available - {first}
    )


def test_handed_down_refuses_a_bad_list() -> None:
    with pytest.raises(ValueError, match=r"'x' in 'x' is not a CPU number"):
        handed_down("0", "x")


def test_describe_names_both_sides() -> None:
    text = cpu_split.describe(CpuSplit(service=frozenset({0}), run=frozenset({1, 3})))
    assert text == "service on CPUs 0, benchmarks on CPUs 1,3"
