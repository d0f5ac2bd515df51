//! Cursor pagination (API.md §1): `?limit=` (1..=100, default 20) and `?starting_after=<id>`,
//! answered with `{"object":"list","data":[...],"has_more":bool}`.

use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use super::error::ApiError;

pub const LIMIT_DEFAULT: usize = 20;
pub const LIMIT_MAX: usize = 100;

/// The paging part of a list's query string.
#[derive(Debug, Default, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct PageParams {
    /// How many objects to return, 1 to 100 (default 20).
    pub limit: Option<usize>,
    /// The id of the last object of the previous page.
    pub starting_after: Option<String>,
}

impl PageParams {
    /// The validated limit.
    pub fn limit(&self) -> Result<usize, ApiError> {
        match self.limit {
            None => Ok(LIMIT_DEFAULT),
            Some(n) if (1..=LIMIT_MAX).contains(&n) => Ok(n),
            Some(n) => Err(ApiError::invalid(
                "parameter_invalid",
                format!("limit must be between 1 and {LIMIT_MAX}, got {n}"),
                Some("limit"),
            )),
        }
    }
}

/// One page of a list.
#[derive(Debug, Serialize, ToSchema)]
pub struct List<T> {
    /// Always `"list"`.
    pub object: &'static str,
    pub data: Vec<T>,
    /// Whether another page follows; ask for it with `starting_after` = the last id.
    pub has_more: bool,
}

impl<T> List<T> {
    /// Takes up to `limit` items from `items` and notes whether more remain.
    pub fn page(items: impl Iterator<Item = T>, limit: usize) -> List<T> {
        let mut data: Vec<T> = items.take(limit + 1).collect();
        let has_more = data.len() > limit;
        data.truncate(limit);
        List {
            object: "list",
            data,
            has_more,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pages_report_whether_more_remain() {
        let page = List::page(0..5, 2);
        assert_eq!(page.data, vec![0, 1]);
        assert!(page.has_more);
        let last = List::page(0..2, 2);
        assert!(!last.has_more);
    }

    #[test]
    fn limit_is_bounded() {
        let limit = |n| {
            PageParams {
                limit: n,
                starting_after: None,
            }
            .limit()
        };
        assert_eq!(limit(None).unwrap(), 20);
        assert_eq!(limit(Some(100)).unwrap(), 100);
        assert!(limit(Some(0)).is_err());
        assert!(limit(Some(101)).is_err());
    }
}
