import time

import pytest

from campaign.clock import FakeClock, SystemClock


def test_the_system_clock_ignores_a_wall_clock_step_during_a_run(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    clock = SystemClock()
    before = clock.now()
    assert abs(before - time.time()) < 1.0  # comparable to epoch times in the checkpoint
    real_time = time.time
    monkeypatch.setattr(time, "time", lambda: real_time() - 3600.0)  # NTP steps back 1 h
    after = clock.now()
    assert 0.0 <= after - before < 1.0


async def test_the_fake_clock_moves_only_when_told() -> None:
    clock = FakeClock(start=100.0)
    assert clock.now() == 100.0
    await clock.sleep(5)
    clock.advance(-3)  # never backwards
    assert clock.now() == 105.0
