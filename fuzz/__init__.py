"""Hostile input for the command line, generated: `make fuzz` (or `python -m fuzz`).

Not part of `make test`: it runs thousands of crafted images, batch files and safetensors headers through the
CLI (in worker processes, calling `studio.cli.main` as the installed command does), plus kills and concurrent
catalogue openings in real child processes, and reports counts tried / clean / failed per category. A case is
clean when the exit code is one the contract allows for it, stderr is one `studio: error:` line at most (no
traceback, no library text), nothing written to stdout or stderr can act on a terminal, refused runs leave
no file behind, and no run hangs. Every generator is seeded: a failure is reproduced with the same --seed.
"""
