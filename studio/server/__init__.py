"""`studio serve`: the engine behind an HTTP API (aiohttp), for the window on another machine, scripts and
the model cards' online-endpoint format.

Roles by file: `config` (options and the bind/token rule), `model_names` (which models a client may name),
`jobs` (the bounded queue and each job's events), `device_worker` (one engine thread per device),
`wire` (JSON bodies, errors, images on the wire), `routes` (the handlers), `openapi` (the description served
at /openapi.json), `app` (building and running the server), `ray_batch` (`studio batch --ray`) and
`ray_serve` (`studio serve --ray`: the engines as Ray Serve replicas). Nothing here is imported by the window;
Ray is imported only when asked for.
"""
