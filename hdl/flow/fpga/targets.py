"""FPGA targets: the parts, their boards' pins and clocks, their capacity, and the pin
constraints nextpnr reads.

ECP5 25k and 85k (pins of the Radiona ULX3S, 25 MHz clock) and iCE40 UP5K (pins of the
1BitSquared iCEBreaker, 12 MHz clock); pin locations as amaranth-boards defines them.
"""

from __future__ import annotations

from dataclasses import dataclass

from bfimna.golden.spec.link import BAUD as BAUD  # the UART's rate, declared with the link

# nextpnr's placers the flow offers, the default first. From `static`'s placements
# (nextpnr's electrostatic placer) router2 routed the CNN configuration on every seed
# tried, from HeAP's on one in three, and 15% faster (docs/fpga.md, "The placer").
PLACERS = ("static", "heap")


class FpgaError(RuntimeError):
    """A tool failed, or the design does not fit the part (the message says by how much)."""


class FpgaUsage(FpgaError):
    """An option the flow cannot honour (e.g. a baud rate the clock cannot make), found
    before any tool runs: the CLI's exit 2."""


@dataclass(frozen=True)
class Target:
    name: str
    family: str          # ecp5 | ice40
    device_flag: str     # nextpnr device option
    package: str
    board: str
    clk_hz: float
    pins: dict[str, str]          # port -> pin
    led_invert: bool
    capacity: dict[str, int]      # resource -> available
    part: str


TARGETS = {
    "ecp5-25k": Target("ecp5-25k", "ecp5", "--25k", "CABGA381", "ULX3S (LFE5U-25F)", 25e6,
                       {"clk_in": "G2", "uart_rx": "M1", "uart_tx": "L4", "led[0]": "B2",
                        "led[1]": "C2"}, False,
                       {"luts": 24288, "ffs": 24288, "bram": 56, "dsp": 28, "io": 197},
                       "LFE5U-25F-6BG381C"),
    "ecp5-85k": Target("ecp5-85k", "ecp5", "--85k", "CABGA381", "ULX3S (LFE5U-85F)", 25e6,
                       {"clk_in": "G2", "uart_rx": "M1", "uart_tx": "L4", "led[0]": "B2",
                        "led[1]": "C2"}, False,
                       {"luts": 83640, "ffs": 83640, "bram": 208, "dsp": 156, "io": 205},
                       "LFE5U-85F-6BG381C"),
    "ice40-up5k": Target("ice40-up5k", "ice40", "--up5k", "sg48", "iCEBreaker (iCE40UP5K)",
                         12e6, {"clk_in": "35", "uart_rx": "6", "uart_tx": "9", "led[0]": "11",
                                "led[1]": "37"}, True,
                         {"luts": 5280, "ffs": 5280, "bram": 30, "dsp": 8, "io": 39},
                         "iCE40UP5K-SG48"),
}


def constraints(t: Target) -> str:
    """The pin constraints of `t`: an .lpf (ECP5, with the clock's frequency) or a .pcf."""
    if t.family == "ecp5":
        lines = [f'LOCATE COMP "{port}" SITE "{pin}";\nIOBUF PORT "{port}" IO_TYPE=LVCMOS33;'
                 for port, pin in t.pins.items()]
        lines.append(f'FREQUENCY PORT "clk_in" {t.clk_hz / 1e6:g} MHZ;')
        return "\n".join(lines) + "\n"
    return "".join(f"set_io {port} {pin}\n" for port, pin in t.pins.items())


def fit_problems(t: Target, used: dict[str, int]) -> list[str]:
    """Each resource of `used` beyond the part's capacity, and by how much."""
    out = []
    for k in ("luts", "ffs", "bram", "dsp"):
        if used.get(k, 0) > t.capacity[k]:
            over = used[k] - t.capacity[k]
            out.append(f"{k}: needs {used[k]:,}, the {t.part} has {t.capacity[k]:,} "
                       f"({over:,} too many, {100 * over / t.capacity[k]:.0f}% over)")
    return out
