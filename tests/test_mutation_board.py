"""Mutation scores on the RTL for the UART and the link (issue 17): every mutant of
hdl/gen/uart.py (UART_FAULTS) and hdl/gen/board.py (LINK_FAULTS) must make the board's
catching tier disagree with golden's board (golden/model/board.py).

Cost: the board top's VERIFY build holds every UART and link mutant behind its own
`tb_fault` input (the system inside is real RTL), so ONE Verilator build of sys_t2k2 at
divisor 8 serves them all; each mutant is one replay run (cosim/replay/board.py,
`+fault`).

Catching tiers, one host byte stream each, in this order (a mutant caught by the first
does not run the second):
- the link rules: every row of the link-rule table (tests/test_link_rules.py ROWS and
  TRUNCATED, each followed by 'S') and its trailer ('S', 'R' words_in, 'R' ID);
- a program over the link: a short seeded program, a READ of 8 rows (more than the
  system's output FIFO holds, so the system stops taking beats while the UART drains it)
  and a SYNC right after it, as 'W' beats, then the link's reset 'Z' and the worked
  example of docs/system.md.
Each run ends with every register read over the link; every reply, every output beat and
every register must be golden's board's (chunks_run, the UART fuzz's checks). The
unmutated VERIFY build (tb_fault 0) must agree first on both, so a mutant counts as caught
only through a real difference; a mutant's watchdog is the unmutated run's cycles plus
10% (a mutant that loses a reply leaves the host waiting). No mutant is equivalent under this
tier (each is caught); the receiver's wait for the line high after a framing error (the
end of a break) has no mutant: the harness cannot hold the line low longer than a stop
bit, so that mutant would be equivalent here.
"""

from __future__ import annotations

import random
import sys

import pytest
from test_link_rules import ROWS, TRUNCATED, chunks_of, trailer

from bfimna.cosim.replay.board import chunks_run
from bfimna.golden.host.program import HostProgram
from bfimna.golden.host.stimulus import random_host_program
from bfimna.golden.spec.config import load_config
from bfimna.golden.spec.link import reset_bytes, stats_bytes, word_bytes
from bfimna.hdl.gen.board import LINK_FAULTS, BoardTop, board_mutant_numbers
from bfimna.hdl.gen.uart import UART_FAULTS

from conftest import CONFIG_DIR, ROOT

BUILD = ROOT / "build" / "test-cosim"
DIVISOR = 8           # as tests/test_link_rules.py and tests/test_replay_board.py

sys.path.insert(0, str(ROOT / "docs" / "examples"))
from host_example import build as worked_example  # noqa: E402


def beats_of(prog: HostProgram) -> tuple[str, bytes]:
    return ("send", b"".join(word_bytes(w, last) for w, last in prog.beats()))


def catching_chunks(cfg, seed: int) -> dict[str, list[tuple[str, bytes]]]:
    """The catching tiers' host input (module docstring), by tier."""
    rules: list[tuple[str, bytes]] = []
    for row in ROWS + TRUNCATED:
        rules += chunks_of(row)
        rules.append(("send", stats_bytes()))
    rules += [(h, bytes.fromhex(d)) for h, d in trailer(0)[0]]
    before = random_host_program(cfg, seed, n_packets=4, instr_len=4, final_readback=False)
    stall = HostProgram(cfg)
    stall.read(0, 0, 0, 8, width=8)
    stall.sync(tag=seed % 256)
    program = [beats_of(before), beats_of(stall), ("send", reset_bytes()),
               beats_of(worked_example(cfg))]
    return {"link rules": rules, "program": program}


@pytest.mark.cosim
def test_uart_and_link_mutants_are_caught(seed):
    cfg = load_config(CONFIG_DIR / "sys_t2k2.yaml")
    tiers = catching_chunks(cfg, seed)
    budget, total = {}, 0
    for tier, chunks in tiers.items():
        wrong, info, run = chunks_run(cfg, "verilator", chunks, BUILD, DIVISOR, fault=0)
        assert not wrong, (f"the unmutated VERIFY build differs on the {tier}: {wrong}; "
                           f"rerun: {run.command}")
        assert info["link_errors"] > 0 if tier == "link rules" else info["beats"] > 0
        budget[tier] = info["cycles"] * 11 // 10
        total += info["bytes"]
        run.cleanup()
    res: dict[str, str | None] = {}
    for name, num in board_mutant_numbers().items():
        res[name] = None
        for tier, chunks in tiers.items():
            wrong, _info, run = chunks_run(cfg, "verilator", chunks, BUILD, DIVISOR,
                                           fault=num, budget=budget[tier])
            run.cleanup()
            if wrong:
                res[name] = f"{tier}: {wrong[0]}"
                break
    for block, faults in (("uart", UART_FAULTS), ("link", LINK_FAULTS)):
        c = [n for n in faults if res[n] is not None]
        print(f"\n[mutation] {block}: {len(c)}/{len(faults)} mutants caught by the link "
              f"rules and a program over the link ({total} host bytes, seed {seed})")
        for n in c:
            print(f"  {n}: {res[n]}")
    missed = [n for n, why in res.items() if why is None]
    assert not missed, f"mutants not caught (seed {seed}): {missed}"


def test_board_mutants_are_test_only():
    """Numbers distinct and within the port; an unknown fault name fails."""
    nums = board_mutant_numbers()
    assert set(nums) == {*UART_FAULTS, *LINK_FAULTS}
    assert len(set(nums.values())) == len(nums) and 0 not in nums.values()
    assert max(nums.values()) < 256
    cfg = load_config(CONFIG_DIR / "sys_t2k2.yaml")
    with pytest.raises(ValueError, match="unknown fault"):
        BoardTop(cfg, DIVISOR, fault="no_such_mutant")


def test_catching_chunks_are_seeded():
    cfg = load_config(CONFIG_DIR / "sys_t2k2.yaml")
    seeds = random.Random(1).sample(range(2**31), 2)
    a, b = (catching_chunks(cfg, s)["program"] for s in seeds)
    assert a != b and a == catching_chunks(cfg, seeds[0])["program"]
