//! Page numbers in, `{count, next, previous, results}` out.

use actix_web::HttpRequest;
use serde::Serialize;
use utoipa::ToSchema;

/// The default page size.
pub const DEFAULT_PAGE_SIZE: u64 = 20;
/// The largest page size.
pub const MAX_PAGE_SIZE: u64 = 100;

/// A checked page request (query structs carry `page` and `page_size` and build this).
#[derive(Debug, Clone, Copy)]
pub struct PageParams {
    /// 1-based page number.
    pub page: u64,
    /// Items per page.
    pub page_size: u64,
}

impl PageParams {
    /// From the optional query values; their ranges are checked by the query's `validate`.
    pub fn new(page: Option<u64>, page_size: Option<u64>) -> Self {
        Self {
            page: page.unwrap_or(1).max(1),
            page_size: page_size
                .unwrap_or(DEFAULT_PAGE_SIZE)
                .clamp(1, MAX_PAGE_SIZE),
        }
    }

    /// Rows to skip.
    pub fn offset(&self) -> u64 {
        (self.page - 1).saturating_mul(self.page_size)
    }
}

/// One page of a list.
#[derive(Debug, Serialize, ToSchema)]
pub struct Page<T> {
    /// Items in the whole list.
    pub count: u64,
    /// URL of the next page, or null.
    #[schema(required = true)]
    pub next: Option<String>,
    /// URL of the previous page, or null.
    #[schema(required = true)]
    pub previous: Option<String>,
    /// Items on this page.
    pub results: Vec<T>,
}

impl<T> Page<T> {
    /// Builds a page, with links that keep the request's other query parameters.
    pub fn new(req: &HttpRequest, params: PageParams, count: u64, results: Vec<T>) -> Self {
        let last = count.div_ceil(params.page_size).max(1);
        let link = |page: u64| page_url(req, page);
        Self {
            count,
            next: (params.page < last).then(|| link(params.page + 1)),
            previous: (params.page > 1).then(|| link((params.page - 1).min(last))),
            results,
        }
    }
}

/// The request's URL with `page` set: absolute, with the scheme and host the request names
/// (its `Host`, or a proxy's `Forwarded` / `X-Forwarded-*`); relative (path and query) when
/// those do not make a URL, such as a forged `X-Forwarded-Host: a b` or a port past 65535.
/// (`HttpRequest::full_url` panics on those, which dropped the connection unanswered.)
fn page_url(req: &HttpRequest, page: u64) -> String {
    let kept = url::form_urlencoded::parse(req.query_string().as_bytes())
        .filter(|(k, _)| k != "page")
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect::<Vec<_>>();
    let query = url::form_urlencoded::Serializer::new(String::new())
        .extend_pairs(kept)
        .append_pair("page", &page.to_string())
        .finish();
    let link = format!("{}?{query}", req.path());
    let info = req.connection_info();
    url::Url::parse(&format!("{}://{}", info.scheme(), info.host()))
        .and_then(|origin| origin.join(&link))
        .map(|url| url.to_string())
        .unwrap_or(link)
}
