"""Stop requests (partrain.signals): inside deferred() a SIGINT, SIGTERM or SIGHUP is
recorded, announced once, and raised as Interrupted only where check() is called and no
held() block is open. Every signal here is real, sent to this process with os.kill."""

import os
import signal
import threading

import pytest

from partrain import signals
from partrain.errors import Interrupted

STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)


@pytest.fixture(autouse=True)
def received():
    """The signals that reached this test's own handlers, the ones partrain must leave in
    place (or put back). They also keep a stray signal from ending pytest; the previous
    handlers return after the test, and partrain's record starts empty for the next."""
    previous = {s: signal.getsignal(s) for s in STOP_SIGNALS}
    got = []
    for s in STOP_SIGNALS:
        signal.signal(s, lambda signum, frame: got.append(signum))
    yield got
    with signals.deferred():   # an outermost block starts with a clean record
        pass
    for s, handler in previous.items():
        signal.signal(s, handler)


def send(signum):
    """Deliver ``signum`` to this process; its Python handler has run on return."""
    os.kill(os.getpid(), signum)


@pytest.mark.parametrize("signum", STOP_SIGNALS, ids=lambda s: s.name)
def test_a_signal_inside_deferred_waits_for_check(signum, received):
    with signals.deferred():
        send(signum)
        assert received == []   # recorded by partrain, not acted on
        with pytest.raises(Interrupted) as stop:
            signals.check()
    assert stop.value.signum == signum and stop.value.exit_code == 128 + signum


def test_check_without_a_signal_does_nothing():
    with signals.deferred():
        signals.check()
    signals.check()


def test_the_first_signal_is_announced_once_and_decides_the_stop(capsys):
    with signals.deferred():
        send(signal.SIGTERM)
        send(signal.SIGINT)
        err = capsys.readouterr().err
        with pytest.raises(Interrupted) as stop:
            signals.check()
    assert err == ("\npartrain: SIGTERM received; stopping at the end of this step and "
                   "saving a checkpoint\n")
    assert stop.value.signum == signal.SIGTERM


def test_held_blocks_make_check_wait_until_the_outermost_ends():
    with signals.deferred():
        with signals.held():
            send(signal.SIGINT)
            signals.check()
            with signals.held():
                signals.check()
            signals.check()   # still inside the outer held block
        with pytest.raises(Interrupted):
            signals.check()


def test_held_blocks_close_when_an_exception_leaves_them():
    with signals.deferred():
        with pytest.raises(RuntimeError), signals.held():
            raise RuntimeError("a failed checkpoint write")
        send(signal.SIGHUP)
        with pytest.raises(Interrupted):
            signals.check()


def test_nested_deferred_blocks_share_one_record():
    with signals.deferred():
        send(signal.SIGTERM)
        with signals.deferred():   # an inner block keeps what the outer one recorded
            with pytest.raises(Interrupted) as inner:
                signals.check()
            send(signal.SIGINT)
        with pytest.raises(Interrupted) as outer:   # and the outer one what the inner saw
            signals.check()
    assert inner.value.signum == outer.value.signum == signal.SIGTERM


def test_a_signal_in_an_inner_block_stays_recorded_after_it():
    with signals.deferred():
        with signals.deferred():
            send(signal.SIGHUP)
        with pytest.raises(Interrupted) as stop:
            signals.check()
    assert stop.value.signum == signal.SIGHUP


def test_a_new_outermost_block_forgets_the_previous_runs_signal():
    with signals.deferred():
        send(signal.SIGINT)
    with signals.deferred():
        signals.check()


def test_the_previous_handlers_are_back_after_the_block(received):
    before = {s: signal.getsignal(s) for s in STOP_SIGNALS}
    with signals.deferred():
        with signals.deferred():
            pass
        assert all(signal.getsignal(s) is not before[s] for s in STOP_SIGNALS)
    assert {s: signal.getsignal(s) for s in STOP_SIGNALS} == before
    send(signal.SIGTERM)
    assert received == [signal.SIGTERM]


def test_the_handlers_are_back_after_an_exception_leaves_the_block():
    before = {s: signal.getsignal(s) for s in STOP_SIGNALS}
    with pytest.raises(Interrupted), signals.deferred():
        send(signal.SIGINT)
        signals.check()
    assert {s: signal.getsignal(s) for s in STOP_SIGNALS} == before


def test_outside_the_main_thread_deferred_changes_nothing(received):
    """Python installs handlers only in the main thread: there the block is a no-op and a
    signal reaches the handlers that were there, not partrain's record."""
    before = {s: signal.getsignal(s) for s in STOP_SIGNALS}
    inside, sent, seen = threading.Event(), threading.Event(), {}

    def run():
        try:
            with signals.deferred():
                seen["handlers"] = {s: signal.getsignal(s) for s in STOP_SIGNALS}
                inside.set()
                sent.wait(10)
                signals.check()
        except BaseException as exc:   # noqa: BLE001  (reported by the main thread)
            seen["raised"] = exc

    thread = threading.Thread(target=run)
    thread.start()
    assert inside.wait(10)
    send(signal.SIGTERM)
    sent.set()
    thread.join(10)
    assert not thread.is_alive()
    assert seen == {"handlers": before}
    assert received == [signal.SIGTERM]


def test_a_request_made_before_the_block_stops_at_its_first_check_and_is_then_forgotten():
    from partrain import signals as sig

    sig.request(signal.SIGTERM)   # as the command line's start-up handler records it
    with pytest.raises(Interrupted):
        with sig.deferred():
            sig.check()
    sig.check()                   # the outermost block has ended: nothing pending
    sig.request(signal.SIGINT)
    sig.forget()
    sig.check()
