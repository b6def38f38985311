"""The shared pieces of state in PostgreSQL (state_url): the run lock, the opt-out list,
the calls-per-number ledger and the shared allowance, as hosts sharing only the database
see them.

The lock/opt-out tests of tests/store/test_store.py, the gate tests of
tests/engine/test_frequency_caps.py and the allowance tests of tests/limits run on both
backends; this file holds what only PostgreSQL has: a lock that is a server session, two
"hosts" (processes with different state dirs) on one allowance, remote participants, and
the password kept out of every message.
"""

from __future__ import annotations

import dataclasses
import json
import os
import signal
import socket
import subprocess
import sys
import textwrap
from pathlib import Path
from urllib.parse import quote

import pytest
from support.postgres import acquire_when_free

from campaign.errors import LockedError, StateError
from campaign.store.allowance import Participant, host_identity
from campaign.store.place import StatePlace
from campaign.store.postgres import close_pools

T0 = 1_780_000_000.0


def _place(tmp_path: Path, url: str, campaign: str = "c") -> StatePlace:
    return StatePlace(tmp_path / "state", campaign, url, _shown(url))


def _shown(url: str) -> str:
    # the URL as a campaign file holds it: no password
    from campaign.config.model import redact_url

    return redact_url(url)


def _holder(tmp_path: Path, url: str) -> subprocess.Popen[str]:
    script = (
        "import os, time; from pathlib import Path; "
        "from campaign.store.place import StatePlace; "
        f"lock = StatePlace(Path({str(tmp_path / 'elsewhere')!r}), 'c', os.environ['H3_DSN'])"
        ".lock(); lock.acquire(); print('held', flush=True); time.sleep(120)"
    )
    return subprocess.Popen(
        [sys.executable, "-c", script],
        stdout=subprocess.PIPE,
        text=True,
        env={**os.environ, "H3_DSN": url},  # not on the command line: ps would show it
    )


def test_a_lock_held_on_another_host_refuses_the_run_and_dies_with_its_holder(
    tmp_path: Path, pg_url: str, pg_password: str
) -> None:
    holder = _holder(tmp_path, pg_url)  # another state dir: another host, same database
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "held"
        with pytest.raises(LockedError) as refused:
            _place(tmp_path, pg_url).lock().acquire()
        message = str(refused.value)
        assert "another run of campaign 'c' is in progress" in message
        assert _shown(pg_url) in message and pg_password not in message
        assert not (tmp_path / "state").exists()  # a refused run touched nothing
        # another campaign on the same database is not held back
        with _place(tmp_path, pg_url, "other").lock():
            pass
    finally:
        os.kill(holder.pid, signal.SIGKILL)
        holder.wait()
    acquire_when_free(_place(tmp_path, pg_url))


def test_the_lock_is_not_lost_when_the_pools_are_closed(tmp_path: Path, pg_url: str) -> None:
    place = _place(tmp_path, pg_url)
    place.opt_outs().add("+14155550100", campaign="c", row_key="k", now=T0)  # a pool exists
    with place.lock() as held:
        close_pools()  # every pooled connection closed: the lock's own one stays
        assert held.held()
        with pytest.raises(LockedError):
            place.lock().acquire()
    with place.lock():  # released at the end of the block
        pass


def test_opt_outs_and_calls_are_shared_by_hosts_on_the_database(
    tmp_path: Path, pg_url: str
) -> None:
    here = StatePlace(tmp_path / "host-a", "spring", pg_url)
    there = StatePlace(tmp_path / "host-b", "winback", pg_url)
    here.opt_outs().add("+14155550100", campaign="spring", row_key="k1", now=T0)
    assert there.opt_outs().contains("+14155550100")
    assert there.opt_outs().numbers(besides="winback") == ["+14155550100"]
    assert there.opt_outs().numbers(besides="spring") == []

    def one_a_day(times: object) -> bool:
        return not times

    took = here.call_ledger().take(
        "+14155550100", "spring:k1:1", at=T0, since=T0 - 86400, allow=one_a_day,
        campaign="spring", row_key="k1",
    )  # fmt: skip
    refused = there.call_ledger().take(
        "+14155550100", "winback:k9:1", at=T0 + 60, since=T0 - 86400, allow=one_a_day,
        campaign="winback", row_key="k9",
    )  # fmt: skip
    assert took.recorded and not refused.recorded and refused.times == (T0,)
    assert there.call_ledger().distribution() == {1: 1}
    assert there.call_ledger().distribution("winback") == {}
    # nothing of it is in either state dir
    assert not (tmp_path / "host-a").exists() and not (tmp_path / "host-b").exists()


def test_a_rerun_finds_the_calls_of_a_killed_run(tmp_path: Path, pg_url: str) -> None:
    # A run records a call, then dies (kill -9: its connection just ends); the rerun's
    # re-send of the same attempt is the same call, and the cap still counts it.
    script = textwrap.dedent(
        f"""
        import os, signal
        from pathlib import Path
        from campaign.store.place import StatePlace
        ledger = StatePlace(Path({str(tmp_path)!r}), "c", os.environ["H3_DSN"]).call_ledger()
        with ledger.batch():
            ledger.take("+14155550100", "c:k1:1", at={T0}, since=0, allow=lambda t: True,
                        campaign="c", row_key="k1")
        with ledger.batch():  # left open: a kill in the middle of a batch commits nothing
            ledger.take("+14155550100", "c:k2:1", at={T0 + 1}, since=0, allow=lambda t: True,
                        campaign="c", row_key="k2")
            os.kill(os.getpid(), signal.SIGKILL)
        """
    )
    run = subprocess.run(
        [sys.executable, "-c", script], env={**os.environ, "H3_DSN": pg_url}, timeout=60
    )
    assert run.returncode == -signal.SIGKILL
    ledger = _place(tmp_path, pg_url).call_ledger()
    assert ledger.times("+14155550100", 0) == [T0]
    again = ledger.take(
        "+14155550100", "c:k1:1", at=T0 + 5, since=0, allow=lambda t: False,
        campaign="c", row_key="k1",
    )  # fmt: skip
    assert again.recorded and again.already
    assert ledger.times("+14155550100", 0) == [T0 + 5]


TWO_HOSTS = textwrap.dedent(
    """
    import asyncio, json, os, sys
    from pathlib import Path
    from campaign.clock import SystemClock
    from campaign.config.limit import Limit
    from campaign.limits.allowance import shared_limiter
    from campaign.store.place import StatePlace

    state_dir, name, count = Path(sys.argv[1]), sys.argv[2], int(sys.argv[3])
    place = StatePlace(state_dir, name, os.environ["H3_DSN"])
    where = place.allowance("https://api.example/v1", "avp_test_shared")

    async def main():
        allowance = shared_limiter(
            where, name, [Limit(6, 0.5)], [Limit(4, 0.5)], clock=SystemClock(), margin_s=0.02
        )
        print("joined", flush=True)
        sys.stdin.readline()  # both joined: start together
        sent = []
        for k in range(count):
            call = k % 3 != 0
            at = await (allowance.acquire_call() if call else allowance.acquire_request())
            sent.append([call, at])
        allowance.close()
        print(json.dumps(sent), flush=True)

    asyncio.run(main())
    """
)


def _max_in_window(times: list[float], window: float) -> int:
    ordered = sorted(times)
    best, start = 0, 0
    for end, t in enumerate(ordered):
        while t - ordered[start] >= window:
            start += 1
        best = max(best, end - start + 1)
    return best


def test_two_hosts_sharing_one_allowance_never_exceed_a_limit_together(
    tmp_path: Path, pg_url: str
) -> None:
    # Real time and real lock contention; the assertion is about the recorded send times
    # only (any count + 1 of them span more than the window), not about how long it took.
    hosts = []
    for name in ("spring", "winback"):
        hosts.append(
            subprocess.Popen(
                [sys.executable, "-c", TWO_HOSTS, str(tmp_path / name), name, "15"],
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                text=True,
                env={**os.environ, "H3_DSN": pg_url},
            )
        )
    sent: list[tuple[bool, float]] = []
    try:
        for host in hosts:
            assert host.stdout is not None and host.stdout.readline().strip() == "joined"
        for host in hosts:
            assert host.stdin is not None
            host.stdin.write("go\n")
            host.stdin.flush()
        for host in hosts:
            out, _ = host.communicate(timeout=120)
            assert host.returncode == 0
            sent += [(bool(call), float(at)) for call, at in json.loads(out.strip())]
    finally:
        for host in hosts:
            if host.poll() is None:
                host.kill()
                host.wait()
    assert len(sent) == 30
    calls = [t for call, t in sent if call]
    assert _max_in_window(calls, 0.5) <= 4
    assert _max_in_window([t for _, t in sent], 0.5) <= 6
    assert not [p for name in ("spring", "winback") for p in (tmp_path / name).glob("*")]


def _row(name: str, **fields: object) -> Participant:
    row = Participant(
        name=name, host=socket.gethostname(), pid=os.getpid(), priority=1.0, requests=(),
        calls=(), joined=T0, heartbeat=T0, vtime=0.0, waiting=0, ready_at=None, call_due=None,
        last_call=None, calls_sent=0, requests_sent=0, state="active",
    )  # fmt: skip
    return dataclasses.replace(row, **fields)


def _dead_pid() -> int:
    process = subprocess.Popen([sys.executable, "-c", "pass"])
    process.wait()
    return process.pid


def test_a_participant_on_another_host_is_judged_by_its_heartbeat_not_a_local_pid(
    tmp_path: Path, pg_url: str
) -> None:
    db = _place(tmp_path, pg_url).allowance("https://api.example/v1", "avp_k").open()
    dead = _dead_pid()
    hostname = socket.gethostname()
    try:
        with db.transaction():
            # A machine with the same host name (another boot, another pid namespace),
            # whose pid happens not to exist here.
            db.put_participant(_row("twin", host=f"{hostname}#0123456789ab", pid=dead))
            db.put_participant(_row("remote", host="db-worker-2#ba9876543210", pid=dead))
            db.put_participant(_row("local-killed", pid=dead))  # this host: pid checked
            db.put_participant(_row("local-live"))
        with db.transaction():
            rows = {p.name: p for p in db.participants()}
    finally:
        db.close()
    assert rows["local-live"].host == hostname  # read back as this host
    live = {name for name, p in rows.items() if p.is_live(T0 + 1.0, 5.0)}
    assert live == {"twin", "remote", "local-live"}
    # once silent for longer than the TTL, the remote ones are gone too
    assert not rows["twin"].is_live(T0 + 6.0, 5.0)
    assert not rows["remote"].is_live(T0 + 6.0, 5.0)
    assert host_identity().startswith(f"{hostname}#")


def _no_password_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.delenv("PGPASSWORD", raising=False)
    monkeypatch.setenv("PGPASSFILE", str(tmp_path / "no-such-pgpass"))


def test_a_refused_connection_names_what_to_do_and_never_the_password(
    tmp_path: Path,
    pg_url_no_password: str,
    pg_password: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    _no_password_env(monkeypatch, tmp_path)
    wrong = pg_url_no_password.replace("@", f":{quote('not-' + pg_password, safe='')}@", 1)
    for url in (pg_url_no_password, wrong):
        place = _place(tmp_path, url)
        attempts = {
            "lock": lambda p=place: p.lock().acquire(),
            "opt-outs": lambda p=place: p.opt_outs().contains("+14155550100"),
            "calls": lambda p=place: p.call_ledger().times("+14155550100", 0),
            "allowance": lambda p=place: p.allowance("https://api.example/v1", "k").open(),
            "status": lambda p=place: p.allowances(),
        }
        for what, attempt in attempts.items():
            with pytest.raises(StateError) as failed:
                attempt()
            message = str(failed.value)
            assert pg_password not in message, what
            assert "PGPASSWORD" in message and "state_url" in message, (what, message)
            assert "cannot be reached" in message, (what, message)


def test_the_opt_out_reader_survives_a_dropped_connection(tmp_path: Path, pg_url: str) -> None:
    import psycopg

    opt_outs = _place(tmp_path, pg_url).opt_outs()
    assert not opt_outs.contains("+14155550100")  # this thread's connection, now kept
    opt_outs.add("+14155550100", campaign="c", row_key="k", now=T0)
    with psycopg.connect(pg_url, autocommit=True) as admin:
        ended = admin.execute(
            "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
            "WHERE datname = current_database() AND pid <> pg_backend_pid() "
            "AND application_name = 'campaign'"
        ).fetchone()
    assert ended is not None and ended[0] >= 1
    assert opt_outs.contains("+14155550100")  # asked again on a new connection
    opt_outs.close()
