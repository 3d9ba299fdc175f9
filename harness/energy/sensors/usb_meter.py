"""USB power meters UM24C / UM25C / UM34C (RDTech) over their Bluetooth serial port.

Protocol: send 0xF0, read a 130-byte big-endian reply that starts with the model id (0x0963
UM24C, 0x09C9 UM25C, 0x0D4C UM34C). Volts at [2:4] (/100; UM25C /1000), amps at [4:6] (/1000;
UM25C /10000), watts at [6:10] (/1000), temperature C at [10:12]. Power is V x I (the meter's
own watts field has less resolution on the UM25C). Measures everything behind the meter: for a
board powered through it, the whole board (coverage `board`).
"""
from __future__ import annotations

import importlib
from dataclasses import dataclass

from ..base import PowerSensor, SensorProblem
from ..config import EnergyConfig, UsbMeterParams
from ..uncertainty import Accuracy

REPLY_BYTES = 130
REQUEST = b"\xf0"
MODEL_IDS = {0x0963: "UM24C", 0x09C9: "UM25C", 0x0D4C: "UM34C"}
SCALES = {"UM24C": (100.0, 1000.0), "UM25C": (1000.0, 10000.0), "UM34C": (100.0, 1000.0)}
TIMEOUT_S = 1.0
# Stated accuracy (harness.energy.uncertainty): the vendor's figures for the UM25C, the most
# precise of the three; V x I adds the voltage and current gain limits linearly.
ACCURACY = Accuracy(
    gain_limit=0.0015, offset_limit_w=0.003, update_interval_s=0.0,
    source="RDTech UM25C listing: voltage +-(0.05% + 2 digits of 1 mV), current +-(0.1% + 4 "
           "digits of 0.1 mA); power V x I: 0.15% + about 3 mW at 5 V. The UM24C and UM34C "
           "(10 mV, 1 mA digits) are coarser: check your meter's manual before trusting it "
           "as a reference.")


@dataclass(frozen=True)
class MeterReading:
    model: str
    voltage_v: float
    current_a: float
    meter_power_w: float
    temperature_c: int

    @property
    def power_w(self) -> float:
        return self.voltage_v * self.current_a


def parse_reply(data: bytes, expected_model: str | None = None) -> MeterReading:
    if len(data) != REPLY_BYTES:
        raise ValueError(f"USB meter reply has {len(data)} bytes, expected {REPLY_BYTES}")
    model_id = int.from_bytes(data[0:2], "big")
    model = MODEL_IDS.get(model_id)
    if model is None:
        raise ValueError(f"unknown USB meter model id 0x{model_id:04X}")
    if expected_model and model != expected_model:
        raise ValueError(f"reply is from a {model}, but energy.usb_meter.model is {expected_model}")
    v_div, a_div = SCALES[model]
    return MeterReading(model=model,
                        voltage_v=int.from_bytes(data[2:4], "big") / v_div,
                        current_a=int.from_bytes(data[4:6], "big") / a_div,
                        meter_power_w=int.from_bytes(data[6:10], "big") / 1000.0,
                        temperature_c=int.from_bytes(data[10:12], "big"))


class UsbMeter(PowerSensor):
    name = "usb_meter"
    coverage = "board"
    max_power_w = 100.0

    def __init__(self, params: UsbMeterParams, serial_module):
        super().__init__()
        self.params = params
        try:
            self.port = serial_module.Serial(params.port, params.baud, timeout=TIMEOUT_S)
        except Exception as e:  # pyserial raises SerialException / OSError subclasses
            raise SensorProblem(f"cannot open USB meter port {params.port}: {e}",
                                "pair the meter and bind it (e.g. `sudo rfcomm bind 0 <MAC>`), "
                                "then set energy.usb_meter.port") from None
        try:
            first = self.reading()
        except ValueError as e:
            self.port.close()
            raise SensorProblem(f"USB meter on {params.port} gave no valid reply: {e}",
                                "check the port is the meter's and the model setting") from None
        self.notes.append(f"{first.model} on {params.port}: whatever is powered through it")

    def reading(self) -> MeterReading:
        self.port.reset_input_buffer()
        self.port.write(REQUEST)
        return parse_reply(bytes(self.port.read(REPLY_BYTES)), self.params.model)

    def read_power_w(self) -> float:
        return self.reading().power_w

    def close(self) -> None:
        self.port.close()


def create(config: EnergyConfig, estimate_params: dict | None) -> UsbMeter:
    if config.usb_meter is None:
        raise SensorProblem("usb_meter needs a serial port",
                            "set energy.usb_meter: {port: /dev/rfcomm0} in the matrix")
    try:
        serial = importlib.import_module("serial")
    except ImportError:
        raise SensorProblem("usb_meter needs pyserial", "pip install pyserial") from None
    return UsbMeter(config.usb_meter, serial)
