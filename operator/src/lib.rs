//! `encstr-operator`: reconciles `SecretKeyring` resources — generates keys,
//! distributes identical keyring Secrets to target namespaces, rotates in
//! stages and prunes only unused keys.
//!
//! Pure modules compute what should exist ([`desired`], [`status`],
//! [`usage`]); [`controller`] applies it with server-side apply.

#![forbid(unsafe_code)]

pub mod cli;
pub mod controller;
pub mod crd;
pub mod desired;
pub mod error;
pub mod http;
pub mod metrics;
pub mod status;
pub mod usage;

pub use error::{Error, Result};
