"""moto's server (`moto_server`'s arguments: -H HOST -p PORT) with corrections where
moto differs from real AWS in a way the DR runbooks depend on.

Started by `Moto::start` in moto.rs (runbook-test-support); `Moto::start_unpatched`
runs plain `moto_server`, and runner/provider-aws/tests/moto.rs asserts that each gap
corrected here still exists there, so a moto release that fixes one makes that test
fail and the fix can go.
"""

import sys

import moto
from moto.rds.exceptions import DBInstanceNotFoundError
from moto.rds.models import RDSBackend
from moto.server import main

# The fixes replace moto internals: refuse to run on another version rather than patch
# code they were not written for.
WRITTEN_FOR = "5.2.5"
if moto.__version__ != WRITTEN_FOR:
    sys.exit(
        f"moto_fixes.py was written for moto {WRITTEN_FOR}, found {moto.__version__}: "
        "check each fix against the new version"
    )

_promote_read_replica = RDSBackend.promote_read_replica


def promote_read_replica(self, db_kwargs):
    # moto 5.2.5 only sets is_replica=False: DescribeDBInstances keeps reporting
    # ReadReplicaSourceDBInstanceIdentifier, and the source keeps listing the instance
    # in ReadReplicaDBInstanceIdentifiers. Real RDS clears both once the promoted
    # instance is standalone (failover's WaitStandalone waits for exactly that).
    db = self.databases.get(db_kwargs.get("db_instance_identifier"))
    source_id = db.source_db_instance_identifier if db is not None else None
    db = _promote_read_replica(self, db_kwargs)
    if source_id:
        try:
            # An identifier in this region or an ARN (cross-region replica).
            source = self.find_db_from_id(source_id)
        except DBInstanceNotFoundError:
            source = None  # deleted meanwhile: nothing lists the replica any more
        if source is not None:
            # moto lists a cross-region replica by ARN, a same-region one by identifier.
            for entry in (db.db_instance_arn, db.db_instance_identifier):
                if entry in source.replicas:
                    source.replicas.remove(entry)
        db.source_db_instance_identifier = None
    return db


RDSBackend.promote_read_replica = promote_read_replica

if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
