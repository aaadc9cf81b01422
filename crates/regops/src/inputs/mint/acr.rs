//! Azure Container Registry: an Entra ID access token for the registry's audience, from a
//! client secret (`AZURE_CLIENT_SECRET`) or the workload identity's federated token
//! (`AZURE_FEDERATED_TOKEN_FILE`, as AKS workload identity sets it), exchanged at the
//! registry's `/oauth2/exchange` for a refresh token, which `docker login` takes with the
//! user `00000000-0000-0000-0000-000000000000`.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use regops_spec::{ACR_TOKEN_USER, AcrSource};
use secrecy::SecretString;
use serde_json::Value;
use zeroize::Zeroizing;

use super::{Env, MintError};
use crate::inputs::credentials::Login;

const ENTRA_SCOPE: &str = "https://containerregistry.azure.net/.default";

/// The `exp` claim of a JWT, read without checking its signature (the registry made it; regops
/// only wants to know when it stops working).
fn jwt_expiry(token: &str) -> Option<i64> {
    let payload = token.split('.').nth(1)?;
    let bytes = URL_SAFE_NO_PAD.decode(payload.trim_end_matches('=')).ok()?;
    serde_json::from_slice::<Value>(&bytes)
        .ok()?
        .get("exp")?
        .as_i64()
}

/// An Entra ID token for `scope` (`https://containerregistry.azure.net/.default` for a
/// registry, `https://vault.azure.net/.default` for Key Vault), as the tenant and client
/// given, else `AZURE_TENANT_ID` and `AZURE_CLIENT_ID`; with the tenant it was asked of.
pub async fn entra_token(
    tenant: Option<&str>,
    client: Option<&str>,
    scope: &str,
    env: Env<'_>,
) -> Result<(Zeroizing<String>, String), MintError> {
    let step = "get an Entra ID token";
    let tenant = tenant
        .map(str::to_string)
        .or_else(|| env.var("AZURE_TENANT_ID"))
        .ok_or_else(|| {
            MintError::new(step, "no tenant: give `tenantId`, or set AZURE_TENANT_ID")
        })?;
    let client = client
        .map(str::to_string)
        .or_else(|| env.var("AZURE_CLIENT_ID"))
        .ok_or_else(|| {
            MintError::new(
                step,
                "no client id: give `clientId`, or set AZURE_CLIENT_ID",
            )
        })?;
    let authority = env
        .var("AZURE_AUTHORITY_HOST")
        .unwrap_or_else(|| "https://login.microsoftonline.com/".into());
    let url = format!(
        "{}/{tenant}/oauth2/v2.0/token",
        authority.trim_end_matches('/')
    );
    let (how, body) = if let Some(file) = env.var("AZURE_FEDERATED_TOKEN_FILE") {
        let assertion = super::read_file(&file)
            .map_err(|e| MintError::new("read the federated token", format!("{file}: {e}")))?;
        (
            "the workload identity's federated token",
            super::form(&[
                ("client_id", &client),
                ("scope", scope),
                ("grant_type", "client_credentials"),
                (
                    "client_assertion_type",
                    "urn:ietf:params:oauth:client-assertion-type:jwt-bearer",
                ),
                ("client_assertion", assertion.trim()),
            ]),
        )
    } else if let Some(secret) = env.var("AZURE_CLIENT_SECRET").map(Zeroizing::new) {
        (
            "the client secret (AZURE_CLIENT_SECRET)",
            super::form(&[
                ("client_id", &client),
                ("scope", scope),
                ("grant_type", "client_credentials"),
                ("client_secret", &secret),
            ]),
        )
    } else {
        return Err(MintError::new(
            step,
            "no identity: set AZURE_FEDERATED_TOKEN_FILE (AKS workload identity) or AZURE_CLIENT_SECRET",
        ));
    };
    let step = format!("get an Entra ID token for {client} with {how}");
    let reply = super::post_form(&url, &step, body, env).await?;
    let token = super::json_field(&reply, "access_token", &step)?;
    Ok((Zeroizing::new(token), tenant))
}

/// A refresh token for the registry at `server`.
pub async fn mint(
    source: &AcrSource,
    server: &str,
    insecure: bool,
    env: Env<'_>,
) -> Result<Login, MintError> {
    let (aad, tenant) = entra_token(
        source.tenant_id.as_ref().map(|t| t.value.as_str()),
        source.client_id.as_ref().map(|c| c.value.as_str()),
        ENTRA_SCOPE,
        env,
    )
    .await?;
    let host = server.split('/').next().unwrap_or(server);
    let url = format!(
        "{}/oauth2/exchange",
        crate::registry::base_url(server, insecure)
    );
    let step = format!("exchange the Entra token at {url}");
    let body = super::form(&[
        ("grant_type", "access_token"),
        ("service", host),
        ("tenant", &tenant),
        ("access_token", &aad),
    ]);
    let reply = super::post_form(&url, &step, body, env).await?;
    let refresh = super::json_field(&reply, "refresh_token", &step)?;
    let expires = super::token_expiry(env.now(), jwt_expiry(&refresh), 3 * 3_600, &step)?;
    let mut login = Login::new(ACR_TOKEN_USER, SecretString::from(refresh));
    login.expires_at = Some(expires);
    Ok(login)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_refresh_token_s_expiry_is_its_exp_claim() {
        let payload = URL_SAFE_NO_PAD.encode(br#"{"exp":1800000000,"grant_type":"refresh_token"}"#);
        assert_eq!(jwt_expiry(&format!("h.{payload}.s")), Some(1_800_000_000));
        assert_eq!(jwt_expiry("opaque"), None);
    }
}
