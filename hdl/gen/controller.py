"""The tile controller's former home: the tile is now hdl/gen/tile.py, as named parts
(InstrQueue, Sequencer, TransferUnit, HostPort, Counters) composed by `Tile`.

This module re-exports its names so that every importer keeps working: `APController`
is `Tile` (same ports, same signature, same emitted module name), and the ROM, the
phases, the host port's operations, the signature and module name helpers, the validator
and the test-only mutants (FAULTS, TILE_MUTANTS, VERIFY, Mutants) are tile.py's.
"""

from __future__ import annotations

from bfimna.hdl.gen.tile import (  # noqa: F401 (re-exported)
    COUNTER_FAULTS,
    DROP_RULE,
    FAULTS,
    HOST_NONE,
    HOST_READ,
    HOST_READ_COL,
    HOST_WRITE,
    HOST_WRITE_COL,
    KIND_CMP,
    KIND_CMPA,
    KIND_WR,
    LUT_ID,
    LUT_NAMES,
    LUT_START,
    MOVW_FAULTS,
    MUTANT_PORT_BITS,
    PH_CLAMPC,
    PH_CLAMPW,
    PH_CLR0,
    PH_CLR1,
    PH_COPYB,
    PH_LUT,
    PH_MV,
    PH_ONE,
    PH_RELU,
    PH_SHRR,
    PH_XFER,
    ROLES,
    ROM_WORDS,
    TILE_MUTANTS,
    VERIFY,
    APController,
    Mutants,
    Tile,
    _dropped,
    _Target,
    controller_module_name,
    controller_signature,
    host_widths,
    rules_hold,
    tile_mutant_numbers,
    validator_faults,
    verify_ports,
)

__all__ = [
    "COUNTER_FAULTS", "DROP_RULE", "FAULTS", "HOST_NONE", "HOST_READ", "HOST_READ_COL",
    "HOST_WRITE", "HOST_WRITE_COL", "KIND_CMP", "KIND_CMPA", "KIND_WR", "LUT_ID", "LUT_NAMES",
    "LUT_START", "MOVW_FAULTS", "MUTANT_PORT_BITS", "PH_CLAMPC", "PH_CLAMPW", "PH_CLR0",
    "PH_CLR1", "PH_COPYB", "PH_LUT", "PH_MV", "PH_ONE", "PH_RELU", "PH_SHRR", "PH_XFER",
    "ROLES", "ROM_WORDS", "TILE_MUTANTS", "VERIFY", "APController", "Mutants", "Tile",
    "controller_module_name", "controller_signature", "host_widths", "rules_hold",
    "tile_mutant_numbers", "validator_faults", "verify_ports",
]
