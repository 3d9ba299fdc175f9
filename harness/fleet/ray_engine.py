"""`fleet run --engine ray`: the same schedule on a Ray cluster, for labs past one controller.

Each controller host joins the cluster advertising the devices attached to it as custom
resources, `device:<name>` and `class:<profile>` (`ray start --address HEAD:6379 --resources
'{"device:pi5-01": 1, "class:raspberry-pi-5": 1}'`). Each device is an actor placed by its
`device:<name>` resource on the host that reaches it, holding its DeviceSession (link, clock
check, pulls); each cell is a task on that actor (`run_cell`), one at a time per device, devices
in parallel: the driver runs harness.fleet.engine.device_loop per device exactly as the
in-process engine does.

Ray would leave a task asking for a resource no node has pending forever, so every resource is
checked against the cluster before anything is submitted: a cell whose device class no node
advertises is an error at submission (exit 2), a device no node advertises is refused with its
line. Ray is imported only here, only on controllers (the `ray` extra); devices never need it.
Pulled run folders are written by each actor on its host under the fleet folder's path: give
the controller hosts a shared file system for `--output-dir` (or run one controller).
"""
from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from ..errors import HarnessError
from ..matrix import AUTO_DEVICE, Matrix
from .inventory import AUTO_PROFILE, DeviceSpec, Inventory
from .plan import FleetFolder, controller_identity
from .session import CellResult, DeviceSession

CLASS_SHARE = 0.001  # an actor's claim on its class: pins it to a node of that class, blocks nothing


def _ray() -> Any:
    try:
        import ray
    except ImportError:
        raise HarnessError("--engine ray needs Ray on this controller: pip install "
                           "'edgebench[ray]' (devices do not need it)") from None
    return ray


class DeviceActor:
    """Runs on the controller host that advertises `device:<name>`; one DeviceSession for good."""

    def __init__(self, spec: DeviceSpec, fleet_id: str, local_root: str):
        ray = _ray()
        controller = controller_identity("ray") | {"ray_node_id": ray.get_runtime_context().get_node_id()}
        from .engine import ThreadWorker
        self.worker = ThreadWorker(DeviceSession(spec, fleet_id, controller,
                                                 lambda s: print(s, flush=True)), Path(local_root))

    def prepare(self, matrix_bytes: bytes, resume: bool) -> tuple[dict[str, Any] | None, str | None]:
        return self.worker.prepare(matrix_bytes, resume)

    def run_cell(self, cell_id: str, timeout_s: float) -> CellResult:
        return self.worker.run_cell(cell_id, timeout_s)

    def recover(self, within_s: float) -> bool:
        return self.worker.recover(time.monotonic() + within_s)

    def close(self) -> None:
        self.worker.close()


class RayWorker:
    """The driver's handle on a device actor (harness.fleet.engine.Worker)."""

    def __init__(self, name: str, actor: Any = None, problem: str | None = None):
        self.name = name
        self.actor = actor
        self.problem = problem

    def prepare(self, matrix_bytes: bytes, resume: bool) -> tuple[dict[str, Any] | None, str | None]:
        if self.problem:
            return None, self.problem
        return _ray().get(self.actor.prepare.remote(matrix_bytes, resume))

    def run_cell(self, cell_id: str, timeout_s: float) -> CellResult:
        return _ray().get(self.actor.run_cell.remote(cell_id, timeout_s))

    def recover(self, deadline: float) -> bool:
        return _ray().get(self.actor.recover.remote(max(0.0, deadline - time.monotonic())))

    def close(self) -> None:
        if self.actor is not None:
            ray = _ray()
            try:
                ray.get(self.actor.close.remote(), timeout=30)
            finally:
                ray.kill(self.actor)


def advertised(ray: Any) -> set[str]:
    """The custom resources the cluster's nodes advertise (device:..., class:...)."""
    return {k for k in ray.cluster_resources() if k.startswith(("device:", "class:"))}


def check_classes(matrix: Matrix, resources: set[str]) -> None:
    """Refuse at submission a cell whose device class no node advertises (Ray would wait forever)."""
    wanted = sorted({d.profile for d in matrix.devices if d.profile != AUTO_DEVICE})
    missing = [p for p in wanted if f"class:{p}" not in resources]
    if missing:
        have = sorted(r for r in resources if r.startswith("class:")) or ["none"]
        raise HarnessError(f"{matrix.file}: cells for {', '.join(missing)} ask for "
                           f"{', '.join('class:' + p for p in missing)}, which no Ray node advertises "
                           f"(advertised: {', '.join(have)}); start a controller host with "
                           "`ray start --resources '{\"class:PROFILE\": 1, \"device:NAME\": 1}'`")


def ray_workers(inventory: Inventory, folder: FleetFolder, matrix: Matrix) -> list[RayWorker]:
    """An actor per device on the node that advertises it; checked before anything is submitted."""
    ray = _ray()
    if not ray.is_initialized():
        try:
            ray.init(address="auto", log_to_driver=True)
        except (ConnectionError, RuntimeError) as e:
            raise HarnessError(f"--engine ray: no Ray cluster to join ({e}); start one with "
                               "`ray start --head --resources '{\"device:NAME\": 1, "
                               "\"class:PROFILE\": 1}'`") from None
    resources = advertised(ray)
    check_classes(matrix, resources)
    actor_class = ray.remote(num_cpus=0, max_restarts=0)(DeviceActor)
    workers = []
    for spec in inventory.devices:
        need = {f"device:{spec.name}": 1}
        if spec.profile != AUTO_PROFILE:
            need[f"class:{spec.profile}"] = CLASS_SHARE
        missing = [r for r in need if r not in resources]
        if missing:
            workers.append(RayWorker(spec.name, problem=f"no Ray node advertises {', '.join(missing)}"))
            continue
        actor = actor_class.options(resources=need, name=None).remote(spec, folder.fleet_id,
                                                                     str(folder.runs))
        workers.append(RayWorker(spec.name, actor))
    return workers
