"""Every host-packet rule of the system (golden/model/system.py: check_header, check_dest)
as a table row: a name, a minimal violating packet and the reason golden must give. Each
row is checked on golden (the reason matches: the table cannot drift from the rules) and
then on the emitted system top through the replay harness, under Verilator (one run per
row of the two-tile configuration, so a missed rule is named) and Icarus (all rows of
a configuration in one program, the 1D one included): the RTL must drop
exactly what golden drops (bad_packets, dropped_words), raise the sticky protocol error,
keep running (a SYNC after the bad packet answers) and agree on every counter.
"""

from __future__ import annotations

import pytest

from bfimna.cosim.drivers.backends import backend, compare
from bfimna.golden.host.program import HostProgram, Response
from bfimna.golden.model.system import check_dest, check_header
from bfimna.golden.spec.config import load_config
from bfimna.golden.spec.regs import BROADCAST, HEADER, PT, Header, dest, header

from conftest import CONFIG_DIR, ROOT

BUILD = ROOT / "build" / "test-cosim"
RSV0, RSV1 = 1 << HEADER["rsv0"].lsb, 1 << HEADER["rsv1"].lsb

# sys_t2k2: 2 tiles, 2D CAP 24 x 48, 2 MAPs 16 x 40; ap1d_100x24: 1 tile, 1D CAP, no MAP
# (name, config, words of the bad packet, what golden's reason must contain)
ROWS = [
    ("reserved bit 15", "sys_t2k2", [header(PT.READ, count=1) | RSV0], "reserved header"),
    ("reserved bit 63", "sys_t2k2", [header(PT.SYNC) | RSV1], "reserved header"),
    ("type 0", "sys_t2k2", [header(0, count=1)], "unknown packet type"),
    ("type 15", "sys_t2k2", [header(15, count=2), 1, 2], "unknown packet type"),
    ("INSTR to no tile", "sys_t2k2", [header(PT.INSTR, tile=2, count=1), 0], "does not exist"),
    ("INSTR count 0", "sys_t2k2", [header(PT.INSTR, tile=BROADCAST, count=0)], "count=0"),
    ("WRITE to no tile", "sys_t2k2", [header(PT.WRITE, tile=3, count=1, width=4), 5],
     "does not exist"),
    ("READ count 0", "sys_t2k2", [header(PT.READ, count=0, width=4)], "count=0"),
    ("WRITE to no AP", "sys_t2k2", [header(PT.WRITE, ap=3, count=1, width=4), 5],
     "AP 3 does not exist"),
    ("READ past the rows", "sys_t2k2", [header(PT.READ, row=20, count=5, width=4)],
     "rows [20, 25) outside"),
    ("READ past a MAP's rows", "sys_t2k2", [header(PT.READ, ap=2, row=16, count=1, width=4)],
     "rows [16, 17) outside"),
    ("WRITE past the columns", "sys_t2k2",
     [header(PT.WRITE, ap=1, col=36, count=1, width=8), 7], "columns [36, 44) outside"),
    ("COPYCOL past the columns", "sys_t2k2",
     [header(PT.COPYCOL, row=40, count=9), dest(1)], "columns [40, 49) outside"),
    ("COPYCOL on a 1D CAP", "ap1d_100x24", [header(PT.COPYCOL, count=1), dest(0)],
     "needs a 2D CAP"),
    ("COPY destination reserved bit", "sys_t2k2",
     [header(PT.COPY, count=1, width=4), dest(1) | 1], "bits outside its fields"),
    ("COPY to no tile", "sys_t2k2", [header(PT.COPY, count=1, width=4), dest(2)],
     "destination tile 2 does not exist"),
    ("COPY to the same tile", "sys_t2k2", [header(PT.COPY, tile=1, count=1, width=4), dest(1)],
     "the same"),
    ("COPY to no AP", "sys_t2k2", [header(PT.COPY, count=1, width=4), dest(1, ap=3)],
     "AP 3 does not exist"),
    ("COPY past the destination rows", "sys_t2k2",
     [header(PT.COPY, count=4, width=4), dest(1, ap=1, row=14)], "rows [14, 18) outside"),
    ("COPY past the destination columns", "sys_t2k2",
     [header(PT.COPY, count=1, width=8), dest(1, ap=1, col=35)], "columns [35, 43) outside"),
    ("COPYCOL past the destination columns", "sys_t2k2",
     [header(PT.COPYCOL, row=0, count=8), dest(1, row=44)], "destination columns [44, 52)"),
]


def golden_reason(cfg, words) -> str | None:
    h = Header.decode(words[0])
    why = check_header(cfg, h)
    if why is None and h.type in (PT.COPY, PT.COPYCOL):
        why = check_dest(cfg, h, words[1])
    return why


def program(cfg, rows) -> HostProgram:
    """Each bad packet followed by a SYNC (its answer carries the protocol error) and a
    good WRITE + READ (the system kept running and parses packets from the right word)."""
    prog = HostProgram(cfg)
    for i, (_name, _c, words, _why) in enumerate(rows):
        prog.raw(words)
        prog.sync(tag=i)
        prog.write(0, 0, i % cfg.ap.rows, [i + 1], width=8)
        prog.read(0, 0, i % cfg.ap.rows, 1, width=8)
    return prog


@pytest.mark.parametrize("row", ROWS, ids=[r[0] for r in ROWS])
def test_golden_gives_the_rows_reason(row):
    name, cfg_name, words, want = row
    why = golden_reason(load_config(CONFIG_DIR / f"{cfg_name}.yaml"), words)
    assert why is not None and want in why, f"{name}: golden says {why!r}"


def test_every_rule_has_a_row():
    """Every `return "..."` reason of check_header/check_dest/_check_field is some row's."""
    import inspect
    import re

    from bfimna.golden.model import system
    src = "".join(inspect.getsource(f) for f in (system.check_header, system.check_dest,
                                                  system._check_field))
    reasons = re.findall(r'return f?"([^"{]+)', src)
    assert len(reasons) >= 14, reasons          # the pattern still finds the reasons
    covered = [r[3] for r in ROWS]
    missing = [r for r in reasons if not any(r.strip() in c or c in r for c in covered)]
    assert not missing, f"rules without a row: {missing}"


V_ROWS = [r for r in ROWS if r[1] == "sys_t2k2"]   # the 1D row: on Icarus (a build less)


@pytest.mark.cosim
@pytest.mark.parametrize("row", V_ROWS, ids=[r[0] for r in V_ROWS])
def test_rule_on_verilator(row):
    cfg = load_config(CONFIG_DIR / f"{row[1]}.yaml")
    prog = program(cfg, [row])
    want = backend("golden", cfg).run(prog)
    assert want.global_counters["bad_packets"] == 1 and want.proto_error
    rtl = backend("verilator", cfg, build_root=BUILD)
    got = rtl.run(prog)
    diffs = compare(want, got, prog)
    assert not diffs, f"{row[0]}: " + "; ".join(diffs[:6]) + f"; rerun: {rtl.command}"


@pytest.mark.cosim
@pytest.mark.parametrize("cfg_name", ["sys_t2k2", "ap1d_100x24"])
def test_rules_on_icarus(cfg_name):
    cfg = load_config(CONFIG_DIR / f"{cfg_name}.yaml")
    rows = [r for r in ROWS if r[1] == cfg_name]
    prog = program(cfg, rows)
    want = backend("golden", cfg).run(prog)
    assert want.global_counters["bad_packets"] == len(rows)
    assert all(isinstance(r, Response) for r in prog.responses)
    got = backend("icarus", cfg, build_root=BUILD).run(prog)
    diffs = compare(want, got, prog)
    assert not diffs, "; ".join(diffs[:6])
    print(f"{cfg_name}: {len(rows)} packet rules on icarus, bad_packets "
          f"{got.global_counters['bad_packets']}, dropped words "
          f"{got.global_counters['dropped_words']}")
