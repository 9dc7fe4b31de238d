"""Device budgets for the folding search: LUT, FF, BRAM36 and DSP of a part,
and the clock the accelerator is expected to close at.

Figures are the vendor data-sheet totals of the programmable logic (Zynq-7000
DS190, Zynq UltraScale+ DS891). BRAM is counted in 36 Kb blocks; a RAMB18
half counts 0.5, as Vivado's utilisation report does. UltraRAM is not used
by the generator and is not listed.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, replace

from flipflow.errors import FlipflowError


class DeviceError(FlipflowError, ValueError):
    """Unknown device name or an impossible budget; the message lists the choices."""


RESOURCES = ("LUT", "FF", "BRAM36", "DSP")


@dataclass(frozen=True)
class Device:
    name: str
    part: str
    lut: int
    ff: int
    bram36: float
    dsp: int
    mhz: float = 100.0

    def budget(self) -> dict[str, float]:
        return {"LUT": self.lut, "FF": self.ff, "BRAM36": self.bram36, "DSP": self.dsp}

    def to_dict(self) -> dict:
        return asdict(self)


_XC7Z020 = dict(part="xc7z020clg400-1", lut=53_200, ff=106_400, bram36=140, dsp=220, mhz=100.0)

DEVICES: dict[str, Device] = {
    "pynq-z2": Device("pynq-z2", **_XC7Z020),
    "pynq-z1": Device("pynq-z1", **_XC7Z020),
    "xc7z020": Device("xc7z020", **_XC7Z020),
    "xc7z010": Device("xc7z010", part="xc7z010clg400-1", lut=17_600, ff=35_200, bram36=60, dsp=80, mhz=100.0),
    "zc706": Device("zc706", part="xc7z045ffg900-2", lut=218_600, ff=437_200, bram36=545, dsp=900, mhz=100.0),
    "ultra96": Device("ultra96", part="xczu3eg-sbva484-1", lut=70_560, ff=141_120, bram36=216, dsp=360, mhz=100.0),
    "kv260": Device("kv260", part="xck26-sfvc784-2LV-c", lut=117_120, ff=234_240, bram36=144, dsp=1_248, mhz=100.0),
    "zcu104": Device("zcu104", part="xczu7ev-ffvc1156-2", lut=230_400, ff=460_800, bram36=312, dsp=1_728, mhz=100.0),
    "zcu102": Device("zcu102", part="xczu9eg-ffvb1156-2", lut=274_080, ff=548_160, bram36=912, dsp=2_520, mhz=100.0),
}
DEFAULT_DEVICE = "pynq-z2"


def get(name: str = DEFAULT_DEVICE) -> Device:
    key = name.strip().lower().replace("_", "-")
    if key not in DEVICES:
        raise DeviceError(f"unknown device {name!r}", fix=f"choose one of the known devices: {', '.join(DEVICES)} (or give --lut/--ff/--bram/--dsp numbers)")
    return DEVICES[key]


def custom(
    base: str | Device = DEFAULT_DEVICE,
    lut: int | None = None,
    ff: int | None = None,
    bram36: float | None = None,
    dsp: int | None = None,
    mhz: float | None = None,
    fraction: float = 1.0,
) -> Device:
    """A budget from a named device with any figure overridden, scaled by ``fraction``
    (e.g. 0.8 to leave room for the DMA shell and routing)."""
    dev = get(base) if isinstance(base, str) else base
    overrides = {k: v for k, v in dict(lut=lut, ff=ff, bram36=bram36, dsp=dsp, mhz=mhz).items() if v is not None}
    for k, v in overrides.items():
        if v < 0 or (k == "mhz" and v == 0):
            raise DeviceError(f"--{k} must be positive, got {v}")
    if not 0 < fraction <= 1:
        raise DeviceError(f"--fraction must be in (0, 1], got {fraction}")
    dev = replace(dev, **overrides)
    if overrides or fraction != 1.0:
        dev = replace(
            dev,
            name=dev.name + ("+custom" if overrides else "") + (f"@{fraction:g}" if fraction != 1.0 else ""),
            lut=int(dev.lut * fraction),
            ff=int(dev.ff * fraction),
            bram36=int(dev.bram36 * fraction * 2) / 2,
            dsp=int(dev.dsp * fraction),
        )
    return dev
