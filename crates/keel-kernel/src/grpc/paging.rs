//! AIP-158 pagination, one scheme for every list: `page_size` (0 = the default, negative is
//! VALIDATION, large values are capped) and opaque page tokens.
//!
//! A token is a typed keyset position ([`Cursor`]) in a versioned, base64url envelope, so clients
//! cannot come to rely on its shape and a token of one list is refused by another. It carries no
//! tenant: the next page is read under the same checks and row-level security as the first.
//!
//! Repositories fetch [`PageSize::fetch_limit`] rows (one more than asked); [`split_page`] keeps
//! `page_size` of them and, if the extra row came, makes the next token from the last row kept.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use chrono::{DateTime, Utc};
use uuid::Uuid;

use crate::error::Error;

/// The page size when a request asks for none.
pub const DEFAULT_PAGE_SIZE: u32 = 50;
/// The most items one page returns, whatever a request asks for.
pub const MAX_PAGE_SIZE: u32 = 200;

/// A validated `page_size`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PageSize(u32);

impl PageSize {
    /// The request's `page_size`: 0 means the default, above the maximum means the maximum.
    pub fn parse(requested: i32) -> Result<PageSize, Error> {
        match u32::try_from(requested) {
            Err(_) => Err(Error::invalid("page_size", "must not be negative")),
            Ok(0) => Ok(PageSize(DEFAULT_PAGE_SIZE)),
            Ok(n) => Ok(PageSize(n.min(MAX_PAGE_SIZE))),
        }
    }

    pub fn get(self) -> usize {
        self.0 as usize
    }

    /// The SQL `LIMIT`: one row more than the page, to learn whether another page follows.
    pub fn fetch_limit(self) -> i64 {
        i64::from(self.0) + 1
    }
}

/// A position in one list, written into a page token.
pub trait Cursor: Sized {
    /// Distinguishes the cursors of different lists, so one list refuses another's token.
    const KIND: &'static str;
    fn write(&self) -> String;
    fn read(text: &str) -> Option<Self>;
}

/// The version of the token envelope; a change of format bumps it and old tokens are refused.
const VERSION: &str = "p1";

/// Encoding and decoding of page tokens.
pub struct PageToken;

impl PageToken {
    pub fn encode<C: Cursor>(cursor: &C) -> String {
        URL_SAFE_NO_PAD.encode(format!("{VERSION}:{}:{}", C::KIND, cursor.write()))
    }

    /// The cursor in a request's `page_token`; an empty token is the first page (`None`).
    pub fn decode<C: Cursor>(token: &str) -> Result<Option<C>, Error> {
        if token.is_empty() {
            return Ok(None);
        }
        let invalid =
            || Error::invalid("page_token", "is not a page token returned by this method");
        let raw = URL_SAFE_NO_PAD.decode(token).map_err(|_| invalid())?;
        let text = String::from_utf8(raw).map_err(|_| invalid())?;
        let mut parts = text.splitn(3, ':');
        match (parts.next(), parts.next(), parts.next()) {
            (Some(VERSION), Some(kind), Some(body)) if kind == C::KIND => {
                C::read(body).map(Some).ok_or_else(invalid)
            }
            _ => Err(invalid()),
        }
    }
}

/// The keyset position of lists ordered by (time, id): the last row's time and id.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TimeId {
    pub at: DateTime<Utc>,
    pub id: Uuid,
}

impl Cursor for TimeId {
    const KIND: &'static str = "t";
    fn write(&self) -> String {
        format!("{}:{}", self.at.timestamp_micros(), self.id)
    }
    fn read(text: &str) -> Option<Self> {
        let (micros, id) = text.split_once(':')?;
        Some(TimeId {
            at: DateTime::from_timestamp_micros(micros.parse().ok()?)?,
            id: Uuid::try_parse(id).ok()?,
        })
    }
}

/// The keyset position of lists ordered by id alone.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AfterId(pub Uuid);

impl Cursor for AfterId {
    const KIND: &'static str = "i";
    fn write(&self) -> String {
        self.0.to_string()
    }
    fn read(text: &str) -> Option<Self> {
        Uuid::try_parse(text).ok().map(AfterId)
    }
}

/// The keyset position of lists ordered by a rank (a priority, an ordinal).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rank(pub i32);

impl Cursor for Rank {
    const KIND: &'static str = "r";
    fn write(&self) -> String {
        self.0.to_string()
    }
    fn read(text: &str) -> Option<Self> {
        text.parse().ok().map(Rank)
    }
}

/// An offset into a short list built in memory (a catalogue); not for tables.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Offset(pub usize);

impl Cursor for Offset {
    const KIND: &'static str = "o";
    fn write(&self) -> String {
        self.0.to_string()
    }
    fn read(text: &str) -> Option<Self> {
        text.parse().ok().map(Offset)
    }
}

/// Keep one page of `rows` (fetched with [`PageSize::fetch_limit`]) and the next page's token:
/// empty when the extra row did not come, i.e. this is the last page.
pub fn split_page<T, C: Cursor>(
    mut rows: Vec<T>,
    size: PageSize,
    cursor_of: impl Fn(&T) -> C,
) -> (Vec<T>, String) {
    if rows.len() > size.get() {
        rows.truncate(size.get());
        let next = rows
            .last()
            .map(|row| PageToken::encode(&cursor_of(row)))
            .unwrap_or_default();
        (rows, next)
    } else {
        (rows, String::new())
    }
}

/// One page of a list held in memory, and the next page's token.
pub fn page_in_memory<T>(
    items: Vec<T>,
    token: &str,
    size: PageSize,
) -> Result<(Vec<T>, String), Error> {
    let offset = PageToken::decode::<Offset>(token)?.map_or(0, |o| o.0);
    let total = items.len();
    let page: Vec<T> = items.into_iter().skip(offset).take(size.get()).collect();
    let next = if offset + size.get() < total {
        PageToken::encode(&Offset(offset + size.get()))
    } else {
        String::new()
    };
    Ok((page, next))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn page_sizes_default_cap_and_refuse_negatives() {
        assert_eq!(PageSize::parse(0).ok(), Some(PageSize(DEFAULT_PAGE_SIZE)));
        assert_eq!(PageSize::parse(1000).ok(), Some(PageSize(MAX_PAGE_SIZE)));
        let err = PageSize::parse(-1).expect_err("negative");
        assert_eq!(err.violations()[0].field, "page_size");
    }

    #[test]
    fn a_time_id_token_round_trips() {
        let cursor = TimeId {
            at: DateTime::from_timestamp_micros(1_700_000_000_123_456).expect("valid time"),
            id: Uuid::now_v7(),
        };
        let token = PageToken::encode(&cursor);
        assert_eq!(
            PageToken::decode::<TimeId>(&token).ok().flatten(),
            Some(cursor)
        );
    }

    #[test]
    fn a_token_of_another_list_or_garbage_is_refused() {
        let rank = PageToken::encode(&Rank(3));
        for bad in ["nope", "dDE6eDp5", rank.as_str()] {
            let err = PageToken::decode::<TimeId>(bad).expect_err(bad);
            assert_eq!(err.violations()[0].field, "page_token");
        }
    }

    #[test]
    fn a_page_with_an_extra_row_has_a_next_token() {
        let size = PageSize::parse(2).expect("valid");
        let (rows, next) = split_page(vec![1, 2, 3], size, |n| Rank(*n));
        assert_eq!(rows, vec![1, 2]);
        assert_eq!(
            PageToken::decode::<Rank>(&next).ok().flatten(),
            Some(Rank(2))
        );
        let (rows, next) = split_page(vec![1, 2], size, |n| Rank(*n));
        assert_eq!((rows, next.as_str()), (vec![1, 2], ""));
    }

    #[test]
    fn an_in_memory_list_pages_to_its_end() {
        let size = PageSize::parse(2).expect("valid");
        let (first, token) = page_in_memory(vec![1, 2, 3], "", size).expect("first page");
        let (second, last) = page_in_memory(vec![1, 2, 3], &token, size).expect("second page");
        assert_eq!((first, second, last.as_str()), (vec![1, 2], vec![3], ""));
    }
}
