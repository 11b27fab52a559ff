//! Which fields of `$states` a JSONata expression reads, for Step Functions' creation-time
//! refusal of `$states.result` and `$states.errorOutput` where they do not exist.
//!
//! `jsonata-rs` keeps its syntax tree private, so this is a scan of the expression text that
//! skips string literals, back-quoted names and comments; it sees `$states.name` and
//! `$states . name` (the forms people write), not a `$states` passed around as a value.

/// The names read as `$states.<name>` in `body`, in order, with repeats.
pub(super) fn states_fields(body: &str) -> Vec<&str> {
    let b = body.as_bytes();
    let name_char = |c: u8| c.is_ascii_alphanumeric() || c == b'_' || c >= 0x80;
    let skip_ws = |mut i: usize| {
        while i < b.len() && b[i].is_ascii_whitespace() {
            i += 1;
        }
        i
    };
    let mut out = Vec::new();
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            q @ (b'"' | b'\'' | b'`') => {
                i += 1;
                while i < b.len() && b[i] != q {
                    // Back-quoted names have no escapes; strings do.
                    i += if b[i] == b'\\' && q != b'`' { 2 } else { 1 };
                }
                i += 1;
            }
            b'/' if b.get(i + 1) == Some(&b'*') => {
                i = body[i + 2..].find("*/").map_or(b.len(), |e| i + 2 + e + 2);
            }
            b'$' => {
                let start = i + 1;
                let mut j = start;
                while j < b.len() && name_char(b[j]) {
                    j += 1;
                }
                if &body[start..j] == "states" {
                    let k = skip_ws(j);
                    if b.get(k) == Some(&b'.') {
                        let f = skip_ws(k + 1);
                        let (fs, fe) = if b.get(f) == Some(&b'`') {
                            let e = body[f + 1..].find('`').map_or(b.len(), |e| f + 1 + e);
                            (f + 1, e)
                        } else {
                            let mut e = f;
                            while e < b.len() && name_char(b[e]) {
                                e += 1;
                            }
                            (f, e)
                        };
                        if fe > fs {
                            out.push(&body[fs..fe]);
                        }
                    }
                }
                i = j.max(i + 1);
            }
            _ => i += 1,
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::states_fields;

    #[test]
    fn finds_field_reads_and_skips_strings_and_comments() {
        assert_eq!(
            states_fields("$states.input.a + $states . result.b & $states.`errorOutput`"),
            ["input", "result", "errorOutput"]
        );
        assert_eq!(
            states_fields(
                "'$states.result' & \"a\\\"$states.result\" /* $states.result */ & $statesX.result"
            ),
            Vec::<&str>::new()
        );
        assert_eq!(
            states_fields("$merge([$states.context, {'x': $states.result}])"),
            ["context", "result"]
        );
        assert!(states_fields("$states").is_empty());
    }
}
