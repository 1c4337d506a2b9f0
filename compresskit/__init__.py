"""compresskit: short, tested reference implementations of model compression.

Three layers, imports only point down:

* core: :mod:`compresskit.data`, :mod:`compresskit.models`, :mod:`compresskit.train`,
  :mod:`compresskit.measure`, :mod:`compresskit.cache` (trained models, loaded instead of
  trained again), :mod:`compresskit.text` (the language model's text, bytes and perplexity)
  and the private :mod:`compresskit._validation`.
  Knows nothing of compression.
* techniques: one package per topic, ``pruning``, ``quantization``, ``sparsity``,
  ``ensembles``, ``distillation``, ``superres``, ``coding`` and ``llm`` (language models: group-wise
  int4, GPTQ, AWQ, SmoothQuant), each importing core only, so that one
  can be copied out with the core beside it (``tests/test_layers.py`` checks); and
  ``training`` (compression while training), the one that combines the others.
* course support: :mod:`compresskit.course` (exercise checkers, explorers, plots).
  Nothing else in the library imports it.
"""

__version__ = "0.1.0"
