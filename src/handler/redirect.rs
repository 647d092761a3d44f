//! `?redirect_to=`: where a page may send a person back to once they are
//! done (`REDIRECT_URLS`). Anything not clearly one of the entries is
//! ignored, so the pages are no open redirect.

use url::Url;

/// `raw` as parsed (the WHATWG URL rules browsers follow, so what is
/// checked is where a link to it goes) if it has no user info and the same
/// scheme, host and port as an entry of `allowed`, and a path equal to the
/// entry's or continuing it after a `/`; `None` otherwise.
pub fn accepted(raw: &str, allowed: &[Url]) -> Option<Url> {
    let url = Url::parse(raw.trim()).ok()?;
    if !matches!(url.scheme(), "http" | "https")
        || !url.username().is_empty()
        || url.password().is_some()
    {
        return None;
    }
    allowed
        .iter()
        .any(|entry| {
            entry.scheme() == url.scheme()
                && entry.host() == url.host()
                && entry.port_or_known_default() == url.port_or_known_default()
                && continues(entry.path(), url.path())
        })
        .then_some(url)
}

/// Whether `path` is `base` or goes on below it (`/app` → `/app`, `/app/x`,
/// not `/appx`).
fn continues(base: &str, path: &str) -> bool {
    let base = base.trim_end_matches('/');
    path == base
        || path
            .strip_prefix(base)
            .is_some_and(|rest| rest.starts_with('/'))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn allowed() -> Vec<Url> {
        [
            "https://app.example.com/home",
            "http://localhost:3000",
            "https://shop.example.com/",
        ]
        .iter()
        .map(|u| Url::parse(u).unwrap())
        .collect()
    }

    #[test]
    fn only_an_entry_or_a_path_below_it_is_accepted() {
        let allowed = allowed();
        for (raw, expected) in [
            (
                "https://app.example.com/home",
                "https://app.example.com/home",
            ),
            (
                "https://APP.example.com/home/",
                "https://app.example.com/home/",
            ),
            (
                "https://app.example.com:443/home/orders?id=7#top",
                "https://app.example.com/home/orders?id=7#top",
            ),
            ("http://localhost:3000/", "http://localhost:3000/"),
            (
                "http://localhost:3000/welcome",
                "http://localhost:3000/welcome",
            ),
            (
                "https://shop.example.com/cart",
                "https://shop.example.com/cart",
            ),
        ] {
            assert_eq!(
                accepted(raw, &allowed).map(String::from).as_deref(),
                Some(expected),
                "{raw}"
            );
        }
    }

    #[test]
    fn anything_else_is_ignored() {
        let allowed = allowed();
        for raw in [
            "",
            "/home",
            "//evil.net/home",
            "app.example.com/home",
            "https://app.example.com.evil.net/home",
            "https://app.example.com@evil.net/home",
            "https://user:pw@app.example.com/home",
            "https://user@app.example.com/home",
            "http://app.example.com/home",
            "https://app.example.com:8443/home",
            "https://app.example.com/homepage",
            "https://app.example.com/",
            "https://app.example.com/other/home",
            "https://app.example.com/home/../admin",
            "https://app.example.com/home/%2e%2e/admin",
            "https://app.example.com\\@evil.net/home",
            "http://localhost:3001/",
            "http://127.0.0.1:3000/",
            "javascript:alert(1)//https://app.example.com/home",
            "data:text/html,<script>alert(1)</script>",
            "https://evil.net/https://app.example.com/home",
        ] {
            assert_eq!(accepted(raw, &allowed), None, "{raw}");
        }
        assert_eq!(accepted("https://app.example.com/home", &[]), None);
    }
}
