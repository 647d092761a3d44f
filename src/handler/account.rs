//! The account API: sign-up, sign-in, refresh, sign-out, profile. Each
//! handler parses its input, calls one use case and shapes the answer.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};

use super::openapi::{BearerBodyErrors, BearerErrors, BodyErrors, LimitErrors, tags};
use super::sessions::MessageResponse;
use super::{AppState, AuthUser, Client};
use crate::error::{AppError, AppResult, InvalidArg, REFRESH_TOKEN_REFUSED};
use crate::model::{
    Email, Password, SignIn, SignUp, TokenPair, User, UserDetails, Website, parse_name,
};
use crate::web::{ApiError, ErrorBody, JsonBody, NOT_TEXT};

/// `{email, password}` of sign-up and sign-in. Missing fields read as empty
/// and are reported by validation, with the other field errors.
#[derive(Debug, Default, Deserialize, utoipa::ToSchema)]
#[serde(default)]
pub struct CredentialsRequest {
    /// A valid address; compared and stored in its normal form (lowercase, NFC,
    /// fullwidth forms mapped, the domain in IDNA ASCII form); invisible or
    /// control characters are refused.
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

/// `{name, email, website, currentPassword?}`: a full update of the profile
/// (a missing name or website is set to empty).
#[derive(Debug, Default, Deserialize, utoipa::ToSchema)]
#[serde(default, rename_all = "camelCase")]
pub struct DetailsRequest {
    /// Up to 100 characters, trimmed.
    #[schema(example = "Ada Lovelace")]
    name: String,
    /// A valid address not used by another user, in any spelling; stored in
    /// its normal form (as at sign-up).
    #[schema(required = true, format = "email", example = "ada@example.com")]
    email: String,
    /// Empty, or an `http://` or `https://` URL.
    #[schema(example = "https://ada.example")]
    website: String,
    /// Required when `email` changes: the account's current password.
    #[schema(format = "password")]
    current_password: Option<String>,
}

/// `{currentPassword, newPassword}` of a password change.
#[derive(Debug, Default, Deserialize, utoipa::ToSchema)]
#[serde(default, rename_all = "camelCase")]
pub struct PasswordRequest {
    /// The account's current password.
    #[schema(required = true, format = "password")]
    current_password: String,
    /// 8 characters to 256 bytes.
    #[schema(required = true, format = "password")]
    new_password: String,
}

/// `{currentPassword}` of an account deletion.
#[derive(Debug, Default, Deserialize, utoipa::ToSchema)]
#[serde(default, rename_all = "camelCase")]
pub struct DeleteAccountRequest {
    /// The account's current password.
    #[schema(required = true, format = "password")]
    current_password: String,
}

/// A fresh token pair.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct TokensResponse {
    tokens: TokenPair,
}

impl From<TokenPair> for TokensResponse {
    fn from(tokens: TokenPair) -> Self {
        Self { tokens }
    }
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
    /// Whether the person proved they read mail at `email` (a verification
    /// link, or a password reset). An email change sets it back to `false`.
    email_verified: bool,
    /// An email change waiting for its link (accounts signed up under
    /// `EMAIL_CONFIRMATION=required`): `email` stays until the link mailed
    /// to this address is opened. Absent when none waits.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(format = "email", nullable = false)]
    pending_email: Option<String>,
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
                email_verified: user.email_verified,
                pending_email: user.pending_email,
            },
        }
    }
}

/// Collects field errors so one response reports all of them.
#[derive(Default)]
pub(super) struct Validator(Vec<InvalidArg>);

impl Validator {
    pub(super) fn check<T>(&mut self, field: &str, parsed: Result<T, String>) -> Option<T> {
        parsed
            .map_err(|message| self.0.push(InvalidArg::new(field, message)))
            .ok()
    }

    pub(super) fn finish(self) -> AppResult<()> {
        if self.0.is_empty() {
            Ok(())
        } else {
            Err(AppError::invalid_args(self.0))
        }
    }
}

/// Unwraps values a finished [`Validator`] has accepted.
pub(super) fn accepted<T>(value: Option<T>) -> AppResult<T> {
    value.ok_or_else(|| AppError::Internal(anyhow::anyhow!("validated value missing")))
}

pub(super) fn parse_credentials(
    body: &CredentialsRequest,
    password_rule: fn(&str) -> Result<Password, String>,
) -> AppResult<(Email, Password)> {
    let mut v = Validator::default();
    let email = v.check("email", Email::parse(&body.email));
    let password = v.check("password", password_rule(&body.password));
    v.finish()?;
    Ok((accepted(email)?, accepted(password)?))
}

/// The answer to every sign-up under `EMAIL_CONFIRMATION=required`, whether
/// or not the address was taken.
pub const SIGNUP_ACCEPTED: &str =
    "a mail has been sent to this address: follow it to finish signing up";

/// `POST /signup` → 201 with a token pair (409 if the email is taken); under
/// `EMAIL_CONFIRMATION=required` 202 for every address.
#[utoipa::path(
    post,
    path = "/signup",
    tag = tags::ACCOUNT,
    summary = "Sign up",
    description = "With `EMAIL_CONFIRMATION=optional` (the default): creates the user and \
                   answers 201 with a token pair, as a sign-in would, and mails a verification \
                   link to the address (`POST /verify-email`); an unverified account can sign \
                   in, its ID token says `email_verified: false`. A registered address is 409, \
                   so this tells anyone whether an address has an account. \
                   With `EMAIL_CONFIRMATION=required`: 202 `{\"message\"}` without tokens \
                   for every address, new or taken, in about the same time. A new address gets \
                   an account that signs in once the link mailed to it is opened (before that \
                   sign-in is 403 `EMAIL_NOT_VERIFIED`); a registered one gets a mail telling \
                   its owner someone tried to sign up with it (or, unverified, a fresh link), \
                   at most `MAIL_RATE_LIMIT` per account per window. \
                   Sign-ups are limited per client address (`SIGNUP_RATE_LIMIT` per \
                   `RATE_LIMIT_WINDOW`).",
    request_body = CredentialsRequest,
    responses(
        (status = 201, description = "Signed up (`EMAIL_CONFIRMATION=optional`)", body = TokensResponse),
        (status = 202, description = "`EMAIL_CONFIRMATION=required`: the same for every address; what happened went by mail", body = MessageResponse,
         example = json!({"message": SIGNUP_ACCEPTED})),
        (status = 400, description = "Malformed body, or field errors in `invalidArgs`", body = ErrorBody),
        (status = 409, description = "The email is already registered (`EMAIL_CONFIRMATION=optional` only)", body = ErrorBody,
         example = json!({"error": {"type": "CONFLICT", "message": "email already registered"}})),
        BodyErrors,
        LimitErrors,
    )
)]
pub async fn signup(
    State(state): State<AppState>,
    Client(client): Client,
    JsonBody(body): JsonBody<CredentialsRequest>,
) -> AppResult<Response> {
    let (email, password) = parse_credentials(&body, Password::parse)?;
    Ok(
        match state.account.sign_up(email, password, client).await? {
            SignUp::SignedIn(tokens) => {
                (StatusCode::CREATED, Json(TokensResponse { tokens })).into_response()
            }
            SignUp::Accepted => (
                StatusCode::ACCEPTED,
                Json(MessageResponse {
                    message: SIGNUP_ACCEPTED,
                }),
            )
                .into_response(),
        },
    )
}

/// `POST /signin` → 200 with a token pair; the same 401 for unknown email and wrong password.
#[utoipa::path(
    post,
    path = "/signin",
    tag = tags::ACCOUNT,
    summary = "Sign in",
    description = "Checks the credentials and answers with a new token pair. The email is \
                   compared in its normal form (any case, composition or width); an unknown email and a wrong password answer the same 401. \
                   Attempts are limited per `RATE_LIMIT_WINDOW`: per email and client address \
                   (`SIGNIN_RATE_LIMIT`), per client address (`SIGNIN_IP_RATE_LIMIT`) and per \
                   email (`SIGNIN_EMAIL_RATE_LIMIT`); a successful one gives back what it \
                   counted for its client address.",
    request_body = CredentialsRequest,
    responses(
        (status = 200, description = "Signed in (`{\"tokens\"}`); for a user with a second factor `{\"mfa\": {token, expiresIn, methods}}` and no tokens: present the code at `POST /signin/mfa`", body = inline(SignInResponse)),
        (status = 400, description = "Malformed body, or field errors in `invalidArgs`", body = ErrorBody),
        (status = 401, description = "Unknown email or wrong password", body = ErrorBody,
         headers(("WWW-Authenticate" = String, description = "`Bearer`")),
         example = json!({"error": {"type": "AUTHORIZATION", "message": "invalid email and password combination"}})),
        (status = 403, description = "`EMAIL_NOT_VERIFIED`: the right password of an account signed up under `EMAIL_CONFIRMATION=required` whose address is not verified yet (open the link mailed to it; `POST /verify-email/resend` with `{\"email\"}` sends a new one)", body = ErrorBody,
         example = json!({"error": {"type": "EMAIL_NOT_VERIFIED", "message": crate::error::EMAIL_NOT_VERIFIED}})),
        BodyErrors,
        LimitErrors,
    )
)]
pub async fn signin(
    State(state): State<AppState>,
    Client(client): Client,
    JsonBody(body): JsonBody<CredentialsRequest>,
) -> AppResult<Response> {
    let (email, password) = parse_credentials(&body, Password::parse_for_signin)?;
    Ok(Json(
        match state.account.sign_in(email, password, client).await? {
            SignIn::Tokens(tokens) => SignInResponse::Tokens(TokensResponse { tokens }),
            SignIn::SecondFactor(challenge) => SignInResponse::SecondStep(challenge.into()),
        },
    )
    .into_response())
}

/// What a sign-in answers: a pair, or the second step it waits for.
#[derive(Debug, Serialize, utoipa::ToSchema)]
#[serde(untagged)]
pub enum SignInResponse {
    Tokens(TokensResponse),
    SecondStep(super::mfa::SecondStepResponse),
}

/// `POST /tokens` → 200 with a rotated pair; 401 if the refresh token does not
/// verify or is no longer whitelisted (used, revoked or signed out).
#[utoipa::path(
    post,
    path = "/tokens",
    tag = tags::ACCOUNT,
    summary = "Refresh the token pair",
    description = "Rotates: answers with a new pair and the presented refresh token stops \
                   working. The same token presented again within `REFRESH_REUSE_GRACE` seconds \
                   of its first rotation (several tabs, a retried request) gets the same new \
                   pair again; later, it ends the session (`REFRESH_TOKEN_REUSED`).",
    request_body = RefreshRequest,
    responses(
        (status = 200, description = "The rotated pair", body = TokensResponse),
        (status = 400, description = "Malformed body, or `refreshToken` missing (in `invalidArgs`)", body = ErrorBody),
        (status = 401, description = "`AUTHORIZATION`: the refresh token does not verify, or its session is over (signed out, evicted, revoked, past `SESSION_MAX_AGE`). `REFRESH_TOKEN_REUSED`: it was already rotated more than `REFRESH_REUSE_GRACE` seconds ago (or is older still): treated as theft, its session is ended", body = ErrorBody,
         headers(("WWW-Authenticate" = String, description = "`Bearer error=\"invalid_token\"`")),
         example = json!({"error": {"type": "REFRESH_TOKEN_REUSED", "message": "refresh token was already used; the session has been ended"}})),
        BodyErrors,
    )
)]
pub async fn tokens(
    State(state): State<AppState>,
    Client(client): Client,
    body: Result<JsonBody<RefreshRequest>, ApiError>,
) -> Result<Json<TokensResponse>, ApiError> {
    let JsonBody(body) = body.map_err(|refused| {
        // A token with control characters is no token of ours: refused as
        // any other, 401.
        let not_a_token = refused
            .field_errors()
            .iter()
            .any(|arg| arg.field == "refreshToken" && arg.message == NOT_TEXT);
        if not_a_token {
            ApiError::from(AppError::invalid_token(REFRESH_TOKEN_REFUSED))
        } else {
            refused
        }
    })?;
    if body.refresh_token.trim().is_empty() {
        return Err(AppError::invalid_args(vec![InvalidArg::new(
            "refreshToken",
            "refreshToken is required",
        )])
        .into());
    }
    let tokens = state
        .account
        .refresh(body.refresh_token.trim(), client)
        .await?;
    Ok(Json(TokensResponse { tokens }))
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
        (status = 404, description = "The user of the ID token no longer exists", body = ErrorBody),
        BearerErrors,
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
    description = "A full update of name, email and website. Changing the email needs \
                   `currentPassword` (a stolen ID token alone must not take over the sign-in), \
                   ends every other session, and mails a verification link to the new address \
                   (`emailVerified` is `false` until it is followed). For an account signed up \
                   under `EMAIL_CONFIRMATION=required` the change is pending: `email` stays the \
                   verified address (and signs in), `pendingEmail` shows the new one until the \
                   link mailed to it is opened (`POST /verify-email`). Checking \
                   `currentPassword` counts as a sign-in attempt of the user's email from the \
                   caller's address (429 over a limit).",
    security(("bearer" = [])),
    request_body = DetailsRequest,
    responses(
        (status = 200, description = "The updated user", body = UserResponse),
        (status = 400, description = "Malformed body, or field errors in `invalidArgs`", body = ErrorBody),
        (status = 403, description = "`FORBIDDEN`: the email changes and `currentPassword` is wrong", body = ErrorBody),
        (status = 404, description = "The user of the ID token no longer exists", body = ErrorBody),
        (status = 409, description = "The email is registered to another user", body = ErrorBody),
        BearerBodyErrors,
        LimitErrors,
    )
)]
pub async fn details(
    State(state): State<AppState>,
    AuthUser(claims): AuthUser,
    Client(client): Client,
    JsonBody(body): JsonBody<DetailsRequest>,
) -> AppResult<Json<UserResponse>> {
    let mut v = Validator::default();
    let email = v.check("email", Email::parse(&body.email));
    let name = v.check("name", parse_name(&body.name));
    let website = v.check("website", Website::parse(&body.website));
    // Absent or empty: a form that always sends the field must still edit a
    // profile without a password; the use case asks for it when the email
    // changes.
    let current_password = match body.current_password.as_deref() {
        None | Some("") => None,
        Some(password) => v.check("currentPassword", Password::parse_for_signin(password)),
    };
    v.finish()?;
    let details = UserDetails {
        email: accepted(email)?,
        name: accepted(name)?,
        website: accepted(website)?,
    };
    let user = state
        .account
        .update_details(&claims, details, current_password, client)
        .await?;
    Ok(Json(user.into()))
}

/// `PUT /password` → 204; every other session ends.
#[utoipa::path(
    put,
    path = "/password",
    tag = tags::ACCOUNT,
    summary = "Change the password",
    description = "Checks the current password, stores the new one, voids the account's \
                   outstanding password-reset links, and ends every session but the \
                   caller's (the caller's refresh token keeps working). Checking the \
                   current password counts as a sign-in attempt of the user's email from the \
                   caller's address (429 over a limit).",
    security(("bearer" = [])),
    request_body = PasswordRequest,
    responses(
        (status = 204, description = "Changed; the other sessions are ended"),
        (status = 400, description = "Malformed body, or field errors in `invalidArgs`", body = ErrorBody),
        (status = 403, description = "`FORBIDDEN`: the current password is wrong", body = ErrorBody,
         example = json!({"error": {"type": "FORBIDDEN", "message": "the current password is wrong"}})),
        (status = 404, description = "The user of the ID token no longer exists", body = ErrorBody),
        BearerBodyErrors,
        LimitErrors,
    )
)]
pub async fn password(
    State(state): State<AppState>,
    AuthUser(claims): AuthUser,
    Client(client): Client,
    JsonBody(body): JsonBody<PasswordRequest>,
) -> AppResult<StatusCode> {
    let mut v = Validator::default();
    let current = v.check(
        "currentPassword",
        Password::parse_for_signin(&body.current_password),
    );
    let new = v.check("newPassword", Password::parse(&body.new_password));
    v.finish()?;
    state
        .account
        .change_password(&claims, accepted(current)?, accepted(new)?, client)
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

/// `DELETE /me` → 204; the account and every session are gone.
#[utoipa::path(
    delete,
    path = "/me",
    tag = tags::ACCOUNT,
    summary = "Delete the account",
    description = "Checks the current password, signs the user out everywhere (every refresh \
                   token stops working), then removes the user, so the email can be signed up \
                   again. ID tokens already issued stay valid until they expire, but `/me` \
                   answers 404 for them. Checking the password counts as a sign-in attempt of \
                   the user's email from the caller's address (429 over a limit). With the \
                   token store down the answer is 503 and nothing is deleted.",
    security(("bearer" = [])),
    request_body = DeleteAccountRequest,
    responses(
        (status = 204, description = "Deleted; every session is ended"),
        (status = 400, description = "Malformed body, or `currentPassword` missing (`invalidArgs`)", body = ErrorBody),
        (status = 403, description = "`FORBIDDEN`: the current password is wrong", body = ErrorBody,
         example = json!({"error": {"type": "FORBIDDEN", "message": "the current password is wrong"}})),
        (status = 404, description = "The user of the ID token no longer exists", body = ErrorBody),
        BearerBodyErrors,
        LimitErrors,
    )
)]
pub async fn delete_me(
    State(state): State<AppState>,
    AuthUser(claims): AuthUser,
    Client(client): Client,
    JsonBody(body): JsonBody<DeleteAccountRequest>,
) -> AppResult<StatusCode> {
    let mut v = Validator::default();
    let current = v.check(
        "currentPassword",
        Password::parse_for_signin(&body.current_password),
    );
    v.finish()?;
    state
        .account
        .delete_account(&claims, accepted(current)?, client)
        .await?;
    Ok(StatusCode::NO_CONTENT)
}
