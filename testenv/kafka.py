"""Apache Kafka, single node KRaft (broker + controller), ACLs enforced.

Clients and the controller channel use SASL_PLAINTEXT with PLAIN on loopback; the
StandardAuthorizer denies anything without an ACL (allow.everyone.if.no.acl.found=false),
`admin` is the only super user, so `orchestrator` and `analytics-service` can do exactly
what ACLs grant them.
"""

from __future__ import annotations

import base64
import logging
import uuid
from pathlib import Path

from testenv import build, config
from testenv.context import Context
from testenv.proc import ComponentError, port_open, run, spawn, wait_for

HEAP = ["-Xms128m", "-Xmx512m"]

# librdkafka logs every refused connection to stderr; readiness probes expect refusals.
_QUIET = logging.getLogger("testenv.kafka.probe")
_QUIET.addHandler(logging.NullHandler())
_QUIET.propagate = False


def prepare(ctx: Context) -> dict[str, Path]:
    """Fetch (or find cached) the broker jars and a java launcher."""
    libs = build.kafka(ctx.cache, ctx.logs, ctx.report)
    return {"kafka": libs, "java": Path(build.java(ctx.logs))}


def _jaas() -> str:
    admin = config.KAFKA_SUPERUSER
    users = " ".join(f'user_{name}="{pw}"' for name, pw in config.KAFKA_USERS.items())
    return (
        "org.apache.kafka.common.security.plain.PlainLoginModule required "
        f'username="{admin}" password="{config.KAFKA_USERS[admin]}" {users};'
    )


def _properties(ctx: Context, broker: int, controller: int, data: Path,
                advertised: str | None = None) -> str:
    jaas = _jaas()
    props = {
        "process.roles": "broker,controller",
        "node.id": "1",
        "controller.quorum.voters": f"1@127.0.0.1:{controller}",
        "listeners": f"SASL_PLAINTEXT://127.0.0.1:{broker},CONTROLLER://127.0.0.1:{controller}",
        "advertised.listeners": f"SASL_PLAINTEXT://{advertised or f'127.0.0.1:{broker}'}",
        "listener.security.protocol.map": "SASL_PLAINTEXT:SASL_PLAINTEXT,CONTROLLER:SASL_PLAINTEXT",
        "inter.broker.listener.name": "SASL_PLAINTEXT",
        "controller.listener.names": "CONTROLLER",
        "sasl.enabled.mechanisms": "PLAIN",
        "sasl.mechanism.inter.broker.protocol": "PLAIN",
        "sasl.mechanism.controller.protocol": "PLAIN",
        "listener.name.sasl_plaintext.plain.sasl.jaas.config": jaas,
        "listener.name.controller.plain.sasl.jaas.config": jaas,
        "authorizer.class.name": "org.apache.kafka.metadata.authorizer.StandardAuthorizer",
        "super.users": f"User:{config.KAFKA_SUPERUSER}",
        "allow.everyone.if.no.acl.found": "false",
        "log.dirs": str(data),
        "num.partitions": "1",
        "default.replication.factor": "1",
        "min.insync.replicas": "1",
        "offsets.topic.replication.factor": "1",
        "offsets.topic.num.partitions": "3",
        "transaction.state.log.replication.factor": "1",
        "transaction.state.log.min.isr": "1",
        "share.coordinator.state.topic.replication.factor": "1",
        "share.coordinator.state.topic.min.isr": "1",
        "group.initial.rebalance.delay.ms": "0",
        "auto.create.topics.enable": "false",
        "num.network.threads": "2",
        "num.io.threads": "4",
        "log.retention.check.interval.ms": "300000",
    }
    return "".join(f"{key}={value}\n" for key, value in props.items())


LOG4J2 = """\
# Console logging only (the launcher sends it to .testenv/logs/kafka.log).
status = warn
appender.console.type = Console
appender.console.name = STDOUT
appender.console.layout.type = PatternLayout
appender.console.layout.pattern = [%d] %p %m (%c)%n
rootLogger.level = INFO
rootLogger.appenderRef.stdout.ref = STDOUT
logger.kafka.name = kafka
logger.kafka.level = INFO
logger.apache.name = org.apache.kafka
logger.apache.level = INFO
logger.authorizer.name = kafka.authorizer.logger
logger.authorizer.level = INFO
"""


def start(ctx: Context, artifacts: dict[str, Path], advertised: str | None = None) -> None:
    """Write the config, format storage once (KRaft), spawn `kafka.Kafka`.

    ``advertised`` (host:port) is the address clients are told to use instead of the
    listener itself: the fault tests put a proxy there (tests/reliability/test_faults.py).
    """
    proc = ctx.process("kafka")
    broker = ctx.port("kafka", "broker")
    controller = ctx.port("kafka", "controller")
    conf = ctx.home / "kafka"
    data = ctx.home / "data/kafka"
    conf.mkdir(parents=True, exist_ok=True)
    (conf / "server.properties").write_text(
        _properties(ctx, broker, controller, data, advertised))
    (conf / "log4j2.properties").write_text(LOG4J2)
    java = str(artifacts["java"])
    classpath = str(artifacts["kafka"] / "libs/*")
    jvm = [
        java,
        *HEAP,
        "-XX:+UseG1GC",
        "-XX:MaxGCPauseMillis=20",
        "-XX:+ExitOnOutOfMemoryError",
        "-Djava.awt.headless=true",
        f"-Dlog4j2.configurationFile={conf / 'log4j2.properties'}",
        f"-Dkafka.logs.dir={ctx.logs}",
        "-cp",
        classpath,
    ]
    if not (data / "meta.properties").exists():
        # As Kafka's own Uuid.randomUuid: an id starting with "-" would read as a flag.
        cluster_id = "-"
        while cluster_id.startswith("-"):
            cluster_id = base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=")
        run(
            [*jvm, "kafka.tools.StorageTool", "format", "-t", cluster_id,
             "-c", str(conf / "server.properties"), "--ignore-formatted"],
            component="kafka",
            log=ctx.log_path("kafka-format"),
            timeout=120,
        )  # fmt: skip
    proc.update(binary=java, log=str(ctx.log_path("kafka")))
    proc["pid"], proc["start"] = spawn(
        [*jvm, "kafka.Kafka", str(conf / "server.properties")], ctx.log_path("kafka"), home=ctx.home
    )
    admin = config.KAFKA_SUPERUSER
    ctx.state["kafka"] = {
        "bootstrap": advertised or f"127.0.0.1:{broker}",
        "version": config.kafka_version(),
        "security_protocol": "SASL_PLAINTEXT",
        "sasl_mechanism": "PLAIN",
        "admin_user": admin,
        "users": dict(config.KAFKA_USERS),
    }
    ctx.save()


def client_config(info: dict[str, object], user: str | None = None) -> dict[str, object]:
    """confluent-kafka settings for one principal (admin by default)."""
    users = info["users"]
    assert isinstance(users, dict)
    name = user or str(info["admin_user"])
    return {
        "bootstrap.servers": info["bootstrap"],
        "security.protocol": info["security_protocol"],
        "sasl.mechanism": info["sasl_mechanism"],
        "sasl.username": name,
        "sasl.password": users[name],
    }


def _metadata_ok(info: dict[str, object]) -> bool:
    host, port = str(info["bootstrap"]).rsplit(":", 1)
    if not port_open(int(port), host):
        return False  # not listening yet: no client (and no client log noise) needed
    try:
        from confluent_kafka.admin import AdminClient
    except ImportError as exc:  # the testenv runs in the project venv, which has it
        raise ComponentError("kafka", "confluent-kafka is not installed (make install)") from exc
    admin = AdminClient({**client_config(info), "socket.timeout.ms": 3000, "logger": _QUIET})
    metadata = admin.list_topics(timeout=3)
    return bool(metadata.brokers)


def wait(ctx: Context) -> None:
    """Wait until the broker answers a metadata request as `admin` over SASL."""
    proc = ctx.process("kafka")
    wait_for(
        lambda: _metadata_ok(ctx.state["kafka"]),
        what="a SASL metadata request as admin",
        component="kafka",
        timeout=120,
        log=ctx.log_path("kafka"),
        pid=proc["pid"],
        started=proc["start"],
        interval=0.5,
    )


def healthy(ctx: Context) -> bool:
    """Whether the recorded broker still answers."""
    try:
        return _metadata_ok(ctx.state["kafka"])
    except Exception:
        return False
