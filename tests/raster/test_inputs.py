"""Band lists: which bands are read, derived or differenced, and what they need (values: tests/mapping)."""

from __future__ import annotations

import pytest

from geoslide.errors import BandError
from geoslide.raster.inputs import InputPlan, plan_inputs


def test_reserved_names_are_computed_and_their_inputs_read():
    plan = plan_inputs(["red", "nir", "ndvi", "slope", "d_red", "d_swir16"])
    assert plan == InputPlan(("red", "nir", "ndvi", "slope", "d_red", "d_swir16"), ("red", "nir", "swir16"),
                             ("red", "swir16"), elevation=True)


def test_a_listed_elevation_comes_from_the_dem_items_when_given():
    assert plan_inputs(["red", "elevation"]).read == ("red", "elevation")
    assert not plan_inputs(["red", "elevation"]).elevation
    with_dem = plan_inputs(["red", "elevation"], dem=True)
    assert with_dem.read == ("red",) and with_dem.elevation


@pytest.mark.parametrize(("names", "match"), [
    (["red", "slope", "slope"], r"\['slope'\] are listed twice"),
    (["red", "d_ndvi"], "differences of derived bands"),
    (["slope"], "no band read from the imagery"),
])
def test_band_lists_that_cannot_be_built(names, match):
    with pytest.raises(BandError, match=match):
        plan_inputs(names)
