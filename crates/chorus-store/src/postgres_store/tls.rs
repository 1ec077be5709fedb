//! TLS to PostgreSQL, from the store URL's libpq parameters `sslmode` and
//! `sslrootcert`: what each mode checks, and the rustls configuration that checks it.
//!
//! The `postgres` crate's own parser knows only `disable`, `prefer` and `require`
//! and no `sslrootcert`, so both parameters are taken out of the URL here and the
//! rest handed to it. The modes, as libpq defines them:
//!
//! | `sslmode`     | encrypted                    | certificate checked                          |
//! |---------------|------------------------------|----------------------------------------------|
//! | (none)        | no (as before TLS support)   | —                                            |
//! | `disable`     | no                           | —                                            |
//! | `prefer`      | if the server offers it      | only with `sslrootcert` (chain, as verify-ca) |
//! | `require`     | yes, or no connection        | only with `sslrootcert` (chain, as verify-ca) |
//! | `verify-ca`   | yes                          | chain to `sslrootcert` (else system roots)   |
//! | `verify-full` | yes                          | chain, and the host name of the URL          |
//!
//! `require` without a root certificate encrypts but accepts any certificate, so it
//! does not stop a man in the middle; `verify-full` does. `allow` (plaintext first)
//! is not supported. `sslrootcert=system`, or no `sslrootcert` with a `verify-*`
//! mode, trusts the system's roots (libpq would read `~/.postgresql/root.crt`).

use std::path::PathBuf;
use std::sync::Arc;

use percent_encoding::percent_decode_str;
use postgres::config::SslMode;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::client::WebPkiServerVerifier;
use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{CertificateError, DigitallySignedStruct, RootCertStore, SignatureScheme};
use tokio_postgres_rustls::MakeRustlsConnect;

/// What the store URL's `sslmode` asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    /// No `sslmode`: plaintext, as before TLS was supported.
    Unset,
    /// Each of the others as libpq defines it (see the table above).
    Disable,
    Prefer,
    Require,
    VerifyCa,
    VerifyFull,
}

impl Mode {
    fn parse(value: &str) -> Result<Mode, TlsError> {
        Ok(match value {
            "disable" => Mode::Disable,
            "prefer" => Mode::Prefer,
            "require" => Mode::Require,
            "verify-ca" => Mode::VerifyCa,
            "verify-full" => Mode::VerifyFull,
            other => return Err(TlsError::Mode(other.to_owned())),
        })
    }
}

/// Where trusted certificates come from.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Roots {
    /// No `sslrootcert`.
    Unset,
    /// `sslrootcert=system`.
    System,
    /// `sslrootcert=FILE`.
    File(PathBuf),
}

/// Why the URL's TLS settings cannot be used.
#[derive(Debug, thiserror::Error)]
pub(super) enum TlsError {
    #[error("sslmode={0:?} is not supported (disable, prefer, require, verify-ca or verify-full)")]
    Mode(String),
    #[error("sslrootcert {path}: {reason}")]
    RootCert { path: PathBuf, reason: String },
    #[error("the system's root certificates: {0}")]
    SystemRoots(String),
    #[error("the TLS configuration: {0}")]
    Rustls(#[from] rustls::Error),
    /// The rest of the URL, as the `postgres` crate parses it.
    #[error(transparent)]
    Url(#[from] postgres::Error),
}

/// The store URL understood: the `postgres` crate's config, the TLS connector for
/// it, and what it promises (for logs and messages).
pub(super) struct Connection {
    pub config: postgres::Config,
    pub tls: MakeRustlsConnect,
    /// E.g. `TLS (sslmode=verify-full, trusting the CA in /etc/chorus/pg-ca.pem)`.
    pub security: String,
}

/// Split `sslmode` and `sslrootcert` off `url` and build the connector they ask for.
pub(super) fn parse(url: &str) -> Result<Connection, TlsError> {
    let (base, query) = url.split_once('?').unwrap_or((url, ""));
    let (mut mode_text, mut roots) = (None, Roots::Unset);
    let mut rest = Vec::new();
    for pair in query.split('&').filter(|p| !p.is_empty()) {
        let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
        let value = percent_decode_str(value).decode_utf8_lossy();
        match &*percent_decode_str(key).decode_utf8_lossy() {
            "sslmode" => mode_text = Some(value.into_owned()),
            "sslrootcert" if value == "system" => roots = Roots::System,
            "sslrootcert" => roots = Roots::File(PathBuf::from(&*value)),
            _ => rest.push(pair),
        }
    }
    let stripped = if rest.is_empty() {
        base.to_owned()
    } else {
        format!("{base}?{}", rest.join("&"))
    };
    let mut config: postgres::Config = stripped.parse()?;
    let mode = mode_text.as_deref().map_or(Ok(Mode::Unset), Mode::parse)?;
    config.ssl_mode(match mode {
        // Without sslmode the store has always connected in plaintext, and still
        // does (libpq's default, prefer, would try TLS unverified).
        Mode::Unset | Mode::Disable => SslMode::Disable,
        Mode::Prefer => SslMode::Prefer,
        Mode::Require | Mode::VerifyCa | Mode::VerifyFull => SslMode::Require,
    });
    let named = mode_text.as_deref().unwrap_or_default();
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let (verifier, security): (Arc<dyn ServerCertVerifier>, String) = match (mode, &roots) {
        (Mode::Unset | Mode::Disable, _) => (
            Arc::new(AnyCertificate(provider.clone())),
            "plaintext".to_owned(),
        ),
        (Mode::Prefer | Mode::Require, Roots::Unset) => (
            Arc::new(AnyCertificate(provider.clone())),
            format!("TLS (sslmode={named}; the server's certificate is not checked)"),
        ),
        (_, roots) => {
            let (store, trusted) = root_store(roots)?;
            let webpki =
                WebPkiServerVerifier::builder_with_provider(Arc::new(store), provider.clone())
                    .build()
                    .map_err(|e| TlsError::Rustls(rustls::Error::General(e.to_string())))?;
            if mode == Mode::VerifyFull {
                (
                    webpki,
                    format!(
                        "TLS (sslmode={named}; the server's certificate must be signed by \
                         {trusted} and name the host)"
                    ),
                )
            } else {
                (
                    Arc::new(ChainOnly(webpki)),
                    format!(
                        "TLS (sslmode={named}; the server's certificate must be signed by \
                         {trusted}; its host name is not checked)"
                    ),
                )
            }
        }
    };
    let client = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()?
        .dangerous()
        .with_custom_certificate_verifier(verifier)
        .with_no_client_auth();
    Ok(Connection {
        config,
        tls: MakeRustlsConnect::new(client),
        security,
    })
}

/// The trusted roots `roots` names, and how to name them in messages.
fn root_store(roots: &Roots) -> Result<(RootCertStore, String), TlsError> {
    let mut store = RootCertStore::empty();
    match roots {
        Roots::File(path) => {
            let err = |reason: String| TlsError::RootCert {
                path: path.clone(),
                reason,
            };
            let certs = CertificateDer::pem_file_iter(path)
                .map_err(|e| err(e.to_string()))?
                .collect::<Result<Vec<_>, _>>()
                .map_err(|e| err(format!("not PEM certificates: {e}")))?;
            if certs.is_empty() {
                return Err(err("no certificate in it (PEM expected)".to_owned()));
            }
            for cert in certs {
                store.add(cert).map_err(|e| err(e.to_string()))?;
            }
            Ok((store, format!("the CA in {}", path.display())))
        }
        Roots::System | Roots::Unset => {
            let found = rustls_native_certs::load_native_certs();
            let (added, _) = store.add_parsable_certificates(found.certs);
            if added == 0 {
                let why = found
                    .errors
                    .first()
                    .map_or("none found".to_owned(), ToString::to_string);
                return Err(TlsError::SystemRoots(why));
            }
            Ok((store, "the system's roots".to_owned()))
        }
    }
}

/// `verify-ca`, and `require`/`prefer` with a root certificate: the chain must lead
/// to a trusted root, whatever host it names.
#[derive(Debug)]
struct ChainOnly(Arc<WebPkiServerVerifier>);

impl ServerCertVerifier for ChainOnly {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        // The name is checked only after the chain verified: a name error means the
        // chain is good.
        match self
            .0
            .verify_server_cert(end_entity, intermediates, server_name, ocsp_response, now)
        {
            Err(rustls::Error::InvalidCertificate(
                CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. },
            )) => Ok(ServerCertVerified::assertion()),
            other => other,
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.0.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.0.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.supported_verify_schemes()
    }
}

/// `require` and `prefer` without a root certificate, as libpq: any certificate
/// is accepted (the handshake's signatures are still checked, so the connection is
/// encrypted to whoever holds the key of the certificate shown, which may be a man
/// in the middle).
#[derive(Debug)]
struct AnyCertificate(Arc<CryptoProvider>);

impl ServerCertVerifier for AnyCertificate {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parsed(url: &str) -> Connection {
        parse(url).expect("the URL and its TLS settings")
    }

    #[test]
    fn a_url_without_sslmode_stays_plaintext() {
        let c = parsed("postgres://chorus@db:5432/chorus");
        assert_eq!(c.security, "plaintext");
        assert_eq!(c.config.get_ssl_mode(), SslMode::Disable);
        let c = parsed("postgres://chorus@db/chorus?application_name=x&sslmode=disable");
        assert_eq!(c.config.get_ssl_mode(), SslMode::Disable);
        assert_eq!(c.config.get_application_name(), Some("x"));
    }

    #[test]
    fn libpq_modes_map_to_what_the_driver_knows_and_the_rest_passes_through() {
        let c = parsed("postgres://u@h/db?sslmode=require&connect_timeout=7");
        assert_eq!(c.config.get_ssl_mode(), SslMode::Require);
        assert!(c.security.contains("not checked"), "{}", c.security);
        assert_eq!(
            c.config.get_connect_timeout(),
            Some(&std::time::Duration::from_secs(7))
        );
        let c = parsed("postgres://u@h/db?sslmode=prefer");
        assert_eq!(c.config.get_ssl_mode(), SslMode::Prefer);
    }

    #[test]
    fn unsupported_modes_and_missing_root_files_are_named() {
        let e = parse("postgres://u@h/db?sslmode=allow").err().unwrap();
        assert!(e.to_string().contains("\"allow\""), "{e}");
        let e = parse("postgres://u@h/db?sslmode=verify-full&sslrootcert=%2Fno%2Fsuch.pem")
            .err()
            .unwrap();
        assert!(e.to_string().contains("/no/such.pem"), "{e}");
        // The driver's own errors are still its own.
        let e = parse("postgres://u@h/db?nonsense=1").err().unwrap();
        assert!(matches!(e, TlsError::Url(_)), "{e}");
    }
}
