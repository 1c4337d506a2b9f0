"""compresskit: short, tested reference implementations of model compression.

Three layers, imports only point down:

* core: :mod:`compresskit.data`, :mod:`compresskit.models`, :mod:`compresskit.train`,
  :mod:`compresskit.measure` (and the private :mod:`compresskit._validation`).
  Knows nothing of compression.
* techniques: one module per topic (``pruning``, ``quantization``, ``sparsity``,
  ``ensembles``, ``distillation``, ``superres``), each importing core only;
  ``training`` (training-time compression) is the one that combines techniques.
* course support: :mod:`compresskit.course` (exercise checkers, explorers, plots).
  Nothing else in the library imports it.
"""

__version__ = "0.1.0"
