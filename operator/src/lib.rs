//! `encstr-operator`: reconciles `SecretKeyring` (a namespace's own keyring)
//! and `ClusterSecretKeyring` (a keyring copied into target namespaces) —
//! generates keys, distributes byte-identical copies, rotates in stages,
//! prunes only unused keys, and never writes a keyring that lacks a key it
//! handed out.
//!
//! Pure modules decide ([`desired`], [`guard`], [`status`], [`usage`],
//! `reconcile::decide`); [`reconcile`] observes, decides, acts through
//! [`writer`] (the one place that writes) and reports; [`context`] holds
//! what reconciles share and remember; [`controller`] wires the reflectors
//! and controllers; [`lease`] elects a leader and [`client`] fences every
//! attempt of every write. The admission webhook injects the sidecar:
//! [`inject`] decides the patch, [`webhook`] serves it over TLS and
//! [`webhook_tls`] keeps its certificate.

#![forbid(unsafe_code)]

pub mod backup;
pub mod cache;
pub mod cli;
pub mod client;
pub mod context;
pub mod controller;
pub mod crd;
pub mod desired;
pub mod error;
#[cfg(test)]
mod fixtures;
pub mod guard;
pub mod http;
pub mod inject;
pub mod keyring;
pub mod lease;
pub mod metrics;
pub mod process;
pub mod reconcile;
pub mod status;
pub mod usage;
pub mod webhook;
pub mod webhook_tls;
pub mod writer;

pub use error::{Error, Result};
