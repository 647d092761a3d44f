//! Services: the business rules for users and tokens.
//!
//! They depend only on the repository traits of [`crate::model`], so each is
//! unit-tested against mockall mocks.

mod password;
mod token;
mod user;

pub use password::PasswordHasher;
pub use token::{TokenConfig, TokenServiceImpl};
pub use user::UserServiceImpl;
