"""Every illegal link input of the board top as a table row (issue 17, item 1): a name, a
minimal violating host byte sequence (bytes sent 8N1, or with a low stop bit: a framing
error), the board's answers to it written out by hand from golden/spec/link.py's
protocol, and how many link errors it counts. The reasons are golden's own: every call of
BoardModel._error in golden/model/board.py (found in its source, so a new error path
without a row fails test_every_error_path_has_a_row).

Each row is followed by 'S' (the link's error count: it counted the row), an 'R' of the
words_in counter (nothing of a dropped command reached the system) and an 'R' of ID (the
board reads the next command byte as a command: it keeps running). On golden the answers
must be the row's; on the board top's replay harness (cosim/replay/board.py) they must be
golden's, byte for byte: one Verilator run per row (a missed rule is named), and all rows
in one Icarus run (there only 'S' follows each row, the whole trailer the last).
"""

from __future__ import annotations

import ast
import inspect

import pytest

from bfimna.cosim.replay.board import plan_script, problems, run_board_replay
from bfimna.golden.model import board as board_model
from bfimna.golden.model.board import BoardModel
from bfimna.golden.spec.config import load_config
from bfimna.golden.spec.link import READ, WORD, read_bytes, stats_bytes, word_bytes
from bfimna.golden.spec.regs import GLOBAL_COUNTER_BASE, GLOBAL_COUNTERS, ID_MAGIC, REG_ID

from conftest import CONFIG_DIR, ROOT

BUILD = ROOT / "build" / "test-cosim"
CFG = "sys_t2k2"
DIVISOR = 8
WORDS_IN = GLOBAL_COUNTER_BASE + 8 * GLOBAL_COUNTERS.index("words_in")
W = word_bytes(0x0000000500000001, True)       # a whole 'W' frame (10 bytes)
R_ID = read_bytes(REG_ID)
E, K = ("err",), ("ack",)

# (name, chunks: (how, hex bytes), the board's answers, link errors counted, golden's
#  error paths: the functions that call _error, "framing_error" and/or "feed")
Row = tuple[str, list[tuple[str, str]], list[tuple], int, "str | None"]
ROWS: list[Row] = [
    ("unknown command byte 0x00", [("send", "00")], [E], 1, "feed"),
    ("unknown command byte 0xff", [("send", "ff")], [E], 1, "feed"),
    ("board code 'K' sent by the host", [("send", "4b")], [E], 1, "feed"),
    ("board code 'D' sent by the host", [("send", "44")], [E], 1, "feed"),
    ("board code 'E' sent by the host", [("send", "45")], [E], 1, "feed"),
    ("lower-case 'w'", [("send", "77")], [E], 1, "feed"),
    ("two unknown bytes", [("send", "0102")], [E, E], 2, "feed"),
    ("framing error on a 'W' code byte", [("bad", "57")], [E], 1, "framing_error"),
    ("framing error on an 'S' code byte", [("bad", "53")], [E], 1, "framing_error"),
    ("framing error on 0xff", [("bad", "ff")], [E], 1, "framing_error"),
    ("break: 0x00 with a low stop bit", [("bad", "00")], [E], 1, "framing_error"),
    ("framing error in a WORD's payload", [("send", W[:4].hex()), ("bad", "a5")], [E], 1,
     "framing_error"),
    ("framing error on a WORD's flags byte", [("send", W[:WORD.length - 1].hex()),
                                              ("bad", W[-1:].hex())], [E], 1,
     "framing_error"),
    ("framing error in a READ's address", [("send", R_ID[:2].hex()), ("bad", "00")], [E], 1,
     "framing_error"),
    ("framing error on a READ's code byte", [("bad", R_ID[:1].hex())], [E], 1,
     "framing_error"),
    ("a dropped WORD's rest is read as commands",
     [("send", W[:3].hex()), ("bad", W[3:4].hex()), ("send", "44")], [E, E], 2,
     "framing_error,feed"),
    ("two framing errors in a row", [("bad", "5757")], [E, E], 2, "framing_error"),
]
# a truncated command is not an error on the link: it waits for its bytes, whatever
# they are (no timeout): a READ cut after one address byte takes the next command byte
# as its second (golden/spec/link.py); the board must do the same
TRUNCATED: list[Row] = [
    ("a truncated READ takes the next byte as payload",
     [("send", R_ID[:READ.length - 1].hex() + "53")], [("reg", 0)], 0, None),
]


def trailer(errors: int) -> tuple[list, list]:
    """What follows a row: 'S', 'R' words_in, 'R' ID, and their answers."""
    chunks = [("send", (stats_bytes() + read_bytes(WORDS_IN) + R_ID).hex())]
    return chunks, [("reg", errors), ("reg", 0), ("reg", ID_MAGIC)]


def chunks_of(row) -> list[tuple[str, bytes]]:
    return [(how, bytes.fromhex(data)) for how, data in row[1]]


def error_paths() -> set[str]:
    """The functions of golden/model/board.py that call self._error(): golden's reasons."""
    tree = ast.parse(inspect.getsource(board_model))
    out = set()
    for fn in ast.walk(tree):
        if isinstance(fn, ast.FunctionDef):
            for node in ast.walk(fn):
                if (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)
                        and node.func.attr == "_error"):
                    out.add(fn.name)
    return out


def golden_paths(cfg, row) -> tuple[list[tuple], set[str]]:
    """Golden's answers to a row plus its trailer, and the functions that called _error."""
    model, hit = BoardModel(cfg), set()
    real = model._error

    def traced():
        hit.add(inspect.stack()[1].function)
        return real()

    model._error = traced            # type: ignore[method-assign]
    chunks, _ = trailer(row[3])
    plan = plan_script(cfg, chunks_of(row) + [(h, bytes.fromhex(d)) for h, d in chunks],
                       model=model)
    return plan.replies, hit


@pytest.fixture(scope="module")
def cfg():
    return load_config(CONFIG_DIR / f"{CFG}.yaml")


def test_every_error_path_has_a_row(cfg):
    paths = error_paths()
    assert paths == {"feed", "framing_error"}, f"golden's error paths changed: {paths}"
    covered = set()
    for row in ROWS:
        _, hit = golden_paths(cfg, row)
        covered |= hit
    assert covered == paths, f"error paths without a row: {paths - covered}"


@pytest.mark.parametrize("row", ROWS + TRUNCATED, ids=[r[0] for r in ROWS + TRUNCATED])
def test_golden_answers_the_row(cfg, row):
    name, _chunks, answers, errors, path = row
    replies, hit = golden_paths(cfg, row)
    _, after = trailer(errors)
    assert replies == answers + after, f"{name}: golden answers {replies}"
    assert hit == set(path.split(",") if path else ()), f"{name}: golden's error path {hit}"


def rtl_check(cfg, sim, rows, short=False):
    """The rows, each with its trailer (short: only 'S' after each row, the whole trailer
    at the end), on the board top under `sim`: every answer must be golden's."""
    chunks: list = []
    for i, row in enumerate(rows):
        chunks += chunks_of(row)
        if short and i < len(rows) - 1:
            chunks.append(("send", stats_bytes()))
        else:
            chunks += [(h, bytes.fromhex(d)) for h, d in trailer(0)[0]]
    plan = plan_script(cfg, chunks)
    ok, s, run = run_board_replay(cfg, sim, plan.script, [], DIVISOR, 400_000, BUILD)
    wrong = problems(s, plan.replies, 0)
    got_beats = [ev for _c, ev in s["events"] if ev[0] == "data"]
    if got_beats:
        wrong.append(f"{len(got_beats)} output beats, golden none")
    assert ok and not wrong, "; ".join(wrong) + f" (rerun: {run.command})"
    run.cleanup()
    return plan, s


@pytest.mark.cosim
@pytest.mark.parametrize("row", ROWS + TRUNCATED, ids=[r[0] for r in ROWS + TRUNCATED])
def test_row_on_verilator(cfg, row):
    plan, s = rtl_check(cfg, "verilator", [row])
    assert plan.link_errors == row[3]


@pytest.mark.cosim
def test_all_rows_on_icarus(cfg):
    rows = ROWS + TRUNCATED
    plan, s = rtl_check(cfg, "icarus", rows, short=True)
    assert plan.link_errors == sum(r[3] for r in rows)
    print(f"{len(rows)} link rows in one icarus run: {len(plan.replies)} answers equal "
          f"golden's, {plan.link_errors} link errors counted, "
          f"{s['marks']['P'] - s['marks']['S']} cycles")
