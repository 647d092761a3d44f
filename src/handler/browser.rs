//! The browser session: sign-in, sign-up, refresh and sign-out for pages,
//! beside the API for programs (which does not change). The refresh token
//! lives in a cookie script cannot read (`HttpOnly`), sent only to these
//! routes (`Path={base}/browser`) and only from this site
//! (`SameSite=Strict`); the answers carry the ID token alone, which the page
//! keeps in memory. Every route refuses a request from another origin
//! ([`same_origin`]), so no other site can make a browser use its cookie.
//! The session is an ordinary one: the grace window, reuse detection, the
//! cap and the session list apply as they do to the API's.

use axum::Json;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use cookie::{Cookie, SameSite};
use serde::Serialize;

use super::account::{CredentialsRequest, SIGNUP_ACCEPTED, parse_credentials};
use super::openapi::{BodyErrors, LimitErrors, ServerErrors, tags};
use super::sessions::{MessageResponse, SignOutParams, scope_of, signed_out};
use super::{AppState, Client};
use crate::error::{AppError, AppResult, REFRESH_TOKEN_REFUSED};
use crate::model::{Password, SignOutScope, SignUp, TokenPair};
use crate::web::{ErrorBody, JsonBody};

/// The cookie's name.
pub const COOKIE: &str = "refresh_token";

/// What the routes need to know of where they are served: the origin they
/// accept requests from, and the cookie's path and `Secure` flag.
#[derive(Debug, Clone)]
pub struct BrowserSite {
    /// `PUBLIC_URL`'s origin, as browsers write it in `Origin`.
    origin: String,
    /// `{base}/browser`.
    path: String,
    /// Whether `PUBLIC_URL` is https.
    secure: bool,
}

impl BrowserSite {
    /// The site of a service reached at `public_url`, with its API at `base_path`.
    pub fn new(public_url: &str, base_path: &str) -> Self {
        let origin = url::Url::parse(public_url)
            .map(|url| url.origin().ascii_serialization())
            .unwrap_or_default();
        Self {
            secure: origin.starts_with("https://"),
            origin,
            path: format!("{base_path}/browser"),
        }
    }

    /// `Set-Cookie` for `refresh_token`, living as long as the token.
    fn set(&self, refresh_token: &str) -> HeaderValue {
        let max_age = expiry_of(refresh_token)
            .map(|exp| exp.saturating_sub(now_secs()))
            .unwrap_or(0);
        self.cookie(refresh_token, max_age)
    }

    /// `Set-Cookie` that removes the cookie.
    fn clear(&self) -> HeaderValue {
        self.cookie("", 0)
    }

    fn cookie(&self, value: &str, max_age: u64) -> HeaderValue {
        let cookie = Cookie::build((COOKIE, value))
            .path(self.path.as_str())
            .http_only(true)
            .same_site(SameSite::Strict)
            .secure(self.secure)
            .max_age(cookie::time::Duration::seconds(
                i64::try_from(max_age).unwrap_or(i64::MAX),
            ))
            .build();
        // A JWT and a path of URL-safe characters: always a valid header value.
        HeaderValue::from_str(&cookie.to_string()).unwrap_or(HeaderValue::from_static(""))
    }
}

fn now_secs() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |elapsed| elapsed.as_secs())
}

/// `exp` of a refresh token this service just signed (read without
/// verifying: it only sets the cookie's lifetime).
fn expiry_of(token: &str) -> Option<u64> {
    use base64::Engine as _;
    let payload = token.split('.').nth(1)?;
    let json = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(payload)
        .ok()?;
    serde_json::from_slice::<serde_json::Value>(&json)
        .ok()?
        .get("exp")?
        .as_u64()
}

/// Middleware of the `/browser` routes: a request whose `Origin` is not
/// `PUBLIC_URL`'s (or, without `Origin`, whose `Sec-Fetch-Site` is not
/// `same-origin`) is refused, 403 `FORBIDDEN`, before any handler runs.
pub async fn same_origin(site: axum::Extension<BrowserSite>, req: Request, next: Next) -> Response {
    let headers = req.headers();
    let allowed = match headers.get(header::ORIGIN) {
        Some(origin) => origin
            .to_str()
            .ok()
            .and_then(|origin| url::Url::parse(origin).ok())
            .is_some_and(|origin| origin.origin().ascii_serialization() == site.origin),
        None => headers
            .get("sec-fetch-site")
            .is_some_and(|value| value.as_bytes() == b"same-origin"),
    };
    if allowed {
        next.run(req).await
    } else {
        AppError::Forbidden(format!(
            "the browser routes answer only pages of {}",
            site.origin
        ))
        .into_response()
    }
}

/// The ID token of a fresh pair; its refresh token went into the cookie.
#[derive(Debug, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct IdTokenResponse {
    /// RS256 JWT for `Authorization: Bearer`; keep it in memory only.
    id_token: String,
}

/// `tokens` as the answer: the ID token in the body, the refresh token in
/// the cookie.
pub(super) fn signed_in(site: &BrowserSite, status: StatusCode, tokens: TokenPair) -> Response {
    let mut response = (
        status,
        [(header::CACHE_CONTROL, "no-store")],
        Json(IdTokenResponse {
            id_token: tokens.id_token,
        }),
    )
        .into_response();
    response
        .headers_mut()
        .append(header::SET_COOKIE, site.set(&tokens.refresh_token));
    response
}

/// `error`, and the cookie removed.
fn refused(site: &BrowserSite, error: AppError) -> Response {
    let mut response = error.into_response();
    response
        .headers_mut()
        .append(header::SET_COOKIE, site.clear());
    response
}

/// The refresh token of the request's cookie, if it has one.
fn cookie_of(headers: &HeaderMap) -> Option<String> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(Cookie::split_parse)
        .filter_map(Result::ok)
        .find(|cookie| cookie.name() == COOKIE && !cookie.value().is_empty())
        .map(|cookie| cookie.value().to_owned())
}

/// `POST {base}/browser/signin`
#[utoipa::path(
    post,
    path = "/browser/signin",
    tag = tags::BROWSER,
    summary = "Sign in a browser",
    description = "As `POST /signin`, but the refresh token goes into the `refresh_token` \
                   cookie (`HttpOnly; SameSite=Strict; Path={base}/browser`, `Max-Age` the \
                   token's lifetime, `Secure` when `PUBLIC_URL` is https) and the answer is \
                   the ID token alone. Only from `PUBLIC_URL`'s origin.",
    request_body = CredentialsRequest,
    responses(
        (status = 200, description = "Signed in; the cookie is set. For a user with a second factor `{\"mfa\": {token, expiresIn, methods}}`, no cookie: present the code at `/browser/signin/mfa`", body = IdTokenResponse,
         headers(("Set-Cookie" = String, description = "The refresh token"))),
        (status = 400, description = "Malformed body, or field errors in `invalidArgs`", body = ErrorBody),
        (status = 401, description = "Unknown email or wrong password", body = ErrorBody),
        (status = 403, description = "`FORBIDDEN`: not from `PUBLIC_URL`'s origin; `EMAIL_NOT_VERIFIED`: as `POST /signin`", body = ErrorBody),
        BodyErrors,
        LimitErrors,
    )
)]
pub async fn signin(
    State(state): State<AppState>,
    axum::Extension(site): axum::Extension<BrowserSite>,
    Client(client): Client,
    JsonBody(body): JsonBody<CredentialsRequest>,
) -> AppResult<Response> {
    let (email, password) = parse_credentials(&body, Password::parse_for_signin)?;
    let sign_in = state.account.sign_in(email, password, client).await?;
    Ok(super::mfa::sign_in_answer(sign_in, |tokens| {
        signed_in(&site, StatusCode::OK, tokens)
    }))
}

/// `POST {base}/browser/signup`
#[utoipa::path(
    post,
    path = "/browser/signup",
    tag = tags::BROWSER,
    summary = "Sign up in a browser",
    description = "As `POST /signup`; a new session's refresh token goes into the cookie (as \
                   at `/browser/signin`) and the answer is 201 with the ID token alone. With \
                   `EMAIL_CONFIRMATION=required`, 202 `{\"message\"}` for every address and \
                   no cookie. Only from `PUBLIC_URL`'s origin.",
    request_body = CredentialsRequest,
    responses(
        (status = 201, description = "Signed up and in; the cookie is set", body = IdTokenResponse,
         headers(("Set-Cookie" = String, description = "The refresh token"))),
        (status = 202, description = "`EMAIL_CONFIRMATION=required`: what happened went by mail", body = MessageResponse),
        (status = 400, description = "Malformed body, or field errors in `invalidArgs`", body = ErrorBody),
        (status = 403, description = "`FORBIDDEN`: not from `PUBLIC_URL`'s origin", body = ErrorBody),
        (status = 409, description = "The email is already registered (`EMAIL_CONFIRMATION=optional` only)", body = ErrorBody),
        BodyErrors,
        LimitErrors,
    )
)]
pub async fn signup(
    State(state): State<AppState>,
    axum::Extension(site): axum::Extension<BrowserSite>,
    Client(client): Client,
    JsonBody(body): JsonBody<CredentialsRequest>,
) -> AppResult<Response> {
    let (email, password) = parse_credentials(&body, Password::parse)?;
    Ok(
        match state.account.sign_up(email, password, client).await? {
            SignUp::SignedIn(tokens) => signed_in(&site, StatusCode::CREATED, tokens),
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

/// `POST {base}/browser/tokens`
#[utoipa::path(
    post,
    path = "/browser/tokens",
    tag = tags::BROWSER,
    summary = "Refresh a browser's session",
    description = "As `POST /tokens`, with the refresh token of the cookie (no body): the \
                   cookie is replaced by the rotated token and the answer is the new ID \
                   token. A page calls it on load and when its ID token expires. Refused \
                   (401) when the cookie is missing, does not verify or its session is over, \
                   and `REFRESH_TOKEN_REUSED` as at `/tokens`: then the cookie is removed. A \
                   store outage (503) leaves it. Only from `PUBLIC_URL`'s origin.",
    responses(
        (status = 200, description = "Rotated; the cookie holds the new refresh token", body = IdTokenResponse,
         headers(("Set-Cookie" = String, description = "The rotated refresh token"))),
        (status = 401, description = "`AUTHORIZATION`: no cookie, or its token does not verify or its session is over; `REFRESH_TOKEN_REUSED`: already rotated, its session is ended. The cookie is removed", body = ErrorBody),
        (status = 403, description = "`FORBIDDEN`: not from `PUBLIC_URL`'s origin", body = ErrorBody),
        ServerErrors,
    )
)]
pub async fn tokens(
    State(state): State<AppState>,
    axum::Extension(site): axum::Extension<BrowserSite>,
    Client(client): Client,
    headers: HeaderMap,
) -> Response {
    let Some(refresh_token) = cookie_of(&headers) else {
        return refused(&site, AppError::unauthorized("no session cookie: sign in"));
    };
    match state.account.refresh(&refresh_token, client).await {
        Ok(tokens) => signed_in(&site, StatusCode::OK, tokens),
        Err(error @ (AppError::Authorization { .. } | AppError::RefreshTokenReused)) => {
            refused(&site, error)
        }
        Err(error) => error.into_response(),
    }
}

/// `POST {base}/browser/signout[?scope=local|global|others]`
#[utoipa::path(
    post,
    path = "/browser/signout",
    tag = tags::BROWSER,
    summary = "Sign a browser out",
    description = "Ends the sessions the scope names, as `POST /signout`, for the session of \
                   the cookie's refresh token (no bearer token needed): `local` (the default \
                   here) ends that session even if it is already over, `global` and `others` \
                   need it live. `local` and `global` remove the cookie; `others` keeps it. \
                   Only from `PUBLIC_URL`'s origin.",
    params(SignOutParams),
    responses(
        (status = 200, description = "Signed out", body = MessageResponse),
        (status = 400, description = "An unknown `scope`", body = ErrorBody),
        (status = 401, description = "No cookie, or its token does not verify (or its session is over, for `global` and `others`); the cookie is removed", body = ErrorBody),
        (status = 403, description = "`FORBIDDEN`: not from `PUBLIC_URL`'s origin", body = ErrorBody),
        ServerErrors,
    )
)]
pub async fn signout(
    State(state): State<AppState>,
    axum::Extension(site): axum::Extension<BrowserSite>,
    headers: HeaderMap,
    params: Result<Query<SignOutParams>, QueryRejection>,
) -> Response {
    let scope = match scope_of(params, SignOutScope::Local) {
        Ok(scope) => scope,
        Err(error) => return error.into_response(),
    };
    let Some(refresh_token) = cookie_of(&headers) else {
        return refused(&site, AppError::invalid_token(REFRESH_TOKEN_REFUSED));
    };
    match state
        .account
        .sign_out_by_refresh(&refresh_token, scope)
        .await
    {
        Ok(()) => {
            let mut response = Json(signed_out(scope)).into_response();
            if scope != SignOutScope::Others {
                response
                    .headers_mut()
                    .append(header::SET_COOKIE, site.clear());
            }
            response
        }
        Err(error @ AppError::Authorization { .. }) => refused(&site, error),
        Err(error) => error.into_response(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_cookie_is_http_only_strict_and_scoped_to_the_browser_routes() {
        let site = BrowserSite::new("https://id.example.com", "/api/account");
        let exp = now_secs() + 600;
        let payload = {
            use base64::Engine as _;
            base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(format!(r#"{{"exp":{exp}}}"#))
        };
        let cookie = site.set(&format!("h.{payload}.s"));
        let cookie = cookie.to_str().unwrap();
        assert!(
            cookie.starts_with(&format!("refresh_token=h.{payload}.s;")),
            "{cookie}"
        );
        for attribute in [
            "HttpOnly",
            "SameSite=Strict",
            "Secure",
            "Path=/api/account/browser",
        ] {
            assert!(cookie.contains(attribute), "{attribute}: {cookie}");
        }
        let max_age: u64 = cookie
            .split("Max-Age=")
            .nth(1)
            .and_then(|rest| rest.split(';').next())
            .unwrap()
            .parse()
            .unwrap();
        assert!((599..=600).contains(&max_age), "{cookie}");

        let plain = BrowserSite::new("http://localhost:8080", "/api/account");
        assert!(!plain.clear().to_str().unwrap().contains("Secure"));
        assert!(plain.clear().to_str().unwrap().contains("Max-Age=0"));
        assert_eq!(plain.origin, "http://localhost:8080");
    }

    #[test]
    fn the_cookie_is_found_among_others() {
        let mut headers = HeaderMap::new();
        headers.append(
            header::COOKIE,
            "a=1; refresh_token=x.y.z; b=2".parse().unwrap(),
        );
        assert_eq!(cookie_of(&headers).as_deref(), Some("x.y.z"));
        headers.clear();
        headers.append(header::COOKIE, "refresh_token=".parse().unwrap());
        assert_eq!(cookie_of(&headers), None);
    }
}
