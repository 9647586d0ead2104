"""What you need to add your own op, or to read the tape, under public names.

Like HIPS autograd's ``extend``: ``microbbb.bbb``, ``microbbb.viz`` and your own code use
only these (docs/extending.md, "Adding your own op", walks through an example).

- ``Primitive(name, forward, vjps, rules)``: a new op (``vjps``: one VJP per input, or
  ``EachInput(vjp)`` for any number of inputs); ``NUMPY`` and ``GRAPH`` are the
  namespaces its VJPs get as ``xp``.
- ``Tensor.wrap(array, record=None)`` and ``from_numpy(array)``: tensors around an array
  without a copy.
- ``Record``, ``tape(output)``, ``reachable(output)``: the recorded ops behind an output.
- ``pull_back(record, i, g, out, args)``: one input's share of an adjoint, as backward
  computes it (VJP, unbroadcast, cast).
- ``writing(*tensors)``: change tensors' arrays in place although a recorded op made them
  read-only (see ``saved.py``): optimisers and loaders use it.
"""

from .primitives import GRAPH, NUMPY, PRIMITIVES, EachInput
from .saved import writing
from .sweep import pull_back
from .tape import Primitive, Record, reachable, tape
from .tensor import Tensor, from_numpy

__all__ = [
    "GRAPH",
    "NUMPY",
    "PRIMITIVES",
    "EachInput",
    "Primitive",
    "Record",
    "Tensor",
    "from_numpy",
    "pull_back",
    "reachable",
    "tape",
    "writing",
]
