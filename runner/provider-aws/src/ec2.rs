//! `ec2` networking on aws-sdk-ec2.

use aws_sdk_ec2::Client;
use aws_sdk_ec2::types as t;
use runbook_caps::types::common::{Filter, Tag};
use runbook_caps::types::ec2::*;
use runbook_caps::{CapCall, CapError};
use serde_json::{Value, json};

use crate::error::send;
use crate::{AwsProvider, to_value};

fn tags_of(v: &[t::Tag]) -> Vec<Tag> {
    v.iter()
        .map(|x| Tag {
            key: x.key().unwrap_or_default().into(),
            value: x.value().unwrap_or_default().into(),
        })
        .collect()
}

fn sdk_tags(v: &[Tag]) -> Vec<t::Tag> {
    v.iter()
        .map(|x| t::Tag::builder().key(&x.key).value(&x.value).build())
        .collect()
}

/// Tags at creation; EC2 refuses an empty tag specification.
fn spec(kind: t::ResourceType, v: &[Tag]) -> Option<Vec<t::TagSpecification>> {
    (!v.is_empty()).then(|| {
        vec![
            t::TagSpecification::builder()
                .resource_type(kind)
                .set_tags(Some(sdk_tags(v)))
                .build(),
        ]
    })
}

fn filters(v: &[Filter]) -> Option<Vec<t::Filter>> {
    (!v.is_empty()).then(|| {
        v.iter()
            .map(|f| {
                t::Filter::builder()
                    .name(&f.name)
                    .set_values(Some(f.values.clone()))
                    .build()
            })
            .collect()
    })
}

fn ids(v: Vec<String>) -> Option<Vec<String>> {
    (!v.is_empty()).then_some(v)
}

fn subnet(s: &t::Subnet) -> Subnet {
    Subnet {
        subnet_id: s.subnet_id().unwrap_or_default().into(),
        vpc_id: s.vpc_id().unwrap_or_default().into(),
        cidr_block: s.cidr_block().unwrap_or_default().into(),
        availability_zone: s.availability_zone().unwrap_or_default().into(),
        state: s
            .state()
            .map(|x| x.as_str().to_string())
            .unwrap_or_default(),
        tags: tags_of(s.tags()),
    }
}

fn permission(p: &t::IpPermission) -> IpPermission {
    IpPermission {
        ip_protocol: p.ip_protocol().unwrap_or_default().into(),
        from_port: p.from_port().unwrap_or(-1),
        to_port: p.to_port().unwrap_or(-1),
        cidr_blocks: p
            .ip_ranges()
            .iter()
            .filter_map(|r| r.cidr_ip().map(str::to_string))
            .collect(),
        source_security_groups: p
            .user_id_group_pairs()
            .iter()
            .filter_map(|g| g.group_id().map(str::to_string))
            .collect(),
    }
}

fn sdk_permission(p: &IpPermission) -> t::IpPermission {
    // EC2 ignores ports for protocol -1 (all); send them only for port protocols.
    let ports = p.ip_protocol != "-1";
    t::IpPermission::builder()
        .ip_protocol(&p.ip_protocol)
        .set_from_port(ports.then_some(p.from_port))
        .set_to_port(ports.then_some(p.to_port))
        .set_ip_ranges(Some(
            p.cidr_blocks
                .iter()
                .map(|c| t::IpRange::builder().cidr_ip(c).build())
                .collect(),
        ))
        .set_user_id_group_pairs(Some(
            p.source_security_groups
                .iter()
                .map(|g| t::UserIdGroupPair::builder().group_id(g).build())
                .collect(),
        ))
        .build()
}

fn security_group(g: &t::SecurityGroup) -> SecurityGroup {
    SecurityGroup {
        group_id: g.group_id().unwrap_or_default().into(),
        group_name: g.group_name().unwrap_or_default().into(),
        vpc_id: g.vpc_id().unwrap_or_default().into(),
        description: g.description().unwrap_or_default().into(),
        ingress: g.ip_permissions().iter().map(permission).collect(),
        tags: tags_of(g.tags()),
    }
}

fn peering(p: &t::VpcPeeringConnection, region: &str) -> VpcPeeringConnection {
    let req = p.requester_vpc_info();
    let acc = p.accepter_vpc_info();
    VpcPeeringConnection {
        id: p.vpc_peering_connection_id().unwrap_or_default().into(),
        requester_vpc_id: req.and_then(|x| x.vpc_id()).unwrap_or_default().into(),
        requester_region: req.and_then(|x| x.region()).unwrap_or(region).into(),
        requester_cidr: req.and_then(|x| x.cidr_block()).unwrap_or_default().into(),
        accepter_vpc_id: acc.and_then(|x| x.vpc_id()).unwrap_or_default().into(),
        accepter_region: acc.and_then(|x| x.region()).unwrap_or(region).into(),
        accepter_cidr: acc.and_then(|x| x.cidr_block()).unwrap_or_default().into(),
        status: p
            .status()
            .and_then(|s| s.code())
            .map(|c| c.as_str().to_string())
            .unwrap_or_default(),
        tags: tags_of(p.tags()),
    }
}

fn route_target(r: &t::Route) -> String {
    [
        r.vpc_peering_connection_id(),
        r.gateway_id(),
        r.nat_gateway_id(),
        r.transit_gateway_id(),
        r.network_interface_id(),
        r.instance_id(),
        r.egress_only_internet_gateway_id(),
        r.local_gateway_id(),
        r.carrier_gateway_id(),
    ]
    .into_iter()
    .flatten()
    .next()
    .unwrap_or_default()
    .to_string()
}

fn route_table(rt: &t::RouteTable) -> RouteTable {
    let mut routes = Vec::new();
    let mut endpoint_ids = Vec::new();
    for r in rt.routes() {
        match (r.destination_cidr_block(), r.destination_prefix_list_id()) {
            (Some(cidr), _) => routes.push(Route {
                destination_cidr: cidr.into(),
                target: route_target(r),
                state: r
                    .state()
                    .map(|s| s.as_str().to_string())
                    .unwrap_or_default(),
            }),
            // Gateway endpoints show up as prefix-list routes to the endpoint.
            (None, Some(_)) => {
                if let Some(g) = r.gateway_id().filter(|g| g.starts_with("vpce-")) {
                    endpoint_ids.push(g.to_string());
                }
            }
            _ => {}
        }
    }
    RouteTable {
        route_table_id: rt.route_table_id().unwrap_or_default().into(),
        vpc_id: rt.vpc_id().unwrap_or_default().into(),
        routes,
        subnet_associations: rt
            .associations()
            .iter()
            .filter_map(|a| a.subnet_id().map(str::to_string))
            .collect(),
        endpoint_ids,
        tags: tags_of(rt.tags()),
    }
}

fn endpoint(e: &t::VpcEndpoint) -> VpcEndpoint {
    VpcEndpoint {
        vpc_endpoint_id: e.vpc_endpoint_id().unwrap_or_default().into(),
        vpc_id: e.vpc_id().unwrap_or_default().into(),
        service_name: e.service_name().unwrap_or_default().into(),
        endpoint_type: e
            .vpc_endpoint_type()
            .map(|x| x.as_str().to_string())
            .unwrap_or_default(),
        route_table_ids: e.route_table_ids().to_vec(),
        // EC2 spells endpoint states `Available`, `Pending`; the contract lower-cases
        // states as for every other resource.
        state: e
            .state()
            .map(|x| x.as_str().to_ascii_lowercase())
            .unwrap_or_default(),
        tags: tags_of(e.tags()),
    }
}

async fn vpc(c: &Client, call: &CapCall, region: &str, v: &t::Vpc) -> Result<Vpc, CapError> {
    let id = v.vpc_id().unwrap_or_default().to_string();
    let attr = |a: t::VpcAttributeName| c.describe_vpc_attribute().vpc_id(&id).attribute(a).send();
    let support = send(
        call,
        "DescribeVpcAttribute",
        attr(t::VpcAttributeName::EnableDnsSupport),
    )
    .await?
    .enable_dns_support()
    .and_then(|x| x.value())
    .unwrap_or(true);
    let hostnames = send(
        call,
        "DescribeVpcAttribute",
        attr(t::VpcAttributeName::EnableDnsHostnames),
    )
    .await?
    .enable_dns_hostnames()
    .and_then(|x| x.value())
    .unwrap_or(false);
    Ok(Vpc {
        vpc_id: id.clone(),
        region: region.into(),
        cidr_block: v.cidr_block().unwrap_or_default().into(),
        state: v
            .state()
            .map(|x| x.as_str().to_string())
            .unwrap_or_default(),
        enable_dns_support: support,
        enable_dns_hostnames: hostnames,
        tags: tags_of(v.tags()),
    })
}

async fn security_group_by_id(
    c: &Client,
    call: &CapCall,
    id: &str,
) -> Result<SecurityGroup, CapError> {
    let o = send(
        call,
        "DescribeSecurityGroups",
        c.describe_security_groups().group_ids(id).send(),
    )
    .await?;
    o.security_groups()
        .first()
        .map(security_group)
        .ok_or_else(|| CapError::internal(format!("AWS answered without security group {id}")))
}

/// Disassociate `rtb` from subnets that no longer exist; true if any was.
async fn drop_dangling_associations(
    c: &Client,
    call: &CapCall,
    rtb: &str,
) -> Result<bool, CapError> {
    let o = send(
        call,
        "DescribeRouteTables",
        c.describe_route_tables().route_table_ids(rtb).send(),
    )
    .await?;
    let mut dropped = false;
    for a in o.route_tables().iter().flat_map(|t| t.associations()) {
        let (Some(sub), Some(id)) = (a.subnet_id(), a.route_table_association_id()) else {
            continue;
        };
        let exists = send(
            call,
            "DescribeSubnets",
            c.describe_subnets()
                .filters(t::Filter::builder().name("subnet-id").values(sub).build())
                .send(),
        )
        .await?
        .subnets()
        .iter()
        .any(|s| s.subnet_id() == Some(sub));
        if !exists {
            send(
                call,
                "DisassociateRouteTable",
                c.disassociate_route_table().association_id(id).send(),
            )
            .await?;
            dropped = true;
        }
    }
    Ok(dropped)
}

pub(crate) async fn handle(p: &AwsProvider, call: &CapCall) -> Result<Value, CapError> {
    let region = call.region()?.to_string();
    let r = region.as_str();
    let c = p.ec2(r).await;
    let list = |name: &str| -> Result<Vec<String>, CapError> { call.arg_as(name) };
    let filt = || -> Result<Vec<Filter>, CapError> { call.arg_as("filters") };
    let tags = || -> Result<Vec<Tag>, CapError> { call.arg_as("tags") };
    match call.action.as_str() {
        "DescribeAvailabilityZones" => {
            let o = send(
                call,
                "DescribeAvailabilityZones",
                c.describe_availability_zones().send(),
            )
            .await?;
            let mut zones: Vec<String> = o
                .availability_zones()
                .iter()
                .filter(|z| z.state().is_none_or(|s| s.as_str() == "available"))
                .filter_map(|z| z.zone_name().map(str::to_string))
                .collect();
            zones.sort();
            Ok(to_value(zones))
        }
        "CreateVpc" => {
            let cidr: String = call.arg_as("cidr_block")?;
            let o = send(
                call,
                "CreateVpc",
                c.create_vpc()
                    .cidr_block(&cidr)
                    .set_tag_specifications(spec(t::ResourceType::Vpc, &tags()?))
                    .send(),
            )
            .await?;
            let v = o
                .vpc()
                .ok_or_else(|| CapError::internal("AWS answered without the VPC"))?;
            vpc(&c, call, r, v).await.map(to_value)
        }
        "DescribeVpcs" => {
            let mut out = Vec::new();
            let mut token = None;
            loop {
                let o = send(
                    call,
                    "DescribeVpcs",
                    c.describe_vpcs()
                        .set_vpc_ids(ids(list("vpc_ids")?))
                        .set_filters(filters(&filt()?))
                        .set_next_token(token.take())
                        .send(),
                )
                .await?;
                for v in o.vpcs() {
                    out.push(vpc(&c, call, r, v).await?);
                }
                match o.next_token() {
                    Some(n) if !n.is_empty() => token = Some(n.to_string()),
                    _ => break,
                }
            }
            Ok(to_value(out))
        }
        "ModifyVpcAttribute" => {
            let id: String = call.arg_as("vpc_id")?;
            let support: Option<bool> = call.arg_as("enable_dns_support")?;
            let hostnames: Option<bool> = call.arg_as("enable_dns_hostnames")?;
            // One attribute per call, as EC2 requires.
            if let Some(v) = support {
                send(
                    call,
                    "ModifyVpcAttribute",
                    c.modify_vpc_attribute()
                        .vpc_id(&id)
                        .enable_dns_support(t::AttributeBooleanValue::builder().value(v).build())
                        .send(),
                )
                .await?;
            }
            if let Some(v) = hostnames {
                send(
                    call,
                    "ModifyVpcAttribute",
                    c.modify_vpc_attribute()
                        .vpc_id(&id)
                        .enable_dns_hostnames(t::AttributeBooleanValue::builder().value(v).build())
                        .send(),
                )
                .await?;
            }
            Ok(Value::Null)
        }
        "DeleteVpc" => {
            let id: String = call.arg_as("vpc_id")?;
            send(call, "DeleteVpc", c.delete_vpc().vpc_id(&id).send()).await?;
            Ok(Value::Null)
        }
        "CreateSubnet" => {
            let vpc_id: String = call.arg_as("vpc_id")?;
            let cidr: String = call.arg_as("cidr_block")?;
            let az: String = call.arg_as("availability_zone")?;
            let o = send(
                call,
                "CreateSubnet",
                c.create_subnet()
                    .vpc_id(&vpc_id)
                    .cidr_block(&cidr)
                    .availability_zone(&az)
                    .set_tag_specifications(spec(t::ResourceType::Subnet, &tags()?))
                    .send(),
            )
            .await?;
            o.subnet()
                .map(|s| to_value(subnet(s)))
                .ok_or_else(|| CapError::internal("AWS answered without the subnet"))
        }
        "DescribeSubnets" => {
            let mut out = Vec::new();
            let mut token = None;
            loop {
                let o = send(
                    call,
                    "DescribeSubnets",
                    c.describe_subnets()
                        .set_subnet_ids(ids(list("subnet_ids")?))
                        .set_filters(filters(&filt()?))
                        .set_next_token(token.take())
                        .send(),
                )
                .await?;
                out.extend(o.subnets().iter().map(subnet));
                match o.next_token() {
                    Some(n) if !n.is_empty() => token = Some(n.to_string()),
                    _ => break,
                }
            }
            Ok(to_value(out))
        }
        "DeleteSubnet" => {
            let id: String = call.arg_as("subnet_id")?;
            send(
                call,
                "DeleteSubnet",
                c.delete_subnet().subnet_id(&id).send(),
            )
            .await?;
            Ok(Value::Null)
        }
        "CreateSecurityGroup" => {
            let name: String = call.arg_as("group_name")?;
            let description: String = call.arg_as("description")?;
            let vpc_id: String = call.arg_as("vpc_id")?;
            let o = send(
                call,
                "CreateSecurityGroup",
                c.create_security_group()
                    .group_name(&name)
                    .description(&description)
                    .vpc_id(&vpc_id)
                    .set_tag_specifications(spec(t::ResourceType::SecurityGroup, &tags()?))
                    .send(),
            )
            .await?;
            let id = o.group_id().unwrap_or_default().to_string();
            security_group_by_id(&c, call, &id).await.map(to_value)
        }
        "DescribeSecurityGroups" => {
            let mut out = Vec::new();
            let mut token = None;
            loop {
                let o = send(
                    call,
                    "DescribeSecurityGroups",
                    c.describe_security_groups()
                        .set_group_ids(ids(list("group_ids")?))
                        .set_filters(filters(&filt()?))
                        .set_next_token(token.take())
                        .send(),
                )
                .await?;
                out.extend(o.security_groups().iter().map(security_group));
                match o.next_token() {
                    Some(n) if !n.is_empty() => token = Some(n.to_string()),
                    _ => break,
                }
            }
            Ok(to_value(out))
        }
        "AuthorizeSecurityGroupIngress" | "RevokeSecurityGroupIngress" => {
            let id: String = call.arg_as("group_id")?;
            let perms: Vec<IpPermission> = call.arg_as("permissions")?;
            let perms: Vec<t::IpPermission> = perms.iter().map(sdk_permission).collect();
            if call.action == "AuthorizeSecurityGroupIngress" {
                send(
                    call,
                    "AuthorizeSecurityGroupIngress",
                    c.authorize_security_group_ingress()
                        .group_id(&id)
                        .set_ip_permissions(Some(perms))
                        .send(),
                )
                .await?;
            } else {
                send(
                    call,
                    "RevokeSecurityGroupIngress",
                    c.revoke_security_group_ingress()
                        .group_id(&id)
                        .set_ip_permissions(Some(perms))
                        .send(),
                )
                .await?;
            }
            Ok(Value::Null)
        }
        "DeleteSecurityGroup" => {
            let id: String = call.arg_as("group_id")?;
            send(
                call,
                "DeleteSecurityGroup",
                c.delete_security_group().group_id(&id).send(),
            )
            .await?;
            Ok(Value::Null)
        }
        "CreateVpcPeeringConnection" => {
            let vpc_id: String = call.arg_as("vpc_id")?;
            let peer: String = call.arg_as("peer_vpc_id")?;
            let peer_region: Option<String> = call.arg_as("peer_region")?;
            let peer_region = peer_region.filter(|x| !x.is_empty());
            let o = send(
                call,
                "CreateVpcPeeringConnection",
                c.create_vpc_peering_connection()
                    .vpc_id(&vpc_id)
                    .peer_vpc_id(&peer)
                    .set_peer_region(peer_region.clone())
                    .set_tag_specifications(spec(t::ResourceType::VpcPeeringConnection, &tags()?))
                    .send(),
            )
            .await?;
            let pc = o
                .vpc_peering_connection()
                .ok_or_else(|| CapError::internal("AWS answered without the peering"))?;
            let mut out = peering(pc, r);
            // The create answer may omit the accepter's region; it is the one asked for.
            if let Some(pr) = peer_region {
                out.accepter_region = pr;
            }
            if out.status == "failed" {
                tracing::warn!(
                    peering = %out.id,
                    reason = ?pc.status().and_then(|s| s.message()),
                    "peering failed (overlapping CIDRs?)"
                );
            }
            Ok(to_value(out))
        }
        "AcceptVpcPeeringConnection" => {
            let id: String = call.arg_as("peering_id")?;
            let o = send(
                call,
                "AcceptVpcPeeringConnection",
                c.accept_vpc_peering_connection()
                    .vpc_peering_connection_id(&id)
                    .send(),
            )
            .await?;
            o.vpc_peering_connection()
                .map(|x| to_value(peering(x, r)))
                .ok_or_else(|| CapError::internal("AWS answered without the peering"))
        }
        "DescribeVpcPeeringConnections" => {
            let mut out = Vec::new();
            let mut token = None;
            loop {
                let o = send(
                    call,
                    "DescribeVpcPeeringConnections",
                    c.describe_vpc_peering_connections()
                        .set_vpc_peering_connection_ids(ids(list("peering_ids")?))
                        .set_filters(filters(&filt()?))
                        .set_next_token(token.take())
                        .send(),
                )
                .await?;
                out.extend(o.vpc_peering_connections().iter().map(|x| peering(x, r)));
                match o.next_token() {
                    Some(n) if !n.is_empty() => token = Some(n.to_string()),
                    _ => break,
                }
            }
            Ok(to_value(out))
        }
        "DeleteVpcPeeringConnection" => {
            let id: String = call.arg_as("peering_id")?;
            send(
                call,
                "DeleteVpcPeeringConnection",
                c.delete_vpc_peering_connection()
                    .vpc_peering_connection_id(&id)
                    .send(),
            )
            .await?;
            Ok(Value::Null)
        }
        "CreateRouteTable" => {
            let vpc_id: String = call.arg_as("vpc_id")?;
            let o = send(
                call,
                "CreateRouteTable",
                c.create_route_table()
                    .vpc_id(&vpc_id)
                    .set_tag_specifications(spec(t::ResourceType::RouteTable, &tags()?))
                    .send(),
            )
            .await?;
            o.route_table()
                .map(|x| to_value(route_table(x)))
                .ok_or_else(|| CapError::internal("AWS answered without the route table"))
        }
        "DescribeRouteTables" => {
            let mut out = Vec::new();
            let mut token = None;
            loop {
                let o = send(
                    call,
                    "DescribeRouteTables",
                    c.describe_route_tables()
                        .set_route_table_ids(ids(list("route_table_ids")?))
                        .set_filters(filters(&filt()?))
                        .set_next_token(token.take())
                        .send(),
                )
                .await?;
                out.extend(o.route_tables().iter().map(route_table));
                match o.next_token() {
                    Some(n) if !n.is_empty() => token = Some(n.to_string()),
                    _ => break,
                }
            }
            Ok(to_value(out))
        }
        "AssociateRouteTable" => {
            let rtb: String = call.arg_as("route_table_id")?;
            let sub: String = call.arg_as("subnet_id")?;
            let o = send(
                call,
                "AssociateRouteTable",
                c.associate_route_table()
                    .route_table_id(&rtb)
                    .subnet_id(&sub)
                    .send(),
            )
            .await?;
            Ok(json!(o.association_id().unwrap_or_default()))
        }
        "CreateRoute" => {
            let rtb: String = call.arg_as("route_table_id")?;
            let dest: String = call.arg_as("destination_cidr")?;
            let target: String = call.arg_as("target")?;
            let b = c
                .create_route()
                .route_table_id(&rtb)
                .destination_cidr_block(&dest);
            // The target id's prefix says which kind of target it is.
            let b = match target.split('-').next().unwrap_or_default() {
                "pcx" => b.vpc_peering_connection_id(&target),
                "nat" => b.nat_gateway_id(&target),
                "tgw" => b.transit_gateway_id(&target),
                "eni" => b.network_interface_id(&target),
                "vpce" => b.vpc_endpoint_id(&target),
                "i" => b.instance_id(&target),
                "eigw" => b.egress_only_internet_gateway_id(&target),
                _ => b.gateway_id(&target),
            };
            send(call, "CreateRoute", b.send()).await?;
            Ok(Value::Null)
        }
        "DeleteRoute" => {
            let rtb: String = call.arg_as("route_table_id")?;
            let dest: String = call.arg_as("destination_cidr")?;
            send(
                call,
                "DeleteRoute",
                c.delete_route()
                    .route_table_id(&rtb)
                    .destination_cidr_block(&dest)
                    .send(),
            )
            .await?;
            Ok(Value::Null)
        }
        "DeleteRouteTable" => {
            let rtb: String = call.arg_as("route_table_id")?;
            let first = send(
                call,
                "DeleteRouteTable",
                c.delete_route_table().route_table_id(&rtb).send(),
            )
            .await;
            match first {
                Ok(_) => Ok(Value::Null),
                Err(e) if e.kind == runbook_caps::ErrorKind::DependencyViolation => {
                    // EC2 drops a subnet's route-table association when the subnet is
                    // deleted; moto keeps it dangling and then refuses the delete. Remove
                    // only associations whose subnet no longer exists, and retry once.
                    if !drop_dangling_associations(&c, call, &rtb).await? {
                        return Err(e);
                    }
                    send(
                        call,
                        "DeleteRouteTable",
                        c.delete_route_table().route_table_id(&rtb).send(),
                    )
                    .await?;
                    Ok(Value::Null)
                }
                Err(e) => Err(e),
            }
        }
        "CreateVpcEndpoint" => {
            let vpc_id: String = call.arg_as("vpc_id")?;
            let service: String = call.arg_as("service_name")?;
            let kind: String = call.arg_as("endpoint_type")?;
            let rtbs: Vec<String> = call.arg_as("route_table_ids")?;
            let o = send(
                call,
                "CreateVpcEndpoint",
                c.create_vpc_endpoint()
                    .vpc_id(&vpc_id)
                    .service_name(&service)
                    .vpc_endpoint_type(t::VpcEndpointType::from(kind.as_str()))
                    .set_route_table_ids(ids(rtbs))
                    .set_tag_specifications(spec(t::ResourceType::VpcEndpoint, &tags()?))
                    .send(),
            )
            .await?;
            o.vpc_endpoint()
                .map(|x| to_value(endpoint(x)))
                .ok_or_else(|| CapError::internal("AWS answered without the endpoint"))
        }
        "DescribeVpcEndpoints" => {
            let mut out = Vec::new();
            let mut token = None;
            loop {
                let o = send(
                    call,
                    "DescribeVpcEndpoints",
                    c.describe_vpc_endpoints()
                        .set_vpc_endpoint_ids(ids(list("vpc_endpoint_ids")?))
                        .set_filters(filters(&filt()?))
                        .set_next_token(token.take())
                        .send(),
                )
                .await?;
                out.extend(o.vpc_endpoints().iter().map(endpoint));
                match o.next_token() {
                    Some(n) if !n.is_empty() => token = Some(n.to_string()),
                    _ => break,
                }
            }
            Ok(to_value(out))
        }
        "DeleteVpcEndpoints" => {
            let want: Vec<String> = call.arg_as("vpc_endpoint_ids")?;
            let o = send(
                call,
                "DeleteVpcEndpoints",
                c.delete_vpc_endpoints()
                    .set_vpc_endpoint_ids(Some(want))
                    .send(),
            )
            .await?;
            // EC2 reports per-endpoint failures in the answer, not as an error.
            if let Some(u) = o.unsuccessful().first() {
                let e = u.error();
                return Err(crate::error::classify(
                    e.and_then(|e| e.code())
                        .unwrap_or("InvalidVpcEndpointId.NotFound"),
                    &format!(
                        "{}: {}",
                        u.resource_id().unwrap_or_default(),
                        e.and_then(|e| e.message()).unwrap_or_default()
                    ),
                    Some(400),
                ));
            }
            Ok(Value::Null)
        }
        "CreateTags" => {
            let want: Vec<String> = call.arg_as("resource_ids")?;
            send(
                call,
                "CreateTags",
                c.create_tags()
                    .set_resources(Some(want))
                    .set_tags(Some(sdk_tags(&tags()?)))
                    .send(),
            )
            .await?;
            Ok(Value::Null)
        }
        _ => Err(CapError::unsupported(call, "aws")),
    }
}
