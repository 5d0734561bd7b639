//! Serving over TLS with the server's own CA, and authentication: bearer
//! tokens from the admin kubeconfig, a token file in kube-apiserver's CSV
//! format, and ServiceAccount tokens minted by the TokenRequest
//! subresource; requests without credentials are `system:anonymous`.

use std::collections::HashMap;
use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair, KeyUsagePurpose};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer, ServerName};
use serde_json::{Value, json};
use tokio::net::{TcpListener, TcpStream};

/// Who a request comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UserInfo {
    /// User name (`system:serviceaccount:ns:sa`, `admin`, `system:anonymous`).
    pub name: String,
    /// A uid.
    pub uid: String,
    /// Groups, `system:authenticated` included for authenticated users.
    pub groups: Vec<String>,
}

impl UserInfo {
    /// `system:anonymous` in `system:unauthenticated`.
    pub fn anonymous() -> Self {
        UserInfo {
            name: "system:anonymous".into(),
            uid: String::new(),
            groups: vec!["system:unauthenticated".into()],
        }
    }

    /// The server's own controllers.
    pub fn system(name: &str) -> Self {
        UserInfo {
            name: name.into(),
            uid: String::new(),
            groups: vec!["system:masters".into(), "system:authenticated".into()],
        }
    }

    /// An authenticated user in `groups` (plus `system:authenticated`).
    pub fn new(name: &str, groups: &[&str]) -> Self {
        let mut g: Vec<String> = groups.iter().map(|s| s.to_string()).collect();
        if !g.iter().any(|x| x == "system:authenticated") {
            g.push("system:authenticated".into());
        }
        UserInfo { name: name.into(), uid: String::new(), groups: g }
    }

    /// Whether authorization is bypassed (`system:masters`).
    pub fn is_master(&self) -> bool {
        self.groups.iter().any(|g| g == "system:masters")
    }

    /// `{"username": ..., "uid": ..., "groups": [...]}` as admission and
    /// reviews show it.
    pub fn to_json(&self) -> Value {
        let mut v = json!({"username": self.name, "groups": self.groups});
        if !self.uid.is_empty() {
            v["uid"] = json!(self.uid);
        }
        v
    }
}

/// A ServiceAccount token minted by TokenRequest.
#[derive(Debug, Clone)]
struct SaToken {
    namespace: String,
    name: String,
    uid: String,
    expires: u64,
}

/// Tokens the server accepts.
#[derive(Debug, Default)]
pub struct Authenticator {
    static_tokens: HashMap<String, UserInfo>,
    sa_tokens: HashMap<String, SaToken>,
}

fn now() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or_default()
}

/// A random token (URL-safe).
pub fn random_token() -> String {
    let mut b = [0u8; 24];
    let _ = getrandom::fill(&mut b);
    use base64::Engine as _;
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(b)
}

impl Authenticator {
    /// Accept `token` as `user`.
    pub fn add_token(&mut self, token: &str, user: UserInfo) {
        self.static_tokens.insert(token.to_owned(), user);
    }

    /// Read a token file in kube-apiserver's format:
    /// `token,user,uid,"group1,group2"` per line.
    pub fn load_token_file(&mut self, text: &str) -> Result<usize, String> {
        let mut n = 0;
        for (i, line) in text.lines().enumerate() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let fields = csv_fields(line);
            if fields.len() < 3 {
                return Err(format!("token file line {}: expected token,user,uid[,\"groups\"]", i + 1));
            }
            let groups: Vec<&str> = fields
                .get(3)
                .map(|g| g.split(',').map(str::trim).filter(|g| !g.is_empty()).collect())
                .unwrap_or_default();
            let mut user = UserInfo::new(&fields[1], &groups);
            user.uid = fields[2].clone();
            self.add_token(&fields[0], user);
            n += 1;
        }
        Ok(n)
    }

    /// Mint a token for the ServiceAccount `ns/name` (uid `uid`).
    pub fn mint(&mut self, ns: &str, name: &str, uid: &str, seconds: u64) -> (String, u64) {
        let token = format!("sa.{}", random_token());
        let expires = now() + seconds;
        self.sa_tokens.insert(
            token.clone(),
            SaToken { namespace: ns.into(), name: name.into(), uid: uid.into(), expires },
        );
        (token, expires)
    }

    /// The user a bearer token stands for. `sa_uid` looks up the uid of a
    /// ServiceAccount that exists now (a token outlives no account).
    pub fn authenticate(
        &self,
        token: &str,
        sa_uid: impl Fn(&str, &str) -> Option<String>,
    ) -> Option<UserInfo> {
        if let Some(u) = self.static_tokens.get(token) {
            return Some(u.clone());
        }
        let t = self.sa_tokens.get(token)?;
        if t.expires < now() || sa_uid(&t.namespace, &t.name).as_deref() != Some(t.uid.as_str()) {
            return None;
        }
        Some(UserInfo {
            name: format!("system:serviceaccount:{}:{}", t.namespace, t.name),
            uid: t.uid.clone(),
            groups: vec![
                "system:serviceaccounts".into(),
                format!("system:serviceaccounts:{}", t.namespace),
                "system:authenticated".into(),
            ],
        })
    }
}

/// Split one CSV line (double quotes group commas).
fn csv_fields(line: &str) -> Vec<String> {
    let (mut out, mut cur, mut quoted) = (Vec::new(), String::new(), false);
    for c in line.chars() {
        match c {
            '"' => quoted = !quoted,
            ',' if !quoted => out.push(std::mem::take(&mut cur)),
            c => cur.push(c),
        }
    }
    out.push(cur);
    out
}

/// The server's CA and serving certificate.
#[derive(Debug, Clone)]
pub struct Tls {
    /// The CA certificate (PEM), for kubeconfigs and clients.
    pub ca_pem: String,
    ca_der: CertificateDer<'static>,
    cert_der: CertificateDer<'static>,
    key_der: Vec<u8>,
}

impl Tls {
    /// A fresh CA, and a serving certificate for 127.0.0.1, ::1 and localhost.
    pub fn generate() -> Tls {
        Tls::issue("kube-test-apiserver", &["localhost", "127.0.0.1", "::1"])
    }

    /// A fresh CA named after `name`, and a serving certificate from it for
    /// `sans` (DNS names or IP addresses).
    pub fn issue(name: &str, sans: &[&str]) -> Tls {
        let ca_key = KeyPair::generate().expect("CA key");
        let mut ca = CertificateParams::new(Vec::<String>::new()).expect("CA params");
        ca.distinguished_name.push(DnType::CommonName, format!("{name} CA"));
        ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        ca.key_usages =
            vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign, KeyUsagePurpose::DigitalSignature];
        let ca_cert = ca.self_signed(&ca_key).expect("CA certificate");
        let issuer = Issuer::new(ca, ca_key);
        let key = KeyPair::generate().expect("server key");
        let sans: Vec<String> = sans.iter().map(|s| (*s).to_owned()).collect();
        // rcgen makes IP address SANs of names that parse as one.
        let mut params = CertificateParams::new(sans).expect("server params");
        params.distinguished_name.push(DnType::CommonName, name);
        let cert = params.signed_by(&key, &issuer).expect("server certificate");
        Tls {
            ca_pem: ca_cert.pem(),
            ca_der: ca_cert.der().clone(),
            cert_der: cert.der().clone(),
            key_der: key.serialize_der(),
        }
    }

    fn provider() -> Arc<rustls::crypto::CryptoProvider> {
        Arc::new(rustls::crypto::ring::default_provider())
    }

    /// The rustls server configuration.
    pub fn server_config(&self) -> Arc<rustls::ServerConfig> {
        let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(self.key_der.clone()));
        let mut cfg = rustls::ServerConfig::builder_with_provider(Self::provider())
            .with_safe_default_protocol_versions()
            .expect("protocols")
            .with_no_client_auth()
            .with_single_cert(vec![self.cert_der.clone(), self.ca_der.clone()], key)
            .expect("server certificate");
        cfg.alpn_protocols = vec![b"http/1.1".to_vec()];
        Arc::new(cfg)
    }

    /// A rustls client configuration trusting this server's CA.
    pub fn client_config(&self) -> Arc<rustls::ClientConfig> {
        client_config_for(std::slice::from_ref(&self.ca_der))
    }
}

/// A rustls client configuration trusting these CA certificates.
pub fn client_config_for(cas: &[CertificateDer<'static>]) -> Arc<rustls::ClientConfig> {
    let mut roots = rustls::RootCertStore::empty();
    for ca in cas {
        roots.add(ca.clone()).expect("CA certificate");
    }
    Arc::new(
        rustls::ClientConfig::builder_with_provider(Tls::provider())
            .with_safe_default_protocol_versions()
            .expect("protocols")
            .with_root_certificates(roots)
            .with_no_client_auth(),
    )
}

/// CA certificates from PEM text.
pub fn certs_from_pem(pem: &str) -> Vec<CertificateDer<'static>> {
    use rustls::pki_types::pem::PemObject as _;
    CertificateDer::pem_slice_iter(pem.as_bytes()).filter_map(Result::ok).collect()
}

/// A server name for 127.0.0.1.
pub fn loopback_name() -> ServerName<'static> {
    ServerName::IpAddress("127.0.0.1".parse::<std::net::IpAddr>().expect("ip").into())
}

/// A TLS listener for axum: TCP connections are accepted at once and their
/// handshakes run concurrently, so a slow client never holds up others.
pub struct TlsListener {
    rx: tokio::sync::mpsc::Receiver<(tokio_rustls::server::TlsStream<TcpStream>, SocketAddr)>,
    addr: SocketAddr,
}

impl std::fmt::Debug for TlsListener {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TlsListener").field("addr", &self.addr).finish_non_exhaustive()
    }
}

impl TlsListener {
    /// Serve TLS on `listener`.
    pub fn new(listener: TcpListener, config: Arc<rustls::ServerConfig>) -> io::Result<Self> {
        let addr = listener.local_addr()?;
        let (tx, rx) = tokio::sync::mpsc::channel(64);
        let acceptor = tokio_rustls::TlsAcceptor::from(config);
        tokio::spawn(async move {
            loop {
                let Ok((tcp, peer)) = listener.accept().await else {
                    tokio::time::sleep(std::time::Duration::from_millis(10)).await;
                    continue;
                };
                let (acceptor, tx) = (acceptor.clone(), tx.clone());
                tokio::spawn(async move {
                    if let Ok(Ok(tls)) =
                        tokio::time::timeout(std::time::Duration::from_secs(10), acceptor.accept(tcp)).await
                    {
                        let _ = tx.send((tls, peer)).await;
                    }
                });
            }
        });
        Ok(TlsListener { rx, addr })
    }
}

impl axum::serve::Listener for TlsListener {
    type Io = tokio_rustls::server::TlsStream<TcpStream>;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        match self.rx.recv().await {
            Some(conn) => conn,
            None => std::future::pending().await,
        }
    }

    fn local_addr(&self) -> io::Result<Self::Addr> {
        Ok(self.addr)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn token_file_in_kube_apiserver_format() {
        let mut a = Authenticator::default();
        let n = a.load_token_file("# users\nt1,alice,u1,\"dev,ops\"\nt2,bob,u2\n").unwrap();
        assert_eq!(n, 2);
        let alice = a.authenticate("t1", |_, _| None).unwrap();
        assert_eq!(alice.groups, ["dev", "ops", "system:authenticated"]);
        assert_eq!(a.authenticate("t2", |_, _| None).unwrap().uid, "u2");
        assert!(a.authenticate("nope", |_, _| None).is_none());
    }

    #[test]
    fn service_account_tokens_die_with_their_account() {
        let mut a = Authenticator::default();
        let (token, _) = a.mint("ns", "sa", "uid-1", 3600);
        let who = a.authenticate(&token, |ns, n| (ns == "ns" && n == "sa").then(|| "uid-1".into())).unwrap();
        assert_eq!(who.name, "system:serviceaccount:ns:sa");
        assert_eq!(
            who.groups,
            ["system:serviceaccounts", "system:serviceaccounts:ns", "system:authenticated"]
        );
        assert!(a.authenticate(&token, |_, _| Some("uid-2".into())).is_none(), "re-created account");
        assert!(a.authenticate(&token, |_, _| None).is_none(), "deleted account");
    }
}
