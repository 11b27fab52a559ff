//! `Assign` blocks and variable references (`$name`) in JSONPath states.

use super::*;
use crate::path::{MAX_VARIABLE_NAME_LEN, valid_variable_name};

impl Ps<'_> {
    /// `$states` is JSONata's; in a JSONPath state a `$states...` path is an error.
    pub(super) fn check_var_path(&mut self, kp: &str, key: &str, p: &Path) {
        if p.variable() == Some(RESERVED_VARIABLE) {
            self.err_val(
                kp,
                "E-VAR-STATES",
                format!(
                    "{key}: '{}' refers to the reserved variable '$states', which only JSONata states can use",
                    p.as_str()
                ),
            );
        }
    }

    /// `Assign`: an object whose keys are variable names (a `.$` suffix takes a path or an
    /// intrinsic function).
    pub(super) fn assign(&mut self, obj: &Map<String, Value>, ptr: &str) -> Opt<Assign> {
        let v = obj.get("Assign")?;
        let kp = format!("{ptr}/Assign");
        let Value::Object(m) = v else {
            self.err_val(&kp, "E-FIELD-TYPE", "'Assign' must be an object");
            return None;
        };
        let mut names: Vec<String> = Vec::new();
        let mut ok = true;
        for k in m.keys() {
            let name = k.strip_suffix(".$").unwrap_or(k);
            let np = format!("{kp}/{}", escape_token(k));
            let bad = if self.ql == QueryLanguage::Jsonata && k.ends_with(".$") {
                Some(format!(
                    "'{k}': a JSONata state does not use '.$' keys; write '{name}' with a {{% %}} value"
                ))
            } else if name == RESERVED_VARIABLE {
                Some(format!(
                    "'{name}' is reserved by Step Functions and cannot be assigned"
                ))
            } else if !valid_variable_name(name) {
                Some(format!(
                    "invalid variable name '{name}': a variable name starts with a letter or '_', continues with letters, digits or '_', and has at most {MAX_VARIABLE_NAME_LEN} characters"
                ))
            } else if names.iter().any(|n| n == name) {
                Some(format!(
                    "variable '{name}' is assigned twice ('{name}' and '{name}.$')"
                ))
            } else {
                None
            };
            match bad {
                Some(msg) => {
                    self.err(&np, "E-VAR-NAME", format!("Assign: {msg}"));
                    ok = false;
                }
                None => names.push(name.to_string()),
            }
        }
        let template = self.template(obj, ptr, "Assign")?;
        ok.then_some(Assign {
            template,
            jsonata: (self.ql == QueryLanguage::Jsonata).then(|| v.clone()),
            names,
            pointer: kp,
        })
    }
}
