"""FPGA flow for the board-level top (hdl/gen/board.py) with the open tools installed as
wheels (yowasp-*); docs/fpga.md describes it. One module per concern:

- targets.py: the parts and boards (pins, clocks, capacity), pin constraints, FpgaError;
- flow.py: running the tools (synthesis, place and route, packing): run_flow,
  synthesis_only;
- report.py: reading the tools' reports and logs, writing report.json and summary.md;
- estimate.py: the resource estimate fitted to calibration.csv (beside it);
- sweep.py: `bfimna fpga-sweep`, its table and plot.

Import names from the module that defines them (`from bfimna.hdl.flow.fpga.flow import
run_flow`): nothing is re-exported here, because the functions `sweep` and `estimate`
would shadow the modules of the same name as attributes of this package.
"""
