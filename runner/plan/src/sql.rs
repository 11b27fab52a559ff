//! Which SQL a plan may run for real. Conservative on purpose: one `SELECT`/`SHOW`
//! statement whose every function call is a known read-only one. Anything else
//! (writes, DDL, `pg_terminate_backend`, `nextval`, `SELECT ... INTO`, row locks, an
//! unknown function that might have side effects) is recorded instead of run.

/// Functions and call-like keywords that only read.
const READ_ONLY_CALLS: &[&str] = &[
    // keywords that can stand before a parenthesis
    "and",
    "as",
    "between",
    "by",
    "distinct",
    "else",
    "from",
    "is",
    "not",
    "on",
    "or",
    "select",
    "then",
    "when",
    "where",
    // call-like SQL keywords
    "any",
    "all",
    "case",
    "cast",
    "coalesce",
    "exists",
    "extract",
    "greatest",
    "in",
    "least",
    "nullif",
    "values",
    // aggregates and scalar helpers
    "abs",
    "avg",
    "count",
    "date_part",
    "floor",
    "length",
    "lower",
    "max",
    "min",
    "now",
    "round",
    "sum",
    "to_char",
    "upper",
    // server introspection
    "current_database",
    "current_setting",
    "current_user",
    "inet_server_addr",
    "inet_server_port",
    "pg_current_wal_flush_lsn",
    "pg_current_wal_lsn",
    "pg_database_size",
    "pg_is_in_recovery",
    "pg_last_wal_receive_lsn",
    "pg_last_wal_replay_lsn",
    "pg_last_xact_replay_timestamp",
    "pg_postmaster_start_time",
    "pg_wal_lsn_diff",
    "version",
];

/// Words that change something wherever they appear (a column so named makes the
/// statement recorded instead of run, which is the safe side).
const WRITING_WORDS: &[&str] = &[
    "alter", "call", "cluster", "copy", "create", "delete", "do", "drop", "grant", "insert",
    "listen", "lock", "merge", "notify", "refresh", "reindex", "reset", "revoke", "set",
    "truncate", "update", "vacuum",
];

/// True when `sql` can be run during a plan without changing anything.
pub fn read_only(sql: &str) -> bool {
    let text = strip(sql);
    let text = text.trim().trim_end_matches(';').trim();
    if text.contains(';') {
        return false;
    }
    let words: Vec<&str> = text
        .split(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
        .filter(|w| !w.is_empty())
        .collect();
    match words.first() {
        Some(w) if *w == "select" || *w == "show" => {}
        _ => return false,
    }
    // SELECT ... INTO creates a table; FOR SHARE takes row locks.
    if words
        .iter()
        .any(|w| *w == "into" || *w == "share" || WRITING_WORDS.contains(w))
    {
        return false;
    }
    calls(text).all(|f| READ_ONLY_CALLS.contains(&f.as_str()))
}

/// Lower-cased SQL without comments and with string literals emptied, so neither can
/// hide or fake a function call.
fn strip(sql: &str) -> String {
    let mut out = String::with_capacity(sql.len());
    let mut chars = sql.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '\'' => {
                out.push_str("''");
                while let Some(d) = chars.next() {
                    if d == '\'' {
                        if chars.peek() == Some(&'\'') {
                            chars.next();
                        } else {
                            break;
                        }
                    }
                }
            }
            '-' if chars.peek() == Some(&'-') => {
                for d in chars.by_ref() {
                    if d == '\n' {
                        break;
                    }
                }
                out.push(' ');
            }
            '/' if chars.peek() == Some(&'*') => {
                chars.next();
                let mut prev = ' ';
                for d in chars.by_ref() {
                    if prev == '*' && d == '/' {
                        break;
                    }
                    prev = d;
                }
                out.push(' ');
            }
            // Quoted identifiers could name any function: refuse by keeping a marker
            // that is never on the allow list.
            '"' => {
                out.push_str(" quoted_identifier");
                for d in chars.by_ref() {
                    if d == '"' {
                        break;
                    }
                }
            }
            _ => out.push(c.to_ascii_lowercase()),
        }
    }
    out
}

/// Names directly followed by `(`, i.e. function calls (and call-like keywords).
fn calls(text: &str) -> impl Iterator<Item = String> + '_ {
    let bytes = text.as_bytes();
    let mut found = Vec::new();
    for (i, b) in bytes.iter().enumerate() {
        if *b != b'(' {
            continue;
        }
        let mut end = i;
        while end > 0 && bytes[end - 1] == b' ' {
            end -= 1;
        }
        let mut start = end;
        while start > 0 && (bytes[start - 1].is_ascii_alphanumeric() || bytes[start - 1] == b'_') {
            start -= 1;
        }
        // `schema.func(` counts as a call of `func` only when the schema is pg_catalog.
        if start > 0 && bytes[start - 1] == b'.' {
            let name = &text[start..end];
            let schema_end = start - 1;
            let mut s = schema_end;
            while s > 0 && (bytes[s - 1].is_ascii_alphanumeric() || bytes[s - 1] == b'_') {
                s -= 1;
            }
            if &text[s..schema_end] == "pg_catalog" {
                found.push(name.to_string());
            } else {
                found.push(format!("{}.{name}", &text[s..schema_end]));
            }
            continue;
        }
        if start < end {
            found.push(text[start..end].to_string());
        }
    }
    found.into_iter()
}

#[cfg(test)]
mod tests {
    use super::read_only;

    #[test]
    fn probes_and_lsn_reads_run() {
        assert!(read_only(
            "SELECT pg_is_in_recovery()::text, current_setting('default_transaction_read_only'), \
             (CASE WHEN pg_is_in_recovery() THEN pg_last_wal_replay_lsn() ELSE pg_current_wal_flush_lsn() END)::text, \
             COALESCE(EXTRACT(EPOCH FROM now() - pg_last_xact_replay_timestamp())::text, '')"
        ));
        assert!(read_only(
            "SELECT (pg_last_wal_replay_lsn() >= $1::pg_lsn)::text;"
        ));
        assert!(read_only("show server_version"));
        assert!(read_only("select 1 -- pg_terminate_backend(1)"));
        assert!(read_only("select 'pg_terminate_backend(1)'"));
    }

    #[test]
    fn anything_that_may_change_something_is_recorded() {
        for sql in [
            "SELECT count(pg_terminate_backend(pid))::text FROM pg_stat_activity",
            "INSERT INTO t VALUES (1)",
            "CREATE TABLE IF NOT EXISTS t (id int)",
            "select nextval('s')",
            "select * into t2 from t",
            "select * from t for update",
            "select 1; drop table t",
            "WITH x AS (DELETE FROM t RETURNING 1) SELECT * FROM x",
            "select public.pg_is_in_recovery()",
            "select \"pg_terminate_backend\"(1)",
            "select my_function()",
            "",
        ] {
            assert!(!read_only(sql), "{sql}");
        }
        assert!(read_only("select pg_catalog.pg_is_in_recovery()"));
    }
}
