//! `GET /api/v1/bookings`: the caller's bookings, by role.

use actix_web::{HttpRequest, HttpResponse, get, web};
use orderly_db::bookings::{self, BookingStatus};
use orderly_db::listings;
use orderly_db::users::Role;
use sea_orm::sea_query::Query;
use sea_orm::{ColumnTrait, EntityTrait, PaginatorTrait, QueryFilter, QueryOrder, QuerySelect};
use serde::Deserialize;
use utoipa::IntoParams;
use validator::Validate;

use super::views::BookingView;
use crate::extract::{AuthUser, Page, PageParams, StrictQuery};
use crate::problem::ApiResult;
use crate::state::AppState;

/// Filter and page.
#[derive(Debug, Deserialize, Validate, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct BookingQuery {
    /// 1-based page number.
    #[validate(range(min = 1, max = 1000000, message = "must be between 1 and 1000000"))]
    #[param(minimum = 1, maximum = 1000000)]
    pub page: Option<u64>,
    /// Items per page (max 100).
    #[validate(range(min = 1, max = 100, message = "must be between 1 and 100"))]
    #[param(minimum = 1, maximum = 100)]
    pub page_size: Option<u64>,
    /// Only bookings in this status.
    #[param(value_type = Option<BookingStatus>)]
    pub status: Option<BookingStatus>,
}

/// Lists bookings: a customer's own, those on a provider's listings, or all (admins).
/// Newest first.
#[utoipa::path(get, path = "/api/v1/bookings", operation_id = "listBookings", tag = "bookings", params(BookingQuery), security(("bearer" = [])), responses(
    (status = 200, description = "a page of bookings, newest first", body = Page<BookingView>),
))]
#[get("/bookings")]
pub async fn list(
    req: HttpRequest,
    state: web::Data<AppState>,
    caller: AuthUser,
    query: StrictQuery<BookingQuery>,
) -> ApiResult<HttpResponse> {
    let StrictQuery(query) = query;
    let params = PageParams::new(query.page, query.page_size);
    let mut select = bookings::Entity::find();
    match caller.role {
        Role::Admin => {}
        Role::Customer => select = select.filter(bookings::Column::CustomerId.eq(caller.id)),
        Role::Provider => {
            select = select.filter(
                bookings::Column::ListingId.in_subquery(
                    Query::select()
                        .column(listings::Column::Id)
                        .from(listings::Entity)
                        .and_where(listings::Column::ProviderId.eq(caller.id))
                        .to_owned(),
                ),
            );
        }
    }
    if let Some(status) = query.status {
        select = select.filter(bookings::Column::Status.eq(status));
    }
    let count = select.clone().count(&state.db).await?;
    let rows = select
        .order_by_desc(bookings::Column::CreatedAt)
        .order_by_desc(bookings::Column::Id)
        .offset(params.offset())
        .limit(params.page_size)
        .all(&state.db)
        .await?;
    let results = BookingView::load_many(&state.db, rows, caller.id).await?;
    Ok(HttpResponse::Ok().json(Page::new(&req, params, count, results)))
}
