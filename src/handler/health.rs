//! Liveness and readiness probes.

use axum::Json;
use axum::extract::State;
use serde::Serialize;

use super::AppState;
use super::openapi::{ServerErrors, tags};
use crate::error::AppResult;

/// `{"status": …}` of a probe that passes.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct StatusResponse {
    /// `ok` for liveness, `ready` for readiness.
    #[schema(example = "ok")]
    status: &'static str,
}

/// 200 while the process runs.
#[utoipa::path(
    get,
    path = "/healthz",
    tag = tags::PROBES,
    summary = "Liveness",
    description = "200 while the process runs; touches no store.",
    responses(
        (status = 200, description = "Alive: `{\"status\": \"ok\"}`", body = StatusResponse,
         example = json!({"status": "ok"})),
    )
)]
pub async fn healthz() -> Json<StatusResponse> {
    Json(StatusResponse { status: "ok" })
}

/// 200 when the user store and the token store both answer, else 503.
#[utoipa::path(
    get,
    path = "/readyz",
    tag = tags::PROBES,
    summary = "Readiness",
    description = "200 when the user store and the token store both answer.",
    responses(
        (status = 200, description = "Ready: `{\"status\": \"ready\"}`", body = StatusResponse,
         example = json!({"status": "ready"})),
        ServerErrors,
    )
)]
pub async fn readyz(State(state): State<AppState>) -> AppResult<Json<StatusResponse>> {
    state.account.ready().await?;
    Ok(Json(StatusResponse { status: "ready" }))
}
