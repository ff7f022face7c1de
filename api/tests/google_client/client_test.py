"""Google's published Memorystore client (google-cloud-redis, REST transport) against a
Cacheplane API, as a team moving from Memorystore would use it: create, get, list (one
region and `locations/-`), update with a field mask, failover, get auth string, delete,
and an invalid request. Every result is checked; the AUTH string is checked against what
the API stores and against the engine itself (redis-cli).

Run by api/tests/google_client.rs, which starts the stack and passes, in the environment:
CACHEPLANE_API_URL (http://127.0.0.1:PORT), CACHEPLANE_TOKEN (a project token; never on
the command line), CACHEPLANE_PROJECT and CACHEPLANE_REGION. Exits non-zero on the first
failed check.
"""

import json
import os
import subprocess
import sys
import urllib.request

from google.api_core import exceptions
from google.api_core.client_options import ClientOptions
from google.cloud import redis_v1
from google.oauth2.credentials import Credentials
from google.protobuf import empty_pb2, field_mask_pb2

API_URL = os.environ["CACHEPLANE_API_URL"]
TOKEN = os.environ["CACHEPLANE_TOKEN"]
PROJECT = os.environ["CACHEPLANE_PROJECT"]
REGION = os.environ["CACHEPLANE_REGION"]
PARENT = f"projects/{PROJECT}/locations/{REGION}"
NAME = f"{PARENT}/instances/gcache"
TIMEOUT = 120

Instance = redis_v1.Instance


def check(ok, what, got=None):
    """Fails the run unless `ok`, saying what was expected and what came."""
    if not ok:
        print(f"FAILED: {what}" + (f"\n  got: {got}" if got is not None else ""))
        sys.exit(1)
    print(f"ok: {what}")


def cacheplane(path, query=""):
    """GET on the API without the Google client (its own form unless `query` asks
    otherwise): the body as a dict."""
    req = urllib.request.Request(
        f"{API_URL}/v1/{path}{query}", headers={"Authorization": f"Bearer {TOKEN}"}
    )
    with urllib.request.urlopen(req, timeout=30) as resp:
        return json.load(resp)


def primary_node(name):
    """The id of the node the API records as primary."""
    nodes = cacheplane(name)["nodes"]
    return next(n["id"] for n in nodes if n["role"] == "PRIMARY")


def check_operation(op, verb):
    """The metadata Google's operations carry, unpacked by the client."""
    meta = op.metadata
    check(isinstance(meta, redis_v1.OperationMetadata), f"{verb}: metadata unpacks", meta)
    check(meta.verb == verb and meta.target == NAME, f"{verb}: metadata names {verb} of {NAME}", meta)
    check(meta.api_version == "v1", f"{verb}: metadata apiVersion v1", meta)
    check(op.done(), f"{verb}: operation done")
    check(meta.end_time is not None and meta.end_time.timestamp() > 0, f"{verb}: metadata has endTime", meta)


def main():
    client = redis_v1.CloudRedisClient(
        credentials=Credentials(token=TOKEN),
        transport="rest",
        client_options=ClientOptions(api_endpoint=API_URL),
    )

    # A request the API refuses: the client raises the right class with the field named.
    try:
        client.create_instance(
            parent=PARENT,
            instance_id="gbad",
            instance=Instance(tier=Instance.Tier.BASIC, memory_size_gb=301),
        )
        check(False, "an oversized create is refused")
    except exceptions.BadRequest as e:
        bad_requests = [d for d in e.details if d.get("@type") == "type.googleapis.com/google.rpc.BadRequest"]
        fields = [v["field"] for d in bad_requests for v in d["fieldViolations"]]
        check(e.code == 400 and fields == ["memorySizeGb"], "an oversized create: 400 BadRequest, a google.rpc.BadRequest naming memorySizeGb", e)

    # Create: tier and modes go as numbers ("tier": 3), answers come back as numbers.
    op = client.create_instance(
        parent=PARENT,
        instance_id="gcache",
        instance=Instance(
            tier=Instance.Tier.STANDARD_HA,
            memory_size_gb=1,
            display_name="google client",
            labels={"env": "test"},
            # Memorystore's name of a VPC network.
            authorized_network=f"projects/{PROJECT}/global/networks/default",
            read_replicas_mode=Instance.ReadReplicasMode.READ_REPLICAS_DISABLED,
            transit_encryption_mode=Instance.TransitEncryptionMode.DISABLED,
        ),
    )
    check(op.operation.name.startswith(f"{PARENT}/operations/"), "create answers an operation", op.operation.name)
    created = op.result(timeout=TIMEOUT)
    check_operation(op, "create")
    check(created.name == NAME, "create: the operation's response is the instance", created.name)
    check(created.state == Instance.State.READY, "create: READY", created.state)
    check(created.tier == Instance.Tier.STANDARD_HA, "create: tier STANDARD_HA", created.tier)
    check(created.memory_size_gb == 1 and created.replica_count == 1, "create: 1 GB, 1 replica", created)
    check(created.host and created.port == 6379, "create: an endpoint", f"{created.host}:{created.port}")
    check(len(created.nodes) == 2 and len({n.zone for n in created.nodes}) == 2, "create: two nodes in two zones", created.nodes)
    check(created.current_location_id == created.location_id, "create: the primary in locationId", created)
    check(created.authorized_network == f"projects/{PROJECT}/networks/default", "create: the default network", created.authorized_network)

    got = client.get_instance(name=NAME)
    check(got.state == Instance.State.READY and got.tier == Instance.Tier.STANDARD_HA, "get: READY, STANDARD_HA", got)
    check(got.display_name == "google client" and dict(got.labels) == {"env": "test"}, "get: display name and labels", got)
    check(got.transit_encryption_mode == Instance.TransitEncryptionMode.DISABLED, "get: transit encryption DISABLED", got)
    check(got.read_replicas_mode == Instance.ReadReplicasMode.READ_REPLICAS_DISABLED, "get: read replicas DISABLED", got)
    check(got.auth_enabled, "get: AUTH on")

    # The wire itself: integer enums when asked for, names otherwise.
    wire = cacheplane(NAME, "?%24alt=json%3Benum-encoding%3Dint")
    check(wire["tier"] == 3 and wire["state"] == 2, "$alt=json;enum-encoding=int: tier 3, state 2", wire)
    wire = cacheplane(NAME)
    check(wire["tier"] == "STANDARD_HA" and wire["state"] == "READY", "no $alt: tier and state by name", wire)

    names = [i.name for i in client.list_instances(parent=PARENT)]
    check(names == [NAME], f"list {PARENT}", names)
    names = [i.name for i in client.list_instances(parent=f"projects/{PROJECT}/locations/-")]
    check(names == [NAME], "list locations/- (every region)", names)

    # Update with a field mask: size (the nodes change) and labels and display name.
    op = client.update_instance(
        update_mask=field_mask_pb2.FieldMask(paths=["memory_size_gb", "labels", "display_name"]),
        instance=Instance(name=NAME, memory_size_gb=2, labels={"env": "prod", "team": "cache"}, display_name="resized"),
    )
    updated = op.result(timeout=TIMEOUT)
    check_operation(op, "update")
    check(updated.state == Instance.State.READY and updated.memory_size_gb == 2, "update: READY at 2 GB", updated)
    check(dict(updated.labels) == {"env": "prod", "team": "cache"} and updated.display_name == "resized", "update: labels and display name replaced", updated)
    check(client.get_instance(name=NAME).memory_size_gb == 2, "get after update: 2 GB")

    # Failover through Google's custom method (POST …/instances/gcache:failover).
    before = primary_node(NAME)
    op = client.failover_instance(
        name=NAME,
        data_protection_mode=redis_v1.FailoverInstanceRequest.DataProtectionMode.LIMITED_DATA_LOSS,
    )
    failed_over = op.result(timeout=TIMEOUT)
    check_operation(op, "failover")
    check(failed_over.state == Instance.State.READY, "failover: READY", failed_over.state)
    after = primary_node(NAME)
    check(after != before, f"failover: the primary moved from {before}", after)
    check(
        failed_over.current_location_id == created.alternative_location_id,
        "failover: currentLocationId is the replica's zone",
        failed_over,
    )

    # The AUTH string: what the API stores, and what the engine takes.
    auth = client.get_instance_auth_string(name=NAME).auth_string
    stored = cacheplane(f"{NAME}/authString")["authString"]
    check(len(auth) == 32 and auth == stored, "get auth string: the one the API stores")
    cli = ["redis-cli", "-h", got.host, "-p", str(got.port)]
    env = dict(os.environ, REDISCLI_AUTH=auth)
    out = subprocess.run(cli + ["SET", "google", "client"], env=env, capture_output=True, text=True, timeout=30)
    check(out.stdout.strip() == "OK", "the engine takes the AUTH string and a write", out.stdout + out.stderr)
    wrong = dict(os.environ, REDISCLI_AUTH="not-" + auth)
    out = subprocess.run(cli + ["PING"], env=wrong, capture_output=True, text=True, timeout=30)
    check("PONG" not in out.stdout, "the engine refuses another AUTH string", out.stdout + out.stderr)

    # Delete: the operation's response is google.protobuf.Empty; the instance is gone.
    op = client.delete_instance(name=NAME)
    result = op.result(timeout=TIMEOUT)
    check_operation(op, "delete")
    check(isinstance(result, empty_pb2.Empty), "delete: the response is Empty", type(result))
    try:
        client.get_instance(name=NAME)
        check(False, "get after delete: NotFound")
    except exceptions.NotFound as e:
        check(e.code == 404, "get after delete: 404 NotFound", e)
    names = [i.name for i in client.list_instances(parent=f"projects/{PROJECT}/locations/-")]
    check(names == [], "list locations/- after delete: empty", names)
    print("google-cloud-redis client: every check passed")


if __name__ == "__main__":
    main()
