"""Seeing the gradients: drawings of the graph, trace tables (adjoint and tangent), backward
replay, gradient-path attribution, per-node VJP checks and a step-by-step explorer page
(``explore``).

This package reads the engine's records (``tape``, ``adjoint_flow``); the engine never
imports it, and nothing here changes any ``.grad``.
"""

from .attribution import Attribution, attribute, bbb_split
from .check import GraphCheck, check_graph
from .explorer import Explorer, explore
from .graph import build_graph, draw, save
from .tables import Replay, TangentTrace, TraceTable, replay, tangent_trace, trace_table

__all__ = [
    "Attribution",
    "Explorer",
    "GraphCheck",
    "Replay",
    "TangentTrace",
    "TraceTable",
    "attribute",
    "bbb_split",
    "build_graph",
    "check_graph",
    "draw",
    "explore",
    "replay",
    "save",
    "tangent_trace",
    "trace_table",
]
