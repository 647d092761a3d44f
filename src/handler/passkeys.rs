//! Passkeys (issues 29 and 30): registering one, the start of a second step
//! with one (its finish is `POST /signin/mfa` with `method: "webauthn"`),
//! and signing in with a passkey alone.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::Response;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use uuid::Uuid;

use super::browser::{BrowserSite, signed_in};
use super::mfa::EnrolRequest;
use super::openapi::{BearerBodyErrors, BodyErrors, LimitErrors, tags};
use super::{AppState, AuthUser, Client};
use crate::error::{AppError, AppResult, InvalidArg};
use crate::model::SessionName;
use crate::web::{ErrorBody, JsonBody};

/// `POST /mfa/webauthn/register/start` → 200.
#[utoipa::path(
    post,
    path = "/mfa/webauthn/register/start",
    tag = tags::ACCOUNT,
    summary = "Start registering a passkey",
    description = "The options `navigator.credentials.create` takes (`{\"publicKey\": {…}}`, \
                   bytes in base64url: `PublicKeyCredential.parseCreationOptionsFromJSON` \
                   reads them): a discoverable credential (`residentKey: required`), user \
                   verification required, the account's passkeys excluded. The ceremony waits \
                   `WEBAUTHN_CEREMONY_EXP` seconds, on any replica, and works once. The \
                   enrolment rule of an authenticator: a session signed in within \
                   `REAUTH_MAX_AGE` or `currentPassword`, and `aal2` for a user who has a \
                   factor. 503 while passkeys are off (an IP address as relying party).",
    security(("bearer" = [])),
    request_body(content = EnrolRequest, description = "May be empty (`{}`)"),
    responses(
        (status = 200, description = "The creation options", body = Object),
        (status = 400, description = "Malformed body", body = ErrorBody),
        (status = 403, description = "`FORBIDDEN`: the current password is wrong", body = ErrorBody),
        BearerBodyErrors,
        LimitErrors,
    )
)]
pub async fn register_start(
    State(state): State<AppState>,
    AuthUser(claims): AuthUser,
    Client(client): Client,
    JsonBody(body): JsonBody<EnrolRequest>,
) -> AppResult<Json<Value>> {
    let password = body.current_password()?;
    let options = state
        .account
        .begin_passkey_registration(&claims, password, client)
        .await?;
    Ok(Json(options))
}

/// `{name?, credential}` of a registration's finish.
#[derive(Debug, Default, Deserialize, utoipa::ToSchema)]
#[serde(default, rename_all = "camelCase")]
pub struct RegisterFinishRequest {
    /// A name for people (the session-name rules), or none.
    #[schema(example = "laptop")]
    name: Option<String>,
    /// The `PublicKeyCredential` of `navigator.credentials.create`, as JSON
    /// (`credential.toJSON()`: bytes in base64url).
    #[schema(value_type = Object, required = true)]
    credential: Option<Value>,
}

/// A registered passkey.
#[derive(Debug, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct PasskeyRegisteredResponse {
    /// The factor's id (`GET /mfa` lists it as `webauthn`).
    id: Uuid,
    /// With the account's first factor only: 10 single-use codes, shown this
    /// once.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    recovery_codes: Option<Vec<String>>,
    /// Other sessions ended (with the first factor: every one but the
    /// caller's, which is raised to `aal2`).
    sessions_ended: u64,
}

/// `POST /mfa/webauthn/register/finish` → 201.
#[utoipa::path(
    post,
    path = "/mfa/webauthn/register/finish",
    tag = tags::ACCOUNT,
    summary = "Finish registering a passkey",
    description = "Checks the credential against its ceremony (found by the challenge in its \
                   `clientDataJSON`; taken once) with webauthn-rs: origin (`WEBAUTHN_ORIGINS`), \
                   relying party, user verification. The passkey becomes a factor of type \
                   `webauthn`; the account's first factor also answers recovery codes, raises \
                   the caller's session to `aal2` and ends every other session, as a confirmed \
                   authenticator does. A refused credential is a 400 naming `credential`.",
    security(("bearer" = [])),
    request_body = RegisterFinishRequest,
    responses(
        (status = 201, description = "Registered", body = PasskeyRegisteredResponse),
        (status = 400, description = "`invalidArgs` naming `credential` or `name`", body = ErrorBody),
        BearerBodyErrors,
    )
)]
pub async fn register_finish(
    State(state): State<AppState>,
    AuthUser(claims): AuthUser,
    Client(client): Client,
    JsonBody(body): JsonBody<RegisterFinishRequest>,
) -> AppResult<(StatusCode, Json<PasskeyRegisteredResponse>)> {
    let name =
        match body.name.as_deref().map(str::trim) {
            None | Some("") => None,
            Some(raw) => Some(SessionName::parse(raw).map_err(|message| {
                AppError::invalid_args(vec![InvalidArg::new("name", message)])
            })?),
        };
    let Some(credential) = body.credential.filter(Value::is_object) else {
        return Err(AppError::invalid_args(vec![InvalidArg::new(
            "credential",
            "credential is required (an object)",
        )]));
    };
    let (id, confirmed) = state
        .account
        .finish_passkey_registration(&claims, name, credential, client)
        .await?;
    Ok((
        StatusCode::CREATED,
        Json(PasskeyRegisteredResponse {
            id,
            recovery_codes: confirmed.recovery_codes,
            sessions_ended: confirmed.sessions_ended,
        }),
    ))
}

/// `{mfaToken}` of a passkey second step's start.
#[derive(Debug, Default, Deserialize, utoipa::ToSchema)]
#[serde(default, rename_all = "camelCase")]
pub struct StepStartRequest {
    /// The `mfa.token` of the sign-in's answer.
    #[schema(required = true)]
    mfa_token: String,
}

/// `POST /signin/mfa/webauthn/start` → 200.
#[utoipa::path(
    post,
    path = "/signin/mfa/webauthn/start",
    tag = tags::ACCOUNT,
    summary = "Sign in: start a passkey second step",
    description = "For a sign-in whose `mfa.methods` include `webauthn`: the options \
                   `navigator.credentials.get` takes (`{\"publicKey\": {…}}`, the account's \
                   passkeys allowed, user verification required). Answer with `POST \
                   /signin/mfa {mfaToken, method: \"webauthn\", credential}` within \
                   `WEBAUTHN_CEREMONY_EXP`; the ceremony works once. 401 when the mfa token is \
                   over, 409 for an account without a passkey.",
    request_body = StepStartRequest,
    responses(
        (status = 200, description = "The request options", body = Object),
        (status = 400, description = "`invalidArgs` naming `mfaToken`", body = ErrorBody),
        (status = 401, description = "The mfa token is over (expired, used, 5 wrong codes)", body = ErrorBody),
        (status = 409, description = "The account has no passkey", body = ErrorBody),
        BodyErrors,
    )
)]
pub async fn step_start(
    State(state): State<AppState>,
    JsonBody(body): JsonBody<StepStartRequest>,
) -> AppResult<Json<Value>> {
    let token = body.mfa_token.trim();
    if token.is_empty() {
        return Err(AppError::invalid_args(vec![InvalidArg::new(
            "mfaToken",
            "mfaToken is required",
        )]));
    }
    Ok(Json(state.account.begin_passkey_step(token).await?))
}

/// `POST /signin/passkey/start` → 200.
#[utoipa::path(
    post,
    path = "/signin/passkey/start",
    tag = tags::ACCOUNT,
    summary = "Sign in with a passkey alone: start",
    description = "The options `navigator.credentials.get` takes for any passkey of this \
                   relying party (no email asked: the passkey names its user), user verification \
                   required. Without `mediation`: add `mediation: \"conditional\"` in the page for \
                   the browser's passkey autofill. Counted on the per-address sign-in limit \
                   (`SIGNIN_IP_RATE_LIMIT`); the ceremony waits `WEBAUTHN_CEREMONY_EXP` and works \
                   once. 503 while passkeys are off.",
    request_body(content = Object, description = "Empty (`{}`)"),
    responses(
        (status = 200, description = "The request options", body = Object),
        BodyErrors,
        LimitErrors,
    )
)]
pub async fn sign_in_start(
    State(state): State<AppState>,
    Client(client): Client,
) -> AppResult<Json<Value>> {
    Ok(Json(state.account.begin_passkey_sign_in(client).await?))
}

/// `{credential}` of a password-free sign-in.
#[derive(Debug, Default, Deserialize, utoipa::ToSchema)]
#[serde(default)]
pub struct PasskeySignInRequest {
    /// The `PublicKeyCredential` of `navigator.credentials.get`, as JSON.
    #[schema(value_type = Object, required = true)]
    credential: Option<Value>,
}

impl PasskeySignInRequest {
    fn credential(self) -> AppResult<Value> {
        self.credential.filter(Value::is_object).ok_or_else(|| {
            AppError::invalid_args(vec![InvalidArg::new(
                "credential",
                "credential is required (an object)",
            )])
        })
    }
}

/// `POST /signin/passkey/finish` → 200 with a pair.
#[utoipa::path(
    post,
    path = "/signin/passkey/finish",
    tag = tags::ACCOUNT,
    summary = "Sign in with a passkey alone: finish",
    description = "Checks the assertion against its ceremony (found by its challenge, taken \
                   once) and the passkey it names: a pair whose tokens say `acr: aal2`, `amr: \
                   [\"hwk\", \"user\"]` (`swk` for a passkey that may be synced). An unknown or \
                   removed passkey, a replayed assertion or an expired ceremony is one 401; a \
                   failure counts per address. The sign-in gate applies (403 \
                   `EMAIL_NOT_VERIFIED` for an account that must verify).",
    request_body = PasskeySignInRequest,
    responses(
        (status = 200, description = "Signed in", body = super::account::TokensResponse),
        (status = 400, description = "`invalidArgs` naming `credential`", body = ErrorBody),
        (status = 401, description = "`AUTHORIZATION`: the passkey signs nobody in", body = ErrorBody),
        (status = 403, description = "`EMAIL_NOT_VERIFIED`", body = ErrorBody),
        BodyErrors,
        LimitErrors,
    )
)]
pub async fn sign_in_finish(
    State(state): State<AppState>,
    Client(client): Client,
    JsonBody(body): JsonBody<PasskeySignInRequest>,
) -> AppResult<Json<super::account::TokensResponse>> {
    let tokens = state
        .account
        .finish_passkey_sign_in(body.credential()?, client)
        .await?;
    Ok(Json(super::account::TokensResponse::from(tokens)))
}

/// `POST /browser/signin/passkey/finish` → 200 `{idToken}` and the cookie.
#[utoipa::path(
    post,
    path = "/browser/signin/passkey/finish",
    tag = tags::BROWSER,
    summary = "Sign a browser in with a passkey alone",
    description = "As `POST /signin/passkey/finish` (after `POST /signin/passkey/start`): the \
                   refresh token goes into the cookie and the answer is the ID token alone. Only \
                   from `PUBLIC_URL`'s origin.",
    request_body = PasskeySignInRequest,
    responses(
        (status = 200, description = "Signed in; the cookie is set", body = super::browser::IdTokenResponse),
        (status = 400, description = "`invalidArgs` naming `credential`", body = ErrorBody),
        (status = 401, description = "The passkey signs nobody in", body = ErrorBody),
        (status = 403, description = "`FORBIDDEN` from another origin, or `EMAIL_NOT_VERIFIED`", body = ErrorBody),
        BodyErrors,
        LimitErrors,
    )
)]
pub async fn browser_sign_in_finish(
    State(state): State<AppState>,
    axum::Extension(site): axum::Extension<BrowserSite>,
    Client(client): Client,
    JsonBody(body): JsonBody<PasskeySignInRequest>,
) -> AppResult<Response> {
    let tokens = state
        .account
        .finish_passkey_sign_in(body.credential()?, client)
        .await?;
    Ok(signed_in(&site, StatusCode::OK, tokens))
}
