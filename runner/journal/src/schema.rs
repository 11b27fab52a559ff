//! The journal's tables, and the in-place migrations of journals made by older
//! releases.

use rusqlite::Connection;

pub(crate) const SCHEMA: &str = r#"
CREATE TABLE IF NOT EXISTS executions (
    id TEXT PRIMARY KEY,
    name TEXT NOT NULL,
    runbook_path TEXT NOT NULL,
    runbook_text TEXT NOT NULL,
    input TEXT NOT NULL,
    provider TEXT,
    status TEXT NOT NULL,
    started_ms INTEGER NOT NULL,
    ended_ms INTEGER,
    output TEXT,
    error TEXT,
    cause TEXT,
    seed INTEGER NOT NULL,
    redrive_count INTEGER NOT NULL DEFAULT 0,
    runner_pid INTEGER,
    parent_id TEXT,
    root_id TEXT,
    environment TEXT,
    stop_request TEXT
);
CREATE TABLE IF NOT EXISTS events (
    execution_id TEXT NOT NULL,
    seq INTEGER NOT NULL,
    at_ms INTEGER NOT NULL,
    event TEXT NOT NULL,
    PRIMARY KEY (execution_id, seq)
);
CREATE TABLE IF NOT EXISTS history (
    execution_id TEXT NOT NULL,
    seq INTEGER NOT NULL,
    at_ms INTEGER NOT NULL,
    kind TEXT NOT NULL,
    state TEXT,
    details TEXT NOT NULL,
    PRIMARY KEY (execution_id, seq)
);
CREATE TABLE IF NOT EXISTS calls (
    execution_id TEXT NOT NULL,
    seq INTEGER NOT NULL,
    at_ms INTEGER NOT NULL,
    state TEXT NOT NULL,
    plugin TEXT NOT NULL,
    service TEXT NOT NULL,
    action TEXT NOT NULL,
    region TEXT,
    resource TEXT,
    outcome TEXT NOT NULL,
    error_code TEXT,
    duration_us INTEGER NOT NULL,
    args TEXT,
    result TEXT,
    PRIMARY KEY (execution_id, seq)
);
CREATE TABLE IF NOT EXISTS logs (
    execution_id TEXT NOT NULL,
    seq INTEGER NOT NULL,
    at_ms INTEGER NOT NULL,
    state TEXT NOT NULL,
    plugin TEXT NOT NULL,
    level TEXT NOT NULL,
    message TEXT NOT NULL,
    PRIMARY KEY (execution_id, seq)
);
"#;

/// Columns added after the first release: added in place to journals made before.
pub(crate) fn migrate(conn: &Connection) -> rusqlite::Result<()> {
    let cols: Vec<String> = conn
        .prepare("SELECT name FROM pragma_table_info('executions')")?
        .query_map([], |r| r.get(0))?
        .collect::<rusqlite::Result<_>>()?;
    for (col, ty) in [
        ("parent_id", "TEXT"),
        ("root_id", "TEXT"),
        ("environment", "TEXT"),
        ("stop_request", "TEXT"),
    ] {
        if !cols.iter().any(|c| c == col) {
            conn.execute_batch(&format!("ALTER TABLE executions ADD COLUMN {col} {ty}"))?;
        }
    }
    let call_cols: Vec<String> = conn
        .prepare("SELECT name FROM pragma_table_info('calls')")?
        .query_map([], |r| r.get(0))?
        .collect::<rusqlite::Result<_>>()?;
    for col in ["args", "result"] {
        if !call_cols.iter().any(|c| c == col) {
            conn.execute_batch(&format!("ALTER TABLE calls ADD COLUMN {col} TEXT"))?;
        }
    }
    conn.execute_batch(
        "CREATE INDEX IF NOT EXISTS executions_env ON executions (environment, status);
         CREATE INDEX IF NOT EXISTS executions_parent ON executions (parent_id);",
    )
}
