"""Serving generators: the TorchServe handler, .mar archives, TorchServe as a process and
a client, and generate_grid(), the core of the Generator service.

    grid.generate_grid(store, backend, model_id, ...)   validation, grid, storage
    backends.TorchServeBackend / InProcessBackend        where the images come from
    torchserve.TorchServeProcess                         TorchServe as a process
    torchserve_config / torchserve_client / _keys        its config.properties, its gRPC
                                                         client, the keys it demands
    residency.ModelResidency                             which models stay loaded (LRU)
    archive.build_mar                                    models/<id>/ -> <store>/<id>-<digest>.mar
    handler.GeneratorHandler                             runs inside TorchServe's worker
    wire                                                 what travels between the two
    upscale / output_size                                upscalers (in the handler) and
                                                         the presets' tile sizes

Kept import-light: handler.py imports this package inside TorchServe's worker.
"""
