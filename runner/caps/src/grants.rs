//! IAM-style grants on a Task: `rds:PromoteReadReplica`, `rds:Describe*`,
//! `route53:ChangeResourceRecordSets on Z*`, `postgres:Query on postgres.db-*.internal`.
//! Deny by default: a call is allowed only when some grant matches its service, action
//! and (for scoped grants) resource.

use std::collections::BTreeSet;
use std::fmt;

use crate::catalog::{CATALOG, SERVICES};

/// A grant that failed to parse.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum GrantError {
    #[error("capability '{0}' is not of the form 'service:Action' or 'service:Action on pattern'")]
    Syntax(String),
    #[error("capability '{grant}' names unknown service '{service}' (known: {known})")]
    UnknownService {
        grant: String,
        service: String,
        known: String,
    },
    #[error("capability '{grant}' matches no action of service '{service}'")]
    UnknownAction { grant: String, service: String },
}

impl GrantError {
    /// Stable code for diagnostics.
    pub fn code(&self) -> &'static str {
        match self {
            GrantError::Syntax(_) => "E-GRANT-SYNTAX",
            GrantError::UnknownService { .. } => "E-GRANT-SERVICE",
            GrantError::UnknownAction { .. } => "E-GRANT-ACTION",
        }
    }
}

/// One parsed grant.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Grant {
    pub service: String,
    /// Action pattern (`*` and `?` wildcards).
    pub action: String,
    /// Resource pattern; `None` means any resource.
    pub resource: Option<String>,
}

impl Grant {
    pub fn parse(text: &str) -> Result<Grant, GrantError> {
        let text = text.trim();
        let (head, resource) = match text.split_once(" on ") {
            Some((h, r)) => (h.trim(), Some(r.trim().to_string())),
            None => (text, None),
        };
        let (service, action) = head
            .split_once(':')
            .ok_or_else(|| GrantError::Syntax(text.to_string()))?;
        let valid = |s: &str| !s.is_empty() && !s.contains(char::is_whitespace);
        if !valid(service) || !valid(action) || resource.as_deref().is_some_and(|r| !valid(r)) {
            return Err(GrantError::Syntax(text.to_string()));
        }
        if !SERVICES.contains(&service) {
            return Err(GrantError::UnknownService {
                grant: text.to_string(),
                service: service.to_string(),
                known: SERVICES.join(", "),
            });
        }
        if !CATALOG
            .iter()
            .any(|s| s.service == service && glob(action, s.action))
        {
            return Err(GrantError::UnknownAction {
                grant: text.to_string(),
                service: service.to_string(),
            });
        }
        Ok(Grant {
            service: service.to_string(),
            action: action.to_string(),
            resource,
        })
    }

    /// Does this grant allow `service:action` on `resource`? A scoped grant never
    /// matches a call that names no resource (e.g. "describe everything").
    pub fn allows(&self, service: &str, action: &str, resource: Option<&str>) -> bool {
        if self.service != service || !glob(&self.action, action) {
            return false;
        }
        match (&self.resource, resource) {
            (None, _) => true,
            (Some(pattern), Some(r)) => glob(pattern, r),
            (Some(_), None) => false,
        }
    }
}

impl fmt::Display for Grant {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.service, self.action)?;
        if let Some(r) = &self.resource {
            write!(f, " on {r}")?;
        }
        Ok(())
    }
}

/// The grants of one Task.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Grants {
    grants: Vec<Grant>,
}

impl Grants {
    /// Parse every grant; the first bad one is returned with its index.
    pub fn parse<S: AsRef<str>>(texts: &[S]) -> Result<Grants, (usize, GrantError)> {
        let grants = texts
            .iter()
            .enumerate()
            .map(|(i, t)| Grant::parse(t.as_ref()).map_err(|e| (i, e)))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Grants { grants })
    }

    pub fn none() -> Grants {
        Grants::default()
    }

    pub fn iter(&self) -> impl Iterator<Item = &Grant> {
        self.grants.iter()
    }

    pub fn allows(&self, service: &str, action: &str, resource: Option<&str>) -> bool {
        self.grants
            .iter()
            .any(|g| g.allows(service, action, resource))
    }

    /// Services from which at least one action is granted.
    pub fn services(&self) -> BTreeSet<&str> {
        self.grants.iter().map(|g| g.service.as_str()).collect()
    }
}

/// `*` matches any run of characters, `?` one character; everything else literally.
pub fn glob(pattern: &str, text: &str) -> bool {
    let p: Vec<char> = pattern.chars().collect();
    let t: Vec<char> = text.chars().collect();
    let (mut pi, mut ti) = (0, 0);
    let (mut star, mut mark) = (None, 0);
    while ti < t.len() {
        if pi < p.len() && (p[pi] == '?' || p[pi] == t[ti]) {
            pi += 1;
            ti += 1;
        } else if pi < p.len() && p[pi] == '*' {
            star = Some(pi);
            mark = ti;
            pi += 1;
        } else if let Some(s) = star {
            pi = s + 1;
            mark += 1;
            ti = mark;
        } else {
            return false;
        }
    }
    p[pi..].iter().all(|c| *c == '*')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_plain_wildcard_and_scoped_grants() {
        let g = Grant::parse("rds:PromoteReadReplica on replica-postgres-*").unwrap();
        assert!(g.allows("rds", "PromoteReadReplica", Some("replica-postgres-dev")));
        assert!(!g.allows("rds", "PromoteReadReplica", Some("primary-postgres-dev")));
        assert!(!g.allows("rds", "PromoteReadReplica", None));
        assert!(!g.allows("rds", "DeleteDBInstance", Some("replica-postgres-dev")));

        let g = Grant::parse("rds:Describe*").unwrap();
        assert!(g.allows("rds", "DescribeDBInstances", None));
        assert!(!g.allows("ec2", "DescribeVpcs", None));
        assert!(
            Grant::parse("ec2:*")
                .unwrap()
                .allows("ec2", "CreateVpc", None)
        );
    }

    #[test]
    fn rejects_bad_grants_with_codes() {
        assert_eq!(Grant::parse("rds").unwrap_err().code(), "E-GRANT-SYNTAX");
        assert_eq!(
            Grant::parse("s3:GetObject").unwrap_err().code(),
            "E-GRANT-SERVICE"
        );
        assert_eq!(
            Grant::parse("rds:Frobnicate").unwrap_err().code(),
            "E-GRANT-ACTION"
        );
        let (i, _) = Grants::parse(&["rds:DescribeDBInstances", "nope"]).unwrap_err();
        assert_eq!(i, 1);
    }

    #[test]
    fn deny_by_default() {
        let grants = Grants::none();
        assert!(!grants.allows("rds", "DescribeDBInstances", None));
        let grants = Grants::parse(&["sns:Publish on arn:aws:sns:*:*:dr-*"]).unwrap();
        assert!(grants.allows(
            "sns",
            "Publish",
            Some("arn:aws:sns:us-east-1:000000000000:dr-dev")
        ));
        assert_eq!(
            grants.services().into_iter().collect::<Vec<_>>(),
            vec!["sns"]
        );
    }

    #[test]
    fn glob_edge_cases() {
        assert!(glob("*", ""));
        assert!(glob("a*b*c", "aXXbYYc"));
        assert!(!glob("a*b", "aXXc"));
        assert!(glob("a?c", "abc"));
    }
}
