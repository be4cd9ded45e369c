//! DescribeGroups v0–5: split by coordinator partition, answered in request order. Groups
//! whose coordinator is not on this broker get NOT_COORDINATOR; authorized operations are
//! not computed (Kafka's "not requested" value, i32::MIN).

use std::sync::Arc;

use kafka_protocol::messages::describe_groups_response::{DescribedGroup, DescribedGroupMember};
use kafka_protocol::messages::{
    DescribeGroupsRequest, DescribeGroupsResponse, GroupId, ResponseKind,
};
use strata_core::group::{self, DescribeGroups, Request, Response};

use super::str_bytes;
use crate::broker::Broker;
use crate::group::gather;
use crate::handled::Handled;

pub fn handle(broker: &Arc<Broker>, req: DescribeGroupsRequest) -> Handled {
    let names: Vec<String> = req.groups.iter().map(|g| g.0.to_string()).collect();
    let submitted = broker.groups.submit_by_group(
        broker,
        names.iter().map(|g| (g.clone(), g.clone())).collect(),
        |groups| Request::DescribeGroups(DescribeGroups { groups }),
    );
    Handled::Later(Box::pin(async move {
        let described = gather(
            names.len(),
            submitted,
            |r| match r {
                Response::DescribeGroups(groups) => Some(groups),
                _ => None,
            },
            |i, code| group::DescribedGroup {
                group_id: names[i].clone(),
                error_code: code,
                group_state: String::new(),
                protocol_type: String::new(),
                protocol_data: String::new(),
                members: Vec::new(),
            },
        )
        .await;
        ResponseKind::DescribeGroups(
            DescribeGroupsResponse::default().with_groups(
                described
                    .into_iter()
                    .map(|g| {
                        DescribedGroup::default()
                            .with_error_code(g.error_code.0)
                            .with_group_id(GroupId(str_bytes(&g.group_id)))
                            .with_group_state(str_bytes(&g.group_state))
                            .with_protocol_type(str_bytes(&g.protocol_type))
                            .with_protocol_data(str_bytes(&g.protocol_data))
                            .with_authorized_operations(i32::MIN)
                            .with_members(
                                g.members
                                    .into_iter()
                                    .map(|m| {
                                        DescribedGroupMember::default()
                                            .with_member_id(str_bytes(&m.member_id))
                                            .with_group_instance_id(
                                                m.group_instance_id.as_deref().map(str_bytes),
                                            )
                                            .with_client_id(str_bytes(&m.client_id))
                                            .with_client_host(str_bytes(&m.client_host))
                                            .with_member_metadata(m.member_metadata)
                                            .with_member_assignment(m.member_assignment)
                                    })
                                    .collect(),
                            )
                    })
                    .collect(),
            ),
        )
    }))
}
