//! A registry login, ready for a docker config. Only the password is secret.

use secrecy::SecretString;

pub struct Login {
    pub username: String,
    pub password: SecretString,
    pub email: Option<String>,
    /// A short hash of the credential's age ciphertext (`age:1a2b3c4d`), which is public: it
    /// names which encrypted value a plan writes without saying anything about the plaintext.
    /// `None` for passwords from the environment or a file.
    pub source_digest: Option<String>,
    /// When a minted token (`ecr`, `gcp`, `acr`) stops working, as Unix seconds; `None` for
    /// other passwords.
    pub expires_at: Option<i64>,
}

impl Login {
    /// A login with nothing but a user name and password.
    pub fn new(username: impl Into<String>, password: SecretString) -> Self {
        Login {
            username: username.into(),
            password,
            email: None,
            source_digest: None,
            expires_at: None,
        }
    }
}

impl Clone for Login {
    fn clone(&self) -> Self {
        Login {
            username: self.username.clone(),
            password: self.password.clone(),
            email: self.email.clone(),
            source_digest: self.source_digest.clone(),
            expires_at: self.expires_at,
        }
    }
}

impl std::fmt::Debug for Login {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Login")
            .field("username", &self.username)
            .field("password", &"(sensitive value)")
            .finish()
    }
}
