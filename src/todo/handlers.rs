//! The todo routes: each takes the caller from the bearer ID token and only
//! ever touches the caller's own todos.

use std::sync::Arc;

use axum::Json;
use axum::extract::rejection::PathRejection;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::IntoResponse;
use serde_json::{Value, json};
use uuid::Uuid;

use serde_json::Map;

use super::store::{Todo, TodoChanges, TodoStore};
use crate::verifier::{AAL2, AuthenticatedClient, AuthenticatedUser, Scope, StepUp};
use crate::web::{ApiError, ErrorKind, InvalidArg, JsonBody};

/// A JSON object body: its fields are checked by the handler, which reports
/// each bad one in `invalidArgs`.
type JsonObject = JsonBody<Map<String, Value>>;

/// Longest title, in characters after trimming.
pub const MAX_TITLE_CHARS: usize = 200;

const NO_SUCH_TODO: &str = "no such todo";

pub async fn healthz() -> Json<Value> {
    Json(json!({"status": "ok"}))
}

/// The scope a client's token needs for [`count`].
pub struct TodosRead;

impl Scope for TodosRead {
    const SCOPE: &'static str = "todos:read";
}

/// All users' todos, counted: for machine clients with scope `todos:read`
/// (a user's ID token is 401 here).
pub async fn count(
    _client: AuthenticatedClient<TodosRead>,
    State(store): State<Arc<TodoStore>>,
) -> Json<Value> {
    Json(json!({"count": store.count_all()}))
}

pub async fn list(
    AuthenticatedUser(user): AuthenticatedUser,
    State(store): State<Arc<TodoStore>>,
) -> Json<Value> {
    Json(json!({"todos": store.list(user.sub)}))
}

pub async fn create(
    AuthenticatedUser(user): AuthenticatedUser,
    State(store): State<Arc<TodoStore>>,
    JsonBody(body): JsonObject,
) -> Result<impl IntoResponse, ApiError> {
    let title = match body.get("title") {
        None | Some(Value::Null) => Err(InvalidArg::new("title", "is required")),
        Some(value) => parse_title(value),
    }
    .map_err(|arg| ApiError::invalid_args(vec![arg]))?;
    let todo = store.create(user.sub, title).map_err(|full| {
        ApiError::new(
            ErrorKind::Conflict,
            format!(
                "a user keeps at most {} todos: delete one first",
                full.max_per_user
            ),
        )
    })?;
    Ok((StatusCode::CREATED, Json(todo)))
}

pub async fn get(
    AuthenticatedUser(user): AuthenticatedUser,
    State(store): State<Arc<TodoStore>>,
    id: Result<Path<String>, PathRejection>,
) -> Result<Json<Todo>, ApiError> {
    let id = todo_id(id)?;
    store
        .get(user.sub, id)
        .map(Json)
        .ok_or_else(|| ApiError::not_found(NO_SUCH_TODO))
}

pub async fn update(
    AuthenticatedUser(user): AuthenticatedUser,
    State(store): State<Arc<TodoStore>>,
    id: Result<Path<String>, PathRejection>,
    JsonBody(body): JsonObject,
) -> Result<Json<Todo>, ApiError> {
    let id = todo_id(id)?;
    let mut changes = TodoChanges::default();
    let mut invalid = Vec::new();
    if let Some(value) = body.get("title") {
        match parse_title(value) {
            Ok(title) => changes.title = Some(title),
            Err(arg) => invalid.push(arg),
        }
    }
    if let Some(value) = body.get("completed") {
        match value {
            Value::Bool(completed) => changes.completed = Some(*completed),
            _ => invalid.push(InvalidArg::new("completed", "must be true or false")),
        }
    }
    if !invalid.is_empty() {
        return Err(ApiError::invalid_args(invalid));
    }
    store
        .update(user.sub, id, changes)
        .map(Json)
        .ok_or_else(|| ApiError::not_found(NO_SUCH_TODO))
}

pub async fn delete(
    AuthenticatedUser(user): AuthenticatedUser,
    State(store): State<Arc<TodoStore>>,
    id: Result<Path<String>, PathRejection>,
) -> Result<StatusCode, ApiError> {
    let id = todo_id(id)?;
    if store.delete(user.sub, id) {
        Ok(StatusCode::NO_CONTENT)
    } else {
        Err(ApiError::not_found(NO_SUCH_TODO))
    }
}

/// Every todo of the caller, at once: a step-up route (RFC 9470), for a
/// session signed in with a second factor only (`acr` `aal2`); a weaker
/// token is answered 401 with `WWW-Authenticate: Bearer
/// error="insufficient_user_authentication", …, acr_values="aal2"`.
pub async fn delete_all(
    AuthenticatedUser(user): AuthenticatedUser,
    State(store): State<Arc<TodoStore>>,
) -> Result<Json<Value>, StepUp> {
    user.require_acr(AAL2)?;
    Ok(Json(json!({"deleted": store.delete_all(user.sub)})))
}

pub async fn not_found() -> ApiError {
    ApiError::not_found("no such route")
}

pub async fn method_not_allowed() -> ApiError {
    ApiError::method_not_allowed()
}

/// A path segment that is not a UUID names no todo.
fn todo_id(path: Result<Path<String>, PathRejection>) -> Result<Uuid, ApiError> {
    path.ok()
        .and_then(|Path(id)| Uuid::parse_str(&id).ok())
        .ok_or_else(|| ApiError::not_found(NO_SUCH_TODO))
}

/// A title is a string of 1 to [`MAX_TITLE_CHARS`] characters once trimmed;
/// it is stored trimmed.
fn parse_title(value: &Value) -> Result<String, InvalidArg> {
    let Value::String(title) = value else {
        return Err(InvalidArg::new("title", "must be a string"));
    };
    let title = title.trim();
    if title.is_empty() {
        return Err(InvalidArg::new("title", "must not be empty"));
    }
    if title.chars().count() > MAX_TITLE_CHARS {
        return Err(InvalidArg::new(
            "title",
            format!("must be at most {MAX_TITLE_CHARS} characters"),
        ));
    }
    Ok(title.to_owned())
}
