//! DeleteGroups v0–2: split by coordinator partition, answered in request order; the
//! coordinator parks each answer until its tombstones are below the high watermark.

use std::sync::Arc;

use kafka_protocol::messages::delete_groups_response::DeletableGroupResult;
use kafka_protocol::messages::{DeleteGroupsRequest, DeleteGroupsResponse, GroupId, ResponseKind};
use strata_core::group::{DeleteGroups, Request, Response};

use super::str_bytes;
use crate::broker::Broker;
use crate::group::gather;
use crate::handled::Handled;

pub fn handle(broker: &Arc<Broker>, req: DeleteGroupsRequest) -> Handled {
    let names: Vec<String> = req.groups_names.iter().map(|g| g.0.to_string()).collect();
    let submitted = broker.groups.submit_by_group(
        broker,
        names.iter().map(|g| (g.clone(), g.clone())).collect(),
        |groups| Request::DeleteGroups(DeleteGroups { groups }),
    );
    Handled::Later(Box::pin(async move {
        let results = gather(
            names.len(),
            submitted,
            |r| match r {
                Response::DeleteGroups(results) => Some(results),
                _ => None,
            },
            |i, code| (names[i].clone(), code),
        )
        .await;
        ResponseKind::DeleteGroups(
            DeleteGroupsResponse::default().with_results(
                results
                    .into_iter()
                    .map(|(group_id, code)| {
                        DeletableGroupResult::default()
                            .with_group_id(GroupId(str_bytes(&group_id)))
                            .with_error_code(code.0)
                    })
                    .collect(),
            ),
        )
    }))
}
