//! What a spec names that is read from outside the spec: each door checked against the trust
//! model (docs/security.md).
//!
//! - [`confined`]: reading the files a spec names: inside its root, regular, size-capped.
//! - [`credentials`]: the spec's credentials resolved to logins (decrypted, env, file, sops,
//!   secret managers).
//! - [`crypto`]: age identities, recipients, encryption and decryption.
//! - [`helper`]: docker credential helpers, asked as docker asks them; [`child_env`]: what a
//!   helper or kubeconfig plugin is started without.
//! - [`mint`]: short-lived registry tokens minted from ECR, Google Cloud and ACR identities.
//! - [`secret_managers`]: AWS Secrets Manager and Vault, read for the operator's allowlist.
//! - [`provenance`]: the spec's git commit and whether it is dirty.

pub mod child_env;
pub mod confined;
pub mod credentials;
pub mod crypto;
pub mod helper;
pub mod mint;
pub mod provenance;
pub mod secret_managers;
