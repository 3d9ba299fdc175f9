"""--engine ray: a local Ray instance advertising two devices runs the same two-device schedule
over ssh; a cell whose device class no node advertises is refused at submission, not left pending."""
from __future__ import annotations

import pytest
from fleet_lab import SSHD, Lab, tiny_fleet_matrix

from harness.errors import HarnessError
from harness.fleet.engine import FleetOptions, run_fleet
from harness.store import load_run

ray = pytest.importorskip("ray")
pytestmark = [pytest.mark.e2e, pytest.mark.skipif(SSHD is None, reason="openssh-server not installed")]


@pytest.fixture
def local_ray():
    ray.init(num_cpus=1, include_dashboard=False, log_to_driver=False,
             resources={"device:pi5": 1, "class:raspberry-pi-5": 1,
                        "device:orin": 1, "class:jetson-orin-nano": 1})
    yield ray
    ray.shutdown()


def test_two_devices_as_ray_actors(local_ray, tmp_path):
    lab = Lab(tmp_path).start()
    try:
        inv = lab.inventory([lab.device("pi5"), lab.device("orin")])
        # a class no node advertises: an error before anything is submitted
        (tmp_path / "bad").mkdir()
        bad = tiny_fleet_matrix(tmp_path / "bad", ["raspberry-pi-5", "pixel"])
        with pytest.raises(HarnessError, match="class:pixel, which no Ray node advertises"):
            run_fleet(FleetOptions(inventory=str(inv), matrix=str(bad), engine="ray",
                                   output_dir=str(tmp_path / "out-bad")))
        m = tiny_fleet_matrix(tmp_path, ["raspberry-pi-5", "jetson-orin-nano"])
        code = run_fleet(FleetOptions(inventory=str(inv), matrix=str(m), engine="ray",
                                      output_dir=str(tmp_path / "out")))
    finally:
        lab.stop()
    assert code == 0
    (fleet,) = (tmp_path / "out").glob("fleet-*")
    for name, profile in (("pi5", "raspberry-pi-5"), ("orin", "jetson-orin-nano")):
        (pulled,) = (fleet / "runs").glob(f"*-{name}")
        run = load_run(pulled)
        assert [s["device"] for s in run.summaries] == [profile]
        ctl = run.manifest["fleet"]["controller"]
        assert ctl["engine"] == "ray" and ctl["ray_node_id"]  # driven from the actor's node
    assert (fleet / "report.html").exists()
