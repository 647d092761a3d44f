//! The Argon2id calls themselves, outside the pool and its queue: hashing
//! into a thread's reusable memory, verifying a PHC string in constant time,
//! and the dummy hash an unknown email is verified against.

use std::sync::LazyLock;

use argon2::password_hash::phc::{Output, ParamsString, PasswordHash, Salt};
use argon2::{Algorithm, Argon2, Params, Version};

use super::argon_memory::ArgonMemory;

/// A hash verified when the user does not exist, so an unknown email costs the
/// same time as a wrong password.
pub(super) static DUMMY_HASH: LazyLock<String> = LazyLock::new(|| {
    let mut memory = ArgonMemory::default();
    hash_with(uuid::Uuid::new_v4().as_bytes(), &mut memory).expect("argon2 hashes a 16-byte input")
});

/// What one hashing thread does for each hash, without the pool and its
/// queue: Argon2id with the service's parameters, in memory allocated on the
/// first hash and reused. The benchmark runs one per core to measure the
/// machine's Argon2 rate that sign-in is compared with.
#[derive(Default)]
pub struct ThreadHasher {
    pub(super) memory: ArgonMemory,
}

impl ThreadHasher {
    /// One hash of `password` with a fresh salt, as a sign-up stores it (a
    /// sign-in's verification recomputes the same hash).
    pub fn hash(&mut self, password: &[u8]) -> Result<String, argon2::Error> {
        hash_with(password, &mut self.memory)
    }
}

/// Argon2id with the default parameters and a fresh 16-byte salt, in `memory`
/// (allocated once to the parameters' size, then reused).
pub(super) fn hash_with(
    password: &[u8],
    memory: &mut ArgonMemory,
) -> Result<String, argon2::Error> {
    let params = Params::default();
    let salt = argon2::password_hash::generate_salt();
    let mut out = [0u8; Params::DEFAULT_OUTPUT_LEN];
    let argon2 = Argon2::new(Algorithm::Argon2id, Version::V0x13, params.clone());
    argon2.hash_password_into_with_memory(
        password,
        &salt,
        &mut out,
        memory.blocks(params.block_count()),
    )?;
    let phc = PasswordHash {
        algorithm: Algorithm::Argon2id.ident(),
        version: Some(Version::V0x13.into()),
        params: ParamsString::try_from(&params).map_err(|_| argon2::Error::OutputTooLong)?,
        salt: Some(Salt::new(&salt).map_err(|_| argon2::Error::SaltTooShort)?),
        hash: Some(Output::new(&out).map_err(|_| argon2::Error::OutputTooShort)?),
    };
    Ok(phc.to_string())
}

/// Recomputes the hash of `password` with the algorithm, parameters and salt
/// of the PHC string `stored` and compares in constant time.
pub(super) fn verify_with(
    password: &[u8],
    stored: &str,
    memory: &mut ArgonMemory,
) -> Result<bool, argon2::password_hash::Error> {
    use argon2::password_hash::Error;
    let stored = PasswordHash::new(stored)?;
    let (Some(salt), Some(expected)) = (&stored.salt, &stored.hash) else {
        return Err(Error::EncodingInvalid);
    };
    let algorithm = Algorithm::try_from(stored.algorithm.as_str())?;
    let version = stored
        .version
        .map(Version::try_from)
        .transpose()?
        .unwrap_or_default();
    let params = Params::try_from(&stored)?;
    let block_count = params.block_count();
    let mut out = vec![0u8; expected.len()];
    Argon2::new(algorithm, version, params).hash_password_into_with_memory(
        password,
        salt,
        &mut out,
        memory.blocks(block_count),
    )?;
    // `Output`'s equality is constant-time.
    Ok(&Output::new(&out)? == expected)
}
