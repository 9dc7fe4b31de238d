"""flipflow: pruned binary neural networks on FPGAs.

The repository root is this package; its subpackages are the top-level
folders: ``training`` (Brevitas models, flip tracking, pruning), ``generator``
(HLS C++ and Verilog emitters), ``sim`` (golden model and simulators) and
``host`` (PYNQ driver). ``flipflow.ir`` is the on-disk network description
that crosses from training to hardware.
"""

from pathlib import Path

__version__ = "0.1.0"

ROOT = Path(__file__).resolve().parent
"""Folder holding the package data: hls_templates/, zoo/, notebooks/."""
