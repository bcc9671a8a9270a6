"""Simulated sensors, after the seeds: UAV/aerial RGB (GDCLD), PlanetScope RGBN (HR-GLDD), Sentinel-2 (L4S)."""

from __future__ import annotations

from dataclasses import dataclass

from geoslide.catalog.build import BandInfo

REFLECTANCE_SCALE = 0.0001


@dataclass(frozen=True)
class Sensor:
    """How a simulated sensor samples a demo world.

    Parameters
    ----------
    name
        Short name used in collection and item ids.
    platform, constellation, instrument
        STAC common metadata.
    resolution
        Ground sample distance in metres.
    bands
        Band descriptions in file order.
    dtype
        ``uint8`` for display-stretched RGB (UAV, aerial), ``uint16`` for scaled surface reflectance.
    multiband
        One multi-band COG (UAV, PlanetScope) or one COG per band (Sentinel-2).
    coverage
        Side of the acquired square as a share of the event domain (UAV flights cover a part).
    terrain
        Also ship DEM and slope assets on the sensor's grid (Landslide4Sense's 14 bands).
    """

    name: str
    platform: str
    constellation: str
    instrument: str
    resolution: float
    bands: tuple[BandInfo, ...]
    dtype: str
    multiband: bool
    coverage: float = 1.0
    terrain: bool = False

    @property
    def wavelengths(self) -> list[float]:
        """Band centre wavelengths in micrometres."""
        return [b.center_wavelength or 0.0 for b in self.bands]


def _b(name: str, common: str | None, wl: float, scaled: bool) -> BandInfo:
    return BandInfo(name, common, wl, scale=REFLECTANCE_SCALE if scaled else None)


_S2 = (("B01", "coastal", 0.443), ("B02", "blue", 0.490), ("B03", "green", 0.560), ("B04", "red", 0.665),
       ("B05", "rededge", 0.705), ("B06", "rededge", 0.740), ("B07", "rededge", 0.783), ("B08", "nir", 0.842),
       ("B8A", "nir08", 0.865), ("B09", "nir09", 0.945), ("B11", "swir16", 1.610), ("B12", "swir22", 2.190))

SENSORS: dict[str, Sensor] = {
    "uav": Sensor(
        "uav", "uav-dji-m300", "uav", "rgb-camera", 0.5,
        tuple(_b(n, n, wl, False) for n, wl in (("red", 0.65), ("green", 0.55), ("blue", 0.47))),
        "uint8", multiband=True, coverage=0.3,
    ),
    "planetscope": Sensor(
        "planetscope", "planetscope-sd", "planetscope", "psb.sd", 3.0,
        tuple(_b(n, n, wl, True) for n, wl in (("blue", 0.49), ("green", 0.565), ("red", 0.665), ("nir", 0.865))),
        "uint16", multiband=True,
    ),
    "sentinel2": Sensor(
        "sentinel2", "sentinel-2b", "sentinel-2", "msi", 10.0,
        tuple(_b(n, c, wl, True) for n, c, wl in _S2), "uint16", multiband=False, terrain=True,
    ),
}
