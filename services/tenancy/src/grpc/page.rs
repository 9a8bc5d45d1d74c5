//! AIP-158 pagination: `page_size` (default 50, at most 200) and opaque page tokens.
//!
//! A token is the keyset position of the last item returned (a time and an id, or a rank), encoded
//! so that clients treat it as opaque. It carries no tenant: the next page is read under the same
//! checks and the same row-level security as the first.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use chrono::{DateTime, Utc};
use keel_kernel::Error;
use uuid::Uuid;

pub const DEFAULT_PAGE_SIZE: i64 = 50;
pub const MAX_PAGE_SIZE: i64 = 200;

/// The number of items to return for a requested `page_size`.
pub fn page_size(requested: i32) -> Result<i64, Error> {
    match requested {
        n if n < 0 => Err(Error::invalid("page_size", "must not be negative")),
        0 => Ok(DEFAULT_PAGE_SIZE),
        n => Ok(i64::from(n).min(MAX_PAGE_SIZE)),
    }
}

fn invalid_token() -> Error {
    Error::invalid("page_token", "is not a page token returned by this method")
}

/// Decode a (time, id) position; an empty token is the first page.
pub fn decode_time_id(token: &str) -> Result<Option<(DateTime<Utc>, Uuid)>, Error> {
    if token.is_empty() {
        return Ok(None);
    }
    let raw = URL_SAFE_NO_PAD.decode(token).map_err(|_| invalid_token())?;
    let text = String::from_utf8(raw).map_err(|_| invalid_token())?;
    let (micros, id) = text
        .strip_prefix("t1:")
        .and_then(|rest| rest.split_once(':'))
        .ok_or_else(invalid_token)?;
    let micros: i64 = micros.parse().map_err(|_| invalid_token())?;
    let time = DateTime::from_timestamp_micros(micros).ok_or_else(invalid_token)?;
    let id = Uuid::try_parse(id).map_err(|_| invalid_token())?;
    Ok(Some((time, id)))
}

pub fn encode_time_id(time: DateTime<Utc>, id: Uuid) -> String {
    URL_SAFE_NO_PAD.encode(format!("t1:{}:{id}", time.timestamp_micros()))
}

/// Decode a rank position; an empty token is the first page.
pub fn decode_rank(token: &str) -> Result<Option<i32>, Error> {
    if token.is_empty() {
        return Ok(None);
    }
    let raw = URL_SAFE_NO_PAD.decode(token).map_err(|_| invalid_token())?;
    let text = String::from_utf8(raw).map_err(|_| invalid_token())?;
    let rank = text.strip_prefix("r1:").ok_or_else(invalid_token)?;
    rank.parse().map(Some).map_err(|_| invalid_token())
}

pub fn encode_rank(rank: i32) -> String {
    URL_SAFE_NO_PAD.encode(format!("r1:{rank}"))
}

/// Fetch one more row than asked: if it came, there is a next page and the token points at the
/// last row kept.
pub fn split_page<T>(
    mut rows: Vec<T>,
    size: i64,
    token_of: impl Fn(&T) -> String,
) -> (Vec<T>, String) {
    let size = usize::try_from(size).unwrap_or(usize::MAX);
    if rows.len() > size {
        rows.truncate(size);
        let next = rows.last().map(&token_of).unwrap_or_default();
        (rows, next)
    } else {
        (rows, String::new())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_time_id_token_round_trips() {
        let time = DateTime::from_timestamp_micros(1_700_000_000_123_456).expect("valid time");
        let id = Uuid::now_v7();
        assert_eq!(
            decode_time_id(&encode_time_id(time, id)).ok().flatten(),
            Some((time, id))
        );
    }

    #[test]
    fn garbage_tokens_are_validation_errors() {
        for bad in ["nope", "dDE6eDp5", &encode_rank(3)] {
            assert!(decode_time_id(bad).is_err(), "{bad}");
        }
        assert!(decode_rank(&encode_time_id(Utc::now(), Uuid::nil())).is_err());
    }

    #[test]
    fn page_sizes_default_and_cap() {
        assert_eq!(page_size(0).ok(), Some(DEFAULT_PAGE_SIZE));
        assert_eq!(page_size(1000).ok(), Some(MAX_PAGE_SIZE));
        assert!(page_size(-1).is_err());
    }

    #[test]
    fn a_page_with_an_extra_row_has_a_next_token() {
        let (rows, next) = split_page(vec![1, 2, 3], 2, |n| n.to_string());
        assert_eq!((rows, next.as_str()), (vec![1, 2], "2"));
        let (rows, next) = split_page(vec![1, 2], 2, |n| n.to_string());
        assert_eq!((rows, next.as_str()), (vec![1, 2], ""));
    }
}
