//! Second factors: enrolling an authenticator, the factor list, recovery
//! codes, and the second step of a sign-in (`POST /signin/mfa` and its
//! `/browser` twin).

use axum::Json;
use axum::extract::rejection::PathRejection;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::account::{Validator, accepted};
use super::browser::{BrowserSite, signed_in};
use super::openapi::{BearerBodyErrors, BearerErrors, BodyErrors, LimitErrors, tags};
use super::sessions::RenameSessionRequest;
use super::{AppState, AuthUser, Client};
use crate::error::{AppError, AppResult};
use crate::model::{
    Factor, MfaChallenge, Password, SecondFactorMethod, SecondFactorProof, SignIn, TokenPair,
};
use crate::web::{ErrorBody, JsonBody};

/// The second step a right password earns a user with a factor.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct SecondStepResponse {
    mfa: MfaChallengeView,
}

/// `{token, expiresIn, methods}`
#[derive(Debug, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct MfaChallengeView {
    /// The mfa token to present at `POST /signin/mfa` with the code; it works
    /// once and dies after 5 wrong codes.
    token: String,
    /// Seconds it lives (`MFA_TOKEN_EXP`).
    expires_in: u64,
    /// What the user can answer with.
    #[schema(value_type = Vec<String>, example = json!(["totp", "recovery_code"]))]
    methods: Vec<SecondFactorMethod>,
}

impl From<MfaChallenge> for SecondStepResponse {
    fn from(challenge: MfaChallenge) -> Self {
        Self {
            mfa: MfaChallengeView {
                token: challenge.token,
                expires_in: challenge.expires_in,
                methods: challenge.methods,
            },
        }
    }
}

/// What a sign-in answers: a pair, or the second step.
pub(super) fn sign_in_answer(
    sign_in: SignIn,
    tokens: impl FnOnce(TokenPair) -> Response,
) -> Response {
    match sign_in {
        SignIn::Tokens(pair) => tokens(pair),
        SignIn::SecondFactor(challenge) => {
            Json(SecondStepResponse::from(challenge)).into_response()
        }
    }
}

/// `{mfaToken, method, code}` of the second step.
#[derive(Debug, Default, Deserialize, utoipa::ToSchema)]
#[serde(default, rename_all = "camelCase")]
pub struct SecondStepRequest {
    /// The `mfa.token` of the sign-in's answer.
    #[schema(required = true)]
    mfa_token: String,
    /// `totp` (a six-digit code of an authenticator), `recovery_code`, or
    /// `webauthn` (a passkey: `credential`, after
    /// `POST /signin/mfa/webauthn/start`).
    #[schema(value_type = String, required = true, example = "totp")]
    method: Option<SecondFactorMethod>,
    /// For `totp` and `recovery_code`: six digits (spaces ignored), or a
    /// recovery code (any case, hyphens ignored).
    #[schema(example = "123456")]
    code: String,
    /// For `webauthn`: the `PublicKeyCredential` of
    /// `navigator.credentials.get`, as JSON (bytes in base64url).
    #[schema(value_type = Option<Object>)]
    credential: Option<serde_json::Value>,
}

/// The mfa token, method and its proof of a second step, or a 400.
fn second_step_of(body: &SecondStepRequest) -> AppResult<(SecondFactorMethod, SecondFactorProof)> {
    let mut v = Validator::default();
    if body.mfa_token.trim().is_empty() {
        v.check::<()>("mfaToken", Err("mfaToken is required".into()));
    }
    let method = v.check(
        "method",
        body.method
            .ok_or_else(|| "method must be totp, recovery_code or webauthn".to_owned()),
    );
    let proof = match (body.method, &body.credential) {
        (Some(SecondFactorMethod::WebAuthn), Some(credential)) if credential.is_object() => {
            Some(SecondFactorProof::Credential(credential.clone()))
        }
        (Some(SecondFactorMethod::WebAuthn), _) => {
            v.check::<()>(
                "credential",
                Err("credential is required (an object)".into()),
            );
            None
        }
        _ if body.code.trim().is_empty() => {
            v.check::<()>("code", Err("code is required".into()));
            None
        }
        _ => Some(SecondFactorProof::Code(body.code.clone())),
    };
    v.finish()?;
    let proof = proof.ok_or_else(|| AppError::bad_request("a second step needs its proof"))?;
    Ok((accepted(method)?, proof))
}

/// `POST /signin/mfa` → 200 with a pair.
#[utoipa::path(
    post,
    path = "/signin/mfa",
    tag = tags::ACCOUNT,
    summary = "Sign in: the second step",
    description = "For a user with a second factor, `POST /signin` answers `{\"mfa\": {token, \
                   expiresIn, methods}}` instead of a pair. Present the token here with a code: a \
                   six-digit authenticator code (accepted one step either side of now, and only \
                   once) or a recovery code (each works once). A right code ends the mfa token \
                   and starts a session whose tokens say `acr: aal2`; a wrong one is 401 and \
                   counts: the fifth ends the mfa token (sign in again), and `MFA_RATE_LIMIT` \
                   per user per window answers 429.",
    request_body = SecondStepRequest,
    responses(
        (status = 200, description = "Signed in", body = super::account::TokensResponse),
        (status = 400, description = "Malformed body, or field errors in `invalidArgs`", body = ErrorBody),
        (status = 401, description = "`AUTHORIZATION`: a wrong code, or the mfa token is over (expired, used, 5 wrong codes)", body = ErrorBody),
        BodyErrors,
        LimitErrors,
    )
)]
pub async fn second_step(
    State(state): State<AppState>,
    Client(client): Client,
    JsonBody(body): JsonBody<SecondStepRequest>,
) -> AppResult<Json<super::account::TokensResponse>> {
    let (method, proof) = second_step_of(&body)?;
    let tokens = state
        .account
        .sign_in_second_step(body.mfa_token.trim(), method, proof, client)
        .await?;
    Ok(Json(super::account::TokensResponse::from(tokens)))
}

/// `POST /browser/signin/mfa` → 200 `{idToken}` and the cookie.
#[utoipa::path(
    post,
    path = "/browser/signin/mfa",
    tag = tags::BROWSER,
    summary = "Sign a browser in: the second step",
    description = "As `POST /signin/mfa`, with the answer of `/browser/signin`: the refresh \
                   token goes into the cookie and the answer is the ID token alone. Only from \
                   `PUBLIC_URL`'s origin.",
    request_body = SecondStepRequest,
    responses(
        (status = 200, description = "Signed in; the cookie is set", body = super::browser::IdTokenResponse),
        (status = 400, description = "Malformed body, or field errors in `invalidArgs`", body = ErrorBody),
        (status = 401, description = "A wrong code, or the mfa token is over", body = ErrorBody),
        (status = 403, description = "`FORBIDDEN`: not from `PUBLIC_URL`'s origin", body = ErrorBody),
        BodyErrors,
        LimitErrors,
    )
)]
pub async fn browser_second_step(
    State(state): State<AppState>,
    axum::Extension(site): axum::Extension<BrowserSite>,
    Client(client): Client,
    JsonBody(body): JsonBody<SecondStepRequest>,
) -> AppResult<Response> {
    let (method, proof) = second_step_of(&body)?;
    let tokens = state
        .account
        .sign_in_second_step(body.mfa_token.trim(), method, proof, client)
        .await?;
    Ok(signed_in(&site, StatusCode::OK, tokens))
}

/// `{currentPassword?}` of an enrolment.
#[derive(Debug, Default, Deserialize, utoipa::ToSchema)]
#[serde(default, rename_all = "camelCase")]
pub struct EnrolRequest {
    /// Needed unless the session signed in within `REAUTH_MAX_AGE` seconds.
    #[schema(format = "password")]
    current_password: Option<String>,
}

impl EnrolRequest {
    /// The current password, if given (empty: none).
    pub(super) fn current_password(&self) -> AppResult<Option<Password>> {
        match self.current_password.as_deref() {
            None | Some("") => Ok(None),
            Some(raw) => Password::parse_for_signin(raw)
                .map(Some)
                .map_err(|message| {
                    AppError::invalid_args(vec![crate::error::InvalidArg::new(
                        "currentPassword",
                        message,
                    )])
                }),
        }
    }
}

/// A pending authenticator factor: what the app needs, shown once.
#[derive(Debug, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct EnrolResponse {
    /// The factor's id, for the confirmation.
    id: Uuid,
    /// The shared secret in base32, for typing into the app.
    secret: String,
    /// `otpauth://totp/…` (SHA-1, 6 digits, 30 s), what the QR code holds.
    otpauth_uri: String,
    /// The URI as a QR code: an SVG document, to insert into a page.
    qr_svg: String,
}

/// `POST /mfa/totp` → 201.
#[utoipa::path(
    post,
    path = "/mfa/totp",
    tag = tags::ACCOUNT,
    summary = "Start enrolling an authenticator",
    description = "A pending factor (RFC 6238: SHA-1, 6 digits, 30 s; issuer `MFA_ISSUER`, \
                   label the email) and what the app needs. Confirm it with its first code \
                   within `MFA_PENDING_EXP` seconds, or it is gone. Needs a session signed in \
                   within `REAUTH_MAX_AGE` seconds or `currentPassword` in the body (401 \
                   `INSUFFICIENT_USER_AUTHENTICATION` with `max_age`), and for a user who \
                   already has a factor an `aal2` session (`acr_values=\"aal2\"`). 503 while the \
                   service has no data key.",
    security(("bearer" = [])),
    request_body(content = EnrolRequest, description = "May be empty (`{}`)"),
    responses(
        (status = 201, description = "The pending factor", body = EnrolResponse),
        (status = 400, description = "Malformed body", body = ErrorBody),
        (status = 403, description = "`FORBIDDEN`: the current password is wrong", body = ErrorBody),
        BearerBodyErrors,
        LimitErrors,
    )
)]
pub async fn enrol_totp(
    State(state): State<AppState>,
    AuthUser(claims): AuthUser,
    Client(client): Client,
    JsonBody(body): JsonBody<EnrolRequest>,
) -> AppResult<(StatusCode, Json<EnrolResponse>)> {
    let password = body.current_password()?;
    let enrolment = state.account.begin_totp(&claims, password, client).await?;
    Ok((
        StatusCode::CREATED,
        Json(EnrolResponse {
            id: enrolment.id,
            secret: enrolment.secret,
            otpauth_uri: enrolment.otpauth_uri,
            qr_svg: enrolment.qr_svg,
        }),
    ))
}

/// `{code}` of a confirmation.
#[derive(Debug, Default, Deserialize, utoipa::ToSchema)]
#[serde(default)]
pub struct ConfirmRequest {
    /// The app's current six-digit code.
    #[schema(required = true, example = "123456")]
    code: String,
}

/// A confirmed factor.
#[derive(Debug, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ConfirmResponse {
    /// With the account's first factor only: 10 single-use codes, shown this
    /// once (groups of 4 characters, Crockford base32).
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    recovery_codes: Option<Vec<String>>,
    /// Other sessions ended (with the first factor: every one but the
    /// caller's, which is raised to `aal2`).
    sessions_ended: u64,
}

/// The factor id of a path: 404 unless a UUID.
fn factor_id(id: Result<Path<String>, PathRejection>) -> AppResult<Uuid> {
    super::extract::uuid_in_path(id, "no such factor")
}

/// `POST /mfa/totp/{id}/confirm` → 200.
#[utoipa::path(
    post,
    path = "/mfa/totp/{id}/confirm",
    tag = tags::ACCOUNT,
    summary = "Confirm an authenticator",
    description = "The app's current code confirms the pending factor. The account's first \
                   factor of any kind also answers `recoveryCodes` (shown this once), raises the \
                   caller's session to `aal2` (its next refresh carries it) and ends every other \
                   session (`sessionsEnded`). From then on no sign-in gets tokens without the \
                   second factor. Wrong codes count on `MFA_RATE_LIMIT`.",
    security(("bearer" = [])),
    params(("id" = Uuid, Path, description = "The pending factor's id")),
    request_body = ConfirmRequest,
    responses(
        (status = 200, description = "Confirmed", body = ConfirmResponse),
        (status = 400, description = "`invalidArgs` naming `code`: wrong or expired", body = ErrorBody),
        (status = 404, description = "No such pending factor of the caller's (or it expired)", body = ErrorBody),
        BearerBodyErrors,
        LimitErrors,
    )
)]
pub async fn confirm_totp(
    State(state): State<AppState>,
    AuthUser(claims): AuthUser,
    Client(client): Client,
    id: Result<Path<String>, PathRejection>,
    JsonBody(body): JsonBody<ConfirmRequest>,
) -> AppResult<Json<ConfirmResponse>> {
    let id = factor_id(id)?;
    let confirmed = state
        .account
        .confirm_totp(&claims, id, &body.code, client)
        .await?;
    Ok(Json(ConfirmResponse {
        recovery_codes: confirmed.recovery_codes,
        sessions_ended: confirmed.sessions_ended,
    }))
}

/// A factor as listed.
#[derive(Debug, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct FactorView {
    id: Uuid,
    /// `totp` (an authenticator app) or `webauthn` (a passkey)
    #[serde(rename = "type")]
    #[schema(example = "totp")]
    kind: &'static str,
    /// The name its user gave it, or `null`.
    #[schema(required = true)]
    name: Option<String>,
    /// Unix seconds.
    created_at: u64,
    /// When a code of it was last accepted (Unix seconds), or `null`.
    #[schema(required = true)]
    last_used_at: Option<u64>,
}

impl From<Factor> for FactorView {
    fn from(factor: Factor) -> Self {
        Self {
            id: factor.id,
            kind: factor.kind.as_str(),
            name: factor.name,
            created_at: factor.created_at,
            last_used_at: factor.last_used_at,
        }
    }
}

/// The caller's factors.
#[derive(Debug, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct FactorsResponse {
    factors: Vec<FactorView>,
    /// Recovery codes not used yet.
    recovery_codes_left: u64,
}

/// `GET /mfa` → 200.
#[utoipa::path(
    get,
    path = "/mfa",
    tag = tags::ACCOUNT,
    summary = "The caller's second factors",
    security(("bearer" = [])),
    responses(
        (status = 200, description = "Confirmed factors, oldest first", body = FactorsResponse),
        BearerErrors,
    )
)]
pub async fn list(
    State(state): State<AppState>,
    AuthUser(claims): AuthUser,
) -> AppResult<Json<FactorsResponse>> {
    let list = state.account.factors(&claims).await?;
    Ok(Json(FactorsResponse {
        factors: list.factors.into_iter().map(FactorView::from).collect(),
        recovery_codes_left: list.recovery_codes_left,
    }))
}

/// `PUT /mfa/{id}` → 204.
#[utoipa::path(
    put,
    path = "/mfa/{id}",
    tag = tags::ACCOUNT,
    summary = "Name a second factor",
    description = "The session-name rules: 1 to 64 characters after trimming, no control \
                   characters, `null` clears it.",
    security(("bearer" = [])),
    params(("id" = Uuid, Path, description = "The factor's id")),
    request_body = RenameSessionRequest,
    responses(
        (status = 204, description = "Named"),
        (status = 400, description = "`invalidArgs` naming `name`", body = ErrorBody),
        (status = 404, description = "No such factor of the caller's", body = ErrorBody),
        BearerBodyErrors,
    )
)]
pub async fn rename(
    State(state): State<AppState>,
    AuthUser(claims): AuthUser,
    id: Result<Path<String>, PathRejection>,
    JsonBody(body): JsonBody<RenameSessionRequest>,
) -> AppResult<StatusCode> {
    let id = factor_id(id)?;
    let name = body.parse()?;
    state.account.rename_factor(&claims, id, name).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// `DELETE /mfa/{id}` → 204.
#[utoipa::path(
    delete,
    path = "/mfa/{id}",
    tag = tags::ACCOUNT,
    summary = "Remove a second factor",
    description = "Needs an `aal2` session (401 `INSUFFICIENT_USER_AUTHENTICATION` with \
                   `acr_values=\"aal2\"` otherwise). The last factor takes the recovery codes \
                   with it: sign-in asks for the password alone again.",
    security(("bearer" = [])),
    params(("id" = Uuid, Path, description = "The factor's id")),
    responses(
        (status = 204, description = "Removed"),
        (status = 404, description = "No such factor of the caller's", body = ErrorBody),
        BearerErrors,
    )
)]
pub async fn delete(
    State(state): State<AppState>,
    AuthUser(claims): AuthUser,
    Client(client): Client,
    id: Result<Path<String>, PathRejection>,
) -> AppResult<StatusCode> {
    let id = factor_id(id)?;
    state.account.delete_factor(&claims, id, client).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// A new set of recovery codes.
#[derive(Debug, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct RecoveryCodesResponse {
    /// 10 single-use codes, shown this once.
    recovery_codes: Vec<String>,
}

/// `POST /mfa/recovery-codes` → 200.
#[utoipa::path(
    post,
    path = "/mfa/recovery-codes",
    tag = tags::ACCOUNT,
    summary = "A new set of recovery codes",
    description = "Replaces the recovery codes: the old set stops working. Needs an `aal2` \
                   session; 409 for a user without a factor.",
    security(("bearer" = [])),
    responses(
        (status = 200, description = "The new codes", body = RecoveryCodesResponse),
        (status = 409, description = "No second factor", body = ErrorBody),
        BearerErrors,
    )
)]
pub async fn recovery_codes(
    State(state): State<AppState>,
    AuthUser(claims): AuthUser,
    Client(client): Client,
) -> AppResult<Json<RecoveryCodesResponse>> {
    let recovery_codes = state.account.new_recovery_codes(&claims, client).await?;
    Ok(Json(RecoveryCodesResponse { recovery_codes }))
}
