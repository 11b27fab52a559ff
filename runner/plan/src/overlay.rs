//! The overlay: what the recorded calls would have done, as WIT-shaped JSON, and how a
//! real read is seen through it.

use std::collections::{BTreeMap, HashSet};

use runbook_caps::types::common::Filter;
use runbook_caps::types::rds::Parameter;
use runbook_caps::types::route53::{RecordSet, fqdn, zone_id};
use runbook_caps::{CapCall, CapError};
use serde_json::Value;

use crate::is_not_found;

/// Resource kinds the overlay tracks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Kind {
    DbInstance,
    DbSnapshot,
    SubnetGroup,
    ParamGroup,
    /// A parameter group's user-set parameters (a list, keyed by the group name).
    Params,
    Vpc,
    Subnet,
    SecurityGroup,
    Peering,
    RouteTable,
    Endpoint,
    Zone,
    /// A hosted zone's record sets (a list, keyed by the zone id).
    Records,
    HealthCheck,
    Alarm,
    Dashboard,
    /// A topic ARN (a string).
    Topic,
    Secret,
}

impl Kind {
    /// The id of a WIT-shaped object of this kind.
    pub fn id(self, v: &Value) -> String {
        let field = match self {
            Kind::DbInstance | Kind::DbSnapshot => "identifier",
            Kind::SubnetGroup | Kind::ParamGroup | Kind::Dashboard | Kind::Secret => "name",
            Kind::Vpc => "vpc_id",
            Kind::Subnet => "subnet_id",
            Kind::SecurityGroup => "group_id",
            Kind::Peering | Kind::Zone | Kind::HealthCheck => "id",
            Kind::RouteTable => "route_table_id",
            Kind::Endpoint => "vpc_endpoint_id",
            Kind::Alarm => return s(&v["spec"], "alarm_name").to_string(),
            Kind::Topic => return v.as_str().unwrap_or_default().to_string(),
            Kind::Params | Kind::Records => return String::new(),
        };
        s(v, field).to_string()
    }
}

#[derive(Debug, Clone)]
pub enum Entry {
    Live(Value),
    Gone,
}

/// Region key of a call: its region, or `global` (route53).
pub fn region_key(call: &CapCall) -> String {
    call.region.clone().unwrap_or_else(|| "global".into())
}

#[derive(Default)]
pub struct Overlay {
    objects: BTreeMap<(Kind, String, String), Entry>,
}

impl Overlay {
    pub fn get(&self, k: Kind, region: &str, id: &str) -> Option<&Entry> {
        self.objects.get(&(k, region.to_string(), id.to_string()))
    }

    pub fn live(&self, k: Kind, region: &str, id: &str) -> Option<&Value> {
        match self.get(k, region, id) {
            Some(Entry::Live(v)) => Some(v),
            _ => None,
        }
    }

    pub fn is_gone(&self, k: Kind, region: &str, id: &str) -> bool {
        matches!(self.get(k, region, id), Some(Entry::Gone))
    }

    pub fn put(&mut self, k: Kind, region: &str, v: Value) {
        let id = k.id(&v);
        self.put_id(k, region, &id, v);
    }

    pub fn put_id(&mut self, k: Kind, region: &str, id: &str, v: Value) {
        self.objects
            .insert((k, region.to_string(), id.to_string()), Entry::Live(v));
    }

    pub fn gone(&mut self, k: Kind, region: &str, id: &str) {
        self.objects
            .insert((k, region.to_string(), id.to_string()), Entry::Gone);
    }

    fn all_live<'a>(&'a self, k: Kind, region: &'a str) -> impl Iterator<Item = &'a Value> + 'a {
        self.objects
            .iter()
            .filter_map(move |((kk, r, _), e)| match e {
                Entry::Live(v) if *kk == k && r == region => Some(v),
                _ => None,
            })
    }

    /// A real list seen through the overlay: deleted items drop out, modified ones are
    /// replaced, created ones that match the query are added.
    pub fn merge(
        &self,
        k: Kind,
        region: &str,
        real: Vec<Value>,
        keep: &dyn Fn(&Value) -> bool,
    ) -> Vec<Value> {
        let mut seen = HashSet::new();
        let mut out = Vec::new();
        for v in real {
            let id = k.id(&v);
            match self.get(k, region, &id) {
                Some(Entry::Gone) => {}
                // The real service applied the query; our copy may no longer match it.
                Some(Entry::Live(o)) => {
                    if keep(o) {
                        out.push(o.clone());
                    }
                }
                None => out.push(v),
            }
            seen.insert(id);
        }
        for o in self.all_live(k, region) {
            if !seen.contains(&k.id(o)) && keep(o) {
                out.push(o.clone());
            }
        }
        out
    }

    /// See a real read through the overlay.
    pub fn merge_read(
        &self,
        call: &CapCall,
        real: Result<Value, CapError>,
    ) -> Result<Value, CapError> {
        let region = region_key(call);
        let r = region.as_str();
        let opt = |name: &str| call.arg(name).as_str().map(str::to_string);
        let strings = |name: &str| -> Vec<String> {
            call.arg(name)
                .as_array()
                .map(|a| {
                    a.iter()
                        .filter_map(|x| x.as_str().map(String::from))
                        .collect()
                })
                .unwrap_or_default()
        };
        let filters: Vec<Filter> = call.arg_as("filters").unwrap_or_default();
        let by_id_and_filters = |k: Kind, ids_arg: &str| {
            let ids = strings(ids_arg);
            let filters = filters.clone();
            move |v: &Value| {
                (ids.is_empty() || ids.contains(&k.id(v))) && filters_match(v, &filters)
            }
        };
        match (call.service.as_str(), call.action.as_str()) {
            ("rds", "DescribeDBInstances") => {
                let id = opt("identifier");
                self.list(
                    Kind::DbInstance,
                    r,
                    real,
                    &|v| id.as_deref().is_none_or(|i| s(v, "identifier") == i),
                    id.as_deref().map(|i| (i, "DBInstanceNotFound")),
                )
            }
            ("rds", "DescribeDBSnapshots") => {
                let (id, inst) = (opt("snapshot_identifier"), opt("instance_identifier"));
                self.list(
                    Kind::DbSnapshot,
                    r,
                    real,
                    &|v| {
                        id.as_deref().is_none_or(|i| s(v, "identifier") == i)
                            && inst
                                .as_deref()
                                .is_none_or(|i| s(v, "instance_identifier") == i)
                    },
                    id.as_deref().map(|i| (i, "DBSnapshotNotFound")),
                )
            }
            ("rds", "DescribeDBSubnetGroups") => {
                let name = opt("name");
                self.list(
                    Kind::SubnetGroup,
                    r,
                    real,
                    &|v| name.as_deref().is_none_or(|n| s(v, "name") == n),
                    name.as_deref().map(|n| (n, "DBSubnetGroupNotFoundFault")),
                )
            }
            ("rds", "DescribeDBParameterGroups") => {
                let name = opt("name");
                self.list(
                    Kind::ParamGroup,
                    r,
                    real,
                    &|v| name.as_deref().is_none_or(|n| s(v, "name") == n),
                    name.as_deref().map(|n| (n, "DBParameterGroupNotFound")),
                )
            }
            ("rds", "DescribeDBParameters") => {
                let name = opt("name").unwrap_or_default();
                if self.is_gone(Kind::ParamGroup, r, &name) {
                    return Err(nf("DBParameterGroupNotFound", &name));
                }
                let planned_group = self.live(Kind::ParamGroup, r, &name).is_some();
                let mut params: Vec<Parameter> = match real {
                    Ok(v) => serde_json::from_value(v).unwrap_or_default(),
                    Err(e) if is_not_found(&e) && planned_group => Vec::new(),
                    Err(e) => return Err(e),
                };
                if let Some(over) = self.live(Kind::Params, r, &name) {
                    let over: Vec<Parameter> =
                        serde_json::from_value(over.clone()).unwrap_or_default();
                    for p in over {
                        match params.iter_mut().find(|q| q.name == p.name) {
                            Some(q) => *q = p,
                            None => params.push(p),
                        }
                    }
                }
                Ok(serde_json::to_value(params).expect("parameters serialize"))
            }
            ("ec2", "DescribeVpcs") => self.list(
                Kind::Vpc,
                r,
                real,
                &by_id_and_filters(Kind::Vpc, "vpc_ids"),
                None,
            ),
            ("ec2", "DescribeSubnets") => self.list(
                Kind::Subnet,
                r,
                real,
                &by_id_and_filters(Kind::Subnet, "subnet_ids"),
                None,
            ),
            ("ec2", "DescribeSecurityGroups") => self.list(
                Kind::SecurityGroup,
                r,
                real,
                &by_id_and_filters(Kind::SecurityGroup, "group_ids"),
                None,
            ),
            ("ec2", "DescribeVpcPeeringConnections") => self.list(
                Kind::Peering,
                r,
                real,
                &by_id_and_filters(Kind::Peering, "peering_ids"),
                None,
            ),
            ("ec2", "DescribeRouteTables") => self.list(
                Kind::RouteTable,
                r,
                real,
                &by_id_and_filters(Kind::RouteTable, "route_table_ids"),
                None,
            ),
            ("ec2", "DescribeVpcEndpoints") => self.list(
                Kind::Endpoint,
                r,
                real,
                &by_id_and_filters(Kind::Endpoint, "vpc_endpoint_ids"),
                None,
            ),
            ("route53", "GetHostedZone") => {
                let id = zone_id(&opt("id").unwrap_or_default());
                self.single(Kind::Zone, r, &id, real, "NoSuchHostedZone")
            }
            ("route53", "ListHostedZonesByName") => {
                let from = opt("dns_name").map(|d| fqdn(&d));
                let mut zones = self.list(
                    Kind::Zone,
                    r,
                    real,
                    &|v| from.as_deref().is_none_or(|d| s(v, "name") >= d),
                    None,
                )?;
                // Route 53 pages zones in name order.
                if let Value::Array(a) = &mut zones {
                    a.sort_by(|x, y| s(x, "name").cmp(s(y, "name")));
                }
                Ok(zones)
            }
            ("route53", "ListResourceRecordSets") => {
                let zone = zone_id(&opt("zone_id").unwrap_or_default());
                if self.is_gone(Kind::Zone, r, &zone) {
                    return Err(nf("NoSuchHostedZone", &zone));
                }
                let records = match self.live(Kind::Records, r, &zone) {
                    Some(v) => v.clone(),
                    None if self.live(Kind::Zone, r, &zone).is_some() => match real {
                        Err(e) if is_not_found(&e) => Value::Array(Vec::new()),
                        other => other?,
                    },
                    None => real?,
                };
                let mut records: Vec<RecordSet> =
                    serde_json::from_value(records).unwrap_or_default();
                if let Some(n) = opt("name") {
                    let n = fqdn(&n);
                    records.retain(|x| fqdn(&x.name) == n);
                }
                Ok(serde_json::to_value(records).expect("records serialize"))
            }
            ("route53", "GetHealthCheck") => {
                let id = opt("id").unwrap_or_default();
                self.single(Kind::HealthCheck, r, &id, real, "NoSuchHealthCheck")
            }
            ("route53", "ListHealthChecks") => {
                self.list(Kind::HealthCheck, r, real, &|_| true, None)
            }
            ("route53", "GetHealthCheckStatus") => {
                let id = opt("id").unwrap_or_default();
                if self.is_gone(Kind::HealthCheck, r, &id) {
                    return Err(nf("NoSuchHealthCheck", &id));
                }
                match real {
                    Err(e)
                        if is_not_found(&e) && self.live(Kind::HealthCheck, r, &id).is_some() =>
                    {
                        Ok(serde_json::json!({
                            "id": id,
                            "healthy": true,
                            "observations": ["plan: the health check does not exist yet; assumed healthy"],
                        }))
                    }
                    other => other,
                }
            }
            ("cloudwatch", "DescribeAlarms") => {
                let names = strings("alarm_names");
                let prefix = opt("name_prefix");
                self.list(
                    Kind::Alarm,
                    r,
                    real,
                    &|v| {
                        let n = Kind::Alarm.id(v);
                        (names.is_empty() || names.contains(&n))
                            && prefix.as_deref().is_none_or(|p| n.starts_with(p))
                    },
                    None,
                )
            }
            ("cloudwatch", "GetDashboard") => {
                let name = opt("name").unwrap_or_default();
                self.single(Kind::Dashboard, r, &name, real, "ResourceNotFound")
            }
            ("cloudwatch", "ListDashboards") => {
                let prefix = opt("name_prefix");
                self.names(Kind::Dashboard, r, real, &|n| {
                    prefix.as_deref().is_none_or(|p| n.starts_with(p))
                })
            }
            ("sns", "ListTopics") => self.names(Kind::Topic, r, real, &|_| true),
            ("sns", "ListSubscriptionsByTopic") => {
                let arn = opt("topic_arn").unwrap_or_default();
                if self.is_gone(Kind::Topic, r, &arn) {
                    return Err(nf("NotFound", &arn));
                }
                match real {
                    Err(e) if is_not_found(&e) && self.live(Kind::Topic, r, &arn).is_some() => {
                        Ok(Value::Array(Vec::new()))
                    }
                    other => other,
                }
            }
            ("secretsmanager", "DescribeSecret") => {
                let id = opt("secret_id").unwrap_or_default();
                let name = self.secret_name(r, &id);
                self.single(Kind::Secret, r, &name, real, "ResourceNotFoundException")
            }
            ("secretsmanager", "ListSecrets") => {
                let prefix = opt("name_prefix");
                self.list(
                    Kind::Secret,
                    r,
                    real,
                    &|v| {
                        prefix
                            .as_deref()
                            .is_none_or(|p| s(v, "name").starts_with(p))
                    },
                    None,
                )
            }
            _ => real,
        }
    }

    /// A secret's name from its name or ARN, as far as the overlay knows it.
    pub fn secret_name(&self, region: &str, id: &str) -> String {
        self.all_live(Kind::Secret, region)
            .find(|v| s(v, "arn") == id)
            .map(|v| s(v, "name").to_string())
            .unwrap_or_else(|| id.to_string())
    }

    fn list(
        &self,
        k: Kind,
        region: &str,
        real: Result<Value, CapError>,
        keep: &dyn Fn(&Value) -> bool,
        named: Option<(&str, &str)>,
    ) -> Result<Value, CapError> {
        let (items, err) = match real {
            Ok(Value::Array(a)) => (a, None),
            Ok(other) => return Ok(other),
            Err(e) if is_not_found(&e) => (Vec::new(), Some(e)),
            Err(e) => return Err(e),
        };
        let merged = self.merge(k, region, items, keep);
        if merged.is_empty() {
            if let Some((id, code)) = named
                && self.is_gone(k, region, id)
            {
                return Err(nf(code, id));
            }
            if let Some(e) = err {
                return Err(e);
            }
        }
        Ok(Value::Array(merged))
    }

    fn single(
        &self,
        k: Kind,
        region: &str,
        id: &str,
        real: Result<Value, CapError>,
        code: &str,
    ) -> Result<Value, CapError> {
        match self.get(k, region, id) {
            Some(Entry::Live(v)) => Ok(v.clone()),
            Some(Entry::Gone) => Err(nf(code, id)),
            None => real,
        }
    }

    /// A real list of names (topic ARNs, dashboard names) seen through the overlay.
    fn names(
        &self,
        k: Kind,
        region: &str,
        real: Result<Value, CapError>,
        keep: &dyn Fn(&str) -> bool,
    ) -> Result<Value, CapError> {
        let real: Vec<String> = serde_json::from_value(real?).unwrap_or_default();
        let mut out: Vec<String> = real
            .into_iter()
            .filter(|n| !self.is_gone(k, region, n))
            .collect();
        for ((kk, r, id), e) in &self.objects {
            if *kk == k
                && r == region
                && matches!(e, Entry::Live(_))
                && !out.contains(id)
                && keep(id)
            {
                out.push(id.clone());
            }
        }
        Ok(serde_json::to_value(out).expect("names serialize"))
    }
}

/// Whether a read returns one object (`NotFound` when absent) rather than a list.
pub fn single_shaped(action: &str) -> bool {
    matches!(
        action,
        "GetHostedZone"
            | "GetHealthCheck"
            | "GetHealthCheckStatus"
            | "GetDashboard"
            | "DescribeSecret"
    )
}

/// EC2 filters against a WIT-shaped object: `tag:K` matches tags, other names the
/// snake_case field (`vpc-id` → `vpc_id`). An unknown field never matches, so a plan
/// errs towards "not found" (and records a create) rather than inventing a match.
pub fn filters_match(v: &Value, filters: &[Filter]) -> bool {
    filters.iter().all(|f| {
        let got: Vec<String> = match f.name.strip_prefix("tag:") {
            Some(key) => tag(v, key).into_iter().collect(),
            None => match &v[f.name.replace('-', "_")] {
                Value::String(x) => vec![x.clone()],
                Value::Array(a) => a
                    .iter()
                    .filter_map(|x| x.as_str().map(String::from))
                    .collect(),
                _ => Vec::new(),
            },
        };
        f.values.iter().any(|want| got.contains(want))
    })
}

/// A tag's value on a WIT-shaped object.
pub fn tag(v: &Value, key: &str) -> Option<String> {
    v["tags"].as_array()?.iter().find_map(|t| {
        (t["key"].as_str() == Some(key))
            .then(|| t["value"].as_str().unwrap_or_default().to_string())
    })
}

/// A string field, or "".
pub fn s<'a>(v: &'a Value, field: &str) -> &'a str {
    v[field].as_str().unwrap_or_default()
}

pub fn nf(code: &str, id: &str) -> CapError {
    CapError::not_found(code, format!("{id} not found (as this plan stands)"))
}
