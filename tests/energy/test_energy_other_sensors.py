"""USB meters (protocol + fake pyserial), NVML (fake pynvml), powermetrics, the estimate model."""
from __future__ import annotations

import sys
import time
import types
from collections import namedtuple

import pytest

from energy_testkit import fake_tool, fixture_text, path_with
from harness.energy import EnergyConfig, Sampler
from harness.energy.base import SensorProblem
from harness.energy.config import UsbMeterParams
from harness.energy.sensors import estimate, nvml, powermetrics, usb_meter


def um_reply(model_id, volts_raw, amps_raw, watts_raw=0, temp_c=25):
    body = (model_id.to_bytes(2, "big") + volts_raw.to_bytes(2, "big") +
            amps_raw.to_bytes(2, "big") + watts_raw.to_bytes(4, "big") + temp_c.to_bytes(2, "big"))
    return body + bytes(130 - len(body) - 2) + b"\xff\xf1"


@pytest.mark.parametrize("model_id,volts_raw,amps_raw,model,v,a", [
    (0x0963, 512, 1234, "UM24C", 5.12, 1.234),
    (0x09C9, 5123, 12345, "UM25C", 5.123, 1.2345),
    (0x0D4C, 1998, 2500, "UM34C", 19.98, 2.5),
])
def test_usb_meter_reply_scales_per_model(model_id, volts_raw, amps_raw, model, v, a):
    r = usb_meter.parse_reply(um_reply(model_id, volts_raw, amps_raw, watts_raw=6318, temp_c=31))
    assert (r.model, r.voltage_v, r.current_a) == (model, pytest.approx(v), pytest.approx(a))
    assert r.power_w == pytest.approx(v * a) and r.meter_power_w == pytest.approx(6.318)
    assert r.temperature_c == 31


def test_usb_meter_rejects_bad_replies():
    with pytest.raises(ValueError, match="129 bytes"):
        usb_meter.parse_reply(um_reply(0x0963, 1, 1)[:129])
    with pytest.raises(ValueError, match="unknown USB meter model"):
        usb_meter.parse_reply(um_reply(0x1234, 1, 1))
    with pytest.raises(ValueError, match="UM24C"):
        usb_meter.parse_reply(um_reply(0x09C9, 1, 1), expected_model="UM24C")


class FakeSerialPort:
    def __init__(self, port, baud, timeout):
        self.port, self.sent, self.replies = port, b"", [um_reply(0x09C9, 5100, 20000)]

    def reset_input_buffer(self):
        pass

    def write(self, data):
        self.sent += data

    def read(self, n):
        return self.replies[-1][:n]

    def close(self):
        self.closed = True


def test_usb_meter_reader_with_fake_pyserial(monkeypatch):
    monkeypatch.setitem(sys.modules, "serial", types.SimpleNamespace(Serial=FakeSerialPort))
    cfg = EnergyConfig(sensor="usb_meter", usb_meter=UsbMeterParams(port="/dev/rfcomm0"))
    sensor = usb_meter.create(cfg, None)
    assert sensor.read_power_w() == pytest.approx(5.1 * 2.0)
    assert sensor.port.sent.startswith(b"\xf0") and sensor.coverage == "board"


def test_usb_meter_without_pyserial(monkeypatch):
    monkeypatch.setitem(sys.modules, "serial", None)  # import fails as if not installed
    cfg = EnergyConfig(usb_meter=UsbMeterParams(port="/dev/rfcomm0"))
    with pytest.raises(SensorProblem, match="pyserial") as e:
        usb_meter.create(cfg, None)
    assert e.value.fix == "pip install pyserial"


def fake_pynvml(energy_mj, supported=True, init_ok=True):
    """A stand-in for nvidia-ml-py with two GPUs whose counters the test controls."""
    class NVMLError(Exception):
        pass

    def get_energy(h):
        if not supported:
            raise NVMLError("Not Supported")
        return energy_mj[h]

    def init():
        if not init_ok:
            raise NVMLError("Driver Not Loaded")

    return types.SimpleNamespace(
        NVMLError=NVMLError, nvmlInit=init, nvmlShutdown=lambda: None,
        nvmlDeviceGetCount=lambda: len(energy_mj), nvmlDeviceGetHandleByIndex=lambda i: i,
        nvmlDeviceGetTotalEnergyConsumption=get_energy)


def test_nvml_sums_gpu_counters_in_millijoules(monkeypatch):
    counters = [1_000_000, 2_000_000]
    monkeypatch.setitem(sys.modules, "pynvml", fake_pynvml(counters))
    sensor = nvml.create(EnergyConfig(), None)
    first = sensor.read_energy_j()
    assert first == pytest.approx(3000.0)
    counters[0] += 1500
    counters[1] += 500
    assert sensor.read_energy_j() - first == pytest.approx(2.0)
    assert sensor.kind == "counter" and sensor.coverage == "gpu"


@pytest.mark.parametrize("kw,match", [({"supported": False}, "Volta"),
                                      ({"init_ok": False}, "driver")])
def test_nvml_unusable(monkeypatch, kw, match):
    monkeypatch.setitem(sys.modules, "pynvml", fake_pynvml([1], **kw))
    with pytest.raises(SensorProblem, match=match):
        nvml.create(EnergyConfig(), None)


def test_nvml_not_installed(monkeypatch):
    monkeypatch.setitem(sys.modules, "pynvml", None)
    with pytest.raises(SensorProblem, match="nvidia-ml-py") as e:
        nvml.create(EnergyConfig(), None)
    assert "edgebench[nvml]" in e.value.fix


def test_powermetrics_sample_uses_combined_line():
    assert powermetrics.parse_sample(fixture_text("powermetrics_sample.txt")) == pytest.approx(1.203)


def test_powermetrics_stream_emits_combined_once_per_block():
    parser = powermetrics.BlockParser()
    text = fixture_text("powermetrics_sample.txt") * 3  # the GPU section repeats "GPU Power"
    values = [v for v in map(parser.feed, text.splitlines()) if v is not None]
    assert values == [pytest.approx(1.203)] * 3


def test_powermetrics_without_combined_adds_first_of_each():
    text = ("*** Sampled system activity (x) ***\nCPU Power: 1500 mW\nGPU Power: 300 mW\n"
            "ANE Power: 0 mW\nGPU Power: 999 mW\n")
    assert powermetrics.parse_sample(text) == pytest.approx(1.8)


def test_powermetrics_tool_is_labelled_estimated(tmp_path, monkeypatch):
    sample = tmp_path / "sample.txt"
    sample.write_text(fixture_text("powermetrics_sample.txt"))
    fake_tool(tmp_path / "bin", "powermetrics",
              f'while true; do cat "{sample}"; sleep 0.1; done\n')
    fake_tool(tmp_path / "bin", "sudo", '[ "$1" = "-n" ] && shift; exec "$@"\n')
    monkeypatch.setenv("PATH", path_with(tmp_path / "bin"))
    sensor = powermetrics.create(EnergyConfig(rate_hz=10), None)
    try:
        assert sensor.read_power_w() == pytest.approx(1.203)
        assert (sensor.method, sensor.model) == ("estimated", "apple-powermetrics")
    finally:
        sensor.close()


Times = namedtuple("Times", "user nice system idle iowait irq softirq steal guest guest_nice")


class ScriptedCpu:
    """cpu_times() whose busy fraction per call the test sets."""

    def __init__(self):
        self.busy = self.idle = 0.0
        self.utilisation = 0.0

    def advance(self, cpu_s):
        self.busy += cpu_s * self.utilisation
        self.idle += cpu_s * (1 - self.utilisation)

    def __call__(self):
        return Times(self.busy, 0, 0, self.idle, 0, 0, 0, 0, 5.0, 0)  # guest is inside user


def test_estimate_integrates_the_linear_model():
    cpu = ScriptedCpu()
    sensor = estimate.create(EnergyConfig(), {"tdp_w": 15.0, "idle_w": 3.0, "source": "test"},
                             cpu_times=cpu)
    assert (sensor.method, sensor.model) == ("estimated", "cpu-tdp-linear")
    e0 = sensor.read_energy_j()
    cpu.utilisation = 0.5
    t0 = sensor._last[0]
    time.sleep(0.2)
    cpu.advance(0.4)
    e1 = sensor.read_energy_j()
    dt = sensor._last[0] - t0
    assert sensor.utilisation == pytest.approx(0.5)
    assert e1 - e0 == pytest.approx((3.0 + 12.0 * 0.5) * dt, rel=1e-9)
    assert sensor.power_w(1.0) == 15.0 and sensor.power_w(0.0) == 3.0


def test_estimate_with_psutil_in_a_sampler():
    sensor = estimate.create(EnergyConfig(), {"tdp_w": 10.0, "idle_w": 2.0, "source": "t"})
    sampler = Sampler(sensor, 20).start()
    time.sleep(0.3)
    trace = sampler.stop()
    assert trace.valid
    watts = trace.energy_j() / trace.duration_s
    # the model can only produce powers between idle and TDP (timestamp jitter: 1%)
    assert 2.0 * 0.99 <= watts <= 10.0 * 1.01
    assert trace.sensor["method"] == "estimated"


@pytest.mark.parametrize("params,match", [
    (None, "tdp_w, idle_w, source"),
    ({"tdp_w": None, "idle_w": 1.0, "source": "x"}, "tdp_w"),
    ({"tdp_w": 1.0, "idle_w": 5.0, "source": "x"}, "idle_w <= tdp_w"),
])
def test_estimate_needs_profile_figures(params, match):
    with pytest.raises(SensorProblem, match=match):
        estimate.create(EnergyConfig(), params)
