//! ListGroups v0–5: the groups of every coordinator on this broker.
//!
//! A coordinator still loading makes the answer COORDINATOR_LOAD_IN_PROGRESS, with the groups of
//! the others (Kafka's behaviour). `states_filter` (v4+, KIP-518) is the coordinator's;
//! `types_filter` (v5+, KIP-848) keeps classic groups only when it names "classic": there are
//! no other types here.

use std::sync::Arc;

use kafka_protocol::messages::list_groups_response::ListedGroup;
use kafka_protocol::messages::{GroupId, ListGroupsRequest, ListGroupsResponse, ResponseKind};
use strata_core::ErrorCode;
use strata_core::group::{ListGroups, Request, Response};

use super::str_bytes;
use crate::broker::Broker;
use crate::group::wait;
use crate::handled::Handled;

pub fn handle(broker: &Arc<Broker>, req: ListGroupsRequest, version: i16) -> Handled {
    let classic = version < 5
        || req.types_filter.is_empty()
        || req
            .types_filter
            .iter()
            .any(|t| t.eq_ignore_ascii_case("classic"));
    let states_filter: Vec<String> = if version >= 4 {
        req.states_filter.iter().map(|s| s.to_string()).collect()
    } else {
        Vec::new()
    };
    let submitted: Vec<_> = if classic {
        broker
            .groups
            .partitions()
            .into_iter()
            .map(|p| {
                let request = Request::ListGroups(ListGroups {
                    states_filter: states_filter.clone(),
                });
                broker.groups.submit(broker, p, request)
            })
            .collect()
    } else {
        Vec::new()
    };
    Handled::Later(Box::pin(async move {
        let mut error = ErrorCode::NONE;
        let mut groups = Vec::new();
        for pending in submitted {
            // Anything else: the coordinator ended meanwhile, its groups are another broker's.
            if let Ok(Response::ListGroups(r)) = wait(pending).await {
                if r.error_code != ErrorCode::NONE && error == ErrorCode::NONE {
                    error = r.error_code;
                }
                groups.extend(r.groups.into_iter().map(|g| {
                    ListedGroup::default()
                        .with_group_id(GroupId(str_bytes(&g.group_id)))
                        .with_protocol_type(str_bytes(&g.protocol_type))
                        .with_group_state(str_bytes(&g.group_state))
                        .with_group_type(str_bytes("classic"))
                }));
            }
        }
        ResponseKind::ListGroups(
            ListGroupsResponse::default()
                .with_error_code(error.0)
                .with_groups(groups),
        )
    }))
}
