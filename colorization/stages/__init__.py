"""The pipeline's stages as typed functions: preprocess, prior, train, evaluate, serve (and the pipeline itself).

Every stage module has the same shape, so stages hand each other results rather than argv strings:

* ``<Stage>Config``: a frozen dataclass of everything the stage needs (paths, options), validated on creation;
* ``<Stage>Result``: a frozen dataclass of what it produced (output paths, MLflow run ids, counts, and whether
  it was skipped because its outputs already existed for the same config);
* ``run(config) -> <Stage>Result``: checks arguments and output paths before any compute or Ray start, raises
  :class:`colorization.errors.UserError` for anything the user can fix.

``workflows/*.py`` (Ray job entry points) and ``colorization/cli`` are thin fronts that build a config and call
``run``. Ray is imported lazily, inside the stages that need it, through ``colorization.distributed``.
"""
