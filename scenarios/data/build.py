"""Cut the few days each shipped scenario needs out of wattplan's bundled data.

Run from the repository root: ``python scenarios/data/build.py [STEM ...]`` (all
scenarios, or only the named ones). The files it writes are
committed, so the scenarios run without this script. Prices: Data: Bundesnetzagentur |
SMARD.de, CC BY 4.0 (via Energy-Charts / Fraunhofer ISE).
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from wattplan import datasets

HERE = Path(__file__).resolve().parent
BERLIN = "Europe/Berlin"

# scenario stem -> (start, end, price kind)
CUTS = {
    "ev-overnight": ("2026-01-13T12:00+01:00", "2026-01-14T12:00+01:00", "all_in"),
    "heat-pump-cold-january": ("2026-01-04T00:00+01:00", "2026-01-05T12:00+01:00", "spot"),
    "battery-pv-negative-prices": ("2026-05-01T00:00+02:00", "2026-05-02T00:00+02:00", "all_in"),
    "full-household-48h": ("2026-01-20T12:00+01:00", "2026-01-22T12:00+01:00", "all_in"),
    "dst-autumn-2025-10-26": ("2025-10-25T12:00+02:00", "2025-10-27T12:00+01:00", "all_in"),
    "dst-spring-2026-03-29": ("2026-03-28T12:00+01:00", "2026-03-30T12:00+02:00", "all_in"),
    "hourly-ev-battery-2025-02": ("2025-02-11T12:00+01:00", "2025-02-13T12:00+01:00", "spot"),
    "ev-pv-surplus-dimming": ("2026-04-25T08:00+02:00", "2026-04-26T08:00+02:00", "all_in"),
}


def _local(index: pd.DatetimeIndex) -> list[str]:
    return [ts.isoformat() for ts in index.tz_convert(BERLIN)]


def main(stems: list[str]) -> None:
    for stem, (start, end, kind) in CUTS.items():
        if stems and stem not in stems:
            continue
        spot = datasets.read_day_ahead_prices(start, end)
        if kind == "all_in":
            prices = datasets.all_in_price_ct_per_kwh(spot).round(4)
            out = pd.DataFrame({"start": _local(prices.index), "price_ct_per_kwh": prices.values})
        else:
            out = pd.DataFrame({"start": _local(spot.index), "price_eur_per_mwh": spot.values})
        out.to_csv(HERE / f"{stem}-prices.csv", index=False)

        lo, hi = pd.Timestamp(start), pd.Timestamp(end)
        load = datasets.read_household_load(lo.year)
        load = load[(load.index >= lo) & (load.index < hi)]
        pd.DataFrame({"start": _local(load.index), "kw": load.values}).to_csv(
            HERE / f"{stem}-load.csv", index=False
        )
        if stem == "battery-pv-negative-prices":
            # EEG 2023 §51 as amended by the "Solarspitzengesetz" (2025): new PV systems get
            # no feed-in payment while the day-ahead price is negative.
            feed = (spot >= 0).astype(float) * 7.78
            pd.DataFrame({"start": _local(spot.index), "ct_per_kwh": feed.values}).to_csv(
                HERE / f"{stem}-feed-in.csv", index=False
            )
        weather = datasets.read_weather(start, end)
        pd.DataFrame(
            {
                "start": _local(weather.index),
                "temp_c": weather["temp_air_c"].values,
                "pv_kw_per_kwp": weather["pv_south35_kw_per_kwp"].round(4).values,
            }
        ).to_csv(HERE / f"{stem}-weather.csv", index=False)
        print(f"{stem}: {len(out)} prices, {len(load)} load values, {len(weather)} weather hours")


if __name__ == "__main__":
    import sys

    main(sys.argv[1:])
