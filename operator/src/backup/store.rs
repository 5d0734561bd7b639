//! What an object-store backup client may be given. Pure: from the admin's
//! policy, who wrote the keyring, the spec, the operator's environment and
//! the credentials Secret's data, the options `object_store` is built with —
//! or a refusal naming what is not allowed.
//!
//! Anything a tenant writes (a SecretKeyring's spec, the Secret it names) is
//! input, never configuration passed through: only plain credential values
//! from an allow-list are taken from the Secret, so no tenant can make the
//! operator read a file (a token file), call a URL (an STS, container
//! credentials or metadata endpoint, a GCS base URL), assume a role or pick
//! an authority. A custom endpoint, and the operator's own credentials (its
//! environment, or the cloud's instance identity that a client without
//! credentials falls back to), are for a SecretKeyring only where the admin's
//! policy allows them.

use std::collections::BTreeMap;

use url::Url;

use crate::crd;

/// What the operator's administrator allows namespaced keyrings' backups
/// (chart values `backup.objectStore.allowedEndpoints` and
/// `backup.objectStore.namespacedUsesOperatorCredentials`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Policy {
    /// Endpoints a SecretKeyring may name in `spec.backup.objectStore.endpoint`.
    pub allowed_endpoints: Vec<Endpoint>,
    /// Whether a SecretKeyring may use the operator's own credentials.
    pub namespaced_uses_operator_credentials: bool,
    /// Where a SecretKeyring that uses the operator's credentials may
    /// write: under one of these URLs, then its own namespace
    /// (`s3://backups/tenants` lets `team-a` write to
    /// `s3://backups/tenants/team-a[/…]`), so no namespace writes into
    /// another's backups or anywhere else the operator may.
    pub namespaced_prefixes: Vec<String>,
}

/// Whether `url` is `prefix/namespace` or below it (scheme, bucket and
/// whole path segments compared; no empty, `.` or `..` segment).
pub fn under_prefix(url: &str, prefix: &str, namespace: &str) -> bool {
    let (Ok(u), Ok(p)) = (Url::parse(url), Url::parse(prefix)) else { return false };
    let segments = |u: &Url| -> Option<Vec<String>> {
        let path = u.path().trim_matches('/');
        if path.is_empty() {
            return Some(Vec::new());
        }
        let parts: Vec<String> = path.split('/').map(str::to_owned).collect();
        (!parts.iter().any(|s| s.is_empty() || s == "." || s == "..")).then_some(parts)
    };
    let (Some(have), Some(mut want)) = (segments(&u), segments(&p)) else { return false };
    want.push(namespace.to_owned());
    // The user part names the container for Azure URLs
    // (`abfss://container@account…`): it must be the prefix's, as the port.
    u.scheme() == p.scheme()
        && u.username() == p.username()
        && u.password() == p.password()
        && u.port() == p.port()
        && u.host_str() == p.host_str()
        && u.query().is_none()
        && u.fragment().is_none()
        && have.starts_with(&want)
}

/// Who wrote the keyring, and so how far its backup settings are trusted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Writer {
    /// A ClusterSecretKeyring: written by a cluster administrator.
    Admin,
    /// A SecretKeyring: written by whoever may edit its namespace.
    Tenant,
}

/// An endpoint URL reduced to what identifies it: scheme, host, port and
/// path (no user, query or fragment).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Endpoint(String);

impl Endpoint {
    /// Parse `http(s)://host[:port][/path]`.
    pub fn parse(s: &str) -> Result<Self, String> {
        let u = Url::parse(s).map_err(|e| format!("{s:?} is not a URL ({e})"))?;
        if !matches!(u.scheme(), "http" | "https") {
            return Err(format!("{s:?}: expected http:// or https://"));
        }
        if !u.username().is_empty() || u.password().is_some() {
            return Err(format!("{s:?}: credentials do not belong in the URL"));
        }
        if u.query().is_some() || u.fragment().is_some() {
            return Err(format!("{s:?}: a query or fragment is not allowed"));
        }
        let host = u.host_str().filter(|h| !h.is_empty()).ok_or_else(|| format!("{s:?}: no host"))?;
        let port = u.port_or_known_default().map_or(String::new(), |p| format!(":{p}"));
        let path = u.path().trim_end_matches('/');
        Ok(Endpoint(format!("{}://{host}{port}{path}", u.scheme())))
    }

    /// The normalized URL.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// Which provider a backup URL names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Provider {
    /// `s3://`, `s3a://`.
    S3,
    /// `gs://`.
    Gcs,
    /// `az://`, `azure://`, `abfs://`, `abfss://`.
    Azure,
}

impl Provider {
    /// The provider of a URL scheme.
    pub fn of_scheme(scheme: &str) -> Option<Provider> {
        match scheme {
            "s3" | "s3a" => Some(Provider::S3),
            "gs" => Some(Provider::Gcs),
            "az" | "azure" | "abfs" | "abfss" => Some(Provider::Azure),
            _ => None,
        }
    }

    /// The credentials Secret's keys this provider takes (upper case, as
    /// the providers' tools name them): plain values only.
    pub fn credential_keys(self) -> &'static [&'static str] {
        match self {
            Provider::S3 => &["AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN"],
            Provider::Gcs => &["GOOGLE_SERVICE_ACCOUNT_KEY"],
            Provider::Azure => {
                &["AZURE_STORAGE_ACCOUNT_NAME", "AZURE_STORAGE_ACCOUNT_KEY", "AZURE_STORAGE_SAS_TOKEN"]
            }
        }
    }

    /// The operator's environment variables this provider reads.
    fn env_prefix(self) -> &'static str {
        match self {
            Provider::S3 => "AWS_",
            Provider::Gcs => "GOOGLE_",
            Provider::Azure => "AZURE_",
        }
    }

    /// Whether these allow-listed keys are a complete credential (else the
    /// client would fall back to the operator's own identity).
    fn complete(self, keys: &BTreeMap<&'static str, String>) -> bool {
        let has = |k| keys.contains_key(k);
        match self {
            Provider::S3 => has("AWS_ACCESS_KEY_ID") && has("AWS_SECRET_ACCESS_KEY"),
            Provider::Gcs => has("GOOGLE_SERVICE_ACCOUNT_KEY"),
            Provider::Azure => {
                has("AZURE_STORAGE_ACCOUNT_NAME")
                    && (has("AZURE_STORAGE_ACCOUNT_KEY") || has("AZURE_STORAGE_SAS_TOKEN"))
            }
        }
    }
}

/// Why a backup destination is refused: the spec field or Secret key, and
/// what to do. Never a credential value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal(pub String);

impl std::fmt::Display for Refusal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// Check what the spec alone decides (any writer): the URL's provider and
/// bucket, the endpoint's form and the region's.
pub fn check_spec(os: &crd::ObjectStore) -> Result<Provider, String> {
    let url = Url::parse(&os.url).map_err(|e| format!("spec.backup.objectStore.url {:?}: {e}", os.url))?;
    let provider = Provider::of_scheme(url.scheme())
        .ok_or_else(|| format!("spec.backup.objectStore.url {:?}: expected s3://, gs:// or az://", os.url))?;
    if url.password().is_some() || url.query().is_some() || url.fragment().is_some() {
        return Err(format!(
            "spec.backup.objectStore.url {:?}: no password, query or fragment (credentials go in credentialsSecretRef)",
            os.url
        ));
    }
    let bucket = url.host_str().unwrap_or_default();
    // `abfss://container@account.dfs.core.windows.net/`: the host is the account's.
    let host_is_account = provider == Provider::Azure && !url.username().is_empty();
    if !host_is_account && !is_bucket_name(bucket) {
        return Err(format!(
            "spec.backup.objectStore.url {:?}: {bucket:?} is not a bucket or container name",
            os.url
        ));
    }
    if let Some(e) = &os.endpoint {
        if provider != Provider::S3 {
            return Err("spec.backup.objectStore.endpoint: only for s3:// URLs".into());
        }
        Endpoint::parse(e).map_err(|why| format!("spec.backup.objectStore.endpoint {why}"))?;
    }
    if let Some(r) = &os.region
        && !is_region(r)
    {
        return Err(format!(
            "spec.backup.objectStore.region {r:?}: expected a region name like eu-west-1 (lower-case letters, digits and single dashes)"
        ));
    }
    Ok(provider)
}

/// The options to build the store with, or why not.
///
/// `env` is the operator's environment; `secret` the credentials Secret's
/// name (`namespace/name`, for messages) and data (`None` when the spec
/// names none). From the environment only the
/// provider's own variables are taken, and for a tenant only when the policy
/// allows the operator's credentials. From the Secret only the provider's
/// allow-listed keys (any other key is refused, not ignored, so a typo or an
/// attempt is visible).
pub fn options(
    writer: Writer,
    policy: &Policy,
    os: &crd::ObjectStore,
    namespace: &str,
    env: &[(String, String)],
    secret: Option<(&str, &BTreeMap<String, String>)>,
) -> Result<Vec<(String, String)>, Refusal> {
    let provider = check_spec(os).map_err(Refusal)?;
    let mut opts = Vec::new();
    if let Some(e) = &os.endpoint {
        let endpoint = Endpoint::parse(e).map_err(Refusal)?;
        if writer == Writer::Tenant && !policy.allowed_endpoints.contains(&endpoint) {
            return Err(Refusal(format!(
                "spec.backup.objectStore.endpoint {:?} is not among the endpoints the operator's administrator allows for SecretKeyrings (chart value backup.objectStore.allowedEndpoints)",
                endpoint.as_str()
            )));
        }
        opts.push(("aws_endpoint".to_owned(), endpoint.as_str().to_owned()));
        if endpoint.as_str().starts_with("http://") {
            opts.push(("aws_allow_http".to_owned(), "true".to_owned()));
        }
    }
    let given = secret.map(|(name, data)| credentials(provider, name, data)).transpose()?.unwrap_or_default();
    // A tenant's backup uses its own complete credential, or — only where
    // the admin allows it, and only with nothing of the tenant's and no
    // endpoint of the tenant's — the operator's own: never a mix, so no
    // session token of the operator's goes along with a tenant's key or to
    // a tenant's endpoint.
    let use_env = match writer {
        Writer::Admin => true,
        Writer::Tenant if provider.complete(&given) => false,
        Writer::Tenant => {
            let needed = provider.credential_keys().join(", ");
            if !policy.namespaced_uses_operator_credentials {
                return Err(Refusal(match secret {
                    None => format!(
                        "spec.backup.objectStore.credentialsSecretRef is required: a SecretKeyring may not use the operator's own credentials (chart value backup.objectStore.namespacedUsesOperatorCredentials); its Secret takes {needed}"
                    ),
                    Some((name, _)) => format!(
                        "the credentials Secret {name} lacks a complete credential ({needed}); a SecretKeyring may not fall back to the operator's own"
                    ),
                }));
            }
            if let Some((name, _)) = secret.filter(|_| !given.is_empty()) {
                return Err(Refusal(format!(
                    "the credentials Secret {name} lacks a complete credential ({needed}); it is not mixed with the operator's own"
                )));
            }
            if os.endpoint.is_some() {
                return Err(Refusal(
                    "spec.backup.objectStore.endpoint: a SecretKeyring that uses the operator's own credentials may not name an endpoint".into(),
                ));
            }
            if !policy.namespaced_prefixes.iter().any(|p| under_prefix(&os.url, p, namespace)) {
                let allowed: Vec<String> = policy
                    .namespaced_prefixes
                    .iter()
                    .map(|p| format!("{}/{namespace}", p.trim_end_matches('/')))
                    .collect();
                return Err(Refusal(if allowed.is_empty() {
                    "a SecretKeyring that uses the operator's own credentials must write under a prefix the administrator names, and none is named (chart value backup.objectStore.namespacedPrefixes)".to_owned()
                } else {
                    format!(
                        "spec.backup.objectStore.url {:?}: with the operator's own credentials a SecretKeyring writes only under {} (chart value backup.objectStore.namespacedPrefixes)",
                        os.url,
                        allowed.join(" or ")
                    )
                }));
            }
            true
        }
    };
    if use_env {
        opts.extend(
            env.iter()
                .filter(|(k, _)| k.starts_with(provider.env_prefix()))
                .map(|(k, v)| (k.to_ascii_lowercase(), v.clone())),
        );
    }
    opts.extend(given.into_iter().map(|(k, v)| (k.to_ascii_lowercase(), v)));
    if let Some(r) = &os.region {
        opts.push(("aws_region".to_owned(), r.clone()));
    }
    opts.push(("timeout".to_owned(), "20s".to_owned()));
    opts.push(("connect_timeout".to_owned(), "5s".to_owned()));
    Ok(opts)
}

/// The allow-listed credentials in a Secret's data (keys matched without
/// regard to case), or a refusal naming the first key that is not allowed.
fn credentials(
    provider: Provider,
    name: &str,
    data: &BTreeMap<String, String>,
) -> Result<BTreeMap<&'static str, String>, Refusal> {
    let allowed = provider.credential_keys();
    let mut out = BTreeMap::new();
    for (k, v) in data {
        let Some(&key) = allowed.iter().find(|a| a.eq_ignore_ascii_case(k)) else {
            return Err(Refusal(format!(
                "the credentials Secret {name}: key {k:?} is not allowed; it takes only {} (nothing that names a file, URL, endpoint, role or authority)",
                allowed.join(", ")
            )));
        };
        let value = v.trim();
        let value = match key {
            "GOOGLE_SERVICE_ACCOUNT_KEY" => service_account_key(value).ok_or_else(|| {
                Refusal(format!(
                    "the credentials Secret {name}: {k} is not a service account key (JSON with private_key, private_key_id and client_email)"
                ))
            })?,
            "AZURE_STORAGE_ACCOUNT_NAME" if !is_account_name(value) => {
                return Err(Refusal(format!(
                    "the credentials Secret {name}: {k}: expected 3 to 24 lower-case letters and digits"
                )));
            }
            _ => value.to_owned(),
        };
        if out.insert(key, value).is_some() {
            return Err(Refusal(format!(
                "the credentials Secret {name} has {key} twice (in different case)"
            )));
        }
    }
    Ok(out)
}

/// A GCS service account key reduced to the fields that sign: a key file's
/// `gcs_base_url` and `disable_oauth` would choose where requests go.
fn service_account_key(json: &str) -> Option<String> {
    let v: serde_json::Value = serde_json::from_str(json).ok()?;
    let field = |f: &str| v.get(f).and_then(serde_json::Value::as_str);
    Some(
        serde_json::json!({
            "private_key": field("private_key")?,
            "private_key_id": field("private_key_id")?,
            "client_email": field("client_email")?,
        })
        .to_string(),
    )
}

/// A bucket or container name as S3, GCS and Azure accept them.
fn is_bucket_name(s: &str) -> bool {
    (3..=63).contains(&s.len())
        && s.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"-._".contains(&b))
        && s.bytes().next().is_some_and(|b| b.is_ascii_alphanumeric())
}

/// An Azure storage account name.
fn is_account_name(s: &str) -> bool {
    (3..=24).contains(&s.len()) && s.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
}

/// A region name: `eu-west-1`, `auto`, `garage`.
fn is_region(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 32
        && s.split('-')
            .all(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit()))
}

/// A one-line description of an object store failure that quotes nothing
/// the server sent (a response body may carry anything).
pub fn describe(e: &object_store::Error) -> String {
    use object_store::Error as E;
    use object_store::client::HttpErrorKind as K;
    match e {
        E::NotFound { .. } => "the bucket or prefix was not found".into(),
        E::PermissionDenied { .. } => {
            "permission denied (check the credentials' rights on the bucket)".into()
        }
        E::Unauthenticated { .. } => "the store did not accept the credentials".into(),
        E::AlreadyExists { .. } | E::Precondition { .. } => "the object already exists".into(),
        E::UnknownConfigurationKey { key, .. } => format!("the store does not know the option {key:?}"),
        E::NotSupported { .. } | E::NotImplemented { .. } => {
            "the store does not support conditional writes".into()
        }
        E::InvalidPath { .. } => "the prefix is not a valid object path".into(),
        E::Generic { store, .. } => {
            let mut source: Option<&(dyn std::error::Error + 'static)> = Some(e);
            while let Some(s) = source {
                if let Some(http) = s.downcast_ref::<object_store::client::HttpError>() {
                    let what = match http.kind() {
                        K::Connect => "could not connect",
                        K::Timeout => "timed out",
                        K::Interrupted => "the connection was interrupted",
                        K::Decode => "its answer could not be read",
                        _ => "the request failed",
                    };
                    return format!("{store}: {what}");
                }
                source = s.source();
            }
            format!("{store}: the request failed or the server answered with an error")
        }
        _ => "the store failed".into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn os(url: &str) -> crd::ObjectStore {
        crd::ObjectStore { url: url.into(), ..Default::default() }
    }

    fn data(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect()
    }

    fn keys(opts: &[(String, String)]) -> Vec<&str> {
        opts.iter().map(|(k, _)| k.as_str()).collect()
    }

    const STATIC: &[(&str, &str)] = &[("AWS_ACCESS_KEY_ID", "AKIA"), ("aws_secret_access_key", "s")];

    #[test]
    fn a_tenant_secret_may_name_no_file_uri_endpoint_role_or_authority() {
        let p = Policy::default();
        for key in [
            "aws_container_credentials_full_uri",
            "AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE",
            "aws_web_identity_token_file",
            "aws_role_arn",
            "aws_endpoint_url_sts",
            "aws_endpoint",
            "aws_metadata_endpoint",
            "aws_allow_http",
            "proxy_url",
            "aws_skip_signature",
            "google_application_credentials",
            "azure_authority_host",
        ] {
            for writer in [Writer::Tenant, Writer::Admin] {
                let mut d = data(STATIC);
                d.insert(key.into(), "/var/run/secrets/kubernetes.io/serviceaccount/token".into());
                let err = options(writer, &p, &os("s3://bucket/p"), "team-a", &[], Some(("ns/creds", &d)))
                    .expect_err(key);
                assert!(err.0.contains(&format!("ns/creds: key {key:?} is not allowed")), "{err}");
                assert!(!err.0.contains("serviceaccount"), "no value is quoted: {err}");
            }
        }
    }

    #[test]
    fn plain_credentials_pass_in_canonical_form() {
        let d = data(&[
            ("AWS_ACCESS_KEY_ID", "AKIA "),
            ("AWS_SECRET_ACCESS_KEY", "s"),
            ("aws_session_token", "t"),
        ]);
        let opts = options(
            Writer::Tenant,
            &Policy::default(),
            &os("s3://bucket/p"),
            "team-a",
            &[],
            Some(("ns/creds", &d)),
        )
        .expect("ok");
        assert_eq!(
            keys(&opts),
            ["aws_access_key_id", "aws_secret_access_key", "aws_session_token", "timeout", "connect_timeout"]
        );
        assert_eq!(opts[0].1, "AKIA", "trimmed");
        let d = data(&[("AZURE_STORAGE_ACCOUNT_NAME", "acct1"), ("AZURE_STORAGE_ACCOUNT_KEY", "k")]);
        assert!(
            options(
                Writer::Tenant,
                &Policy::default(),
                &os("az://container/p"),
                "team-a",
                &[],
                Some(("ns/creds", &d))
            )
            .is_ok()
        );
        let d = data(&[("AZURE_STORAGE_ACCOUNT_NAME", "evil.example/x"), ("AZURE_STORAGE_ACCOUNT_KEY", "k")]);
        assert!(
            options(
                Writer::Tenant,
                &Policy::default(),
                &os("az://container/p"),
                "team-a",
                &[],
                Some(("ns/creds", &d))
            )
            .is_err()
        );
        // An S3 key in a GCS keyring's Secret is not a GCS credential.
        assert!(
            options(
                Writer::Admin,
                &Policy::default(),
                &os("gs://bucket/p"),
                "team-a",
                &[],
                Some(("ns/creds", &data(STATIC)))
            )
            .is_err()
        );
    }

    #[test]
    fn a_service_account_key_keeps_only_the_signing_fields() {
        let key = r#"{"private_key":"k","private_key_id":"i","client_email":"e","gcs_base_url":"http://127.0.0.1:1","disable_oauth":true}"#;
        let d = data(&[("GOOGLE_SERVICE_ACCOUNT_KEY", key)]);
        let opts = options(
            Writer::Tenant,
            &Policy::default(),
            &os("gs://bucket/p"),
            "team-a",
            &[],
            Some(("ns/creds", &d)),
        )
        .expect("ok");
        let json = &opts.iter().find(|(k, _)| k == "google_service_account_key").expect("key").1;
        assert!(
            !json.contains("gcs_base_url")
                && !json.contains("disable_oauth")
                && json.contains("client_email"),
            "{json}"
        );
        let d = data(&[("GOOGLE_SERVICE_ACCOUNT_KEY", "/etc/key.json")]);
        assert!(
            options(
                Writer::Admin,
                &Policy::default(),
                &os("gs://bucket/p"),
                "team-a",
                &[],
                Some(("ns/creds", &d))
            )
            .is_err()
        );
    }

    #[test]
    fn a_tenant_endpoint_must_be_allow_listed() {
        let mut o = os("s3://bucket/p");
        o.endpoint = Some("http://127.0.0.1:9000/".into());
        let d = data(STATIC);
        let err = options(Writer::Tenant, &Policy::default(), &o, "team-a", &[], Some(("ns/creds", &d)))
            .expect_err("not allowed");
        assert!(err.0.contains("backup.objectStore.allowedEndpoints"), "{err}");
        let policy = Policy {
            allowed_endpoints: vec![Endpoint::parse("http://127.0.0.1:9000").expect("endpoint")],
            ..Default::default()
        };
        let opts =
            options(Writer::Tenant, &policy, &o, "team-a", &[], Some(("ns/creds", &d))).expect("allowed");
        assert!(opts.contains(&("aws_endpoint".into(), "http://127.0.0.1:9000".into())));
        assert!(opts.contains(&("aws_allow_http".into(), "true".into())));
        o.endpoint = Some("http://127.0.0.1:9001".into());
        assert!(
            options(Writer::Tenant, &policy, &o, "team-a", &[], Some(("ns/creds", &d))).is_err(),
            "another port"
        );
        assert!(
            options(Writer::Admin, &Policy::default(), &o, "team-a", &[], Some(("ns/creds", &d))).is_ok(),
            "an admin's keyring"
        );
    }

    #[test]
    fn operator_credentials_only_for_admins_or_where_allowed() {
        let env = vec![
            ("AWS_WEB_IDENTITY_TOKEN_FILE".to_owned(), "/var/run/token".to_owned()),
            ("AWS_ROLE_ARN".to_owned(), "arn".to_owned()),
            ("GOOGLE_X".to_owned(), "g".to_owned()),
            ("HOME".to_owned(), "/".to_owned()),
        ];
        let o = os("s3://bucket/p");
        let admin = options(Writer::Admin, &Policy::default(), &o, "team-a", &env, None).expect("admin");
        assert_eq!(
            keys(&admin),
            ["aws_web_identity_token_file", "aws_role_arn", "timeout", "connect_timeout"]
        );
        let err = options(Writer::Tenant, &Policy::default(), &o, "team-a", &env, None).expect_err("tenant");
        assert!(err.0.contains("credentialsSecretRef is required"), "{err}");
        // With the tenant's own complete credentials, the environment is not used.
        let own = options(
            Writer::Tenant,
            &Policy::default(),
            &o,
            "team-a",
            &env,
            Some(("ns/creds", &data(STATIC))),
        )
        .expect("own");
        assert!(!keys(&own).iter().any(|k| k.contains("role") || k.contains("web_identity")), "{own:?}");
        // An incomplete credential would fall back to the instance identity.
        let half = data(&[("AWS_ACCESS_KEY_ID", "AKIA")]);
        assert!(
            options(Writer::Tenant, &Policy::default(), &o, "team-a", &env, Some(("ns/creds", &half)))
                .is_err()
        );
        let allowing = Policy { namespaced_uses_operator_credentials: true, ..Default::default() };
        let err = options(Writer::Tenant, &allowing, &o, "team-a", &env, None).expect_err("no prefix named");
        assert!(err.0.contains("none is named"), "{err}");
        let allowing = Policy { namespaced_prefixes: vec!["s3://bucket/tenants".into()], ..allowing };
        let err =
            options(Writer::Tenant, &allowing, &o, "team-a", &env, None).expect_err("outside the prefix");
        assert!(err.0.contains("writes only under s3://bucket/tenants/team-a"), "{err}");
        let o = os("s3://bucket/tenants/team-a/payments");
        assert!(options(Writer::Tenant, &allowing, &o, "team-a", &env, None).is_ok());
        // Where allowed, never mixed with a tenant's partial credential, and
        // never sent to a tenant's endpoint.
        assert!(options(Writer::Tenant, &allowing, &o, "team-a", &env, Some(("ns/creds", &half))).is_err());
        let mut custom = o.clone();
        custom.endpoint = Some("https://s3.storage.svc".into());
        let listed = Policy {
            allowed_endpoints: vec![Endpoint::parse("https://s3.storage.svc").expect("endpoint")],
            ..allowing.clone()
        };
        let err = options(Writer::Tenant, &listed, &custom, "team-a", &env, None)
            .expect_err("env creds to a tenant endpoint");
        assert!(err.0.contains("may not name an endpoint"), "{err}");
        // A tenant's own complete credential is used alone, even where the
        // operator's are allowed.
        let env_token = vec![("AWS_SESSION_TOKEN".to_owned(), "operator-session".to_owned())];
        let own =
            options(Writer::Tenant, &allowing, &o, "team-a", &env_token, Some(("ns/creds", &data(STATIC))))
                .expect("own");
        assert!(!own.iter().any(|(_, v)| v == "operator-session"), "{own:?}");
    }

    #[test]
    fn with_operator_credentials_a_namespace_writes_only_under_its_own_prefix() {
        let p = "s3://backups/tenants";
        for ok in
            ["s3://backups/tenants/team-a", "s3://backups/tenants/team-a/", "s3://backups/tenants/team-a/x/y"]
        {
            assert!(under_prefix(ok, p, "team-a"), "{ok}");
            assert!(under_prefix(ok, "s3://backups/tenants/", "team-a"), "{ok}");
        }
        for bad in [
            "s3://backups/tenants/team-b/x",
            "s3://backups/tenants/team-ab",
            "s3://backups/tenants",
            "s3://other/tenants/team-a",
            "gs://backups/tenants/team-a",
            "s3://backups/tenants/team-a/../team-b",
            "s3://backups/tenants//team-a",
            "s3://backups/tenants/team-a?x=1",
            "not a url",
        ] {
            assert!(!under_prefix(bad, p, "team-a"), "{bad}");
        }
        assert!(under_prefix("s3://backups/team-a/p", "s3://backups", "team-a"), "a bucket as the prefix");
        // Azure names the container in the user part: it cannot change.
        let az = "abfss://tenants@acct.dfs.core.windows.net/backups";
        assert!(under_prefix("abfss://tenants@acct.dfs.core.windows.net/backups/team-a", az, "team-a"));
        for bad in [
            "abfss://prod@acct.dfs.core.windows.net/backups/team-a",
            "abfss://acct.dfs.core.windows.net/backups/team-a",
            "abfss://tenants:x@acct.dfs.core.windows.net/backups/team-a",
            "abfss://tenants@acct.dfs.core.windows.net:8443/backups/team-a",
        ] {
            assert!(!under_prefix(bad, az, "team-a"), "{bad}");
        }
    }

    #[test]
    fn the_spec_alone_is_checked() {
        let mut o = os("s3://bucket/p");
        for region in ["evil.example/", "us-east-1/../x", "", "-x", "EU-WEST-1", "a--b"] {
            o.region = Some(region.into());
            assert!(check_spec(&o).is_err(), "{region:?}");
        }
        for region in ["eu-west-1", "auto", "garage"] {
            o.region = Some(region.into());
            assert!(check_spec(&o).is_ok(), "{region:?}");
        }
        o.region = None;
        for endpoint in ["ftp://x", "http://user:pw@host", "https://host/?x=1", "not a url"] {
            o.endpoint = Some(endpoint.into());
            assert!(check_spec(&o).is_err(), "{endpoint:?}");
        }
        assert!(check_spec(&os("s3://user:secret@bucket/p")).is_err());
        assert!(check_spec(&os("s3://x/p")).is_err(), "too short a bucket");
        let mut g = os("gs://bucket/p");
        g.endpoint = Some("https://storage.example".into());
        assert!(check_spec(&g).is_err(), "endpoint for gs://");
        assert!(check_spec(&os("abfss://container@acct.dfs.core.windows.net/p")).is_ok());
    }

    #[test]
    fn failures_are_described_without_the_servers_words() {
        let e = object_store::Error::Generic { store: "S3", source: "body: <Secret>ssh</Secret>".into() };
        assert_eq!(describe(&e), "S3: the request failed or the server answered with an error");
        let e = object_store::Error::PermissionDenied { path: "p".into(), source: "<Body/>".into() };
        assert!(!describe(&e).contains("Body"));
    }
}
