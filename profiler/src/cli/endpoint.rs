//! Where a backend is: its URL checked and resolved to the path requests
//! go to, with the credentials it carried moved into an Authorization
//! header so the URL can be printed.

use base64::Engine;
use url::Url;

/// Which protocol a backend speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Backend {
    Otlp,
    Pyroscope,
}

impl Backend {
    /// Its flag, which every message about it names.
    pub(crate) fn flag(self) -> &'static str {
        match self {
            Backend::Otlp => "--otlp",
            Backend::Pyroscope => "--pyroscope",
        }
    }

    /// Its name in report.json.
    pub(crate) fn name(self) -> &'static str {
        match self {
            Backend::Otlp => "otlp",
            Backend::Pyroscope => "pyroscope",
        }
    }

    /// The variable that may hold its basic-auth `user:password`, so the
    /// secret need not be on a command line others can read.
    pub(crate) fn auth_env(self) -> &'static str {
        match self {
            Backend::Otlp => "BPFPROF_OTLP_BASIC_AUTH",
            Backend::Pyroscope => "BPFPROF_PYROSCOPE_BASIC_AUTH",
        }
    }
}

/// A backend's resolved address.
#[derive(Debug, Clone)]
pub(crate) struct Endpoint {
    pub(crate) backend: Backend,
    /// Where requests go: OTLP's export path, or Pyroscope's `/ingest`
    /// (without its query). Never holds credentials.
    pub(crate) url: Url,
    /// `Basic …`, from the URL or the environment.
    pub(crate) authorization: Option<String>,
}

/// OTLP/HTTP's default path for profiles while they are in development.
const OTLP_PROFILES_PATH: &str = "/v1development/profiles";

impl Endpoint {
    /// Checks `text`; `env_auth` is the backend's `user:password`
    /// variable, used when the URL carries no credentials.
    pub(crate) fn parse(
        backend: Backend,
        text: &str,
        env_auth: Option<&str>,
    ) -> Result<Endpoint, String> {
        let flag = backend.flag();
        let mut url =
            Url::parse(text).map_err(|e| format!("{flag} {}: {e}", redacted_text(text)))?;
        let shown = redacted(&url);
        if !matches!(url.scheme(), "http" | "https") {
            return Err(format!("{flag} {shown}: the scheme must be http or https"));
        }
        if url.host_str().is_none_or(str::is_empty) {
            return Err(format!("{flag} {shown}: no host"));
        }
        let from_url = (!url.username().is_empty()).then(|| {
            let user = percent_decoded(url.username());
            let password = url.password().map(percent_decoded).unwrap_or_default();
            format!("{user}:{password}")
        });
        let from_env = match env_auth {
            Some(pair) if !pair.contains(':') => {
                return Err(format!("{}: must be user:password", backend.auth_env()));
            }
            other => other.map(str::to_string),
        };
        let authorization = from_url.or(from_env).map(|pair| {
            format!(
                "Basic {}",
                base64::engine::general_purpose::STANDARD.encode(pair)
            )
        });
        let _ = url.set_username("");
        let _ = url.set_password(None);
        url.set_fragment(None);
        match backend {
            Backend::Otlp if matches!(url.path(), "" | "/") => url.set_path(OTLP_PROFILES_PATH),
            Backend::Otlp => {}
            Backend::Pyroscope => {
                if url.query().is_some() {
                    return Err(format!(
                        "{flag} {shown}: give the server's address without a query; bpfprof adds /ingest?…"
                    ));
                }
                let path = format!("{}/ingest", url.path().trim_end_matches('/'));
                url.set_path(&path);
            }
        }
        Ok(Endpoint {
            backend,
            url,
            authorization,
        })
    }

    /// `--otlp URL` as messages name it.
    pub(crate) fn describe(&self) -> String {
        format!("{} {}", self.backend.flag(), self.url)
    }
}

/// The URL with its password, if any, left out.
fn redacted(url: &Url) -> String {
    let mut url = url.clone();
    if url.password().is_some() {
        let _ = url.set_password(Some("…"));
    }
    url.to_string()
}

/// `text` with whatever stands between `://` and `@` left out: it may be
/// a password, and the text did not parse as a URL.
fn redacted_text(text: &str) -> String {
    match text.split_once("://") {
        Some((scheme, rest)) if rest.contains('@') => {
            let (_, after) = rest.rsplit_once('@').unwrap_or(("", rest));
            format!("{scheme}://…@{after}")
        }
        _ => text.to_string(),
    }
}

fn percent_decoded(text: &str) -> String {
    url::form_urlencoded::parse(format!("x={text}").as_bytes())
        .next()
        .map_or_else(|| text.to_string(), |(_, v)| v.into_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn otlp_gets_the_profiles_path_unless_it_has_a_path() {
        let e = Endpoint::parse(Backend::Otlp, "http://localhost:4318", None).unwrap();
        assert_eq!(
            e.url.as_str(),
            "http://localhost:4318/v1development/profiles"
        );
        let e = Endpoint::parse(Backend::Otlp, "https://h/otlp/v1/p", None).unwrap();
        assert_eq!(e.url.as_str(), "https://h/otlp/v1/p");
    }

    #[test]
    fn pyroscope_keeps_a_prefix_and_adds_ingest() {
        let e = Endpoint::parse(Backend::Pyroscope, "http://h:4040/", None).unwrap();
        assert_eq!(e.url.as_str(), "http://h:4040/ingest");
        let e = Endpoint::parse(Backend::Pyroscope, "http://h/prefix/", None).unwrap();
        assert_eq!(e.url.as_str(), "http://h/prefix/ingest");
    }

    #[test]
    fn credentials_move_into_a_header_and_out_of_the_url() {
        let e = Endpoint::parse(Backend::Otlp, "http://u%40x:s%3Ac@h", Some("a:b")).unwrap();
        assert_eq!(e.authorization.as_deref(), Some("Basic dUB4OnM6Yw=="));
        assert!(!e.describe().contains("s%3Ac"), "{}", e.describe());
        let e = Endpoint::parse(Backend::Otlp, "http://h", Some("a:b")).unwrap();
        assert_eq!(e.authorization.as_deref(), Some("Basic YTpi"));
    }

    #[test]
    fn bad_urls_are_one_line_naming_the_flag() {
        for (text, why) in [
            ("ftp://h", "scheme"),
            ("http://", "host"),
            ("notaurl", "relative URL"),
            ("http://u:secret@", "host"),
        ] {
            let e = Endpoint::parse(Backend::Pyroscope, text, None).unwrap_err();
            assert!(
                e.starts_with("--pyroscope ") && e.contains(why),
                "{text}: {e}"
            );
            assert!(!e.contains("secret") && !e.contains('\n'), "{e}");
        }
        let e = Endpoint::parse(Backend::Otlp, "http://h", Some("nocolon")).unwrap_err();
        assert!(e.contains("BPFPROF_OTLP_BASIC_AUTH"), "{e}");
    }
}
