from harness.verifier import info_from, parse_stats, summarize
from harness.vm.console import crash_headline, find_crash

REJECT_LOG = """func#0 @0
0: R1=ctx(off=0,imm=0) R10=fp0
0: (b7) r1 = 0                        ; R1_w=0
1: (85) call bpf_loop#181
invalid func unknown#181
processed 2 insns (limit 1000000) max_states_per_insn 0 total_states 0 peak_states 0 mark_read 0
"""
PASS_LOG = """verification time 8196 usec
stack depth 0
processed 13 insns (limit 1000000) max_states_per_insn 0 total_states 1 peak_states 1 mark_read 0
"""


def test_stats():
    st = parse_stats(PASS_LOG)
    assert (st["insns_processed"], st["states"], st["peak_states"]) == (13, 1, 1)
    assert (st["verification_usec"], st["stack_depth"], st["max_states_per_insn"]) == (8196, 0, 0)
    assert set(parse_stats("nothing").values()) == {None}


def test_stats_of_several_programs_sum_counts_and_keep_peaks():
    two = PASS_LOG + PASS_LOG.replace("stack depth 0", "stack depth 16+32").replace(
        "max_states_per_insn 0 total_states 1 peak_states 1",
        "max_states_per_insn 4 total_states 9 peak_states 7")
    st = parse_stats(two)
    assert st["insns_processed"] == 26 and st["states"] == 10 and st["verification_usec"] == 16392
    assert st["peak_states"] == 7 and st["max_states_per_insn"] == 4 and st["stack_depth"] == 48


def test_info_from_carries_sizes_from_the_guest():
    v = info_from({"log": PASS_LOG, "insns": 5, "xlated_bytes": 40, "jited_bytes": 33})
    assert v is not None and (v.insns, v.xlated_bytes, v.jited_bytes) == (5, 40, 33)
    assert v.insns_processed == 13


def test_summary_is_the_reason_with_omitted_count():
    s = summarize(REJECT_LOG)
    assert s.startswith("invalid func unknown#181")
    assert "lines omitted" in s
    assert "R1=ctx" not in s


def test_register_state_lines_are_not_the_reason():
    log = ("0: R1=ctx(off=0,imm=0) R10=fp0\n"
           " R0=map_value(id=0,off=0,ks=4,vs=4,imm=0) R1=inv1 R6=ctx(id=0,off=0,imm=0)\n"
           "R0_w=inv(id=0)\n"
           "unknown func bpf_get_func_ip#173\n")
    assert summarize(log).startswith("unknown func bpf_get_func_ip#173")


def test_info_from_guest_payload():
    v = info_from({"log": PASS_LOG, "verified_insns": 13, "insns": 20})
    assert (v.insns_processed, v.states, v.verified_insns, v.insns) == (13, 1, 13, 20)
    assert info_from(None) is None


CONSOLE = """[    9.0] virtme-ng-init: ok
[    9.552366] sysrq: Trigger a crash
[    9.552625] Kernel panic - not syncing: sysrq triggered crash
[    9.553642] Call Trace:
[    9.554791]  panic+0x114/0x2f1
"""


def test_crash_detection():
    ex = find_crash(CONSOLE)
    assert ex is not None and "Call Trace" in ex
    assert crash_headline(ex) == "Kernel panic - not syncing: sysrq triggered crash"
    assert find_crash("[ 1.0] all fine\n[ 2.0] reboot: Power down\n") is None


def test_stats_in_the_7x_format():
    log = ("verification time 23780 usec\nstack depth max 24\n"
           "subprog 0 (ringbuf_prog) main insns_self 16 insns_total 16 stack 24\n"
           "processed 16 insns (limit 1000000) max_states_per_insn 0 total_states 1 "
           "peak_states 1 mark_read 0\n")
    st = parse_stats(log)
    assert st["stack_depth"] == 24 and st["insns_processed"] == 16
    assert summarize(log) == ""  # nothing in a passing log is a reason
