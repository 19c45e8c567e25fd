"""bfimna: generator, golden model, scheduler and cosimulation of BF-IMNA-style in-memory
CNN accelerators built from CAM-based associative processors.

Subpackages (top-level folders of the source tree, linked here):

- ``bfimna.golden``: the reference; depends on nothing else in the project.
  ``spec`` (configuration, ISA, micro-ops, microcode, bit layouts, costs), ``model``
  (bit-level and fast executable models), ``nn`` (networks, quantisation, CNN
  reference), ``host`` (host programs and random stimulus).
- ``bfimna.hdl``: Amaranth generators (``gen``) and tool flows (``flow``: emission,
  lint, FPGA); depends on golden.
- ``bfimna.sched``: the scheduler (networks -> instruction streams); depends on golden.
- ``bfimna.cosim``: testbenches that run inside the simulator (``tb``) and host-side
  drivers and runners (``drivers``); depends on all three.
- ``bfimna.cli``: the ``bfimna`` command.

docs/architecture.md describes the blocks, the flow and where each kind of code lives.
"""
