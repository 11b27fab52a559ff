//! `runbook serve --check`: the config, and every runbook it names prepared as a run
//! would prepare it (plugins resolved, grants checked) with the parameters it would get.

use std::path::Path;

use runbook_executor::{RunError, Runner};
use serde_json::{Map, Value};

use crate::config::{self, ServeConfig};

/// What `--check` found: the config (when it parsed) and every problem as
/// `file:line:col: message`.
pub struct CheckReport {
    pub config: Option<ServeConfig>,
    pub errors: Vec<String>,
}

/// Where a schedule's own parameter is written, and its name.
struct OwnParams<'a> {
    path: &'a Path,
    text: &'a str,
    pointer: String,
    keys: &'a [String],
}

fn check_runbook(
    runner: &Runner,
    at: &str,
    what: &str,
    runbook: &Path,
    params: &Map<String, Value>,
    own: Option<OwnParams>,
    errors: &mut Vec<String>,
) {
    match runner.prepare(runbook) {
        Err(RunError::Invalid(m)) => {
            errors.push(format!(
                "{at}: {what}: runbook {} is invalid:",
                runbook.display()
            ));
            errors.extend(m.lines().map(|l| format!("  {l}")));
        }
        Err(e) => errors.push(format!(
            "{at}: {what}: runbook {}: {e:#}",
            runbook.display()
        )),
        Ok(p) => {
            // A parameter the runbook does not declare is a typo the run would ignore.
            if let Some(own) = own
                && !p.runbook.meta.parameters.is_empty()
            {
                let declared: Vec<&str> = p
                    .runbook
                    .meta
                    .parameters
                    .iter()
                    .map(|(k, _)| k.as_str())
                    .collect();
                for k in own.keys.iter().filter(|k| !declared.contains(&k.as_str())) {
                    let ptr = format!("{}/{}", own.pointer, runbook_engine::yaml::escape_token(k));
                    errors.push(format!(
                        "{}: {what}: '{k}' is not a parameter of {} (it declares {})",
                        config::entry_position(own.path, own.text, &ptr),
                        runbook.display(),
                        declared.join(", ")
                    ));
                }
            }
            if let Err(e) =
                runbook_engine::build_input(&p.runbook.meta, Value::Object(params.clone()), &[])
            {
                errors.push(format!("{at}: {what}: {e}"));
            }
        }
    }
}

pub fn check(path: &Path, runner: &Runner) -> CheckReport {
    let text = match std::fs::read_to_string(path) {
        Ok(t) => t,
        Err(e) => {
            return CheckReport {
                config: None,
                errors: vec![format!("{}: {e}", path.display())],
            };
        }
    };
    let cfg = match config::parse(path, &text) {
        Ok(c) => c,
        Err(e) => {
            return CheckReport {
                config: None,
                errors: e.0,
            };
        }
    };
    let mut errors = Vec::new();
    for env in &cfg.environments {
        let ptr = format!(
            "/Environments/{}",
            runbook_engine::yaml::escape_token(&env.name)
        );
        let at = config::entry_position(path, &text, &ptr);
        let mut params = env.params.clone();
        params.extend(env.failover_params.clone());
        check_runbook(
            runner,
            &at,
            &format!("environment '{}' failover", env.name),
            &env.failover_runbook,
            &params,
            None,
            &mut errors,
        );
    }
    for sc in &cfg.schedules {
        let ptr = format!(
            "/Schedules/{}",
            runbook_engine::yaml::escape_token(&sc.schedule.name)
        );
        let at = config::entry_position(path, &text, &ptr);
        check_runbook(
            runner,
            &at,
            &format!("schedule '{}'", sc.schedule.name),
            &sc.runbook,
            &sc.params,
            Some(OwnParams {
                path,
                text: &text,
                pointer: format!("{ptr}/Params"),
                keys: &sc.own_params,
            }),
            &mut errors,
        );
    }
    CheckReport {
        config: Some(cfg),
        errors,
    }
}
