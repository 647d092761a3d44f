//! Sessions: sign-out by scope, the session list, naming and ending one
//! session.

use axum::Json;
use axum::extract::rejection::{PathRejection, QueryRejection};
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::openapi::{BearerBodyErrors, BearerErrors, tags};
use super::{AppState, AuthUser};
use crate::error::{AppError, AppResult, InvalidArg};
use crate::model::{SessionInfo, SessionName, SignOutScope};
use crate::web::{ErrorBody, JsonBody};

/// A confirmation for humans.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct MessageResponse {
    #[schema(example = "signed out on every device")]
    pub(super) message: &'static str,
}

/// `?scope=` of a sign-out.
#[derive(Debug, Default, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct SignOutParams {
    /// `global` (the default): every session; `local`: only the session of
    /// the presented ID token; `others`: every session but that one.
    #[param(value_type = Option<String>, example = "global")]
    scope: Option<SignOutScope>,
}

/// `POST /signout[?scope=global|local|others]` → 200.
#[utoipa::path(
    post,
    path = "/signout",
    tag = tags::ACCOUNT,
    summary = "Sign out",
    description = "Ends the sessions the scope names: every session of the user (the default, \
                   removing every refresh token of the user), only the caller's, or all but the \
                   caller's. ID tokens already handed out stay valid until they expire.",
    security(("bearer" = [])),
    params(SignOutParams),
    responses(
        (status = 200, description = "Signed out", body = MessageResponse),
        (status = 400, description = "An unknown `scope`, or `local`/`others` with an ID token issued before sessions", body = ErrorBody),
        BearerErrors,
    )
)]
pub async fn signout(
    State(state): State<AppState>,
    AuthUser(claims): AuthUser,
    params: Result<Query<SignOutParams>, QueryRejection>,
) -> AppResult<Json<MessageResponse>> {
    let scope = scope_of(params, SignOutScope::Global)?;
    state.account.sign_out(&claims, scope).await?;
    Ok(Json(signed_out(scope)))
}

/// The `?scope=` of a sign-out, `default` when absent.
pub(super) fn scope_of(
    params: Result<Query<SignOutParams>, QueryRejection>,
    default: SignOutScope,
) -> AppResult<SignOutScope> {
    let Query(params) = params.map_err(|_| {
        AppError::invalid_args(vec![InvalidArg::new(
            "scope",
            "scope must be global, local or others",
        )])
    })?;
    Ok(params.scope.unwrap_or(default))
}

/// The answer to a sign-out in `scope`.
pub(super) fn signed_out(scope: SignOutScope) -> MessageResponse {
    MessageResponse {
        message: match scope {
            SignOutScope::Global => "signed out on every device",
            SignOutScope::Local => "signed out of this session",
            SignOutScope::Others => "signed out on every other device",
        },
    }
}

/// The caller's sessions.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct SessionsResponse {
    sessions: Vec<SessionView>,
}

/// A session as clients see it. Times are Unix seconds.
#[derive(Debug, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct SessionView {
    id: Uuid,
    /// When the session started (the sign-in).
    created_at: u64,
    /// When its refresh token was last used (or the sign-in).
    last_used_at: u64,
    /// The `User-Agent` of the last sign-in or refresh; may be empty.
    user_agent: String,
    /// The client address of the last sign-in or refresh; may be empty.
    ip: String,
    /// The name its user gave it (`PUT /sessions/{id}`), or `null`.
    #[schema(required = true, example = "work laptop")]
    name: Option<String>,
    /// Whether this is the session of the presented ID token.
    current: bool,
}

impl SessionView {
    fn new(session: SessionInfo, current: Option<Uuid>) -> Self {
        let is_current = current == Some(session.id);
        Self {
            id: session.id,
            created_at: session.created_at,
            last_used_at: session.last_used_at,
            user_agent: session.user_agent,
            ip: session.ip,
            name: session.name,
            current: is_current,
        }
    }
}

/// `GET /sessions` → 200 with the caller's live sessions.
#[utoipa::path(
    get,
    path = "/sessions",
    tag = tags::ACCOUNT,
    summary = "The caller's sessions",
    description = "Every live session of the user, most recently used first; `current` marks \
                   the session of the presented ID token.",
    security(("bearer" = [])),
    responses(
        (status = 200, description = "The sessions", body = SessionsResponse),
        BearerErrors,
    )
)]
pub async fn list(
    State(state): State<AppState>,
    AuthUser(claims): AuthUser,
) -> AppResult<Json<SessionsResponse>> {
    let sessions = state.account.sessions(&claims).await?;
    let current = claims
        .sid
        .as_deref()
        .and_then(|sid| Uuid::parse_str(sid).ok());
    Ok(Json(SessionsResponse {
        sessions: sessions
            .into_iter()
            .map(|s| SessionView::new(s, current))
            .collect(),
    }))
}

/// The session id of a path: 404 (as for an unknown session) unless a UUID.
fn session_id(id: Result<Path<String>, PathRejection>) -> AppResult<Uuid> {
    super::extract::uuid_in_path(id, "no such session")
}

/// `DELETE /sessions/{id}` → 204; 404 unless it is one of the caller's.
#[utoipa::path(
    delete,
    path = "/sessions/{id}",
    tag = tags::ACCOUNT,
    summary = "End one session",
    description = "Ends one of the caller's sessions: its refresh token stops working.",
    security(("bearer" = [])),
    params(("id" = Uuid, Path, description = "The session's id")),
    responses(
        (status = 204, description = "Ended"),
        (status = 404, description = "No such session of the caller's", body = ErrorBody),
        BearerErrors,
    )
)]
pub async fn end(
    State(state): State<AppState>,
    AuthUser(claims): AuthUser,
    id: Result<Path<String>, PathRejection>,
) -> AppResult<StatusCode> {
    let sid = session_id(id)?;
    state.account.end_session(&claims, sid).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// `{"name": string|null}` of `PUT /sessions/{id}`.
#[derive(Debug, Default, Deserialize, utoipa::ToSchema)]
pub struct RenameSessionRequest {
    /// 1 to 64 characters after trimming, no control characters; `null`
    /// clears the name. Required (a missing field is a 400 naming `name`).
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<String>, required = true, example = "work laptop")]
    name: Option<Option<String>>,
}

/// A field that is present, `null` or not: `Some`; a missing one stays `None`
/// (the field's default).
fn present<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<Option<String>>, D::Error> {
    Option::<String>::deserialize(d).map(Some)
}

/// `PUT /sessions/{id}` with `{"name": …}` → 204; 404 unless it is one of the
/// caller's.
#[utoipa::path(
    put,
    path = "/sessions/{id}",
    tag = tags::ACCOUNT,
    summary = "Name one session",
    description = "Names one of the caller's sessions (`GET /sessions` shows it as `name`), or \
                   clears its name with `null`. The name is kept across refreshes and goes \
                   with the session when it ends.",
    security(("bearer" = [])),
    params(("id" = Uuid, Path, description = "The session's id")),
    request_body = RenameSessionRequest,
    responses(
        (status = 204, description = "Named (or its name cleared)"),
        (status = 400, description = "Malformed body, or `invalidArgs` naming `name`: missing, empty after trimming, over 64 characters, or with a control character", body = ErrorBody),
        (status = 404, description = "No such session of the caller's", body = ErrorBody),
        BearerBodyErrors,
    )
)]
pub async fn rename(
    State(state): State<AppState>,
    AuthUser(claims): AuthUser,
    id: Result<Path<String>, PathRejection>,
    JsonBody(body): JsonBody<RenameSessionRequest>,
) -> AppResult<StatusCode> {
    let sid = session_id(id)?;
    let name = body.parse()?;
    state.account.rename_session(&claims, sid, name).await?;
    Ok(StatusCode::NO_CONTENT)
}

impl RenameSessionRequest {
    /// The name asked for (`None`: clear it), or the 400 naming `name`.
    pub(super) fn parse(self) -> AppResult<Option<SessionName>> {
        match self.name {
            None => Err("name is required (null clears it)".to_owned()),
            Some(None) => Ok(None),
            Some(Some(raw)) => SessionName::parse(&raw).map(Some),
        }
        .map_err(|message| AppError::invalid_args(vec![InvalidArg::new("name", message)]))
    }
}
