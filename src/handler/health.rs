//! Liveness and readiness probes.

use axum::Json;
use axum::extract::State;
use serde_json::{Value, json};

use super::AppState;
use crate::error::AppResult;

/// 200 while the process runs.
pub async fn healthz() -> Json<Value> {
    Json(json!({"status": "ok"}))
}

/// 200 when the user store and the token store both answer, else 503.
pub async fn readyz(State(state): State<AppState>) -> AppResult<Json<Value>> {
    let (users, tokens) = tokio::join!(state.user_service.ready(), state.token_service.ready());
    users?;
    tokens?;
    Ok(Json(json!({"status": "ready"})))
}
