//! Page sizes and opaque page tokens for list methods (keyset pagination).

use base64::alphabet::URL_SAFE;
use base64::engine::general_purpose::{GeneralPurpose, GeneralPurposeConfig, URL_SAFE_NO_PAD};
use base64::engine::DecodePaddingMode;
use base64::Engine;

use crate::error::{ApiError, ApiResult};

/// Page size when the client gives none.
pub const DEFAULT_PAGE_SIZE: i64 = 100;
/// Larger page sizes are lowered to this.
pub const MAX_PAGE_SIZE: i64 = 1000;

/// Reads `pageSize`: absent or 0 means the default (empty is not a number); above the maximum is lowered to it.
pub fn page_size(raw: Option<&str>) -> ApiResult<i64> {
    let Some(raw) = raw else {
        return Ok(DEFAULT_PAGE_SIZE);
    };
    let n: i64 = raw
        .parse()
        .map_err(|_| ApiError::field("pageSize", "must be a whole number"))?;
    match n {
        n if n < 0 => Err(ApiError::field("pageSize", "must not be negative")),
        0 => Ok(DEFAULT_PAGE_SIZE),
        n => Ok(n.min(MAX_PAGE_SIZE)),
    }
}

/// Encodes the key after which the next page starts.
pub fn encode_token(key: &str) -> String {
    URL_SAFE_NO_PAD.encode(key.as_bytes())
}

/// Reads any unpadded base64url text, whatever its last character's unused bits: the
/// document's pattern for `pageToken`.
const LENIENT: GeneralPurpose = GeneralPurpose::new(
    &URL_SAFE,
    GeneralPurposeConfig::new()
        .with_decode_allow_trailing_bits(true)
        .with_decode_padding_mode(DecodePaddingMode::RequireNone),
);

/// Decodes a `pageToken` back into the key it was made from.
pub fn decode_token(raw: Option<&str>) -> ApiResult<Option<String>> {
    let Some(raw) = raw.filter(|s| !s.is_empty()) else {
        return Ok(None);
    };
    LENIENT
        .decode(raw)
        .ok()
        .and_then(|b| String::from_utf8(b).ok())
        .filter(|s| !s.contains('\0'))
        .map(Some)
        .ok_or_else(|| {
            ApiError::field(
                "pageToken",
                "is not a token returned by a previous list call",
            )
        })
}

/// Decodes the `pageToken` of a list ordered by region then name (instances, Memcached
/// instances, connectors): the `(region, name)` after which the page starts.
pub fn decode_region_key(raw: Option<&str>) -> ApiResult<Option<(String, String)>> {
    let Some(key) = decode_token(raw)? else {
        return Ok(None);
    };
    key.split_once('/')
        .map(|(r, n)| Some((r.to_string(), n.to_string())))
        .ok_or_else(|| {
            ApiError::field(
                "pageToken",
                "is not a token returned by a previous list call",
            )
        })
}

/// Cuts `rows` (fetched with one row more than `size`) to the page and returns the
/// `nextPageToken` of a list ordered by region then name, if there is a next page.
pub fn next_region_page<R>(
    rows: &mut Vec<R>,
    size: i64,
    key: impl Fn(&R) -> (&str, &str),
) -> Option<String> {
    if rows.len() as i64 <= size {
        return None;
    }
    rows.truncate(size as usize);
    rows.last().map(|r| {
        let (region, name) = key(r);
        encode_token(&format!("{region}/{name}"))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes() {
        assert_eq!(page_size(None).unwrap(), DEFAULT_PAGE_SIZE);
        assert_eq!(page_size(Some("0")).unwrap(), DEFAULT_PAGE_SIZE);
        assert_eq!(page_size(Some("5")).unwrap(), 5);
        assert_eq!(page_size(Some("5000")).unwrap(), MAX_PAGE_SIZE);
        assert!(page_size(Some("-1")).is_err());
        assert!(page_size(Some("ten")).is_err());
    }

    #[test]
    fn tokens_round_trip() {
        let t = encode_token("my-cache-42");
        assert_eq!(
            decode_token(Some(&t)).unwrap().as_deref(),
            Some("my-cache-42")
        );
        assert!(decode_token(Some("!!!")).is_err());
        assert_eq!(decode_token(None).unwrap(), None);
    }
}
