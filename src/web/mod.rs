//! HTTP pieces shared by the account service, the verifier's extractor and the
//! todo example, so that every one of them answers alike: the one error body
//! (`{"error": {"type", "message", "invalidArgs"?}}`), the one JSON-body
//! extractor, `Authorization: Bearer` parsing, the middleware that logs each
//! error once; and, for the services themselves (features `server` and
//! `todo-example`), the handler timeout, the panic answer, the security headers, the shutdown signal
//! and [`serve`], the accept loop that bounds connections.

mod error;
#[cfg(any(feature = "server", feature = "todo-example"))]
mod headers;
#[cfg(any(feature = "server", feature = "todo-example"))]
mod listen;
#[cfg(any(feature = "server", feature = "todo-example"))]
mod middleware;
mod request;
#[cfg(any(feature = "server", feature = "todo-example"))]
pub mod serve;
#[cfg(any(feature = "server", feature = "todo-example"))]
mod shutdown;

pub use error::{
    ApiError, BEARER_CHALLENGE, ErrorBody, ErrorDetail, ErrorKind, INVALID_TOKEN_CHALLENGE,
    InvalidArg, log_errors,
};
#[cfg(any(feature = "server", feature = "todo-example"))]
pub use headers::{security_headers, set_security_headers};
#[cfg(any(feature = "server", feature = "todo-example"))]
pub use listen::{LISTEN_BACKLOG, listen};
#[cfg(any(feature = "server", feature = "todo-example"))]
pub use middleware::{panic_response, timeout};
pub use request::{
    BearerError, JsonBody, NOT_TEXT, bearer_token, holds_control_characters, is_json,
};
#[cfg(any(feature = "server", feature = "todo-example"))]
pub use shutdown::shutdown_signal;
