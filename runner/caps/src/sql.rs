//! SQL for the `postgres` capability: both providers run a statement through the
//! simple-query protocol so every value comes back in text format, which means binding
//! `$n` parameters into the text themselves.

use crate::CapError;

/// Substitute `$n` with quoted literals (untyped, so the server infers types as it does
/// for parameters), skipping string literals, quoted identifiers, dollar quotes and
/// comments.
pub fn bind(sql: &str, params: &[Option<String>]) -> Result<String, CapError> {
    let b = sql.as_bytes();
    let mut out = String::with_capacity(sql.len());
    let mut i = 0;
    while i < b.len() {
        let c = b[i];
        let skip_to = |start: usize, end_pat: &[u8]| -> usize {
            sql[start..]
                .find(std::str::from_utf8(end_pat).unwrap())
                .map(|p| start + p + end_pat.len())
                .unwrap_or(b.len())
        };
        let next = match c {
            b'\'' => skip_to(i + 1, b"'"),
            b'"' => skip_to(i + 1, b"\""),
            b'-' if b.get(i + 1) == Some(&b'-') => skip_to(i, b"\n"),
            b'/' if b.get(i + 1) == Some(&b'*') => skip_to(i + 2, b"*/"),
            b'$' if b.get(i + 1).is_some_and(u8::is_ascii_digit) => {
                let mut j = i + 1;
                while j < b.len() && b[j].is_ascii_digit() {
                    j += 1;
                }
                let n: usize = sql[i + 1..j]
                    .parse()
                    .map_err(|_| CapError::invalid_parameter("bad parameter number"))?;
                let v = params.get(n.wrapping_sub(1)).ok_or_else(|| {
                    CapError::invalid_parameter(format!(
                        "statement uses ${n} but {} parameters were given",
                        params.len()
                    ))
                })?;
                out.push_str(&match v {
                    Some(s) => format!("'{}'", s.replace('\'', "''")),
                    None => "NULL".into(),
                });
                i = j;
                continue;
            }
            b'$' => {
                // Dollar quote $tag$...$tag$.
                let tag_end = sql[i + 1..].find('$').map(|p| i + 1 + p);
                match tag_end {
                    Some(e)
                        if sql[i + 1..e]
                            .chars()
                            .all(|ch| ch.is_alphanumeric() || ch == '_') =>
                    {
                        let tag = &sql[i..=e];
                        sql[e + 1..]
                            .find(tag)
                            .map(|p| e + 1 + p + tag.len())
                            .unwrap_or(b.len())
                    }
                    _ => i + 1,
                }
            }
            _ => {
                let ch_len = sql[i..].chars().next().map(char::len_utf8).unwrap_or(1);
                i + ch_len
            }
        };
        out.push_str(&sql[i..next]);
        i = next;
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::bind;

    #[test]
    fn binds_outside_literals() {
        let p = vec![Some("o'k".to_string()), None];
        assert_eq!(
            bind("SELECT $1, '$2', $2 -- $1\n", &p).unwrap(),
            "SELECT 'o''k', '$2', NULL -- $1\n"
        );
        assert_eq!(
            bind("SELECT $$ $1 $$, $tag$x$tag$", &p).unwrap(),
            "SELECT $$ $1 $$, $tag$x$tag$"
        );
        assert!(bind("SELECT $3", &p).is_err());
    }
}
