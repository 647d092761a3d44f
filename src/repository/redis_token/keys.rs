//! The names of a user's keys, for a single Redis and for Redis Cluster.
//!
//! Single Redis: `<uid>:<jti>`, `<uid>:sessions`, `<uid>:grace:<jti>`,
//! `<uid>:nolegacy`, `<uid>:credential`, `<uid>:mfa:<id>`,
//! `<uid>:webauthn:<challenge>` and the marker `signout:<uid>`; outside any
//! user, `webauthn:auth:<challenge>` (an anonymous WebAuthn ceremony).
//!
//! Redis Cluster: the same names with the uid as a hash tag, `{<uid>}:<jti>`,
//! …, `signout:{<uid>}`. Cluster hashes only what is between the braces, so
//! all of a user's keys live in one slot, on one master: a script may touch
//! them all (a rotation stays one atomic step; Cluster refuses a script
//! whose keys span slots), and sign-out everywhere SCANs that one master.
//! The scripts learn the user's prefix from the index key they are given
//! (`KEYS[1]`), so they work with either scheme unchanged. An anonymous
//! ceremony's key has no tag in either scheme: it is one key, read and
//! written alone.
//!
//! A ceremony's challenge comes back from a client: only a base64url string
//! of at most [`MAX_CHALLENGE_LEN`] characters names a key
//! ([`ceremony_challenge_ok`]), so none brings `:`, braces (a hash tag) or
//! glob characters into a key name.

use uuid::Uuid;

use crate::model::CeremonyKey;
use crate::redis_conn::RedisMode;

/// The longest challenge that names a ceremony (the server's are 43).
pub(in crate::repository) const MAX_CHALLENGE_LEN: usize = 128;

/// Whether `challenge` may name a ceremony's key: 1 to
/// [`MAX_CHALLENGE_LEN`] characters of the base64url alphabet
/// `[A-Za-z0-9_-]`, nothing else (no padding). Shared by both token stores.
pub(in crate::repository) fn ceremony_challenge_ok(challenge: &str) -> bool {
    (1..=MAX_CHALLENGE_LEN).contains(&challenge.len())
        && challenge
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

/// Which naming the store uses; fixed by the connection's mode.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct KeyScheme {
    tagged: bool,
}

impl KeyScheme {
    pub(crate) fn for_mode(mode: RedisMode) -> Self {
        Self {
            tagged: mode == RedisMode::Cluster,
        }
    }

    /// What every key of the user but the marker starts with: `<uid>:` or
    /// `{<uid>}:`.
    pub(crate) fn user_prefix(self, uid: Uuid) -> String {
        if self.tagged {
            format!("{{{uid}}}:")
        } else {
            format!("{uid}:")
        }
    }

    /// The SCAN pattern of every key of the user but the marker. A uid is a
    /// hyphenated UUID and braces are no glob characters: nothing to escape.
    pub(crate) fn user_pattern(self, uid: Uuid) -> String {
        format!("{}*", self.user_prefix(uid))
    }

    /// A key in the user's slot, to route a keyless command (SCAN) there.
    pub(crate) fn slot_key(self, uid: Uuid) -> String {
        format!("{{{uid}}}")
    }

    /// A refresh token's whitelist entry.
    pub(crate) fn token(self, uid: Uuid, jti: Uuid) -> String {
        format!("{}{jti}", self.user_prefix(uid))
    }

    /// The user's session index; the scripts derive every other key they
    /// learn from it by its prefix.
    pub(crate) fn index(self, uid: Uuid) -> String {
        format!("{}sessions", self.user_prefix(uid))
    }

    /// The sealed successor of the rotated token `jti`.
    pub(crate) fn grace(self, uid: Uuid, jti: Uuid) -> String {
        format!("{}grace:{jti}", self.user_prefix(uid))
    }

    /// A pending two-step sign-in (its value: the failures so far). Never a
    /// whitelist entry's name: those are `<prefix><jti>`.
    pub(crate) fn pending_sign_in(self, uid: Uuid, id: Uuid) -> String {
        format!("{}mfa:{id}", self.user_prefix(uid))
    }

    /// The state of a WebAuthn ceremony: a user's among the user's keys
    /// (`<prefix>webauthn:<challenge>`, in the user's slot, swept by sign-out
    /// everywhere), an anonymous one `webauthn:auth:<challenge>`. `None` if
    /// the challenge may name no key ([`ceremony_challenge_ok`]).
    pub(crate) fn ceremony(self, key: &CeremonyKey) -> Option<String> {
        match key {
            CeremonyKey::User { uid, challenge } => ceremony_challenge_ok(challenge)
                .then(|| format!("{}webauthn:{challenge}", self.user_prefix(*uid))),
            CeremonyKey::Anonymous { challenge } => {
                ceremony_challenge_ok(challenge).then(|| format!("webauthn:auth:{challenge}"))
            }
        }
    }

    /// Set when the user's other sessions were ended: tokens from before
    /// sessions are refused (written by the scripts).
    #[cfg(test)]
    pub(crate) fn legacy_guard(self, uid: Uuid) -> String {
        format!("{}nolegacy", self.user_prefix(uid))
    }

    /// The password-change guard (written by the scripts).
    #[cfg(test)]
    pub(crate) fn credential_guard(self, uid: Uuid) -> String {
        format!("{}credential", self.user_prefix(uid))
    }

    /// Marks a sign-out sweep in progress; outside the user's SCAN pattern,
    /// in the user's slot.
    pub(crate) fn signout_marker(self, uid: Uuid) -> String {
        if self.tagged {
            format!("signout:{{{uid}}}")
        } else {
            format!("signout:{uid}")
        }
    }
}

#[cfg(test)]
mod tests {
    use redis::cluster_routing::Slot;

    use super::*;

    const UID: &str = "5bbf3c2e-0000-4000-8000-000000000001";
    const JTI: &str = "9f21aa00-0000-4000-8000-000000000002";

    #[test]
    fn a_single_redis_keeps_the_untagged_names() {
        let (uid, jti) = (Uuid::parse_str(UID).unwrap(), Uuid::parse_str(JTI).unwrap());
        let k = KeyScheme::for_mode(RedisMode::Standalone);
        assert_eq!(k.token(uid, jti), format!("{UID}:{JTI}"));
        assert_eq!(k.index(uid), format!("{UID}:sessions"));
        assert_eq!(k.grace(uid, jti), format!("{UID}:grace:{JTI}"));
        assert_eq!(k.legacy_guard(uid), format!("{UID}:nolegacy"));
        assert_eq!(k.credential_guard(uid), format!("{UID}:credential"));
        assert_eq!(k.pending_sign_in(uid, jti), format!("{UID}:mfa:{JTI}"));
        assert_eq!(k.signout_marker(uid), format!("signout:{UID}"));
        assert_eq!(k.user_pattern(uid), format!("{UID}:*"));
        assert_eq!(
            k.ceremony(&user(uid, CHALLENGE)).unwrap(),
            format!("{UID}:webauthn:{CHALLENGE}")
        );
        assert_eq!(
            k.ceremony(&anonymous(CHALLENGE)).unwrap(),
            format!("webauthn:auth:{CHALLENGE}")
        );
    }

    #[test]
    fn cluster_names_carry_the_uid_as_hash_tag_and_share_one_slot() {
        let (uid, jti) = (Uuid::parse_str(UID).unwrap(), Uuid::parse_str(JTI).unwrap());
        let k = KeyScheme::for_mode(RedisMode::Cluster);
        assert_eq!(k.token(uid, jti), format!("{{{UID}}}:{JTI}"));
        assert_eq!(k.index(uid), format!("{{{UID}}}:sessions"));
        assert_eq!(k.grace(uid, jti), format!("{{{UID}}}:grace:{JTI}"));
        assert_eq!(k.pending_sign_in(uid, jti), format!("{{{UID}}}:mfa:{JTI}"));
        assert_eq!(k.signout_marker(uid), format!("signout:{{{UID}}}"));
        assert_eq!(k.user_pattern(uid), format!("{{{UID}}}:*"));
        let ceremony = k.ceremony(&user(uid, CHALLENGE)).unwrap();
        assert_eq!(ceremony, format!("{{{UID}}}:webauthn:{CHALLENGE}"));
        assert_eq!(
            k.ceremony(&anonymous(CHALLENGE)).unwrap(),
            format!("webauthn:auth:{CHALLENGE}"),
            "one key alone: no tag"
        );
        let slot = Slot::for_key(k.slot_key(uid));
        assert_eq!(slot, Slot::for_key(UID), "the tag alone decides the slot");
        for key in [
            k.token(uid, jti),
            k.index(uid),
            k.grace(uid, jti),
            k.legacy_guard(uid),
            k.credential_guard(uid),
            k.pending_sign_in(uid, jti),
            k.signout_marker(uid),
            ceremony,
        ] {
            assert_eq!(Slot::for_key(&key), slot, "{key}");
        }
    }

    /// A challenge as the server makes them: 32 random bytes in base64url.
    const CHALLENGE: &str = "q-9Z_0aB1cD2eF3gH4iJ5kL6mN7oP8qR9sT0uV1wX2y";

    fn user(uid: Uuid, challenge: &str) -> CeremonyKey {
        CeremonyKey::User {
            uid,
            challenge: challenge.to_owned(),
        }
    }

    fn anonymous(challenge: &str) -> CeremonyKey {
        CeremonyKey::Anonymous {
            challenge: challenge.to_owned(),
        }
    }

    #[test]
    fn only_a_base64url_challenge_of_at_most_128_characters_names_a_key() {
        assert_eq!(CHALLENGE.len(), 43);
        let longest = "A".repeat(MAX_CHALLENGE_LEN);
        for ok in [CHALLENGE, "a", "-", "_", longest.as_str()] {
            assert!(ceremony_challenge_ok(ok), "{ok:?}");
        }
        let too_long = "A".repeat(MAX_CHALLENGE_LEN + 1);
        let hostile = [
            "",
            "*",
            "a:b",
            "{x}",
            "a*",
            "a?",
            "[a]",
            "a\\b",
            "a b",
            "a\n",
            "a=",
            "a+b/c",
            "é",
            "a\0",
            too_long.as_str(),
        ];
        let uid = Uuid::parse_str(UID).unwrap();
        for mode in [RedisMode::Standalone, RedisMode::Cluster] {
            let k = KeyScheme::for_mode(mode);
            for bad in hostile {
                assert!(!ceremony_challenge_ok(bad), "{bad:?}");
                assert_eq!(k.ceremony(&user(uid, bad)), None, "{bad:?}");
                assert_eq!(k.ceremony(&anonymous(bad)), None, "{bad:?}");
            }
        }
    }
}
