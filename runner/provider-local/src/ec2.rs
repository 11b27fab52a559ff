//! EC2 networking state: VPCs, subnets, security groups, peering, route tables,
//! gateway endpoints. Pure bookkeeping with AWS ids, states and errors; the daemon's
//! link enforces peering and security groups on cross-region replication.

use std::sync::Arc;

use runbook_caps::types::common::{Filter, Tag};
use runbook_caps::types::ec2::*;
use runbook_caps::{CapCall, CapError, ErrorKind};
use serde_json::Value;

use crate::daemon::Ctx;
use crate::ids;
use crate::net::{cidr_contains, cidrs_overlap, parse_cidr};
use crate::state::{RegionState, State};

fn to_value<T: serde::Serialize>(v: T) -> Value {
    serde_json::to_value(v).expect("record serializes")
}

fn nf(code: &str, msg: String) -> CapError {
    CapError::not_found(code, msg)
}
fn vpc_nf(id: &str) -> CapError {
    nf(
        "InvalidVpcID.NotFound",
        format!("The vpc ID '{id}' does not exist"),
    )
}
fn subnet_nf(id: &str) -> CapError {
    nf(
        "InvalidSubnetID.NotFound",
        format!("The subnet ID '{id}' does not exist"),
    )
}
fn sg_nf(id: &str) -> CapError {
    nf(
        "InvalidGroup.NotFound",
        format!("The security group '{id}' does not exist"),
    )
}
fn pcx_nf(id: &str) -> CapError {
    nf(
        "InvalidVpcPeeringConnectionID.NotFound",
        format!("The vpcPeeringConnection ID '{id}' does not exist"),
    )
}
fn rtb_nf(id: &str) -> CapError {
    nf(
        "InvalidRouteTableID.NotFound",
        format!("The routeTable ID '{id}' does not exist"),
    )
}
fn bad(code: &str, msg: impl Into<String>) -> CapError {
    CapError::new(ErrorKind::InvalidParameter, code, msg)
}

/// EC2 filter semantics: every filter must match; values OR'ed, `*` and `?` wildcards.
fn matches(filters: &[Filter], tags: &[Tag], attr: impl Fn(&str) -> Vec<String>) -> bool {
    filters.iter().all(|f| {
        let have: Vec<String> = if let Some(key) = f.name.strip_prefix("tag:") {
            tags.iter()
                .filter(|t| t.key == key)
                .map(|t| t.value.clone())
                .collect()
        } else if f.name == "tag-key" {
            tags.iter().map(|t| t.key.clone()).collect()
        } else {
            attr(&f.name)
        };
        f.values
            .iter()
            .any(|want| have.iter().any(|h| glob(want, h)))
    })
}

fn glob(pat: &str, s: &str) -> bool {
    fn go(p: &[u8], s: &[u8]) -> bool {
        match (p.first(), s.first()) {
            (None, None) => true,
            (Some(b'*'), _) => go(&p[1..], s) || (!s.is_empty() && go(p, &s[1..])),
            (Some(b'?'), Some(_)) => go(&p[1..], &s[1..]),
            (Some(a), Some(b)) if a == b => go(&p[1..], &s[1..]),
            _ => false,
        }
    }
    go(pat.as_bytes(), s.as_bytes())
}

fn merge_tags(into: &mut Vec<Tag>, tags: &[Tag]) {
    for t in tags {
        match into.iter_mut().find(|x| x.key == t.key) {
            Some(x) => x.value = t.value.clone(),
            None => into.push(t.clone()),
        }
    }
}

fn valid_vpc_cidr(c: &str) -> Result<(), CapError> {
    match parse_cidr(c) {
        Some((_, len)) if (16..=28).contains(&len) => Ok(()),
        _ => Err(bad(
            "InvalidVpc.Range",
            format!("The CIDR '{c}' is invalid."),
        )),
    }
}

fn reg<'a>(s: &'a mut State, region: &str) -> &'a mut RegionState {
    s.region_mut(region)
}

pub(crate) fn handle(ctx: &Arc<Ctx>, call: &CapCall) -> Result<Value, CapError> {
    let region = call.region()?.to_string();
    let r = region.as_str();
    let ids_arg = |name: &str| call.arg_as::<Vec<String>>(name);
    match call.action.as_str() {
        "DescribeAvailabilityZones" => Ok(to_value(
            ["a", "b", "c"]
                .iter()
                .map(|z| format!("{r}{z}"))
                .collect::<Vec<_>>(),
        )),
        "CreateVpc" => {
            let cidr: String = call.arg_as("cidr_block")?;
            let tags: Vec<Tag> = call.arg_as("tags")?;
            valid_vpc_cidr(&cidr)?;
            ctx.mutate(|s| {
                let vpc = Vpc {
                    vpc_id: ids::ec2_id("vpc"),
                    region: r.into(),
                    cidr_block: cidr.clone(),
                    state: "available".into(),
                    enable_dns_support: true,
                    enable_dns_hostnames: false,
                    tags,
                };
                let rs = reg(s, r);
                // Like EC2: every VPC comes with a default security group and a main route table.
                let sg = SecurityGroup {
                    group_id: ids::ec2_id("sg"),
                    group_name: "default".into(),
                    vpc_id: vpc.vpc_id.clone(),
                    description: "default VPC security group".into(),
                    ingress: vec![],
                    tags: vec![],
                };
                rs.security_groups.insert(sg.group_id.clone(), sg);
                let rtb = RouteTable {
                    route_table_id: ids::ec2_id("rtb"),
                    vpc_id: vpc.vpc_id.clone(),
                    routes: vec![Route {
                        destination_cidr: cidr.clone(),
                        target: "local".into(),
                        state: "active".into(),
                    }],
                    subnet_associations: vec![],
                    endpoint_ids: vec![],
                    tags: vec![Tag {
                        key: "runbook:main".into(),
                        value: "true".into(),
                    }],
                };
                rs.route_tables.insert(rtb.route_table_id.clone(), rtb);
                rs.vpcs.insert(vpc.vpc_id.clone(), vpc.clone());
                Ok(to_value(vpc))
            })
        }
        "DescribeVpcs" => {
            let want = ids_arg("vpc_ids")?;
            let filters: Vec<Filter> = call.arg_as("filters")?;
            ctx.read(|s| {
                let all: Vec<Vpc> = s
                    .region(r)
                    .map(|x| x.vpcs.values().cloned().collect())
                    .unwrap_or_default();
                for id in &want {
                    if !all.iter().any(|v| &v.vpc_id == id) {
                        return Err(vpc_nf(id));
                    }
                }
                Ok(to_value(
                    all.into_iter()
                        .filter(|v| want.is_empty() || want.contains(&v.vpc_id))
                        .filter(|v| {
                            matches(&filters, &v.tags, |n| match n {
                                "vpc-id" => vec![v.vpc_id.clone()],
                                "cidr" | "cidr-block" | "cidr-block-association.cidr-block" => {
                                    vec![v.cidr_block.clone()]
                                }
                                "state" => vec![v.state.clone()],
                                _ => vec![],
                            })
                        })
                        .collect::<Vec<_>>(),
                ))
            })
        }
        "ModifyVpcAttribute" => {
            let id: String = call.arg_as("vpc_id")?;
            let support: Option<bool> = call.arg_as("enable_dns_support")?;
            let hostnames: Option<bool> = call.arg_as("enable_dns_hostnames")?;
            ctx.mutate(|s| {
                let v = reg(s, r).vpcs.get_mut(&id).ok_or_else(|| vpc_nf(&id))?;
                if let Some(x) = support {
                    v.enable_dns_support = x;
                }
                if let Some(x) = hostnames {
                    v.enable_dns_hostnames = x;
                }
                Ok(Value::Null)
            })
        }
        "DeleteVpc" => {
            let id: String = call.arg_as("vpc_id")?;
            ctx.mutate(|s| {
                let active_pcx = s.global.peerings.values().any(|p| {
                    (p.requester_vpc_id == id || p.accepter_vpc_id == id)
                        && matches!(p.status.as_str(), "active" | "pending-acceptance")
                });
                let rs = reg(s, r);
                if !rs.vpcs.contains_key(&id) {
                    return Err(vpc_nf(&id));
                }
                let deps = rs.subnets.values().any(|x| x.vpc_id == id)
                    || rs
                        .security_groups
                        .values()
                        .any(|x| x.vpc_id == id && x.group_name != "default")
                    || rs
                        .route_tables
                        .values()
                        .any(|x| x.vpc_id == id && !is_main(x))
                    || rs.vpc_endpoints.values().any(|x| x.vpc_id == id)
                    || active_pcx;
                if deps {
                    return Err(CapError::dependency_violation(format!(
                        "The vpc '{id}' has dependencies and cannot be deleted."
                    )));
                }
                rs.security_groups.retain(|_, g| g.vpc_id != id);
                rs.route_tables.retain(|_, t| t.vpc_id != id);
                rs.vpcs.remove(&id);
                Ok(Value::Null)
            })
        }
        "CreateSubnet" => {
            let vpc_id: String = call.arg_as("vpc_id")?;
            let cidr: String = call.arg_as("cidr_block")?;
            let az: String = call.arg_as("availability_zone")?;
            let tags: Vec<Tag> = call.arg_as("tags")?;
            ctx.mutate(|s| {
                let rs = reg(s, r);
                let vpc = rs.vpcs.get(&vpc_id).ok_or_else(|| vpc_nf(&vpc_id))?;
                if !cidr_contains(&vpc.cidr_block, &cidr) {
                    return Err(bad(
                        "InvalidSubnet.Range",
                        format!("The CIDR '{cidr}' is invalid."),
                    ));
                }
                if rs
                    .subnets
                    .values()
                    .any(|x| x.vpc_id == vpc_id && cidrs_overlap(&x.cidr_block, &cidr))
                {
                    return Err(bad(
                        "InvalidSubnet.Conflict",
                        format!("The CIDR '{cidr}' conflicts with another subnet"),
                    ));
                }
                if !az.starts_with(r) || az.len() != r.len() + 1 {
                    return Err(bad(
                        "InvalidParameterValue",
                        format!("Value ({az}) for parameter availabilityZone is invalid."),
                    ));
                }
                let sn = Subnet {
                    subnet_id: ids::ec2_id("subnet"),
                    vpc_id,
                    cidr_block: cidr,
                    availability_zone: az,
                    state: "available".into(),
                    tags,
                };
                rs.subnets.insert(sn.subnet_id.clone(), sn.clone());
                Ok(to_value(sn))
            })
        }
        "DescribeSubnets" => {
            let want = ids_arg("subnet_ids")?;
            let filters: Vec<Filter> = call.arg_as("filters")?;
            ctx.read(|s| {
                let all: Vec<Subnet> = s
                    .region(r)
                    .map(|x| x.subnets.values().cloned().collect())
                    .unwrap_or_default();
                for id in &want {
                    if !all.iter().any(|v| &v.subnet_id == id) {
                        return Err(subnet_nf(id));
                    }
                }
                Ok(to_value(
                    all.into_iter()
                        .filter(|v| want.is_empty() || want.contains(&v.subnet_id))
                        .filter(|v| {
                            matches(&filters, &v.tags, |n| match n {
                                "subnet-id" => vec![v.subnet_id.clone()],
                                "vpc-id" => vec![v.vpc_id.clone()],
                                "cidr-block" | "cidr" => vec![v.cidr_block.clone()],
                                "availability-zone" => vec![v.availability_zone.clone()],
                                "state" => vec![v.state.clone()],
                                _ => vec![],
                            })
                        })
                        .collect::<Vec<_>>(),
                ))
            })
        }
        "DeleteSubnet" => {
            let id: String = call.arg_as("subnet_id")?;
            ctx.mutate(|s| {
                let rs = reg(s, r);
                if !rs.subnets.contains_key(&id) {
                    return Err(subnet_nf(&id));
                }
                if rs
                    .subnet_groups
                    .values()
                    .any(|g| g.subnet_ids.contains(&id))
                {
                    return Err(CapError::dependency_violation(format!(
                        "The subnet '{id}' has dependencies and cannot be deleted."
                    )));
                }
                for t in rs.route_tables.values_mut() {
                    t.subnet_associations.retain(|a| a != &id);
                }
                rs.subnets.remove(&id);
                Ok(Value::Null)
            })
        }
        "CreateSecurityGroup" => {
            let name: String = call.arg_as("group_name")?;
            let description: String = call.arg_as("description")?;
            let vpc_id: String = call.arg_as("vpc_id")?;
            let tags: Vec<Tag> = call.arg_as("tags")?;
            ctx.mutate(|s| {
                let rs = reg(s, r);
                if !rs.vpcs.contains_key(&vpc_id) {
                    return Err(vpc_nf(&vpc_id));
                }
                if rs
                    .security_groups
                    .values()
                    .any(|g| g.vpc_id == vpc_id && g.group_name == name)
                {
                    return Err(CapError::already_exists(
                        "InvalidGroup.Duplicate",
                        format!("The security group '{name}' already exists for VPC '{vpc_id}'"),
                    ));
                }
                let sg = SecurityGroup {
                    group_id: ids::ec2_id("sg"),
                    group_name: name,
                    vpc_id,
                    description,
                    ingress: vec![],
                    tags,
                };
                rs.security_groups.insert(sg.group_id.clone(), sg.clone());
                Ok(to_value(sg))
            })
        }
        "DescribeSecurityGroups" => {
            let want = ids_arg("group_ids")?;
            let filters: Vec<Filter> = call.arg_as("filters")?;
            ctx.read(|s| {
                let all: Vec<SecurityGroup> = s
                    .region(r)
                    .map(|x| x.security_groups.values().cloned().collect())
                    .unwrap_or_default();
                for id in &want {
                    if !all.iter().any(|v| &v.group_id == id) {
                        return Err(sg_nf(id));
                    }
                }
                Ok(to_value(
                    all.into_iter()
                        .filter(|v| want.is_empty() || want.contains(&v.group_id))
                        .filter(|v| {
                            matches(&filters, &v.tags, |n| match n {
                                "group-id" => vec![v.group_id.clone()],
                                "group-name" => vec![v.group_name.clone()],
                                "vpc-id" => vec![v.vpc_id.clone()],
                                "description" => vec![v.description.clone()],
                                _ => vec![],
                            })
                        })
                        .collect::<Vec<_>>(),
                ))
            })
        }
        "AuthorizeSecurityGroupIngress" | "RevokeSecurityGroupIngress" => {
            let id: String = call.arg_as("group_id")?;
            let perms: Vec<IpPermission> = call.arg_as("permissions")?;
            let authorize = call.action == "AuthorizeSecurityGroupIngress";
            ctx.mutate(|s| {
                let rs = reg(s, r);
                let known: Vec<String> = rs.security_groups.keys().cloned().collect();
                let g = rs.security_groups.get_mut(&id).ok_or_else(|| sg_nf(&id))?;
                for p in perms {
                    for c in &p.cidr_blocks {
                        if parse_cidr(c).is_none() {
                            return Err(bad(
                                "InvalidParameterValue",
                                format!("CIDR block {c} is malformed"),
                            ));
                        }
                    }
                    for sgid in &p.source_security_groups {
                        if !known.contains(sgid) {
                            return Err(sg_nf(sgid));
                        }
                    }
                    if authorize {
                        if g.ingress.contains(&p) {
                            return Err(CapError::already_exists(
                                "InvalidPermission.Duplicate",
                                format!(
                                    "the specified rule \"peer: {:?}, {}, ALLOW\" already exists",
                                    p.cidr_blocks, p.ip_protocol
                                ),
                            ));
                        }
                        g.ingress.push(p);
                    } else {
                        let before = g.ingress.len();
                        g.ingress.retain(|x| x != &p);
                        if g.ingress.len() == before {
                            return Err(nf(
                                "InvalidPermission.NotFound",
                                "The specified rule does not exist in this security group.".into(),
                            ));
                        }
                    }
                }
                Ok(Value::Null)
            })
        }
        "DeleteSecurityGroup" => {
            let id: String = call.arg_as("group_id")?;
            ctx.mutate(|s| {
                let rs = reg(s, r);
                if !rs.security_groups.contains_key(&id) {
                    return Err(sg_nf(&id));
                }
                let referenced = rs
                    .instances
                    .values()
                    .any(|i| i.db.vpc_security_groups.contains(&id))
                    || rs.security_groups.values().any(|g| {
                        g.ingress
                            .iter()
                            .any(|p| p.source_security_groups.contains(&id))
                    });
                if referenced {
                    return Err(CapError::dependency_violation(format!(
                        "resource {id} has a dependent object"
                    )));
                }
                rs.security_groups.remove(&id);
                Ok(Value::Null)
            })
        }
        "CreateVpcPeeringConnection" => {
            let vpc_id: String = call.arg_as("vpc_id")?;
            let peer_vpc: String = call.arg_as("peer_vpc_id")?;
            let peer_region: String = call
                .arg_as::<Option<String>>("peer_region")?
                .filter(|p| !p.is_empty())
                .unwrap_or_else(|| r.to_string());
            let tags: Vec<Tag> = call.arg_as("tags")?;
            ctx.mutate(|s| {
                let mine = s
                    .region(r)
                    .and_then(|x| x.vpcs.get(&vpc_id))
                    .cloned()
                    .ok_or_else(|| vpc_nf(&vpc_id))?;
                let peer = s
                    .region(&peer_region)
                    .and_then(|x| x.vpcs.get(&peer_vpc))
                    .cloned()
                    .ok_or_else(|| vpc_nf(&peer_vpc))?;
                // EC2 accepts the request and then fails it when the CIDRs overlap.
                let status = if cidrs_overlap(&mine.cidr_block, &peer.cidr_block) {
                    "failed"
                } else {
                    "pending-acceptance"
                };
                let p = VpcPeeringConnection {
                    id: ids::ec2_id("pcx"),
                    requester_vpc_id: vpc_id.clone(),
                    requester_region: r.into(),
                    requester_cidr: mine.cidr_block,
                    accepter_vpc_id: peer_vpc.clone(),
                    accepter_region: peer_region.clone(),
                    accepter_cidr: peer.cidr_block,
                    status: status.into(),
                    tags,
                };
                s.global.peerings.insert(p.id.clone(), p.clone());
                Ok(to_value(p))
            })
        }
        "AcceptVpcPeeringConnection" => {
            let id: String = call.arg_as("peering_id")?;
            ctx.mutate(|s| {
                let p = s.global.peerings.get_mut(&id).ok_or_else(|| pcx_nf(&id))?;
                if p.accepter_region != r {
                    return Err(pcx_nf(&id));
                }
                match p.status.as_str() {
                    "pending-acceptance" => p.status = "active".into(),
                    "active" => {}
                    other => {
                        return Err(CapError::invalid_state(
                            "InvalidStateTransition",
                            format!("Invalid state transition for pcx '{id}', attempted to transition from {other} to active"),
                        ));
                    }
                }
                Ok(to_value(p.clone()))
            })
        }
        "DescribeVpcPeeringConnections" => {
            let want = ids_arg("peering_ids")?;
            let filters: Vec<Filter> = call.arg_as("filters")?;
            ctx.read(|s| {
                let all: Vec<VpcPeeringConnection> = s
                    .global
                    .peerings
                    .values()
                    .filter(|p| p.requester_region == r || p.accepter_region == r)
                    .cloned()
                    .collect();
                for id in &want {
                    if !all.iter().any(|v| &v.id == id) {
                        return Err(pcx_nf(id));
                    }
                }
                Ok(to_value(
                    all.into_iter()
                        .filter(|v| want.is_empty() || want.contains(&v.id))
                        .filter(|v| {
                            matches(&filters, &v.tags, |n| match n {
                                "vpc-peering-connection-id" => vec![v.id.clone()],
                                "status-code" => vec![v.status.clone()],
                                "requester-vpc-info.vpc-id" => vec![v.requester_vpc_id.clone()],
                                "accepter-vpc-info.vpc-id" => vec![v.accepter_vpc_id.clone()],
                                "requester-vpc-info.cidr-block" => vec![v.requester_cidr.clone()],
                                "accepter-vpc-info.cidr-block" => vec![v.accepter_cidr.clone()],
                                _ => vec![],
                            })
                        })
                        .collect::<Vec<_>>(),
                ))
            })
        }
        "DeleteVpcPeeringConnection" => {
            let id: String = call.arg_as("peering_id")?;
            ctx.mutate(|s| {
                let p = s.global.peerings.get_mut(&id).ok_or_else(|| pcx_nf(&id))?;
                if p.requester_region != r && p.accepter_region != r {
                    return Err(pcx_nf(&id));
                }
                if p.status == "deleted" {
                    return Err(CapError::invalid_state(
                        "InvalidStateTransition",
                        format!("pcx '{id}' is already deleted"),
                    ));
                }
                // Deleted connections stay visible for a while, as in EC2.
                p.status = "deleted".into();
                Ok(Value::Null)
            })
        }
        "CreateRouteTable" => {
            let vpc_id: String = call.arg_as("vpc_id")?;
            let tags: Vec<Tag> = call.arg_as("tags")?;
            ctx.mutate(|s| {
                let rs = reg(s, r);
                let vpc = rs.vpcs.get(&vpc_id).ok_or_else(|| vpc_nf(&vpc_id))?;
                let t = RouteTable {
                    route_table_id: ids::ec2_id("rtb"),
                    vpc_id: vpc_id.clone(),
                    routes: vec![Route {
                        destination_cidr: vpc.cidr_block.clone(),
                        target: "local".into(),
                        state: "active".into(),
                    }],
                    subnet_associations: vec![],
                    endpoint_ids: vec![],
                    tags,
                };
                rs.route_tables.insert(t.route_table_id.clone(), t.clone());
                Ok(to_value(t))
            })
        }
        "DescribeRouteTables" => {
            let want = ids_arg("route_table_ids")?;
            let filters: Vec<Filter> = call.arg_as("filters")?;
            ctx.read(|s| {
                let all: Vec<RouteTable> = s
                    .region(r)
                    .map(|x| x.route_tables.values().cloned().collect())
                    .unwrap_or_default();
                for id in &want {
                    if !all.iter().any(|v| &v.route_table_id == id) {
                        return Err(rtb_nf(id));
                    }
                }
                Ok(to_value(
                    all.into_iter()
                        .filter(|v| want.is_empty() || want.contains(&v.route_table_id))
                        .filter(|v| {
                            matches(&filters, &v.tags, |n| match n {
                                "route-table-id" => vec![v.route_table_id.clone()],
                                "vpc-id" => vec![v.vpc_id.clone()],
                                "association.subnet-id" => v.subnet_associations.clone(),
                                "association.main" => vec![is_main(v).to_string()],
                                _ => vec![],
                            })
                        })
                        .map(|mut t| {
                            // Routes through a peering that is no longer active are blackholes.
                            for rt in &mut t.routes {
                                if rt.target.starts_with("pcx-") {
                                    let ok = s
                                        .global
                                        .peerings
                                        .get(&rt.target)
                                        .is_some_and(|p| p.status == "active");
                                    rt.state = if ok { "active" } else { "blackhole" }.into();
                                }
                            }
                            t
                        })
                        .collect::<Vec<_>>(),
                ))
            })
        }
        "AssociateRouteTable" => {
            let id: String = call.arg_as("route_table_id")?;
            let subnet: String = call.arg_as("subnet_id")?;
            ctx.mutate(|s| {
                let rs = reg(s, r);
                let sn_vpc = rs
                    .subnets
                    .get(&subnet)
                    .map(|x| x.vpc_id.clone())
                    .ok_or_else(|| subnet_nf(&subnet))?;
                let t = rs.route_tables.get(&id).ok_or_else(|| rtb_nf(&id))?;
                if t.vpc_id != sn_vpc {
                    return Err(bad(
                        "InvalidParameterValue",
                        "route table and subnet belong to different networks",
                    ));
                }
                if rs
                    .route_tables
                    .values()
                    .any(|t| t.subnet_associations.contains(&subnet))
                {
                    return Err(CapError::already_exists(
                        "Resource.AlreadyAssociated",
                        format!("the subnet {subnet} is already associated"),
                    ));
                }
                rs.route_tables
                    .get_mut(&id)
                    .expect("present")
                    .subnet_associations
                    .push(subnet);
                Ok(Value::String(ids::ec2_id("rtbassoc")))
            })
        }
        "CreateRoute" => {
            let id: String = call.arg_as("route_table_id")?;
            let dest: String = call.arg_as("destination_cidr")?;
            let target: String = call.arg_as("target")?;
            if parse_cidr(&dest).is_none() {
                return Err(bad(
                    "InvalidParameterValue",
                    format!("Value ({dest}) for parameter destinationCidrBlock is invalid."),
                ));
            }
            ctx.mutate(|s| {
                if target.starts_with("pcx-") && !s.global.peerings.contains_key(&target) {
                    return Err(pcx_nf(&target));
                }
                let t = reg(s, r)
                    .route_tables
                    .get_mut(&id)
                    .ok_or_else(|| rtb_nf(&id))?;
                if t.routes.iter().any(|x| x.destination_cidr == dest) {
                    return Err(CapError::already_exists(
                        "RouteAlreadyExists",
                        format!("The route identified by {dest} already exists."),
                    ));
                }
                t.routes.push(Route {
                    destination_cidr: dest,
                    target,
                    state: "active".into(),
                });
                Ok(Value::Null)
            })
        }
        "DeleteRoute" => {
            let id: String = call.arg_as("route_table_id")?;
            let dest: String = call.arg_as("destination_cidr")?;
            ctx.mutate(|s| {
                let t = reg(s, r)
                    .route_tables
                    .get_mut(&id)
                    .ok_or_else(|| rtb_nf(&id))?;
                let before = t.routes.len();
                t.routes
                    .retain(|x| x.destination_cidr != dest || x.target == "local");
                if t.routes.len() == before {
                    return Err(nf(
                        "InvalidRoute.NotFound",
                        format!("no route with destination-cidr-block {dest} in route table {id}"),
                    ));
                }
                Ok(Value::Null)
            })
        }
        "DeleteRouteTable" => {
            let id: String = call.arg_as("route_table_id")?;
            ctx.mutate(|s| {
                let rs = reg(s, r);
                let t = rs.route_tables.get(&id).ok_or_else(|| rtb_nf(&id))?;
                if !t.subnet_associations.is_empty() || is_main(t) {
                    return Err(CapError::dependency_violation(format!(
                        "The routeTable '{id}' has dependencies and cannot be deleted."
                    )));
                }
                rs.route_tables.remove(&id);
                Ok(Value::Null)
            })
        }
        "CreateVpcEndpoint" => {
            let vpc_id: String = call.arg_as("vpc_id")?;
            let service: String = call.arg_as("service_name")?;
            let kind: String = call.arg_as("endpoint_type")?;
            let rtbs: Vec<String> = call.arg_as("route_table_ids")?;
            let tags: Vec<Tag> = call.arg_as("tags")?;
            if !service.starts_with(&format!("com.amazonaws.{r}.")) {
                return Err(bad(
                    "InvalidServiceName",
                    format!("The Vpc Endpoint Service '{service}' does not exist"),
                ));
            }
            if kind != "Gateway" && kind != "Interface" {
                return Err(bad(
                    "InvalidParameterValue",
                    format!("endpoint type {kind} is not Gateway or Interface"),
                ));
            }
            ctx.mutate(|s| {
                let rs = reg(s, r);
                if !rs.vpcs.contains_key(&vpc_id) {
                    return Err(vpc_nf(&vpc_id));
                }
                for t in &rtbs {
                    if rs.route_tables.get(t).is_none_or(|x| x.vpc_id != vpc_id) {
                        return Err(rtb_nf(t));
                    }
                }
                let e = VpcEndpoint {
                    vpc_endpoint_id: ids::ec2_id("vpce"),
                    vpc_id,
                    service_name: service,
                    endpoint_type: kind,
                    route_table_ids: rtbs.clone(),
                    state: "available".into(),
                    tags,
                };
                for t in &rtbs {
                    rs.route_tables
                        .get_mut(t)
                        .expect("checked")
                        .endpoint_ids
                        .push(e.vpc_endpoint_id.clone());
                }
                rs.vpc_endpoints
                    .insert(e.vpc_endpoint_id.clone(), e.clone());
                Ok(to_value(e))
            })
        }
        "DescribeVpcEndpoints" => {
            let want = ids_arg("vpc_endpoint_ids")?;
            let filters: Vec<Filter> = call.arg_as("filters")?;
            ctx.read(|s| {
                let all: Vec<VpcEndpoint> = s
                    .region(r)
                    .map(|x| x.vpc_endpoints.values().cloned().collect())
                    .unwrap_or_default();
                for id in &want {
                    if !all.iter().any(|v| &v.vpc_endpoint_id == id) {
                        return Err(nf(
                            "InvalidVpcEndpointId.NotFound",
                            format!("The Vpc Endpoint Id '{id}' does not exist"),
                        ));
                    }
                }
                Ok(to_value(
                    all.into_iter()
                        .filter(|v| want.is_empty() || want.contains(&v.vpc_endpoint_id))
                        .filter(|v| {
                            matches(&filters, &v.tags, |n| match n {
                                "vpc-endpoint-id" => vec![v.vpc_endpoint_id.clone()],
                                "vpc-id" => vec![v.vpc_id.clone()],
                                "service-name" => vec![v.service_name.clone()],
                                "vpc-endpoint-type" => vec![v.endpoint_type.clone()],
                                "vpc-endpoint-state" => vec![v.state.clone()],
                                _ => vec![],
                            })
                        })
                        .collect::<Vec<_>>(),
                ))
            })
        }
        "DeleteVpcEndpoints" => {
            let want = ids_arg("vpc_endpoint_ids")?;
            ctx.mutate(|s| {
                let rs = reg(s, r);
                for id in &want {
                    if rs.vpc_endpoints.remove(id).is_none() {
                        return Err(nf(
                            "InvalidVpcEndpointId.NotFound",
                            format!("The Vpc Endpoint Id '{id}' does not exist"),
                        ));
                    }
                    for t in rs.route_tables.values_mut() {
                        t.endpoint_ids.retain(|e| e != id);
                    }
                }
                Ok(Value::Null)
            })
        }
        "CreateTags" => {
            let want = ids_arg("resource_ids")?;
            let tags: Vec<Tag> = call.arg_as("tags")?;
            ctx.mutate(|s| {
                for id in &want {
                    let mut found = false;
                    if let Some(p) = s.global.peerings.get_mut(id) {
                        merge_tags(&mut p.tags, &tags);
                        found = true;
                    }
                    let rs = reg(s, r);
                    if let Some(x) = rs.vpcs.get_mut(id) {
                        merge_tags(&mut x.tags, &tags);
                        found = true;
                    }
                    if let Some(x) = rs.subnets.get_mut(id) {
                        merge_tags(&mut x.tags, &tags);
                        found = true;
                    }
                    if let Some(x) = rs.security_groups.get_mut(id) {
                        merge_tags(&mut x.tags, &tags);
                        found = true;
                    }
                    if let Some(x) = rs.route_tables.get_mut(id) {
                        merge_tags(&mut x.tags, &tags);
                        found = true;
                    }
                    if let Some(x) = rs.vpc_endpoints.get_mut(id) {
                        merge_tags(&mut x.tags, &tags);
                        found = true;
                    }
                    if !found {
                        return Err(bad("InvalidID", format!("The ID '{id}' is not valid")));
                    }
                }
                Ok(Value::Null)
            })
        }
        _ => Err(CapError::unsupported(call, "local")),
    }
}

fn is_main(t: &RouteTable) -> bool {
    t.tags.iter().any(|x| x.key == "runbook:main")
}

#[cfg(test)]
mod tests {
    use super::glob;

    #[test]
    fn filter_globs() {
        assert!(glob("vpc-*", "vpc-0123"));
        assert!(glob("primary-?pc", "primary-vpc"));
        assert!(!glob("replica*", "primary"));
    }
}
