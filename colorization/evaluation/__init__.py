"""Evaluation of colorizers (pure torch/numpy; no Ray, no MLflow, no file I/O).

* :mod:`.sweep`: which decoders and temperatures to score per model (one network pass serves them all);
* :mod:`.protocol`: the evaluation protocol (256 x 256 centre crops, grey baseline) as functions of tensors;
* :mod:`.scoring`: :class:`SweepScores`, mergeable scores per (model, decoder, T), and :func:`score_batch`;
* :mod:`.report`: rows, Markdown/CSV tables, the temperature recommendation;
* :mod:`.plots`: the temperature-sweep picture and the sample grid (matplotlib, imported lazily).

Ray wraps these in ``colorization/distributed/evaluate.py``; the stage is ``colorization/stages/evaluate.py``.
"""
