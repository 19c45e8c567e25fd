"""cocotb on the emitted AP controller, Verilator and Icarus, every config in configs/:
seeded random programs over all operations, precisions 1..16 and random fields (with
illegal words), streamed in bulk; final array, counters and status equal the golden
controller's. One program changes precision on every instruction: bit fluidity.

Every random program starts with a covering program (`covering_program`): each CAP
opcode with each signedness it takes, each kind of illegal word random_program makes,
in random order, with an instruction long enough to fill the queue while more words
wait (the stream stalls); the test asserts that coverage. Icarus runs the covering
program alone (it simulates the 256 x 64 default tile at ~100 cycles/s), Verilator
the covering program and 300 random instructions after it.
"""

import numpy as np
import pytest

from bfimna.cosim.drivers.runner import run_program_rtl
from bfimna.golden.host.stimulus import random_instruction, random_program
from bfimna.golden.model.controller import Controller
from bfimna.golden.spec.config import load_config
from bfimna.golden.spec.costs import instr_cycles
from bfimna.golden.spec.isa import (
    OPCODES,
    RESERVED,
    RESERVED_COLS,
    UNKNOWN_OPCODE,
    Instr,
    Opc,
    decode,
    encode,
    failing_checks,
    runs_on,
)

from conftest import CONFIG_DIR, HW_CONFIGS, ROOT

pytestmark = pytest.mark.cosim
BUILD = ROOT / "build" / "test-cosim"
# random instructions after the covering program (Icarus: none, see the docstring)
N_RANDOM = {"verilator": 300, "icarus": 0}
# the checks random_program's illegal words fail: unknown opcode, a reserved bit set, an
# operand past the usable columns, overlapping operands
ILLEGAL_CHECKS = {(UNKNOWN_OPCODE,), (RESERVED,), ("fits",), ("apart",)}


def random_cam(cfg, rng):
    cam = rng.integers(0, 2, size=(cfg.ap.rows, cfg.ap.cols)).astype(np.uint8)
    cam[:, -RESERVED_COLS:] = 0  # the reserved column starts (and stays) zero
    return cam


def variants(ap) -> list[tuple[Opc, bool | None]]:
    """Every (opcode, signedness) a CAP like `ap` runs (None: the opcode has no .s/.u)."""
    return [(op, s) for op, spec in OPCODES.items() if runs_on(spec, ap)
            for s in ((False, True) if spec.signed else (None,))]


def illegal_checks(word: int, ap) -> tuple[str, ...]:
    return tuple(failing_checks(decode(word), ap))


def cycles(word: int, ap) -> int:
    return 0 if illegal_checks(word, ap) else instr_cycles(word, ap)


def fills_queue(cfg, words) -> bool:
    """Whether the stream must stall on a full queue: an instruction runs for twice the
    queue's depth (the harness offers a word a cycle: the queue is full after `depth`
    cycles, the rest is margin) while more than a queue's worth of words follow it."""
    q = cfg.ctrl.queue_depth
    return any(len(words) - i - 1 > q and cycles(w, cfg.ap) >= 2 * q
               for i, w in enumerate(words))


def covering_program(cfg, seed) -> list[int]:
    """Each (opcode, signedness) of `variants` once, drawn by random_instruction (random
    precision 1..16, fields and immediate) and each kind of illegal word random_program
    makes, in random order; if that order does not fill the queue (`fills_queue`), the
    longest instruction goes first (or, none being long enough, one more that is)."""
    ap = cfg.ap
    rng = np.random.default_rng(seed)
    words = []
    for op, s in variants(ap):
        for _ in range(100_000):
            ins = random_instruction(ap, rng)
            if ins.op == op and s in (None, ins.s):
                words.append(encode(ins))
                break
        else:
            raise AssertionError(f"random_instruction never drew {op.name} s={s} on {cfg.name}")
    kinds: dict[tuple[str, ...], int] = {}
    for w in random_program(ap, int(rng.integers(2**31)), 64, illegal_share=1.0):
        kinds.setdefault(illegal_checks(w, ap), w)
    words += kinds.values()
    words = [words[i] for i in rng.permutation(len(words))]
    if not fills_queue(cfg, words):      # the longest first, or one more that is long
        longest = max(range(len(words)), key=lambda i: cycles(words[i], ap))
        words.insert(0, words.pop(longest))
        for _ in range(100_000):
            if fills_queue(cfg, words):
                break
            w = encode(random_instruction(ap, rng))
            if cycles(w, ap) >= 2 * cfg.ctrl.queue_depth:
                words.insert(0, w)
        else:
            raise AssertionError(f"no instruction fills the queue of {cfg.name}")
    return words


def assert_covers(cfg, words, seed):
    """What the covering program promises, checked on the words a simulator runs."""
    legal = [decode(w) for w in words if not illegal_checks(w, cfg.ap)]
    seen = {(Opc(i.op), i.s if OPCODES[Opc(i.op)].signed else None) for i in legal}
    missing = set(variants(cfg.ap)) - seen
    assert not missing, f"seed {seed}: no {sorted((o.name, s) for o, s in missing)}"
    checks = {illegal_checks(w, cfg.ap) for w in words} - {()}
    assert checks >= ILLEGAL_CHECKS, f"seed {seed}: illegal words fail only {checks}"
    assert fills_queue(cfg, words), f"seed {seed}: the queue never fills"


def check_against_golden(cfg, sim, words, cam, seed):
    res = run_program_rtl(cfg, sim, words, cam, build_root=BUILD)
    assert res.passed, f"seed {seed}: the driver did not finish, see {res.log}"
    gold = Controller(cfg.ap)
    gold.ap.cam[:] = cam.astype(bool)
    gold.run(words)
    want_rows = gold.ap.rows_as_ints()
    bad = [r for r, (g, w) in enumerate(zip(res.rows, want_rows, strict=True)) if g != w]
    assert not bad, (f"seed {seed}: rows {bad[:8]} differ, e.g. row {bad[0]}: "
                     f"RTL {res.rows[bad[0]]:#x} golden {want_rows[bad[0]]:#x}")
    mod = 1 << cfg.ap.counter_bits
    assert res.counters == {k: v % mod for k, v in gold.counters.items()}, f"seed {seed}"
    assert res.error == gold.error and res.summary["busy"] == 0
    return res, gold


@pytest.mark.parametrize("sim", ["verilator", "icarus"])
@pytest.mark.parametrize("path", HW_CONFIGS, ids=lambda p: p.stem)
def test_random_programs_match_golden(path, sim, seed):
    cfg = load_config(path)
    rng = np.random.default_rng(seed)
    cover = covering_program(cfg, seed)
    words = cover + random_program(cfg.ap, seed, N_RANDOM[sim], illegal_share=0.03)
    assert_covers(cfg, words, seed)
    res, gold = check_against_golden(cfg, sim, words, random_cam(cfg, rng), seed)
    s = res.summary
    print(f"[cosim-ctl] {path.stem} on {sim}: {len(words)} instructions ({len(cover)} "
          f"covering every opcode and signedness, {len(ILLEGAL_CHECKS)} kinds of illegal "
          f"word, a full queue), {gold.counters['cycles']} cycles, "
          f"{gold.counters['errors']} illegal, {s['cycles_per_s']:.0f} cycles/s")
    assert gold.counters["instructions"] + gold.counters["errors"] == len(words)
    assert gold.counters["errors"] >= len(ILLEGAL_CHECKS)


@pytest.mark.parametrize("sim,fault", [("verilator", "no_carry_clear"),
                                       ("icarus", "last_bit_skipped")])
def test_broken_sequencer_fails_cosim(sim, fault, seed):
    """Mutation check: comparing only the final state still catches a wrong sequencer."""
    cfg = load_config(CONFIG_DIR / "ap2d_37x16.yaml")
    rng = np.random.default_rng(seed)
    words = random_program(cfg.ap, seed, 60, illegal_share=0.0)
    cam = random_cam(cfg, rng)
    res = run_program_rtl(cfg, sim, words, cam, build_root=BUILD, fault=fault)
    gold = Controller(cfg.ap)
    gold.ap.cam[:] = cam.astype(bool)
    gold.run(words)
    # a broken sequencer may also never finish: the watchdog then stops the run
    assert res.timed_out or res.rows != gold.ap.rows_as_ints() or \
        res.counters != gold.counters, f"fault {fault} went unnoticed (seed {seed})"
    assert res.passed or res.timed_out


@pytest.mark.parametrize("sim", ["verilator", "icarus"])
def test_bit_fluidity_precision_changes_every_instruction(sim, seed):
    """One generated design, one program, a different precision on every instruction."""
    cfg = load_config(CONFIG_DIR / "ap2d_37x16.yaml")  # 15 usable columns
    rng = np.random.default_rng(seed)
    words, precisions = [], []
    for k in range(48):
        n = 1 + (k * 5) % 7          # 1, 6, 4, 2, 7, 5, 3, 1, ...: never the same twice
        op = [Opc.ADD, Opc.SUB, Opc.MAX, Opc.MIN, Opc.COPY, Opc.ADDI, Opc.MUL, Opc.MAC][k % 8]
        s = bool(k % 3)
        if op == Opc.MUL:            # product d[0:7], a[7:7+n], b after a: 14 columns
            ins = Instr(op=op, s=s, d=0, a=7, b=7 + n, n=n, m=7 - n) if n < 7 else \
                Instr(op=Opc.ADD, d=0, a=7, n=n)
        elif op == Opc.MAC:          # accumulator d[0:8], x[8:8+n]
            ins = Instr(op=op, s=s, d=0, a=8, n=min(n, 6), m=8, imm=int(rng.integers(-99, 99)))
        elif op == Opc.ADDI:
            ins = Instr(op=op, d=0, n=n, imm=int(rng.integers(-50, 50)))
        else:
            ins = Instr(op=op, s=s, d=0, a=7, n=n)
        words.append(encode(ins))
        precisions.append(ins.n)
    # neighbours (the shifted copy is one shorter)
    assert all(a != b for a, b in zip(precisions, precisions[1:], strict=False)), precisions
    res, gold = check_against_golden(cfg, sim, words, random_cam(cfg, rng), seed)
    assert gold.counters["errors"] == 0 and gold.counters["instructions"] == len(words)


def test_cli_exec_example_on_icarus(tmp_path):
    """The documented example through `bfimna exec --backend icarus`, checked by numpy."""
    import subprocess

    from conftest import BFIMNA
    ex = ROOT / "docs" / "examples"
    out = subprocess.run([*BFIMNA, "exec", str(ex / "relu_affine.s"), "--init",
                          str(ex / "relu_affine_init.npz"), "--backend", "icarus",
                          # its own build tree: the random-program test of the same
                          # config may run at the same time under pytest -n
                          "--build-dir", str(BUILD / "exec"), "--dump", str(tmp_path / "d.npz")],
                         capture_output=True, text=True)
    assert out.returncode == 0, out.stdout + out.stderr
    x = np.load(ex / "relu_affine_init.npz")["x"]
    want = np.clip((np.maximum(3 * x - 5, 0) + 1) >> 1, -128, 127)
    assert np.array_equal(np.load(tmp_path / "d.npz")["z"], want)
