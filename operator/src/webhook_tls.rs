//! The webhook's serving certificate. By default the operator manages it: a
//! CA and a certificate for `<service>.<namespace>.svc` (rcgen), kept in a
//! Secret of the operator's namespace, the CA written into the
//! `MutatingWebhookConfiguration`'s `caBundle`, the certificate renewed
//! (from the same CA, so the bundle stays valid) when a third of its life
//! is left or when the Secret is annotated `encstr.io/renew-certificate`.
//! With cert-manager the Secret is cert-manager's and is only read.
//!
//! Every replica runs [`keep`]: it reads the Secret through the API (never
//! a mounted file), serves what it holds and reloads at once when it
//! changes. [`plan`] and [`issue`] decide and make; the loop applies.

use std::sync::{Arc, RwLock};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use futures::{FutureExt as _, StreamExt as _};
use k8s_openapi::ByteString;
use k8s_openapi::api::admissionregistration::v1::MutatingWebhookConfiguration;
use k8s_openapi::api::core::v1::Secret;
use kube::api::{Api, ObjectMeta, PostParams};
use kube::runtime::watcher;
use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose,
};
use rustls::crypto::ring::sign::any_supported_type;
use rustls::pki_types::pem::PemObject as _;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use tracing::{info, warn};
use zeroize::Zeroizing;

/// Annotating the Secret with this renews the serving certificate now.
pub const RENEW_ANNOTATION: &str = "encstr.io/renew-certificate";
/// How long a new CA is valid.
pub const CA_LIFETIME: Duration = Duration::from_secs(10 * 365 * 86_400);
/// How long a serving certificate is valid.
pub const CERT_LIFETIME: Duration = Duration::from_secs(365 * 86_400);
/// How long the CA a new one replaced stays in the `caBundle` (then
/// `ca-previous.crt` is dropped from the Secret).
pub const CA_OVERLAP: Duration = Duration::from_secs(3600);

/// The Secret's contents: certificate and key, CA certificate and key.
#[derive(Clone)]
pub struct Material {
    /// `tls.crt`: the serving certificate (PEM).
    pub cert_pem: String,
    /// `tls.key`: its key (PKCS#8 PEM).
    pub key_pem: Zeroizing<String>,
    /// `ca.crt`: the CA (PEM), for the `caBundle`.
    pub ca_pem: String,
    /// `ca.key`: the CA's key (absent in cert-manager's Secrets).
    pub ca_key_pem: Option<Zeroizing<String>>,
    /// `ca-previous.crt`: the CA this one replaced, kept in the `caBundle`
    /// for [`CA_OVERLAP`] after the roll, so that a replica still serving a
    /// certificate of the old CA is trusted until it switches.
    pub ca_previous_pem: Option<String>,
}

impl std::fmt::Debug for Material {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Material").field("cert_pem", &self.cert_pem).finish_non_exhaustive()
    }
}

impl Material {
    /// Read a Secret's data (`tls.crt`, `tls.key`, `ca.crt`, `ca.key`).
    pub fn from_secret(s: &Secret) -> Option<Material> {
        let data = s.data.as_ref()?;
        let text = |k: &str| data.get(k).and_then(|b| String::from_utf8(b.0.clone()).ok());
        Some(Material {
            cert_pem: text("tls.crt")?,
            key_pem: Zeroizing::new(text("tls.key")?),
            ca_pem: text("ca.crt").unwrap_or_default(),
            ca_key_pem: text("ca.key").map(Zeroizing::new),
            ca_previous_pem: text("ca-previous.crt"),
        })
    }

    /// The Secret's data.
    pub fn to_data(&self) -> std::collections::BTreeMap<String, ByteString> {
        let mut d = std::collections::BTreeMap::new();
        d.insert("tls.crt".into(), ByteString(self.cert_pem.clone().into_bytes()));
        d.insert("tls.key".into(), ByteString(self.key_pem.as_bytes().to_vec()));
        d.insert("ca.crt".into(), ByteString(self.ca_pem.clone().into_bytes()));
        if let Some(k) = &self.ca_key_pem {
            d.insert("ca.key".into(), ByteString(k.as_bytes().to_vec()));
        }
        if let Some(p) = &self.ca_previous_pem {
            d.insert("ca-previous.crt".into(), ByteString(p.clone().into_bytes()));
        }
        d
    }

    /// The `caBundle`: the CA, then the previous one while it is still
    /// valid (at `now`).
    pub fn ca_bundle(&self, now: SystemTime) -> String {
        let mut bundle = self.ca_pem.clone();
        let valid = |pem: &str| facts(pem).is_some_and(|f| f.not_after > unix(now));
        if let Some(prev) = self.ca_previous_pem.as_deref().filter(|p| valid(p) && *p != self.ca_pem) {
            if !bundle.ends_with('\n') {
                bundle.push('\n');
            }
            bundle.push_str(prev);
        }
        bundle
    }

    /// The serving certificate and key, for rustls.
    pub fn certified_key(&self) -> Result<Arc<CertifiedKey>, String> {
        let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(self.cert_pem.as_bytes())
            .collect::<Result<_, _>>()
            .map_err(|e| format!("tls.crt: {e}"))?;
        if chain.is_empty() {
            return Err("tls.crt holds no certificate".into());
        }
        let key =
            PrivateKeyDer::from_pem_slice(self.key_pem.as_bytes()).map_err(|e| format!("tls.key: {e}"))?;
        let signing = any_supported_type(&key).map_err(|e| format!("tls.key: {e}"))?;
        let ck = CertifiedKey::new(chain, signing);
        ck.keys_match().map_err(|e| format!("tls.key does not match tls.crt: {e}"))?;
        Ok(Arc::new(ck))
    }
}

/// What a certificate's dates and names are.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Facts {
    not_before: i64,
    not_after: i64,
    dns_names: Vec<String>,
}

fn facts(pem: &str) -> Option<Facts> {
    let der = CertificateDer::pem_slice_iter(pem.as_bytes()).next()?.ok()?;
    let (_, cert) = x509_parser::parse_x509_certificate(&der).ok()?;
    let validity = cert.validity();
    let dns_names = cert
        .subject_alternative_name()
        .ok()
        .flatten()
        .map(|san| {
            san.value
                .general_names
                .iter()
                .filter_map(|n| match n {
                    x509_parser::extensions::GeneralName::DNSName(d) => Some((*d).to_owned()),
                    _ => None,
                })
                .collect()
        })
        .unwrap_or_default();
    Some(Facts {
        not_before: validity.not_before.timestamp(),
        not_after: validity.not_after.timestamp(),
        dns_names,
    })
}

/// What the Secret needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Plan {
    /// It is good.
    Keep,
    /// A new serving certificate from the same CA (the `caBundle` holds).
    Renew,
    /// A new CA and certificate (none yet, unreadable, or the CA ends soon).
    Create,
    /// The overlap after a CA roll is over: drop `ca-previous.crt`.
    DropPrevious,
}

fn unix(t: SystemTime) -> i64 {
    t.duration_since(UNIX_EPOCH).map(|d| d.as_secs() as i64).unwrap_or_default()
}

/// Decide what the Secret needs: the certificate must name `dns`, match its
/// key, and have more than a third of its life left; the CA must outlive a
/// new certificate.
pub fn plan(m: Option<&Material>, renew_asked: bool, dns: &str, now: SystemTime) -> Plan {
    let Some(m) = m else { return Plan::Create };
    let now = unix(now);
    let (Some(ca), Some(_)) = (facts(&m.ca_pem), m.ca_key_pem.as_ref()) else { return Plan::Create };
    if ca.not_after - now < CERT_LIFETIME.as_secs() as i64 + 86_400 {
        return Plan::Create;
    }
    let Some(leaf) = facts(&m.cert_pem) else { return Plan::Renew };
    let lifetime = (leaf.not_after - leaf.not_before).max(1);
    let renew = renew_asked
        || leaf.not_after - now < lifetime / 3
        || leaf.not_before > now + 300
        || !leaf.dns_names.iter().any(|n| n == dns)
        || m.certified_key().is_err();
    if renew {
        return Plan::Renew;
    }
    // The CA is backdated by 300 s when made (see `validity`).
    let overlap_over = now - (ca.not_before + 300) >= CA_OVERLAP.as_secs() as i64;
    if m.ca_previous_pem.is_some() && overlap_over { Plan::DropPrevious } else { Plan::Keep }
}

fn validity(p: &mut CertificateParams, now: SystemTime, lifetime: Duration) {
    // A little in the past, for clocks that lag.
    p.not_before = (now - Duration::from_secs(300)).into();
    p.not_after = (now + lifetime).into();
}

/// Make what `plan` asked for: a new CA (`Create`) or a certificate from the
/// existing one (`Renew`), for `dns` and its shorter forms; or the same
/// without the previous CA (`DropPrevious`). A new CA records the one it
/// replaces as the previous: the Secret's, or else (`serving_ca`) the CA of
/// the certificate this replica serves (the Secret was deleted).
pub fn issue(
    prev: Option<&Material>,
    plan: Plan,
    dns: &str,
    now: SystemTime,
    serving_ca: Option<&str>,
) -> Result<Material, String> {
    if let (Plan::DropPrevious, Some(m)) = (plan, prev) {
        return Ok(Material { ca_previous_pem: None, ..m.clone() });
    }
    let err = |e: rcgen::Error| format!("cannot make the webhook certificate: {e}");
    let ca_previous_pem = match (plan, prev) {
        (Plan::Renew, Some(m)) if m.ca_key_pem.is_some() => m.ca_previous_pem.clone(),
        _ => prev
            .map(|m| m.ca_pem.as_str())
            .filter(|p| facts(p).is_some())
            .or(serving_ca)
            .filter(|p| facts(p).is_some_and(|f| f.not_after > unix(now)))
            .map(str::to_owned),
    };
    let (ca_pem, ca_key_pem, issuer) = match (plan, prev) {
        (Plan::Renew, Some(m)) if m.ca_key_pem.is_some() => {
            let key_pem = m.ca_key_pem.clone().expect("checked");
            let key = KeyPair::from_pem(&key_pem).map_err(err)?;
            let issuer = Issuer::from_ca_cert_pem(&m.ca_pem, key).map_err(err)?;
            (m.ca_pem.clone(), key_pem, issuer)
        }
        _ => {
            let key = KeyPair::generate().map_err(err)?;
            let mut p = CertificateParams::new(Vec::<String>::new()).map_err(err)?;
            p.distinguished_name.push(DnType::CommonName, "encstr-operator webhook CA");
            p.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
            p.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
            validity(&mut p, now, CA_LIFETIME);
            let cert = p.self_signed(&key).map_err(err)?;
            let key_pem = Zeroizing::new(key.serialize_pem());
            (cert.pem(), key_pem, Issuer::new(p, key))
        }
    };
    let service = dns.trim_end_matches(".svc");
    let short = service.split('.').next().unwrap_or(service);
    let names: Vec<String> = [dns, service, short].iter().map(|s| (*s).to_owned()).collect();
    let mut p = CertificateParams::new(names).map_err(err)?;
    p.distinguished_name.push(DnType::CommonName, dns);
    p.key_usages = vec![KeyUsagePurpose::DigitalSignature, KeyUsagePurpose::KeyEncipherment];
    p.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    validity(&mut p, now, CERT_LIFETIME);
    let key = KeyPair::generate().map_err(err)?;
    let cert = p.signed_by(&key, &issuer).map_err(err)?;
    let ca_previous_pem = ca_previous_pem.filter(|p| *p != ca_pem);
    Ok(Material {
        cert_pem: cert.pem(),
        key_pem: Zeroizing::new(key.serialize_pem()),
        ca_pem,
        ca_key_pem: Some(ca_key_pem),
        ca_previous_pem,
    })
}

/// The certificate rustls serves: whatever the Secret last held.
#[derive(Debug, Default)]
pub struct Resolver {
    current: RwLock<Option<Served>>,
}

/// What a resolver serves: the certificate (PEM), its CA, and the key.
#[derive(Debug)]
struct Served {
    cert_pem: String,
    ca_pem: String,
    key: Arc<CertifiedKey>,
}

impl Resolver {
    /// Serve `m` from the next handshake on. True when it changed.
    pub fn load(&self, m: &Material) -> Result<bool, String> {
        if self.current.read().expect("lock").as_ref().is_some_and(|c| c.cert_pem == m.cert_pem) {
            return Ok(false);
        }
        let key = m.certified_key()?;
        *self.current.write().expect("lock") =
            Some(Served { cert_pem: m.cert_pem.clone(), ca_pem: m.ca_pem.clone(), key });
        Ok(true)
    }

    /// Whether a certificate is loaded (the webhook is ready).
    pub fn ready(&self) -> bool {
        self.current.read().expect("lock").is_some()
    }

    /// The CA of the certificate served now.
    pub fn served_ca(&self) -> Option<String> {
        self.current.read().expect("lock").as_ref().map(|c| c.ca_pem.clone())
    }

    /// Whether `m`'s certificate is the one served.
    fn serves(&self, m: &Material) -> bool {
        self.current.read().expect("lock").as_ref().is_some_and(|c| c.cert_pem == m.cert_pem)
    }
}

impl ResolvesServerCert for Resolver {
    fn resolve(&self, _hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        self.current.read().expect("lock").as_ref().map(|c| c.key.clone())
    }
}

/// Whether a replica may switch to serving `m`'s certificate: when it
/// serves nothing yet (nothing can break), when the certificate's CA is the
/// one it serves already (a renewal), or once the `caBundle` held the new CA
/// before this pass began (written by an earlier pass, so the API server
/// has had a watch round trip to load it). `bundle`: `None` when the
/// operator does not keep the bundle (cert-manager) or there is no
/// configuration to keep.
pub fn may_serve(m: &Material, served_ca: Option<&str>, bundle: Option<&str>) -> bool {
    let Some(bundle) = bundle else { return true };
    served_ca.is_none_or(|ca| ca == m.ca_pem) || bundle.contains(m.ca_pem.trim())
}

/// Where the certificate lives and who it is for.
#[derive(Debug, Clone)]
pub struct Settings {
    /// The operator's namespace (the Secret's and the Service's).
    pub namespace: String,
    /// The Secret.
    pub secret: String,
    /// The webhook's Service.
    pub service: String,
    /// The `MutatingWebhookConfiguration` whose `caBundle` is kept (`None`:
    /// cert-manager owns the Secret and the bundle).
    pub configuration: Option<String>,
    /// How long a new CA must have been in the `caBundle` before a replica
    /// serves a certificate of it (every API server reloads webhook
    /// configurations through its own informer, some later than others).
    pub ca_grace: Duration,
}

impl Settings {
    /// `<service>.<namespace>.svc`.
    pub fn dns(&self) -> String {
        format!("{}.{}.svc", self.service, self.namespace)
    }
}

/// Set the `caBundle` of the configuration's webhooks that call our Service.
/// `None` when nothing changes.
pub fn with_ca_bundle(
    mut mwc: MutatingWebhookConfiguration,
    s: &Settings,
    ca_pem: &str,
) -> Option<MutatingWebhookConfiguration> {
    let bundle = ByteString(ca_pem.as_bytes().to_vec());
    let mut changed = false;
    for w in mwc.webhooks.iter_mut().flatten() {
        let ours = w
            .client_config
            .service
            .as_ref()
            .is_some_and(|svc| svc.name == s.service && svc.namespace == s.namespace);
        if ours && w.client_config.ca_bundle.as_ref() != Some(&bundle) {
            w.client_config.ca_bundle = Some(bundle.clone());
            changed = true;
        }
    }
    changed.then_some(mwc)
}

/// The data keys of the Secret the operator writes (and, during a CA
/// roll's overlap, `ca-previous.crt`).
const DATA_KEYS: [&str; 4] = ["ca.crt", "ca.key", "tls.crt", "tls.key"];

/// Whether a Secret is one this operator wrote, and so may be replaced: a
/// `kubernetes.io/tls` Secret labelled `app.kubernetes.io/managed-by:
/// encstr-operator` holding exactly the operator's four keys. A label alone
/// is not proof: anybody who may create Secrets may set it, so the type and
/// the layout must match what the operator writes too. Any other Secret of
/// that name is served if usable, never overwritten.
pub fn ours(s: &Secret) -> bool {
    let labelled = s.metadata.labels.as_ref().is_some_and(|l| {
        l.get("app.kubernetes.io/managed-by").map(String::as_str) == Some("encstr-operator")
    });
    let keys: Vec<&str> =
        s.data.iter().flatten().map(|(k, _)| k.as_str()).filter(|k| *k != "ca-previous.crt").collect();
    labelled && s.type_.as_deref() == Some("kubernetes.io/tls") && keys == DATA_KEYS
}

/// One pass: make or renew the certificate if it needs it, serve what the
/// Secret holds, and keep the `caBundle`.
/// When this replica first knew the `caBundle` to hold a CA it does not
/// serve yet.
type Bundled = Option<(String, std::time::Instant)>;

/// One pass; `Some(wait)`: look again that soon (a new CA's grace).
async fn pass(
    client: &kube::Client,
    s: &Settings,
    resolver: &Resolver,
    bundled: &mut Bundled,
) -> Result<Option<Duration>, String> {
    let secrets: Api<Secret> = Api::namespaced(client.clone(), &s.namespace);
    let name = &s.secret;
    let mut may_issue = s.configuration.is_some();
    let material = loop {
        let current = secrets
            .get_opt(name)
            .await
            .map_err(|e| format!("cannot read Secret {}/{name}: {e}", s.namespace))?;
        let material = current.as_ref().and_then(Material::from_secret);
        let renew_asked = current
            .as_ref()
            .and_then(|c| c.metadata.annotations.as_ref())
            .is_some_and(|a| a.contains_key(RENEW_ANNOTATION));
        let dns = s.dns();
        let p = plan(material.as_ref(), renew_asked, &dns, SystemTime::now());
        if !may_issue || p == Plan::Keep {
            break material;
        }
        if current.as_ref().is_some_and(|c| !ours(c)) {
            return Err(format!(
                "Secret {}/{name} exists and was not written by encstr-operator: it is not replaced \
                 (delete it to let the operator issue the webhook certificate, or use cert-manager)",
                s.namespace
            ));
        }
        // Issue at most once a pass; then serve what the Secret holds.
        may_issue = false;
        // The CA replaced: the one served here, else the bundle's (another
        // replica serves it), so it stays trusted through the overlap.
        let serving = match resolver.served_ca() {
            Some(ca) => Some(ca),
            None => current_bundle(client, s).await.and_then(|b| first_certificate(&b)),
        };
        let new = issue(material.as_ref(), p, &dns, SystemTime::now(), serving.as_deref())?;
        let secret = Secret {
            metadata: ObjectMeta {
                name: Some(name.clone()),
                namespace: Some(s.namespace.clone()),
                resource_version: current.as_ref().and_then(|c| c.metadata.resource_version.clone()),
                labels: Some(
                    [("app.kubernetes.io/managed-by".to_owned(), "encstr-operator".to_owned())].into(),
                ),
                ..ObjectMeta::default()
            },
            type_: Some("kubernetes.io/tls".into()),
            data: Some(new.to_data()),
            ..Secret::default()
        };
        let written = match &current {
            None => secrets.create(&PostParams::default(), &secret).await,
            Some(_) => secrets.replace(name, &PostParams::default(), &secret).await,
        };
        match written {
            Ok(_) => {
                info!(secret = %format!("{}/{name}", s.namespace), plan = ?p, "webhook certificate issued")
            }
            // Another replica wrote first (AlreadyExists, Conflict): read theirs.
            Err(kube::Error::Api(e)) if e.code == 409 => {
                info!(secret = %format!("{}/{name}", s.namespace), "another replica issued the webhook certificate");
            }
            Err(e) => return Err(format!("cannot write Secret {}/{name}: {e}", s.namespace)),
        }
    };
    let Some(m) = material else {
        return Err(format!("Secret {}/{name} holds no tls.crt and tls.key yet", s.namespace));
    };
    // The bundle first (the new CA beside the previous one), then serving:
    // the API server must trust a certificate before any replica serves it.
    let mut bundle_before = None;
    if let Some(config) = &s.configuration {
        let api: Api<MutatingWebhookConfiguration> = Api::all(client.clone());
        let mwc = api
            .get_opt(config)
            .await
            .map_err(|e| format!("cannot read MutatingWebhookConfiguration {config}: {e}"))?;
        match mwc {
            None => {
                warn!(configuration = %config, "the MutatingWebhookConfiguration does not exist; no caBundle written")
            }
            Some(mwc) => {
                bundle_before = Some(ours_bundle(&mwc, s).unwrap_or_default());
                if let Some(updated) = with_ca_bundle(mwc, s, &m.ca_bundle(SystemTime::now())) {
                    api.replace(config, &PostParams::default(), &updated)
                        .await
                        .map_err(|e| format!("cannot write the caBundle of {config}: {e}"))?;
                    info!(configuration = %config, "caBundle written");
                }
            }
        }
    }
    if !resolver.serves(&m) {
        let served = resolver.served_ca();
        let new_ca = bundle_before.is_some() && served.as_deref().is_some_and(|ca| ca != m.ca_pem);
        if new_ca {
            // The bundle holds the new CA from now (written just now, or
            // before): serve it once every API server has had time to load it.
            let since = match bundled.as_ref() {
                Some((ca, t)) if *ca == m.ca_pem => *t,
                _ => bundled.insert((m.ca_pem.clone(), std::time::Instant::now())).1,
            };
            let left = s.ca_grace.saturating_sub(since.elapsed());
            if !may_serve(&m, served.as_deref(), bundle_before.as_deref()) || !left.is_zero() {
                info!(secret = %format!("{}/{name}", s.namespace), wait_s = left.as_secs(), "a new webhook CA: serving its certificate once every API server trusts it");
                return Ok(Some(left.max(Duration::from_millis(200))));
            }
        }
        if resolver.load(&m)? {
            info!(secret = %format!("{}/{name}", s.namespace), "serving the webhook certificate from the Secret");
        }
        *bundled = None;
    }
    Ok(None)
}

/// The `caBundle` of our webhooks now, if the operator keeps it.
async fn current_bundle(client: &kube::Client, s: &Settings) -> Option<String> {
    let config = s.configuration.as_ref()?;
    let api: Api<MutatingWebhookConfiguration> = Api::all(client.clone());
    api.get_opt(config).await.ok().flatten().and_then(|mwc| ours_bundle(&mwc, s))
}

/// The first certificate of a PEM bundle, as PEM.
fn first_certificate(bundle: &str) -> Option<String> {
    const END: &str = "-----END CERTIFICATE-----";
    let start = bundle.find("-----BEGIN CERTIFICATE-----")?;
    let end = bundle[start..].find(END)? + start + END.len();
    Some(format!("{}\n", &bundle[start..end]))
}

/// The `caBundle` of the configuration's first webhook calling our Service.
fn ours_bundle(mwc: &MutatingWebhookConfiguration, s: &Settings) -> Option<String> {
    mwc.webhooks.iter().flatten().find_map(|w| {
        let svc = w.client_config.service.as_ref()?;
        if svc.name != s.service || svc.namespace != s.namespace {
            return None;
        }
        w.client_config.ca_bundle.as_ref().map(|b| String::from_utf8_lossy(&b.0).into_owned())
    })
}

/// Keep the certificate until `stop`: a pass at start, whenever the Secret
/// or the configuration changes (a configuration created after the
/// operator, a `caBundle` reverted), every `interval` (expiry), and after a
/// failed pass, with backoff.
pub async fn keep(
    client: kube::Client,
    s: Settings,
    resolver: Arc<Resolver>,
    interval: Duration,
    stop: impl Future<Output = ()>,
) {
    let secrets: Api<Secret> = Api::namespaced(client.clone(), &s.namespace);
    let secret_changes =
        watcher(secrets, watcher::Config::default().fields(&format!("metadata.name={}", s.secret)))
            .map(|e| e.map(|_| ()));
    let mut changes = match &s.configuration {
        Some(name) => {
            let configs: Api<MutatingWebhookConfiguration> = Api::all(client.clone());
            let config_changes =
                watcher(configs, watcher::Config::default().fields(&format!("metadata.name={name}")))
                    .map(|e| e.map(|_| ()));
            futures::stream::select(secret_changes.boxed(), config_changes.boxed()).boxed()
        }
        None => secret_changes.boxed(),
    };
    tokio::pin!(stop);
    let mut bundled: Bundled = None;
    let mut failures = 0u32;
    loop {
        let wait = match pass(&client, &s, &resolver, &mut bundled).await {
            Ok(soon) => {
                failures = 0;
                soon.map_or(interval, |d| d.min(interval))
            }
            Err(e) => {
                failures = failures.saturating_add(1);
                warn!("webhook certificate: {e}");
                Duration::from_millis(500u64.saturating_mul(1 << failures.min(6)))
            }
        };
        let deadline = tokio::time::sleep(wait);
        tokio::pin!(deadline);
        // Wait for a change (events in a burst are taken as one) or the deadline.
        tokio::select! {
            _ = &mut stop => return,
            _ = &mut deadline => {}
            ev = changes.next() => match ev {
                None => return,
                Some(Err(e)) => {
                    warn!("webhook certificate: watching the Secret and configuration: {e}");
                    tokio::time::sleep(Duration::from_secs(1)).await;
                }
                Some(Ok(())) => {
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    while let Some(Some(_)) = changes.next().now_or_never() {}
                }
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use rustls::client::danger::ServerCertVerifier as _;

    use super::*;

    const DNS: &str = "encstr-operator-webhook.encstr-system.svc";

    #[test]
    fn only_a_secret_of_the_operators_type_label_and_layout_is_its_own() {
        let m = issue(None, Plan::Create, DNS, SystemTime::now(), None).unwrap();
        let written = Secret {
            metadata: ObjectMeta {
                labels: Some(
                    [("app.kubernetes.io/managed-by".to_owned(), "encstr-operator".to_owned())].into(),
                ),
                ..ObjectMeta::default()
            },
            type_: Some("kubernetes.io/tls".into()),
            data: Some(m.to_data()),
            ..Secret::default()
        };
        assert!(ours(&written));
        let mut unlabelled = written.clone();
        unlabelled.metadata.labels = None;
        let mut opaque = written.clone();
        opaque.type_ = Some("Opaque".into());
        let mut other_layout = written.clone();
        other_layout.data.as_mut().unwrap().remove("ca.key");
        let mut extra = written.clone();
        extra.data.as_mut().unwrap().insert("password".into(), ByteString(b"x".to_vec()));
        for (what, s) in
            [("unlabelled", unlabelled), ("opaque", opaque), ("no ca.key", other_layout), ("extra", extra)]
        {
            assert!(!ours(&s), "{what}");
        }
    }

    #[test]
    fn a_new_secret_gets_a_ca_and_a_certificate_for_the_service() {
        let now = SystemTime::now();
        assert_eq!(plan(None, false, DNS, now), Plan::Create);
        let m = issue(None, Plan::Create, DNS, now, None).unwrap();
        let leaf = facts(&m.cert_pem).unwrap();
        assert_eq!(leaf.dns_names, [DNS, "encstr-operator-webhook.encstr-system", "encstr-operator-webhook"]);
        assert!(m.certified_key().is_ok());
        assert_eq!(plan(Some(&m), false, DNS, now), Plan::Keep);
        // The certificate verifies against the CA for the Service's name.
        let roots = {
            let mut r = rustls::RootCertStore::empty();
            r.add(CertificateDer::pem_slice_iter(m.ca_pem.as_bytes()).next().unwrap().unwrap()).unwrap();
            Arc::new(r)
        };
        let verifier = rustls::client::WebPkiServerVerifier::builder_with_provider(
            roots,
            Arc::new(rustls::crypto::ring::default_provider()),
        )
        .build()
        .unwrap();
        let chain = m.certified_key().unwrap().cert.clone();
        let name = rustls::pki_types::ServerName::try_from(DNS).unwrap();
        verifier
            .verify_server_cert(&chain[0], &[], &name, &[], rustls::pki_types::UnixTime::now())
            .expect("valid for the service");
        let other = rustls::pki_types::ServerName::try_from("other.encstr-system.svc").unwrap();
        assert!(
            verifier
                .verify_server_cert(&chain[0], &[], &other, &[], rustls::pki_types::UnixTime::now())
                .is_err()
        );
    }

    #[test]
    fn renewal_keeps_the_ca_and_comes_at_two_thirds_of_the_life() {
        let now = SystemTime::now();
        let m = issue(None, Plan::Create, DNS, now, None).unwrap();
        let later = now + CERT_LIFETIME / 3 * 2 - Duration::from_secs(86_400);
        assert_eq!(plan(Some(&m), false, DNS, later), Plan::Keep);
        let due = now + CERT_LIFETIME / 3 * 2 + Duration::from_secs(86_400);
        assert_eq!(plan(Some(&m), false, DNS, due), Plan::Renew);
        assert_eq!(plan(Some(&m), true, DNS, now), Plan::Renew, "asked for by annotation");
        assert_eq!(plan(Some(&m), false, "other.ns.svc", now), Plan::Renew, "another service name");
        let renewed = issue(Some(&m), Plan::Renew, DNS, due, None).unwrap();
        assert_eq!(renewed.ca_pem, m.ca_pem, "the caBundle stays valid");
        assert_ne!(renewed.cert_pem, m.cert_pem);
        assert_eq!(plan(Some(&renewed), false, DNS, due), Plan::Keep);
        // A CA near its end is replaced with the certificate.
        let ca_end = now + CA_LIFETIME - CERT_LIFETIME;
        assert_eq!(plan(Some(&renewed), false, DNS, ca_end), Plan::Create);
        // Unreadable material starts over; a key that does not match renews.
        let mut broken = m.clone();
        broken.ca_key_pem = None;
        assert_eq!(plan(Some(&broken), false, DNS, now), Plan::Create);
        let mut mismatched = m.clone();
        mismatched.key_pem = renewed.key_pem.clone();
        assert_eq!(plan(Some(&mismatched), false, DNS, now), Plan::Renew);
    }

    #[test]
    fn a_new_ca_is_trusted_beside_the_old_one_before_it_is_served_and_the_old_one_goes_after_the_overlap() {
        let now = SystemTime::now();
        let old = issue(None, Plan::Create, DNS, now, None).unwrap();
        assert_eq!(old.ca_bundle(now), old.ca_pem, "no previous CA");
        // The CA ends soon: a new one, which records the old one.
        let ca_end = now + CA_LIFETIME - CERT_LIFETIME;
        let new = issue(Some(&old), Plan::Create, DNS, ca_end, None).unwrap();
        assert_ne!(new.ca_pem, old.ca_pem);
        assert_eq!(new.ca_previous_pem.as_deref(), Some(old.ca_pem.as_str()));
        let bundle = new.ca_bundle(ca_end);
        assert!(bundle.starts_with(&new.ca_pem) && bundle.ends_with(&old.ca_pem), "{bundle}");
        // The Secret deleted: the CA this replica serves is the previous one.
        let fresh = issue(None, Plan::Create, DNS, now, Some(&old.ca_pem)).unwrap();
        assert_eq!(fresh.ca_previous_pem.as_deref(), Some(old.ca_pem.as_str()));
        // A replica serving the old CA switches only once the bundle held
        // the new one; a renewal (same CA) or a first load at once.
        assert!(!may_serve(&fresh, Some(&old.ca_pem), Some(&old.ca_pem)));
        assert!(may_serve(&fresh, Some(&old.ca_pem), Some(&fresh.ca_bundle(now))));
        assert!(may_serve(&fresh, None, Some("")), "nothing served yet");
        assert!(may_serve(&fresh, Some(&fresh.ca_pem), Some(&old.ca_pem)), "a renewal");
        assert!(may_serve(&fresh, Some(&old.ca_pem), None), "the bundle is not ours to keep");
        // Renewals keep the previous CA; after the overlap it is dropped.
        assert_eq!(plan(Some(&fresh), false, DNS, now), Plan::Keep);
        let renewed = issue(Some(&fresh), Plan::Renew, DNS, now, None).unwrap();
        assert_eq!(renewed.ca_previous_pem, fresh.ca_previous_pem);
        let over = now + CA_OVERLAP;
        assert_eq!(plan(Some(&fresh), false, DNS, over), Plan::DropPrevious);
        let dropped = issue(Some(&fresh), Plan::DropPrevious, DNS, over, None).unwrap();
        assert_eq!((dropped.ca_previous_pem, &dropped.cert_pem), (None, &fresh.cert_pem));
        // An expired previous CA is never in the bundle.
        let mut stale = fresh.clone();
        stale.ca_previous_pem = Some(old.ca_pem.clone());
        assert_eq!(stale.ca_bundle(now + CA_LIFETIME + Duration::from_secs(86_400)), stale.ca_pem);
    }

    #[test]
    fn the_first_certificate_of_a_bundle_is_the_ca_kept_as_previous() {
        let now = SystemTime::now();
        let (a, b) = (
            issue(None, Plan::Create, DNS, now, None).unwrap(),
            issue(None, Plan::Create, DNS, now, None).unwrap(),
        );
        let bundle = format!("{}{}", a.ca_pem, b.ca_pem);
        assert_eq!(first_certificate(&bundle).as_deref(), Some(a.ca_pem.as_str()));
        assert_eq!(first_certificate("no certificate"), None);
    }

    #[test]
    fn the_ca_bundle_is_set_on_our_webhooks_only() {
        let s = Settings {
            namespace: "encstr-system".into(),
            secret: "tls".into(),
            service: "encstr-operator-webhook".into(),
            configuration: Some("encstr-operator".into()),
            ca_grace: Duration::from_secs(60),
        };
        let mwc: MutatingWebhookConfiguration = serde_json::from_value(serde_json::json!({
            "metadata": {"name": "encstr-operator"},
            "webhooks": [
                {"name": "inject.encstr.io", "sideEffects": "None", "admissionReviewVersions": ["v1"],
                 "clientConfig": {"service": {"namespace": "encstr-system", "name": "encstr-operator-webhook"}}},
                {"name": "other.example.com", "sideEffects": "None", "admissionReviewVersions": ["v1"],
                 "clientConfig": {"url": "https://example.com/x"}},
            ]
        }))
        .unwrap();
        let updated = with_ca_bundle(mwc, &s, "CA").unwrap();
        let hooks = updated.webhooks.as_ref().unwrap();
        assert_eq!(hooks[0].client_config.ca_bundle, Some(ByteString(b"CA".to_vec())));
        assert_eq!(hooks[1].client_config.ca_bundle, None);
        assert!(with_ca_bundle(updated, &s, "CA").is_none(), "nothing to change");
    }
}
