//! Workflow variables (`Assign`, `$name`): scopes, evaluation and Step Functions' limits.
//!
//! Each scope (the top level, every Parallel branch and Map iteration) keeps its own
//! variables and reads those of the scopes around it (an iteration of a DISTRIBUTED Map reads
//! only its own, as in Step Functions). `Assign` is evaluated with the values as they were
//! when the state was entered and stored when the state is left, so new values are visible
//! from the next state on, never within the same `Assign`.

use super::*;

/// Step Functions' limit for one variable's value (serialized JSON).
pub const MAX_VARIABLE_BYTES: usize = 256 * 1024;
/// Step Functions' limit for all values of one `Assign`.
pub const MAX_ASSIGN_BYTES: usize = 256 * 1024;
/// Step Functions' limit for all variables stored by one execution.
pub const MAX_EXECUTION_VARIABLE_BYTES: usize = 10 * 1024 * 1024;

/// Variables visible from scope `sid`, innermost first.
pub(super) fn var_chain(scopes: &BTreeMap<Sid, Scope>, sid: Sid) -> Vec<&Map<String, Value>> {
    let mut v = Vec::new();
    let mut cur = scopes.get(&sid);
    while let Some(s) = cur {
        v.push(&s.vars);
        cur = match s.parent {
            Some((p, _)) if s.reads_parent => scopes.get(&p),
            _ => None,
        };
    }
    v
}

/// The values an `Assign` sets, evaluated with `value` as `$` (nothing is stored yet).
pub(super) fn assign_values(
    assign: Option<&Assign>,
    value: &Value,
    ctx: &Ctx,
    rng: &mut Rng,
) -> Result<Option<Map<String, Value>>, AslError> {
    let Some(a) = assign else { return Ok(None) };
    match dataflow::apply_parameters(&a.template, value, ctx, rng)? {
        Value::Object(m) => Ok(Some(m)),
        // The parser only accepts an object.
        other => Err(AslError::runtime(format!(
            "Assign must evaluate to an object, got {other}"
        ))),
    }
}

/// `what` ends with the verb: "... is", "... total".
fn too_big(what: String, n: usize, limit: usize, unit: &str) -> AslError {
    AslError::runtime(format!(
        "{what} {n} bytes, over the limit of {limit} bytes ({unit})"
    ))
}

impl Execution {
    /// [`assign_values`] for the current state of `sid` outside a state's own evaluation
    /// (a Catch's `Assign`, with the error output as `$`).
    pub(super) fn eval_assign(
        &mut self,
        sid: Sid,
        assign: Option<&Assign>,
        value: &Value,
    ) -> Result<Option<Map<String, Value>>, AslError> {
        if assign.is_none() {
            return Ok(None);
        }
        let scope = &self.scopes[&sid];
        let cur = scope.cur.as_ref().expect("current state");
        let ci = CtxInfo::at(
            &self.ctx,
            &self.input,
            self.redrive_count,
            &scope.machine.states[cur.state].name,
            cur,
        );
        let build = || ci.value();
        let chain = var_chain(&self.scopes, sid);
        let ctx = Ctx::lazy(&build, ci.exec_input).with_vars(&chain);
        assign_values(assign, value, &ctx, &mut self.rng)
    }

    /// Store assigned values in scope `sid` after Step Functions' size checks (a failed
    /// check is `States.Runtime` and stores nothing).
    pub(super) fn commit_assign(
        &mut self,
        sid: Sid,
        values: &Map<String, Value>,
    ) -> Result<(), AslError> {
        let (m, idx) = self.state_of(sid);
        let state = &m.states[idx].name;
        let sizes: Vec<usize> = values
            .values()
            .map(|v| serde_json::to_string(v).map_or(0, |s| s.len()))
            .collect();
        for ((name, _), n) in values.iter().zip(&sizes) {
            if *n > MAX_VARIABLE_BYTES {
                return Err(too_big(
                    format!("The value assigned to variable '{name}' in state '{state}' is"),
                    *n,
                    MAX_VARIABLE_BYTES,
                    "256 KiB per variable",
                ));
            }
        }
        let sum: usize = sizes.iter().sum();
        if sum > MAX_ASSIGN_BYTES {
            return Err(too_big(
                format!("The values assigned by state '{state}' total"),
                sum,
                MAX_ASSIGN_BYTES,
                "256 KiB per Assign",
            ));
        }
        let scope = &self.scopes[&sid];
        let replaced: usize = values.keys().filter_map(|k| scope.var_sizes.get(k)).sum();
        let total: usize = self
            .scopes
            .values()
            .flat_map(|s| s.var_sizes.values())
            .sum::<usize>()
            - replaced
            + sum;
        if total > MAX_EXECUTION_VARIABLE_BYTES {
            return Err(too_big(
                format!("After state '{state}', the execution's variables would total"),
                total,
                MAX_EXECUTION_VARIABLE_BYTES,
                "10 MiB per execution",
            ));
        }
        let scope = self.scopes.get_mut(&sid).expect("scope");
        for ((k, v), n) in values.iter().zip(sizes) {
            scope.vars.insert(k.clone(), v.clone());
            scope.var_sizes.insert(k.clone(), n);
        }
        Ok(())
    }

    /// The top-level scope's variables (what the next top-level state would read).
    pub fn variables(&self) -> Map<String, Value> {
        self.scopes
            .get(&0)
            .map(|s| s.vars.clone())
            .unwrap_or_default()
    }
}
