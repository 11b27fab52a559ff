//! The `runbook` binary as an operator runs it, in a scratch state directory: commands,
//! their text and `--json` output, and the repository's runbooks and fixtures.

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use serde_json::Value;

use crate::process;

/// The `runbook` binary cargo built for the `runbook` package's tests.
pub fn bin() -> PathBuf {
    process::cargo_bin("runbook")
}

/// A path from the repository root.
pub fn repo_path(rel: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .join(rel)
}

/// A DR runbook of `runbooks/`.
pub fn runbook(name: &str) -> PathBuf {
    repo_path("runbooks").join(name)
}

/// A test runbook of `tests/runbooks/`.
pub fn fixture(name: &str) -> PathBuf {
    repo_path("tests/runbooks").join(name)
}

/// A scratch `RUNBOOK_HOME`: every command runs with it and with the test fixtures'
/// directory as its only plugin path (`plugin:echo`, `plugin:trap`, ... are fixtures, not
/// built-ins), and whatever local daemon it started is brought down on drop.
pub struct RunbookHome {
    pub home: tempfile::TempDir,
    /// Variables set (`Some`) or removed (`None`) for every command.
    env: Vec<(OsString, Option<OsString>)>,
}

impl Default for RunbookHome {
    fn default() -> Self {
        Self::new()
    }
}

impl RunbookHome {
    pub fn new() -> RunbookHome {
        RunbookHome {
            home: tempfile::tempdir().expect("tempdir"),
            env: Vec::new(),
        }
    }

    /// Set (`Some`) or remove (`None`) variables for every command, e.g. `Moto::cli_env`.
    pub fn with_env<K, V>(mut self, vars: impl IntoIterator<Item = (K, Option<V>)>) -> Self
    where
        K: Into<OsString>,
        V: Into<OsString>,
    {
        self.env
            .extend(vars.into_iter().map(|(k, v)| (k.into(), v.map(Into::into))));
        self
    }

    pub fn path(&self) -> &Path {
        self.home.path()
    }

    /// `runbook ARGS…`, not started yet.
    pub fn cmd(&self, args: &[&str]) -> Command {
        let mut c = Command::new(bin());
        c.args(args)
            .env("RUNBOOK_HOME", self.home.path())
            .env("RUNBOOK_PLUGIN_PATH", runbook_plugins_builtin::FIXTURE_DIR);
        for (k, v) in &self.env {
            match v {
                Some(v) => c.env(k, v),
                None => c.env_remove(k),
            };
        }
        c
    }

    pub fn run(&self, args: &[&str]) -> Output {
        self.cmd(args).output().expect("running runbook")
    }

    /// Trimmed stdout of a command that must succeed.
    pub fn text(&self, args: &[&str]) -> String {
        let out = self.run(args);
        assert!(
            out.status.success(),
            "runbook {args:?} failed: {}",
            stderr(&out)
        );
        String::from_utf8(out.stdout).unwrap().trim().to_string()
    }

    /// Exit code and the one JSON object a `--json` command prints.
    pub fn json(&self, args: &[&str]) -> (i32, Value) {
        let out = self.run(args);
        let v = stdout_json(&out, &format!("runbook {args:?}"));
        (out.status.code().expect("exit code"), v)
    }

    /// `runbook run FILE --json EXTRA…`, which must end in status `want` (exit 0 when
    /// SUCCEEDED, 1 otherwise): the result object.
    pub fn run_book(&self, file: &Path, extra: &[&str], want: &str) -> Value {
        let mut args = vec!["run", file.to_str().unwrap(), "--json"];
        args.extend_from_slice(extra);
        let out = self.run(&args);
        let v = stdout_json(&out, &format!("{args:?}"));
        let code = if want == "SUCCEEDED" { 0 } else { 1 };
        assert_eq!(
            (out.status.code(), v["status"].as_str()),
            (Some(code), Some(want)),
            "{args:?}: {v:#}\nstderr (tail): {}",
            tail(&stderr(&out), 60)
        );
        v
    }

    /// Deploys the dev environment on the local provider and subscribes a file to its
    /// alert topic (what an on-call pager would receive); returns that file's path.
    pub fn deploy_with_pager(&self) -> PathBuf {
        self.run_book(&runbook("deploy.yaml"), &[], "SUCCEEDED");
        let pager = self.path().join("pager.jsonl");
        let path = format!("Path={}", pager.display());
        self.run_book(
            &fixture("subscribe-file.yaml"),
            &["--param", &path],
            "SUCCEEDED",
        );
        pager
    }

    /// A libpq connection string to the dev environment's routed name (port from
    /// `runbook endpoint`, credentials from `runbook secret get`), as an application
    /// would connect.
    pub fn routed_conn(&self) -> String {
        let ep = self.text(&["endpoint", "postgres.db-dev.internal"]);
        let secret: Value =
            serde_json::from_str(&self.text(&["secret", "get", "postgres-credentials-dev"]))
                .expect("secret JSON");
        let (host, port) = ep.rsplit_once(':').expect("HOST:PORT");
        format!(
            "host={host} port={port} user={} password={} dbname=postgres connect_timeout=2",
            secret["username"].as_str().unwrap(),
            secret["password"].as_str().unwrap()
        )
    }

    /// `runbook show ID --json`.
    pub fn show(&self, id: &str) -> Value {
        let (code, v) = self.json(&["show", id, "--json"]);
        assert_eq!(code, 0, "show {id}: {v}");
        v
    }

    /// PID of the local daemon of this home, from its pidfile (alive or not).
    pub fn daemon_pid(&self) -> Option<i32> {
        std::fs::read_to_string(self.home.path().join("local/daemon.pid"))
            .ok()?
            .trim()
            .parse()
            .ok()
    }
}

impl Drop for RunbookHome {
    /// Whatever happens, stop the daemon and every server it started.
    fn drop(&mut self) {
        if self.daemon_pid().is_some_and(process::alive) {
            let _ = self.run(&["local", "down"]);
        }
    }
}

pub fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// A command's stdout as the one JSON object `--json` promises.
pub fn stdout_json(out: &Output, what: &str) -> Value {
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "{what}: stdout is not one JSON object ({e}): {}\nstderr: {}",
            String::from_utf8_lossy(&out.stdout),
            stderr(out)
        )
    })
}

/// The last `n` lines of `s`.
pub fn tail(s: &str, n: usize) -> String {
    let lines: Vec<&str> = s.lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}

/// How many plugin log lines of a `show --json` start with `prefix` (how often a
/// plugin that logs once per run ran).
pub fn log_lines_starting(show: &Value, prefix: &str) -> usize {
    show["logs"]
        .as_array()
        .map(|logs| {
            logs.iter()
                .filter(|l| l["message"].as_str().is_some_and(|m| m.starts_with(prefix)))
                .count()
        })
        .unwrap_or(0)
}
