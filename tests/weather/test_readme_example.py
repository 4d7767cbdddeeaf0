"""The README's weather example runs as written, against a local Open-Meteo-format server."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.readme import readme_block, run_python
from tests.weather._open_meteo import OpenMeteoState, app
from wattplan._http import serve_in_thread

SOURCE = "OpenMeteoWeather(latitude=52.39, longitude=13.06)"


@pytest.fixture
def server() -> Iterator[tuple[str, OpenMeteoState]]:
    state = OpenMeteoState()
    with serve_in_thread(app(state), name="open-meteo-readme") as url:
        yield url, state


def _example(url: str) -> str:
    code = readme_block("example: weather")
    assert SOURCE in code
    # the same call, pointed at the local server instead of api.open-meteo.com
    return code.replace(SOURCE, SOURCE[:-1] + f", base_url={url!r})")


def test_readme_weather_example_online(server: tuple[str, OpenMeteoState]) -> None:
    url, state = server
    out = run_python(_example(url))
    assert "weather from open-meteo" in out.stdout
    assert "kWh PV (P50) tomorrow" in out.stdout
    assert len(state.requests) == 2
    assert all(r["timezone"] == "GMT" for r in state.requests)


def test_readme_weather_example_falls_back(server: tuple[str, OpenMeteoState]) -> None:
    url, state = server
    state.mode = "429"
    out = run_python(_example(url))
    assert "weather from typical-year (fallback: Open-Meteo: 429" in out.stdout
    assert len(state.requests) == 1  # the second call respects Retry-After
