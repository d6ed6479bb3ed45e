"""The test servers themselves (tests/servers.py): real, on loopback only, and RabbitMQ keeps a
persistent message across a kill -9, as the fleet engine will rely on."""

from __future__ import annotations

import ipaddress
import uuid

from kombu import Connection, Exchange, Producer, Queue

from tests.servers import (
    CONSUMER_TIMEOUT_MS,
    PostgresServer,
    RabbitMQServer,
    listening_addresses,
    pid_alive,
)


def _all_loopback(addresses: set[tuple[str, int]]) -> bool:
    return all(ipaddress.ip_address(address).is_loopback for address, _ in addresses)


def test_postgres_listens_on_its_port_of_loopback_only(postgres: PostgresServer) -> None:
    addresses = listening_addresses(postgres.pids())
    assert ("127.0.0.1", postgres.port) in addresses
    assert _all_loopback(addresses), addresses
    with postgres.connect() as conn:
        version = conn.execute("SHOW server_version_num").fetchone()
    assert version is not None and str(version[0]).startswith("15")


def test_rabbitmq_listens_on_loopback_only_with_a_day_long_consumer_timeout(
    rabbitmq: RabbitMQServer,
) -> None:
    addresses = listening_addresses(rabbitmq.pids())
    ports = {port for _, port in addresses}
    # AMQP, Erlang distribution and EPMD: each ours, none on a wildcard or outside address.
    assert {rabbitmq.port, rabbitmq.dist_port, rabbitmq.epmd_port} <= ports
    assert _all_loopback(addresses), addresses
    timeout = rabbitmq.ctl("eval", "application:get_env(rabbit, consumer_timeout).")
    assert timeout.stdout.strip() == f"{{ok,{CONSUMER_TIMEOUT_MS}}}", timeout
    assert CONSUMER_TIMEOUT_MS > 24 * 3600 * 1000  # longer than the longest benchmark


def _queue() -> Queue:
    name = f"ovbench-smoke-{uuid.uuid4().hex[:8]}"
    return Queue(name, Exchange(name, type="direct", durable=True), routing_key=name, durable=True)


def _publish(url: str, queue: Queue, body: str, persistent: bool) -> None:
    with Connection(url, transport_options={"confirm_publish": True}) as conn:
        producer = Producer(conn.channel())
        producer.publish(
            {"body": body},
            exchange=queue.exchange,
            routing_key=queue.routing_key,
            declare=[queue],
            delivery_mode=2 if persistent else 1,
            serializer="json",
        )


def _take_all(url: str, queue: Queue) -> list[str]:
    """Every message now in the queue (acknowledged, so gone after)."""
    bodies = []
    with Connection(url) as conn:
        bound = queue(conn.channel())
        bound.declare()
        while (message := bound.get(no_ack=False)) is not None:
            bodies.append(message.payload["body"])
            message.ack()
    return bodies


def test_rabbitmq_delivers_and_keeps_a_persistent_message_across_kill_9(
    rabbitmq: RabbitMQServer,
) -> None:
    queue = _queue()
    _publish(rabbitmq.url, queue, "hello", persistent=True)
    assert _take_all(rabbitmq.url, queue) == ["hello"]
    assert _take_all(rabbitmq.url, queue) == []  # acknowledged: gone

    _publish(rabbitmq.url, queue, "run job 1", persistent=True)
    _publish(rabbitmq.url, queue, "transient", persistent=False)
    node = set(rabbitmq.pids()) - {rabbitmq.epmd_pid()}
    assert node
    rabbitmq.kill()  # SIGKILL to the node's process group: no clean shutdown
    assert not [pid for pid in node if pid_alive(pid)]
    rabbitmq.start()  # the same node name and data dir
    # The persistent message survived; the transient one died with the node (so it was one).
    assert _take_all(rabbitmq.url, queue) == ["run job 1"]
