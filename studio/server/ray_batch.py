"""`studio batch --ray`: the model cards' batch run on a Ray cluster, one engine per GPU (or per CPU slot).

The driver (this process) keeps the queue: every worker actor holds one :class:`~studio.engine.Engine`,
made once in the actor (a model loads once per actor, on its first item), and a worker that finishes an
item takes the next one, so fast and slow workers share the batch as they go. Results come back in input
order as the card's output rows (:func:`~studio.engine.card_format.card_items`).

Failures: a worker that dies (its process killed, its node lost: :class:`ray.exceptions.RayActorError`) is
replaced and its item run again; an item that raises anything but a :class:`RequestError` is run again on
another worker; either is bounded by `max_attempts` per item. A RequestError is the user's mistake and
stops the batch at once, as the local batch does.

Checkpoints: with `checkpoint=PATH` each finished item's rows are appended to a JSON-lines file (flushed
and fsynced per line) whose first line holds a hash of the requests; a rerun with the same file skips the
items already there and refuses a file written for other requests.

`run_ray_batch` starts workers for one batch; :class:`RayBatchPool` keeps them (and their loaded models)
for several batches: shards of a long run, benchmarks, tests.

Ray is an optional extra (`pip install 'latent-studio[cluster]'`): it is imported inside the functions
here only, and nothing else in studio imports this module at load time.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import time
import uuid
from collections import deque
from collections.abc import Callable, Iterator, Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from studio.engine.errors import GenerationError, RequestError

if TYPE_CHECKING:
    from studio.engine.request import GenerationRequest

__all__ = [
    "FORWARDED_ENV",
    "RAY_MISSING",
    "BatchWorker",
    "Checkpoint",
    "CheckpointError",
    "EngineOptions",
    "RayBatchError",
    "RayBatchPool",
    "RayMissingError",
    "connect",
    "requests_digest",
    "run_ray_batch",
]

RAY_MISSING = "studio batch --ray needs Ray: pip install 'latent-studio[cluster]'"

FORWARDED_ENV = ("STUDIO_AUTO_CPU_DTYPE", "STUDIO_AUTO_BACKEND", "HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE", "HF_ENDPOINT")
"""Variables of the driver's environment that the workers get too (Ray's runtime_env), on every node:
what `auto` means for dtype and backend, and whether the hub may be reached. Paths (HF_HOME, the
LATENT_STUDIO_* folders) and secrets (HF_TOKEN) are the nodes' own business and are not sent."""

DEFAULT_MAX_ATTEMPTS = 3
"""Runs of one item before the batch gives up on it (the first one and two retries)."""

DEFAULT_CPUS_PER_CPU_WORKER = 4
"""CPU workers: cores per actor when `workers` is not given (each actor holds a whole model in memory, so
one per core would multiply the memory for little gain)."""

START_TIMEOUT_S = 600.0
"""No worker started within this long (the cluster has no room for one, or its nodes cannot build it):
the batch stops with a message instead of waiting forever."""

CHECKPOINT_FORMAT = 1

log = logging.getLogger(__name__)


class RayMissingError(RequestError):
    """Ray is not installed in this environment."""

    def __init__(self, message: str = RAY_MISSING) -> None:
        super().__init__(message, field="ray")


class CheckpointError(RequestError):
    """The checkpoint file is not one of ours, is damaged, or was written for other requests."""

    def __init__(self, message: str) -> None:
        super().__init__(message, field="checkpoint")


class RayBatchError(GenerationError):
    """An item failed on every attempt, or no worker could be started or kept alive."""


@dataclass
class EngineOptions:
    """What every worker's Engine is built from: the options of `studio batch` (cli's `_make_engine`).

    Paths (the model, the LoRA and embedding folders, `cache_dir`) are read on the worker's node, not
    sent: they must exist there. In a GPU worker the actor sees its one GPU as `cuda` (Ray sets
    CUDA_VISIBLE_DEVICES), so `cuda:N` is read as `cuda`."""

    device: str = "auto"
    dtype: str = "auto"
    backend: str = "auto"
    threads: int | None = None  # OpenVINO's CPU threads; None: the worker's CPU share on a CPU cluster
    allow_ckpt: bool = False
    lora_dirs: tuple[str, ...] = ()
    embedding_dirs: tuple[str, ...] = ()
    offline: bool | None = None
    cache_dir: str | None = None  # the Hugging Face cache on each node; None: the node's usual one
    preview: str = "none"  # the engine's step previews: a batch needs none, `studio serve --ray` does
    env: dict[str, str] = field(default_factory=dict)  # more variables for the workers (beside FORWARDED_ENV)

    @classmethod
    def of(cls, options: EngineOptions | Mapping[str, Any] | None) -> EngineOptions:
        if options is None:
            return cls()
        if isinstance(options, EngineOptions):
            return options
        unknown = sorted(set(options) - set(cls.__dataclass_fields__))
        if unknown:
            raise TypeError(f"unknown engine option(s): {', '.join(unknown)}")
        values = dict(options)
        for key in ("lora_dirs", "embedding_dirs"):
            if key in values:
                values[key] = tuple(str(p) for p in values[key])
        if values.get("cache_dir") is not None:
            values["cache_dir"] = str(values["cache_dir"])
        return cls(**values)

    def worker_env(self) -> dict[str, str]:
        env = {name: os.environ[name] for name in FORWARDED_ENV if name in os.environ}
        env.update({str(k): str(v) for k, v in self.env.items()})
        return env


# ---------------------------------------------------------------------------------------------- workers


class BatchWorker:
    """One engine in one Ray actor (wrapped by `ray.remote` at run time, so this module imports no Ray).

    Defined at module level so that Ray pickles it by reference: every node must have the same studio
    installed (`pip install 'latent-studio[cluster]'`)."""

    def __init__(self, options: dict[str, Any], cpu_threads: int | None) -> None:
        self.error: BaseException | None = None
        try:
            self.engine = make_worker_engine(options, cpu_threads)
        except Exception as exc:  # noqa: BLE001 - said by ready(): a dead actor would only say "died"
            self.error = exc

    def ready(self) -> dict[str, Any]:
        """Where this worker runs; raises what building its engine raised."""
        import socket

        if self.error is not None:
            raise self.error
        return {"pid": os.getpid(), "host": socket.gethostname()}

    def warm(self, request: GenerationRequest) -> None:
        """Load the request's model and run it once (first-call costs paid), the result thrown away."""
        self.engine.generate(request)

    def run(self, index: int, request: GenerationRequest) -> tuple[int, list[dict[str, Any]], list[str]]:
        """The card rows of one request and its warnings (each once). `ray.cancel` of this call stops the
        generation within one step (Cancelled)."""
        from studio.engine.card_format import card_items

        results = self.engine.generate(request, cancel=_RayCancel())
        warnings: list[str] = []
        for result in results:
            warnings.extend(w for w in result.warnings if w not in warnings)
        return index, card_items(request.prompt, results), warnings


class _RayCancel:
    """The engine's cancel event for an actor task: set once the driver has called `ray.cancel` on it."""

    def is_set(self) -> bool:
        import ray

        return ray.get_runtime_context().is_canceled()


def make_worker_engine(options: dict[str, Any], cpu_threads: int | None):
    from studio.engine.loading import quiet_libraries

    quiet_libraries()
    from studio.engine import Engine
    from studio.library.extra_networks import NetworkCatalog

    if cpu_threads:
        import torch

        torch.set_num_threads(cpu_threads)  # the actor's share of the node's cores, not all of them
    device = options["device"]
    if cpu_threads is None and device.startswith("cuda:"):
        device = "cuda"  # the actor sees its one GPU only
    return Engine(
        device=device, dtype=options["dtype"], backend=options["backend"],
        threads=options["threads"] if options["threads"] is not None else cpu_threads,
        allow_ckpt=options["allow_ckpt"], offline=options["offline"], cache_dir=options["cache_dir"],
        preview=options.get("preview", "none"), networks=NetworkCatalog.with_folders(options["lora_dirs"], options["embedding_dirs"]),
    )


# ------------------------------------------------------------------------------------------ connecting


def _ray():
    try:
        import ray
    except ImportError:
        raise RayMissingError() from None
    return ray


@contextlib.contextmanager
def connect(address: str = "auto") -> Iterator[Any]:
    """This process connected to a Ray cluster for the block; yields the `ray` module.

    - already connected (`ray.init` called by the caller, as the tests do): that connection, left open;
    - "auto": the cluster that $RAY_ADDRESS names, else the one `ray start` started on this machine, else
      a new local instance with this machine's cores and GPUs, private to this batch and stopped after it
      (Ray's own rule for `ray.init()` without an address);
    - "local": always a new local instance;
    - anything else ("ray://head:10001", "10.0.0.5:6379"): `ray.init(address=...)`.

    Workers' printed output stays in Ray's log files (`log_to_driver=False`): `studio batch` writes its
    JSON to stdout, which worker chatter would corrupt.
    """
    ray = _ray()
    if ray.is_initialized():
        yield ray
        return
    if not isinstance(address, str) or not address.strip():
        raise RequestError("the Ray address must be 'auto', 'local' or a cluster address", field="ray")
    _check_reachable(address)
    try:
        ray.init(address=None if address == "auto" else address, log_to_driver=False, logging_level=logging.WARNING)
    except (ConnectionError, ray.exceptions.RpcError) as exc:
        raise RayBatchError(f"cannot reach the Ray cluster at {address}: {_why(exc)}") from None
    except ValueError as exc:  # "Invalid address format"
        raise RequestError(f"--ray {address}: {_why(exc)}", field="ray") from None
    try:
        yield ray
    finally:
        ray.shutdown()


def _check_reachable(address: str) -> None:
    """A `host:port` that nothing answers is refused in seconds: Ray itself waits ~30 s for the GCS, then
    ends this process with SIGTERM instead of raising."""
    import socket

    if address in ("auto", "local") or "://" in address or address.count(":") != 1:
        return
    host, _, port = address.rpartition(":")
    if not port.isdigit():
        return
    try:
        socket.create_connection((host, int(port)), timeout=5.0).close()
    except OSError as exc:
        raise RayBatchError(f"cannot reach the Ray cluster at {address}: {exc.strerror or exc}") from None


# --------------------------------------------------------------------------------------- checkpoints


def requests_digest(requests: list[GenerationRequest]) -> str:
    """SHA-256 of the requests as a checkpoint identifies them: every field, init images and masks by
    their pixels' hash (files by path). A request without a seed gets a random one per run, so a resumed
    batch of such requests matches but its remaining items get other seeds than a first run would."""
    from studio.engine.request import request_fields
    from studio.library.images import sha256_image

    def image_key(image: Any) -> str | None:
        if image is None:
            return None
        if isinstance(image, str | os.PathLike):
            return f"path:{os.fspath(image)}"
        return f"sha256:{sha256_image(image)}"

    keys = [
        {**request_fields(r), "init_image": image_key(r.init_image), "mask_image": image_key(r.mask_image)}
        for r in requests
    ]
    text = json.dumps(keys, sort_keys=True, ensure_ascii=True, default=str)
    return hashlib.sha256(text.encode("ascii")).hexdigest()


class Checkpoint:
    """An append-only JSON-lines file: a header line, then one `{"index", "rows"}` line per finished item.

    A line is written whole, flushed and fsynced before the item counts as done; a crash mid-line leaves a
    torn last line, which the next run cuts off (that item runs again). Held under an exclusive lock
    (POSIX), so two batches cannot append to one file."""

    def __init__(self, path: Path, digest: str, count: int) -> None:
        self.path = Path(path)
        self.done: dict[int, list[dict[str, Any]]] = {}
        header = {"studio_batch_checkpoint": CHECKPOINT_FORMAT, "requests": count, "sha256": digest}
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._file = open(self.path, "a+b")  # noqa: SIM115 - closed by close()
        try:
            self._lock()
            self._file.seek(0)
            data = self._file.read()
            good = self._read(data, header)
            if good < len(data):
                log.warning("checkpoint %s: cutting off a torn last line", self.path)
                self._file.truncate(good)
            if good == 0:
                self._write_line(header)
                _fsync_directory(self.path.parent)
        except BaseException:
            self._file.close()
            raise

    def _lock(self) -> None:
        try:
            import fcntl
        except ImportError:  # Windows: no advisory lock
            return
        try:
            fcntl.flock(self._file.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            raise CheckpointError(f"checkpoint {self.path} is in use by another batch") from None

    def _read(self, data: bytes, header: dict[str, Any]) -> int:
        """Load the finished items; the length of the good part: a last line without its newline was torn
        by a crash mid-write and is left out (0: no header yet, the file is to be started)."""
        expected = _line(header)
        if b"\n" not in data:
            if expected.startswith(data):  # empty, or this batch's header torn mid-write
                return 0
            raise CheckpointError(f"{self.path} is not a studio batch checkpoint")
        position, number = 0, 0
        while (end := data.find(b"\n", position)) >= 0:
            number += 1
            try:
                entry = json.loads(data[position:end])
            except (ValueError, RecursionError):
                if number == 1:
                    raise CheckpointError(f"{self.path} is not a studio batch checkpoint") from None
                raise CheckpointError(f"checkpoint {self.path} line {number} is damaged") from None
            if number == 1:
                self._check_header(entry, header)
            elif (
                isinstance(entry, dict) and type(entry.get("index")) is int and isinstance(entry.get("rows"), list)
                and 0 <= entry["index"] < header["requests"]
            ):
                self.done[entry["index"]] = entry["rows"]
            else:
                raise CheckpointError(f"checkpoint {self.path} line {number} is not a finished item of this batch")
            position = end + 1
        return position

    def _check_header(self, entry: Any, header: dict[str, Any]) -> None:
        if not isinstance(entry, dict) or entry.get("studio_batch_checkpoint") != CHECKPOINT_FORMAT:
            raise CheckpointError(f"{self.path} is not a studio batch checkpoint")
        if entry.get("sha256") != header["sha256"] or entry.get("requests") != header["requests"]:
            raise CheckpointError(
                f"checkpoint {self.path} belongs to another batch (other prompts, parameters, model or seed: "
                f"{entry.get('requests')} items there, {header['requests']} here); give another checkpoint "
                "file or delete this one to start over"
            )

    def _write_line(self, entry: dict[str, Any]) -> None:
        self._file.seek(0, os.SEEK_END)
        self._file.write(_line(entry))
        self._file.flush()
        os.fsync(self._file.fileno())

    def add(self, index: int, rows: list[dict[str, Any]]) -> None:
        self._write_line({"index": index, "rows": rows})
        self.done[index] = rows

    def close(self) -> None:
        self._file.close()


def _line(entry: dict[str, Any]) -> bytes:
    return json.dumps(entry, ensure_ascii=True, separators=(",", ":")).encode("ascii") + b"\n"


def _fsync_directory(folder: Path) -> None:
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


# ---------------------------------------------------------------------------------------------- the run


def run_ray_batch(
    requests: list[GenerationRequest],
    engine_options: EngineOptions | Mapping[str, Any] | None = None,
    *,
    address: str = "auto",
    workers: int | None = None,
    cpus_per_worker: int | None = None,
    on_progress: Callable[[int, int], None] | None = None,
    on_status: Callable[[str], None] | None = None,
    on_warning: Callable[[str], None] | None = None,
    checkpoint: str | os.PathLike[str] | None = None,
    max_attempts: int = DEFAULT_MAX_ATTEMPTS,
) -> list[list[dict[str, Any]]]:
    """The card rows of each request, in input order, computed by Ray workers started for this batch.

    Workers: one per GPU (`num_gpus=1`) when the cluster has GPUs and `device` is not "cpu"; else CPU
    workers of `cpus_per_worker` cores each (default: the cluster's cores // `workers` when `workers` is
    given, else 4), `workers` of them (default: the cluster's cores // `cpus_per_worker`, at least 1);
    never more than the items to run. See :func:`connect` for `address`.

    `on_progress(done, total)` is called in this thread after each item this run finishes (done counts the
    items a checkpoint held too); `on_status(text)` says what the cluster does (workers started, lost,
    items retried); `on_warning(text)` passes on the engine's warnings, each once a batch.

    Same requests (with seeds), device, dtype and backend give the same pixels as a local
    `Engine.generate` of each request, whichever worker runs it (on the CPU: at the same torch thread
    count, which is the worker's CPU share). Raises the RequestError of the first item that has one (not
    retried), RayBatchError when an item fails `max_attempts` times or no worker starts, CheckpointError
    for a checkpoint of another batch, RayMissingError without Ray.
    """
    _ray()  # before a checkpoint file is made: a missing Ray is said first
    pool = RayBatchPool(engine_options, address=address, workers=workers, cpus_per_worker=cpus_per_worker,
                        on_status=on_status)
    return pool.run(requests, on_progress=on_progress, on_warning=on_warning, checkpoint=checkpoint,
                    max_attempts=max_attempts)


@dataclass
class _Slot:
    """One worker place; its actor is replaced when it dies."""

    number: int
    actor: Any = None
    name: str = ""
    ready: bool = False
    generation: int = 0


class RayBatchPool:
    """Ray workers kept for several batches (models stay loaded between them): `with RayBatchPool(...) as
    pool: pool.run(requests)`. `run` on a pool that is not open opens it for that batch only (this is
    what :func:`run_ray_batch` does). Not thread-safe: one `run` at a time."""

    def __init__(
        self,
        engine_options: EngineOptions | Mapping[str, Any] | None = None,
        *,
        address: str = "auto",
        workers: int | None = None,
        cpus_per_worker: int | None = None,
        on_status: Callable[[str], None] | None = None,
    ) -> None:
        self.engine_options = EngineOptions.of(engine_options)
        if workers is not None and (isinstance(workers, bool) or not isinstance(workers, int) or workers < 1):
            raise RequestError(f"workers must be a whole number of at least 1, got {workers!r}", field="workers")
        self.address = address
        self.workers = workers
        self.cpus_per_worker = cpus_per_worker
        self.on_status = on_status or (lambda text: None)
        self.slots: list[_Slot] = []
        self.starting: dict[Any, _Slot] = {}  # ready() refs of actors not started yet
        self._stack: contextlib.ExitStack | None = None
        self._run_id = uuid.uuid4().hex[:8]

    # -- opening and closing
    def __enter__(self) -> RayBatchPool:
        self.open()
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()

    @property
    def is_open(self) -> bool:
        return self._stack is not None

    def open(self, *, at_most: int | None = None) -> None:
        """Connect and start the workers (they load no model yet); `at_most` caps their number."""
        if self._stack is not None:
            return
        stack = contextlib.ExitStack()
        self.ray = stack.enter_context(connect(self.address))
        self._stack = stack
        try:
            self.actor_options, self.cpu_threads, count = self._plan()
            options = asdict(self.engine_options)
            options.pop("env")
            self.worker_options = options
            self.slots = [_Slot(n) for n in range(min(count, at_most or count))]
            for slot in self.slots:
                self._start(slot)
        except BaseException:
            self.close()
            raise

    def close(self) -> None:
        """Stop the workers and leave the cluster (a local one this pool started stops)."""
        if self._stack is None:
            return
        for slot in self.slots:
            if slot.actor is not None:
                with contextlib.suppress(Exception):
                    self.ray.kill(slot.actor, no_restart=True)
                slot.actor = None
        self.slots, self.starting = [], {}
        stack, self._stack = self._stack, None
        stack.close()

    def _plan(self) -> tuple[dict[str, Any], int | None, int]:
        """Actor options, the CPU workers' threads (None on GPUs), and how many workers."""
        options, workers, cpus_per_worker = self.engine_options, self.workers, self.cpus_per_worker
        resources = self.ray.cluster_resources()
        gpus = int(resources.get("GPU", 0))
        cpus = max(1, int(resources.get("CPU", 1)))
        env = options.worker_env()
        actor_options: dict[str, Any] = {"max_restarts": 0, "max_concurrency": 1}
        if env:
            actor_options["runtime_env"] = {"env_vars": env}
        if gpus > 0 and options.device != "cpu":
            count = workers or gpus
            actor_options.update(num_gpus=1, num_cpus=cpus_per_worker or 1)
            self.on_status(f"Ray cluster: {gpus} GPUs, {cpus} CPUs; {count} GPU workers")
            return actor_options, None, count
        if cpus_per_worker is None:
            cpus_per_worker = max(1, cpus // workers) if workers else min(DEFAULT_CPUS_PER_CPU_WORKER, cpus)
        count = workers or max(1, cpus // cpus_per_worker)
        actor_options["num_cpus"] = cpus_per_worker
        self.on_status(f"Ray cluster: no GPUs, {cpus} CPUs; {count} CPU workers of {cpus_per_worker} cores")
        return actor_options, cpus_per_worker, count

    # -- workers
    def _start(self, slot: _Slot) -> None:
        slot.generation += 1
        suffix = f"r{slot.generation - 1}" if slot.generation > 1 else ""
        slot.name = f"studio-batch-{self._run_id}-w{slot.number}{suffix}"
        remote = self.ray.remote(BatchWorker).options(name=slot.name, **self.actor_options)
        slot.actor = remote.remote(self.worker_options, self.cpu_threads)
        slot.ready = False
        self.starting[slot.actor.ready.remote()] = slot

    def _lose(self, slot: _Slot, why: str, replace: bool) -> None:
        """The slot's actor died: free its resources and start another when `replace`."""
        with contextlib.suppress(Exception):
            self.ray.kill(slot.actor, no_restart=True)
        slot.actor, slot.ready = None, False
        self.on_status(f"worker {slot.name} lost ({why}); " + ("starting another" if replace else "not replaced"))
        if replace:
            self._start(slot)

    def _started(self, ref, replace: Callable[[], bool]) -> None:
        """A worker's ready() answered: it takes items from now on, or it failed to start (then it is
        started again if `replace()` says so)."""
        from ray.exceptions import RayError, RayTaskError

        slot = self.starting.pop(ref)
        try:
            info = self.ray.get(ref)
        except RayTaskError as exc:  # building the engine failed: the same on every worker
            cause = getattr(exc, "cause", None)
            if isinstance(cause, RequestError):
                raise cause from None
            raise RayBatchError(f"a Ray worker could not start: {_why(cause or exc)}") from None
        except RayError as exc:  # its process died or its node went away
            self._lose(slot, _why(exc), replace())
            return
        slot.ready = True
        self.on_status(f"worker {slot.name} started on {info['host']} (pid {info['pid']})")

    def warm(self, request: GenerationRequest) -> None:
        """Wait for every worker to start, load `request`'s model and run it once (benchmarks time the
        batch alone; a service pays the first load before its first caller)."""
        if not self.is_open:
            raise RuntimeError("warm() needs an open pool")
        while self.starting:
            ready, _ = self.ray.wait(list(self.starting), num_returns=1, timeout=START_TIMEOUT_S)
            if not ready:
                raise RayBatchError(f"no Ray worker started in {START_TIMEOUT_S:.0f} s")
            self._started(ready[0], lambda: False)
        self.ray.get([s.actor.warm.remote(request) for s in self.slots if s.ready])

    # -- batches
    def run(
        self,
        requests: list[GenerationRequest],
        *,
        on_progress: Callable[[int, int], None] | None = None,
        on_warning: Callable[[str], None] | None = None,
        checkpoint: str | os.PathLike[str] | None = None,
        max_attempts: int = DEFAULT_MAX_ATTEMPTS,
    ) -> list[list[dict[str, Any]]]:
        """The card rows of each request, in input order: see :func:`run_ray_batch`."""
        requests = list(requests)
        if max_attempts < 1:
            raise ValueError("max_attempts must be at least 1")
        _ray()
        store = Checkpoint(Path(checkpoint), requests_digest(requests), len(requests)) if checkpoint is not None else None
        try:
            results: list[list[dict[str, Any]] | None] = [None] * len(requests)
            if store is not None:
                for index, rows in store.done.items():
                    results[index] = rows
                if store.done:
                    self.on_status(f"checkpoint {store.path}: {len(store.done)} of {len(requests)} items already done")
            todo = [n for n in range(len(requests)) if results[n] is None]
            if todo:
                opened_here = not self.is_open
                if opened_here:
                    self.open(at_most=len(todo))
                try:
                    _Batch(self, requests, todo, results, store, on_progress, on_warning, max_attempts).run()
                finally:
                    if opened_here:
                        self.close()
            return [rows if rows is not None else [] for rows in results]
        finally:
            if store is not None:
                store.close()


class _Batch:
    """One batch on a pool: hand out items as workers become free, collect them, retry failures."""

    def __init__(self, pool: RayBatchPool, requests, todo, results, store, on_progress, on_warning, max_attempts):
        self.pool = pool
        self.ray = pool.ray
        self.requests = requests
        self.results = results
        self.store = store
        self.on_progress = on_progress
        self.on_warning = on_warning
        self.max_attempts = max_attempts
        self.pending: deque[int] = deque(todo)
        self.attempts: dict[int, int] = {}
        self.failed_on: dict[int, set[int]] = {}  # item -> slots it failed on (it is retried elsewhere)
        self.last_error: dict[int, str] = {}
        self.failed_where: dict[int, list[str]] = {}  # item -> the workers' names, for the final message
        self.warned: set[str] = set()
        self.done = len(requests) - len(todo)
        self.replacements_left = len(pool.slots) * max_attempts
        self.running: dict[Any, tuple[int, _Slot]] = {}  # run() refs -> (item, slot)

    def _next_item(self, slot: _Slot, anywhere: bool) -> int | None:
        """The first pending item that has not failed on this slot (any, when `anywhere`)."""
        for position, index in enumerate(self.pending):
            if anywhere or slot.number not in self.failed_on.get(index, ()):
                del self.pending[position]
                return index
        return None

    def _dispatch(self) -> None:
        """Each free worker takes the next item; an item that failed on every free worker waits for another
        one, unless nothing else runs."""
        busy = {slot.number for _, slot in self.running.values()}
        free = [s for s in self.pool.slots if s.ready and s.number not in busy]
        for anywhere in (False, True):
            for slot in list(free):
                if not self.pending:
                    return
                index = self._next_item(slot, anywhere)
                if index is None:
                    continue
                free.remove(slot)
                self.attempts[index] = self.attempts.get(index, 0) + 1
                self.running[slot.actor.run.remote(index, self.requests[index])] = (index, slot)
            if self.running:
                return

    def _retry(self, index: int, slot: _Slot, why: str, *, avoid: bool) -> None:
        """Put a failed item back at the head of the queue (`avoid`: for another worker than this one),
        or give up on the batch when it has had its attempts."""
        self.last_error[index] = why
        self.failed_where.setdefault(index, []).append(slot.name)
        if self.attempts.get(index, 0) >= self.max_attempts:
            raise RayBatchError(
                f"item {index} (prompt {self.requests[index].prompt[:60]!r}) failed {self.attempts[index]} times "
                f"(on {', '.join(self.failed_where[index])}); last: {why}"
            )
        if avoid:
            self.failed_on.setdefault(index, set()).add(slot.number)
        self.pending.appendleft(index)
        self.pool.on_status(f"item {index} failed on {slot.name} ({why}); retrying")

    def _replace(self) -> bool:
        """Whether a lost worker is replaced: while items remain and the batch's budget lasts."""
        if self.replacements_left > 0 and (self.pending or self.running):
            self.replacements_left -= 1
            return True
        return False

    def _finish(self, index: int, rows: list[dict[str, Any]], warnings: list[str]) -> None:
        if self.store is not None:
            self.store.add(index, rows)
        self.results[index] = rows
        self.done += 1
        for warning in warnings:
            if warning not in self.warned:
                self.warned.add(warning)
                if self.on_warning:
                    self.on_warning(warning)
        if self.on_progress:
            self.on_progress(self.done, len(self.requests))

    def _collected(self, ref) -> None:
        from ray.exceptions import RayError, RayTaskError

        index, slot = self.running.pop(ref)
        try:
            _, rows, warnings = self.ray.get(ref)
        except RayTaskError as exc:  # the item raised in a live worker
            cause = getattr(exc, "cause", None)
            if isinstance(cause, RequestError):
                raise cause from None  # the user's mistake: the same message as the local batch
            self._retry(index, slot, _why(cause if isinstance(cause, BaseException) else exc), avoid=True)
        except RayError as exc:  # the worker died (RayActorError), or its node and the result with it
            self._retry(index, slot, _why(exc), avoid=False)
            self.pool._lose(slot, _why(exc), self._replace())
        else:
            self._finish(index, rows, warnings)

    def run(self) -> None:
        pool = self.pool
        for slot in pool.slots:  # workers lost between batches (or never replaced) start again
            if slot.actor is None:
                pool._start(slot)
        waiting_since = time.monotonic()
        try:
            while self.pending or self.running:
                self._dispatch()
                refs = [*pool.starting, *self.running]
                if not refs:
                    last = next(reversed(self.last_error.values()), "none")
                    raise RayBatchError(f"no Ray worker left: {len(self.pending)} items not done (last failure: {last})")
                ready, _ = self.ray.wait(refs, num_returns=1, timeout=10.0)
                if not ready:
                    if not any(s.ready for s in pool.slots) and time.monotonic() - waiting_since > START_TIMEOUT_S:
                        raise RayBatchError(
                            f"no Ray worker started in {START_TIMEOUT_S:.0f} s: the cluster has no room for a "
                            f"worker of {_resources(pool.actor_options)}"
                        )
                    continue
                if ready[0] in pool.starting:
                    pool._started(ready[0], self._replace)
                else:
                    self._collected(ready[0])
        except BaseException:
            for ref in self.running:  # items this batch no longer wants: not queued behind the next batch's
                with contextlib.suppress(Exception):
                    self.ray.cancel(ref)
            raise


def _resources(actor_options: dict[str, Any]) -> str:
    parts = [f"{actor_options[k]} {name}" for k, name in (("num_gpus", "GPU"), ("num_cpus", "CPUs")) if k in actor_options]
    return ", ".join(parts)


def _why(exc: BaseException) -> str:
    """One line for a failure: its type and first line (Ray's messages run to dozens of lines)."""
    from studio.library.display import typed_first_line

    return typed_first_line(exc)[:300]
