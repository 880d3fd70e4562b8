"""Ray Serve: the decoders over HTTP, with a web page (issue 9).

With ``distributed/``, the only package that imports Ray (Serve) and FastAPI. The modules split by concern:

* ``settings``: what a server runs (models by name, limits, batching), frozen and validated, Ray-free;
* ``model_loading``: a model from the server's config (checkpoint file or ``models:/NAME@ALIAS``);
* ``uploads``: request bodies (raw or multipart, capped), parameters and image decoding -> :class:`ApiError`;
* ``encoding``: PNG / JPEG / WebP with provenance in the file's metadata, alpha kept where the format can;
* ``result_cache``: the network's outputs of recent uploads, bounded in bytes (the temperature slider);
* ``worker``: the model side (predict a batch, render, re-render) around the :class:`~colorization.inference.Colorizer`;
* ``api``: the FastAPI routes and the page; ``deployments``: the Serve classes; ``app``: the application graph.
"""
