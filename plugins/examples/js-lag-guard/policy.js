// js-lag-guard: a failover policy for runbook in JavaScript (the built-in lag-guard's rules,
// to start from). Built for the `policy` world, which imports `log` only: JS component
// tools keep every import of their world, and a policy needs no capability grant.
//
// Build: npm install && npm run build      (componentize-qjs: QuickJS, ~1.6 MB)
// Test:  runbook plugin test js_lag_guard.wasm --input @examples/primary-down.json
import { log } from 'runbook:plugin/log@0.1.0';

const truthy = (v) => v === true || (typeof v === 'string' && v.toLowerCase() === 'true');
const isObject = (v) => typeof v === 'object' && v !== null && !Array.isArray(v);

// The decision, as a pure function of the facts.
export function decide(facts) {
  const p = facts.Primary;
  const r = facts.Replica;
  if (!isObject(p) || !isObject(r)) {
    // Thrown {error, cause} is the step-error: an ASL error name Retry/Catch can match.
    throw { error: 'InvalidParameterValue', cause: 'policy input needs Primary and Replica objects' };
  }
  const primaryHealthy = p.Status === 'available' && truthy(p.Reachable);
  const lag = isObject(facts.Lag) && typeof facts.Lag.LagSeconds === 'number' ? facts.Lag.LagSeconds : null;
  const maxLag = typeof facts.MaxLagSeconds === 'number' ? facts.MaxLagSeconds : 60;
  const force = truthy(facts.Force);
  let decision;
  let reason;
  if (!r.Exists) {
    [decision, reason] = ['refuse', 'there is no replica to promote'];
  } else if (!r.IsReplica) {
    [decision, reason] = ['none', 'the replica is already standalone'];
  } else if (r.Status !== 'available') {
    [decision, reason] = ['refuse', `the replica is ${r.Status ?? 'unknown'}, not available`];
  } else if (force) {
    [decision, reason] = ['promote', 'forced by the operator'];
  } else if (primaryHealthy) {
    [decision, reason] = ['none', 'the primary is healthy'];
  } else if (lag !== null && lag > maxLag) {
    [decision, reason] = ['refuse', `replica lag ${lag.toFixed(1)} s exceeds ${maxLag.toFixed(1)} s; run with Force=true to accept`];
  } else if (lag !== null) {
    [decision, reason] = ['promote', `the primary is unhealthy and the replica lag ${lag.toFixed(1)} s is within ${maxLag.toFixed(1)} s`];
  } else if (truthy(facts.RequireLag)) {
    [decision, reason] = ['refuse', 'no replica lag measurement: cannot bound data loss'];
  } else {
    [decision, reason] = ['promote', 'the primary is unhealthy (no lag measurement)'];
  }
  return {
    Policy: 'js-lag-guard',
    Decision: decision,
    Reason: reason,
    LagSeconds: lag,
    MaxLagSeconds: maxLag,
    PrimaryHealthy: primaryHealthy,
    Forced: force,
  };
}

// The world's export: JSON in, JSON out.
export function run(input) {
  const out = decide(JSON.parse(input));
  log(out.Decision === 'refuse' ? 'warn' : 'info', `decision: ${out.Decision}: ${out.Reason}`);
  return JSON.stringify(out);
}
