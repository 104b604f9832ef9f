"""The one SIGINT/SIGTERM handler: the first signal asks for a stop at the next safe point (or at once,
for a job without one), a second always stops at once, and the previous handlers come back."""

from __future__ import annotations

import signal

import pytest

from edge.run.stopping import StopSignals


def test_the_first_signal_asks_and_the_second_stops_at_once():
    stop = StopSignals()
    stop.check()  # nothing asked yet
    stop(signal.SIGTERM)
    assert stop.requested and stop.name == "SIGTERM"
    with pytest.raises(KeyboardInterrupt):
        stop.check()  # the job's safe point
    with pytest.raises(KeyboardInterrupt):
        stop(signal.SIGINT)
    assert stop.name == "SIGTERM"  # the message names the first


def test_a_job_without_a_safe_point_stops_on_the_first_signal():
    stop = StopSignals(at_once=True)
    with pytest.raises(KeyboardInterrupt):
        stop(signal.SIGINT)
    assert stop.requested and stop.name == "SIGINT"


def test_installed_only_while_in_use():
    before = {s: signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM)}
    with StopSignals() as stop:
        assert signal.getsignal(signal.SIGTERM) is stop and signal.getsignal(signal.SIGINT) is stop
    assert {s: signal.getsignal(s) for s in before} == before
