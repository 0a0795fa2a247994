//! `GET/POST /admin/login` and `POST /admin/logout`: e-mail and password, checked like the
//! API's login (the same hash check and the same failed-attempt limits), admins only.

use actix_web::http::StatusCode;
use actix_web::http::header;
use actix_web::{HttpRequest, HttpResponse, web};
use anyhow::Context as _;
use orderly_db::users::{self, Role};
use sea_orm::{ColumnTrait, EntityTrait, QueryFilter};
use serde::Deserialize;

use super::error::DashboardError;
use super::views::{html, render, see_other};
use super::{csrf, is_dashboard_path, session};
use crate::auth::login_limit::LoginLimiter;
use crate::auth::password;
use crate::client_addr::ClientAddr;
use crate::routes::auth::register::normalise_email;
use crate::state::AppState;

/// Where to go after signing in: `next` when it is a dashboard page, the queues otherwise.
fn next_or_home(next: Option<&str>) -> &str {
    next.filter(|n| is_dashboard_path(n)).unwrap_or("/admin")
}

/// The login page, with `problem` above the form when the last try failed.
fn login_page(
    status: StatusCode,
    next: &str,
    problem: Option<&str>,
) -> Result<HttpResponse, DashboardError> {
    let page = render(
        "login.html",
        serde_json::json!({ "next": next, "problem": problem, "admin": serde_json::Value::Null, "title": "Sign in" }),
    )?;
    Ok(html(status, page))
}

/// `?next=`.
#[derive(Debug, Deserialize)]
pub struct NextQuery {
    next: Option<String>,
}

/// `GET /admin/login`.
pub async fn form(query: web::Query<NextQuery>) -> Result<HttpResponse, DashboardError> {
    login_page(StatusCode::OK, next_or_home(query.next.as_deref()), None)
}

/// The login form.
#[derive(Debug, Deserialize)]
struct Credentials {
    #[serde(default)]
    email: String,
    #[serde(default)]
    password: String,
    next: Option<String>,
}

/// `POST /admin/login`: a session cookie and back to the page asked for; the form again
/// with what went wrong otherwise. Only the admin role gets in (`403` for others, after a
/// right password only, so the page says nothing about accounts to a guesser).
pub async fn submit(
    req: HttpRequest,
    state: web::Data<AppState>,
    body: web::Bytes,
) -> Result<HttpResponse, DashboardError> {
    // No session yet, so no token: the origin check is what stops a forged login.
    if !csrf::same_origin(&req) {
        return Err(DashboardError::Forbidden(
            "this form was not sent from the dashboard's login page".into(),
        ));
    }
    let form: Credentials = serde_urlencoded::from_bytes(&body)
        .map_err(|e| DashboardError::Invalid(format!("the form cannot be read: {e}")))?;
    let next = next_or_home(form.next.as_deref()).to_owned();
    let email = normalise_email(&form.email);
    if email.is_empty() || form.password.is_empty() || form.password.len() > 1024 {
        return login_page(
            StatusCode::UNPROCESSABLE_ENTITY,
            &next,
            Some("Enter your e-mail address and password."),
        );
    }
    let client = ClientAddr::of(&req).to_string();
    let limiter = LoginLimiter::new(
        &state.redis,
        &state.local_counters,
        &state.settings.redis_prefix,
        state.settings.login_limits,
        &email,
        &client,
    );
    if let Err(wait_s) = limiter.attempt().await {
        let mut answer = login_page(
            StatusCode::TOO_MANY_REQUESTS,
            &next,
            Some(&format!(
                "Too many failed sign-ins; try again in {wait_s} s."
            )),
        )?;
        if let Ok(value) = header::HeaderValue::from_str(&wait_s.to_string()) {
            answer.headers_mut().insert(header::RETRY_AFTER, value);
        }
        return Ok(answer);
    }
    let user = users::Entity::find()
        .filter(users::Column::Email.eq(email.as_str()))
        .one(&state.db)
        .await?;
    let stored = user.as_ref().map(|u| u.password_hash.clone());
    let valid = match password::verify(form.password, stored).await {
        Ok(valid) => valid,
        Err(busy) => {
            limiter.given_back().await;
            return Err(busy.into());
        }
    };
    let Some(user) = user.filter(|_| valid) else {
        limiter.failed().await;
        return login_page(
            StatusCode::UNAUTHORIZED,
            &next,
            Some("Wrong e-mail address or password."),
        );
    };
    limiter.succeeded().await;
    if user.role != Role::Admin {
        return Err(DashboardError::Forbidden(
            "this account is not an admin; the dashboard is for admins only".into(),
        ));
    }
    let token = session::start(&state.db, user.id).await?;
    tracing::info!(user.id = %user.id, "admin signed in to the dashboard");
    let mut answer = see_other(&next);
    answer
        .add_cookie(&session::cookie(token, state.settings.app_env))
        .context("setting the session cookie")?;
    Ok(answer)
}

/// `POST /admin/logout`: the session ends here and in the browser.
pub async fn logout(
    admin: session::Admin,
    req: HttpRequest,
    state: web::Data<AppState>,
    body: web::Bytes,
) -> Result<HttpResponse, DashboardError> {
    let _: serde::de::IgnoredAny = csrf::verified_form(&admin, &req, &body)?;
    if let Some(cookie) = req.cookie(session::COOKIE) {
        session::end(&state.db, cookie.value()).await?;
    }
    let mut answer = see_other(super::LOGIN);
    answer
        .add_cookie(&session::removal(state.settings.app_env))
        .context("removing the session cookie")?;
    Ok(answer)
}
