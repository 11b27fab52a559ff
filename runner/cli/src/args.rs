//! The command line: `runbook`'s global settings and subcommands (clap). What each
//! command does is in `main.rs` and the modules it names.

use std::path::PathBuf;

use clap::{Parser, Subcommand, ValueEnum};

use crate::{gameday, plugin, task};

#[derive(Parser)]
#[command(
    name = "runbook",
    version,
    about = "Disaster-recovery runbooks for multi-region PostgreSQL: ASL state machines whose Tasks are sandboxed WebAssembly plugins."
)]
pub(crate) struct Cli {
    /// Directory holding the journal, compile cache and local environments
    /// (default: $RUNBOOK_HOME, else $XDG_DATA_HOME/runbook, else ~/.local/share/runbook).
    #[arg(long, global = true, env = "RUNBOOK_HOME")]
    pub(crate) state_dir: Option<PathBuf>,
    /// Extra directories searched for `plugin:<name>` (as <name>.wasm), before the built-ins.
    #[arg(
        long,
        global = true,
        env = "RUNBOOK_PLUGIN_PATH",
        value_delimiter = ':'
    )]
    pub(crate) plugin_path: Vec<PathBuf>,
    /// Log filter for the runner's own diagnostics (e.g. `info`, `runbook_host=debug`).
    #[arg(long, global = true, env = "RUNBOOK_LOG", default_value = "warn")]
    pub(crate) log: String,
    /// Fleet mode: `etcd://[user@]host:port[,host:port...][/prefix][?ca=&cert=&key=&password_file=]`.
    /// Executions are written through to etcd (fenced) and can be resumed by any runner;
    /// `sqlite` (the default) is single-machine mode. See docs/fleet.md.
    #[arg(long, global = true, env = "RUNBOOK_JOURNAL", value_name = "URL")]
    pub(crate) journal: Option<String>,
    /// Fleet mode lease timing: `default` (TTL 10 s), `fast` (TTL 2 s) or
    /// `TTL_SECS,KEEPALIVE_MS,REQUEST_TIMEOUT_MS` (keepalive + 2 × timeout < TTL).
    #[arg(
        long,
        global = true,
        env = "RUNBOOK_FLEET_TIMING",
        default_value = "default"
    )]
    pub(crate) fleet_timing: String,
    /// Fleet mode: this runner's id (default `<hostname>-<pid>`).
    #[arg(long, global = true, env = "RUNBOOK_RUNNER_ID")]
    pub(crate) runner_id: Option<String>,
    /// The local provider's directory (its environments and daemon), when it is not
    /// the state dir: runners with their own state dirs can share one local cloud.
    #[arg(long, global = true, env = "RUNBOOK_LOCAL_DIR")]
    pub(crate) local_dir: Option<PathBuf>,
    #[command(subcommand)]
    pub(crate) command: Command,
}

#[derive(Clone, Copy, ValueEnum)]
pub(crate) enum ProviderArg {
    Local,
    Aws,
}

impl ProviderArg {
    pub(crate) fn name(self) -> &'static str {
        match self {
            ProviderArg::Local => "local",
            ProviderArg::Aws => "aws",
        }
    }
}

#[derive(Clone, Copy, ValueEnum)]
pub(crate) enum GraphFormat {
    Mermaid,
    Dot,
}

#[derive(Subcommand)]
pub(crate) enum Command {
    /// Run a runbook to its end.
    Run {
        file: PathBuf,
        /// Execution input as JSON, or @file.
        #[arg(long)]
        input: Option<String>,
        /// Set one runbook parameter (repeatable).
        #[arg(long = "param", value_name = "K=V")]
        params: Vec<String>,
        #[arg(long, value_enum)]
        provider: Option<ProviderArg>,
        /// Print exactly one JSON object on stdout: {execution_id, status, output, error, cause}.
        #[arg(long)]
        json: bool,
    },
    /// Check a runbook (syntax, references, Choice/Retry/Catch rules, plugins and grants).
    Validate { file: PathBuf },
    /// Dry run. Without --provider: the Tasks, their plugins and which capability calls
    /// could mutate what (nothing is called). With --provider: walk the runbook against
    /// that provider, making its reads and recording, not making, every mutating call.
    Plan {
        file: PathBuf,
        /// Walk the runbook against this provider (reads only).
        #[arg(long, value_enum)]
        provider: Option<ProviderArg>,
        /// Execution input as JSON, or @file (with --provider).
        #[arg(long, requires = "provider")]
        input: Option<String>,
        /// Set one runbook parameter (repeatable; with --provider).
        #[arg(long = "param", value_name = "K=V", requires = "provider")]
        params: Vec<String>,
        #[arg(long)]
        json: bool,
    },
    /// Continue an interrupted execution from its journal.
    Resume {
        id: String,
        #[arg(long)]
        json: bool,
    },
    /// Run a FAILED or TIMED_OUT execution again from the state that failed.
    Redrive {
        id: String,
        #[arg(long)]
        json: bool,
    },
    /// List executions, newest first.
    Executions {
        #[arg(long, default_value_t = 20)]
        limit: usize,
        #[arg(long)]
        json: bool,
    },
    /// Stop a RUNNING execution (and its child executions), as StopExecution does.
    Stop {
        id: String,
        #[arg(long)]
        error: Option<String>,
        #[arg(long)]
        cause: Option<String>,
        #[arg(long)]
        json: bool,
    },
    /// The game-day safety lever: while engaged, no fault is injected.
    Lever {
        #[command(subcommand)]
        command: gameday::LeverCommand,
    },
    /// A game day's report (JSON, HTML, JUnit, Markdown) from the journal; exit 1 unless
    /// its verdict is PASS. `gameday.yaml` runs write one to <state dir>/reports/ID/.
    Report {
        /// The game day's execution (or use --last).
        #[arg(required_unless_present = "last")]
        id: Option<String>,
        /// The trend of the last N game days instead: RTO and lost writes per run
        /// (a table; `--format html` draws the chart).
        #[arg(long, conflicts_with = "id")]
        last: Option<usize>,
        /// With --last: the runbook's name.
        #[arg(long, default_value = "gameday", requires = "last")]
        runbook: String,
        #[arg(long, default_value = "json")]
        format: String,
        /// Write every format into this directory instead.
        #[arg(long, short = 'o')]
        out: Option<PathBuf>,
    },
    /// Drive one traffic session (started by the executor for a game day).
    #[command(hide = true)]
    TrafficDriver { session: String },
    /// Answer a `.waitForTaskToken` Task: success, failure or heartbeat (exit 2 when the
    /// token is unknown or its task already closed).
    Task {
        #[command(subcommand)]
        command: task::TaskCommand,
    },
    /// An execution's history, timeline, capability calls and logs.
    Show {
        id: String,
        #[arg(long)]
        json: bool,
    },
    /// Draw a runbook as Mermaid (default) or Graphviz DOT.
    Graph {
        file: PathBuf,
        #[arg(long, value_enum, default_value = "mermaid")]
        format: GraphFormat,
    },
    /// Plugin tools.
    Plugin {
        #[command(subcommand)]
        command: PluginCommand,
    },
    /// Print the JSON Schema of runbooks (for editors).
    Schema,
    /// The long-running service: schedules, the automatic failover watcher, readiness
    /// checks, a status page and Prometheus metrics (see serve.example.yaml).
    Serve {
        /// The serve config (YAML).
        #[arg(long, required_unless_present = "check", conflicts_with = "check")]
        config: Option<PathBuf>,
        /// Only check this config and every runbook it names; exit 2 on problems.
        #[arg(long, value_name = "FILE")]
        check: Option<PathBuf>,
        /// Serve HTTP here (overrides Http.Listen; port 0 picks a free port).
        #[arg(long)]
        listen: Option<std::net::SocketAddr>,
    },
    /// What `runbook serve` decided (schedules, watcher, readiness), newest first, with
    /// the evidence each decision was made on.
    Decisions {
        /// schedule | watcher | readiness | serve
        #[arg(long)]
        kind: Option<String>,
        /// A schedule's name or an environment.
        #[arg(long)]
        subject: Option<String>,
        #[arg(long, default_value_t = 20)]
        limit: usize,
        #[arg(long)]
        json: bool,
    },
    /// The next fire times of each schedule of a serve config, in its time zone.
    Schedules {
        file: PathBuf,
        /// How many fire times per schedule.
        #[arg(long, short = 'n', default_value_t = 5)]
        count: usize,
        #[arg(long)]
        json: bool,
    },
    /// Print HOST:PORT of a Route 53 name's local routing endpoint.
    Endpoint { name: String },
    /// Secrets (as `aws secretsmanager get-secret-value` would print them).
    Secret {
        #[command(subcommand)]
        command: SecretCommand,
    },
    /// The local provider's environment and control-plane daemon.
    Local {
        #[command(subcommand)]
        command: LocalCommand,
    },
}

#[derive(Subcommand)]
pub(crate) enum SecretCommand {
    /// Print a secret's JSON value.
    Get {
        name: String,
        #[arg(long)]
        region: Option<String>,
    },
}

#[derive(Subcommand)]
pub(crate) enum LocalCommand {
    /// Daemon, instances, endpoints and link state.
    Status,
    /// Start the control-plane daemon (it also starts on demand).
    Up,
    /// Stop the daemon and every local PostgreSQL server (data is kept).
    Down,
    /// SIGKILL an instance's postmaster, as a crash would.
    Crash {
        instance: String,
        #[arg(long)]
        region: Option<String>,
        /// Also kill its Multi-AZ standby.
        #[arg(long)]
        all_nodes: bool,
    },
    /// Cut the cross-region link (replication stops).
    Partition,
    /// Restore the cross-region link.
    Heal,
    /// Run the control-plane daemon in the foreground (started for you on demand).
    #[command(hide = true)]
    Daemon,
}

#[derive(Subcommand)]
pub(crate) enum PluginCommand {
    /// Print a plugin's imports and exports.
    Inspect {
        file: PathBuf,
        #[arg(long)]
        json: bool,
    },
    /// List the built-in plugins.
    List,
    /// Run a plugin outside any runbook: a given input, capability answers from a
    /// fixture file or replayed from a past execution's journal. Exit 0 when it returns
    /// a result, 1 when it fails, 2 for bad usage.
    Test(plugin::TestArgs),
    /// Scaffold an out-of-tree plugin project (a failover policy to start from).
    New(plugin::NewArgs),
}
