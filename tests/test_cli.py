"""The `bfimna` command: isa, exec and run (golden backend), board (emulated board);
verilog and cosim are covered in test_emit.py and test_cosim_*.py."""

import json
import subprocess

import numpy as np
import pytest

from conftest import BFIMNA, CONFIG_DIR, ROOT

EXAMPLE = ROOT / "docs" / "examples" / "relu_affine.s"
EXAMPLE_INIT = ROOT / "docs" / "examples" / "relu_affine_init.npz"


def run(*args):
    return subprocess.run([*BFIMNA, *map(str, args)], capture_output=True, text=True)


def example_reference():
    x = np.load(EXAMPLE_INIT)["x"]
    y = (np.maximum(3 * x - 5, 0) + 1) >> 1
    return np.clip(y, -128, 127)


def test_exec_example_golden(tmp_path):
    out = run("exec", EXAMPLE, "--init", EXAMPLE_INIT, "--dump", tmp_path / "d.npz")
    assert out.returncode == 0, out.stderr
    assert "8 instructions on golden" in out.stdout and "errors 0" in out.stdout
    d = np.load(tmp_path / "d.npz")
    assert np.array_equal(d["z"], example_reference())
    assert int(d["counter_instructions"]) == 8 and int(d["error"]) == 0
    assert d["cam"].shape == (256, 64)


def test_exec_reports_bad_programs_and_inputs(tmp_path):
    prog = tmp_path / "bad.s"
    prog.write_text("ROWS lo=0 hi=4\nADD d=0 a=2 n=4\nFOO\n")
    out = run("exec", prog)
    assert out.returncode == 2
    assert "line 2: operands d and a overlap" in out.stderr
    assert "line 3: unknown opcode" in out.stderr
    np.savez(tmp_path / "i.npz", q=np.zeros(256))
    out = run("exec", EXAMPLE, "--init", tmp_path / "i.npz")
    assert out.returncode == 2 and "'q' is neither `cam` nor a .field" in out.stderr


def test_isa_costs_json():
    out = run("isa", "--json", "--bits", "4", "8")
    assert out.returncode == 0, out.stderr
    table = json.loads(out.stdout)
    assert all(set(r) == {"op", "bits", "cycles", "textbook"} for r in table)
    add8 = next(r for r in table if r["op"] == "ADD" and r["bits"] == 8)
    assert add8 == {"op": "ADD", "bits": 8, "cycles": 2 + 8 * 7, "textbook": 2 + 8 * 8}
    text = run("isa", "--costs", "--bits", "8").stdout
    assert "MAC.s" in text and "textbook" in text


def test_run_digits_golden_with_dump(tmp_path):
    net = ROOT / "models" / "digits" / "network.yaml"
    out = run("run", "--network", net, "--plan", ROOT / "models/digits/int4.yaml",
              "--images", 8, "--dump", tmp_path / "dump", "--no-progress")
    assert out.returncode == 0, out.stderr
    assert "predicted = counted for every layer" in out.stdout
    assert "accuracy" in out.stdout and out.stdout.count(" yes") == 5
    dumped = sorted(p.name for p in (tmp_path / "dump").iterdir())
    assert dumped == ["00_conv1.npy", "01_pool1.npy", "02_conv2.npy", "03_pool2.npy",
                      "04_fc.npy"]
    assert np.load(tmp_path / "dump" / "04_fc.npy").shape == (8, 10)


def test_run_rejects_a_bad_plan(tmp_path):
    bad = tmp_path / "plan.yaml"
    bad.write_text("input_bits: 8\nlayers: {conv1: {w_bits: 8, a_bits: 8}}\n")
    out = run("run", "--network", ROOT / "models/digits/network.yaml", "--plan", bad)
    assert out.returncode == 2 and "layers.conv2: missing" in out.stderr


def test_board_check_on_the_emulated_board_and_a_missing_port():
    r = run("board", "--config", CONFIG_DIR / "ap2d_37x16.yaml", "--emulate", "--runs", "1",
            "--packets", "8", "--seed", "5")
    assert r.returncode == 0, r.stderr
    assert "board: 1 tile(s), CAP 37x16 (2D), 1 MAP(s) 20x12, 24-bit counters" in r.stdout
    assert "run 1/1 (random_host_program seed 5)" in r.stdout
    assert "agrees with the golden system" in r.stdout
    r = run("board", "--config", CONFIG_DIR / "ap2d_37x16.yaml", "--port", "/dev/nonexistent")
    assert r.returncode == 1 and "cannot open serial port /dev/nonexistent" in r.stderr


def test_run_the_digits_cnn_through_the_serial_driver_on_the_emulated_board():
    digits = ROOT / "models" / "digits"
    net, plan = digits / "network.yaml", digits / "int4.yaml"
    r = run("run", "--config", CONFIG_DIR / "ulx3s_85f.yaml", "--network", net, "--plan", plan,
            "--backend", "board", "--emulate", "--images", "1", "--no-progress")
    assert r.returncode == 0, r.stderr
    assert "board: 1 tile(s), CAP 32x55 (2D), 1 MAP(s) 32x16, 24-bit counters" in r.stdout
    assert "predicted = counted for every layer; every layer bit-exact" in r.stdout
    r = run("run", "--config", CONFIG_DIR / "ulx3s_85f.yaml", "--network", net, "--plan", plan,
            "--backend", "board")
    assert r.returncode == 2 and "--backend board needs --port (or --emulate)" in r.stderr


DIGITS = ROOT / "models" / "digits"
NOPE = "/nonexistent/nope"
# (command line, a fragment of the one-line message); {tmp} is the test's tmp_path
BAD_INPUTS: list[tuple[list, str]] = [
    ([], "the following arguments are required: cmd"),
    (["frobnicate"], "invalid choice: 'frobnicate'"),
    (["verilog", "--config", NOPE + ".yaml", "--out", "{tmp}/v"], NOPE),
    (["verilog", "--config", "{tmp}/bad.yaml", "--out", "{tmp}/v"], "configuration error"),
    (["verilog", "--config", CONFIG_DIR / "default.yaml"], "required: --out"),
    (["cosim", "--ops", "0"], "0 is not a positive integer"),
    (["cosim", "--ops", "many"], "'many' is not a positive integer"),
    (["cosim", "--idle", "1.5"], "1.5 is not a share of cycles in 0..0.95"),
    (["cosim", "--backpressure", "nan"], "nan is not a share of cycles"),
    (["cosim", "--seed", "-3"], "-3 is not a seed"),
    (["cosim", "--sim", "modelsim"], "invalid choice: 'modelsim'"),
    (["cosim", "--inject-fault", "no_such_fault"], "invalid choice: 'no_such_fault'"),
    (["cosim", "--config", NOPE + ".yaml"], NOPE),
    (["cosim", "--unit", "system", "--packets", "-1"], "-1 is not a positive integer"),
    (["run", "--network", NOPE + ".yaml", "--plan", NOPE + ".yaml"], NOPE),
    (["run", "--network", DIGITS / "network.yaml", "--plan", DIGITS / "int8.yaml",
      "--images", "0"], "0 is not a positive integer"),
    (["run", "--network", DIGITS / "network.yaml", "--plan", DIGITS / "int8.yaml",
      "--backend", "fpga"], "invalid choice: 'fpga'"),
    (["run", "--network", DIGITS / "network.yaml", "--plan", DIGITS / "int8.yaml",
      "--backend", "board"], "--backend board needs --port"),
    (["run", "--network", DIGITS / "network.yaml", "--plan", DIGITS / "int8.yaml",
      "--timeout", "-1"], "-1 is not a positive number of seconds"),
    (["run", "--network", DIGITS / "network.yaml", "--plan", DIGITS / "int8.yaml",
      "--config", NOPE + ".yaml"], NOPE),
    (["run", "--plan", DIGITS / "int8.yaml"], "required: --network"),
    (["fpga", "--target", "xc7a35t", "--out", "{tmp}/f"], "invalid choice: 'xc7a35t'"),
    (["fpga", "--target", "ecp5-25k", "--out", "{tmp}/f", "--placer", "sa"],
     "invalid choice: 'sa'"),
    (["fpga", "--target", "ecp5-25k", "--out", "{tmp}/f", "--clock-mhz", "0"],
     "0 is not a positive frequency in MHz"),
    (["fpga", "--target", "ecp5-25k", "--out", "{tmp}/f", "--config", NOPE + ".yaml"], NOPE),
    (["fpga", "--target", "ecp5-25k", "--out", "{tmp}/bad.yaml"], "File exists"),
    (["fpga-sweep", "--target", "ecp5-25k", "--out", "{tmp}/s", "--rows", "0"],
     "0 is not a positive integer"),
    (["fpga-sweep", "--target", "ecp5-25k", "--out", "{tmp}/s", "--tiles", "two"],
     "'two' is not a positive integer"),
    (["board"], "one of the arguments --port --emulate is required"),
    (["board", "--emulate", "--runs", "0"], "0 is not a positive integer"),
    (["board", "--emulate", "--baud", "fast"], "'fast' is not a positive integer"),
    (["board", "--emulate", "--config", NOPE + ".yaml"], NOPE),
    (["isa", "--bits", "0"], "0 is not a width 1..32"),
    (["isa", "--bits", "33"], "33 is not a width 1..32"),
    (["isa", "--config", NOPE + ".yaml"], NOPE),
    (["exec", NOPE + ".s"], "cannot read program"),
    (["exec", EXAMPLE, "--init", NOPE + ".npz"], "cannot read --init"),
    (["exec", EXAMPLE, "--init", "{tmp}/bad.yaml"], "cannot read --init"),
    (["exec", EXAMPLE, "--show-rows", "-1"], "-1 is not an integer >= 0"),
    (["exec", EXAMPLE, "--backend", "spice"], "invalid choice: 'spice'"),
    (["exec"], "required: program"),
]


@pytest.mark.parametrize("argv,message", BAD_INPUTS,
                         ids=[" ".join(str(a) for a in argv[:3]) + f"-{i}"
                              for i, (argv, _) in enumerate(BAD_INPUTS)])
def test_bad_inputs_exit_2_with_one_line(tmp_path, argv, message):
    """Every bad input of every command: exit status 2, one line on stderr naming the
    problem, no traceback, nothing done."""
    (tmp_path / "bad.yaml").write_text("name: [unclosed\n")
    out = run(*[str(a).replace("{tmp}", str(tmp_path)) for a in argv])
    assert out.returncode == 2, (out.returncode, out.stdout, out.stderr)
    assert "Traceback" not in out.stderr + out.stdout
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("bfimna"), out.stderr
    assert message in lines[0], lines[0]
