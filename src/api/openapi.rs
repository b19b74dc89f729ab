//! The OpenAPI document, generated from the handlers' annotations and served at
//! `GET /api/openapi.json` (to any logged-in caller).

use super::AppState;
use super::caller::Caller;
use axum::Router;
use axum::routing::get;
use utoipa::OpenApi;

#[derive(OpenApi)]
#[openapi(
    info(
        title = "xaso",
        description = "Commune cameras and meetings: the control-plane API. \
        Authenticate with the session cookie from POST /api/login, or `Authorization: Bearer <token>`."
    ),
    paths(
        super::session::login,
        super::session::logout,
        super::session::me,
        super::session::change_password,
        super::users::list,
        super::users::create,
        super::users::update,
        super::users::remove,
        super::users::set_grants,
        super::cameras::list,
        super::cameras::one,
        super::cameras::create,
        super::cameras::update,
        super::cameras::remove,
        super::cameras::status,
        super::recordings::list,
        super::recordings::export,
        super::recordings::playback,
        super::recordings::snapshot,
        super::live::live_config,
        super::live::mse,
        super::live::offer,
        super::live::end,
        super::live::trickle,
        super::meetings::create,
        super::meetings::list,
        super::meetings::one,
        super::meetings::socket,
        super::meeting_docs::upload,
        super::meeting_docs::download,
        super::meetings::record,
        super::meetings::whip,
        super::meetings::whep,
        super::nodes::list,
        super::nodes::create,
        super::nodes::remove,
        super::nodes::below,
        super::nodes::link,
        super::tokens::list,
        super::tokens::create,
        super::tokens::revoke,
        super::audit::list,
        openapi_json,
    )
)]
pub struct ApiDoc;

pub fn router() -> Router<AppState> {
    Router::new().route("/openapi.json", get(openapi_json))
}

/// This document.
#[utoipa::path(get, path = "/api/openapi.json", tag = "meta", responses((status = 200, description = "OpenAPI 3.1 JSON"), (status = 401)))]
async fn openapi_json(_caller: Caller) -> axum::Json<utoipa::openapi::OpenApi> {
    axum::Json(ApiDoc::openapi())
}
