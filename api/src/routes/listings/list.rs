//! `GET /api/v1/listings`: paginated, filtered, ordered.

use actix_web::{HttpRequest, HttpResponse, get, web};
use chrono::{DateTime, Utc};
use orderly_db::listings::{self, Column};
use sea_orm::sea_query::extension::postgres::PgExpr;
use sea_orm::sea_query::{Expr, IntoCondition};
use sea_orm::{
    ColumnTrait, Condition, EntityTrait, Order, PaginatorTrait, QueryFilter, QueryOrder,
    QuerySelect,
};
use serde::Deserialize;
use utoipa::{IntoParams, ToSchema};
use uuid::Uuid;
use validator::Validate;

use super::views::ListingView;
use crate::extract::{Page, PageParams, StrictQuery};
use crate::problem::ApiResult;
use crate::state::AppState;

/// How a list is ordered.
#[derive(Debug, Clone, Copy, Default, Deserialize, ToSchema)]
pub enum ListingOrdering {
    /// Soonest first (default).
    #[default]
    #[serde(rename = "starts_at")]
    StartsAt,
    /// Latest first.
    #[serde(rename = "-starts_at")]
    StartsAtDesc,
    /// Cheapest first.
    #[serde(rename = "price_cents")]
    Price,
    /// Dearest first.
    #[serde(rename = "-price_cents")]
    PriceDesc,
}

/// Filters, ordering and page.
#[derive(Debug, Deserialize, Validate, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ListingQuery {
    /// 1-based page number.
    #[validate(range(min = 1, max = 1000000, message = "must be between 1 and 1000000"))]
    #[param(minimum = 1, maximum = 1000000)]
    pub page: Option<u64>,
    /// Items per page (max 100).
    #[validate(range(min = 1, max = 100, message = "must be between 1 and 100"))]
    #[param(minimum = 1, maximum = 100)]
    pub page_size: Option<u64>,
    /// Words to find in the title or description (case-insensitive).
    #[validate(length(max = 200, message = "must be at most 200 characters"))]
    #[param(max_length = 200)]
    pub search: Option<String>,
    /// Only listings starting at or after this time (RFC 3339).
    pub starts_after: Option<DateTime<Utc>>,
    /// Only listings starting before this time (RFC 3339).
    pub starts_before: Option<DateTime<Utc>>,
    /// Only this provider's listings.
    pub provider_id: Option<Uuid>,
    /// `starts_at`, `-starts_at`, `price_cents` or `-price_cents`.
    #[param(value_type = Option<ListingOrdering>)]
    pub ordering: Option<ListingOrdering>,
}

/// Lists listings (anyone).
#[utoipa::path(get, path = "/api/v1/listings", operation_id = "listListings", tag = "listings", params(ListingQuery), responses(
    (status = 200, description = "a page of listings", body = Page<ListingView>),
))]
#[get("/listings")]
pub async fn list(
    req: HttpRequest,
    state: web::Data<AppState>,
    query: StrictQuery<ListingQuery>,
) -> ApiResult<HttpResponse> {
    let StrictQuery(query) = query;
    let params = PageParams::new(query.page, query.page_size);
    let select = listings::Entity::find().filter(filters(&query));
    let count = select.clone().count(&state.db).await?;
    let (column, order) = match query.ordering.unwrap_or_default() {
        ListingOrdering::StartsAt => (Column::StartsAt, Order::Asc),
        ListingOrdering::StartsAtDesc => (Column::StartsAt, Order::Desc),
        ListingOrdering::Price => (Column::PriceCents, Order::Asc),
        ListingOrdering::PriceDesc => (Column::PriceCents, Order::Desc),
    };
    let rows = select
        .order_by(column, order.clone())
        .order_by(Column::Id, order)
        .offset(params.offset())
        .limit(params.page_size)
        .all(&state.db)
        .await?;
    let results = rows.into_iter().map(ListingView::from).collect();
    Ok(HttpResponse::Ok().json(Page::new(&req, params, count, results)))
}

fn filters(query: &ListingQuery) -> Condition {
    let mut condition = Condition::all();
    if let Some(search) = query
        .search
        .as_deref()
        .map(str::trim)
        .filter(|s| !s.is_empty())
    {
        let pattern = format!("%{}%", escape_like(search));
        condition = condition.add(
            Condition::any()
                .add(Expr::col(Column::Title).ilike(pattern.clone()))
                .add(Expr::col(Column::Description).ilike(pattern)),
        );
    }
    if let Some(after) = query.starts_after {
        condition = condition.add(Column::StartsAt.gte(after));
    }
    if let Some(before) = query.starts_before {
        condition = condition.add(Column::StartsAt.lt(before));
    }
    if let Some(provider) = query.provider_id {
        condition = condition.add(Column::ProviderId.eq(provider).into_condition());
    }
    condition
}

/// Makes `%`, `_` and `\` in user input match themselves.
fn escape_like(input: &str) -> String {
    let mut out = String::with_capacity(input.len());
    for c in input.chars() {
        if matches!(c, '%' | '_' | '\\') {
            out.push('\\');
        }
        out.push(c);
    }
    out
}
