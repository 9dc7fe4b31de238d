"""Dataflow model of the generated HLS top: its cycles per frame and its FIFO depths.

Each dataflow process of flipflow_top.cpp (hls_templates/hls/) runs one
pipelined loop; its cycles per frame are that loop's iterations per image,
counted exactly as the kernel in flipflow_kernels.h / flipflow_io.h is
written. The pipeline's cycles per frame are those of its slowest process.

Assumptions (the usual ones of a dataflow throughput model):

* every pipelined loop achieves II = 1;
* every FIFO is deep enough that no process stalls on a full FIFO in the
  steady state (``stream_depths`` sizes them for the bursts the processes
  write and read);
* pipeline depth and loop entry/exit are ignored: every process is one loop
  over all ``images`` images, so they are paid once per call, not per frame.

``kinds.frame_cycles`` is the RTL backend's cycle model (its simulation equals
it: tests/test_cycles.py); tests/test_hls_model.py holds the two together.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from flipflow import kinds
from flipflow.generator import pack
from flipflow.generator.folding import Folding
from flipflow.ir import Layer, Network

DEFAULT_DEPTH = 2  # a FIFO between processes that write and read one word at a time


@dataclass(frozen=True)
class Process:
    """One dataflow process of the generated top and its loop iterations per frame."""

    layer: str  # IR layer name ("" for the I/O processes)
    kernel: str  # the kernel it calls
    cycles: int


def vector_to_simd_iterations(words: int, c: int, simd: int) -> int:
    """Iterations of vector_to_simd per vector of ``words`` words of ``c`` elements into
    SIMD-element words (its PER_VECTOR): one output word per iteration once a word holds
    more than SIMD elements; else one input word per iteration, plus the extra iterations
    the elements left after the last read need (at most one: fewer than C + SIMD remain)."""
    sf = math.ceil(words * c / simd)
    if c > simd:
        return sf
    # after the last read the loop has written floor((words - 1) * c / simd) + 1 words
    return words + sf - ((words - 1) * c // simd + 1)


def window_iterations(layer: Layer) -> int:
    """sliding_window: one input pixel written and one window column read per iteration,
    on independent counters, the writer running ahead into the next image, so a frame
    costs the slower side (kinds.window_cycles) in the steady state; the first image of
    a call adds the rows read before its first window (the fill, once per call)."""
    return kinds.window_cycles(layer)


def _layer_processes(layer: Layer, folding: Folding) -> list[Process]:
    kind = kinds.of(layer)
    roles = [u.role for u in kind.units(layer, folding.get(layer.name))]
    ih, iw, ch = layer.in_shape
    oh, ow, _ = layer.out_shape
    out = []
    if kind.bit_planes:  # keep_planes: one pixel per iteration
        out.append(Process(layer.name, "keep_planes", ih * iw))
    if "window" in roles:
        out.append(Process(layer.name, "sliding_window", window_iterations(layer)))
    if "pool" in roles:
        out.append(Process(layer.name, "window_or", oh * ow))
    if "mvu" in roles:
        f = folding[layer.name]
        g = pack.geometry(layer, f)
        nf, sf = g.nf, g.sf
        vectors = oh * ow if kind.spatial else 1
        if "window" in roles:
            out.append(Process(layer.name, "window_to_simd", vectors * sf))
        else:
            words = 1 if kind.spatial else ih * iw
            per_fold = kind.fold_elements(layer, f.simd)  # a fold word's elements (sparse: SIMD / N blocks)
            per_vector = vector_to_simd_iterations(words, kind.window_channels(layer), per_fold)
            out.append(Process(layer.name, "vector_to_simd", vectors * per_vector))
        out.append(Process(layer.name, "matrix_vector_unit", vectors * nf * sf))
    if "sum" in roles:
        out.append(Process(layer.name, "global_sum", ih * iw))
    return out


def processes(net: Network, folding: Folding) -> list[Process]:
    """Every dataflow process of the generated top, in stream order."""
    procs = [Process("", "read_pixels", kinds.stream_cycles(net.input_shape))]
    for layer in net.layers:
        procs += _layer_processes(layer, folding)
    # write_scores: CLASSES + 1 beats per image, one per iteration
    return procs + [Process("", "write_scores", kinds.result_cycles(len(net.classes)))]


def frame_cycles(net: Network, folding: Folding) -> int:
    """Cycles per frame of the generated HLS pipeline: its slowest process."""
    return max(p.cycles for p in processes(net, folding))


def window_depth(layer: Layer) -> int:
    """FIFO after a sliding_window: one output row of windows, the burst it writes in
    COLS iterations once the rows arrive, so that it never waits for a slower consumer."""
    return max(DEFAULT_DEPTH, layer.out_shape[1])


def simd_depth(sf: int) -> int:
    """FIFO in front of a matrix_vector_unit: one vector of SF words, the load half of its
    double buffer (it reads the vector in its first neuron fold only)."""
    return max(DEFAULT_DEPTH, sf)
