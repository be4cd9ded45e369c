//! Encoding of [`Envelope`]s: postcard, length-prefixed by the transport.

use thiserror::Error;

use super::messages::Envelope;

/// Largest internal frame accepted (a full metadata image of a big cluster fits).
pub const MAX_FRAME_BYTES: usize = 64 * 1024 * 1024;

#[derive(Debug, Error)]
pub enum CodecError {
    #[error("malformed internal message: {0}")]
    Malformed(#[from] postcard::Error),
}

/// Encodes an envelope (without the length prefix).
pub fn encode(envelope: &Envelope) -> Vec<u8> {
    postcard::to_allocvec(envelope).expect("serialising into a Vec cannot fail")
}

/// Decodes an envelope; bytes after the message are rejected.
pub fn decode(bytes: &[u8]) -> Result<Envelope, CodecError> {
    let (envelope, rest) = postcard::take_from_bytes::<Envelope>(bytes)?;
    if !rest.is_empty() {
        return Err(CodecError::Malformed(
            postcard::Error::DeserializeUnexpectedEnd,
        ));
    }
    Ok(envelope)
}
