"""python-lag-guard: a failover policy for runbook in Python (the built-in lag-guard's rules, to
start from). Built for the `policy` world, which imports `log` only: componentize-py keeps
every import of its world, and a policy needs no capability grant.

Build: componentize-py -d wit -w policy componentize app -o python_lag_guard.wasm
Test:  runbook plugin test python_lag_guard.wasm --input @examples/primary-down.json
"""
import json

import wit_world
from componentize_py_types import Err
from wit_world.imports import log


def truthy(v):
    return v is True or (isinstance(v, str) and v.lower() == "true")


def decide(facts):
    p, r = facts.get("Primary"), facts.get("Replica")
    if not isinstance(p, dict) or not isinstance(r, dict):
        # An ASL error name: a runbook's Retry/Catch can match it.
        raise Err(wit_world.StepError(
            error="InvalidParameterValue",
            cause="policy input needs Primary and Replica objects"))
    primary_healthy = p.get("Status") == "available" and truthy(p.get("Reachable"))
    lag = (facts.get("Lag") or {}).get("LagSeconds")
    max_lag = facts.get("MaxLagSeconds", 60)
    force = truthy(facts.get("Force"))
    if not r.get("Exists"):
        decision, reason = "refuse", "there is no replica to promote"
    elif not r.get("IsReplica"):
        decision, reason = "none", "the replica is already standalone"
    elif r.get("Status") != "available":
        decision, reason = "refuse", f"the replica is {r.get('Status', 'unknown')}, not available"
    elif force:
        decision, reason = "promote", "forced by the operator"
    elif primary_healthy:
        decision, reason = "none", "the primary is healthy"
    elif lag is not None and lag > max_lag:
        decision, reason = "refuse", f"replica lag {lag:.1f} s exceeds {max_lag:.1f} s; run with Force=true to accept"
    elif lag is not None:
        decision, reason = "promote", f"the primary is unhealthy and the replica lag {lag:.1f} s is within {max_lag:.1f} s"
    elif truthy(facts.get("RequireLag")):
        decision, reason = "refuse", "no replica lag measurement: cannot bound data loss"
    else:
        decision, reason = "promote", "the primary is unhealthy (no lag measurement)"
    return {"Policy": "python-lag-guard", "Decision": decision, "Reason": reason,
            "LagSeconds": lag, "MaxLagSeconds": max_lag,
            "PrimaryHealthy": primary_healthy, "Forced": force}


class WitWorld(wit_world.WitWorld):
    def run(self, input: str) -> str:
        out = decide(json.loads(input))
        level = log.Level.WARN if out["Decision"] == "refuse" else log.Level.INFO
        log.log(level, f"decision: {out['Decision']}: {out['Reason']}")
        return json.dumps(out)
