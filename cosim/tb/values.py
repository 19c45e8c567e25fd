"""Reading cocotb signal values as Python ints (shared by the testbenches)."""


def unsigned(value) -> int:
    """A port value as an int: 1-bit ports read as Logic, wider ones as LogicArray."""
    return value.to_unsigned() if hasattr(value, "to_unsigned") else int(value)
