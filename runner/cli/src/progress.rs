//! Progress on stderr: a live line (current state, elapsed time) on a terminal, plain
//! timestamped lines otherwise. Never on stdout, which belongs to results.

use std::io::{IsTerminal, Write};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use indicatif::{ProgressBar, ProgressStyle};
use runbook_engine::HistoryEvent;
use runbook_executor::{Outcome, Progress, Quiet};
use runbook_host::LogLevel;

pub fn for_terminal(json: bool) -> Arc<dyn Progress> {
    if json && !std::io::stderr().is_terminal() {
        return Arc::new(Quiet);
    }
    Arc::new(Live::new(std::io::stderr().is_terminal()))
}

struct Live {
    start: Instant,
    bar: Option<ProgressBar>,
    current: Mutex<String>,
}

impl Live {
    fn new(tty: bool) -> Live {
        let bar = tty.then(|| {
            let b = ProgressBar::new_spinner();
            b.set_style(ProgressStyle::with_template("{spinner} {elapsed:>4} {msg}").unwrap());
            b.enable_steady_tick(Duration::from_millis(100));
            b
        });
        Live {
            start: Instant::now(),
            bar,
            current: Mutex::new(String::new()),
        }
    }

    fn line(&self, text: String) {
        let stamp = format!("[{:>7.3}s]", self.start.elapsed().as_secs_f64());
        match &self.bar {
            Some(b) => b.println(format!("{stamp} {text}")),
            None => {
                let _ = writeln!(std::io::stderr(), "{stamp} {text}");
            }
        }
    }
}

fn summary(h: &HistoryEvent) -> Option<(String, bool)> {
    let v = serde_json::to_value(h).ok()?;
    let kind = v.get("type")?.as_str()?.to_string();
    let body = &v;
    let path = body.get("path").and_then(|p| p.as_str()).unwrap_or("");
    let text = match kind.as_str() {
        k if k.ends_with("StateEntered") => return Some((path.to_string(), true)),
        "TaskFailed"
        | "TaskTimedOut"
        | "MapIterationFailed"
        | "ParallelStateFailed"
        | "MapStateFailed" => format!(
            "{path}: {kind} {} {}",
            body.get("error").and_then(|e| e.as_str()).unwrap_or(""),
            body.get("cause").and_then(|e| e.as_str()).unwrap_or("")
        ),
        "TaskSucceeded" => format!("{path}: succeeded"),
        "RetryScheduled" => format!(
            "{path}: retry #{} in {:.1}s after {}",
            body.get("attempt").and_then(|e| e.as_u64()).unwrap_or(0),
            body.get("delay_seconds")
                .and_then(|e| e.as_f64())
                .unwrap_or(0.0),
            body.get("error").and_then(|e| e.as_str()).unwrap_or("")
        ),
        "Caught" => format!(
            "{path}: caught {} -> {}",
            body.get("error").and_then(|e| e.as_str()).unwrap_or(""),
            body.get("next").and_then(|e| e.as_str()).unwrap_or("")
        ),
        _ => return None,
    };
    Some((text, false))
}

impl Progress for Live {
    fn started(&self, id: &str, name: &str) {
        self.line(format!("execution {id} ({name}) started"));
    }

    fn history(&self, _id: &str, event: &HistoryEvent) {
        let Some((text, entered)) = summary(event) else {
            return;
        };
        if entered {
            *self.current.lock().unwrap() = text.clone();
            match &self.bar {
                Some(b) => b.set_message(text),
                None => self.line(format!("-> {text}")),
            }
        } else {
            self.line(text);
        }
    }

    fn log(&self, state: &str, level: LogLevel, message: &str) {
        if level >= LogLevel::Info {
            self.line(format!("{state}: {message}"));
        }
    }

    fn finished(&self, outcome: &Outcome) {
        if let Some(b) = &self.bar {
            b.finish_and_clear();
        }
        self.line(format!(
            "execution {} {}",
            outcome.execution_id, outcome.status
        ));
    }
}
