//! `GET /api/v1/me`.

use actix_web::{HttpResponse, get, web};
use orderly_db::users;
use sea_orm::EntityTrait;

use super::views::UserView;
use crate::extract::AuthUser;
use crate::problem::{ApiError, ApiResult, ErrorCode};
use crate::state::AppState;

/// The signed-in user.
#[utoipa::path(get, path = "/api/v1/me", operation_id = "getCurrentUser", tag = "auth", security(("bearer" = [])), responses(
    (status = 200, description = "the signed-in user", body = UserView),
))]
#[get("/me")]
pub async fn me(state: web::Data<AppState>, caller: AuthUser) -> ApiResult<HttpResponse> {
    let user = users::Entity::find_by_id(caller.id)
        .one(&state.db)
        .await?
        .ok_or_else(|| {
            ApiError::unauthorized(ErrorCode::InvalidToken, "the token's user no longer exists")
        })?;
    Ok(HttpResponse::Ok().json(UserView::from(user)))
}
