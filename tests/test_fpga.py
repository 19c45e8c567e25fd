"""The FPGA flow (hdl/fpga.py): real synthesis of the smallest configuration for the
iCE40 UP5K, which does not fit, and the report says by how much; constraints and the
parsing of nextpnr's utilisation. The full flow (place and route, bitstreams) on every
target is a benchmark (scripts/bench_fpga.py), not a test."""

import json

import pytest

from bfimna.golden.config import config_from_dict
from bfimna.hdl.fpga import TARGETS, FpgaError, constraints, pnr_overuse, run_flow

TINY = config_from_dict({"name": "fpga_tiny", "ap": {"rows": 8, "cols": 12, "dims": 2,
                                                     "counter_bits": 16},
                         "ctrl": {"queue_depth": 4},
                         "tile": {"maps": 1, "map_rows": 8, "map_cols": 16}})


def test_synthesis_report_and_a_clear_does_not_fit(tmp_path):
    with pytest.raises(FpgaError, match=r"does not fit the iCE40UP5K-SG48: luts: needs "
                                        r"[\d,]+, the iCE40UP5K-SG48 has 5,280 \([\d,]+ too many"):
        run_flow(TINY, "ice40-up5k", tmp_path)
    r = json.loads((tmp_path / "report.json").read_text())
    assert r["fits"] is False and r["config_sha256"] == TINY.hash
    assert r["synthesis_cells"]["SB_LUT4"] > 5280 and r["synthesis_cells"]["SB_DFFESR"] > 0
    assert r["utilisation"]["luts"]["available"] == 5280
    assert r["wall_s"]["synthesis"] > 0
    assert "Does not fit" in (tmp_path / "summary.md").read_text()
    assert (tmp_path / "yosys.log").stat().st_size > 0


def test_constraints_name_every_port():
    lpf = constraints(TARGETS["ecp5-85k"])
    assert 'LOCATE COMP "clk_in" SITE "G2";' in lpf and 'FREQUENCY PORT "clk_in" 25 MHZ;' in lpf
    pcf = constraints(TARGETS["ice40-up5k"])
    assert "set_io uart_rx 6" in pcf and "set_io uart_tx 9" in pcf


def test_pnr_overuse_parsing():
    log = ("Info: Device utilisation:\nInfo: \t         ICESTORM_LC:    7334/   5280   138%\n"
           "Info: \t        ICESTORM_RAM:       0/     30     0%\n")
    assert pnr_overuse(log) == ["ICESTORM_LC: needs 7,334, the part has 5,280 (2,054 too many, "
                                "39% over)"]
