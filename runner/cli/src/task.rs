//! `runbook task success|failure|heartbeat TOKEN`: answers to `.waitForTaskToken` Tasks,
//! as Step Functions' SendTaskSuccess / SendTaskFailure / SendTaskHeartbeat. The answer
//! goes into the journal; the runner waiting on the token (this machine's `run`,
//! `resume` or `serve`, now or after a restart) takes it from there.

use std::io::Write;
use std::process::ExitCode;

use clap::Subcommand;
use runbook_journal::{Journal, TokenAnswer, now_ms};
use serde_json::{Value, json};

#[derive(Subcommand)]
pub enum TaskCommand {
    /// The Task succeeds with OUTPUT as its result (SendTaskSuccess).
    Success {
        token: String,
        /// The Task's result: JSON, or @file (default `{}`).
        #[arg(long, default_value = "{}")]
        output: String,
    },
    /// The Task fails with ERROR and CAUSE; Retry and Catch see ERROR (default
    /// `States.TaskFailed`) (SendTaskFailure).
    Failure {
        token: String,
        #[arg(long)]
        error: Option<String>,
        #[arg(long)]
        cause: Option<String>,
    },
    /// Reset the Task's HeartbeatSeconds clock (SendTaskHeartbeat).
    Heartbeat { token: String },
}

/// Exit 0 when the answer was recorded, 2 when it was refused (`InvalidToken`: unknown
/// token; `TaskTimedOut`: already answered, timed out or its execution ended;
/// `InvalidOutput`: not JSON).
pub fn run(journal: &Journal, command: &TaskCommand) -> anyhow::Result<ExitCode> {
    let (token, answer) = match command {
        TaskCommand::Success { token, output } => {
            let text = match output.strip_prefix('@') {
                Some(path) => match std::fs::read_to_string(path) {
                    Ok(t) => t,
                    Err(e) => return Ok(refuse("InvalidOutput", &format!("{path}: {e}"))),
                },
                None => output.clone(),
            };
            match serde_json::from_str::<Value>(&text) {
                Ok(v) => (token, TokenAnswer::Success(v)),
                Err(e) => {
                    return Ok(refuse(
                        "InvalidOutput",
                        &format!("--output is not JSON: {e}"),
                    ));
                }
            }
        }
        TaskCommand::Failure {
            token,
            error,
            cause,
        } => (
            token,
            TokenAnswer::Failure {
                error: error.clone().unwrap_or_else(|| "States.TaskFailed".into()),
                cause: cause.clone().unwrap_or_default(),
            },
        ),
        TaskCommand::Heartbeat { token } => (token, TokenAnswer::Heartbeat),
    };
    match journal.answer_task_token(token, &answer, now_ms())? {
        Ok(row) => {
            let what = match answer {
                TokenAnswer::Success(_) => "success",
                TokenAnswer::Failure { .. } => "failure",
                TokenAnswer::Heartbeat => "heartbeat",
            };
            println!(
                "{}",
                json!({"token": row.token, "execution_id": row.execution_id,
                       "state": row.state, "sent": what})
            );
            Ok(ExitCode::SUCCESS)
        }
        Err(refusal) => Ok(refuse(refusal.code(), &refusal.to_string())),
    }
}

fn refuse(code: &str, message: &str) -> ExitCode {
    let message = message
        .strip_prefix(&format!("{code}: "))
        .unwrap_or(message);
    let _ = writeln!(std::io::stderr(), "error: {code}: {message}");
    ExitCode::from(2)
}
