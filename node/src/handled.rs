//! What a handler returns ([`Handled`]) and who sent the request ([`Client`]): the types
//! `dispatch` and every handler share, kept apart so that neither imports the other's module.

use std::future::Future;
use std::pin::Pin;

use kafka_protocol::messages::ResponseKind;

/// Who sent a request: JoinGroup stores it with the member (DescribeGroups shows it).
#[derive(Debug, Clone, Default)]
pub struct Client {
    /// The request header's `client_id` ("" when null).
    pub client_id: String,
    /// The peer's address as Kafka shows it (`/127.0.0.1`); "" when unknown.
    pub host: String,
}

/// A boxed future producing a response body.
pub type Pending = Pin<Box<dyn Future<Output = ResponseKind> + Send>>;

/// What a handler returns.
// A response is built once and moved once; boxing it would only add an allocation.
#[allow(clippy::large_enum_variant)]
pub enum Handled {
    /// The response is ready.
    Now(ResponseKind),
    /// The response will be ready later (fsync wait, long poll).
    Later(Pending),
    /// Send nothing (Produce with acks=0).
    NoResponse,
}
