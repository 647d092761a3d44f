//! Email verification and password reset (issue 10). The mails' links point
//! at the app's own pages with `?token=…`; those pages call these endpoints.

use axum::Json;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use serde::Deserialize;

use super::account::{Validator, accepted};
use super::openapi::{BearerBodyErrors, BodyErrors, LimitErrors, tags};
use super::sessions::MessageResponse;
use super::{AppState, AuthUser, Client};
use crate::error::{AppError, AppResult};
use crate::model::{Email, Password};
use crate::web::{ApiError, ErrorBody, JsonBody};

/// The answer to every reset request, whether or not the address has an
/// account.
pub const RESET_REQUESTED: &str =
    "if an account has this email, a link to reset its password has been sent to it";
/// The answer to a resend.
pub const VERIFICATION_SENT: &str = "a new verification link has been sent";
/// The answer to every resend by address, whether or not an account has it.
pub const VERIFICATION_REQUESTED: &str =
    "if an unverified account has this email, a new verification link has been sent to it";

/// `{token}` of a verification.
#[derive(Debug, Default, Deserialize, utoipa::ToSchema)]
#[serde(default)]
pub struct VerifyEmailRequest {
    /// The `token` query parameter of the verification mail's link. It works
    /// once, within `VERIFY_TOKEN_EXP`; a newer link replaces it.
    #[schema(
        required = true,
        example = "q3Zr0v4m7XbqU8c1x9kT2fWnLhJ5sPyA6dE0gR3tYuI"
    )]
    token: String,
}

/// `{email}` of a reset request.
#[derive(Debug, Default, Deserialize, utoipa::ToSchema)]
#[serde(default)]
pub struct PasswordResetRequest {
    /// The account's address, in any spelling (compared in its normal form).
    #[schema(required = true, format = "email", example = "ada@example.com")]
    email: String,
}

/// `{email}` of a resend by address (no bearer token needed).
#[derive(Debug, Default, Deserialize, utoipa::ToSchema)]
#[serde(default)]
pub struct ResendVerificationRequest {
    /// The account's address, in any spelling (compared in its normal form).
    #[schema(required = true, format = "email", example = "ada@example.com")]
    email: String,
}

/// `{token, newPassword}` of a reset.
#[derive(Debug, Default, Deserialize, utoipa::ToSchema)]
#[serde(default, rename_all = "camelCase")]
pub struct PasswordResetConfirmRequest {
    /// The `token` query parameter of the reset mail's link. It works once,
    /// within `RESET_TOKEN_EXP`; a newer request replaces it.
    #[schema(
        required = true,
        example = "q3Zr0v4m7XbqU8c1x9kT2fWnLhJ5sPyA6dE0gR3tYuI"
    )]
    token: String,
    /// 8 characters to 256 bytes.
    #[schema(required = true, format = "password")]
    new_password: String,
}

/// A token field: trimmed, required.
fn parse_token(raw: &str) -> Result<String, String> {
    match raw.trim() {
        "" => Err("token is required".into()),
        token => Ok(token.to_owned()),
    }
}

/// `POST /verify-email` → 204; the address the token was sent to is verified.
#[utoipa::path(
    post,
    path = "/verify-email",
    tag = tags::ACCOUNT,
    summary = "Verify the email address",
    description = "Redeems the token of a verification link (sent at sign-up, after an email \
                   change, or on request): the address it was sent to is verified, if it is \
                   still the account's. `GET /me` then shows `emailVerified: true`, and ID \
                   tokens issued from then on (the next refresh or sign-in) carry \
                   `email_verified: true`. A token works once, within `VERIFY_TOKEN_EXP` \
                   seconds; a newer link replaces the older.",
    request_body = VerifyEmailRequest,
    responses(
        (status = 204, description = "Verified"),
        (status = 400, description = "Malformed body, `token` missing, or a bad, used or expired token (`invalidArgs` names `token`)", body = ErrorBody,
         example = json!({"error": {"type": "BAD_REQUEST", "message": "invalid request parameters",
             "invalidArgs": [{"field": "token", "message": "the token is invalid, used or expired"}]}})),
        BodyErrors,
        LimitErrors,
    )
)]
pub async fn verify_email(
    State(state): State<AppState>,
    Client(client): Client,
    JsonBody(body): JsonBody<VerifyEmailRequest>,
) -> AppResult<StatusCode> {
    let mut v = Validator::default();
    let token = v.check("token", parse_token(&body.token));
    v.finish()?;
    state
        .account
        .verify_email(&accepted(token)?, client)
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

/// `POST /verify-email/resend` → 202; a new verification link is mailed:
/// to the caller (bearer token, no body), or to an address (`{email}`
/// body, no bearer token needed), the same answer for every address.
#[utoipa::path(
    post,
    path = "/verify-email/resend",
    tag = tags::ACCOUNT,
    summary = "Send the verification link again",
    description = "Two forms. Without a body, with the bearer ID token: mails a new \
                   verification link to the caller's address (the older link stops working); \
                   409 when it is already verified; limited per user (`MAIL_RATE_LIMIT` per \
                   `RATE_LIMIT_WINDOW`: 429). With a JSON body `{\"email\"}` (no bearer token \
                   needed, any `EMAIL_CONFIRMATION` mode; a bearer token sent along is \
                   ignored): the same 202, in about the same time, for every address; a link \
                   is mailed only if an account has the address and it is unverified. Counted \
                   as a password-reset request: per client address (`SIGNIN_IP_RATE_LIMIT`: \
                   429) and per account (`MAIL_RATE_LIMIT`: past it still 202, no mail). \
                   This is how an account that must confirm its address \
                   (`EMAIL_CONFIRMATION=required`), which cannot sign in yet, asks again.",
    security((), ("bearer" = [])),
    request_body(content = Option<ResendVerificationRequest>, description = "Only for a resend by address; without it the bearer ID token names the account"),
    responses(
        (status = 202, description = "The mail is on its way (bearer), or accepted (by address: a mail is sent if an unverified account has it)", body = MessageResponse,
         example = json!({"message": VERIFICATION_SENT})),
        (status = 400, description = "By address: malformed body, or `email` not an address (`invalidArgs`)", body = ErrorBody),
        (status = 404, description = "The user of the ID token no longer exists", body = ErrorBody),
        (status = 409, description = "The address is already verified (bearer form)", body = ErrorBody,
         example = json!({"error": {"type": "CONFLICT", "message": "the email is already verified"}})),
        BearerBodyErrors,
        LimitErrors,
    )
)]
pub async fn resend_verification(
    State(state): State<AppState>,
    Client(client): Client,
    headers: HeaderMap,
    caller: Result<AuthUser, AppError>,
    body: Result<JsonBody<ResendVerificationRequest>, ApiError>,
) -> Result<(StatusCode, Json<MessageResponse>), ApiError> {
    // A body (it has a Content-Type) asks by address; none, for the caller.
    if !headers.contains_key(header::CONTENT_TYPE) {
        let AuthUser(claims) = caller?;
        state.account.resend_verification(&claims).await?;
        return Ok((
            StatusCode::ACCEPTED,
            Json(MessageResponse {
                message: VERIFICATION_SENT,
            }),
        ));
    }
    let JsonBody(body) = body?;
    let mut v = Validator::default();
    let email = v.check("email", Email::parse(&body.email));
    v.finish()?;
    state
        .account
        .resend_verification_to(accepted(email)?, client)
        .await?;
    Ok((
        StatusCode::ACCEPTED,
        Json(MessageResponse {
            message: VERIFICATION_REQUESTED,
        }),
    ))
}

/// `POST /password-reset` → 202, the same for every address.
#[utoipa::path(
    post,
    path = "/password-reset",
    tag = tags::ACCOUNT,
    summary = "Ask for a password-reset link",
    description = "If an account has this address, mails it a link to reset its password \
                   (older links stop working). The answer is the same, in about the same time, \
                   whether or not an account has it. Limited per client address \
                   (`SIGNIN_IP_RATE_LIMIT` per `RATE_LIMIT_WINDOW`: 429) and per address \
                   (`MAIL_RATE_LIMIT`: past it the answer is still 202, and no mail is sent).",
    request_body = PasswordResetRequest,
    responses(
        (status = 202, description = "Accepted; a mail is sent if an account has the address", body = MessageResponse,
         example = json!({"message": RESET_REQUESTED})),
        (status = 400, description = "Malformed body, or `email` not an address (`invalidArgs`)", body = ErrorBody),
        BodyErrors,
        LimitErrors,
    )
)]
pub async fn request_password_reset(
    State(state): State<AppState>,
    Client(client): Client,
    JsonBody(body): JsonBody<PasswordResetRequest>,
) -> AppResult<(StatusCode, Json<MessageResponse>)> {
    let mut v = Validator::default();
    let email = v.check("email", Email::parse(&body.email));
    v.finish()?;
    state
        .account
        .request_password_reset(accepted(email)?, client)
        .await?;
    Ok((
        StatusCode::ACCEPTED,
        Json(MessageResponse {
            message: RESET_REQUESTED,
        }),
    ))
}

/// `POST /password-reset/confirm` → 204; the new password is set.
#[utoipa::path(
    post,
    path = "/password-reset/confirm",
    tag = tags::ACCOUNT,
    summary = "Set a new password with a reset link's token",
    description = "Redeems the token of a reset link: sets the new password, ends every \
                   session of the account (sign in again), marks the address verified, and \
                   clears its sign-in limits (a locked-out owner gets in again). A token works \
                   once, within `RESET_TOKEN_EXP` seconds, only while the address is \
                   still the account's, and not after a password change.",
    request_body = PasswordResetConfirmRequest,
    responses(
        (status = 204, description = "The password is set; every session has ended"),
        (status = 400, description = "Malformed body, field errors, or a bad, used or expired token (`invalidArgs` names `token`)", body = ErrorBody,
         example = json!({"error": {"type": "BAD_REQUEST", "message": "invalid request parameters",
             "invalidArgs": [{"field": "token", "message": "the token is invalid, used or expired"}]}})),
        BodyErrors,
        LimitErrors,
    )
)]
pub async fn confirm_password_reset(
    State(state): State<AppState>,
    Client(client): Client,
    JsonBody(body): JsonBody<PasswordResetConfirmRequest>,
) -> AppResult<StatusCode> {
    let mut v = Validator::default();
    let token = v.check("token", parse_token(&body.token));
    let new = v.check("newPassword", Password::parse(&body.new_password));
    v.finish()?;
    state
        .account
        .confirm_password_reset(&accepted(token)?, accepted(new)?, client)
        .await?;
    Ok(StatusCode::NO_CONTENT)
}
