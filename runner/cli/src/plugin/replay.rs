//! Capability answers for `runbook plugin test`: from a fixture file, or from what a
//! past execution's journal recorded for one Task state.

use std::collections::BTreeSet;
use std::path::Path;
use std::sync::Mutex;

use anyhow::{Context, bail};
use runbook_caps::{BoxFuture, CapCall, CapError, ErrorKind, Provider};
use runbook_executor::Runner;
use serde_json::{Value, json};

/// One answer a replayed call can take.
#[derive(Debug, Clone)]
pub(super) struct Answer {
    service: String,
    action: String,
    /// Must be contained in the call (fixture `request`; journal region and resource).
    request: Option<Value>,
    /// Journal entries that kept their arguments: the call's audited arguments
    /// ([`runbook_host::audit_args`], redacted as the journal redacts) must equal these.
    args: Option<Value>,
    /// Ok(response), Err(capability error), or why there is none (journal rows of
    /// calls that succeeded: their results are not kept).
    outcome: Result<Result<Value, CapError>, String>,
    /// `fixture` or `journal <id>`.
    from: String,
}

/// Answers capability calls from fixtures and journal rows, and remembers what it could
/// not answer.
pub(super) struct ReplayProvider {
    answers: Mutex<Vec<(Answer, bool)>>,
    /// `execution <id>, state <S>` when replaying: names the journal in misses.
    replaying: Option<String>,
    misses: Mutex<Vec<String>>,
    answered: Mutex<Vec<String>>,
}

fn contains(call: &Value, want: &Value) -> bool {
    match (call, want) {
        (Value::Object(c), Value::Object(w)) => w
            .iter()
            .all(|(k, v)| c.get(k).is_some_and(|cv| contains(cv, v))),
        (c, w) => c == w,
    }
}

/// The call as one object, for matching and messages: its arguments plus `region` and
/// `resource`.
fn call_view(call: &CapCall) -> Value {
    let mut v = match &call.args {
        Value::Object(m) => Value::Object(m.clone()),
        Value::Null => json!({}),
        other => json!({ "args": other }),
    };
    if let Some(r) = &call.region {
        v["region"] = json!(r);
    }
    if let Some(r) = &call.resource {
        v["resource"] = json!(r);
    }
    v
}

impl ReplayProvider {
    pub(super) fn new(answers: &[Answer], replaying: Option<String>) -> ReplayProvider {
        ReplayProvider {
            answers: Mutex::new(answers.iter().cloned().map(|a| (a, false)).collect()),
            replaying,
            misses: Mutex::new(Vec::new()),
            answered: Mutex::new(Vec::new()),
        }
    }

    /// The calls nothing answered, as messages naming the call and its arguments.
    pub(super) fn misses(&self) -> Vec<String> {
        self.misses.lock().unwrap().clone()
    }

    /// Fixture entries no call took (`service:action`).
    pub(super) fn unused_fixtures(&self) -> Vec<String> {
        self.answers
            .lock()
            .unwrap()
            .iter()
            .filter(|(a, used)| !used && a.from == "fixture")
            .map(|(a, _)| format!("{}:{}", a.service, a.action))
            .collect()
    }
}

impl Provider for ReplayProvider {
    fn name(&self) -> &str {
        "replay"
    }

    fn call(&self, call: CapCall) -> BoxFuture<'_, Result<Value, CapError>> {
        let view = call_view(&call);
        let name = call.iam_name();
        let mut answers = self.answers.lock().unwrap();
        let audited = runbook_journal::redact(runbook_host::audit_args(&call.service, &call.args));
        let found = answers.iter_mut().find(|(a, used)| {
            !*used
                && a.service == call.service
                && a.action == call.action
                && a.request.as_ref().is_none_or(|r| contains(&view, r))
                && a.args.as_ref().is_none_or(|want| *want == audited)
        });
        let result = match found {
            Some((a, used)) => {
                *used = true;
                match &a.outcome {
                    Ok(r) => {
                        self.answered
                            .lock()
                            .unwrap()
                            .push(format!("{name} {view} <- {}", a.from));
                        r.clone()
                    }
                    Err(why) => {
                        self.misses
                            .lock()
                            .unwrap()
                            .push(format!("{name} {view}: {why}"));
                        Err(no_answer(&name, why))
                    }
                }
            }
            None => {
                let why = match &self.replaying {
                    Some(from) => {
                        let left: Vec<String> = answers
                            .iter()
                            .filter(|(a, used)| !used && a.from != "fixture")
                            .map(|(a, _)| {
                                format!(
                                    "{}:{} {}",
                                    a.service,
                                    a.action,
                                    a.args.as_ref().map(Value::to_string).unwrap_or_default()
                                )
                            })
                            .collect();
                        format!(
                            "neither --fixture nor the journal of {from} has this call (calls it recorded and not yet replayed: {})",
                            if left.is_empty() {
                                "none".to_string()
                            } else {
                                left.join("; ")
                            }
                        )
                    }
                    None => "no fixture entry matches it".to_string(),
                };
                let why = why.as_str();
                self.misses
                    .lock()
                    .unwrap()
                    .push(format!("{name} {view}: {why}"));
                Err(no_answer(&name, why))
            }
        };
        Box::pin(async move { result })
    }
}

fn no_answer(name: &str, why: &str) -> CapError {
    CapError::new(
        ErrorKind::Internal,
        "Replay.NoAnswer",
        format!("plugin test has no answer for {name}: {why}"),
    )
}

/// The WIT error kind a recorded AWS error code most likely had (the journal keeps the
/// code only).
fn kind_of(code: &str) -> ErrorKind {
    let c = code.to_ascii_lowercase();
    if c.contains("notfound") || c.starts_with("nosuch") {
        ErrorKind::NotFound
    } else if c.contains("alreadyexists") || c.contains("duplicate") {
        ErrorKind::AlreadyExists
    } else if c.contains("state") {
        ErrorKind::InvalidState
    } else if c.contains("invalidparameter") || c.contains("validation") {
        ErrorKind::InvalidParameter
    } else if c.contains("dependency") {
        ErrorKind::DependencyViolation
    } else if c.contains("quota") || c.contains("limitexceeded") {
        ErrorKind::QuotaExceeded
    } else if c.contains("throttl") || c.contains("toomanyrequests") {
        ErrorKind::Throttling
    } else if c.contains("accessdenied") || c.contains("unauthorized") {
        ErrorKind::AccessDenied
    } else if c.contains("unavailable") {
        ErrorKind::Unavailable
    } else {
        ErrorKind::Internal
    }
}

/// Fixture entries: `[{service, action, request?, response | error}]`, `error` being an
/// AWS code or `{code, message?, kind?, retryable?}`.
pub(super) fn fixture_answers(path: &Path) -> anyhow::Result<Vec<Answer>> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    let list: Vec<Value> = serde_json::from_str(&text)
        .with_context(|| format!("{}: expected a JSON list of answers", path.display()))?;
    list.into_iter()
        .enumerate()
        .map(|(i, e)| {
            let at = || format!("{} entry {i}", path.display());
            let s = |k: &str| {
                e[k].as_str()
                    .map(str::to_string)
                    .with_context(|| format!("{}: `{k}` (a string) is required", at()))
            };
            let outcome = match (e.get("response"), e.get("error")) {
                (Some(r), None) => Ok(r.clone()),
                (None, Some(Value::String(code))) => Err(CapError::new(
                    kind_of(code),
                    code.clone(),
                    format!("{code} (from {})", path.display()),
                )),
                (None, Some(err @ Value::Object(_))) => {
                    let code = err["code"]
                        .as_str()
                        .with_context(|| format!("{}: error.code is required", at()))?;
                    let kind = match err.get("kind") {
                        Some(k) => serde_json::from_value(k.clone()).with_context(|| {
                            format!("{}: error.kind is one of NotFound, AlreadyExists, InvalidState, InvalidParameter, DependencyViolation, QuotaExceeded, Throttling, AccessDenied, Unavailable, Internal", at())
                        })?,
                        None => kind_of(code),
                    };
                    let mut ce = CapError::new(
                        kind,
                        code,
                        err["message"].as_str().unwrap_or(code).to_string(),
                    );
                    if let Some(r) = err["retryable"].as_bool() {
                        ce.retryable = r;
                    }
                    Err(ce)
                }
                _ => bail!("{}: give exactly one of `response` and `error`", at()),
            };
            Ok(Answer {
                service: s("service")?,
                action: s("action")?,
                request: e.get("request").cloned(),
                args: None,
                outcome: Ok(outcome),
                from: "fixture".into(),
            })
        })
        .collect()
}

/// What a past execution recorded for one Task state.
pub(super) struct Recorded {
    pub(super) input: Value,
    pub(super) grants: Option<Vec<String>>,
    pub(super) answers: Vec<Answer>,
    /// `{output}` or `{error, cause}` of that attempt, when it ended.
    pub(super) result: Option<Value>,
}

pub(super) fn recorded(runner: &Runner, id: &str, state: &str) -> anyhow::Result<Recorded> {
    let journal = runner.journal();
    let row = journal
        .resolve(id)
        .with_context(|| format!("execution {id}"))?;
    let history = journal.history(&row.id)?;
    let is_state = |h: &runbook_journal::HistoryRow| {
        h.state.as_deref() == Some(state)
            || h.details["name"].as_str() == Some(state)
            || h.details["path"].as_str() == Some(state)
    };
    // The last attempt of the state: the facts it finally decided on.
    let Some(start) = history
        .iter()
        .rposition(|h| h.kind == "TaskScheduled" && is_state(h))
    else {
        let tasks: BTreeSet<&str> = history
            .iter()
            .filter(|h| h.kind == "TaskScheduled")
            .filter_map(|h| h.state.as_deref().or(h.details["name"].as_str()))
            .collect();
        bail!(
            "execution {} never scheduled a Task state '{state}' (its Tasks: {})",
            row.id,
            tasks.into_iter().collect::<Vec<_>>().join(", ")
        );
    };
    let scheduled = &history[start];
    let until = history[start + 1..]
        .iter()
        .find(|h| h.kind == "TaskScheduled" && is_state(h))
        .map(|h| h.at_ms);
    let result = history[start + 1..]
        .iter()
        .find(|h| {
            is_state(h)
                && matches!(
                    h.kind.as_str(),
                    "TaskSucceeded" | "TaskFailed" | "TaskTimedOut"
                )
        })
        .map(|h| match h.kind.as_str() {
            "TaskSucceeded" => json!({ "output": h.details["output"] }),
            _ => json!({ "error": h.details["error"], "cause": h.details["cause"] }),
        });
    let answers = journal
        .calls(&row.id)?
        .into_iter()
        .filter(|c| {
            (c.state == state || c.state.rsplit('/').next() == Some(state))
                && c.at_ms >= scheduled.at_ms
                && until.is_none_or(|u| c.at_ms < u)
        })
        .map(|c| {
            let mut request = json!({});
            if let Some(r) = &c.region {
                request["region"] = json!(r);
            }
            if let Some(r) = &c.resource {
                request["resource"] = json!(r);
            }
            let name = format!("{}:{}", c.service, c.action);
            let kept_error = c
                .result
                .clone()
                .and_then(|r| serde_json::from_value::<CapError>(r).ok());
            let outcome = match (c.outcome.as_str(), c.result, kept_error, &c.error_code) {
                ("ok", Some(result), _, _) => Ok(Ok(result)),
                ("error", _, Some(error), _) => Ok(Err(error)),
                // Journals written before results were kept: the code only.
                ("error", _, None, Some(code)) => Ok(Err(CapError::new(
                    kind_of(code),
                    code.clone(),
                    format!("{code} (replayed from execution {})", row.id),
                ))),
                ("ok", None, _, _) => Err(format!(
                    "execution {} recorded that {name} succeeded but kept no result (a journal \
                     from before results were kept, or a result over {} KiB): give its response \
                     in --fixture",
                    row.id,
                    runbook_journal::MAX_CALL_RESULT_BYTES >> 10
                )),
                (other, ..) => Err(format!(
                    "execution {} recorded {name} as {other}: nothing to replay",
                    row.id
                )),
            };
            Answer {
                service: c.service,
                action: c.action,
                request: Some(request),
                args: c.args,
                outcome,
                from: format!("journal {}", row.id),
            }
        })
        .collect();
    let grants = runbook_engine::parse_runbook(&row.runbook_path, &row.runbook_text)
        .ok()
        .and_then(|rb| {
            rb.tasks()
                .into_iter()
                .find(|t| t.state_name == state || t.path == state)
                .map(|t| t.capabilities)
        });
    Ok(Recorded {
        input: scheduled.details["input"].clone(),
        grants,
        answers,
        result,
    })
}
