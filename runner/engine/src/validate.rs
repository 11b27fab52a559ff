//! Graph-level static checks (targets exist, reachability, terminal states). Field-level
//! checks (types, unknown fields, paths, intrinsics, Retry/Catch/Choice shapes) happen while
//! parsing; [`crate::parse_runbook`] runs both, so `validate` of a parsed runbook is empty
//! unless the machine was modified afterwards.

use crate::error::Diagnostic;
use crate::model::{Assign, StateKind, StateMachine};
use crate::parse::{Runbook, suggest};
use crate::yaml::escape_token;

/// All graph-level problems of a runbook.
pub fn validate(rb: &Runbook) -> Vec<Diagnostic> {
    let mut out = Vec::new();
    machine(rb, &rb.machine, &mut out);
    variable_scopes(rb, &rb.machine, &[], &mut out);
    out
}

/// Every `Assign` of a scope's own states (state, top-level Choice rules, catchers).
fn assigns(m: &StateMachine) -> Vec<(&str, &Assign)> {
    let mut v = Vec::new();
    for s in &m.states {
        v.extend(s.assign.iter().map(|a| (s.name.as_str(), a)));
        if let StateKind::Choice(c) = &s.kind {
            v.extend(
                c.choices
                    .iter()
                    .filter_map(|r| r.assign.as_ref())
                    .map(|a| (s.name.as_str(), a)),
            );
        }
        if let Some(o) = s.kind.outcome() {
            v.extend(
                o.catch
                    .iter()
                    .filter_map(|c| c.assign.as_ref())
                    .map(|a| (s.name.as_str(), a)),
            );
        }
    }
    v
}

/// Step Functions' scoping rule: a Map iteration or Parallel branch reads the variables of
/// enclosing scopes but cannot assign them — a variable assigned in an inner scope cannot
/// have the same name as one assigned in an outer scope.
fn variable_scopes(
    rb: &Runbook,
    m: &StateMachine,
    outer: &[(String, String)],
    out: &mut Vec<Diagnostic>,
) {
    let own = assigns(m);
    for (state, a) in &own {
        for name in &a.names {
            if let Some((_, by)) = outer.iter().find(|(n, _)| n == name) {
                let key = [name.clone(), format!("{name}.$")]
                    .into_iter()
                    .map(|k| format!("{}/{}", a.pointer, escape_token(&k)))
                    .find(|p| rb.source.value_pos(p).is_some())
                    .unwrap_or_else(|| a.pointer.clone());
                out.push(d(
                    rb,
                    &key,
                    Some(state),
                    "E-VAR-SCOPE",
                    format!("variable '{name}' is assigned in an outer scope (state '{by}'); a Map iteration or Parallel branch can read it but not assign it"),
                    false,
                ));
            }
        }
    }
    let mut scope: Vec<(String, String)> = outer.to_vec();
    for (state, a) in &own {
        for n in &a.names {
            if !scope.iter().any(|(x, _)| x == n) {
                scope.push((n.clone(), state.to_string()));
            }
        }
    }
    for s in &m.states {
        match &s.kind {
            StateKind::Parallel(p) => {
                for b in &p.branches {
                    variable_scopes(rb, b, &scope, out);
                }
            }
            StateKind::Map(mp) => variable_scopes(rb, &mp.processor, &scope, out),
            _ => {}
        }
    }
}

fn d(
    rb: &Runbook,
    ptr: &str,
    state: Option<&str>,
    code: &'static str,
    msg: String,
    value: bool,
) -> Diagnostic {
    let pos = if value {
        rb.source
            .value_pos(ptr)
            .unwrap_or_else(|| rb.source.pos(ptr))
    } else {
        rb.source.pos(ptr)
    };
    Diagnostic {
        file: rb.file_name.clone(),
        line: pos.line,
        col: pos.col,
        state: state.map(str::to_string),
        code,
        message: msg,
    }
}

fn machine(rb: &Runbook, m: &StateMachine, out: &mut Vec<Diagnostic>) {
    let names: Vec<&str> = m.states.iter().map(|s| s.name.as_str()).collect();
    let target = |t: &str| -> String {
        match suggest(t, names.iter().copied()) {
            Some(s) => format!("'{t}' is not a state in this scope (did you mean '{s}'?)"),
            None => format!("'{t}' is not a state in this scope"),
        }
    };
    if m.index_of(&m.start_at).is_none() && !m.start_at.is_empty() {
        out.push(d(
            rb,
            &format!("{}/StartAt", m.pointer),
            None,
            "E-STARTAT-MISSING",
            format!("StartAt {}", target(&m.start_at)),
            true,
        ));
    }
    // Edges of every state, checked for existence.
    let mut edges: Vec<Vec<usize>> = vec![Vec::new(); m.states.len()];
    for (i, s) in m.states.iter().enumerate() {
        let mut check = |t: &str, ptr: String, edges: &mut Vec<usize>| match m.index_of(t) {
            Some(j) => edges.push(j),
            None => out.push(d(
                rb,
                &ptr,
                Some(&s.name),
                "E-NEXT-MISSING",
                format!("Next {}", target(t)),
                true,
            )),
        };
        if let Some(n) = &s.next {
            check(n, format!("{}/Next", s.pointer), &mut edges[i]);
        }
        let catchers = match &s.kind {
            StateKind::Task(t) => &t.catch[..],
            StateKind::Parallel(p) => &p.catch[..],
            StateKind::Map(mp) => &mp.catch[..],
            _ => &[],
        };
        for c in catchers {
            check(&c.next, format!("{}/Next", c.pointer), &mut edges[i]);
        }
        match &s.kind {
            StateKind::Choice(c) => {
                for r in &c.choices {
                    if let Some(n) = &r.next {
                        check(n, format!("{}/Next", r.pointer), &mut edges[i]);
                    }
                }
                if let Some(dft) = &c.default {
                    check(dft, format!("{}/Default", s.pointer), &mut edges[i]);
                }
            }
            StateKind::Parallel(p) => {
                for b in &p.branches {
                    machine(rb, b, out);
                }
            }
            StateKind::Map(mp) => machine(rb, &mp.processor, out),
            _ => {}
        }
    }
    // Reachability from StartAt.
    if let Some(start) = m.index_of(&m.start_at) {
        let mut seen = vec![false; m.states.len()];
        let mut stack = vec![start];
        while let Some(i) = stack.pop() {
            if std::mem::replace(&mut seen[i], true) {
                continue;
            }
            stack.extend(edges[i].iter().copied().filter(|j| !seen[*j]));
        }
        for (i, s) in m.states.iter().enumerate() {
            if !seen[i] {
                out.push(d(
                    rb,
                    &s.pointer,
                    Some(&s.name),
                    "E-UNREACHABLE",
                    "state is not reachable from StartAt".into(),
                    false,
                ));
            }
        }
    }
    let terminal = m
        .states
        .iter()
        .any(|s| s.end || matches!(s.kind, StateKind::Succeed | StateKind::Fail(_)));
    if !terminal && !m.states.is_empty() {
        out.push(d(
            rb,
            &format!("{}/States", m.pointer),
            None,
            "E-NO-TERMINAL",
            "no terminal state: at least one state needs 'End: true' or must be a Succeed or Fail state".into(),
            false,
        ));
    }
}
