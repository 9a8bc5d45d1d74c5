//! Opaque page tokens: base64url of a cursor, so clients cannot come to rely on their shape.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use keel_kernel::Error;

fn decode(token: &str) -> Result<Option<String>, Error> {
    if token.is_empty() {
        return Ok(None);
    }
    let bytes = URL_SAFE_NO_PAD
        .decode(token)
        .map_err(|_| Error::invalid("page_token", "is not a page token of this list"))?;
    String::from_utf8(bytes)
        .map(Some)
        .map_err(|_| Error::invalid("page_token", "is not a page token of this list"))
}

fn encode(cursor: &str) -> String {
    URL_SAFE_NO_PAD.encode(cursor)
}

/// A keyset cursor: the id of the last item of the previous page.
pub fn decode_after(token: &str) -> Result<Option<uuid::Uuid>, Error> {
    decode(token)?
        .map(|cursor| {
            cursor
                .strip_prefix("after:")
                .and_then(|id| uuid::Uuid::parse_str(id).ok())
                .ok_or_else(|| Error::invalid("page_token", "is not a page token of this list"))
        })
        .transpose()
}

pub fn encode_after(id: uuid::Uuid) -> String {
    encode(&format!("after:{id}"))
}

/// An offset cursor, for short lists held in memory.
pub fn decode_offset(token: &str) -> Result<usize, Error> {
    match decode(token)? {
        None => Ok(0),
        Some(cursor) => cursor
            .strip_prefix("offset:")
            .and_then(|n| n.parse().ok())
            .ok_or_else(|| Error::invalid("page_token", "is not a page token of this list")),
    }
}

pub fn encode_offset(offset: usize) -> String {
    encode(&format!("offset:{offset}"))
}

/// One page of an in-memory list and the token of the next.
pub fn page<T>(items: Vec<T>, token: &str, size: i64) -> Result<(Vec<T>, String), Error> {
    let offset = decode_offset(token)?;
    let size = size.max(1) as usize;
    let total = items.len();
    let page: Vec<T> = items.into_iter().skip(offset).take(size).collect();
    let next = if offset + size < total {
        encode_offset(offset + size)
    } else {
        String::new()
    };
    Ok((page, next))
}
