//! [`EtcdJournal`] as a [`TokenBackend`]: `.waitForTaskToken` tokens answered from any
//! machine, waited on by whichever runner owns the execution.
//!
//! ```text
//! <p>/tokens/<token>/row            TaskTokenRow at registration (owner, fenced create)
//! <p>/tokens/<token>/plugin-done    when the Task's plugin returned (owner)
//! <p>/tokens/<token>/answer         the answer: the first create wins (anyone)
//! <p>/tokens/<token>/hb/<at>-<n>    one heartbeat (anyone, while unanswered and open)
//! <p>/tokens/<token>/closed         why the Task stopped waiting (owner)
//! <p>/exec/<id>/tokens/<token>      index: the execution's tokens
//! ```
//!
//! An answer is one transaction that creates `answer` only while neither `answer` nor
//! `closed` exists, so two answers, or an answer racing a timeout, are decided by etcd
//! once; the view of a token is the merge of its keys.

use runbook_journal::{
    BackendResult, Fence, TOKEN_CLOSED, TOKEN_FAILED, TOKEN_SUCCEEDED, TaskTokenRow, TokenAnswer,
    TokenBackend, TokenRefusal,
};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::documents::{corrupt, retry, store, to_json};
use super::gameday::{nonce, tagged};
use super::{EtcdJournal, Inner};
use crate::client::{Compare, Op};
use crate::error::FleetError;

#[derive(Serialize, Deserialize)]
struct AnswerDoc {
    status: String,
    output: Option<Value>,
    error: Option<String>,
    cause: Option<String>,
    at_ms: i64,
}

impl Inner {
    fn token_key(&self, token: &str, rest: &str) -> String {
        // A token is ours (hex), but never let one reach into another's keys.
        format!(
            "{}/tokens/{}/{rest}",
            self.prefix,
            token.replace('%', "%25").replace('/', "%2F")
        )
    }

    /// The token as its keys say, `None` when it was never registered.
    async fn merged_token(&self, token: &str) -> BackendResult<Option<TaskTokenRow>> {
        let prefix = self.token_key(token, "");
        let kvs = self
            .fleet
            .client()
            .get_prefix(&prefix)
            .await
            .map_err(store)?;
        let mut row: Option<TaskTokenRow> = None;
        let mut plugin_done = None;
        let mut answer: Option<AnswerDoc> = None;
        let mut heartbeats = Vec::new();
        let mut closed: Option<String> = None;
        for kv in kvs {
            let part = String::from_utf8_lossy(&kv.key[prefix.len()..]).into_owned();
            let doc = self.read_doc("tokens", &kv.value).await?;
            match part.as_str() {
                "row" => row = Some(serde_json::from_slice(&doc).map_err(corrupt)?),
                "plugin-done" => {
                    plugin_done = Some(serde_json::from_slice::<i64>(&doc).map_err(corrupt)?)
                }
                "answer" => answer = Some(serde_json::from_slice(&doc).map_err(corrupt)?),
                "closed" => closed = Some(serde_json::from_slice(&doc).map_err(corrupt)?),
                p if p.starts_with("hb/") => {
                    heartbeats.push(serde_json::from_slice::<i64>(&doc).map_err(corrupt)?)
                }
                _ => {}
            }
        }
        let Some(mut r) = row else {
            return Ok(None);
        };
        r.plugin_done_ms = r.plugin_done_ms.or(plugin_done);
        r.heartbeats = heartbeats.len() as i64;
        r.last_heartbeat_ms = heartbeats.iter().copied().max();
        if let Some(a) = answer {
            r.status = a.status;
            r.output = a.output;
            r.error = a.error;
            r.cause = a.cause;
            r.answered_ms = Some(a.at_ms);
        }
        if let Some(reason) = closed {
            r.status = TOKEN_CLOSED.into();
            r.closed_reason = Some(reason);
        }
        r.heartbeats_seen = 0;
        Ok(Some(r))
    }

    /// Why `row` takes no answer, if it does not.
    async fn refusal(&self, row: &TaskTokenRow) -> BackendResult<Option<TokenRefusal>> {
        let timed_out = |reason: String| {
            Some(TokenRefusal::TaskTimedOut {
                token: row.token.clone(),
                reason,
            })
        };
        Ok(match row.status.as_str() {
            TOKEN_SUCCEEDED | TOKEN_FAILED => {
                timed_out(format!("already answered: {}", row.status))
            }
            TOKEN_CLOSED => timed_out(row.closed_reason.clone().unwrap_or_else(|| "closed".into())),
            _ => {
                let (head, _) = self.head(&row.execution_id).await?;
                (head.status != "RUNNING")
                    .then(|| format!("its execution is {}", head.status))
                    .and_then(timed_out)
            }
        })
    }
}

impl TokenBackend for EtcdJournal {
    fn register_task_token(&self, fence: &Fence, t: &TaskTokenRow) -> BackendResult<TaskTokenRow> {
        let inner = self.inner.clone();
        let fence = fence.clone();
        let t = t.clone();
        self.run(async move {
            if let Some(existing) = inner.merged_token(&t.token).await? {
                return Ok(existing);
            }
            let token = inner.token(&fence)?;
            let entries = [
                (inner.token_key(&t.token, "row"), tagged(&to_json(&t))),
                (
                    inner.exec_key(&t.execution_id, &format!("tokens/{}", t.token)),
                    tagged(b"true"),
                ),
            ];
            match retry(|| inner.fleet.guarded_create_all(&entries, &token)).await {
                // Another registration of the same token landed first: it is the one.
                Ok(_) | Err(FleetError::Conflict { .. }) => {}
                Err(e) => return Err(store(e)),
            }
            inner.merged_token(&t.token).await?.ok_or_else(|| {
                corrupt(format!(
                    "task token {} vanished after its registration",
                    t.token
                ))
            })
        })
    }

    fn task_token(&self, token: &str) -> BackendResult<Option<TaskTokenRow>> {
        let inner = self.inner.clone();
        let token = token.to_string();
        self.run(async move { inner.merged_token(&token).await })
    }

    fn task_token_plugin_done(&self, token: &str, at_ms: i64) -> BackendResult<()> {
        let inner = self.inner.clone();
        let key = inner.token_key(token, "plugin-done");
        self.run(async move { inner.put_plain(&key, &to_json(&at_ms)).await })
    }

    fn answer_task_token(
        &self,
        token: &str,
        answer: &TokenAnswer,
        at_ms: i64,
    ) -> BackendResult<Result<TaskTokenRow, TokenRefusal>> {
        let inner = self.inner.clone();
        let token = token.to_string();
        let answer = answer.clone();
        self.run(async move {
            let Some(row) = inner.merged_token(&token).await? else {
                return Ok(Err(TokenRefusal::InvalidToken(token)));
            };
            if let Some(r) = inner.refusal(&row).await? {
                return Ok(Err(r));
            }
            let (key, doc) = match &answer {
                TokenAnswer::Heartbeat => (
                    inner.token_key(&token, &format!("hb/{:020}-{}", at_ms.max(0), nonce())),
                    to_json(&at_ms),
                ),
                TokenAnswer::Success(v) => (
                    inner.token_key(&token, "answer"),
                    to_json(&AnswerDoc {
                        status: TOKEN_SUCCEEDED.into(),
                        output: Some(v.clone()),
                        error: None,
                        cause: None,
                        at_ms,
                    }),
                ),
                TokenAnswer::Failure { error, cause } => (
                    inner.token_key(&token, "answer"),
                    to_json(&AnswerDoc {
                        status: TOKEN_FAILED.into(),
                        output: None,
                        error: Some(error.clone()),
                        cause: Some(cause.clone()),
                        at_ms,
                    }),
                ),
            };
            let open = [
                Compare::CreateRevision(inner.token_key(&token, "answer"), 0),
                Compare::CreateRevision(inner.token_key(&token, "closed"), 0),
            ];
            let value = tagged(&doc);
            let put = [Op::Put {
                key: key.clone(),
                value: value.clone(),
                lease: 0,
            }];
            let r = retry(|| inner.fleet.client().txn(&open, &put, &[]))
                .await
                .map_err(store)?;
            let now = inner
                .merged_token(&token)
                .await?
                .ok_or_else(|| corrupt(format!("task token {token} vanished")))?;
            if r.succeeded {
                return Ok(Ok(now));
            }
            // A retry after an ambiguous answer finds its own answer in place.
            if let Ok(Some(kv)) = inner.fleet.client().get(&key).await
                && kv.value == value
            {
                return Ok(Ok(now));
            }
            Ok(Err(inner.refusal(&now).await?.unwrap_or_else(|| {
                TokenRefusal::TaskTimedOut {
                    token: token.clone(),
                    reason: "answered or closed concurrently".into(),
                }
            })))
        })
    }

    fn close_task_token(&self, token: &str, reason: &str) -> BackendResult<()> {
        let inner = self.inner.clone();
        let key = inner.token_key(token, "closed");
        let doc = to_json(&reason);
        self.run(async move {
            // The first close's reason stays.
            let absent = [Compare::CreateRevision(key.clone(), 0)];
            let put = [Op::Put {
                key: key.clone(),
                value: tagged(&doc),
                lease: 0,
            }];
            retry(|| inner.fleet.client().txn(&absent, &put, &[]))
                .await
                .map_err(store)?;
            Ok(())
        })
    }

    fn execution_task_tokens(&self, execution_id: &str) -> BackendResult<Vec<TaskTokenRow>> {
        let inner = self.inner.clone();
        let prefix = inner.exec_key(execution_id, "tokens/");
        self.run(async move {
            let kvs = inner
                .fleet
                .client()
                .get_prefix(&prefix)
                .await
                .map_err(store)?;
            let mut out = Vec::new();
            for kv in kvs {
                let token = String::from_utf8_lossy(&kv.key[prefix.len()..]).into_owned();
                if let Some(t) = inner.merged_token(&token).await? {
                    out.push(t);
                }
            }
            out.sort_by_key(|t| t.created_ms);
            Ok(out)
        })
    }
}
