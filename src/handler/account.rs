//! The account API: sign-up, sign-in, refresh, sign-out, profile. Each
//! handler parses its input, calls one use case and shapes the answer.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use serde::{Deserialize, Serialize};

use super::openapi::{BodyErrors, ServerErrors, tags};
use super::{AppState, AuthUser};
use crate::error::{AppError, AppResult, InvalidArg};
use crate::model::{Email, Password, TokenPair, User, UserDetails, Website, parse_name};
use crate::web::{ErrorBody, JsonBody};

/// `{email, password}` of sign-up and sign-in. Missing fields read as empty
/// and are reported by validation, with the other field errors.
#[derive(Debug, Default, Deserialize, utoipa::ToSchema)]
#[serde(default)]
pub struct CredentialsRequest {
    /// A valid address; compared and stored lowercased.
    #[schema(required = true, format = "email", example = "ada@example.com")]
    email: String,
    /// 8 characters to 256 bytes at sign-up; sign-in only requires it to be non-empty.
    #[schema(required = true, format = "password", example = "correct horse")]
    password: String,
}

/// `{refreshToken}` of a refresh.
#[derive(Debug, Default, Deserialize, utoipa::ToSchema)]
#[serde(default, rename_all = "camelCase")]
pub struct RefreshRequest {
    /// The refresh token of the last pair; it works once.
    #[schema(required = true)]
    refresh_token: String,
}

/// `{name, email, website}`: a full update of the profile (a missing name or
/// website is set to empty).
#[derive(Debug, Default, Deserialize, utoipa::ToSchema)]
#[serde(default)]
pub struct DetailsRequest {
    /// Up to 100 characters, trimmed.
    #[schema(example = "Ada Lovelace")]
    name: String,
    /// A valid address not used by another user; stored lowercased.
    #[schema(required = true, format = "email", example = "ada@example.com")]
    email: String,
    /// Empty, or an `http://` or `https://` URL.
    #[schema(example = "https://ada.example")]
    website: String,
}

/// A fresh token pair.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct TokensResponse {
    tokens: TokenPair,
}

/// A confirmation for humans.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct MessageResponse {
    #[schema(example = "signed out on every device")]
    message: &'static str,
}

/// The user of the ID token.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct UserResponse {
    user: UserView,
}

/// A user as clients see it: no password hash. Unset fields are `""`.
#[derive(Debug, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct UserView {
    uid: uuid::Uuid,
    email: String,
    name: String,
    image_url: String,
    website: String,
}

impl From<User> for UserResponse {
    fn from(user: User) -> Self {
        Self {
            user: UserView {
                uid: user.uid,
                email: user.email,
                name: user.name,
                image_url: user.image_url,
                website: user.website,
            },
        }
    }
}

/// Collects field errors so one response reports all of them.
#[derive(Default)]
struct Validator(Vec<InvalidArg>);

impl Validator {
    fn check<T>(&mut self, field: &str, parsed: Result<T, String>) -> Option<T> {
        parsed
            .map_err(|message| self.0.push(InvalidArg::new(field, message)))
            .ok()
    }

    fn finish(self) -> AppResult<()> {
        if self.0.is_empty() {
            Ok(())
        } else {
            Err(AppError::invalid_args(self.0))
        }
    }
}

/// Unwraps values a finished [`Validator`] has accepted.
fn accepted<T>(value: Option<T>) -> AppResult<T> {
    value.ok_or_else(|| AppError::Internal(anyhow::anyhow!("validated value missing")))
}

fn parse_credentials(
    body: &CredentialsRequest,
    password_rule: fn(&str) -> Result<Password, String>,
) -> AppResult<(Email, Password)> {
    let mut v = Validator::default();
    let email = v.check("email", Email::parse(&body.email));
    let password = v.check("password", password_rule(&body.password));
    v.finish()?;
    Ok((accepted(email)?, accepted(password)?))
}

/// `POST /signup` → 201 with a token pair; 409 if the email is taken.
#[utoipa::path(
    post,
    path = "/signup",
    tag = tags::ACCOUNT,
    summary = "Sign up",
    description = "Creates the user and answers with a token pair, as a sign-in would.",
    request_body = CredentialsRequest,
    responses(
        (status = 201, description = "Signed up", body = TokensResponse),
        (status = 400, description = "Malformed body, or field errors in `invalidArgs`", body = ErrorBody),
        (status = 409, description = "The email is already registered", body = ErrorBody,
         example = json!({"error": {"type": "CONFLICT", "message": "email already registered"}})),
        BodyErrors,
    )
)]
pub async fn signup(
    State(state): State<AppState>,
    JsonBody(body): JsonBody<CredentialsRequest>,
) -> AppResult<(StatusCode, Json<TokensResponse>)> {
    let (email, password) = parse_credentials(&body, Password::parse)?;
    let tokens = state.account.sign_up(email, password).await?;
    Ok((StatusCode::CREATED, Json(TokensResponse { tokens })))
}

/// `POST /signin` → 200 with a token pair; the same 401 for unknown email and wrong password.
#[utoipa::path(
    post,
    path = "/signin",
    tag = tags::ACCOUNT,
    summary = "Sign in",
    description = "Checks the credentials and answers with a new token pair. The email is \
                   case-insensitive; an unknown email and a wrong password answer the same 401.",
    request_body = CredentialsRequest,
    responses(
        (status = 200, description = "Signed in", body = TokensResponse),
        (status = 400, description = "Malformed body, or field errors in `invalidArgs`", body = ErrorBody),
        (status = 401, description = "Unknown email or wrong password", body = ErrorBody,
         headers(("WWW-Authenticate" = String, description = "`Bearer`")),
         example = json!({"error": {"type": "AUTHORIZATION", "message": "invalid email and password combination"}})),
        BodyErrors,
    )
)]
pub async fn signin(
    State(state): State<AppState>,
    JsonBody(body): JsonBody<CredentialsRequest>,
) -> AppResult<Json<TokensResponse>> {
    let (email, password) = parse_credentials(&body, Password::parse_for_signin)?;
    let tokens = state.account.sign_in(email, password).await?;
    Ok(Json(TokensResponse { tokens }))
}

/// `POST /tokens` → 200 with a rotated pair; 401 if the refresh token does not
/// verify or is no longer whitelisted (used, revoked or signed out).
#[utoipa::path(
    post,
    path = "/tokens",
    tag = tags::ACCOUNT,
    summary = "Refresh the token pair",
    description = "Rotates: answers with a new pair and the presented refresh token stops \
                   working. Of concurrent refreshes of one token exactly one succeeds.",
    request_body = RefreshRequest,
    responses(
        (status = 200, description = "The rotated pair", body = TokensResponse),
        (status = 400, description = "Malformed body, or `refreshToken` missing (in `invalidArgs`)", body = ErrorBody),
        (status = 401, description = "The refresh token does not verify, or was used, revoked or signed out", body = ErrorBody,
         headers(("WWW-Authenticate" = String, description = "`Bearer error=\"invalid_token\"`")),
         example = json!({"error": {"type": "AUTHORIZATION", "message": "refresh token is invalid, used or revoked"}})),
        BodyErrors,
    )
)]
pub async fn tokens(
    State(state): State<AppState>,
    JsonBody(body): JsonBody<RefreshRequest>,
) -> AppResult<Json<TokensResponse>> {
    if body.refresh_token.trim().is_empty() {
        return Err(AppError::invalid_args(vec![InvalidArg::new(
            "refreshToken",
            "refreshToken is required",
        )]));
    }
    let tokens = state.account.refresh(body.refresh_token.trim()).await?;
    Ok(Json(TokensResponse { tokens }))
}

/// `POST /signout` → 200; every refresh token of the user is removed.
#[utoipa::path(
    post,
    path = "/signout",
    tag = tags::ACCOUNT,
    summary = "Sign out on every device",
    description = "Removes every refresh token of the user. ID tokens already handed out stay \
                   valid until they expire.",
    security(("bearer" = [])),
    responses(
        (status = 200, description = "Signed out", body = MessageResponse),
        (status = 401, description = "No `Authorization: Bearer` header, or an ID token that does not verify", body = ErrorBody,
         headers(("WWW-Authenticate" = String, description = "`Bearer`, or `Bearer error=\"invalid_token\"` for a token that does not verify"))),
        ServerErrors,
    )
)]
pub async fn signout(
    State(state): State<AppState>,
    AuthUser(claims): AuthUser,
) -> AppResult<Json<MessageResponse>> {
    state.account.sign_out(claims.sub).await?;
    Ok(Json(MessageResponse {
        message: "signed out on every device",
    }))
}

/// `GET /me` → 200 with the user of the ID token.
#[utoipa::path(
    get,
    path = "/me",
    tag = tags::ACCOUNT,
    summary = "The signed-in user",
    security(("bearer" = [])),
    responses(
        (status = 200, description = "The user of the ID token", body = UserResponse),
        (status = 401, description = "No `Authorization: Bearer` header, or an ID token that does not verify", body = ErrorBody,
         headers(("WWW-Authenticate" = String, description = "`Bearer`, or `Bearer error=\"invalid_token\"` for a token that does not verify"))),
        (status = 404, description = "The user of the ID token no longer exists", body = ErrorBody),
        ServerErrors,
    )
)]
pub async fn me(
    State(state): State<AppState>,
    AuthUser(claims): AuthUser,
) -> AppResult<Json<UserResponse>> {
    let user = state.account.me(claims.sub).await?;
    Ok(Json(user.into()))
}

/// `PUT /details` → 200 with the updated user; 409 if the email is taken.
#[utoipa::path(
    put,
    path = "/details",
    tag = tags::ACCOUNT,
    summary = "Update the profile",
    description = "A full update of name, email and website.",
    security(("bearer" = [])),
    request_body = DetailsRequest,
    responses(
        (status = 200, description = "The updated user", body = UserResponse),
        (status = 400, description = "Malformed body, or field errors in `invalidArgs`", body = ErrorBody),
        (status = 401, description = "No `Authorization: Bearer` header, or an ID token that does not verify", body = ErrorBody,
         headers(("WWW-Authenticate" = String, description = "`Bearer`, or `Bearer error=\"invalid_token\"` for a token that does not verify"))),
        (status = 404, description = "The user of the ID token no longer exists", body = ErrorBody),
        (status = 409, description = "The email is registered to another user", body = ErrorBody),
        BodyErrors,
    )
)]
pub async fn details(
    State(state): State<AppState>,
    AuthUser(claims): AuthUser,
    JsonBody(body): JsonBody<DetailsRequest>,
) -> AppResult<Json<UserResponse>> {
    let mut v = Validator::default();
    let email = v.check("email", Email::parse(&body.email));
    let name = v.check("name", parse_name(&body.name));
    let website = v.check("website", Website::parse(&body.website));
    v.finish()?;
    let details = UserDetails {
        email: accepted(email)?,
        name: accepted(name)?,
        website: accepted(website)?,
    };
    let user = state.account.update_details(claims.sub, details).await?;
    Ok(Json(user.into()))
}
