//! The account API: sign-up, sign-in, refresh, sign-out, profile.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use serde::{Deserialize, Serialize};

use super::{AppJson, AppState, AuthUser};
use crate::error::{AppError, AppResult, InvalidArg};
use crate::model::{Email, Password, TokenPair, User, UserDetails, Website, parse_name};

/// `{email, password}` of sign-up and sign-in. Missing fields read as empty
/// and are reported by validation, with the other field errors.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct CredentialsRequest {
    email: String,
    password: String,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct RefreshRequest {
    refresh_token: String,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct DetailsRequest {
    name: String,
    email: String,
    website: String,
}

#[derive(Debug, Serialize)]
pub struct TokensResponse {
    tokens: TokenPair,
}

#[derive(Debug, Serialize)]
pub struct MessageResponse {
    message: &'static str,
}

#[derive(Debug, Serialize)]
pub struct UserResponse {
    user: UserView,
}

/// A user as clients see it: no password hash.
#[derive(Debug, Serialize)]
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
pub async fn signup(
    State(state): State<AppState>,
    AppJson(body): AppJson<CredentialsRequest>,
) -> AppResult<(StatusCode, Json<TokensResponse>)> {
    let (email, password) = parse_credentials(&body, Password::parse)?;
    let user = state.user_service.signup(email, password).await?;
    let tokens = state.token_service.new_pair_from_user(&user, None).await?;
    Ok((StatusCode::CREATED, Json(TokensResponse { tokens })))
}

/// `POST /signin` → 200 with a token pair; the same 401 for unknown email and wrong password.
pub async fn signin(
    State(state): State<AppState>,
    AppJson(body): AppJson<CredentialsRequest>,
) -> AppResult<Json<TokensResponse>> {
    let (email, password) = parse_credentials(&body, Password::parse_for_signin)?;
    let user = state.user_service.signin(email, password).await?;
    let tokens = state.token_service.new_pair_from_user(&user, None).await?;
    Ok(Json(TokensResponse { tokens }))
}

/// `POST /tokens` → 200 with a rotated pair; 401 if the refresh token does not
/// verify or is no longer whitelisted (used, revoked or signed out).
pub async fn tokens(
    State(state): State<AppState>,
    AppJson(body): AppJson<RefreshRequest>,
) -> AppResult<Json<TokensResponse>> {
    if body.refresh_token.trim().is_empty() {
        return Err(AppError::invalid_args(vec![InvalidArg::new(
            "refreshToken",
            "refreshToken is required",
        )]));
    }
    let refresh = state
        .token_service
        .validate_refresh_token(body.refresh_token.trim())?;
    let user = match state.user_service.get(refresh.uid).await {
        Err(AppError::NotFound(_)) => {
            return Err(AppError::invalid_token(
                "refresh token is invalid, used or revoked",
            ));
        }
        other => other?,
    };
    let tokens = state
        .token_service
        .new_pair_from_user(&user, Some(refresh))
        .await?;
    Ok(Json(TokensResponse { tokens }))
}

/// `POST /signout` → 200; every refresh token of the user is removed.
pub async fn signout(
    State(state): State<AppState>,
    AuthUser(claims): AuthUser,
) -> AppResult<Json<MessageResponse>> {
    state.token_service.signout(claims.sub).await?;
    Ok(Json(MessageResponse {
        message: "signed out on every device",
    }))
}

/// `GET /me` → 200 with the user of the ID token.
pub async fn me(
    State(state): State<AppState>,
    AuthUser(claims): AuthUser,
) -> AppResult<Json<UserResponse>> {
    let user = state.user_service.get(claims.sub).await?;
    Ok(Json(user.into()))
}

/// `PUT /details` → 200 with the updated user; 409 if the email is taken.
pub async fn details(
    State(state): State<AppState>,
    AuthUser(claims): AuthUser,
    AppJson(body): AppJson<DetailsRequest>,
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
    let user = state
        .user_service
        .update_details(claims.sub, details)
        .await?;
    Ok(Json(user.into()))
}
