"""No silent split (issue 14, item 5; docs/scale-out.md): instances do not merge their
state yet, so two of them must never share a consumer group unnoticed. Real servers
against a real broker (tansu):

- a second instance started in a group another instance already uses refuses to
  start: it exits with an error naming the group, the other consumer and the ways out,
  while the first keeps every partition and goes on consuming;
- an instance under a group id of its own is a full replica, and says so;
- two instances started at the same moment in one group never both go on consuming
  part of the partitions.

Restarting an instance on its own data directory after kill -9 (its old membership
still listed in the group) is not a second instance: `test_event_time.py`'s kill test
covers that it resumes.

Run: cargo build --release -p instabrand-server && python3 -m pytest e2e/test_group.py
"""
import time
from pathlib import Path

import pytest

from kafka_support import Broker, Server, as_records, generate, order_independent_state, wait_for

SPLIT = "is already used by"
# The rule waits for a session to time out before it calls a partial assignment a split
# (a restarted instance's killed predecessor holds partitions until then): short
# sessions and a grace just past them keep these tests quick.
QUICK = {"INSTABRAND_KAFKA__SPLIT_GRACE_MS": "8000"}


@pytest.fixture
def short_session(tmp_path):
    path = tmp_path / "short-session.toml"
    path.write_text('[kafka.client]\n"session.timeout.ms" = "6000"\n"heartbeat.interval.ms" = "1000"\n')
    return str(path)


@pytest.fixture
def broker():
    b = Broker()
    yield b
    b.stop()


def instance_of(server):
    return (Path(server.data_dir) / "instance-id").read_text().strip()


def wait_exit(server, timeout=60):
    """The exit code of a server expected to stop by itself."""
    deadline = time.time() + timeout
    while time.time() < deadline:
        if server.proc.poll() is not None:
            return server.proc.returncode
        time.sleep(0.2)
    raise AssertionError(f"the server is still running after {timeout} s:\n{server.output()}")


def test_a_second_instance_in_a_used_group_refuses_to_start_and_the_first_keeps_every_partition(
        broker, short_session):
    stream = as_records(generate(events=3000, users=80, seed=21))
    half = len(stream) // 2
    quick = {"env": QUICK, "args": ["--config", short_session]}
    first = Server(broker, group="shared", **quick)
    second = replica = None
    try:
        first.wait_connected()
        ends = broker.produce(stream[:half])
        first.wait_caught_up(broker, ends)

        second = Server(broker, group="shared", **quick)
        code = wait_exit(second)
        out = second.output()
        assert code != 0, out
        assert 'consumer group "shared" is already used by 1 other consumer' in out, out
        if "not named by the broker" not in out:
            assert f"instabrand-{instance_of(first)}" in out, "it names the other consumer:\n" + out
        assert "INSTABRAND_KAFKA__GROUP_ID" in out, "and says how to run a replica:\n" + out

        # The first instance never shared its partitions: it commits every one of them.
        ends.update(broker.produce(stream[half:]))
        first.wait_caught_up(broker, ends)
        assert first.health()["events_applied"] > 0
        assert "refused" not in first.kafka_health()["detail"]

        # Its own group: a full replica, with the same numbers.
        replica = Server(broker, group="replica", **quick)
        replica.wait_connected()
        replica.wait_caught_up(broker, ends)
        assert order_independent_state(replica) == order_independent_state(first)
        wait_for(lambda: "a full replica for its group" in replica.output(), timeout=30,
                 message="the replica to say it holds every partition")
    except BaseException:
        print(first.output())
        if replica:
            print(replica.output())
        print(broker.log())
        raise
    finally:
        for s in (first, second, replica):
            if s:
                s.stop()


def test_two_instances_started_together_in_one_group_never_both_consume_part_of_it(
        broker, short_session):
    stream = as_records(generate(events=2000, users=60, seed=22))
    broker.create_topics(sorted({topic for topic, _, _ in stream}), partitions=3)
    servers = [Server(broker, group="together", env=QUICK, args=["--config", short_session])
               for _ in range(2)]
    try:
        ends = broker.produce(stream)
        # Settled: whoever refused has exited; whoever runs must hold every partition.
        wait_for(lambda: any(s.proc.poll() is not None for s in servers), timeout=90,
                 message="one of the two to refuse")
        time.sleep(3)
        running = [s for s in servers if s.proc.poll() is None]
        refused = [s for s in servers if s.proc.poll() is not None]
        assert len(running) <= 1
        for s in refused:
            assert s.proc.returncode != 0
            assert SPLIT in s.output(), s.output()
        for s in running:
            # The one left consumes every partition: it commits all of them.
            s.wait_caught_up(broker, ends)
    except BaseException:
        for s in servers:
            print(s.output())
        print(broker.log())
        raise
    finally:
        for s in servers:
            s.stop()
