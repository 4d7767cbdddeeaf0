"""The rich views the notebooks rely on: Scenario and Plan render as HTML in Jupyter."""

from __future__ import annotations

import wattplan


def _scenario() -> wattplan.Scenario:
    return wattplan.scenario_from_dict(
        {
            "name": "a <b>tiny</b> house",
            "start": "2025-10-26T00:00:00+02:00",
            "end": "2025-10-26T06:00:00+01:00",
            "prices": {"values": [30.0 - i for i in range(28)]},
            "site": {"base_load": 0.4},
            "devices": [
                {
                    "kind": "ev",
                    "name": "car",
                    "max_power_kw": 11,
                    "sessions": [
                        {
                            "plug_in": "2025-10-26T00:00:00+02:00",
                            "departure": "2025-10-26T06:00:00+01:00",
                            "energy_kwh": 8,
                        }
                    ],
                },
                {
                    "kind": "battery",
                    "name": "home-battery",
                    "capacity_kwh": 10,
                    "soc_kwh": 5,
                    "max_charge_kw": 5,
                    "max_discharge_kw": 5,
                },
            ],
        }
    )


def test_scenario_html_names_horizon_devices_and_escapes() -> None:
    html = _scenario()._repr_html_()
    assert "a &lt;b&gt;tiny&lt;/b&gt; house" in html
    assert "<b>tiny</b>" not in html
    # local time on both sides of the autumn DST change
    assert "Sun 26 Oct 2025 00:00 – Sun 26 Oct 2025 06:00 (Europe/Berlin)" in html
    assert "all-in, 28 values" in html
    assert "<td>car</td><td>ev</td><td>11 kW, 1 session(s), 8 kWh needed</td>" in html
    assert "10 kWh, SoC 5 kWh" in html


def test_plan_html_and_figure() -> None:
    plan = wattplan.optimize(_scenario())
    assert plan.ok
    assert "wattplan Plan" in plan._repr_html_()
    fig = plan.plot()
    assert fig.axes[-1].get_xlabel() == "local time (Europe/Berlin)"
