"""flipflow.host: the PYNQ host driver.

``Accelerator`` runs a built accelerator on the board (``pynq``), in RTL
simulation (``sim``) or through the golden model (``golden``) with one API.
Nothing here imports pynq until the ``pynq`` backend is chosen, so the
package imports on any machine. ``write_metadata`` writes the
accelerator.json that the driver loads.
"""

from flipflow.host.accelerator import BACKENDS, Accelerator, ImageError, Output, OutputError
from flipflow.host.backends import BackendError
from flipflow.host.hwh import BitstreamError
from flipflow.host.metadata import MetadataError, load_metadata, model_hash, write_metadata
from flipflow.host.pynq_backend import DMAError, DMATimeoutError

__all__ = [
    "Accelerator",
    "Output",
    "BACKENDS",
    "ImageError",
    "OutputError",
    "BackendError",
    "BitstreamError",
    "MetadataError",
    "DMAError",
    "DMATimeoutError",
    "load_metadata",
    "model_hash",
    "write_metadata",
]
