//! A frame's bytes: the format version, then the postcard body, within the size limit.

use serde::Serialize;
use serde::de::DeserializeOwned;

/// The first byte of every frame.
pub const FORMAT_VERSION: u8 = 1;

/// The largest frame, in bytes, version byte included.
pub const MAX_FRAME_BYTES: usize = 256 * 1024;

/// Why a frame could not be made or read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FrameError {
    #[error("frame of {len} bytes is over the limit of {MAX_FRAME_BYTES} bytes")]
    TooLarge { len: usize },
    #[error("frame format version {0} is unknown; this build speaks version {FORMAT_VERSION}")]
    UnknownVersion(u8),
    #[error("empty frame")]
    Empty,
    #[error("frame does not decode: {0}")]
    Decode(String),
    #[error("frame does not encode: {0}")]
    Encode(String),
    #[error("event with node_seq {node_seq} takes {len} bytes, more than one frame can carry")]
    EventTooLarge { node_seq: u64, len: usize },
}

/// Encodes a frame body: the version byte, then postcard.
pub fn encode<T: Serialize + ?Sized>(body: &T) -> Result<Vec<u8>, FrameError> {
    let out = postcard::to_extend(body, vec![FORMAT_VERSION])
        .map_err(|e| FrameError::Encode(e.to_string()))?;
    if out.len() > MAX_FRAME_BYTES {
        return Err(FrameError::TooLarge { len: out.len() });
    }
    Ok(out)
}

/// Decodes a frame body, refusing an empty, oversized or unknown-version frame before
/// decoding, and a frame with bytes left over after the body.
pub fn decode<T: DeserializeOwned>(frame: &[u8]) -> Result<T, FrameError> {
    let Some((&version, body)) = frame.split_first() else {
        return Err(FrameError::Empty);
    };
    if frame.len() > MAX_FRAME_BYTES {
        return Err(FrameError::TooLarge { len: frame.len() });
    }
    if version != FORMAT_VERSION {
        return Err(FrameError::UnknownVersion(version));
    }
    let (value, rest) =
        postcard::take_from_bytes::<T>(body).map_err(|e| FrameError::Decode(e.to_string()))?;
    if !rest.is_empty() {
        return Err(FrameError::Decode(format!(
            "{} bytes left over after the frame body",
            rest.len()
        )));
    }
    Ok(value)
}

/// The length of postcard's varint encoding of `n`.
pub(super) fn varint_len(n: usize) -> usize {
    let bits = usize::BITS - n.leading_zeros();
    (bits as usize).div_ceil(7).max(1)
}
