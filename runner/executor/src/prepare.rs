//! Checking a runbook before anything runs: parse and validate it, resolve every
//! Task's plugin and check its imports against the Task's grants, and resolve child
//! runbooks (Tasks that start another runbook as a child execution) recursively.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use runbook_caps::Grants;
use runbook_engine::dataflow::Template;
use runbook_engine::{Resource, Runbook, TaskRef};
use serde_json::Value;

use crate::{RunError, Runner, plugins};

/// Step Functions' own resources for starting a nested state machine and waiting for
/// it: `.sync:2` returns the child's output as JSON, `.sync` as a string.
pub const START_EXECUTION_SYNC2: &str = "arn:aws:states:::states:startExecution.sync:2";
pub const START_EXECUTION_SYNC: &str = "arn:aws:states:::states:startExecution.sync";

/// A runbook checked and ready to run: every plugin compiled and its grants checked,
/// every child runbook named literally checked the same way.
pub struct Prepared {
    pub runbook: Runbook,
    pub path: PathBuf,
    pub text: String,
    pub(crate) tasks: Vec<PreparedTask>,
}

pub(crate) struct PreparedTask {
    pub(crate) path: String,
    pub(crate) state_name: String,
    pub(crate) resource: Resource,
    pub(crate) runs: Runs,
}

/// What a Task runs.
pub(crate) enum Runs {
    Plugin {
        plugin: Arc<runbook_host::Plugin>,
        grants: Grants,
    },
    /// Another runbook, as a child execution.
    Child {
        /// `.sync:2` (output as JSON) rather than `.sync` (output as a string).
        json_output: bool,
        /// The child, when `StateMachineArn` is a literal (checked here); otherwise it
        /// is resolved and checked when the Task runs.
        child: Option<Arc<Prepared>>,
    },
}

impl Prepared {
    /// Plugins by Task path, for `runbook plan` and inspection.
    pub fn task_plugins(&self) -> impl Iterator<Item = (&str, &runbook_host::Plugin, &Grants)> {
        self.tasks.iter().filter_map(|t| match &t.runs {
            Runs::Plugin { plugin, grants } => Some((t.path.as_str(), plugin.as_ref(), grants)),
            Runs::Child { .. } => None,
        })
    }

    /// Child runbooks named literally, by Task path.
    pub fn child_runbooks(&self) -> impl Iterator<Item = (&str, &Prepared)> {
        self.tasks.iter().filter_map(|t| match &t.runs {
            Runs::Child { child: Some(c), .. } => Some((t.path.as_str(), c.as_ref())),
            _ => None,
        })
    }

    /// The directory relative paths in this runbook (plugins, child runbooks) start from.
    pub fn base_dir(&self) -> PathBuf {
        self.path
            .parent()
            .map(Path::to_path_buf)
            .unwrap_or_default()
    }

    pub(crate) fn task_for(
        &self,
        state_path: &str,
        state_name: &str,
        resource: &Resource,
    ) -> Option<&PreparedTask> {
        let key = normalize_path(state_path);
        self.tasks.iter().find(|t| t.path == key).or_else(|| {
            let mut same = self
                .tasks
                .iter()
                .filter(|t| t.state_name == state_name && &t.resource == resource);
            match (same.next(), same.next()) {
                (Some(t), None) => Some(t),
                _ => None,
            }
        })
    }
}

/// `Some(json_output)` when a Resource starts a child execution.
pub(crate) fn child_resource(r: &Resource) -> Option<bool> {
    match r {
        Resource::Other(s) if s == START_EXECUTION_SYNC2 => Some(true),
        Resource::Other(s) if s == START_EXECUTION_SYNC => Some(false),
        _ => None,
    }
}

/// A literal `StateMachineArn` in a Task's Parameters.
fn literal_state_machine(t: &TaskRef) -> Result<Option<String>, String> {
    let Some(Template::Object(fields)) = &t.parameters else {
        return Err("a child execution needs Parameters with StateMachineArn".into());
    };
    for (k, v) in fields {
        match (k.as_str(), v) {
            ("StateMachineArn", Template::Lit(Value::String(s))) => return Ok(Some(s.clone())),
            ("StateMachineArn", Template::Lit(other)) => {
                return Err(format!("StateMachineArn must be a string, got {other}"));
            }
            ("StateMachineArn", _) => return Ok(None),
            _ => {}
        }
    }
    Err("Parameters must name the child runbook: StateMachineArn: <path to a runbook>".into())
}

/// A child runbook's file: a path relative to the parent runbook's directory (a
/// Step Functions state machine ARN names the runbook `NAME.yaml` or `NAME.json` there).
pub fn resolve_child_path(base: &Path, arn: &str) -> Result<PathBuf, String> {
    if let Some(name) = arn
        .strip_prefix("arn:aws:states:")
        .and_then(|rest| rest.split(":stateMachine:").nth(1))
    {
        for ext in ["yaml", "yml", "json"] {
            let p = base.join(format!("{name}.{ext}"));
            if p.is_file() {
                return Ok(p);
            }
        }
        return Err(format!(
            "state machine '{name}': no {name}.yaml or {name}.json next to this runbook ({})",
            base.display()
        ));
    }
    let p = Path::new(arn);
    let p = if p.is_absolute() {
        p.to_path_buf()
    } else {
        base.join(p)
    };
    if p.is_file() {
        Ok(p)
    } else {
        Err(format!(
            "child runbook {} not found (StateMachineArn is resolved from the directory of the parent runbook)",
            p.display()
        ))
    }
}

impl Runner {
    /// Read, parse, validate, resolve plugins and child runbooks, check grants.
    pub fn prepare(&self, path: &Path) -> Result<Prepared, RunError> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| RunError::Invalid(format!("{}: cannot read: {e}", path.display())))?;
        self.prepare_text(path, text)
    }

    pub fn prepare_text(&self, path: &Path, text: String) -> Result<Prepared, RunError> {
        self.prepare_nested(path, text, &mut Vec::new())
    }

    fn prepare_nested(
        &self,
        path: &Path,
        text: String,
        stack: &mut Vec<PathBuf>,
    ) -> Result<Prepared, RunError> {
        let display = path.display().to_string();
        let runbook = runbook_engine::parse_runbook(&display, &text).map_err(|d| {
            RunError::Invalid(
                d.iter()
                    .map(|x| x.to_string())
                    .collect::<Vec<_>>()
                    .join("\n"),
            )
        })?;
        let base = path.parent().map(Path::to_path_buf).unwrap_or_default();
        let canonical = std::fs::canonicalize(path).unwrap_or_else(|_| path.to_path_buf());
        stack.push(canonical);
        let mut problems = Vec::new();
        let mut tasks = Vec::new();
        for t in runbook.tasks() {
            let diag = |msg: String| runbook.diag(t.pos, msg).to_string();
            let runs = if let Some(json_output) = child_resource(&t.resource) {
                match self.prepare_child(&t, &base, stack) {
                    Ok(child) => Runs::Child { json_output, child },
                    Err(e) => {
                        problems.push(diag(format!("state '{}': {e}", t.state_name)));
                        continue;
                    }
                }
            } else {
                match self.prepare_plugin(&t, &base) {
                    Ok(r) => r,
                    Err(e) => {
                        problems.push(diag(e));
                        continue;
                    }
                }
            };
            tasks.push(PreparedTask {
                path: t.path,
                state_name: t.state_name,
                resource: t.resource,
                runs,
            });
        }
        stack.pop();
        if !problems.is_empty() {
            return Err(RunError::Invalid(problems.join("\n")));
        }
        Ok(Prepared {
            runbook,
            path: path.to_path_buf(),
            text,
            tasks,
        })
    }

    fn prepare_plugin(&self, t: &TaskRef, base: &Path) -> Result<Runs, String> {
        let grants = Grants::parse(&t.capabilities)
            .map_err(|(i, e)| format!("state '{}': Capabilities[{i}]: {e}", t.state_name))?;
        let bytes = plugins::resolve_plugin(&t.resource, base, &self.config.plugin_path)
            .map_err(|e| format!("state '{}': {e}", t.state_name))?;
        let name = plugins::display_name(&t.resource);
        let plugin = self
            .host()
            .map_err(|e| e.to_string())?
            .load(&name, &bytes, t.sha256.as_deref())
            .map_err(|e| format!("state '{}': {e}", t.state_name))?;
        plugin
            .check_grants(&t.state_name, &grants)
            .map_err(|e| e.to_string())?;
        Ok(Runs::Plugin { plugin, grants })
    }

    /// Check a child runbook named literally (recursively, refusing cycles).
    fn prepare_child(
        &self,
        t: &TaskRef,
        base: &Path,
        stack: &mut Vec<PathBuf>,
    ) -> Result<Option<Arc<Prepared>>, String> {
        if !t.capabilities.is_empty() {
            return Err(
                "a child execution takes no Capabilities: each Task of the child runbook has its own grants"
                    .into(),
            );
        }
        let Some(arn) = literal_state_machine(t)? else {
            return Ok(None);
        };
        let path = resolve_child_path(base, &arn)?;
        let canonical = std::fs::canonicalize(&path).unwrap_or_else(|_| path.clone());
        if stack.contains(&canonical) {
            return Err(format!(
                "child runbook {} starts itself (a cycle of child executions)",
                path.display()
            ));
        }
        let text = std::fs::read_to_string(&path)
            .map_err(|e| format!("child runbook {}: cannot read: {e}", path.display()))?;
        match self.prepare_nested(&path, text, stack) {
            Ok(p) => Ok(Some(Arc::new(p))),
            Err(RunError::Invalid(msg)) => Err(format!("child runbook is invalid:\n{msg}")),
            Err(e) => Err(e.to_string()),
        }
    }
}

/// Map an execution path (`Fan[3]/Probe`, `Loop~2`) to the static Task path
/// (`Fan[*]/Probe`, `Loop`).
pub(crate) fn normalize_path(p: &str) -> String {
    p.split('/')
        .map(|seg| {
            let seg = match seg.find('~') {
                Some(i) if seg[i + 1..].chars().all(|c| c.is_ascii_digit()) => &seg[..i],
                _ => seg,
            };
            if let Some(open) = seg.rfind('[')
                && seg.ends_with(']')
                && !seg.starts_with("branch[")
                && seg[open + 1..seg.len() - 1]
                    .chars()
                    .all(|c| c.is_ascii_digit())
            {
                return format!("{}[*]", &seg[..open]);
            }
            seg.to_string()
        })
        .collect::<Vec<_>>()
        .join("/")
}

#[cfg(test)]
mod tests {
    use super::normalize_path;

    #[test]
    fn normalizes_execution_paths_to_task_paths() {
        assert_eq!(normalize_path("Fan[3]/Probe"), "Fan[*]/Probe");
        assert_eq!(
            normalize_path("Deploy/branch[1]/Create"),
            "Deploy/branch[1]/Create"
        );
        assert_eq!(normalize_path("Loop~2"), "Loop");
        assert_eq!(
            normalize_path("Outer[0]/Inner~3[12]/T"),
            "Outer[*]/Inner~3[*]/T"
        );
    }
}
